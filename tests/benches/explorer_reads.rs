//! Explorer reads on a large chain at a fixed request rate (issue 6).
//!
//! Writes a chain of `PEERCHAIN_BENCH_TXS` (1,000,000) confirmed transfers, in blocks of
//! `PEERCHAIN_BENCH_BLOCK_TXS` (5,000), between `PEERCHAIN_BENCH_SENDERS` (2,000) dev accounts
//! straight into a node's store (valid blocks: required targets, solved proof of work, real
//! signatures), then starts the node on it (mining off, sled cache `PEERCHAIN_BENCH_CACHE_MB`,
//! 64 MiB like the node's default) and drives each endpoint open-loop: request `k` is sent at
//! `start + k / rate` whether or not earlier ones completed, `PEERCHAIN_BENCH_RATE` (1,000)
//! requests per second for `PEERCHAIN_BENCH_SECS` (10) seconds, after a warm-up of
//! `PEERCHAIN_BENCH_WARMUP_SECS` (2) seconds of the same mix. A request's latency runs from its
//! scheduled time to the end of its response body, so a generator that falls behind shows up
//! in the figures instead of hiding queueing.
//!
//! - history: `GET /v1/accounts/{addr}/transactions?limit=25` for a random account, one time
//!   in three continuing with a `cursor` returned by an earlier page;
//! - transaction: `GET /v1/transactions/{txid}` for a random confirmed txid;
//! - block: `GET /v1/blocks/{height}` for a random height.
//!
//! The load generator and the node share this process and its cores.
//!
//! Run: `cargo bench -p peerchain-tests --bench explorer_reads`

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::build_chain;
use peerchain_ledger::{Address, Hash};
use peerchain_testkit::{
    Rng, Transfers, env_count, fmt_duration, mib, ms, node_genesis, smoke_note, summary,
};
use peerchain_tests::{NodeOptions, TestNet};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

/// The endpoints measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    History,
    Transaction,
    Block,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::History => "account history page",
            Endpoint::Transaction => "transaction lookup",
            Endpoint::Block => "block lookup",
        }
    }
}

/// What requests are made of.
#[derive(Debug)]
struct Targets {
    addresses: Vec<Address>,
    txids: Vec<Hash>,
    height: u64,
    /// Cursors returned by earlier history pages: (address, cursor).
    cursors: Mutex<Vec<(String, String)>>,
}

impl Targets {
    /// The path of the next request to `e`, and the address whose cursor to record.
    fn pick(&self, e: Endpoint, rng: &mut Rng) -> (String, Option<String>) {
        match e {
            Endpoint::History => {
                let resumed = if rng.below(3) == 0 {
                    let cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
                    (!cursors.is_empty()).then(|| cursors[rng.below(cursors.len())].clone())
                } else {
                    None
                };
                match resumed {
                    Some((addr, cursor)) => (
                        format!("/v1/accounts/{addr}/transactions?limit=25&cursor={cursor}"),
                        Some(addr),
                    ),
                    None => {
                        let addr = self.addresses[rng.below(self.addresses.len())].to_hex();
                        (
                            format!("/v1/accounts/{addr}/transactions?limit=25"),
                            Some(addr),
                        )
                    }
                }
            }
            Endpoint::Transaction => (
                format!(
                    "/v1/transactions/{}",
                    self.txids[rng.below(self.txids.len())]
                ),
                None,
            ),
            Endpoint::Block => (
                format!("/v1/blocks/{}", 1 + rng.below(self.height as usize)),
                None,
            ),
        }
    }

    fn remember(&self, addr: String, body: &[u8]) {
        let Ok(page) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        if let Some(cursor) = page["next_cursor"].as_str() {
            let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            if cursors.len() >= 1_000 {
                cursors.swap_remove(0);
            }
            cursors.push((addr, cursor.to_owned()));
        }
    }
}

/// Outcome of one request.
#[derive(Debug)]
enum Outcome {
    Ok(Duration),
    Failed(String),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smoke_note();
    let total = env_count("PEERCHAIN_BENCH_TXS", 1_000_000, 2_000).max(1);
    let per_block = env_count("PEERCHAIN_BENCH_BLOCK_TXS", 5_000, 200).clamp(1, 20_000);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 2_000, 20).max(2);
    let rate = env_count("PEERCHAIN_BENCH_RATE", 1_000, 200).max(1);
    let secs = env_count("PEERCHAIN_BENCH_SECS", 10, 1).max(1);
    let warmup = env_count("PEERCHAIN_BENCH_WARMUP_SECS", 2, 0);
    let cache_mb = env_count("PEERCHAIN_BENCH_CACHE_MB", 64, 16).max(1) as u64;
    let blocks = total.div_ceil(per_block);
    let genesis = node_genesis(u32::try_from(senders).context("sender count")?);
    println!(
        "explorer_reads: {} transactions in {blocks} blocks of {per_block} from {senders} \
         senders; {rate} requests/s for {secs} s per endpoint; node cache {cache_mb} MiB",
        blocks * per_block
    );

    let mut net = TestNet::start(0, genesis.clone(), NodeOptions::default()).await?;
    let mut transfers = Transfers::new(&genesis, u32::try_from(senders)?);
    let built = build_chain(
        &net.node_dir(0).join("chain"),
        &genesis,
        &mut transfers,
        blocks,
        per_block,
        (blocks / 10).max(1),
    )?;
    println!(
        "chain built in {} (signing {}, apply+commit {}): {} transactions, {} blocks, \
         {:.1} MiB on disk",
        fmt_duration(built.total),
        fmt_duration(built.signing),
        fmt_duration(built.commit),
        built.txs,
        built.blocks,
        mib(built.disk_bytes)
    );
    let t = Instant::now();
    net.add_node(NodeOptions {
        cache_mb,
        ..NodeOptions::default()
    })
    .await?;
    let status = net.status(0).await?;
    if status["height"].as_u64() != Some(blocks as u64) {
        bail!("the node did not load the built chain: {status}");
    }
    println!("node started on it in {}", fmt_duration(t.elapsed()));

    let targets = Arc::new(Targets {
        addresses: transfers.addresses.clone(),
        txids: built.txids,
        height: blocks as u64,
        cursors: Mutex::new(Vec::new()),
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build()?;
    let url = net.nodes[0].url.clone();
    let mut rng = Rng::new(0x5EED);
    let all = [Endpoint::History, Endpoint::Transaction, Endpoint::Block];
    if warmup > 0 {
        let t = Instant::now();
        run(&http, &url, &targets, &all, rate, warmup, &mut rng).await;
        println!(
            "warm-up: {} s of the mix in {}",
            warmup,
            fmt_duration(t.elapsed())
        );
    }
    println!(
        "{:<22} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "endpoint", "requests", "errors", "sent/s", "p50 ms", "p99 ms", "max ms"
    );
    println!("{}", "-".repeat(80));
    let mut lines = Vec::new();
    for e in all {
        let (outcomes, span) = run(&http, &url, &targets, &[e], rate, secs, &mut rng).await;
        let sent_rate = outcomes.len() as f64 / span.as_secs_f64().max(1e-9);
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Ok(d) => latencies.push(d),
                Outcome::Failed(why) => errors.push(why),
            }
        }
        let (p50, p99, max) = summary(&mut latencies);
        println!(
            "{:<22} {:>8} {:>7} {:>9.0} {:>9} {:>9} {:>9}",
            e.name(),
            latencies.len() + errors.len(),
            errors.len(),
            sent_rate,
            ms(p50),
            ms(p99),
            ms(max)
        );
        if let Some(first) = errors.first() {
            println!("  first error: {first}");
        }
        lines.push(format!("{} p50 {} p99 {} ms", e.name(), ms(p50), ms(p99)));
    }
    println!(
        "summary at {rate} requests/s on {} transactions: {} (goal: p99 < 10 ms at 1,000 \
         requests/s); chain built in {}",
        built.txs,
        lines.join("; "),
        fmt_duration(built.total)
    );
    net.stop().await;
    Ok(())
}

/// Sends `rate * secs` requests open-loop, cycling through `endpoints`; returns every outcome
/// (latency from the scheduled send time to the end of the body) and the time it took to send
/// them all (about `secs` unless the generator fell behind).
async fn run(
    http: &reqwest::Client,
    url: &str,
    targets: &Arc<Targets>,
    endpoints: &[Endpoint],
    rate: usize,
    secs: usize,
    rng: &mut Rng,
) -> (Vec<Outcome>, Duration) {
    let count = rate * secs;
    let started = Instant::now();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for k in 0..count {
        let scheduled = tick.tick().await;
        let e = endpoints[k % endpoints.len()];
        let (path, record) = targets.pick(e, rng);
        let (http, targets, done_tx) = (http.clone(), targets.clone(), done_tx.clone());
        let full = format!("{url}{path}");
        tokio::spawn(async move {
            let outcome = match http.get(&full).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) if status.is_success() => {
                            let latency = scheduled.elapsed();
                            if let Some(addr) = record {
                                targets.remember(addr, &body);
                            }
                            Outcome::Ok(latency)
                        }
                        Ok(body) => Outcome::Failed(format!(
                            "GET {full}: {status} {}",
                            String::from_utf8_lossy(&body)
                        )),
                        Err(e) => Outcome::Failed(format!("GET {full}: {e}")),
                    }
                }
                Err(e) => Outcome::Failed(format!("GET {full}: {e}")),
            };
            let _ = done_tx.send(outcome);
        });
    }
    drop(done_tx);
    // Rate of sending: `count` requests over `count - 1` intervals.
    let span = started
        .elapsed()
        .mul_f64(count as f64 / (count.max(2) - 1) as f64);
    let mut outcomes = Vec::with_capacity(count);
    while let Some(o) = done.recv().await {
        outcomes.push(o);
    }
    (outcomes, span)
}
