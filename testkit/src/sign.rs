//! Signed transfers between dev accounts, signed on every core (rayon) so that building large
//! blocks stays quick.

use std::collections::HashMap;

use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Genesis, Transaction};
use rayon::prelude::*;

/// Like [`ChainBuilder::transfers`] (same senders, recipients, amounts, fees and nonces, in the
/// same order), but signed on every core.
pub fn transfers_par(b: &ChainBuilder, n: usize, salt: u64) -> Vec<Transaction> {
    let addresses: Vec<Address> = b.keys.iter().map(Keypair::address).collect();
    let len = b.keys.len();
    let mut nonces: HashMap<usize, u64> = HashMap::new();
    let specs: Vec<(usize, usize, u64, u64, u64)> = (0..n)
        .map(|i| {
            let k = i % len;
            let nonce = nonces
                .entry(k)
                .or_insert_with(|| b.state.get(&addresses[k]).map_or(0, |a| a.nonce));
            let spec = (
                k,
                (i + 1 + salt as usize) % len,
                1 + (salt + i as u64) % 100,
                1 + (i as u64 % 7),
                *nonce,
            );
            *nonce += 1;
            spec
        })
        .collect();
    specs
        .par_iter()
        .with_min_len(64)
        .map(|&(k, to, amount, fee, nonce)| {
            b.keys[k].sign_transfer(b.genesis.chain_id, addresses[to], amount, fee, nonce)
        })
        .collect()
}

/// The first `n` dev keys (derived on every core).
pub fn dev_keys(n: u32) -> Vec<Keypair> {
    (0..n).into_par_iter().map(Keypair::dev).collect()
}

/// Plans and signs transfers between dev accounts with consecutive nonces per sender, for
/// submitting to a node (no state is tracked: every sender starts at nonce 0).
#[derive(Debug)]
pub struct Transfers {
    /// Sending keys (dev accounts 0..).
    pub keys: Vec<Keypair>,
    /// Their addresses.
    pub addresses: Vec<Address>,
    /// Next nonce of each sender.
    pub nonces: Vec<u64>,
    /// Chain id to sign for.
    pub chain_id: u64,
    issued: u64,
}

impl Transfers {
    /// The first `senders` dev accounts of `genesis` (at least 2), all at nonce 0.
    pub fn new(genesis: &Genesis, senders: u32) -> Self {
        let keys = dev_keys(senders.max(2));
        let addresses = keys.iter().map(Keypair::address).collect();
        Transfers {
            nonces: vec![0; keys.len()],
            keys,
            addresses,
            chain_id: genesis.chain_id,
            issued: 0,
        }
    }

    /// `n` transfers from the senders `group` (indices into `keys`) in round-robin order, each
    /// to another dev account, with consecutive nonces per sender; signed on every core. Any
    /// prefix of the result submitted in order keeps every sender's nonces contiguous.
    pub fn sign(&mut self, group: &[usize], n: usize) -> Vec<Transaction> {
        let len = self.keys.len();
        let specs: Vec<(usize, usize, u64, u64, u64)> = (0..n)
            .map(|i| {
                let k = group[i % group.len()];
                let salt = self.issued;
                self.issued += 1;
                // Any other account: never the sender itself.
                let to = (k + 1 + (salt as usize % (len - 1))) % len;
                let nonce = self.nonces[k];
                self.nonces[k] += 1;
                (k, to, 1 + salt % 100, 1 + salt % 7, nonce)
            })
            .collect();
        specs
            .par_iter()
            .with_min_len(64)
            .map(|&(k, to, amount, fee, nonce)| {
                self.keys[k].sign_transfer(self.chain_id, self.addresses[to], amount, fee, nonce)
            })
            .collect()
    }

    /// `n` transfers from all senders (see [`Transfers::sign`]).
    pub fn sign_all(&mut self, n: usize) -> Vec<Transaction> {
        let all: Vec<usize> = (0..self.keys.len()).collect();
        self.sign(&all, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_par_matches_the_builder() {
        let g = Genesis::dev(5, 1_000_000, 2000);
        let mut b = ChainBuilder::new(g, 5);
        let first = b.transfers(23, 3);
        assert_eq!(transfers_par(&b, 23, 3), first);
        b.push(first, Address([1; 20]));
        assert_eq!(transfers_par(&b, 200, 9), b.transfers(200, 9));
    }

    #[test]
    fn transfers_keep_nonces_contiguous() {
        let g = Genesis::dev(3, 1_000_000, 2000);
        let mut t = Transfers::new(&g, 3);
        let txs = t.sign_all(7);
        assert_eq!(t.nonces, vec![3, 2, 2]);
        assert!(txs.iter().all(|tx| tx.to != tx.sender()));
    }
}
