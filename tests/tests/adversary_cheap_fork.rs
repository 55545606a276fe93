//! Hostile peers, defect 2, over the real protocols: a peer gossips a valid but lighter side
//! branch (a fork from genesis). The honest nodes used to store it, answer Accept and relay it
//! to everyone, growing every node's block tree and disk. Now an unrequested block that leaves
//! its branch lighter than the active tip is neither stored nor relayed.

mod adversary_support;

use std::time::Duration;

use adversary_support::Raw;
use peerchain_consensus::{Chain, ChainConfig, build_template, solve};
use peerchain_ledger::{Address, Store};
use peerchain_testkit::now_ms;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lighter_side_branch_is_neither_stored_nor_relayed() {
    let genesis = easy_genesis();
    let net = TestNet::start(2, genesis.clone(), NodeOptions::default())
        .await
        .expect("honest nodes");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("connected");
    net.mine(0, 10).await.expect("honest chain");
    net.wait_same_tip(10, Duration::from_secs(20))
        .await
        .expect("same tip");

    // The attacker: its own chain, forked at genesis, 6 valid blocks (less work than 10).
    let store = Store::temporary(&genesis).expect("store");
    let mut fork = Chain::open(store, genesis.clone(), ChainConfig::default()).expect("chain");
    let mut blocks = Vec::new();
    for i in 0..6u64 {
        let template =
            build_template(&fork, Address([0x42; 20]), now_ms() + i * 100).expect("template");
        let block = solve(template).expect("solved");
        fork.import(block.clone(), None, now_ms() + 10_000)
            .expect("own import");
        blocks.push(block);
    }
    assert_eq!(fork.tip(), blocks[5].hash(), "a valid branch of its own");
    let attacker = Raw::start(&genesis, vec![net.nodes[0].p2p.clone()], 4, None).await;
    tokio::time::sleep(Duration::from_millis(2000)).await; // connected, mesh formed
    for block in &blocks {
        attacker.net.publish_block(block).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    for i in 0..2 {
        for block in &blocks {
            let url = format!("{}/v1/blocks/{}", net.nodes[i].url, block.hash());
            let status = reqwest::get(&url).await.expect("GET").status();
            assert_eq!(status, 404, "node {i} stored side block {}", block.hash());
        }
        let tips = net.get(i, "/v1/chain/tips").await.expect("tips");
        assert_eq!(
            tips.as_array().map(Vec::len),
            Some(1),
            "node {i} keeps one tip: {tips}"
        );
        let s = net.status(i).await.expect("status");
        assert_eq!(s["height"].as_u64(), Some(10), "node {i}: {s}");
    }
    attacker.net.shutdown().await;
    net.stop().await;
}
