//! Helpers shared by the consensus benchmarks (a module, not a bench target): sizes from the
//! environment, an easy-PoW dev genesis and sealed blocks built with valid transfers (adapted
//! from `tests/common`, which benches cannot import).
//!
//! When the binary is run without `--bench` (as `cargo test --all-targets` does), small smoke
//! sizes are used unless a variable says otherwise.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use peerchain_consensus::pow::mine_range;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Block, Genesis, Target, Transaction, U256};

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

/// Threads available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A dev genesis with `accounts` funded dev keys whose proof of work takes about two hashes,
/// allowing blocks of up to `max_block_txs` transactions.
pub fn easy_genesis(accounts: u32, max_block_txs: usize) -> Genesis {
    let mut g = Genesis::dev(accounts, 1_000_000_000, 2000);
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g.max_block_txs = g.max_block_txs.max(max_block_txs as u64);
    g.validate().expect("valid genesis");
    g
}

/// A clock far enough ahead that no bench block is from the future.
pub fn now(g: &Genesis) -> u64 {
    g.timestamp_ms + 1_000_000_000
}

/// Like [`ChainBuilder::transfers`] (same senders, recipients, amounts, fees and nonces), but
/// signed on every core.
pub fn transfers_par(b: &ChainBuilder, n: usize, salt: u64) -> Vec<Transaction> {
    let addresses: Vec<Address> = b.keys.iter().map(|k| k.address()).collect();
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
    let chunk = specs.len().div_ceil(cores()).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| {
                let addresses = &addresses;
                s.spawn(move || {
                    part.iter()
                        .map(|&(k, to, amount, fee, nonce)| {
                            b.keys[k].sign_transfer(
                                b.genesis.chain_id,
                                addresses[to],
                                amount,
                                fee,
                                nonce,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// The next sealed block of `b` with `txs` transfers paying `miner`; advances the builder.
pub fn sealed_child(b: &mut ChainBuilder, txs: usize, salt: u64, miner: Address) -> Block {
    let batch = transfers_par(b, txs, salt);
    let mut block = b.push(batch, miner);
    block.header.nonce = mine_range(&block.header, 0, u64::MAX).expect("easy target");
    b.tip = block.header.clone();
    block
}

/// Prints the header of the result table.
pub fn table_header() {
    println!(
        "{:<48} {:>6} {:>12} {:>12} {:>14}",
        "name", "iters", "total", "per iter", "tx/s"
    );
    println!("{}", "-".repeat(96));
}

/// Prints one row: `iters` runs over `txs` transactions each took `total`.
pub fn table_row(name: &str, iters: usize, total: Duration, txs: usize) {
    let per = total / iters.max(1) as u32;
    let rate = (txs * iters) as f64 / total.as_secs_f64().max(1e-12);
    println!(
        "{name:<48} {iters:>6} {:>12} {:>12} {rate:>14.0}",
        fmt_duration(total),
        fmt_duration(per)
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
