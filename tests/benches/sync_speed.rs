//! Sync speed of a fresh node from one peer (issue 4).
//!
//! Writes a chain of `PEERCHAIN_BENCH_BLOCKS` (500) blocks of `PEERCHAIN_BENCH_TXS` (200)
//! transfers from `PEERCHAIN_BENCH_SENDERS` (100) dev accounts straight into node A's store
//! (valid blocks: required targets, solved proof of work, real signatures), starts node A on it,
//! then starts a fresh node B whose only bootnode is A and times until B's tip equals A's.
//! B validates everything it downloads (headers, proof of work, every signature, state) and
//! commits each block with an fsync, as the node always does. Both nodes run in this process
//! and share its cores.
//!
//! Run: `cargo bench -p peerchain-tests --bench sync_speed`

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::build_chain;
use peerchain_testkit::{Transfers, env_count, fmt_duration, mib, node_genesis, smoke_note};
use peerchain_tests::{NodeOptions, TestNet};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smoke_note();
    let blocks = env_count("PEERCHAIN_BENCH_BLOCKS", 500, 20).max(1);
    let txs = env_count("PEERCHAIN_BENCH_TXS", 200, 20);
    let senders = env_count("PEERCHAIN_BENCH_SENDERS", 100, 10).max(2);
    let timeout = Duration::from_secs(env_count("PEERCHAIN_BENCH_TIMEOUT_SECS", 900, 60) as u64);
    let genesis = node_genesis(u32::try_from(senders).context("sender count")?);
    println!(
        "sync_speed: {blocks} blocks x {txs} transactions from {senders} senders ({} transactions)",
        blocks * txs
    );

    let mut net = TestNet::start(0, genesis.clone(), NodeOptions::default()).await?;
    let mut transfers = Transfers::new(&genesis, u32::try_from(senders)?);
    let built = build_chain(
        &net.node_dir(0).join("chain"),
        &genesis,
        &mut transfers,
        blocks,
        txs,
        (blocks / 5).max(1),
    )?;
    println!(
        "chain of node A built in {} (signing {}, apply+commit {}), {:.1} MiB on disk",
        fmt_duration(built.total),
        fmt_duration(built.signing),
        fmt_duration(built.commit),
        mib(built.disk_bytes)
    );
    net.add_node(NodeOptions::default()).await?;
    let a = net.status(0).await?;
    let tip = built.tip.hash().to_hex();
    if a["tip_hash"].as_str() != Some(tip.as_str()) {
        bail!("node A did not load the built chain: {a}");
    }

    let t = Instant::now();
    net.add_node(NodeOptions::default()).await?;
    let startup = t.elapsed();
    println!("node B started in {}", fmt_duration(startup));
    println!("{:>10} {:>8} {:>12}", "elapsed", "height", "blocks/s");
    // First poll that saw B part-way (None when it synced between two polls).
    let mut first_block: Option<(Duration, u64)> = None;
    let mut last_print = Instant::now();
    loop {
        let s = net.status(1).await?;
        let height = s["height"].as_u64().unwrap_or(0);
        if s["tip_hash"].as_str() == Some(tip.as_str()) {
            break;
        }
        if first_block.is_none() && height > 0 {
            first_block = Some((t.elapsed(), height));
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            println!(
                "{:>10} {height:>8} {:>12.0}",
                fmt_duration(t.elapsed()),
                height as f64 / t.elapsed().as_secs_f64()
            );
        }
        if t.elapsed() > timeout {
            bail!("node B reached height {height} of {blocks} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = t.elapsed();
    let all_txs = built.txs as f64;
    println!(
        "node B synced {blocks} blocks ({} transactions) in {} (startup {}, first block seen \
         after {})",
        built.txs,
        fmt_duration(total),
        fmt_duration(startup),
        first_block.map_or_else(|| "n/a".to_owned(), |(d, _)| fmt_duration(d))
    );
    let after_first = match first_block {
        Some((first, height)) => {
            let rest = total.saturating_sub(first).max(Duration::from_micros(1));
            let left = (blocks as u64).saturating_sub(height) as f64;
            format!(
                "{:.0} blocks/s, {:.0} tx/s after its first block was seen",
                left / rest.as_secs_f64(),
                left * txs as f64 / rest.as_secs_f64()
            )
        }
        None => "synced between two polls".to_owned(),
    };
    println!(
        "summary: {:.0} blocks/s, {:.0} tx/s from node B's start (goal: 10,000 tx/s); \
         {after_first}",
        blocks as f64 / total.as_secs_f64(),
        all_txs / total.as_secs_f64(),
    );
    net.stop().await;
    Ok(())
}
