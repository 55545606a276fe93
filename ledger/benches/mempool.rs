//! Mempool admission throughput.
//!
//! 10,000 transfers (`PEERCHAIN_BENCH_TXS`) from 1,000 dev accounts (10 pending each, nonces in
//! order) admitted into an empty pool against the state in a store at genesis (the node checks
//! admissions against its store the same way):
//! - `add`: signature verified per transaction on the calling thread, then admission;
//! - `add_verified`: admission only (signature checked by the caller);
//! - `add_batch`: the whole batch, signatures on all cores (`verify_many`), then admission.
//!
//! Criterion prints admissions per second as `thrpt ... elem/s`.
//!
//! Run: `cargo bench -p peerchain-ledger --bench mempool`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Admitted, Genesis, Mempool, MempoolConfig, Store};
use peerchain_testkit::{env_count, transfers_par};

const SENDERS: u32 = 1_000;
const NOW_MS: u64 = 1_767_225_700_000;

fn main() {
    let n = env_count("PEERCHAIN_BENCH_TXS", 10_000, 1_000);
    let genesis = Genesis::dev(SENDERS, 1_000_000_000, 2_000);
    let builder = ChainBuilder::new(genesis.clone(), SENDERS);
    let txs = transfers_par(&builder, n, 1);
    let store = Store::temporary(&genesis).expect("temporary store");
    let config = MempoolConfig {
        max_count: n.max(MempoolConfig::default().max_count),
        max_bytes: usize::MAX,
        ..MempoolConfig::default()
    };
    println!("mempool: {n} transfers from {SENDERS} senders into an empty pool");

    // Every transaction must be admitted, or the figures would measure rejections.
    let mut check = Mempool::new(config.clone(), &genesis);
    for r in check.add_batch(txs.clone(), &store, NOW_MS) {
        assert!(
            matches!(r, Ok(Admitted::New { .. })),
            "admission failed: {r:?}"
        );
    }
    drop(check);

    // Defaults sized for these slow routines; command-line options override them.
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let mut g = c.benchmark_group("mempool");
    g.throughput(Throughput::Elements(n as u64));
    let fresh = || (Mempool::new(config.clone(), &genesis), txs.clone());
    g.bench_function(format!("add/{n}"), |b| {
        b.iter_batched(
            fresh,
            |(mut pool, txs)| {
                for tx in txs {
                    black_box(pool.add(tx, &store, NOW_MS).is_ok());
                }
                pool
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function(format!("add_verified/{n}"), |b| {
        b.iter_batched(
            fresh,
            |(mut pool, txs)| {
                for tx in txs {
                    black_box(pool.add_verified(tx, &store, NOW_MS).is_ok());
                }
                pool
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function(format!("add_batch/{n}"), |b| {
        b.iter_batched(
            fresh,
            |(mut pool, txs)| {
                black_box(pool.add_batch(txs, &store, NOW_MS));
                pool
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    c.final_summary();
}
