//! Hostile peers, defect 2: serving sync requests amplifies memory.
//!
//! The slow reader is a raw network instance in `Adversary::SlowReader` mode: it learns the
//! victim's block hashes, then asks again and again for blocks (one big block 128 times, or
//! 128 distinct blocks) and never reads the answers. Before the fix each answer (up to 8 MiB,
//! plus an encoding copy) waited in libp2p's send path for the reader, up to 64 streams per
//! connection: about a gigabyte for one peer. Now the responder deduplicates the hashes,
//! holds at most a per-peer byte budget of responses in flight (16 MiB; 64 MiB in total),
//! writes stored blocks without copying them, and penalises and disconnects a peer whose
//! responses time out unread (a ban at the second time).
//!
//! The honest nodes are real nodes in this process, so the process's resident memory is the
//! victim's (plus its honest peer's and the reader's few buffers). The test samples `VmRSS`
//! while the reader attacks and prints the peak.

mod adversary_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adversary_support::{Raw, rss_mib, tip, wait_for};
use peerchain_network::Adversary;
use peerchain_testkit::Transfers;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};

/// Transactions in each big block (148 bytes each: about 300 kB per block, so 128 copies of
/// one would be capped at 8 MiB per answer before the fix).
const BIG_BLOCK_TXS: usize = 2000;
/// Big blocks mined before the attack.
const BIG_BLOCKS: usize = 2;
/// How long the attack is watched at least (memory), and at most (until the reader is
/// banned: its unread responses time out 20 s after it asked, twice).
const ATTACK: Duration = Duration::from_secs(30);
const ATTACK_MAX: Duration = Duration::from_secs(50);
/// Growth of resident memory during the attack allowed (before the fix: about 1 GiB).
const RSS_GROWTH_LIMIT_MIB: u64 = 256;

/// Submits `txs` to node `i`, one sender after another in nonce order, senders in parallel.
async fn submit_all(net: &TestNet, i: usize, txs: Vec<peerchain_ledger::Transaction>) {
    let mut by_sender: std::collections::BTreeMap<[u8; 32], Vec<_>> = Default::default();
    for tx in txs {
        by_sender.entry(tx.from.0).or_default().push(tx);
    }
    let jobs = by_sender.into_values().map(|list| async move {
        for tx in list {
            let body = serde_json::to_value(&tx).expect("transaction JSON");
            let (status, answer) = net
                .post(i, "/v1/transactions", &body)
                .await
                .expect("submitted");
            assert_eq!(status, 202, "submit: {answer}");
        }
    });
    futures::future::join_all(jobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_cannot_grow_the_victims_memory_and_the_network_keeps_going() {
    let g = easy_genesis();
    // The victim (node 0) and an honest peer (node 1), both real nodes.
    let net = TestNet::start(2, g.clone(), NodeOptions::default())
        .await
        .expect("nodes start");
    net.wait_all("a peer each", Duration::from_secs(20), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("connected");
    let victim_id = net.nodes[0].peer_id.clone();

    // Big blocks for the reader to ask for.
    let mut transfers = Transfers::new(&g, 10);
    for _ in 0..BIG_BLOCKS {
        submit_all(&net, 0, transfers.sign_all(BIG_BLOCK_TXS)).await;
        let mined = net.mine(0, 1).await.expect("mined");
        let block = net
            .get(0, &format!("/v1/blocks/{}", mined[0]))
            .await
            .expect("block");
        let txs = block["tx_count"].as_u64().unwrap_or_default() as usize;
        assert!(txs >= BIG_BLOCK_TXS, "a big block: {txs} transactions");
    }
    let (_, height) = tip(&net, 0).await;
    net.wait_same_tip(height, Duration::from_secs(30))
        .await
        .expect("same tip");

    // Sample resident memory from now on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_mib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    // The slow reader: the victim is its only peer.
    let started = Instant::now();
    let reader = Raw::start(
        &g,
        vec![net.nodes[0].p2p.clone()],
        1,
        Some(Adversary::SlowReader),
    )
    .await;
    wait_for("the reader's handshake", 20, async || {
        reader.met(&victim_id)
    })
    .await;

    // The honest network keeps making progress meanwhile: the honest peer mines a block
    // every 2 s and the victim follows it.
    let mut mined = 0;
    let mut banned = None;
    while started.elapsed() < ATTACK_MAX && (started.elapsed() < ATTACK || banned.is_none()) {
        let hashes = net.mine(1, 1).await.expect("mined");
        mined += 1;
        let hash = hashes[0].clone();
        wait_for("the victim to follow the honest peer", 20, async || {
            tip(&net, 0).await.0 == hash
        })
        .await;
        // Banned: dropped twice, and its redials (the victim is its bootnode) refused.
        if banned.is_none() {
            let (drops, last) = reader.drops_by(&victim_id);
            if drops >= 2
                && last.is_some_and(|t| t.elapsed() > Duration::from_secs(1))
                && !net.peer_ids(0).await.contains(&reader.peer_id)
            {
                banned = last.map(|t| t.saturating_duration_since(started));
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    // The reader did not read: the victim penalised and disconnected it; it came back (the
    // victim is its bootnode), did it again, and was banned.
    let dropped = reader
        .dropped_by(&victim_id)
        .map(|at| at.saturating_duration_since(started));
    println!(
        "slow-reader: resident memory {baseline} MiB before the attack, peak {peak} MiB during \
         {:?} (growth {} MiB, limit {RSS_GROWTH_LIMIT_MIB} MiB); the victim dropped the \
         reader {dropped:?} after it started and banned it {banned:?} after it started; honest \
         blocks mined and followed during the attack: {mined}",
        started.elapsed(),
        peak.saturating_sub(baseline)
    );
    assert!(
        peak.saturating_sub(baseline) < RSS_GROWTH_LIMIT_MIB,
        "resident memory grew from {baseline} MiB to {peak} MiB"
    );
    assert!(dropped.is_some(), "the slow reader was never dropped");
    assert!(banned.is_some(), "the slow reader was never banned");
    assert!(reader.net.peers().await.is_empty());
    let (_, h0) = tip(&net, 0).await;
    assert_eq!(h0, height + mined);
    assert!(
        !net.peer_ids(0).await.is_empty(),
        "the victim kept its honest peer"
    );

    reader.stop().await;
    net.stop().await;
}
