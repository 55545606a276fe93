//! Applying and committing full blocks to an on-disk sled store.
//!
//! Builds `PEERCHAIN_BENCH_BLOCKS` (3) consecutive blocks of `PEERCHAIN_BENCH_TXS` (20,000)
//! transfers from `PEERCHAIN_BENCH_SENDERS` (2,000) dev accounts, then, for each block in turn
//! on a fresh store in a temporary directory with the default `StoreConfig` (64 MiB cache,
//! fsync after every block), times `apply_block` against the store (the state transition) and
//! the commit (`put_block` + `connect_block`, each one sled transaction, then `write_txindex`,
//! the txindex entries the node writes once it has announced the block). The total counts
//! all of it; `connect_block` alone is what a node does before it announces the block.
//!
//! Run: `cargo bench -p peerchain-ledger --bench block_commit`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

use std::time::{Duration, Instant};

use peerchain_ledger::state::apply_block;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Block, BlockRecord, BlockStatus, Genesis, Store, StoreConfig};
use peerchain_testkit::{bench_mode, env_count, fmt_duration, mib, smoke_note, transfers_par};

fn main() {
    smoke_note();
    let txs = env_count("PEERCHAIN_BENCH_TXS", 20_000, 500);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 2_000, 50).max(1);
    let blocks = env_count("PEERCHAIN_BENCH_BLOCKS", 3, 3).max(1);
    let senders_u32 = u32::try_from(senders).expect("sender count fits u32");

    let genesis = Genesis::dev(senders_u32, 1_000_000_000, 2_000);
    let mut builder = ChainBuilder::new(genesis.clone(), senders_u32);
    let t = Instant::now();
    let built: Vec<Block> = (0..blocks)
        .map(|i| {
            let batch = transfers_par(&builder, txs, i as u64);
            builder.push(batch, Address([0xA0; 20]))
        })
        .collect();
    println!(
        "block_commit: {blocks} blocks x {txs} transactions from {senders} senders \
         (built and signed in {})",
        fmt_duration(t.elapsed())
    );

    let dir = tempfile::tempdir().expect("temporary directory");
    let config = StoreConfig::new(dir.path().join("db"));
    println!(
        "store: {} (cache {} MiB, sync_every_block {})",
        config.path.display(),
        config.cache_mb,
        config.sync_every_block
    );
    let store = Store::open(&config, &genesis).expect("open store");

    println!(
        "{:<6} {:>7} {:>12} {:>12} {:>14} {:>13} {:>12} {:>14} {:>14}",
        "block",
        "txs",
        "apply",
        "put_block",
        "connect_block",
        "write_txindex",
        "total",
        "apply tx/s",
        "total tx/s"
    );
    println!("{}", "-".repeat(114));
    let (mut sum_apply, mut sum_total) = (Duration::ZERO, Duration::ZERO);
    for block in &built {
        let t0 = Instant::now();
        let delta = apply_block(&store, &genesis, block).expect("block applies");
        let apply = t0.elapsed();

        let t1 = Instant::now();
        let parent = store.tip_record().expect("tip record");
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: parent.total_work.saturating_add(block.header.target.work()),
            status: BlockStatus::Valid,
            seq: store.next_seq().expect("seq"),
        };
        store.put_block(block, &record).expect("put_block");
        let put = t1.elapsed();
        let t2 = Instant::now();
        store.connect_block(block, &delta).expect("connect_block");
        let connect = t2.elapsed();
        let t3 = Instant::now();
        store.write_txindex().expect("write_txindex");
        let index = t3.elapsed();
        let total = t0.elapsed();
        sum_apply += apply;
        sum_total += total;

        let n = block.transactions.len() as f64;
        println!(
            "{:<6} {:>7} {:>12} {:>12} {:>14} {:>13} {:>12} {:>14.0} {:>14.0}",
            block.header.height,
            block.transactions.len(),
            fmt_duration(apply),
            fmt_duration(put),
            fmt_duration(connect),
            fmt_duration(index),
            fmt_duration(total),
            n / apply.as_secs_f64(),
            n / total.as_secs_f64()
        );
    }
    let all = (built.len() * txs) as f64;
    println!("{}", "-".repeat(114));
    println!(
        "summary: {} transactions, apply {:.0} tx/s, commit {:.0} tx/s, apply+commit {:.0} tx/s \
         ({} per block)",
        built.len() * txs,
        all / sum_apply.as_secs_f64(),
        all / (sum_total - sum_apply).as_secs_f64(),
        all / sum_total.as_secs_f64(),
        fmt_duration(sum_total / built.len() as u32)
    );
    println!(
        "store size on disk: {:.1} MiB",
        mib(store.size_on_disk().expect("size"))
    );
    if !bench_mode() {
        store
            .verify_consistency(&genesis)
            .expect("store consistent after the smoke run");
    }
}
