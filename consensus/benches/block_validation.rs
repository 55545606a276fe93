//! Validation of a full block before the store commit, against its signatures alone, and the
//! full import including the commit.
//!
//! One block of `PEERCHAIN_BENCH_TXS` (20,000) transfers from `PEERCHAIN_BENCH_SENDERS`
//! (2,000) dev accounts on top of genesis, in an on-disk store with the default `StoreConfig`
//! (64 MiB cache, fsync every block). Over `PEERCHAIN_BENCH_ROUNDS` (5) interleaved rounds:
//! - validation = `check_body` (count, unique txids, tx_root, every signature on all cores) +
//!   `apply_block` against the parent state in the store;
//! - `verify_many` of the block's signatures alone, on all cores;
//! - the full `Chain::import` into a fresh chain (header rules, body, `put_block`,
//!   `apply_block`, `connect_block`, mempool update).
//!
//! Prints the ratio validation / signatures (goal: within 1.2x) from the medians.
//!
//! Run: `cargo bench -p peerchain-consensus --bench block_validation`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

mod common;

use std::time::{Duration, Instant};

use common::sealed_child;
use peerchain_consensus::rules::check_body;
use peerchain_consensus::{Chain, ChainConfig, Verdict};
use peerchain_ledger::crypto::verify_many;
use peerchain_ledger::state::apply_block;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Block, Genesis, Store, StoreConfig};
use peerchain_testkit::{
    cores, easy_genesis, env_count, fmt_duration, late_clock_ms, smoke_note, table_header,
    table_row, table_rule,
};

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn fresh_chain(genesis: &Genesis) -> (tempfile::TempDir, Chain) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&StoreConfig::new(dir.path().join("db")), genesis).expect("store");
    let chain = Chain::open(store, genesis.clone(), ChainConfig::default()).expect("chain");
    (dir, chain)
}

fn main() {
    smoke_note();
    let txs = env_count("PEERCHAIN_BENCH_TXS", 20_000, 300);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 2_000, 30).max(1);
    let rounds = env_count("PEERCHAIN_BENCH_ROUNDS", 5, 2).max(1);
    let senders_u32 = u32::try_from(senders).expect("sender count fits u32");
    let genesis = easy_genesis(senders_u32, txs);
    let now = late_clock_ms(&genesis);

    let t = Instant::now();
    let mut builder = ChainBuilder::new(genesis.clone(), senders_u32);
    let block: Block = sealed_child(&mut builder, txs, 1, Address([0xA0; 20]));
    println!(
        "block_validation: 1 block x {txs} transactions from {senders} senders, {} cores, \
         {rounds} rounds (block built in {})",
        cores(),
        fmt_duration(t.elapsed())
    );

    // The parent state: a store at genesis, on disk with the default configuration.
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&StoreConfig::new(dir.path().join("db")), &genesis).expect("store");

    let mut validate = Vec::new();
    let mut check_only = Vec::new();
    let mut sigs = Vec::new();
    let mut import = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        check_body(&block, &genesis).expect("body valid");
        let t1 = Instant::now();
        let delta = apply_block(&store, &genesis, &block).expect("block applies");
        validate.push(t0.elapsed());
        check_only.push(t1 - t0);
        std::hint::black_box(delta);

        let t0 = Instant::now();
        let ok = verify_many(&block.transactions);
        sigs.push(t0.elapsed());
        assert!(ok.iter().all(|v| *v), "every signature valid");

        let (_dir, mut chain) = fresh_chain(&genesis);
        let copy = block.clone();
        let t0 = Instant::now();
        let out = chain.import(copy, None, now).expect("import");
        import.push(t0.elapsed());
        assert_eq!(out[0].verdict, Verdict::Accepted { on_main: true });
        assert_eq!(chain.tip(), block.hash());
    }

    let total = |v: &[Duration]| v.iter().sum::<Duration>();
    table_header("tx");
    table_row(
        "check_body + apply_block (validation)",
        rounds,
        total(&validate),
        txs,
    );
    table_row(
        "  of which check_body (incl. signatures)",
        rounds,
        total(&check_only),
        txs,
    );
    table_row("verify_many (signatures alone)", rounds, total(&sigs), txs);
    table_row(
        "Chain::import (validation + store commit)",
        rounds,
        total(&import),
        txs,
    );
    let (mv, ms, mi) = (
        median(&mut validate),
        median(&mut sigs),
        median(&mut import),
    );
    table_rule();
    println!(
        "medians: validation {}, signatures {}, import {}",
        fmt_duration(mv),
        fmt_duration(ms),
        fmt_duration(mi)
    );
    let ratio = mv.as_secs_f64() / ms.as_secs_f64();
    println!(
        "ratio validation / signatures alone = {ratio:.3} (goal <= 1.2): {}",
        if ratio <= 1.2 { "met" } else { "NOT met" }
    );
    println!(
        "import including the commit: {:.0} tx/s ({:.2}x the signatures alone)",
        txs as f64 / mi.as_secs_f64(),
        mi.as_secs_f64() / ms.as_secs_f64()
    );
}
