//! What one receiver's chain thread spends on a compact block whose transactions it already
//! holds (issue 13, goal 2): the work `propagation_processes` runs nine times at once on two
//! cores, timed here alone, in one process, without the network or the noise of nine others.
//!
//! A receiving `Chain` (an on-disk store configured as `peerchain node` configures it) admits
//! `PEERCHAIN_BENCH_TXS` (5,000) transfers from `PEERCHAIN_BENCH_SENDERS` (50) senders, as
//! gossip would; a builder on the same genesis puts the same transfers in a sealed block. The
//! receiver then takes the block as `ChainService` does: the block rebuilt from its mempool
//! (`Mempool::rebuild`), `Chain::prepare_relay_rebuilt` (the checks before the early relay),
//! `Chain::import_relayable` (the state applied, the block stored and connected, the mempool
//! updated), the events taken, and the mempool snapshot the node published before the block
//! dropped (the pool it held is freed then). Each of `PEERCHAIN_BENCH_ROUNDS` (20) rounds
//! does this for a new block; the store grows as it would. It prints the median and the
//! slowest round of each stage and of their sum; the store-writer's work (txindex, saved
//! mempool) is timed apart, since it runs on another thread after the block.
//!
//! Run: `cargo bench -p peerchain --bench block_receipt`. Without `--bench` a smoke form runs
//! 300 transfers, 3 rounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "a benchmark: a failed setup is a panic with its message"
)]

use std::time::{Duration, Instant};

use peerchain_consensus::pow::mine_range;
use peerchain_consensus::{Chain, ChainConfig};
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Block, Store, StoreConfig};
use peerchain_network::CompactBlock;
use peerchain_testkit::{
    CpuTimes, easy_genesis, env_count, fmt_duration, late_clock_ms, smoke_note, steal_note,
    transfers_par,
};

/// The stages of a receipt, in order.
const STAGES: [&str; 6] = [
    "rebuild from the mempool",
    "checks before relay",
    "import (state, store, mempool)",
    "events taken",
    "old snapshot dropped",
    "store-writer (txindex, saved mempool)",
];

fn main() {
    smoke_note();
    let txs = env_count("PEERCHAIN_BENCH_TXS", 5_000, 300);
    let senders = u32::try_from(env_count("PEERCHAIN_BENCH_SENDERS", 50, 10)).expect("fits");
    let rounds = env_count("PEERCHAIN_BENCH_ROUNDS", 20, 3).max(1);
    let genesis = easy_genesis(senders, txs);
    let now = late_clock_ms(&genesis);
    let dir = tempfile::tempdir().expect("temporary directory");
    // As `peerchain node` opens it: 64 MiB of cache, sled's flush every 500 ms.
    let config = StoreConfig {
        sync_every_block: false,
        ..StoreConfig::new(dir.path())
    };
    let store = Store::open(&config, &genesis).expect("store");
    let mut chain = Chain::open(store, genesis.clone(), ChainConfig::default()).expect("chain");
    let mut builder = ChainBuilder::new(genesis.clone(), senders);
    println!(
        "block_receipt: {rounds} blocks of {txs} transfers from {senders} senders, each held \
         in the receiver's mempool"
    );
    let mut times: Vec<[Duration; 6]> = Vec::with_capacity(rounds);
    let host_before = CpuTimes::now();
    for round in 0..rounds {
        let batch = transfers_par(&builder, txs, round as u64);
        let admitted = chain.submit_batch(batch.clone(), now);
        assert!(
            admitted.iter().all(Result::is_ok),
            "every transfer is admitted"
        );
        write_behind(&mut chain);
        let block = sealed(&mut builder, batch);
        times.push(receive(&mut chain, &block, now));
    }
    report(&times);
    println!("  {} during the rounds", steal_note(host_before));
}

/// The next sealed block of `builder` holding `txs`.
fn sealed(builder: &mut ChainBuilder, txs: Vec<peerchain_ledger::Transaction>) -> Block {
    let mut block = builder.push(txs, Address([7; 20]));
    block.header.nonce = mine_range(&block.header, 0, u64::MAX).expect("easy target");
    builder.tip = block.header.clone();
    block
}

/// One block taken as a node's chain thread takes it; each stage's time.
fn receive(chain: &mut Chain, block: &Block, now: u64) -> [Duration; 6] {
    let compact = CompactBlock::of(block);
    let snapshot = chain.mempool().clone();
    let mut t = [Duration::ZERO; 6];
    let start = Instant::now();
    let rebuilt = chain
        .mempool()
        .rebuild(compact.header.clone(), &compact.txids)
        .expect("the mempool holds every transfer");
    t[0] = start.elapsed();
    let start = Instant::now();
    let checked = chain
        .prepare_relay_rebuilt(rebuilt, now)
        .unwrap_or_else(|_| panic!("the block is relayable"));
    t[1] = start.elapsed();
    let start = Instant::now();
    let imported = chain
        .import_relayable(checked, Some("peer".to_owned()), now)
        .expect("the import");
    t[2] = start.elapsed();
    assert_eq!(imported.len(), 1, "the block is imported");
    assert_eq!(chain.tip(), block.hash(), "the block is the tip");
    assert!(chain.mempool().is_empty(), "the block confirmed the pool");
    let start = Instant::now();
    drop(chain.take_events());
    t[3] = start.elapsed();
    let start = Instant::now();
    drop(snapshot);
    t[4] = start.elapsed();
    let start = Instant::now();
    write_behind(chain);
    t[5] = start.elapsed();
    t
}

/// The store-writer's share: the saved mempool's changes and the pending txindex.
fn write_behind(chain: &mut Chain) {
    chain.sync_saved_mempool().expect("saved mempool");
    chain.write_txindex().expect("txindex");
}

fn report(times: &[[Duration; 6]]) {
    let chain_thread = |t: &[Duration; 6]| t[..5].iter().sum::<Duration>();
    let per_round: Vec<String> = times
        .iter()
        .map(|t| format!("{:.1}", chain_thread(t).as_secs_f64() * 1e3))
        .collect();
    println!("  chain thread per round, ms: {}", per_round.join(" "));
    println!("  {:<40} {:>12} {:>12}", "stage", "median", "slowest");
    for (i, name) in STAGES.iter().enumerate() {
        line(name, times.iter().map(|t| t[i]).collect());
    }
    line(
        "chain thread in all (the first five)",
        times.iter().map(chain_thread).collect(),
    );
}

fn line(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "  {:<40} {:>12} {:>12}",
        name,
        fmt_duration(v[v.len() / 2]),
        fmt_duration(v[v.len() - 1])
    );
}
