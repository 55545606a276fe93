//! A reorg of 100 blocks: branch A of `PEERCHAIN_BENCH_BLOCKS` (100) blocks is the main chain,
//! branch B of 101 blocks from the same parent (genesis) arrives; importing B's last block
//! makes B heavier, and that import is timed: check the new block, disconnect 100 blocks
//! through their undo data, connect 101, return A's transactions to the mempool.
//!
//! Blocks carry `PEERCHAIN_BENCH_TXS` transfers each, 2,000 by default: with full
//! 20,000-transaction blocks the setup alone (signing and importing 4,020,000 transactions)
//! takes well over the few minutes a benchmark run should, so full blocks are opt-in:
//! `PEERCHAIN_BENCH_TXS=20000`. The two branches carry different transactions from the same
//! `PEERCHAIN_BENCH_SENDERS` (2,000) senders. The store is on disk with the default
//! `StoreConfig` (64 MiB cache, fsync every block).
//!
//! Run: `cargo bench -p peerchain-consensus --bench reorg`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

mod common;

use std::time::Instant;

use common::sealed_child;
use peerchain_consensus::{Chain, ChainConfig, ChainEvent, Verdict};
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Block, Store, StoreConfig};
use peerchain_testkit::{
    bench_mode, cores, easy_genesis, env_count, fmt_duration, late_clock_ms, smoke_note,
    table_header, table_row, table_rule,
};

fn main() {
    smoke_note();
    let txs = env_count("PEERCHAIN_BENCH_TXS", 2_000, 40);
    let depth = env_count("PEERCHAIN_BENCH_BLOCKS", 100, 5).max(1);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 2_000, 20).max(1);
    let senders_u32 = u32::try_from(senders).expect("sender count fits u32");
    let genesis = easy_genesis(senders_u32, txs);
    let now = late_clock_ms(&genesis);
    println!(
        "reorg: branch A {depth} blocks, branch B {} blocks, {txs} transactions per block{} \
         from {senders} senders, {} cores",
        depth + 1,
        if txs < 20_000 {
            " (not full blocks: set PEERCHAIN_BENCH_TXS=20000 for full ones)"
        } else {
            ""
        },
        cores()
    );

    let setup = Instant::now();
    let mut a = ChainBuilder::new(genesis.clone(), senders_u32);
    let mut b = a.clone();
    let branch_a: Vec<Block> = (0..depth)
        .map(|i| sealed_child(&mut a, txs, i as u64, Address([0xA0; 20])))
        .collect();
    let branch_b: Vec<Block> = (0..=depth)
        .map(|i| sealed_child(&mut b, txs, 1_000_037 + i as u64, Address([0xB0; 20])))
        .collect();
    let built = setup.elapsed();

    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(&StoreConfig::new(dir.path().join("db")), &genesis).expect("store");
    let mut chain = Chain::open(store, genesis.clone(), ChainConfig::default()).expect("chain");
    let t = Instant::now();
    for block in &branch_a {
        let out = chain.import(block.clone(), None, now).expect("import A");
        assert_eq!(out[0].verdict, Verdict::Accepted { on_main: true });
    }
    let import_a = t.elapsed();
    let t = Instant::now();
    for block in &branch_b[..depth] {
        let out = chain.import(block.clone(), None, now).expect("import B");
        assert_eq!(out[0].verdict, Verdict::Accepted { on_main: false });
    }
    let import_b = t.elapsed();
    assert_eq!(chain.tip(), branch_a[depth - 1].hash());
    chain.take_events();
    println!(
        "setup: built and signed {} blocks in {}, imported A in {}, stored B[..{depth}] in {}",
        2 * depth + 1,
        fmt_duration(built),
        fmt_duration(import_a),
        fmt_duration(import_b)
    );

    let last = branch_b[depth].clone();
    let t = Instant::now();
    let out = chain
        .import(last, None, now)
        .expect("import B's last block");
    let reorg = t.elapsed();
    assert_eq!(out[0].verdict, Verdict::Accepted { on_main: true });
    assert_eq!(chain.tip(), branch_b[depth].hash());
    let events = chain.take_events();
    let (disconnected, connected) = events
        .iter()
        .find_map(|e| match e {
            ChainEvent::Reorg {
                disconnected,
                connected,
                ..
            } => Some((disconnected.len(), connected.len())),
            _ => None,
        })
        .expect("a reorg event");
    assert_eq!((disconnected, connected), (depth, depth + 1));

    table_header("tx");
    table_row("import A (extend the main chain)", depth, import_a, txs);
    table_row(
        &format!("reorg: disconnect {disconnected}, connect {connected}"),
        1,
        reorg,
        (disconnected + connected) * txs,
    );
    table_rule();
    println!(
        "reorg of {disconnected} blocks to a branch of {connected}: {} ({} per block moved, \
         {} transactions reverted and {} applied; mempool now {} transactions)",
        fmt_duration(reorg),
        fmt_duration(reorg / (disconnected + connected) as u32),
        disconnected * txs,
        connected * txs,
        chain.mempool().len()
    );
    if !bench_mode() {
        chain
            .store()
            .verify_consistency(&genesis)
            .expect("store consistent after the reorg");
    }
}
