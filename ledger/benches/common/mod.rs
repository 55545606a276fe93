//! Helpers shared by the ledger benchmarks (a module, not a bench target).
//!
//! Sizes come from environment variables so a CI-size run is quick. When the binary is run
//! without `--bench` (as `cargo test --all-targets` does), the small "smoke" sizes are used
//! unless a variable says otherwise.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use peerchain_ledger::Transaction;
use peerchain_ledger::testkit::ChainBuilder;
use rayon::prelude::*;

/// Whether the binary runs as a benchmark (`cargo bench`), not as a smoke test (`cargo test`).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Says so when the sizes are smoke-test sizes from a `cargo test` build (not optimised):
/// the figures printed then are no measurement.
pub fn smoke_note() {
    if !bench_mode() {
        println!(
            "(smoke run without --bench: small sizes, test profile; figures are not measurements, \
             run with `cargo bench`)"
        );
    }
}

/// Reads `name` as a count: the variable when set, else `full` under `cargo bench` and `smoke`
/// otherwise.
pub fn env_count(name: &str, full: usize, smoke: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) if bench_mode() => full,
        Err(_) => smoke,
    }
}

/// Like [`ChainBuilder::transfers`] (same senders, recipients, amounts, fees and nonces), but
/// signed on every core so that building large blocks stays quick.
pub fn transfers_par(b: &ChainBuilder, n: usize, salt: u64) -> Vec<Transaction> {
    let addresses: Vec<_> = b.keys.iter().map(|k| k.address()).collect();
    let len = b.keys.len();
    let mut nonces: HashMap<usize, u64> = HashMap::new();
    let specs: Vec<(usize, usize, u64, u64, u64)> = (0..n)
        .map(|i| {
            let k = i % len;
            let nonce = nonces
                .entry(k)
                .or_insert_with(|| b.state.get(&addresses[k]).map_or(0, |a| a.nonce));
            let spec = (
                k,
                (i + 1 + salt as usize) % len,
                1 + (salt + i as u64) % 100,
                1 + (i as u64 % 7),
                *nonce,
            );
            *nonce += 1;
            spec
        })
        .collect();
    specs
        .par_iter()
        .with_min_len(64)
        .map(|&(k, to, amount, fee, nonce)| {
            b.keys[k].sign_transfer(b.genesis.chain_id, addresses[to], amount, fee, nonce)
        })
        .collect()
}

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    status_kb("VmRSS:").map(|kb| kb * 1024)
}

/// Peak resident set size of this process in bytes (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    status_kb("VmHWM:").map(|kb| kb * 1024)
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Prints the header of the result table.
pub fn table_header() {
    println!(
        "{:<44} {:>10} {:>12} {:>14}  unit",
        "name", "iterations", "total", "per second"
    );
    println!("{}", "-".repeat(92));
}

/// Prints one row: `iterations` operations took `total`.
pub fn table_row(name: &str, iterations: u64, total: Duration, unit: &str) {
    let rate = iterations as f64 / total.as_secs_f64().max(1e-12);
    println!(
        "{name:<44} {iterations:>10} {:>12} {rate:>14.0}  {unit}/s",
        fmt_duration(total)
    );
}

/// A duration as seconds or milliseconds with three decimals.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    }
}
