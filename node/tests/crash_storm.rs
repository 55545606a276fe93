//! Faults: a crash storm under load. Three mining node processes (`PEERCHAIN_STORM_NODES`)
//! receive a steady stream of signed transfers while one of them, chosen at random (the
//! bootnode included), is SIGKILLed at a random moment and restarted, `PEERCHAIN_STORM_KILLS`
//! times (50 in CI; more on demand). Each transfer comes from its own funded account (nonce
//! 0), so no transfer depends on another.
//!
//! At the end: every node shares one tip and state digest and is connected to every other
//! node again; every
//! transfer any node reported confirmed with 3 or more confirmations is still confirmed; and
//! every transfer a node accepted more than a second before that node was next killed (or
//! that was never killed after) is confirmed on every node.
//!
//! Node 0 is the only bootnode, as a user would configure it: node 0 has none, the others
//! have node 0, also when restarted. A node restarted while node 0 is down, and node 0
//! itself, find their peers through the peers they learned before the kill (`peers.txt`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use peerchain_ledger::crypto::Keypair;
use peerchain_testkit::Rng;
use serde_json::Value;
use support::{free_port, write_genesis};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One node process and what the test knows of it.
struct Node {
    dir: PathBuf,
    rpc: String,
    p2p_port: u16,
    rpc_port: u16,
    peer_id: Option<String>,
    child: Option<Child>,
    /// When it was SIGKILLed, in order.
    kills: Vec<Instant>,
}

impl Node {
    fn multiaddr(&self) -> Option<String> {
        let id = self.peer_id.as_ref()?;
        Some(format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", self.p2p_port))
    }

    fn start(&mut self, genesis: &Path, bootnodes: &[String]) {
        std::fs::create_dir_all(&self.dir).expect("node directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .expect("log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_peerchain"));
        cmd.arg("node")
            .arg("--genesis")
            .arg(genesis)
            .arg("--data-dir")
            .arg(&self.dir)
            .args([
                "--p2p-listen",
                &format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port),
            ])
            .args(["--rpc-listen", &format!("127.0.0.1:{}", self.rpc_port)])
            .args(["--mine", "--mine-hashrate", "20000"]);
        if !bootnodes.is_empty() {
            cmd.args(["--bootnode", &bootnodes.join(",")]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn node");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
            self.kills.push(Instant::now());
        }
    }

    /// The first kill after `at`, if any.
    fn killed_after(&self, at: Instant) -> Option<Instant> {
        self.kills.iter().copied().find(|k| *k > at)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Http(reqwest::blocking::Client);

impl Http {
    fn get(&self, url: &str) -> Option<Value> {
        let r = self.0.get(url).send().ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().ok()
    }

    fn status(&self, node: &Node) -> Option<Value> {
        self.get(&format!("{}/v1/status", node.rpc))
    }

    /// Waits until `node` answers its status (it started), up to 30 s.
    fn wait_up(&self, node: &Node) -> Value {
        let started = Instant::now();
        loop {
            if let Some(s) = self.status(node) {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node at {} did not start; log: {}",
                node.rpc,
                std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Bootnodes for node `i`: node 0 (none for node 0 itself).
fn bootnodes(nodes: &[Node], i: usize) -> Vec<String> {
    if i == 0 {
        return Vec::new();
    }
    nodes[0].multiaddr().into_iter().collect()
}

/// A transfer the test submitted and a node accepted.
struct Sent {
    txid: String,
    node: usize,
    at: Instant,
}

#[test]
fn a_crash_storm_under_load_loses_nothing_it_promised() {
    let n = env_count("PEERCHAIN_STORM_NODES", 3).max(2);
    let kills = env_count("PEERCHAIN_STORM_KILLS", 50);
    let accounts = (kills * 12).max(200);
    let work = tempfile::tempdir().expect("tempdir");
    let genesis = work.path().join("genesis.json");
    let chain_id = write_genesis(&genesis, accounts as u32, 500);
    let http = Http(
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
    );
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let rpc_port = free_port();
            Node {
                dir: work.path().join(format!("node{i}")),
                rpc: format!("http://127.0.0.1:{rpc_port}"),
                p2p_port: free_port(),
                rpc_port,
                peer_id: None,
                child: None,
                kills: Vec::new(),
            }
        })
        .collect();
    for i in 0..n {
        let boot = bootnodes(&nodes, i);
        nodes[i].start(&genesis, &boot);
        let s = http.wait_up(&nodes[i]);
        nodes[i].peer_id = s["peer_id"].as_str().map(str::to_owned);
    }

    // The storm: a transfer every ~50 ms to a random live node; a kill every 0.6-1.4 s,
    // restarted 0.2-0.6 s later.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let seed = env_count("PEERCHAIN_STORM_SEED", seed as usize) as u64;
    eprintln!("crash storm seed {seed} (PEERCHAIN_STORM_SEED reruns it)");
    let mut rng = Rng::new(seed);
    let mut sent: Vec<Sent> = Vec::new();
    let mut refused = 0usize;
    let mut deep: HashSet<String> = HashSet::new();
    let mut next_account = 0u32;
    let mut kills_done = 0;
    let mut down: Option<(usize, Instant)> = None;
    let mut next_kill = Instant::now() + Duration::from_millis(800);
    let storm_started = Instant::now();
    while kills_done < kills || down.is_some() {
        let now = Instant::now();
        if let Some((i, until)) = down
            && now >= until
        {
            let boot = bootnodes(&nodes, i);
            nodes[i].start(&genesis, &boot);
            down = None;
        }
        if down.is_none() && kills_done < kills && now >= next_kill {
            let i = rng.below(n);
            nodes[i].kill();
            kills_done += 1;
            down = Some((i, now + Duration::from_millis(200 + rng.below(400) as u64)));
            next_kill = now + Duration::from_millis(600 + rng.below(800) as u64);
        }
        // One transfer from a fresh account.
        let i = rng.below(n);
        if nodes[i].child.is_some() && (next_account as usize) < accounts {
            let key = Keypair::dev(next_account);
            next_account += 1;
            let to = Keypair::dev(next_account % accounts as u32).address();
            let tx = key.sign_transfer(chain_id, to, 1, 1, 0);
            let body = serde_json::to_value(&tx).expect("json");
            let at = Instant::now();
            match http
                .0
                .post(format!("{}/v1/transactions", nodes[i].rpc))
                .json(&body)
                .send()
            {
                Ok(r) if r.status().as_u16() == 202 => sent.push(Sent {
                    txid: tx.txid().to_string(),
                    node: i,
                    at,
                }),
                _ => refused += 1,
            }
        }
        // Now and then, remember an older transfer that a live node reports confirmed 3 or
        // more times: it must never be lost.
        if rng.below(10) == 0
            && let Some(s) = sent.get(rng.below(sent.len().max(1)))
            && let Some(node) = nodes.iter().find(|n| n.child.is_some())
            && let Some(v) = http.get(&format!("{}/v1/transactions/{}", node.rpc, s.txid))
            && v["confirmations"].as_u64() >= Some(3)
        {
            deep.insert(s.txid.clone());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let storm = storm_started.elapsed();

    // Every node up, one tip and digest, peers again.
    for node in &nodes {
        http.wait_up(node);
    }
    let settle = Instant::now();
    let must: Vec<&Sent> = sent
        .iter()
        .filter(|s| {
            nodes[s.node]
                .killed_after(s.at)
                .is_none_or(|k| k > s.at + Duration::from_secs(1))
        })
        .collect();
    loop {
        let statuses: Vec<Value> = nodes.iter().filter_map(|n| http.status(n)).collect();
        let tips: HashSet<(String, String)> = statuses
            .iter()
            .map(|s| {
                (
                    s["tip_hash"].as_str().unwrap_or("").to_owned(),
                    s["state_digest"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        // Every node connected to every other one again.
        let peered = statuses
            .iter()
            .all(|s| s["peer_count"].as_u64() == Some(n as u64 - 1));
        let missing: Vec<&str> = must
            .iter()
            .filter(|s| {
                http.get(&format!("{}/v1/transactions/{}", nodes[0].rpc, s.txid))
                    .is_none_or(|v| v["status"] != "confirmed")
            })
            .map(|s| s.txid.as_str())
            .take(5)
            .collect();
        let lost_deep: Vec<&String> = deep
            .iter()
            .filter(|t| {
                http.get(&format!("{}/v1/transactions/{t}", nodes[0].rpc))
                    .is_none_or(|v| v["status"] != "confirmed")
            })
            .collect();
        assert!(
            lost_deep.is_empty(),
            "deeply confirmed transfers lost: {lost_deep:?}"
        );
        if statuses.len() == n && tips.len() == 1 && peered && missing.is_empty() {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(120),
            "after the storm: tips {tips:?}, all peered {peered}, unconfirmed (first 5) \
             {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let heights: Vec<u64> = nodes
        .iter()
        .filter_map(|n| http.status(n)?["height"].as_u64())
        .collect();
    eprintln!(
        "REPORT crash storm: {n} nodes, {kills_done} SIGKILLs in {:.0} s; {} transfers accepted \
         ({refused} refused or unreachable), {} had to survive and all are confirmed; {} seen \
         with 3+ confirmations, none lost; one tip at height {:?} after {:.1} s",
        storm.as_secs_f64(),
        sent.len(),
        must.len(),
        deep.len(),
        heights.first(),
        settle.elapsed().as_secs_f64()
    );
    let per_node: HashMap<usize, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (i, n.kills.len()))
        .collect();
    eprintln!("kills per node: {per_node:?}");
}
