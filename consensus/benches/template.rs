//! What a node's miner template costs under load: a rebuild (every pending transaction chosen
//! again by fee, and the Merkle root) against an extension with the transactions admitted
//! since (`TemplateBuilder::extend`, then the template handed to the miner).
//!
//! A chain with `PEERCHAIN_BENCH_TXS` (10,000) transfers of `PEERCHAIN_BENCH_SENDERS` (60)
//! senders: half pending at the start, the rest admitted in chunks of `PEERCHAIN_BENCH_CHUNK`
//! (150: 3,000 transfers a second for 50 ms). After each chunk it times a rebuild and an
//! extension of a template built before the chunk.
//!
//! Run: `cargo bench -p peerchain-consensus --bench template`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "benchmarks: the crate's no-panic lints are for consensus code"
)]

use std::time::{Duration, Instant};

use peerchain_consensus::{Chain, ChainConfig, TemplateBuilder};
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Store, Transaction};
use peerchain_testkit::{
    easy_genesis, env_count, fmt_duration, late_clock_ms, smoke_note, transfers_par,
};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    smoke_note();
    let txs = env_count("PEERCHAIN_BENCH_TXS", 10_000, 600);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 60, 10);
    let chunk = env_count("PEERCHAIN_BENCH_CHUNK", 150, 50).max(1);
    let genesis = easy_genesis(u32::try_from(senders).expect("fits"), txs);
    let now = late_clock_ms(&genesis);
    let store = Store::temporary(&genesis).expect("store");
    let mut chain = Chain::open(store, genesis.clone(), ChainConfig::default()).expect("chain");
    let all = transfers_par(
        &ChainBuilder::new(genesis.clone(), u32::try_from(senders).expect("fits")),
        txs,
        1,
    );
    let (first, rest) = all.split_at(txs / 2);
    let admitted = chain.submit_batch(first.to_vec(), now);
    assert!(
        admitted.iter().all(Result::is_ok),
        "the first half is admitted"
    );
    let miner = Address([7; 20]);
    println!(
        "template: {senders} senders, {} pending at the start, then {} admitted in chunks of {chunk}",
        first.len(),
        rest.len()
    );
    let (mut rebuilds, mut extensions) = (Vec::new(), Vec::new());
    for part in rest.chunks(chunk) {
        let mut builder = TemplateBuilder::new(&chain, miner, now).expect("template");
        let ids: Vec<_> = part.iter().map(Transaction::txid).collect();
        let results = chain.submit_batch(part.to_vec(), now);
        assert!(results.iter().all(Result::is_ok), "every chunk is admitted");
        let t = Instant::now();
        let appended = builder.extend(&chain, &ids, now).expect("extend");
        let template = builder.template();
        extensions.push(t.elapsed());
        assert_eq!(
            appended,
            part.len(),
            "each admitted transfer is next for its sender"
        );
        let t = Instant::now();
        let rebuilt = TemplateBuilder::new(&chain, miner, now)
            .expect("template")
            .template();
        rebuilds.push(t.elapsed());
        assert_eq!(rebuilt.transactions.len(), template.transactions.len());
    }
    println!(
        "pending at the renewal: {} to {}; over {} renewals (medians):",
        first.len() + chunk.min(rest.len()),
        txs,
        rebuilds.len()
    );
    let (r, e) = (median(rebuilds), median(extensions));
    println!(
        "  rebuild (choose every transaction again, Merkle root):   {}",
        fmt_duration(r)
    );
    println!(
        "  extension (append the chunk, Merkle root, template copy): {}",
        fmt_duration(e)
    );
    println!(
        "  ratio {:.1}x; a renewal every 50 ms costs {:.1}% of a core rebuilding, {:.1}% extending",
        r.as_secs_f64() / e.as_secs_f64().max(1e-9),
        r.as_secs_f64() / 0.05 * 100.0,
        e.as_secs_f64() / 0.05 * 100.0
    );
}
