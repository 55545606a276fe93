//! Transaction submission throughput of one node's HTTP API (issue 6).
//!
//! Signs transfers from `PEERCHAIN_BENCH_SENDERS` (200) dev accounts (round-robin, consecutive
//! nonces) and encodes them as JSON before any timing: signing and encoding are the client's
//! cost. Then, each phase on a fresh node (mining off, empty mempool):
//!
//! - single: `PEERCHAIN_BENCH_SINGLE_TXS` (20,000) `POST /v1/transactions` from
//!   `PEERCHAIN_BENCH_CLIENTS` (8) concurrent tasks, each with its own keep-alive client and
//!   its own senders, one request at a time;
//! - batch: `PEERCHAIN_BENCH_TXS` (80,000) through `POST /v1/transactions/batch` for every
//!   batch size of `PEERCHAIN_BENCH_BATCH` (1000,5000,10000) and every client count of
//!   `PEERCHAIN_BENCH_BATCH_CLIENTS` (1,2).
//!
//! Every transaction must be admitted (a refusal aborts the run); the node's mempool size is
//! checked at the end of each phase. The client and the node share this process and its cores.
//!
//! Run: `cargo bench -p peerchain-tests --bench submit_throughput`

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_ledger::{Genesis, Transaction};
use peerchain_testkit::{Transfers, env_count, env_counts, fmt_duration, node_genesis, smoke_note};
use peerchain_tests::{NodeOptions, TestNet};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smoke_note();
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 200, 16).max(2);
    let single_txs = env_count("PEERCHAIN_BENCH_SINGLE_TXS", 20_000, 200);
    let clients = env_count("PEERCHAIN_BENCH_CLIENTS", 8, 4).max(1);
    let batch_txs = env_count("PEERCHAIN_BENCH_TXS", 80_000, 1_000);
    let batch_sizes = env_counts("PEERCHAIN_BENCH_BATCH", &[1_000, 5_000, 10_000], &[250]);
    let batch_clients = env_counts("PEERCHAIN_BENCH_BATCH_CLIENTS", &[1, 2], &[1, 2]);
    let most = single_txs.max(batch_txs);
    if most.div_ceil(senders) > 1_000 {
        bail!(
            "{most} transactions from {senders} senders exceed the mempool's 1,000 pending per \
             sender; raise PEERCHAIN_BENCH_SENDERS"
        );
    }
    if batch_sizes.iter().any(|&b| b == 0 || b > 10_000) {
        bail!("batch sizes must be 1..=10000: {batch_sizes:?}");
    }
    let genesis = node_genesis(u32::try_from(senders).context("sender count")?);
    let t = Instant::now();
    let mut transfers = Transfers::new(&genesis, u32::try_from(senders)?);
    let txs = transfers.sign_all(most);
    println!(
        "submit_throughput: {senders} senders, {most} transfers signed in {} (not timed)",
        fmt_duration(t.elapsed())
    );
    println!(
        "{:<8} {:>8} {:>7} {:>9} {:>12} {:>12}",
        "mode", "clients", "batch", "txs", "time", "tx/s"
    );
    println!("{}", "-".repeat(62));

    let single = run_phase(&genesis, &txs[..single_txs], senders, clients, 1).await?;
    let mut results = vec![("single", clients, 1, single)];
    for &c in &batch_clients {
        for &b in &batch_sizes {
            let r = run_phase(&genesis, &txs[..batch_txs], senders, c.max(1), b).await?;
            results.push(("batch", c.max(1), b, r));
        }
    }
    let best = results
        .iter()
        .filter(|r| r.0 == "batch")
        .map(|r| r.3)
        .fold(0.0, f64::max);
    println!("{}", "-".repeat(62));
    println!(
        "summary: single {:.0} tx/s ({clients} clients); best batch {best:.0} tx/s \
         (goal: batch 20,000 tx/s)",
        results[0].3
    );
    Ok(())
}

/// Submits `txs` to a fresh node with `clients` concurrent clients, one transaction per
/// request when `batch` is 1 (the single route), else in batches of `batch`; prints a row and
/// returns the transactions per second.
async fn run_phase(
    genesis: &Genesis,
    txs: &[Transaction],
    senders: usize,
    clients: usize,
    batch: usize,
) -> anyhow::Result<f64> {
    let net = TestNet::start(1, genesis.clone(), NodeOptions::default()).await?;
    let url = net.nodes[0].url.clone();
    // Client c sends the transactions of senders s with s % clients == c, in their order:
    // each sender's nonces stay contiguous whatever the interleaving of clients.
    let mut bodies: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients];
    let mut mine: Vec<Vec<&Transaction>> = vec![Vec::new(); clients];
    for (i, tx) in txs.iter().enumerate() {
        mine[(i % senders) % clients].push(tx);
    }
    for (c, list) in mine.iter().enumerate() {
        for chunk in list.chunks(batch) {
            let body = if batch == 1 {
                serde_json::to_vec(chunk[0])?
            } else {
                serde_json::to_vec(chunk)?
            };
            bodies[c].push(body);
        }
    }
    let path = if batch == 1 {
        "/v1/transactions"
    } else {
        "/v1/transactions/batch"
    };
    let t = Instant::now();
    let mut tasks = Vec::new();
    for list in bodies {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let endpoint = format!("{url}{path}");
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0usize;
            for body in list {
                let resp = http
                    .post(&endpoint)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status().as_u16();
                let answer: Value = resp.json().await.unwrap_or(Value::Null);
                if batch == 1 {
                    if status != 202 {
                        bail!("POST {endpoint} answered {status}: {answer}");
                    }
                    admitted += 1;
                } else {
                    if status != 200 {
                        bail!("POST {endpoint} answered {status}: {answer}");
                    }
                    let items = answer.as_array().context("batch answer is not an array")?;
                    if let Some(err) = items.iter().find(|i| i.get("error").is_some()) {
                        bail!("a batch item was refused: {err}");
                    }
                    admitted += items.len();
                }
            }
            anyhow::Ok(admitted)
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await??;
    }
    let elapsed = t.elapsed();
    let pool = net.status(0).await?["mempool_size"].as_u64().unwrap_or(0);
    if pool != txs.len() as u64 || admitted != txs.len() {
        bail!(
            "{admitted} of {} admitted, mempool holds {pool} transactions",
            txs.len()
        );
    }
    let rate = txs.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{:<8} {clients:>8} {batch:>7} {:>9} {:>12} {rate:>12.0}",
        if batch == 1 { "single" } else { "batch" },
        txs.len(),
        fmt_duration(elapsed)
    );
    net.stop().await;
    Ok(rate)
}
