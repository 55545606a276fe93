//! `invalid-blocks`: blocks on the current tip that each break one consensus rule, in turn.
//! Each carries real proof of work against its own header target (except the one whose point
//! is bad proof of work), so a receiver has to run the rules to refuse it.

use peerchain_consensus::pow::HeaderHasher;
use peerchain_consensus::{Chain, Template, build_template, solve};
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{Address, Block, Genesis, Hash, Target, Transaction};

use crate::outbox::{NetCommand, NetOutbox};

/// The rule each step breaks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Broken {
    ProofOfWork,
    Target,
    TxRoot,
    Overspend,
    DuplicateTx,
    Signature,
    Height,
    FutureTimestamp,
    OtherGenesis,
}

const ORDER: [Broken; 9] = [
    Broken::ProofOfWork,
    Broken::Target,
    Broken::TxRoot,
    Broken::Overspend,
    Broken::DuplicateTx,
    Broken::Signature,
    Broken::Height,
    Broken::FutureTimestamp,
    Broken::OtherGenesis,
];

/// An unfunded key's transfer (valid signature, cannot be paid).
fn unfunded_transfer(genesis: &Genesis, step: u64) -> Transaction {
    let mut seed = [0x3cu8; 32];
    seed[..8].copy_from_slice(&step.to_le_bytes());
    Keypair::from_seed(&seed).sign_transfer(
        genesis.chain_id,
        Address([0x77; 20]),
        1_000,
        genesis.min_fee,
        0,
    )
}

fn with_txs(mut t: Template, txs: Vec<Transaction>) -> Template {
    let ids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
    t.header.tx_root = merkle_root(&ids);
    t.transactions = txs;
    t
}

/// The block of `step` on `chain`'s tip, breaking [`ORDER`]`[step % 9]`.
pub(super) fn build(chain: &Chain, step: u64, now_ms: u64) -> Option<(Broken, Block)> {
    let broken = ORDER[(step % ORDER.len() as u64) as usize];
    let mut t = build_template(chain, Address([0x66; 20]), now_ms).ok()?;
    t = with_txs(t, Vec::new());
    let g = chain.genesis();
    let block = match broken {
        Broken::ProofOfWork => {
            let hasher = HeaderHasher::new(&t.header);
            let nonce = (0..u64::MAX).find(|n| !hasher.meets_target(*n))?;
            t.into_block(nonce)
        }
        Broken::Target => {
            // A looser target than the rule asks for: cheaper work, wrong difficulty.
            let loose = t.header.target.0.saturating_mul(2.into()).max(1.into());
            t.header.target = Target(loose.min(g.pow_limit.0));
            if t.header.target == chain.next_target_after(&chain.tip())? {
                t.header.target = Target(g.pow_limit.0 >> 1);
            }
            solve(t)?
        }
        Broken::TxRoot => {
            t.header.tx_root = Hash([0xee; 32]);
            solve(t)?
        }
        Broken::Overspend => solve(with_txs(t, vec![unfunded_transfer(g, step)]))?,
        Broken::DuplicateTx => {
            let tx = unfunded_transfer(g, step);
            solve(with_txs(t, vec![tx.clone(), tx]))?
        }
        Broken::Signature => {
            let mut tx = unfunded_transfer(g, step);
            tx.signature.0[7] ^= 0x40;
            solve(with_txs(t, vec![tx]))?
        }
        Broken::Height => {
            t.header.height = t.header.height.saturating_add(1);
            solve(t)?
        }
        Broken::FutureTimestamp => {
            t.header.timestamp_ms = now_ms.saturating_add(g.max_future_ms.saturating_mul(10));
            solve(t)?
        }
        Broken::OtherGenesis => {
            let mut other = g.clone();
            other.chain_id = other.chain_id.wrapping_add(1);
            t.header.prev_hash = other.hash();
            t.header.height = 1;
            solve(t)?
        }
    };
    Some((broken, block))
}

pub(super) fn send_one(chain: &Chain, outbox: &NetOutbox, step: u64, now_ms: u64) {
    if let Some((broken, block)) = build(chain, step, now_ms) {
        tracing::warn!(?broken, hash = %block.hash(), "adversary: gossiping an invalid block");
        outbox.send(NetCommand::PublishBlock(Box::new(block)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_consensus::ChainConfig;
    use peerchain_ledger::{Store, U256};

    #[test]
    fn every_step_breaks_its_rule_and_the_chain_refuses_it() {
        let mut g = Genesis::dev(2, 1_000_000, 2000);
        g.initial_target = Target(U256::MAX >> 2);
        g.pow_limit = Target(U256::MAX >> 1);
        let store = Store::temporary(&g).expect("store");
        let mut chain = Chain::open(store, g.clone(), ChainConfig::default()).expect("chain");
        let now = g.timestamp_ms + 60_000;
        let tip = chain.tip();
        for step in 0..ORDER.len() as u64 {
            let (broken, block) = build(&chain, step, now).expect("built");
            assert_eq!(broken, ORDER[step as usize]);
            let verdict = chain
                .import(block, Some("test".into()), now)
                .expect("store works")
                .into_iter()
                .next()
                .map(|r| r.verdict);
            let refused = matches!(
                verdict,
                Some(
                    peerchain_consensus::Verdict::Invalid(_)
                        | peerchain_consensus::Verdict::Future { .. }
                        | peerchain_consensus::Verdict::Orphan { .. }
                )
            );
            assert!(refused, "{broken:?} was accepted: {verdict:?}");
            assert_eq!(chain.tip(), tip, "{broken:?} moved the tip");
        }
    }
}
