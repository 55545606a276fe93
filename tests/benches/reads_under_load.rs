//! Explorer reads while the chain thread is busy (issue 10): latency of `GET /v1/status` and
//! `GET /v1/mempool` on one node while it admits 10,000-transaction batches.
//!
//! Signs `PEERCHAIN_BENCH_BATCHES` (4) batches of `PEERCHAIN_BENCH_BATCH` (10,000) transfers
//! from 200 dev accounts before any timing. Then one client submits the batches back to back
//! through `POST /v1/transactions/batch` (each one keeps the chain thread busy with signature
//! checks and admission for a few hundred ms) while a second client reads status and mempool
//! pages in a loop. Prints the read latencies measured while a batch was in flight, next to
//! the batch durations, so a reader sees that reads do not queue behind the chain thread.
//! Goal: p99 under 10 ms. The clients and the node share this process and its two cores.
//!
//! Run: `cargo bench -p peerchain-tests --bench reads_under_load`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain_testkit::{
    Transfers, env_count, fmt_duration, ms, node_genesis, smoke_note, summary,
};
use peerchain_tests::{NodeOptions, TestNet};
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smoke_note();
    let batch = env_count("PEERCHAIN_BENCH_BATCH", 10_000, 500).clamp(1, 10_000);
    let batches = env_count("PEERCHAIN_BENCH_BATCHES", 4, 2).max(1);
    let senders: u32 = 200;
    if (batch * batches).div_ceil(senders as usize) > 1_000 {
        bail!("too many transactions per sender for the mempool's nonce window");
    }
    let genesis = node_genesis(senders);
    let mut transfers = Transfers::new(&genesis, senders);
    let bodies: Vec<Vec<u8>> = (0..batches)
        .map(|_| serde_json::to_vec(&transfers.sign_all(batch)))
        .collect::<Result<_, _>>()?;
    let net = TestNet::start(1, genesis, NodeOptions::default()).await?;
    let url = net.nodes[0].url.clone();

    let busy = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (busy, done, url) = (busy.clone(), done.clone(), url.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut status, mut mempool) = (Vec::new(), Vec::new());
            while !done.load(Ordering::Relaxed) {
                for (path, into) in [("/v1/status", &mut status), ("/v1/mempool", &mut mempool)] {
                    let t = Instant::now();
                    let r = http.get(format!("{url}{path}")).send().await?;
                    let ok = r.status().is_success();
                    let _ = r.bytes().await?;
                    if !ok {
                        bail!("GET {path} failed");
                    }
                    if busy.load(Ordering::Relaxed) {
                        into.push(t.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            anyhow::Ok((status, mempool))
        })
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut batch_times = Vec::new();
    for body in bodies {
        busy.store(true, Ordering::Relaxed);
        let t = Instant::now();
        let r = http
            .post(format!("{url}/v1/transactions/batch"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let code = r.status();
        let answer: Value = r.json().await?;
        batch_times.push(t.elapsed());
        busy.store(false, Ordering::Relaxed);
        let items = answer.as_array().context("batch answer")?;
        if !code.is_success() || items.iter().any(|i| i.get("error").is_some()) {
            bail!("batch refused: {code}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, Ordering::Relaxed);
    let (mut status, mut mempool) = reader.await??;
    net.stop().await;
    println!(
        "reads_under_load: {batches} batches of {batch} transfers, each admitted in {}",
        batch_times
            .iter()
            .map(|d| fmt_duration(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:<14} {:>8} {:>10} {:>10} {:>10}",
        "route", "reads", "p50 ms", "p99 ms", "max ms"
    );
    for (route, v) in [("/v1/status", &mut status), ("/v1/mempool", &mut mempool)] {
        let n = v.len();
        let (p50, p99, max) = summary(v);
        println!(
            "{route:<14} {n:>8} {:>10} {:>10} {:>10}",
            ms(p50),
            ms(p99),
            ms(max)
        );
    }
    println!("(reads counted only while a batch was in flight; goal: p99 under 10 ms)");
    Ok(())
}
