//! Block propagation time across a local network of in-process nodes (issue 4).
//!
//! Starts `PEERCHAIN_BENCH_NODES` (10) real nodes on 127.0.0.1 (node 0 is the bootnode of the
//! others), subscribes to every node's `/v1/events?types=block` stream, then for each of
//! `PEERCHAIN_BENCH_ROUNDS` (20) rounds (after one warm-up round that is not counted):
//! fills node 0's mempool with `PEERCHAIN_BENCH_TXS` (5,000) signed transfers from the
//! `PEERCHAIN_BENCH_SENDERS` (10) dev accounts through `POST /v1/transactions/batch`, waits
//! until gossip has put them in every node's mempool, mines one block on node 0 with
//! `POST /v1/admin/mine`, and timestamps the arrival of that block's `block` event on each
//! node. The block has left the miner when the mine call returns (node 0 imported the block and
//! handed it to the network before answering) or when node 0's own `block` event arrives,
//! whichever is seen first; a node's latency is the arrival of its `block` event minus that
//! moment (so it includes the event's delivery to this reader, a conservative choice), and
//! "last" is the slowest node of a round.
//!
//! Every node, the event readers and this driver share one process and its cores: on a small
//! machine each node validating the block's signatures competes with the others for the same
//! cores, so the figures are an upper bound for nodes on separate machines.
//!
//! Run: `cargo bench -p peerchain-tests --bench propagation`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_testkit::{
    Transfers, env_count, fmt_duration, ms, node_genesis, smoke_note, summary,
};
use peerchain_tests::{NodeOptions, TestNet};
use serde_json::Value;
use tokio::sync::mpsc;

/// What an event reader reports.
#[derive(Debug)]
enum Seen {
    /// One more stream is open.
    Connected,
    /// Node `node` announced block `hash` (with `tx_count` transactions) at `at`.
    Block {
        node: usize,
        hash: String,
        tx_count: u64,
        at: Instant,
    },
}

/// One measured round.
#[derive(Debug)]
struct Round {
    /// Per node: arrival minus the moment the block left the miner (index 0: node 0 itself).
    latency: Vec<Duration>,
    /// Slowest node of the round.
    last: Duration,
    /// Whether gossip put every transaction in every mempool before the block was mined.
    complete: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smoke_note();
    let nodes = env_count("PEERCHAIN_BENCH_NODES", 10, 3).max(2);
    let txs = env_count("PEERCHAIN_BENCH_TXS", 5_000, 50).max(1);
    let rounds = env_count("PEERCHAIN_BENCH_ROUNDS", 20, 2).max(1);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 10, 10).max(2);
    if txs.div_ceil(senders) > 1_000 {
        bail!(
            "{txs} transactions from {senders} senders exceed the mempool's 1,000 pending per \
             sender; raise PEERCHAIN_BENCH_SENDERS"
        );
    }
    if txs > 10_000 {
        bail!("PEERCHAIN_BENCH_TXS={txs} is over the batch limit of 10,000");
    }
    let genesis = node_genesis(u32::try_from(senders).context("sender count")?);
    println!(
        "propagation: {nodes} nodes, {txs} transactions per block from {senders} senders, \
         {rounds} rounds (+1 warm-up)"
    );

    let t = Instant::now();
    // `PEERCHAIN_BENCH_VERIFIED_SIGS=0` turns the verified-signature set off (every receiver
    // verifies every signature of the block again: the behaviour before issue 13).
    let mut options = NodeOptions::default();
    if let Some(n) = std::env::var("PEERCHAIN_BENCH_VERIFIED_SIGS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.limits.mempool.verified_signatures = n;
    }
    println!(
        "verified-signature set: {} txids",
        options.limits.mempool.verified_signatures
    );
    let net = TestNet::start(nodes, genesis.clone(), options).await?;
    println!("started {nodes} nodes in {}", fmt_duration(t.elapsed()));
    let want = (nodes - 1).min(4) as u64;
    let peers = wait_for_peers(&net, want, Duration::from_secs(30)).await?;
    println!(
        "peers per node after {}: {peers:?} (waited for >= {want} each)",
        fmt_duration(t.elapsed())
    );

    // One event reader per node, on its own client (no overall request timeout).
    let sse = reqwest::Client::builder().build()?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut readers = Vec::new();
    for (i, n) in net.nodes.iter().enumerate() {
        readers.push(tokio::spawn(read_events(
            sse.clone(),
            i,
            n.url.clone(),
            seen_tx.clone(),
        )));
    }
    drop(seen_tx);
    let mut connected = 0;
    while connected < nodes {
        match tokio::time::timeout(Duration::from_secs(10), seen.recv()).await {
            Ok(Some(Seen::Connected)) => connected += 1,
            Ok(Some(_)) => {}
            _ => bail!("only {connected} of {nodes} event streams opened"),
        }
    }
    // Let gossipsub meshes settle over a few heartbeats.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut transfers = Transfers::new(&genesis, u32::try_from(senders)?);
    println!(
        "{:>5} {:>6} {:>6} {:>12} {:>10} {:>12} {:>12} {:>12}",
        "round",
        "height",
        "txs",
        "tx gossip",
        "mine call",
        "node 0 event",
        "median node",
        "last node"
    );
    println!("{}", "-".repeat(92));
    let mut measured: Vec<Round> = Vec::new();
    for round in 0..=rounds {
        let batch = transfers.sign_all(txs);
        let r = one_round(&net, &batch, &mut seen, round, nodes).await?;
        if round > 0 {
            measured.push(r);
        }
    }

    // Summary.
    let mut last: Vec<Duration> = measured.iter().map(|r| r.last).collect();
    let (p50, p99, max) = summary(&mut last);
    let mut all: Vec<Duration> = measured
        .iter()
        .flat_map(|r| r.latency[1..].iter().copied())
        .collect();
    let (a50, a99, amax) = summary(&mut all);
    println!("{}", "-".repeat(92));
    let stalled = measured.iter().filter(|r| !r.complete).count();
    if stalled > 0 {
        println!(
            "note: in {stalled} of {} rounds, transaction gossip left some mempools short \
             (the block was mined anyway; its propagation does not depend on the mempools)",
            measured.len()
        );
    }
    println!("per node (ms, over {} rounds):", measured.len());
    println!("{:>5} {:>10} {:>10} {:>10}", "node", "p50", "p99", "max");
    for i in 1..nodes {
        let mut v: Vec<Duration> = measured.iter().map(|r| r.latency[i]).collect();
        let (n50, n99, nmax) = summary(&mut v);
        println!("{i:>5} {:>10} {:>10} {:>10}", ms(n50), ms(n99), ms(nmax));
    }
    println!(
        "summary: {nodes} nodes, {txs}-transaction blocks, {} rounds: last node received after \
         p50 {} ms, p99 {} ms, max {} ms (goal: p99 < 150 ms); any node p50 {} ms, p99 {} ms, \
         max {} ms",
        measured.len(),
        ms(p50),
        ms(p99),
        ms(max),
        ms(a50),
        ms(a99),
        ms(amax)
    );
    for r in readers {
        r.abort();
    }
    net.stop().await;
    Ok(())
}

/// Waits until every node has at least `want` peers (or the timeout passes); returns the
/// peer counts.
async fn wait_for_peers(net: &TestNet, want: u64, timeout: Duration) -> anyhow::Result<Vec<u64>> {
    let started = Instant::now();
    loop {
        let mut counts = Vec::new();
        for i in 0..net.nodes.len() {
            counts.push(net.status(i).await?["peer_count"].as_u64().unwrap_or(0));
        }
        if counts.iter().all(|&c| c >= want) || started.elapsed() > timeout {
            return Ok(counts);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits `batch` to node 0, waits for it in every mempool, mines a block on node 0 and
/// collects the block's arrival on every node.
async fn one_round(
    net: &TestNet,
    batch: &[peerchain_ledger::Transaction],
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    round: usize,
    nodes: usize,
) -> anyhow::Result<Round> {
    let txs = batch.len();
    let t = Instant::now();
    let (status, body) = net
        .post(0, "/v1/transactions/batch", &serde_json::to_value(batch)?)
        .await?;
    if status != 200 {
        bail!("batch answered {status}: {body}");
    }
    let refused: Vec<&Value> = body
        .as_array()
        .context("batch answer is not an array")?
        .iter()
        .filter(|item| item.get("error").is_some())
        .collect();
    if let Some(first) = refused.first() {
        bail!("{} of {txs} refused, first: {first}", refused.len());
    }
    // Wait for gossip to fill every mempool (or to stall), so only the block travels afterwards.
    let mut sizes = vec![0u64; nodes];
    let mut last_change = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let complete = loop {
        let mut changed = false;
        for (i, size) in sizes.iter_mut().enumerate() {
            let now = net.status(i).await?["mempool_size"].as_u64().unwrap_or(0);
            changed |= now != *size;
            *size = now;
        }
        if sizes.iter().all(|&s| s >= txs as u64) {
            break true;
        }
        if changed {
            last_change = Instant::now();
        }
        if last_change.elapsed() > Duration::from_secs(2) || Instant::now() > deadline {
            println!(
                "warning: round {round}: transaction gossip stalled, mempool sizes {sizes:?}; \
                 rejections by reason on the short nodes: {}",
                rejections(net, &sizes, txs as u64).await
            );
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let gossip = t.elapsed();
    // Forget stale events, then mine.
    while seen.try_recv().is_ok() {}
    let t_mine = Instant::now();
    let hashes = net.mine(0, 1).await?;
    let mine_call = t_mine.elapsed();
    let hash = hashes.first().context("mine answered no hash")?.clone();
    let mut arrivals: HashMap<usize, Instant> = HashMap::new();
    let mut early: Vec<(usize, String, Instant)> = Vec::new();
    let mut tx_count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while arrivals.len() < nodes {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(Seen::Block {
                node,
                hash: h,
                tx_count: n,
                at,
            })) => {
                if h == hash {
                    if node == 0 {
                        tx_count = n;
                    }
                    arrivals.entry(node).or_insert(at);
                } else {
                    early.push((node, h, at));
                }
            }
            Ok(Some(Seen::Connected)) => {}
            Ok(None) => bail!("every event stream ended"),
            Err(_) => bail!(
                "round {round}: block {hash} reached only nodes {:?} within 60 s (other \
                 blocks seen: {early:?})",
                arrivals.keys().collect::<Vec<_>>()
            ),
        }
    }
    let mine_returned = t_mine + mine_call;
    let origin = arrivals[&0].min(mine_returned);
    let latency: Vec<Duration> = (0..nodes)
        .map(|i| arrivals[&i].saturating_duration_since(origin))
        .collect();
    let mut others: Vec<Duration> = latency[1..].to_vec();
    let (median, _, last) = summary(&mut others);
    let height = net.status(0).await?["height"].as_u64().unwrap_or(0);
    println!(
        "{:>5} {:>6} {:>6} {:>12} {:>10} {:>12} {:>12} {:>12}",
        if round == 0 {
            "warm".to_owned()
        } else {
            round.to_string()
        },
        height,
        tx_count,
        fmt_duration(gossip),
        fmt_duration(mine_call),
        fmt_duration(arrivals[&0].saturating_duration_since(t_mine)),
        fmt_duration(median),
        fmt_duration(last)
    );
    Ok(Round {
        latency,
        last,
        complete,
    })
}

/// `peerchain_transactions_rejected_total` by reason of each node whose mempool holds fewer
/// than `want` transactions (from its `/metrics`).
async fn rejections(net: &TestNet, sizes: &[u64], want: u64) -> String {
    let mut out = Vec::new();
    for (i, _) in sizes.iter().enumerate().filter(|(_, s)| **s < want) {
        let text = match reqwest::get(format!("{}/metrics", net.nodes[i].url)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        let reasons: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("peerchain_transactions_rejected_total{"))
            .map(|l| {
                l.trim_start_matches("peerchain_transactions_rejected_total{reason=\"")
                    .replace("\"} ", "=")
            })
            .collect();
        out.push(format!("node {i}: [{}]", reasons.join(", ")));
    }
    out.join("; ")
}

/// Reads node `node`'s `block` events and reports each one's arrival time.
async fn read_events(
    http: reqwest::Client,
    node: usize,
    url: String,
    out: mpsc::UnboundedSender<Seen>,
) {
    let result = async {
        let mut resp = http
            .get(format!("{url}/v1/events?types=block"))
            .send()
            .await?
            .error_for_status()?;
        let _ = out.send(Seen::Connected);
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            let at = Instant::now();
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let (mut name, mut data) = ("", String::new());
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if name == "block"
                    && let Ok(v) = serde_json::from_str::<Value>(&data)
                {
                    let _ = out.send(Seen::Block {
                        node,
                        hash: v["hash"].as_str().unwrap_or_default().to_owned(),
                        tx_count: v["tx_count"].as_u64().unwrap_or(0),
                        at,
                    });
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("event stream of node {node} failed: {e:#}");
    }
}
