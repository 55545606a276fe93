//! Issue 13, goal 3: each signature is verified at most once per node. A block whose
//! transactions the node already admitted to its mempool costs no signature check, a block of
//! new transactions costs one per transaction, and the same block on a second branch (a reorg
//! candidate) costs none, and a block checked for an early relay costs none again at its
//! import. The process-wide counter `crypto::tx_verifications` is read before
//! and after each step, so this file holds this one test (its own process).
//!
//! With the verified-signature set turned off (capacity 0) the same steps verify every
//! signature again, the behaviour before the set existed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests: the crate's no-panic lints are for consensus code"
)]

mod common;

use common::*;
use peerchain_consensus::{Chain, ChainConfig, Verdict};
use peerchain_ledger::crypto::tx_verifications;
use peerchain_ledger::{Address, Genesis, MempoolConfig, Store};

const TXS: usize = 40;

/// Signature checks made by `f`.
fn checks<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = tx_verifications();
    let out = f();
    (out, tx_verifications() - before)
}

/// Verifications of: admitting a block's transactions, importing that block, importing a
/// block of new transactions, importing a copy of the first block's transactions on a side
/// branch, checking a block of new transactions for an early relay (`Chain::relayable`),
/// then importing that block.
fn run(g: &Genesis, remembered: usize) -> [u64; 6] {
    let store = Store::temporary(g).expect("store");
    let config = ChainConfig {
        mempool: MempoolConfig {
            verified_signatures: remembered,
            ..MempoolConfig::default()
        },
        ..ChainConfig::default()
    };
    let mut chain = Chain::open(store, g.clone(), config).expect("chain");
    let mut f = Forest::new(g);
    let now = now(g);
    let first = f.child(&g.hash(), TXS, 1);
    let (results, admit) = checks(|| chain.submit_batch(first.transactions.clone(), now));
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let (verdicts, known_block) =
        checks(|| chain.import(first.clone(), None, now).expect("import"));
    assert_eq!(verdicts[0].verdict, Verdict::Accepted { on_main: true });
    let second = f.child(&first.hash(), TXS, 2);
    let (_, new_block) = checks(|| chain.import(second.clone(), None, now).expect("import"));
    // The first block's transactions again, in a block on a side branch from genesis.
    let side = f.child_with(&g.hash(), first.transactions.clone(), Address([0xee; 20]));
    assert_ne!(side.hash(), first.hash(), "another block (another miner)");
    let (_, side_block) = checks(|| chain.import(side, None, now).expect("import"));
    // A block of new transactions on the tip, checked for an early relay before its import.
    let third = f.child(&second.hash(), TXS, 3);
    let (relayable, relay) = checks(|| chain.relayable(&third, now));
    assert!(relayable, "a valid block on the tip is relayable");
    let (verdicts, relayed_block) = checks(|| chain.import(third, None, now).expect("import"));
    assert_eq!(verdicts[0].verdict, Verdict::Accepted { on_main: true });
    [
        admit,
        known_block,
        new_block,
        side_block,
        relay,
        relayed_block,
    ]
}

#[test]
fn each_signature_is_verified_once_per_node() {
    let g = easy_genesis();
    let n = TXS as u64;
    let [admit, known, new, side, relay, relayed] = run(&g, 200_000);
    println!(
        "with the set: admission {admit}, known block {known}, new block {new}, side branch \
         {side}, early relay {relay}, its import {relayed}"
    );
    assert_eq!(admit, n, "admission verifies each once");
    assert_eq!(known, 0, "a block of admitted transactions costs no check");
    assert_eq!(new, n, "a block of new transactions costs one check each");
    assert_eq!(side, 0, "the same transactions on another branch cost none");
    assert_eq!(relay, n, "the early relay checks a new block's signatures");
    assert_eq!(relayed, 0, "and its import checks none of them again");
    let [admit, known, new, side, relay, relayed] = run(&g, 0);
    println!(
        "without: admission {admit}, known block {known}, new block {new}, side branch {side}, \
         early relay {relay}, its import {relayed}"
    );
    assert_eq!(
        (admit, known, new, side, relay, relayed),
        (n, n, n, n, n, n),
        "the control: everything again"
    );
}
