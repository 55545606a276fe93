//! End-to-end throughput of a small test network of real node processes (issue 13).
//!
//! Starts `PEERCHAIN_BENCH_NODES` (4) `peerchain node` processes on loopback (node 0 is the
//! bootnode of the others), all mining, each paid at its own address, on a genesis with a 1 s
//! target block time, a hash-rate setting equal to the sum of the nodes' `--mine-hashrate`
//! (60,000 H/s split evenly) and `PEERCHAIN_BENCH_SENDERS` (60) funded dev accounts.
//!
//! Before the clock starts it signs `PEERCHAIN_BENCH_RATE` (3,000) x `PEERCHAIN_BENCH_SECS` (60)
//! transfers and encodes them as batches of `PEERCHAIN_BENCH_BATCH` (100): a batch holds
//! consecutive nonces of `PEERCHAIN_BENCH_BATCH_SENDERS` (5) senders (20 each), and the next
//! batch of the same senders goes to the next node, so one sender's consecutive nonces reach
//! different nodes (a node that has not yet heard of a sender's earlier nonces by gossip
//! answers `queued`). It also measures the machine's limit: `crypto::verify_many` (rayon, every
//! core, `verify_transaction` per item) over a few thousand of those transfers for about 1 s.
//!
//! Then the batches are offered open-loop at the rate through `POST /v1/transactions/batch`:
//! batch b is due at `start + b * batch / rate` whatever happened to earlier ones, sent by
//! `PEERCHAIN_BENCH_CLIENTS` (4) blocking client threads per node (so a node never sees more
//! concurrent batches than its limit of 4). A batch refused as a whole for a passing reason
//! (`busy`, `rate_limited`, a transport error) is sent again after a short pause, as a wallet
//! would (counted). Every item of every answer is counted: accepted `pending`, accepted
//! `queued` (ahead of its predecessors on that node), or refused (by error code). An accepted
//! transfer behind a refused one of the same sender can never be confirmed (refused transfers
//! are not sent again): it is counted as stranded.
//!
//! A poller follows node 0's main chain (its status every 100 ms; on a new tip, the new
//! main-chain blocks and their txid lists) and timestamps each transfer when it first sees it
//! in a main-chain block. After the load it waits (at most `PEERCHAIN_BENCH_TIMEOUT_SECS`, 120)
//! until every accepted, not stranded transfer is in node 0's main chain. Figures: confirmed
//! transfers/s over the load window and over the whole run; the steady-state rate between
//! main-chain blocks seen after the first sixth of the window and before its end, and the
//! transfers due, accepted, confirmable and not yet in a block half-way and at the end of
//! the window (a network that keeps up holds that backlog near a block's worth; one that
//! falls behind lets it grow); confirmation latency (first seen in
//! a block minus the batch's due time, so a late generator is counted, not hidden; the poll adds
//! up to 100 ms) and in blocks (which block after the transfer was due confirmed it),
//! main-chain blocks and their mean size, the CPU time of each node while the
//! load ran; per node, `peerchain_signature_verifications` divided by the transactions of the
//! main chain (goal <= 1.05) and by the accepted transfers, the node's transaction and gossip
//! counters, and its resident memory (`VmRSS`, `VmHWM` of `/proc/<pid>/status`).
//!
//! The node processes, this driver and its client threads share the machine's cores: the
//! verification limit printed beside the figures says what those cores can do at best.
//!
//! Run: `cargo bench -p peerchain --bench testnet_throughput`. Without `--bench` (`cargo test
//! -p peerchain --benches`) it runs a smoke form (4 nodes, 300 tx/s for 5 s from 20 senders in
//! batches of 50) and fails if an accepted transfer is never confirmed.
//! `PEERCHAIN_BENCH_KEEP=1` keeps the nodes' directories and logs (the path is printed).
//!
//! `PEERCHAIN_BENCH_IDLE_SECS=S` (0) leaves the network alone for `S` seconds before the load
//! (goal 5's idle phase: `scripts/bench.sh testnet_memory` runs 32 nodes so): every 5 s it
//! prints node 0's height, how many distinct tips the nodes report, their peer counts and each
//! node's resident memory (min / median / max), then the block rate against the target. The
//! memory after the load is printed the same way at the end.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::{Genesis, Transaction};
use peerchain_testkit::{
    CpuTimes, Transfers, bench_mode, cores, env_count, fmt_duration, mib, smoke_note, steal_note,
    summary, verify_rate,
};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use support::{BIN, Http, free_port, write_genesis};

/// The genesis hash rate of `support::write_genesis`, split between the miners.
const NETWORK_HASHRATE: u64 = 60_000;

/// One node process, SIGKILLed when dropped.
struct BenchNode {
    dir: PathBuf,
    rpc: String,
    p2p_port: u16,
    child: Option<Child>,
}

impl BenchNode {
    fn start(
        genesis: &Path,
        dir: PathBuf,
        bootnode: Option<&str>,
        hashrate: u64,
        miner: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("node.log"))?;
        let rpc_port = free_port();
        let p2p_port = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("node")
            .arg("--genesis")
            .arg(genesis)
            .arg("--data-dir")
            .arg(&dir)
            .args(["--p2p-listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
            .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
            .args(["--mine", "--mine-hashrate", &hashrate.to_string()])
            .args(["--miner-address", miner]);
        if let Some(b) = bootnode {
            cmd.args(["--bootnode", b]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn peerchain node")?;
        Ok(BenchNode {
            dir,
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            p2p_port,
            child: Some(child),
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `VmRSS` and `VmHWM` in bytes.
    fn rss(&self) -> (Option<u64>, Option<u64>) {
        let Some(status) = self
            .pid()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        else {
            return (None, None);
        };
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time it has used (user + system).
    fn cpu(&self) -> Option<Duration> {
        cpu_of(&self.pid()?.to_string())
    }

    /// The last `n` lines of its log.
    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits (up to 30 s) for its status; returns it.
    fn wait_up(&self, http: &Http) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            if let Some(s) = http.get(&format!("{}/v1/status", self.rpc)) {
                return Ok(s);
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "node at {} did not start; log:\n{}",
                    self.rpc,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the node answered for one item of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Queued,
    Confirmed,
    Refused,
}

/// One batch as sent and answered.
#[derive(Debug)]
struct BatchResult {
    batch: usize,
    sent: Instant,
    answered: Instant,
    items: Vec<Outcome>,
}

/// What a client thread hands back.
#[derive(Debug, Default)]
struct ClientReport {
    batches: Vec<BatchResult>,
    /// Refusals by code: count and the first message.
    refused: BTreeMap<String, (usize, String)>,
    /// Whole batches sent again, by the code of the refusal.
    retries: BTreeMap<String, usize>,
}

/// Live counters for the progress lines.
#[derive(Debug, Default)]
struct Live {
    answered: AtomicUsize,
    accepted: AtomicUsize,
    queued: AtomicUsize,
    refused: AtomicUsize,
}

/// A main-chain block as the poller saw it.
#[derive(Debug, Clone)]
struct SeenBlock {
    hash: String,
    timestamp_ms: u64,
    tx_count: u64,
    /// Indices of this run's transfers in it.
    ours: Vec<u32>,
    seen: Instant,
}

/// Node 0's main chain as followed by the poller.
#[derive(Debug)]
struct Tracker {
    /// When each transfer was first seen in a main-chain block.
    first_seen: Vec<Option<Instant>>,
    /// Main-chain blocks above the start height.
    chain: BTreeMap<u64, SeenBlock>,
    /// Blocks the poller saw leave the main chain.
    reorged_blocks: usize,
    /// Poll errors (node 0 did not answer in time).
    errors: usize,
}

impl Tracker {
    /// Per transfer: whether it is in the main chain now.
    fn in_chain(&self) -> Vec<bool> {
        let mut v = vec![false; self.first_seen.len()];
        for b in self.chain.values() {
            for &i in &b.ours {
                v[i as usize] = true;
            }
        }
        v
    }
}

fn main() -> anyhow::Result<()> {
    smoke_note();
    let nodes = env_count("PEERCHAIN_BENCH_NODES", 4, 4).max(1);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 60, 20).max(2);
    let rate = env_count("PEERCHAIN_BENCH_RATE", 3_000, 300).max(1);
    let secs = env_count("PEERCHAIN_BENCH_SECS", 60, 5).max(1);
    let batch = env_count("PEERCHAIN_BENCH_BATCH", 100, 50).max(1);
    let group = env_count("PEERCHAIN_BENCH_BATCH_SENDERS", 5, 5).max(1);
    let clients = env_count("PEERCHAIN_BENCH_CLIENTS", 4, 2).max(1);
    let timeout = Duration::from_secs(env_count("PEERCHAIN_BENCH_TIMEOUT_SECS", 120, 60) as u64);
    if batch > 10_000 {
        bail!("PEERCHAIN_BENCH_BATCH={batch} is over the batch limit of 10,000");
    }
    if !senders.is_multiple_of(group) || !batch.is_multiple_of(group) {
        bail!(
            "PEERCHAIN_BENCH_BATCH_SENDERS={group} must divide both \
             PEERCHAIN_BENCH_SENDERS={senders} and PEERCHAIN_BENCH_BATCH={batch}"
        );
    }
    let groups: Vec<Vec<usize>> = (0..senders / group)
        .map(|g| (g * group..(g + 1) * group).collect())
        .collect();
    let n_batches = (rate * secs / batch).max(1);
    let total = n_batches * batch;
    let per_node_hashrate = NETWORK_HASHRATE / nodes as u64;
    println!(
        "testnet_throughput: {nodes} node processes (each mining at {per_node_hashrate} H/s, \
         genesis {NETWORK_HASHRATE} H/s, 1 s blocks), {senders} senders; offering {rate} tx/s \
         for {secs} s = {total} transfers in {n_batches} batches of {batch} ({} consecutive \
         nonces of {group} senders each), {clients} client threads per node",
        batch / group
    );

    // Genesis and the transfers, signed and encoded before any clock starts.
    let work = tempfile::tempdir()?;
    let genesis_path = work.path().join("genesis.json");
    write_genesis(&genesis_path, u32::try_from(senders)?, 1000);
    let genesis = Genesis::from_file(&genesis_path)?;
    let t = Instant::now();
    let mut transfers = Transfers::new(&genesis, u32::try_from(senders)?);
    let mut txs: Vec<Transaction> = Vec::with_capacity(total);
    for b in 0..n_batches {
        txs.extend(transfers.sign(&groups[b % groups.len()], batch));
    }
    let bodies: Vec<Vec<u8>> = txs
        .chunks(batch)
        .map(serde_json::to_vec)
        .collect::<Result<_, _>>()?;
    let index: HashMap<[u8; 32], u32> = txs
        .iter()
        .enumerate()
        .map(|(i, tx)| Ok((tx.txid().0, u32::try_from(i)?)))
        .collect::<anyhow::Result<_>>()?;
    println!(
        "signed and encoded {total} transfers in {} (not timed)",
        fmt_duration(t.elapsed())
    );

    // The machine's limit: signature checks per second on every core, before any node runs.
    let verify_rate = verify_rate(&txs[..txs.len().min(4_000)]).map_err(anyhow::Error::msg)?;
    println!(
        "machine limit: verify_transaction on {} cores (rayon, verify_many) {verify_rate:.0}/s \
         ({:.0}/s per core)",
        cores(),
        verify_rate / cores() as f64
    );

    // The network.
    let http = Http::new();
    let t = Instant::now();
    let mut net: Vec<BenchNode> = Vec::with_capacity(nodes);
    // Each miner is paid at its own address (accounts outside the senders), as real miners
    // are: with one shared address, idle nodes can build identical templates.
    let miner = |i: usize| Keypair::dev(1_000_000 + i as u32).address().to_hex();
    let first = BenchNode::start(
        &genesis_path,
        work.path().join("node0"),
        None,
        per_node_hashrate,
        &miner(0),
    )?;
    let s = first.wait_up(&http)?;
    let peer_id = s["peer_id"].as_str().context("peer id")?.to_owned();
    let boot = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer_id}", first.p2p_port);
    net.push(first);
    for i in 1..nodes {
        let n = BenchNode::start(
            &genesis_path,
            work.path().join(format!("node{i}")),
            Some(&boot),
            per_node_hashrate,
            &miner(i),
        )?;
        n.wait_up(&http)?;
        net.push(n);
    }
    let want = nodes as u64 - 1;
    let started = Instant::now();
    let peers = loop {
        let peers: Vec<u64> = net
            .iter()
            .map(|n| status(&http, n).map_or(0, |s| s["peer_count"].as_u64().unwrap_or(0)))
            .collect();
        if peers.iter().all(|&p| p >= want) || started.elapsed() > Duration::from_secs(30) {
            break peers;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let h0 = status(&http, &net[0])
        .and_then(|s| s["height"].as_u64())
        .context("node 0 status")?;
    println!(
        "started {nodes} nodes in {}; peers per node {peers:?} (want {want}); node 0 at height {h0}",
        fmt_duration(t.elapsed())
    );

    let idle = env_count("PEERCHAIN_BENCH_IDLE_SECS", 0, 0);
    let h0 = if idle > 0 {
        idle_phase(&http, &net, Duration::from_secs(idle as u64))?
    } else {
        h0
    };

    // The poller follows node 0's main chain from here.
    let tracker = Arc::new(Mutex::new(Tracker {
        first_seen: vec![None; total],
        chain: BTreeMap::new(),
        reorged_blocks: 0,
        errors: 0,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let tracker = Arc::clone(&tracker);
        let stop = Arc::clone(&stop);
        let rpc = net[0].rpc.clone();
        std::thread::spawn(move || poll_chain(&rpc, h0, &index, &tracker, &stop))
    };

    // The load: batch b is due at t0 + b * interval and goes to node (group + round) % nodes.
    let node_of = |b: usize| (b % groups.len() + b / groups.len()) % nodes;
    let interval = batch as f64 / rate as f64;
    let due = move |t0: Instant, b: usize| t0 + Duration::from_secs_f64(b as f64 * interval);
    let per_node: Vec<Arc<Vec<usize>>> = (0..nodes)
        .map(|i| Arc::new((0..n_batches).filter(|&b| node_of(b) == i).collect()))
        .collect();
    let bodies = Arc::new(bodies);
    let live = Arc::new(Live::default());
    let t0 = Instant::now() + Duration::from_millis(200);
    let cpu_before: Vec<Option<Duration>> = net.iter().map(BenchNode::cpu).collect();
    let driver_before = cpu_of("self");
    let host_before = CpuTimes::now();
    let mut handles = Vec::new();
    for (i, node) in net.iter().enumerate() {
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..clients {
            let list = Arc::clone(&per_node[i]);
            let next = Arc::clone(&next);
            let bodies = Arc::clone(&bodies);
            let live = Arc::clone(&live);
            let url = format!("{}/v1/transactions/batch", node.rpc);
            handles.push(std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .no_proxy()
                    .build()
                    .expect("HTTP client");
                let mut report = ClientReport::default();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&b) = list.get(k) else {
                        break;
                    };
                    let at = due(t0, b);
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let r = send_batch(&client, &url, b, &bodies[b], batch, &mut report);
                    live.answered.fetch_add(1, Ordering::Relaxed);
                    let count = |o: Outcome| r.items.iter().filter(|&&x| x == o).count();
                    live.accepted.fetch_add(
                        count(Outcome::Pending) + count(Outcome::Queued),
                        Ordering::Relaxed,
                    );
                    live.queued
                        .fetch_add(count(Outcome::Queued), Ordering::Relaxed);
                    live.refused
                        .fetch_add(count(Outcome::Refused), Ordering::Relaxed);
                    report.batches.push(r);
                }
                report
            }));
        }
    }
    let every = Duration::from_secs(if bench_mode() { 5 } else { 1 });
    println!(
        "{:>7} {:>8} {:>9} {:>8} {:>8} {:>10} {:>7} {:>8}  mempool per node",
        "t (s)", "batches", "accepted", "queued", "refused", "confirmed", "height", "H/s"
    );
    let mut next_line = t0 + every;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_line {
            progress(&http, &net, t0, &live, &tracker);
            next_line += every;
        }
    }
    let mut reports = Vec::new();
    for h in handles {
        reports.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))?,
        );
    }
    let load_end = Instant::now();
    let cpu_load: Vec<Option<Duration>> = net
        .iter()
        .zip(&cpu_before)
        .map(|(n, b)| Some(n.cpu()?.saturating_sub((*b)?)))
        .collect();
    let driver_load = cpu_of("self")
        .zip(driver_before)
        .map(|(a, b)| a.saturating_sub(b));
    let load_wall = load_end.duration_since(t0);
    let load_steal = steal_note(host_before);

    // Everything the nodes answered.
    let mut outcome = vec![Outcome::Refused; total];
    let mut sent_at = vec![t0; n_batches];
    let mut lag = Vec::with_capacity(n_batches);
    let mut answer_time = Vec::with_capacity(n_batches);
    let mut refused: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut retries: BTreeMap<String, usize> = BTreeMap::new();
    let mut refused_per_node = vec![0usize; nodes];
    let mut queued_per_node = vec![0usize; nodes];
    for r in reports {
        for (code, n) in r.retries {
            *retries.entry(code).or_default() += n;
        }
        for (code, (n, msg)) in r.refused {
            let e = refused.entry(code).or_insert((0, msg));
            e.0 += n;
        }
        for b in r.batches {
            sent_at[b.batch] = b.sent;
            lag.push(b.sent.saturating_duration_since(due(t0, b.batch)));
            answer_time.push(b.answered - b.sent);
            for (k, o) in b.items.iter().enumerate() {
                outcome[b.batch * batch + k] = *o;
                match o {
                    Outcome::Refused => refused_per_node[node_of(b.batch)] += 1,
                    Outcome::Queued => queued_per_node[node_of(b.batch)] += 1,
                    _ => {}
                }
            }
        }
    }
    let count = |o: Outcome| outcome.iter().filter(|&&x| x == o).count();
    let (pending, queued, already, refused_n) = (
        count(Outcome::Pending),
        count(Outcome::Queued),
        count(Outcome::Confirmed),
        count(Outcome::Refused),
    );
    let accepted = pending + queued + already;
    let last_sent = sent_at.iter().max().copied().unwrap_or(t0);
    let offered = total as f64 / last_sent.duration_since(t0).as_secs_f64().max(1e-9);

    // An accepted transfer behind a refused one of the same sender can never be confirmed
    // (this client does not send refused transfers again): it is stranded, not waited for.
    let mut first_refused: HashMap<[u8; 32], u64> = HashMap::new();
    for (tx, o) in txs.iter().zip(&outcome) {
        if *o == Outcome::Refused {
            let n = first_refused.entry(tx.from.0).or_insert(tx.nonce);
            *n = (*n).min(tx.nonce);
        }
    }
    let stranded: Vec<bool> = txs
        .iter()
        .zip(&outcome)
        .map(|(tx, o)| {
            *o != Outcome::Refused && first_refused.get(&tx.from.0).is_some_and(|&r| tx.nonce > r)
        })
        .collect();
    let stranded_n = stranded.iter().filter(|&&s| s).count();
    let stranded_senders = first_refused.len();

    // Wait (bounded) until node 0's main chain holds every accepted transfer that can be.
    let deadline = load_end + timeout;
    let mut next_line = Instant::now();
    let all_in = loop {
        let missing = {
            let tr = tracker.lock().expect("tracker");
            let in_chain = tr.in_chain();
            (0..total)
                .filter(|&i| outcome[i] != Outcome::Refused && !stranded[i] && !in_chain[i])
                .count()
        };
        if missing == 0 {
            break true;
        }
        if Instant::now() > deadline {
            println!(
                "gave up waiting: {missing} accepted (not stranded) transfers are not in node 0's \
                 main chain {} after the load",
                fmt_duration(timeout)
            );
            break false;
        }
        if Instant::now() >= next_line {
            progress(&http, &net, t0, &live, &tracker);
            next_line += every;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let settled = Instant::now();
    // The nodes refresh the signature counter of /metrics every 2 s.
    std::thread::sleep(Duration::from_millis(2_500));
    stop.store(true, Ordering::Relaxed);
    poller
        .join()
        .map_err(|_| anyhow::anyhow!("the poller panicked"))?;
    let tr = tracker.lock().expect("tracker");

    // Node facts at the end.
    let finals: Vec<Option<Value>> = net.iter().map(|n| status(&http, n)).collect();
    let metrics: Vec<String> = net
        .iter()
        .map(|n| {
            http.get_text(&format!("{}/metrics", n.rpc))
                .unwrap_or_default()
        })
        .collect();
    let rss: Vec<(Option<u64>, Option<u64>)> = net.iter().map(BenchNode::rss).collect();

    // Figures.
    let in_chain = tr.in_chain();
    let window_end = t0 + Duration::from_secs(secs as u64);
    let mut latencies = Vec::new();
    let mut in_window = 0usize;
    let mut confirmed = 0usize;
    let mut queued_confirmed = 0usize;
    let mut last_confirmation = t0;
    for i in 0..total {
        if !in_chain[i] {
            continue;
        }
        let Some(seen) = tr.first_seen[i] else {
            continue;
        };
        confirmed += 1;
        if outcome[i] == Outcome::Queued {
            queued_confirmed += 1;
        }
        if seen <= window_end {
            in_window += 1;
        }
        last_confirmation = last_confirmation.max(seen);
        latencies.push(seen.saturating_duration_since(due(t0, i / batch)));
    }
    let (p50, p99, max) = summary(&mut latencies);
    let (lag50, lag99, lag_max) = summary(&mut lag);
    let (ans50, ans99, ans_max) = summary(&mut answer_time);
    // Blocks of the run: from the start to the block that confirmed the last transfer.
    let run_blocks: Vec<&SeenBlock> = tr
        .chain
        .values()
        .filter(|b| b.seen <= last_confirmation)
        .collect();
    let chain_txs: u64 = tr.chain.values().map(|b| b.tx_count).sum();
    let run_txs: u64 = run_blocks.iter().map(|b| b.tx_count).sum();
    let blocks = run_blocks.len();
    let sizes: Vec<u64> = run_blocks.iter().map(|b| b.tx_count).collect();
    let empty = sizes.iter().filter(|&&s| s == 0).count();
    let biggest = sizes.iter().max().copied().unwrap_or(0);
    let mean_size = run_txs as f64 / blocks.max(1) as f64;
    let window_blocks: Vec<&SeenBlock> = tr
        .chain
        .values()
        .filter(|b| b.seen >= t0 && b.seen <= window_end)
        .collect();
    let window_mean = window_blocks.iter().map(|b| b.tx_count).sum::<u64>() as f64
        / window_blocks.len().max(1) as f64;
    let span_ms = match (run_blocks.first(), run_blocks.last()) {
        (Some(a), Some(b)) if blocks > 1 => b.timestamp_ms.saturating_sub(a.timestamp_ms),
        _ => 0,
    };
    let run = last_confirmation.duration_since(t0).as_secs_f64().max(1e-9);

    println!();
    println!(
        "offered: {total} transfers in {n_batches} batches over {} ({offered:.0} tx/s sent); \
         sent behind schedule p50 {} p99 {} max {}; batch answered in p50 {} p99 {} max {}",
        fmt_duration(last_sent.duration_since(t0)),
        fmt_duration(lag50),
        fmt_duration(lag99),
        fmt_duration(lag_max),
        fmt_duration(ans50),
        fmt_duration(ans99),
        fmt_duration(ans_max)
    );
    let busy: Duration =
        cpu_load.iter().flatten().sum::<Duration>() + driver_load.unwrap_or_default();
    println!(
        "CPU while the load ran ({:.1} s): nodes {} s, this driver (clients, poller) {} s; {:.0}% \
         of {} cores",
        load_wall.as_secs_f64(),
        cpu_load
            .iter()
            .map(|c| c.map_or("?".to_owned(), |c| format!("{:.1}", c.as_secs_f64())))
            .collect::<Vec<_>>()
            .join("/"),
        driver_load.map_or("?".to_owned(), |c| format!("{:.1}", c.as_secs_f64())),
        100.0 * busy.as_secs_f64() / (load_wall.as_secs_f64() * cores() as f64),
        cores()
    );
    println!(
        "answers: {accepted} accepted ({pending} pending, {queued} queued, {already} already \
         confirmed), {refused_n} refused"
    );
    println!("  queued per node {queued_per_node:?}; refused per node {refused_per_node:?}");
    for (code, (n, msg)) in &refused {
        println!("  refused {code}: {n} (e.g. \"{msg}\")");
    }
    if stranded_n > 0 {
        println!(
            "  {stranded_n} accepted transfers of {stranded_senders} senders are stranded behind \
             a refused transfer of their sender (never confirmable; not waited for)"
        );
    }
    if !retries.is_empty() {
        println!("  whole batches sent again after a passing refusal: {retries:?}");
    }
    println!(
        "confirmed: {confirmed} of the {accepted} accepted in node 0's main chain ({} after the \
         load; {queued_confirmed} of the {queued} queued); {} blocks left the main chain while \
         polled; {} poll errors",
        match (all_in, stranded_n) {
            (true, 0) => format!("all, {}", fmt_duration(settled - load_end)),
            (true, _) => format!(
                "all but the {stranded_n} stranded, {}",
                fmt_duration(settled - load_end)
            ),
            _ => "not all".to_owned(),
        },
        tr.reorged_blocks,
        tr.errors
    );
    println!(
        "throughput: {:.0} confirmed tx/s over the {secs} s load window ({in_window} \
         transfers), {:.0} tx/s over the whole run ({confirmed} in {:.1} s)",
        in_window as f64 / secs as f64,
        confirmed as f64 / run,
        run
    );
    let steady = steady_rate(
        &tr,
        t0 + Duration::from_secs_f64(secs as f64 / 6.0),
        window_end,
    );
    // Due by `at`, accepted in the end and confirmable (not stranded), not yet in a block then.
    let unconfirmed_at = |at: Instant| {
        (0..total)
            .filter(|&i| outcome[i] != Outcome::Refused && !stranded[i])
            .filter(|&i| due(t0, i / batch) <= at)
            .filter(|&i| tr.first_seen[i].is_none_or(|seen| seen > at))
            .count()
    };
    let half_way = t0 + Duration::from_secs_f64(secs as f64 / 2.0);
    let (backlog_half, backlog_end) = (unconfirmed_at(half_way), unconfirmed_at(window_end));
    println!(
        "steady state: {} between main-chain blocks seen after the first sixth of the load \
         window and before its end; due by then, accepted and not yet in a block: \
         {backlog_half} half-way and {backlog_end} at the end of the window ({:.2} / {:.2} s of \
         the offered rate)",
        steady.map_or("no blocks seen at two times".to_owned(), |s| format!(
            "{:.0} confirmed tx/s ({} transactions in {} blocks over {:.1} s)",
            s.rate(),
            s.transactions,
            s.blocks,
            s.seconds
        )),
        backlog_half as f64 / rate as f64,
        backlog_end as f64 / rate as f64
    );
    println!(
        "latency (first seen in a main-chain block on node 0 minus due time): p50 {} p99 {} \
         max {}",
        fmt_duration(p50),
        fmt_duration(p99),
        fmt_duration(max)
    );
    let (b50, b99, bmax) = blocks_waited(&tr, h0, |i| due(t0, i / batch));
    println!(
        "blocks waited (the transfer's block counted from the last block seen before it was \
         due: 1 = the next block): p50 {b50} p99 {b99} max {bmax}"
    );
    println!(
        "blocks: {blocks} main-chain blocks after height {h0} up to the last confirmation, \
         {run_txs} transactions, mean {mean_size:.0} per block (largest {biggest}, {empty} \
         empty), mean interval {:.2} s; {} blocks seen during the load window, mean \
         {window_mean:.0} transactions",
        span_ms as f64 / 1e3 / (blocks.max(2) - 1) as f64,
        window_blocks.len()
    );
    // Every transaction of the chain was signed by this run; the nodes checked each one.
    let total_chain_txs = chain_txs.max(1);
    println!(
        "{:>4} {:>8} {:>8} {:>11} {:>9} {:>9} {:>8} {:>9} {:>6}",
        "node",
        "height",
        "mempool",
        "sig checks",
        "per conf",
        "per acc",
        "RSS MiB",
        "peak MiB",
        "peers"
    );
    for (i, s) in finals.iter().enumerate() {
        let sig = metric_sum(&metrics[i], "peerchain_signature_verifications");
        let field = |k: &str| {
            s.as_ref()
                .and_then(|s| s[k].as_u64())
                .map_or("?".to_owned(), |v| v.to_string())
        };
        let show = |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{:.0}", mib(b)));
        println!(
            "{i:>4} {:>8} {:>8} {:>11.0} {:>9.3} {:>9.3} {:>8} {:>9} {:>6}",
            field("height"),
            field("mempool_size"),
            sig,
            sig / total_chain_txs as f64,
            sig / accepted.max(1) as f64,
            show(rss[i].0),
            show(rss[i].1),
            field("peer_count")
        );
    }
    let tips: Vec<Option<&str>> = finals
        .iter()
        .map(|s| s.as_ref().and_then(|s| s["tip_hash"].as_str()))
        .collect();
    if tips.windows(2).any(|w| w[0] != w[1]) {
        println!("note: the nodes' tips differ at the end: {tips:?}");
    }
    for (i, m) in metrics.iter().enumerate() {
        println!("node {i} counters: {}", counters(m));
    }
    println!(
        "summary: {:.0} confirmed tx/s in the load window of {rate} tx/s offered ({:.0} over \
         the run, {} in the steady state); latency p50 {} p99 {} (blocks waited p50 {b50} \
         p99 {b99}); {queued} queued, {refused_n} refused; signature checks per confirmed \
         transaction {}; RSS {} MiB; machine limit {verify_rate:.0} signature checks/s on {} \
         cores",
        in_window as f64 / secs as f64,
        confirmed as f64 / run,
        steady.map_or("?".to_owned(), |s| format!("{:.0}", s.rate())),
        fmt_duration(p50),
        fmt_duration(p99),
        metrics
            .iter()
            .map(|m| format!(
                "{:.3}",
                metric_sum(m, "peerchain_signature_verifications") / total_chain_txs as f64
            ))
            .collect::<Vec<_>>()
            .join("/"),
        rss.iter()
            .map(|r| r.0.map_or("?".to_owned(), |b| format!("{:.0}", mib(b))))
            .collect::<Vec<_>>()
            .join("/"),
        cores()
    );
    println!("{load_steal} during the load");
    println!(
        "RSS per node after the load (min / median / max): {}",
        rss_spread(&rss.iter().map(|r| r.0).collect::<Vec<_>>())
    );
    if bench_mode() && all_in {
        // The figure above depends on when each node last handed freed memory back; one
        // trim interval later every node has looked, and trimmed if it kept more than
        // `KEEP_RESIDENT_FREE` beyond what its heap holds, with nothing new to do meanwhile.
        let settle = peerchain::heap::TRIM_INTERVAL + Duration::from_secs(2);
        std::thread::sleep(settle);
        println!(
            "RSS per node {} later (every node's heap looked at since): {}",
            fmt_duration(settle),
            rss_spread(&rss_now(&net))
        );
    }
    drop(tr);

    let failed = !all_in || accepted == 0;
    if failed {
        for (i, n) in net.iter().enumerate() {
            println!("--- node {i} log (last 15 lines) ---\n{}", n.log_tail(15));
        }
    }
    drop(net);
    if std::env::var_os("PEERCHAIN_BENCH_KEEP").is_some() {
        println!("kept the nodes' directories in {}", work.keep().display());
    }
    if failed && !bench_mode() {
        bail!("smoke run: not every accepted transfer was confirmed (or none was accepted)");
    }
    Ok(())
}

/// The network's confirmation rate once the load is under way, free of the run's edges.
#[derive(Debug, Clone, Copy)]
struct SteadyRate {
    /// Transactions of the blocks after the first one counted, up to the last.
    transactions: u64,
    /// Blocks those transactions are in.
    blocks: usize,
    /// Between the poller seeing the first and the last block counted.
    seconds: f64,
}

impl SteadyRate {
    fn rate(&self) -> f64 {
        self.transactions as f64 / self.seconds.max(1e-9)
    }
}

/// Main-chain blocks seen between `from` and `to`, measured from the first time the poller
/// saw one to the last: the transactions of the blocks seen after that first time, over the
/// time between the two (blocks fetched in the same poll share their time, so those seen with
/// the first are left out with it). The load-window figure counts what was confirmed by the
/// window's end, so it comes out short of the offered rate by the confirmation lag even on a
/// network that keeps up; this one does not, and it cannot exceed what was offered for long
/// (the backlog bounds it).
fn steady_rate(tr: &Tracker, from: Instant, to: Instant) -> Option<SteadyRate> {
    let seen: Vec<&SeenBlock> = tr
        .chain
        .values()
        .filter(|b| b.seen >= from && b.seen <= to)
        .collect();
    let start = seen.iter().map(|b| b.seen).min()?;
    let counted: Vec<&&SeenBlock> = seen.iter().filter(|b| b.seen > start).collect();
    let end = counted.iter().map(|b| b.seen).max()?;
    Some(SteadyRate {
        transactions: counted.iter().map(|b| b.tx_count).sum(),
        blocks: counted.len(),
        seconds: end.duration_since(start).as_secs_f64(),
    })
}

/// For each confirmed transfer, which block after its due time confirmed it (1: the first
/// block node 0's main chain gained after it was due; blocks are dated by when the poller saw
/// them). Returns the p50, p99 and max. Goal 1's latency in blocks rather than seconds: at a
/// steady proof-of-work rate the wait for the next block alone has a p99 of 4.6 mean
/// intervals, whatever the node does.
fn blocks_waited(tr: &Tracker, start: u64, due: impl Fn(usize) -> Instant) -> (u64, u64, u64) {
    let mut seen: Vec<(Instant, u64)> = tr.chain.iter().map(|(h, b)| (b.seen, *h)).collect();
    seen.sort();
    let mut waited = Vec::new();
    for (&height, block) in &tr.chain {
        for &i in &block.ours {
            let at = due(i as usize);
            let before = seen.partition_point(|(t, _)| *t <= at);
            let last_before = before
                .checked_sub(1)
                .and_then(|k| seen.get(k))
                .map_or(start, |(_, h)| *h);
            waited.push(height.saturating_sub(last_before));
        }
    }
    waited.sort_unstable();
    let at = |q: f64| {
        let k = ((waited.len() as f64 * q).ceil() as usize).saturating_sub(1);
        waited.get(k).copied().unwrap_or(0)
    };
    (at(0.50), at(0.99), waited.last().copied().unwrap_or(0))
}

/// Goal 5's idle phase: the network left alone for `length`, sampled every 5 s (node 0's
/// height, distinct tips, peers, resident memory), then its block rate against the 1 s target.
/// Returns node 0's height at the end.
fn idle_phase(http: &Http, net: &[BenchNode], length: Duration) -> anyhow::Result<u64> {
    let height = || status(http, &net[0]).and_then(|s| s["height"].as_u64());
    let start_height = height().context("node 0 status")?;
    let t = Instant::now();
    println!(
        "idle for {}: every 5 s node 0's height, distinct tips, peers (min / max), RSS per node          (min / median / max)",
        fmt_duration(length)
    );
    println!("  at 0 s: RSS {}", rss_spread(&rss_now(net)));
    while t.elapsed() < length {
        std::thread::sleep(Duration::from_secs(5).min(length.saturating_sub(t.elapsed())));
        let statuses: Vec<Value> = net.iter().filter_map(|n| status(http, n)).collect();
        let tips: std::collections::HashSet<&str> = statuses
            .iter()
            .filter_map(|s| s["tip_hash"].as_str())
            .collect();
        let peers: Vec<u64> = statuses
            .iter()
            .filter_map(|s| s["peer_count"].as_u64())
            .collect();
        println!(
            "  {:>5.0} s  height {:>5}  tips {}  answered {}/{}  peers {}-{}  RSS {}",
            t.elapsed().as_secs_f64(),
            height().map_or("?".to_owned(), |h| h.to_string()),
            tips.len(),
            statuses.len(),
            net.len(),
            peers.iter().min().unwrap_or(&0),
            peers.iter().max().unwrap_or(&0),
            rss_spread(&rss_now(net))
        );
    }
    let end_height = height().unwrap_or(start_height);
    let blocks = end_height.saturating_sub(start_height);
    println!(
        "idle: {blocks} blocks in {} = {:.1} blocks/min (target 60); RSS per node {}",
        fmt_duration(t.elapsed()),
        blocks as f64 * 60.0 / t.elapsed().as_secs_f64(),
        rss_spread(&rss_now(net))
    );
    Ok(end_height)
}

/// Each node's resident memory now.
fn rss_now(net: &[BenchNode]) -> Vec<Option<u64>> {
    net.iter().map(|n| n.rss().0).collect()
}

/// `min / median / max MiB` of the known values.
fn rss_spread(rss: &[Option<u64>]) -> String {
    let mut known: Vec<u64> = rss.iter().flatten().copied().collect();
    known.sort_unstable();
    match (known.first(), known.get(known.len() / 2), known.last()) {
        (Some(lo), Some(mid), Some(hi)) => {
            format!("{:.1} / {:.1} / {:.1} MiB", mib(*lo), mib(*mid), mib(*hi))
        }
        _ => "unknown".to_owned(),
    }
}

/// A node's status, `None` when it does not answer.
fn status(http: &Http, node: &BenchNode) -> Option<Value> {
    http.get(&format!("{}/v1/status", node.rpc))
}

/// Posts one batch and reads its answer item by item. A batch refused as a whole for a
/// passing reason (`busy`, `rate_limited`, a transport error) is sent again, as a wallet
/// would, after 100 ms, 200 ms, .. (at most 1 s apart) for up to 30 s.
fn send_batch(
    client: &reqwest::blocking::Client,
    url: &str,
    b: usize,
    body: &[u8],
    len: usize,
    report: &mut ClientReport,
) -> BatchResult {
    let sent = Instant::now();
    let mut attempt = 0u32;
    let answer = loop {
        let answer = client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .map_err(|e| ("transport".to_owned(), e.to_string()))
            .and_then(|r| {
                let code = r.status().as_u16();
                let v: Value = r
                    .json()
                    .map_err(|e| ("bad_answer".to_owned(), e.to_string()))?;
                if code == 200 {
                    Ok(v)
                } else {
                    Err((
                        v["error"]["code"]
                            .as_str()
                            .map_or(format!("http_{code}"), str::to_owned),
                        v["error"]["message"].as_str().unwrap_or("").to_owned(),
                    ))
                }
            });
        match &answer {
            Err((code, _))
                if ["busy", "rate_limited", "transport"].contains(&code.as_str())
                    && sent.elapsed() < Duration::from_secs(30) =>
            {
                *report.retries.entry(code.clone()).or_default() += 1;
                attempt += 1;
                std::thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) * 100));
            }
            _ => break answer,
        }
    };
    let answered = Instant::now();
    let mut refuse = |code: String, msg: &str, n: usize| {
        let e = report.refused.entry(code).or_insert((0, msg.to_owned()));
        e.0 += n;
    };
    let items = match answer {
        Ok(Value::Array(items)) if items.len() == len => items
            .iter()
            .map(|item| match item["status"].as_str() {
                Some("pending") => Outcome::Pending,
                Some("queued") => Outcome::Queued,
                Some("confirmed") => Outcome::Confirmed,
                _ => {
                    let code = item["error"]["code"].as_str().unwrap_or("unknown");
                    let msg = item["error"]["message"].as_str().unwrap_or("");
                    refuse(code.to_owned(), msg, 1);
                    Outcome::Refused
                }
            })
            .collect(),
        Ok(other) => {
            let shown: String = other.to_string().chars().take(200).collect();
            refuse("batch:bad_answer".to_owned(), &shown, len);
            vec![Outcome::Refused; len]
        }
        Err((code, msg)) => {
            refuse(format!("batch:{code}"), &msg, len);
            vec![Outcome::Refused; len]
        }
    };
    BatchResult {
        batch: b,
        sent,
        answered,
        items,
    }
}

/// Follows node 0's main chain until `stop`: on every new tip, reads the new main-chain blocks
/// (newest first, until one it already has) and their txids, and timestamps this run's
/// transfers with the poll that revealed the tip.
fn poll_chain(
    rpc: &str,
    h0: u64,
    index: &HashMap<[u8; 32], u32>,
    tracker: &Mutex<Tracker>,
    stop: &AtomicBool,
) {
    let http = Http::new();
    let mut last_tip = String::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let Some(s) = http.get(&format!("{rpc}/v1/status")) else {
            tracker.lock().expect("tracker").errors += 1;
            continue;
        };
        let now = Instant::now();
        let (Some(tip), Some(height)) = (s["tip_hash"].as_str(), s["height"].as_u64()) else {
            continue;
        };
        if tip == last_tip || height <= h0 {
            continue;
        }
        // New main-chain blocks, newest first, down to one already known (or h0).
        let known: HashMap<u64, String> = {
            let tr = tracker.lock().expect("tracker");
            tr.chain.iter().map(|(h, b)| (*h, b.hash.clone())).collect()
        };
        let mut fresh: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut complete = false;
        'pages: loop {
            let limit = (height - h0).clamp(1, 100);
            let url = match &cursor {
                Some(c) => format!("{rpc}/v1/blocks?limit={limit}&cursor={c}"),
                None => format!("{rpc}/v1/blocks?limit={limit}"),
            };
            let Some(page) = http.get(&url) else {
                break;
            };
            for item in page["items"].as_array().into_iter().flatten() {
                let (Some(h), Some(hash)) = (item["height"].as_u64(), item["hash"].as_str()) else {
                    continue;
                };
                if h <= h0 || known.get(&h).map(String::as_str) == Some(hash) {
                    complete = true;
                    break 'pages;
                }
                fresh.push(item.clone());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => {
                    complete = true;
                    break;
                }
            }
        }
        if !complete {
            tracker.lock().expect("tracker").errors += 1;
            continue;
        }
        // Oldest first, with their txids.
        let mut blocks = Vec::new();
        let mut failed = false;
        for item in fresh.iter().rev() {
            let hash = item["hash"].as_str().unwrap_or_default().to_owned();
            let Some(txids) = http.get(&format!("{rpc}/v1/blocks/{hash}/txids")) else {
                failed = true;
                break;
            };
            let ours: Vec<u32> = txids
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let mut id = [0u8; 32];
                    hex::decode_to_slice(t.as_str()?, &mut id).ok()?;
                    index.get(&id).copied()
                })
                .collect();
            blocks.push((
                item["height"].as_u64().unwrap_or_default(),
                SeenBlock {
                    hash,
                    timestamp_ms: item["timestamp_ms"].as_u64().unwrap_or_default(),
                    tx_count: item["tx_count"].as_u64().unwrap_or_default(),
                    ours,
                    seen: now,
                },
            ));
        }
        let mut tr = tracker.lock().expect("tracker");
        if failed {
            tr.errors += 1;
            continue;
        }
        if let Some((lowest, _)) = blocks.first() {
            let gone: Vec<u64> = tr.chain.range(lowest..).map(|(h, _)| *h).collect();
            tr.reorged_blocks += gone.len();
            for h in gone {
                tr.chain.remove(&h);
            }
        }
        for (h, b) in blocks {
            for &i in &b.ours {
                tr.first_seen[i as usize].get_or_insert(now);
            }
            tr.chain.insert(h, b);
        }
        last_tip = tip.to_owned();
    }
}

/// One progress line: time since the start, answers so far, node 0's chain, the mempools.
fn progress(http: &Http, net: &[BenchNode], t0: Instant, live: &Live, tracker: &Mutex<Tracker>) {
    let (confirmed, height) = {
        let tr = tracker.lock().expect("tracker");
        (
            tr.first_seen.iter().filter(|s| s.is_some()).count(),
            tr.chain.keys().last().copied().unwrap_or(0),
        )
    };
    let pools: Vec<String> = net
        .iter()
        .map(|n| {
            status(http, n)
                .and_then(|s| s["mempool_size"].as_u64())
                .map_or("?".to_owned(), |m| m.to_string())
        })
        .collect();
    let hashrate: f64 = net
        .iter()
        .filter_map(|n| http.get_text(&format!("{}/metrics", n.rpc)))
        .map(|m| metric_sum(&m, "peerchain_hashrate_hashes_per_second"))
        .sum();
    println!(
        "{:>7.1} {:>8} {:>9} {:>8} {:>8} {:>10} {:>7} {:>8.0}  {}",
        Instant::now().saturating_duration_since(t0).as_secs_f64(),
        live.answered.load(Ordering::Relaxed),
        live.accepted.load(Ordering::Relaxed),
        live.queued.load(Ordering::Relaxed),
        live.refused.load(Ordering::Relaxed),
        confirmed,
        height,
        hashrate,
        pools.join(" ")
    );
}

/// Sum of the samples of metric `name` (every label set) in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{', '_']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The node's transaction, gossip and compact-block counters, compactly: `name{labels}=value`.
fn counters(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            [
                "peerchain_transactions_",
                "peerchain_gossip_messages",
                "peerchain_blocks_imported",
                "peerchain_blocks_relayed_early",
                "peerchain_compact_blocks",
                "peerchain_reorgs",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .filter(|l| !l.ends_with(" 0"))
        .map(|l| l.trim_start_matches("peerchain_").replace(' ', "="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time (user + system) of process `pid` (`self` for this one), from `/proc/<pid>/stat`
/// (in USER_HZ ticks, 100 per second on Linux).
fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start with the state, field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}
