//! Mining hash rate on one thread: `HeaderHasher` (which hashes the nonce-independent first 64
//! header bytes once per template) next to raw `sha2::Sha256::digest` of the 144-byte header.
//!
//! Criterion prints hashes per second (`thrpt ... elem/s`) for each; then a summary measures
//! the three loops again, interleaved, for `PEERCHAIN_BENCH_SECS` (1) seconds each over three
//! rounds, and prints the ratio `meets_target / raw SHA-256` (goal: above 0.9).
//!
//! Run: `cargo bench -p peerchain-consensus --bench mining`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use peerchain_consensus::pow::HeaderHasher;
use peerchain_ledger::types::HEADER_LEN;
use peerchain_ledger::{Address, BlockHeader, Genesis, Hash};
use peerchain_testkit::{bench_mode, env_count, fmt_duration, smoke_note};
use sha2::{Digest, Sha256};

/// Offset of the nonce in the header encoding (SPEC section 1).
const NONCE_OFFSET: usize = 116;

fn template() -> BlockHeader {
    let g = Genesis::dev(2, 1_000_000, 2000);
    BlockHeader {
        version: 1,
        height: 123_456,
        prev_hash: Hash([0x5a; 32]),
        tx_root: Hash([0xc3; 32]),
        timestamp_ms: g.timestamp_ms + 246_912_000,
        target: g.initial_target,
        nonce: 0,
        miner: Address([0x42; 20]),
    }
}

fn raw_hash(buf: &mut [u8; HEADER_LEN], nonce: u64) -> [u8; 32] {
    buf[NONCE_OFFSET..NONCE_OFFSET + 8].copy_from_slice(&nonce.to_le_bytes());
    Sha256::digest(&buf[..]).into()
}

fn criterion_benches(c: &mut Criterion, header: &BlockHeader) {
    let hasher = HeaderHasher::new(header);
    let mut buf = header.encode();
    let mut g = c.benchmark_group("mining");
    g.throughput(Throughput::Elements(1));
    let mut nonce = 0u64;
    g.bench_function("header_hasher_hash_with_nonce", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            hasher.hash_with_nonce(black_box(nonce))
        })
    });
    g.bench_function("header_hasher_meets_target", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            hasher.meets_target(black_box(nonce))
        })
    });
    g.bench_function("raw_sha256_digest_144", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            raw_hash(black_box(&mut buf), nonce)
        })
    });
    g.finish();
}

/// Runs `step` for about `time`; returns hashes per second.
fn measure(time: Duration, mut step: impl FnMut(u64) -> u8) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    let mut acc = 0u8;
    loop {
        for _ in 0..4096 {
            acc ^= step(done);
            done += 1;
        }
        let elapsed = start.elapsed();
        if elapsed >= time {
            black_box(acc);
            return done as f64 / elapsed.as_secs_f64();
        }
    }
}

fn summary(header: &BlockHeader) {
    let secs = env_count("PEERCHAIN_BENCH_SECS", 1, 0);
    let time = if secs == 0 {
        Duration::from_millis(20)
    } else {
        Duration::from_secs(secs as u64)
    };
    let rounds = if bench_mode() { 3 } else { 1 };
    let hasher = HeaderHasher::new(header);
    let mut buf = header.encode();
    let (mut with_nonce, mut meets, mut raw) = (0f64, 0f64, 0f64);
    for _ in 0..rounds {
        with_nonce = with_nonce.max(measure(time, |n| hasher.hash_with_nonce(n).0[0]));
        meets = meets.max(measure(time, |n| u8::from(hasher.meets_target(n))));
        raw = raw.max(measure(time, |n| raw_hash(&mut buf, n)[0]));
    }
    println!();
    smoke_note();
    println!(
        "mining summary (one thread, best of {rounds} rounds x {} per loop)",
        fmt_duration(time)
    );
    println!("{:<44} {:>16} {:>10}", "loop", "hashes/s", "ratio");
    println!("{}", "-".repeat(72));
    println!(
        "{:<44} {:>16.0} {:>10.3}",
        "raw Sha256::digest(144 bytes)", raw, 1.0
    );
    println!(
        "{:<44} {:>16.0} {:>10.3}",
        "HeaderHasher::hash_with_nonce",
        with_nonce,
        with_nonce / raw
    );
    println!(
        "{:<44} {:>16.0} {:>10.3}",
        "HeaderHasher::meets_target",
        meets,
        meets / raw
    );
    let ratio = meets / raw;
    println!(
        "ratio meets_target / raw SHA-256 = {ratio:.3} (goal > 0.9): {}",
        if ratio > 0.9 { "met" } else { "NOT met" }
    );
}

fn main() {
    let header = template();
    let mut c = Criterion::default().configure_from_args();
    criterion_benches(&mut c, &header);
    c.final_summary();
    if !std::env::args().any(|a| a == "--list") {
        summary(&header);
    }
}
