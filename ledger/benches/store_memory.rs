//! Resident memory of the process while the sled store takes many transaction records.
//!
//! Writes `PEERCHAIN_BENCH_BLOCKS` (100) blocks of `PEERCHAIN_BENCH_TXS` (10,000) transfers
//! (1,000,000 transaction records: txindex + history rows) through `apply_block` +
//! `put_block` + `connect_block` to an on-disk store with the default `StoreConfig` (64 MiB
//! cache, fsync every block), printing `VmRSS` every `PEERCHAIN_BENCH_EVERY` blocks (a tenth
//! of the blocks by default) and the growth per record. sled 0.34.7's `apply_batch` grew RSS by
//! about 3.4 KB per record; multi-tree transactions (what the store uses) should stay flat
//! once the page cache is full.
//!
//! Run: `cargo bench -p peerchain-ledger --bench store_memory`
//! Quick: `PEERCHAIN_BENCH_BLOCKS=10 PEERCHAIN_BENCH_TXS=1000 cargo bench -p peerchain-ledger --bench store_memory`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

use std::time::Instant;

use peerchain_ledger::state::apply_block;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, BlockRecord, BlockStatus, Genesis, Store, StoreConfig};
use peerchain_testkit::{
    env_count, fmt_duration, mib, peak_rss_bytes, rss_bytes, smoke_note, transfers_par,
};

fn main() {
    smoke_note();
    let blocks = env_count("PEERCHAIN_BENCH_BLOCKS", 100, 6).max(1);
    let txs = env_count("PEERCHAIN_BENCH_TXS", 10_000, 200);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 2_000, 50).max(1);
    let every = env_count(
        "PEERCHAIN_BENCH_EVERY",
        (blocks / 10).max(1),
        (blocks / 3).max(1),
    )
    .max(1);
    let senders_u32 = u32::try_from(senders).expect("sender count fits u32");

    let genesis = Genesis::dev(senders_u32, 1_000_000_000, 2_000);
    let mut builder = ChainBuilder::new(genesis.clone(), senders_u32);
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = StoreConfig::new(dir.path().join("db"));
    let store = Store::open(&config, &genesis).expect("open store");
    println!(
        "store_memory: {blocks} blocks x {txs} transactions = {} records, {senders} senders, \
         cache {} MiB, sync_every_block {}",
        blocks * txs,
        config.cache_mb,
        config.sync_every_block
    );
    let base = rss_bytes().expect("VmRSS readable");
    println!("RSS after opening the store: {:.1} MiB", mib(base));
    println!(
        "{:>7} {:>10} {:>10} {:>12} {:>12} {:>14} {:>12} {:>12}",
        "blocks",
        "records",
        "RSS MiB",
        "growth MiB",
        "B/record",
        "B/rec since 1st",
        "disk MiB",
        "elapsed"
    );
    println!("{}", "-".repeat(100));

    let start = Instant::now();
    let mut write_time = std::time::Duration::ZERO;
    let mut first: Option<(usize, u64)> = None;
    let mut last_rss = base;
    for i in 0..blocks {
        let batch = transfers_par(&builder, txs, i as u64);
        let block = builder.push(batch, Address([0xA0; 20]));
        let t = Instant::now();
        let delta = apply_block(&store, &genesis, &block).expect("block applies");
        let parent = store.tip_record().expect("tip record");
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: parent.total_work.saturating_add(block.header.target.work()),
            status: BlockStatus::Valid,
            seq: store.next_seq().expect("seq"),
        };
        store.put_block(&block, &record).expect("put_block");
        store.connect_block(&block, &delta).expect("connect_block");
        write_time += t.elapsed();
        drop(block);

        let done = i + 1;
        if done % every == 0 || done == blocks {
            let records = done * txs;
            let rss = rss_bytes().expect("VmRSS readable");
            last_rss = rss;
            let growth = rss.saturating_sub(base);
            let since_first = match first {
                Some((r0, rss0)) if records > r0 => {
                    format!("{:.0}", (rss as f64 - rss0 as f64) / (records - r0) as f64)
                }
                _ => "-".to_string(),
            };
            if first.is_none() {
                first = Some((records, rss));
            }
            println!(
                "{:>7} {:>10} {:>10.1} {:>12.1} {:>12.0} {:>14} {:>12.1} {:>12}",
                done,
                records,
                mib(rss),
                mib(growth),
                growth as f64 / records.max(1) as f64,
                since_first,
                mib(store.size_on_disk().expect("size")),
                fmt_duration(start.elapsed())
            );
        }
    }
    let records = blocks * txs;
    println!("{}", "-".repeat(100));
    println!(
        "summary: {records} records, RSS {:.1} MiB (peak {:.1} MiB), growth {:.1} MiB = {:.0} \
         bytes/record; store writes {:.0} tx/s",
        mib(last_rss),
        mib(peak_rss_bytes().unwrap_or(0).max(last_rss)),
        mib(last_rss.saturating_sub(base)),
        last_rss.saturating_sub(base) as f64 / records.max(1) as f64,
        records as f64 / write_time.as_secs_f64()
    );
    if let Some((r0, rss0)) = first
        && records > r0
    {
        println!(
            "marginal growth after the first checkpoint ({r0} records; includes the 64 MiB page \
             cache filling up): {:.0} bytes/record (apply_batch measured ~3,400)",
            (last_rss as f64 - rss0 as f64) / (records - r0) as f64
        );
    }
}
