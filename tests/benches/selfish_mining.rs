//! Selfish mining, measured (issue 11): the share of main-chain blocks a selfish miner
//! (`--adversary selfish:DEPTH`) earns against its share of the hash rate.
//!
//! Starts `PEERCHAIN_BENCH_HONEST` (2) honest mining nodes and one selfish node, all real
//! nodes in this process with capped hash rates, so the selfish node has the fraction
//! `PEERCHAIN_BENCH_ALPHA_PCT` (40) of the total `PEERCHAIN_BENCH_HASHRATE` (40,000 hashes a
//! second). The genesis target is set for one block every `PEERCHAIN_BENCH_BLOCK_MS` (500) ms
//! at that rate. Once honest node 0 is `PEERCHAIN_BENCH_BLOCKS` (200) blocks high (plus 6 to
//! settle), it counts who mined each main-chain block, and prints the selfish share next to
//! alpha and Eyal and Sirer's expected revenue for gamma 0 and 0.5 (gamma: the honest share
//! that mines on the selfish branch during a tie; here it depends on gossip order).
//!
//! Theory: above alpha = 1/3 a selfish miner earns more than alpha whatever gamma is. This is a
//! measurement, not a defence: nothing in the protocol stops it.
//!
//! Run: `cargo bench -p peerchain-tests --bench selfish_mining`

use std::time::{Duration, Instant};

use anyhow::Context;
use peerchain::adversary::AdversaryMode;
use peerchain::config::target_for_hashrate;
use peerchain_ledger::{Address, Genesis, Target, U256};
use peerchain_testkit::{env_count, smoke_note};
use peerchain_tests::{NodeOptions, TestNet};

const SELFISH_MINER: Address = Address([0xbb; 20]);

/// Eyal and Sirer's relative revenue of a selfish miner with hash share `a` and tie share `g`.
fn expected_share(a: f64, g: f64) -> f64 {
    let num = a * (1.0 - a).powi(2) * (4.0 * a + g * (1.0 - 2.0 * a)) - a.powi(3);
    let den = 1.0 - a * (1.0 + (2.0 - a) * a);
    num / den
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    smoke_note();
    let honest = env_count("PEERCHAIN_BENCH_HONEST", 2, 2);
    let alpha_pct = env_count("PEERCHAIN_BENCH_ALPHA_PCT", 40, 40) as u64;
    let total = env_count("PEERCHAIN_BENCH_HASHRATE", 40_000, 40_000) as u64;
    let block_ms = env_count("PEERCHAIN_BENCH_BLOCK_MS", 500, 300) as u64;
    let blocks = env_count("PEERCHAIN_BENCH_BLOCKS", 200, 20) as u64;
    let depth = env_count("PEERCHAIN_BENCH_DEPTH", 8, 8) as u32;
    let selfish_rate = total * alpha_pct / 100;
    let honest_rate = (total - selfish_rate) / honest as u64;

    let mut genesis = Genesis::dev(10, 1_000_000_000, block_ms);
    genesis.initial_target = target_for_hashrate(total, block_ms);
    genesis.pow_limit = Target(U256::MAX >> 4);
    let options = NodeOptions {
        mine: true,
        hashrate: Some(honest_rate),
        ..NodeOptions::default()
    };
    let mut net = TestNet::start(honest, genesis, options).await?;
    net.add_node(NodeOptions {
        mine: true,
        hashrate: Some(selfish_rate),
        adversary: Some(AdversaryMode::Selfish { depth }),
        miner: SELFISH_MINER,
        ..NodeOptions::default()
    })
    .await?;
    println!(
        "selfish mining: {honest} honest nodes at {honest_rate} H/s each, one selfish node \
         (depth {depth}) at {selfish_rate} H/s (alpha {:.2}), one block per {block_ms} ms, \
         {blocks} blocks",
        alpha_pct as f64 / 100.0
    );
    let started = Instant::now();
    let limit = Duration::from_millis(block_ms * blocks * 10 + 60_000);
    loop {
        let height = net.status(0).await?["height"].as_u64().unwrap_or(0);
        if height >= blocks + 6 {
            break;
        }
        anyhow::ensure!(started.elapsed() < limit, "stuck at height {height}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    let selfish_hex = SELFISH_MINER.to_hex();
    let mut selfish_blocks = 0u64;
    for height in 1..=blocks {
        let block = net.get(0, &format!("/v1/blocks/{height}")).await?;
        let miner = block["miner"].as_str().context("a miner")?;
        if miner == selfish_hex {
            selfish_blocks += 1;
        }
    }
    let tips = net.get(0, "/v1/chain/tips").await?;
    let orphaned = tips.as_array().map_or(0, |t| t.len().saturating_sub(1));
    let alpha = alpha_pct as f64 / 100.0;
    let share = selfish_blocks as f64 / blocks as f64;
    println!(
        "main chain 1..={blocks} after {:.1} s: selfish {selfish_blocks} blocks = share {share:.3} \
         (alpha {alpha:.2}; Eyal-Sirer expects {:.3} at gamma 0, {:.3} at gamma 0.5); \
         branches left beside the main chain at node 0: {orphaned}",
        elapsed.as_secs_f64(),
        expected_share(alpha, 0.0),
        expected_share(alpha, 0.5),
    );
    net.stop().await;
    Ok(())
}
