//! Signature verification throughput: the SPEC rule (`verify_transaction`, `verify_many`) next
//! to raw ed25519-dalek on the same messages.
//!
//! Groups (criterion prints transactions per second as `thrpt ... elem/s`):
//! - `signatures/single_core`: 1,000 transactions verified one by one on one thread:
//!   `verify_transaction` (key decompression + weak-key check + `verify_strict`), raw
//!   `VerifyingKey::verify_strict` with keys parsed in advance, and raw `from_bytes` +
//!   `verify_strict` (the same work as `verify_transaction` minus the weak-key check).
//! - `signatures/many`: 20,000 transactions (`PEERCHAIN_BENCH_TXS`): `verify_many` on the rayon
//!   pool (all cores), raw `verify_strict` on the rayon pool, and raw
//!   `ed25519_dalek::verify_batch` on one thread (for comparison only: consensus does not use
//!   it, see `ledger/src/crypto.rs`).
//!
//! Run: `cargo bench -p peerchain-ledger --bench signatures`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use ed25519_dalek::VerifyingKey;
use peerchain_ledger::crypto::{Keypair, verify_many, verify_transaction};
use peerchain_ledger::{Address, Transaction};
use peerchain_testkit::env_count;
use rayon::prelude::*;

const SINGLE: usize = 1_000;
const SENDERS: u32 = 2_000;

/// A transaction with its message, parsed key and signature in the raw dalek types.
struct Raw {
    message: Vec<u8>,
    key: VerifyingKey,
    key_bytes: [u8; 32],
    signature: ed25519_dalek::Signature,
}

fn signed(n: usize) -> Vec<Transaction> {
    let keys: Vec<Keypair> = (0..SENDERS).map(Keypair::dev).collect();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let k = &keys[i % keys.len()];
            let to = Address([(i % 251) as u8; 20]);
            k.sign_transfer(
                7710,
                to,
                1 + (i as u64 % 100),
                1 + (i as u64 % 7),
                (i / keys.len()) as u64,
            )
        })
        .collect()
}

fn raw(txs: &[Transaction]) -> Vec<Raw> {
    txs.iter()
        .map(|tx| Raw {
            message: tx.signing_message().to_vec(),
            key: VerifyingKey::from_bytes(&tx.from.0).expect("dev key decompresses"),
            key_bytes: tx.from.0,
            signature: ed25519_dalek::Signature::from_bytes(&tx.signature.0),
        })
        .collect()
}

fn benches(c: &mut Criterion, txs: &[Transaction]) {
    let raws = raw(txs);
    assert!(
        verify_many(txs).iter().all(|ok| *ok),
        "every signature is valid"
    );

    let single = SINGLE.min(txs.len());
    let mut g = c.benchmark_group("signatures/single_core");
    g.throughput(Throughput::Elements(single as u64));
    g.bench_function("verify_transaction", |b| {
        b.iter(|| {
            for tx in &txs[..single] {
                black_box(verify_transaction(black_box(tx)));
            }
        })
    });
    g.bench_function("dalek_verify_strict", |b| {
        b.iter(|| {
            for r in &raws[..single] {
                black_box(
                    r.key
                        .verify_strict(black_box(&r.message), &r.signature)
                        .is_ok(),
                );
            }
        })
    });
    g.bench_function("dalek_from_bytes+verify_strict", |b| {
        b.iter(|| {
            for r in &raws[..single] {
                let key = VerifyingKey::from_bytes(black_box(&r.key_bytes)).expect("valid key");
                black_box(key.verify_strict(&r.message, &r.signature).is_ok());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("signatures/many");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.bench_function(format!("verify_many_all_cores/{}", txs.len()), |b| {
        b.iter(|| black_box(verify_many(black_box(txs))))
    });
    g.bench_function(
        format!("dalek_verify_strict_rayon_all_cores/{}", txs.len()),
        |b| {
            b.iter(|| {
                let ok: Vec<bool> = raws
                    .par_iter()
                    .with_min_len(64)
                    .map(|r| r.key.verify_strict(&r.message, &r.signature).is_ok())
                    .collect();
                black_box(ok)
            })
        },
    );
    let messages: Vec<&[u8]> = raws.iter().map(|r| r.message.as_slice()).collect();
    let signatures: Vec<ed25519_dalek::Signature> = raws.iter().map(|r| r.signature).collect();
    let keys: Vec<VerifyingKey> = raws.iter().map(|r| r.key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).expect("batch verifies");
    g.bench_function(
        format!("dalek_verify_batch_one_thread/{}", txs.len()),
        |b| {
            b.iter(|| {
                black_box(ed25519_dalek::verify_batch(
                    black_box(&messages),
                    &signatures,
                    &keys,
                ))
            })
        },
    );
    g.finish();
}

fn main() {
    let n = env_count("PEERCHAIN_BENCH_TXS", 20_000, 1_000);
    println!(
        "signatures: {n} transactions from {SENDERS} dev keys, rayon pool of {} threads",
        rayon::current_num_threads()
    );
    let txs = signed(n);
    // Defaults sized for these slow routines; command-line options (e.g. `--sample-size`,
    // `--measurement-time`) override them.
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .configure_from_args();
    benches(&mut c, &txs);
    c.final_summary();
}
