//! Mempool admission throughput.
//!
//! 10,000 transfers (`PEERCHAIN_BENCH_TXS`) from 1,000 dev accounts (10 pending each, nonces in
//! order) admitted into an empty pool against the state in a store at genesis (the node checks
//! admissions against its store the same way):
//! - `add`: signature verified per transaction on the calling thread, then admission;
//! - `add_verified`: admission only (signature checked by the caller);
//! - `add_batch`: the whole batch, signatures on all cores (`verify_many`), then admission.
//!
//! - `evicting/N`: a pool full at N transactions (`PEERCHAIN_BENCH_POOLS`, 10,000 and 100,000)
//!   admits 1,000 transfers from other senders that pay more, each evicting the cheapest
//!   tail (hostile peers, defect 8: the eviction used to scan the whole pool per admission;
//!   the time per admission should not grow with N).
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
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Transaction};
use peerchain_ledger::{Admitted, Genesis, Mempool, MempoolConfig, Store};
use peerchain_testkit::{env_count, env_counts, transfers_par};

const SENDERS: u32 = 1_000;
/// Extra funded senders whose transfers pay more than any in a full pool.
const RICH: u32 = 1_000;
/// Fee of the rich senders' transfers (the pool's pay 1 to 7).
const RICH_FEE: u64 = 100;
const NOW_MS: u64 = 1_767_225_700_000;

fn main() {
    let n = env_count("PEERCHAIN_BENCH_TXS", 10_000, 1_000);
    let genesis = Genesis::dev(SENDERS + RICH, 1_000_000_000, 2_000);
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
    evicting(&mut c, &genesis, &builder, &store);
    c.final_summary();
}

/// Admissions into a full pool, each evicting the cheapest tail.
fn evicting(c: &mut Criterion, genesis: &Genesis, builder: &ChainBuilder, store: &Store) {
    let rich: Vec<Transaction> = (SENDERS..SENDERS + RICH)
        .map(|i| Keypair::dev(i).sign_transfer(genesis.chain_id, Address([7; 20]), 1, RICH_FEE, 0))
        .collect();
    let mut g = c.benchmark_group("mempool");
    g.throughput(Throughput::Elements(u64::from(RICH)));
    for size in env_counts("PEERCHAIN_BENCH_POOLS", &[10_000, 100_000], &[1_000, 5_000]) {
        let config = MempoolConfig {
            max_count: size,
            max_bytes: usize::MAX,
            ..MempoolConfig::default()
        };
        let mut full = Mempool::new(config, genesis);
        for r in full.add_batch(transfers_par(builder, size, 2), store, NOW_MS) {
            assert!(matches!(r, Ok(Admitted::New { .. })), "filling: {r:?}");
        }
        assert_eq!(full.len(), size, "the pool is full");
        let mut check = full.clone();
        for tx in rich.iter().cloned() {
            assert!(
                matches!(
                    check.add_verified(tx, store, NOW_MS),
                    Ok(Admitted::New { .. })
                ),
                "a richer transfer evicts"
            );
        }
        assert_eq!(check.len(), size, "each admission evicted one");
        g.bench_function(format!("evicting/{size}"), |b| {
            b.iter_batched(
                // The pool's collections are persistent: the clone is O(1).
                || (full.clone(), rich.clone()),
                |(mut pool, txs)| {
                    for tx in txs {
                        black_box(pool.add_verified(tx, store, NOW_MS).is_ok());
                    }
                    pool
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}
