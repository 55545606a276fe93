//! `tx-flood`: validly signed transactions that can never become valid here: from fresh keys
//! that own nothing, half of them with a nonce gap. They cost the attacker only a signature
//! each; a defended node holds none of them and relays none of them.

use peerchain_consensus::Chain;
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::{Address, Transaction};

use crate::outbox::{NetCommand, NetOutbox};

/// Transactions per round (every 100 ms).
const PER_ROUND: u64 = 200;

/// The transactions of round `step` (deterministic).
pub(super) fn round(chain_id: u64, min_fee: u64, step: u64) -> Vec<Transaction> {
    (0..PER_ROUND)
        .map(|i| {
            let n = step.wrapping_mul(PER_ROUND).wrapping_add(i);
            let mut seed = [0x5au8; 32];
            seed[..8].copy_from_slice(&n.to_le_bytes());
            Keypair::from_seed(&seed).sign_transfer(
                chain_id,
                Address([0x66; 20]),
                1,
                min_fee,
                n % 2,
            )
        })
        .collect()
}

pub(super) fn send_round(chain: &Chain, outbox: &NetOutbox, step: u64) {
    let g = chain.genesis();
    outbox.send(NetCommand::PublishTxs(round(g.chain_id, g.min_fee, step)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_distinct_signed_and_unfunded() {
        let a = round(7, 1, 1);
        let b = round(7, 1, 2);
        assert_eq!(a.len() as u64, PER_ROUND);
        assert!(a.iter().all(peerchain_ledger::crypto::verify_transaction));
        assert!(a.iter().all(|t| b.iter().all(|u| u.txid() != t.txid())));
        assert!(a.iter().any(|t| t.nonce == 1), "some leave a nonce gap");
    }
}
