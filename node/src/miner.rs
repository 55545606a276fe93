//! Background mining threads at below-normal priority (nice 10) with a hash-rate cap.
//!
//! The miner never touches the store or the chain: it receives templates (from the chain
//! thread's `peerchain_consensus::TemplateBuilder`) and hands solved blocks back over a channel, and the
//! chain service imports them like any other block. It holds one of the workspace's three
//! `unsafe` calls (`setpriority`; the others are the scenario runner's `kill(SIGTERM)` and
//! `heap::trim`'s `malloc_trim`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use peerchain_consensus::Template;
use peerchain_consensus::pow::HeaderHasher;
use peerchain_ledger::Block;

/// Background mining settings.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// Mining threads.
    pub threads: usize,
    /// Hashes per second for the whole node (all threads together); `None` for no cap.
    pub hashrate_cap: Option<u64>,
}

#[derive(Debug, Default)]
struct Shared {
    job: Mutex<Option<Arc<Template>>>,
    generation: AtomicU64,
    stop: AtomicBool,
    hashes: AtomicU64,
    /// Hashes per second for each thread; 0: no cap.
    per_thread_cap: AtomicU64,
}

/// Background mining threads. Dropping the miner stops them.
#[derive(Debug)]
pub struct Miner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    cap: Option<u64>,
}

impl Miner {
    /// Starts `config.threads` idle threads; solved blocks are sent on `found`.
    pub fn start(config: &MinerConfig, found: Sender<Block>) -> Self {
        let shared = Arc::new(Shared::default());
        let threads = config.threads.max(1);
        let handles = (0..threads)
            .filter_map(|i| {
                let shared = shared.clone();
                let found = found.clone();
                std::thread::Builder::new()
                    .name(format!("miner-{i}"))
                    .spawn(move || mine_loop(&shared, &found))
                    .ok()
            })
            .collect();
        let mut miner = Miner {
            shared,
            threads: handles,
            cap: None,
        };
        miner.set_hashrate_cap(config.hashrate_cap);
        miner
    }

    /// Changes the cap on the whole node's hashes per second (`None`: no cap); the threads
    /// take it up with their next job, which starts now.
    pub fn set_hashrate_cap(&mut self, cap: Option<u64>) {
        let threads = self.threads.len().max(1) as u64;
        let per_thread = cap.map_or(0, |c| (c / threads).max(1));
        self.cap = cap;
        self.shared
            .per_thread_cap
            .store(per_thread, Ordering::SeqCst);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The cap on the whole node's hashes per second (`None`: no cap).
    pub fn hashrate_cap(&self) -> Option<u64> {
        self.cap
    }

    /// Replaces the job: threads drop the old one within one chunk of hashes.
    pub fn set_job(&self, template: Option<Template>) {
        *self.shared.job.lock() = template.map(Arc::new);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Total hashes computed so far.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// Whether a job is set.
    pub fn is_working(&self) -> bool {
        self.shared.job.lock().is_some()
    }

    /// Stops and joins the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Lowers the calling thread's scheduling priority (nice 10) so mining yields to everything.
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; on Linux `who = 0` with
    // PRIO_PROCESS names the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!("could not lower miner thread priority");
    }
}

fn mine_loop(shared: &Shared, found: &Sender<Block>) {
    lower_priority();
    while !shared.stop.load(Ordering::SeqCst) {
        let generation = shared.generation.load(Ordering::SeqCst);
        let cap = Some(shared.per_thread_cap.load(Ordering::SeqCst)).filter(|&c| c > 0);
        // Small chunks under a cap so the rate limiter sleeps often and evenly.
        let chunk: u64 = cap.map_or(16_384, |c| (c / 50).clamp(64, 16_384));
        let Some(job) = shared.job.lock().clone() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let hasher = HeaderHasher::new(&job.header);
        // A random start per thread and job: nodes of a testnet that build the same template
        // (same tip, same millisecond, the same default miner address) would otherwise all
        // find the same nonce and mine the same block (found by the testnet_throughput bench).
        let mut nonce: u64 = rand::random();
        let started = Instant::now();
        let mut done: u64 = 0;
        'job: while shared.generation.load(Ordering::SeqCst) == generation
            && !shared.stop.load(Ordering::SeqCst)
        {
            for _ in 0..chunk {
                if hasher.meets_target(nonce) {
                    let block = (*job).clone().into_block(nonce);
                    let _ = found.send(block);
                    // Wait for the next job rather than re-solving this one.
                    while shared.generation.load(Ordering::SeqCst) == generation
                        && !shared.stop.load(Ordering::SeqCst)
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    break 'job;
                }
                nonce = nonce.wrapping_add(1);
            }
            done += chunk;
            shared.hashes.fetch_add(chunk, Ordering::Relaxed);
            if let Some(rate) = cap {
                throttle(started, done, rate);
            }
        }
    }
}

/// Sleeps until `done` hashes since `started` are within `rate` hashes per second.
fn throttle(started: Instant, done: u64, rate: u64) {
    let due = Duration::from_secs_f64(done as f64 / rate as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        std::thread::sleep(wait.min(Duration::from_millis(250)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::merkle::merkle_root;
    use peerchain_ledger::{Address, BlockHeader, Hash, Target, U256};

    fn template(target: Target) -> Template {
        Template {
            header: BlockHeader {
                version: 1,
                height: 1,
                prev_hash: Hash([0; 32]),
                tx_root: merkle_root(&[]),
                timestamp_ms: 1,
                target,
                nonce: 0,
                miner: Address([2; 20]),
            },
            transactions: Vec::new(),
        }
    }

    /// Two miners on one template (two nodes of a testnet on the same tip in the same
    /// millisecond, both mining to the default address) find different blocks. Before, every
    /// miner started at nonce 0 and they found the same one.
    #[test]
    fn two_miners_on_the_same_template_find_different_blocks() {
        let find = || {
            let (found_tx, found_rx) = crossbeam_channel::bounded(4);
            let miner = Miner::start(
                &MinerConfig {
                    threads: 1,
                    hashrate_cap: None,
                },
                found_tx,
            );
            miner.set_job(Some(template(Target(U256::MAX >> 8))));
            let block = found_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("an easy block is found quickly");
            miner.stop();
            block.header.nonce
        };
        let nonces: Vec<u64> = (0..4).map(|_| find()).collect();
        let distinct: std::collections::HashSet<u64> = nonces.iter().copied().collect();
        assert!(distinct.len() > 1, "every miner found nonce {nonces:?}");
    }

    #[test]
    fn background_miner_finds_blocks_and_respects_the_cap() {
        let (found_tx, found_rx) = crossbeam_channel::bounded(4);
        let miner = Miner::start(
            &MinerConfig {
                threads: 2,
                hashrate_cap: Some(2_000),
            },
            found_tx,
        );
        miner.set_job(Some(template(Target(U256::MAX >> 2))));
        let block = found_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an easy block is found quickly");
        assert!(block.header.target.is_met_by(&block.hash()));
        // Measure the cap on a job that cannot be solved (target 0 is never met).
        let before = miner.hashes();
        let started = Instant::now();
        miner.set_job(Some(template(Target(U256::zero()))));
        std::thread::sleep(Duration::from_millis(1500));
        let rate = (miner.hashes() - before) as f64 / started.elapsed().as_secs_f64();
        assert!(
            rate < 2_000.0 * 1.5,
            "capped at 2,000 H/s, measured {rate:.0} H/s"
        );
        assert!(rate > 100.0, "still mining, measured {rate:.0} H/s");
        miner.stop();
    }

    /// The cap changes while the miner runs (the hash-power dial of scenarios), and can be
    /// removed.
    #[test]
    fn the_cap_changes_while_mining() {
        let (found_tx, _found_rx) = crossbeam_channel::bounded(4);
        let mut miner = Miner::start(
            &MinerConfig {
                threads: 1,
                hashrate_cap: Some(20_000),
            },
            found_tx,
        );
        assert_eq!(miner.hashrate_cap(), Some(20_000));
        miner.set_job(Some(template(Target(U256::zero()))));
        miner.set_hashrate_cap(Some(1_000));
        assert_eq!(miner.hashrate_cap(), Some(1_000));
        // Let the thread take the new cap up, then measure.
        std::thread::sleep(Duration::from_millis(300));
        let before = miner.hashes();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(1500));
        let rate = (miner.hashes() - before) as f64 / started.elapsed().as_secs_f64();
        assert!(
            rate < 1_000.0 * 1.5,
            "cap lowered to 1,000 H/s, measured {rate:.0} H/s"
        );
        miner.set_hashrate_cap(None);
        assert_eq!(miner.hashrate_cap(), None);
        miner.stop();
    }
}
