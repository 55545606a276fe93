//! Helpers shared by the node benchmarks (a module, not a bench target).
//!
//! Sizes come from environment variables so a quick run is possible. When the binary is run
//! without `--bench` (as `cargo test --all-targets` does), small "smoke" sizes are used unless
//! a variable says otherwise, so CI only checks that the benchmark works.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use peerchain_consensus::difficulty::next_target;
use peerchain_consensus::pow::mine_range;
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::state::apply_block;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{
    Address, Block, BlockHeader, BlockRecord, BlockStatus, Genesis, Hash, Store, StoreConfig,
    Target, Transaction, U256,
};
use rayon::prelude::*;

/// Whether the binary runs as a benchmark (`cargo bench`), not as a smoke test (`cargo test`).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Says so when the sizes are smoke-test sizes: the figures printed then are no measurement.
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

/// Reads `name` as a comma-separated list of counts (same defaults rule as [`env_count`]).
pub fn env_counts(name: &str, full: &[usize], smoke: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a list of counts"))
            })
            .collect(),
        Err(_) if bench_mode() => full.to_vec(),
        Err(_) => smoke.to_vec(),
    }
}

/// A dev network like the harness's `easy_genesis` (a few hashes per block, 1 s block time),
/// with `accounts` funded dev accounts.
pub fn bench_genesis(accounts: u32) -> Genesis {
    let mut g = Genesis::dev(accounts, 1_000_000_000_000, 1000);
    g.initial_target = Target(U256::MAX >> 8);
    g.pow_limit = Target(U256::MAX >> 4);
    g
}

/// The first `n` dev keys (derived on every core).
pub fn dev_keys(n: u32) -> Vec<Keypair> {
    (0..n).into_par_iter().map(Keypair::dev).collect()
}

/// Plans and signs transfers between dev accounts with consecutive nonces per sender.
#[derive(Debug)]
pub struct Transfers {
    /// Sending keys (dev accounts 0..).
    pub keys: Vec<Keypair>,
    /// Their addresses.
    pub addresses: Vec<Address>,
    /// Next nonce of each sender.
    pub nonces: Vec<u64>,
    /// Chain id to sign for.
    pub chain_id: u64,
    issued: u64,
}

impl Transfers {
    /// The first `senders` dev accounts of `genesis`, all at nonce 0.
    pub fn new(genesis: &Genesis, senders: u32) -> Self {
        let keys = dev_keys(senders.max(2));
        let addresses = keys.iter().map(Keypair::address).collect();
        Transfers {
            nonces: vec![0; keys.len()],
            keys,
            addresses,
            chain_id: genesis.chain_id,
            issued: 0,
        }
    }

    /// `n` transfers from the senders `group` (indices into `keys`) in round-robin order, each
    /// to another dev account, with consecutive nonces per sender; signed on every core. Any
    /// prefix of the result submitted in order keeps every sender's nonces contiguous.
    pub fn sign(&mut self, group: &[usize], n: usize) -> Vec<Transaction> {
        let len = self.keys.len();
        let specs: Vec<(usize, usize, u64, u64, u64)> = (0..n)
            .map(|i| {
                let k = group[i % group.len()];
                let salt = self.issued;
                self.issued += 1;
                // Any other account: never the sender itself.
                let to = (k + 1 + (salt as usize % (len - 1))) % len;
                let nonce = self.nonces[k];
                self.nonces[k] += 1;
                (k, to, 1 + salt % 100, 1 + salt % 7, nonce)
            })
            .collect();
        specs
            .par_iter()
            .with_min_len(64)
            .map(|&(k, to, amount, fee, nonce)| {
                self.keys[k].sign_transfer(self.chain_id, self.addresses[to], amount, fee, nonce)
            })
            .collect()
    }

    /// `n` transfers from all senders (see [`Transfers::sign`]).
    pub fn sign_all(&mut self, n: usize) -> Vec<Transaction> {
        let all: Vec<usize> = (0..self.keys.len()).collect();
        self.sign(&all, n)
    }
}

/// What [`build_chain`] wrote.
#[derive(Debug)]
pub struct BuiltChain {
    /// The tip header.
    pub tip: BlockHeader,
    /// Blocks written.
    pub blocks: usize,
    /// Transactions written.
    pub txs: usize,
    /// Every txid written, in chain order.
    pub txids: Vec<Hash>,
    /// Time spent signing.
    pub signing: Duration,
    /// Time spent applying and committing (`apply_block`, `put_block`, `connect_block`).
    pub commit: Duration,
    /// Wall time of the whole build.
    pub total: Duration,
    /// Size of the store on disk.
    pub disk_bytes: u64,
}

/// Writes `blocks` valid blocks of `txs_per_block` transfers on top of genesis straight into a
/// new store at `path` (what the node opens as `<data dir>/chain`): every block has the target
/// the difficulty rule requires (timestamps exactly one block time apart), a solved proof of
/// work and valid signatures, so a node syncing from it validates it like any other chain.
/// The store is flushed and closed before returning.
pub fn build_chain(
    path: &Path,
    genesis: &Genesis,
    transfers: &mut Transfers,
    blocks: usize,
    txs_per_block: usize,
    progress_every: usize,
) -> anyhow::Result<BuiltChain> {
    let started = Instant::now();
    let config = StoreConfig {
        path: path.to_owned(),
        cache_mb: 64,
        sync_every_block: false,
    };
    let store = Store::open(&config, genesis).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut parent = genesis.header();
    let mut grandparent: Option<BlockHeader> = None;
    let mut txids = Vec::with_capacity(blocks * txs_per_block);
    let (mut signing, mut commit) = (Duration::ZERO, Duration::ZERO);
    for b in 0..blocks {
        let t = Instant::now();
        let txs = transfers.sign_all(txs_per_block);
        signing += t.elapsed();
        let t = Instant::now();
        let miner = Address([0xB0 + (b % 16) as u8; 20]);
        let mut header =
            ChainBuilder::header_for(&parent, &txs, miner, genesis.target_block_time_ms);
        header.target = next_target(&parent, grandparent.as_ref(), genesis);
        header.nonce = mine_range(&header, 0, u64::MAX)
            .ok_or_else(|| anyhow::anyhow!("no nonce solves block {}", header.height))?;
        let block = Block {
            header,
            transactions: txs,
        };
        let delta = apply_block(&store, genesis, &block).map_err(|e| anyhow::anyhow!("{e}"))?;
        let tip = store.tip_record().map_err(|e| anyhow::anyhow!("{e}"))?;
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: tip.total_work.saturating_add(block.header.target.work()),
            status: BlockStatus::Valid,
            seq: store.next_seq().map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        store
            .put_block(&block, &record)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store
            .connect_block(&block, &delta)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        commit += t.elapsed();
        txids.extend(block.transactions.iter().map(Transaction::txid));
        grandparent = Some(std::mem::replace(&mut parent, block.header));
        if progress_every > 0 && (b + 1) % progress_every == 0 {
            println!(
                "  built {} / {blocks} blocks ({} transactions) in {}",
                b + 1,
                txids.len(),
                fmt_duration(started.elapsed())
            );
        }
    }
    store.flush().map_err(|e| anyhow::anyhow!("{e}"))?;
    let disk_bytes = store.size_on_disk().map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(store);
    Ok(BuiltChain {
        tip: parent,
        blocks,
        txs: txids.len(),
        txids,
        signing,
        commit,
        total: started.elapsed(),
        disk_bytes,
    })
}

/// Nearest-rank percentile `p` (0..=100) of sorted `v` (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99 and max of `v` (sorted in place).
pub fn summary(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    (
        percentile(v, 50.0),
        percentile(v, 99.0),
        v.last().copied().unwrap_or_default(),
    )
}

/// A duration as seconds or milliseconds with three decimals.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A small deterministic random generator (splitmix64): the benchmarks need no statistical
/// quality, only varied and repeatable picks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
