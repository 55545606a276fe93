//! Block propagation across node processes (issue 13, goal 2): how long a block with
//! `PEERCHAIN_BENCH_TXS` (5,000) transfers takes to reach every node of a network of
//! `PEERCHAIN_BENCH_NODES` (10) `peerchain node` processes on this machine, when the receivers
//! already hold its transactions in their mempools.
//!
//! Node 0 is the others' bootnode (they find each other through discovery); nobody mines on
//! its own. Each of `PEERCHAIN_BENCH_ROUNDS` (10) rounds submits the transfers to node 0
//! (`POST /v1/transactions/batch`, 1,000 at a time), waits until every mempool holds them, then
//! mines one block on node 0 (`POST /v1/admin/mine`). Every node's `/v1/events?types=block`
//! stream is read by a thread of its own, which notes when the block's event arrives; a
//! node's propagation time is its arrival minus node 0's (so node 0's own mining time is not
//! counted). It prints each round's slowest node and the percentiles over all (round,
//! receiver) pairs. The nodes are SIGKILLed at the end and their directory removed
//! (`PEERCHAIN_BENCH_KEEP=1` keeps it, with the logs).
//!
//! `PEERCHAIN_BENCH_COLD=1` measures a block whose transactions the receivers do not hold:
//! before each round's submission every receiver sets a link fault dropping all gossip from
//! node 0 (`POST /v1/admin/peers/{id}/link` with `loss = 1`), so node 0's transaction gossip
//! never lands; 2 s after node 0 holds the transfers the faults are cleared and the block is
//! mined, and the receivers must check every transfer of the block themselves. It prints how
//! many of the block's transfers the receivers held at most when it was mined.
//!
//! `PEERCHAIN_BENCH_MISSING=M` measures a block whose receivers lack `M` of its transfers:
//! the others are submitted first and reach every mempool, then the last `M` go to node 0
//! while the receivers drop its gossip, as in the cold mode. A receiver asks node 0 for those
//! `M` alone (`GetBlockTxs`) when `M` is at most 2,000, and for the whole block otherwise.
//!
//! `PEERCHAIN_BENCH_KBPS=K` caps each receiver's link from node 0 at `K` kilobits a second
//! after the warm-up (a link fault's `bandwidth_kbps`, on gossip and sync alike), so the bytes
//! a block costs show in the figure as they would between machines.
//!
//! `PEERCHAIN_BENCH_LINE=1` makes the network a line, so a block crosses `n - 1` hops
//! instead of one (node 0's flood publish reaches every peer directly): before the warm-up,
//! each node blocks every node but its two neighbours (node i keeps i - 1 and i + 1). The figure then shows what each hop costs: with the relay
//! before state application, the checks; without it, the checks and the import.
//!
//! Without `--bench` (`cargo test -p peerchain --benches`) a smoke form runs: 3 nodes, 300
//! transfers, 2 rounds.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_ledger::Genesis;
use peerchain_testkit::{
    CpuTimes, Transfers, bench_mode, cores, env_count, fmt_duration, smoke_note, steal_note,
    summary, verify_rate,
};
use serde_json::{Value, json};
use support::{Http, NodeProcess, wait_for, write_genesis};

const TOKEN: &str = "propagation-bench-admin-token-0123456789";
/// Dev accounts that send (each sends `txs / SENDERS` transfers a round).
const SENDERS: u32 = 50;
/// When each node saw each block: block hash -> node index -> arrival.
type Arrivals = Arc<Mutex<HashMap<String, HashMap<usize, Instant>>>>;

fn main() -> anyhow::Result<()> {
    if !bench_mode() {
        smoke_note();
    }
    let n = env_count("PEERCHAIN_BENCH_NODES", 10, 3).max(2);
    let txs = env_count("PEERCHAIN_BENCH_TXS", 5_000, 300);
    let rounds = env_count("PEERCHAIN_BENCH_ROUNDS", 10, 2);
    let cold = std::env::var_os("PEERCHAIN_BENCH_COLD").is_some();
    let line = std::env::var_os("PEERCHAIN_BENCH_LINE").is_some();
    if cold && line {
        bail!(
            "PEERCHAIN_BENCH_COLD and PEERCHAIN_BENCH_LINE do not combine (cold clears the line's faults)"
        );
    }
    let missing = env_number::<usize>("PEERCHAIN_BENCH_MISSING")?.map(|m| m.min(txs));
    if missing.is_some() && (cold || line) {
        bail!(
            "PEERCHAIN_BENCH_MISSING combines with neither PEERCHAIN_BENCH_COLD nor PEERCHAIN_BENCH_LINE"
        );
    }
    let kbps = env_number::<u64>("PEERCHAIN_BENCH_KBPS")?.unwrap_or(0);
    if kbps > 0 && line {
        bail!("PEERCHAIN_BENCH_KBPS does not combine with PEERCHAIN_BENCH_LINE");
    }
    let held_by = match missing {
        _ if cold => "the receivers do not hold".to_owned(),
        Some(m) => format!("of which the receivers lack {m}"),
        None => "the receivers already hold".to_owned(),
    };
    println!(
        "propagation_processes: {n} node processes{}{}, {rounds} rounds of one block of {txs} \
         transfers {held_by}",
        if line { " in a line" } else { "" },
        if kbps > 0 {
            format!(", links from node 0 at {kbps} kbit/s")
        } else {
            String::new()
        }
    );
    let work = tempfile::tempdir()?;
    let genesis_path = work.path().join("genesis.json");
    write_genesis(&genesis_path, SENDERS, 1000);
    let genesis = Genesis::from_file(&genesis_path)?;
    let http = Http::new();
    let nodes = start_network(&genesis_path, work.path(), n, &http)?;
    let origin_id = nodes[0].wait_up(&http)["peer_id"]
        .as_str()
        .context("node 0's peer id")?
        .to_owned();
    let arrivals: Arrivals = Arc::default();
    for (i, node) in nodes.iter().enumerate() {
        listen_for_blocks(i, &node.rpc, arrivals.clone())?;
    }
    std::thread::sleep(Duration::from_millis(500)); // the streams are open

    if line {
        make_line(&http, &nodes)?;
    }
    let mut transfers = Transfers::new(&genesis, SENDERS);
    warm_up(&http, &nodes, &mut transfers)?;
    if kbps > 0 {
        set_link(&http, &nodes[1..], &origin_id, 0.0, kbps)?;
    }
    // The machine's limit: every receiver checks each signature of a block it does not hold,
    // and the receivers share the cores.
    // (A generator of its own: these transfers are never sent, so the nonces stay in step.)
    let sample = Transfers::new(&genesis, SENDERS).sign_all(1_000);
    let limit = verify_rate(&sample).map_err(anyhow::Error::msg)?;
    println!(
        "machine limit: {limit:.0} signature checks/s on {} cores; {} receivers checking {txs} \
         each need {} of it",
        cores(),
        n - 1,
        fmt_duration(Duration::from_secs_f64(((n - 1) * txs) as f64 / limit))
    );
    let (mut all, mut from_call, mut early) = (Vec::new(), Vec::new(), 0usize);
    let mut most_held = 0u64;
    println!("  round  slowest node  median node");
    let host_before = CpuTimes::now();
    for round in 0..rounds {
        let batch = transfers.sign_all(txs);
        if cold {
            set_link(&http, &nodes[1..], &origin_id, 1.0, kbps)?;
            submit(&http, &nodes[0].rpc, &batch)?;
            wait_for_mempools(&http, &nodes[..1], txs, "node 0 to hold the transfers");
            // Node 0 gossips them (batched, within about a second) into the faulted links.
            std::thread::sleep(Duration::from_secs(2));
            set_link(&http, &nodes[1..], &origin_id, 0.0, kbps)?;
            most_held = most_held.max(largest_mempool(&http, &nodes[1..]));
        } else if let Some(m) = missing {
            let (shared, lacked) = batch.split_at(txs - m);
            submit(&http, &nodes[0].rpc, shared)?;
            wait_for_mempools(
                &http,
                &nodes,
                txs - m,
                "every mempool to hold the shared transfers",
            );
            set_link(&http, &nodes[1..], &origin_id, 1.0, kbps)?;
            submit(&http, &nodes[0].rpc, lacked)?;
            wait_for_mempools(&http, &nodes[..1], txs, "node 0 to hold the transfers");
            std::thread::sleep(Duration::from_secs(2));
            set_link(&http, &nodes[1..], &origin_id, 0.0, kbps)?;
            most_held = most_held.max(largest_mempool(&http, &nodes[1..]));
        } else {
            submit(&http, &nodes[0].rpc, &batch)?;
            wait_for_mempools(&http, &nodes, txs, "every mempool to hold the transfers");
        }
        let called = Instant::now();
        let hash = mine_one(&http, &nodes[0].rpc)?;
        let seen = wait_for(
            "every node to see the block",
            Duration::from_secs(60),
            || {
                let map = arrivals.lock().ok()?;
                let seen = map.get(&hash)?;
                (seen.len() == n).then(|| seen.clone())
            },
        );
        let origin = seen[&0];
        // Node 0's own event can come after a receiver's (its runtime is busy sending the
        // block to every peer): such a delay counts as 0 and is counted. The delay from the
        // admin call, mining included, bounds the figure from above.
        early += (1..n).filter(|i| seen[i] < origin).count();
        from_call.extend((1..n).map(|i| seen[&i].saturating_duration_since(called)));
        let mut delays: Vec<Duration> = (1..n)
            .map(|i| seen[&i].saturating_duration_since(origin))
            .collect();
        delays.sort();
        println!(
            "  {round:>5}  {:>12}  {:>11}",
            fmt_duration(delays[delays.len() - 1]),
            fmt_duration(delays[delays.len() / 2])
        );
        all.extend(delays);
    }
    let (p50, p99, max) = summary(&mut all);
    println!(
        "summary: a {txs}-transfer block {held_by} reached each of {} nodes in p50 {} \
         p99 {} max {} ({} samples)",
        n - 1,
        fmt_duration(p50),
        fmt_duration(p99),
        fmt_duration(max),
        all.len()
    );
    let (c50, c99, _) = summary(&mut from_call);
    println!(
        "  {early} of them before node 0's own event (counted as 0); from the admin mine call \
         (mining included): p50 {} p99 {}",
        fmt_duration(c50),
        fmt_duration(c99)
    );
    if cold || missing.is_some() {
        println!(
            "  the receivers held at most {most_held} transfers in their mempools when a block was mined"
        );
    }
    println!("  {} during the rounds", steal_note(host_before));
    drop(nodes);
    if std::env::var_os("PEERCHAIN_BENCH_KEEP").is_some() {
        println!("kept the nodes' directories in {}", work.keep().display());
    }
    Ok(())
}

/// The number in the environment variable `name`, when it is set.
fn env_number<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| anyhow::anyhow!("{name} is not a number: {v:?}"))
        })
        .transpose()
}

/// Starts `n` nodes (node 0 the bootnode of the others, nobody mining) and waits until each
/// has at least one peer and node 0 has them all.
fn start_network(
    genesis: &std::path::Path,
    dir: &std::path::Path,
    n: usize,
    http: &Http,
) -> anyhow::Result<Vec<NodeProcess>> {
    let node_dir = |i: usize| dir.join(format!("node{i}"));
    let first = NodeProcess::start(
        genesis,
        &node_dir(0),
        &dir.join("node0.log"),
        &["--admin-token", TOKEN],
    );
    let boot = first.multiaddr(&first.wait_up(http));
    let mut nodes = vec![first];
    for i in 1..n {
        let log = dir.join(format!("node{i}.log"));
        let extra = ["--admin-token", TOKEN, "--bootnode", boot.as_str()];
        nodes.push(NodeProcess::start(genesis, &node_dir(i), &log, &extra));
    }
    for node in &nodes {
        node.wait_up(http);
    }
    let started = Instant::now();
    wait_for("the network to connect", Duration::from_secs(60), || {
        let peers: Vec<u64> = nodes
            .iter()
            .filter_map(|node| http.get(&format!("{}/v1/status", node.rpc)))
            .filter_map(|s| s["peer_count"].as_u64())
            .collect();
        let ready = peers.len() == n && peers.iter().all(|&p| p >= 1) && peers[0] as usize == n - 1;
        ready.then_some(())
    });
    println!("network connected in {}", fmt_duration(started.elapsed()));
    Ok(nodes)
}

/// A thread that reads `rpc`'s block events and notes when each block arrived at node `i`.
fn listen_for_blocks(i: usize, rpc: &str, arrivals: Arrivals) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder().no_proxy().build()?;
    let response = client
        .get(format!("{rpc}/v1/events?types=block"))
        .send()
        .context("open the event stream")?;
    if !response.status().is_success() {
        bail!("event stream of node {i}: {}", response.status());
    }
    std::thread::spawn(move || {
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let at = Instant::now();
            let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            if let (Some(hash), Ok(mut map)) = (event["hash"].as_str(), arrivals.lock()) {
                map.entry(hash.to_owned())
                    .or_default()
                    .entry(i)
                    .or_insert(at);
            }
        }
    });
    Ok(())
}

/// Earns node 0 its peers' trust: a peer's transaction budget follows its gossipsub score
/// (500 a second for a new peer, 20,000 after 20 first deliveries of valid messages;
/// docs/NETWORK.md section 3), so 25 small batches go out 100 ms apart and are mined away
/// before the measured rounds.
fn warm_up(http: &Http, nodes: &[NodeProcess], transfers: &mut Transfers) -> anyhow::Result<()> {
    for _ in 0..25 {
        submit(http, &nodes[0].rpc, &transfers.sign_all(10))?;
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_mempools(http, nodes, 250, "the warm-up transfers everywhere");
    mine_one(http, &nodes[0].rpc)?;
    Ok(())
}

/// Waits (at most 120 s) until every node's mempool holds at least `at_least` transactions.
fn wait_for_mempools(http: &Http, nodes: &[NodeProcess], at_least: usize, what: &str) {
    wait_for(what, Duration::from_secs(120), || {
        nodes
            .iter()
            .all(|node| {
                http.get(&format!("{}/v1/status", node.rpc))
                    .and_then(|s| s["mempool_size"].as_u64())
                    .is_some_and(|m| m >= at_least as u64)
            })
            .then_some(())
    });
}

/// Submits `txs` to `rpc` in batches of 1,000; every item must be taken.
fn submit(http: &Http, rpc: &str, txs: &[peerchain_ledger::Transaction]) -> anyhow::Result<()> {
    for chunk in txs.chunks(1_000) {
        let url = format!("{rpc}/v1/transactions/batch");
        let (code, answer) = http
            .post(&url, &serde_json::to_value(chunk)?)
            .context("batch submission")?;
        let taken = answer
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["status"] == "pending"));
        if code != 200 || !taken {
            bail!(
                "batch answered {code}: {}",
                answer.to_string().chars().take(300).collect::<String>()
            );
        }
    }
    Ok(())
}

/// Sets the fault of each receiver's link from `origin`: the fraction of `origin`'s gossip it
/// drops, and the bandwidth of the link (0: unlimited; both 0 clears the fault).
fn set_link(
    http: &Http,
    receivers: &[NodeProcess],
    origin: &str,
    loss: f64,
    kbps: u64,
) -> anyhow::Result<()> {
    for node in receivers {
        let code = http
            .0
            .post(format!("{}/v1/admin/peers/{origin}/link", node.rpc))
            .bearer_auth(TOKEN)
            .json(&json!({ "loss": loss, "bandwidth_kbps": kbps }))
            .send()
            .context("admin link fault")?
            .status();
        if !code.is_success() {
            bail!("setting the link fault at {} answered {code}", node.rpc);
        }
    }
    Ok(())
}

/// Makes the network a line: once every node is connected to every other, node i blocks
/// every node but i - 1 and i + 1 (`POST /v1/admin/peers/{id}/block`), so gossip reaches a
/// node from its neighbours only. (A link fault's loss would not do: gossipsub delivers a
/// message once, so a copy dropped from a far node hides the neighbour's later copy.)
fn make_line(http: &Http, nodes: &[NodeProcess]) -> anyhow::Result<()> {
    let n = nodes.len();
    wait_for(
        "every node to know every other",
        Duration::from_secs(60),
        || {
            nodes
                .iter()
                .filter_map(|node| http.get(&format!("{}/v1/status", node.rpc)))
                .filter(|s| s["peer_count"].as_u64() == Some(n as u64 - 1))
                .count()
                .eq(&n)
                .then_some(())
        },
    );
    let mut ids = Vec::new();
    for node in nodes {
        let status = node.wait_up(http);
        ids.push(status["peer_id"].as_str().context("a peer id")?.to_owned());
    }
    for (i, node) in nodes.iter().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i.abs_diff(j) <= 1 {
                continue;
            }
            let code = http
                .0
                .post(format!("{}/v1/admin/peers/{id}/block", node.rpc))
                .bearer_auth(TOKEN)
                .json(&json!({}))
                .send()
                .context("admin block")?
                .status();
            // 404: j already blocked i and dropped the connection, and i forgot j.
            if !code.is_success() && code.as_u16() != 404 {
                bail!("node {i} blocking node {j} answered {code}");
            }
        }
    }
    wait_for("the line to settle", Duration::from_secs(30), || {
        nodes
            .iter()
            .filter_map(|node| http.get(&format!("{}/v1/status", node.rpc)))
            .filter_map(|s| s["peer_count"].as_u64())
            .all(|p| p <= 2)
            .then_some(())
    });
    // Gossipsub grafts a neighbour that was outside a node's mesh at its next heartbeat (1 s);
    // until then a message is only announced to it, and one lost that way leaves a nonce gap.
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

/// The most transactions any of `nodes` holds in its mempool.
fn largest_mempool(http: &Http, nodes: &[NodeProcess]) -> u64 {
    nodes
        .iter()
        .filter_map(|node| http.get(&format!("{}/v1/status", node.rpc)))
        .filter_map(|s| s["mempool_size"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Mines one block at `rpc` (admin API) and returns its hash.
fn mine_one(http: &Http, rpc: &str) -> anyhow::Result<String> {
    let answer: Value = http
        .0
        .post(format!("{rpc}/v1/admin/mine"))
        .bearer_auth(TOKEN)
        .json(&json!({ "blocks": 1 }))
        .timeout(Duration::from_secs(120))
        .send()
        .context("admin mine")?
        .json()
        .context("admin mine answer")?;
    answer["hashes"][0]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("admin mine answered {answer}"))
}
