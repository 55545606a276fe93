//! Faults: clock skew. Three real nodes: one with a correct clock, one 6 s ahead and one 6 s
//! behind (`--clock-offset-ms`, test only), on a network that allows blocks 2 s into the
//! future. The node ahead mines a block that the others find too far in the future: they hold
//! it (no penalty, no ban) and accept it when their time comes; the node behind still follows
//! the chain; nobody forks for good.

use std::time::{Duration, Instant};

use peerchain_tests::{NodeOptions, TestNet, easy_genesis};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_clocks_neither_fork_the_network_nor_get_a_node_banned() {
    let mut genesis = easy_genesis();
    genesis.max_future_ms = 2_000;
    let skew = |ms: i64| NodeOptions {
        clock_offset_ms: ms,
        ..NodeOptions::default()
    };
    let mut net = TestNet::start(1, genesis, skew(0)).await.expect("node 0");
    let ahead = net.add_node(skew(6_000)).await.expect("node ahead");
    let behind = net.add_node(skew(-6_000)).await.expect("node behind");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("connected");
    // A chain with correct times first (the node behind holds these for a few seconds).
    net.mine(0, 5).await.expect("mined");
    net.wait_same_tip(5, Duration::from_secs(30))
        .await
        .expect("every node follows, the one behind too");

    // The node ahead mines: its block is 6 s in the future for node 0, 12 s for the node behind.
    let mined = Instant::now();
    let block = net.mine(ahead, 1).await.expect("mined ahead").remove(0);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let s = net.status(0).await.expect("status");
    assert_eq!(
        s["height"].as_u64(),
        Some(5),
        "held while too far ahead: {s}"
    );
    let tip = net
        .wait_same_tip(6, Duration::from_secs(30))
        .await
        .expect("accepted everywhere when its time came");
    assert_eq!(tip, block);
    let waited = mined.elapsed();
    // Nobody was penalised for it: the node ahead is still everyone's peer.
    let ahead_id = net.nodes[ahead].peer_id.clone();
    assert!(
        net.peer_ids(0).await.contains(&ahead_id),
        "the node ahead is still connected"
    );
    // The chain goes on from the correct node, and the node behind follows.
    net.mine(0, 2).await.expect("mined");
    let tip = net
        .wait_same_tip(8, Duration::from_secs(30))
        .await
        .expect("one chain");
    eprintln!(
        "REPORT clock skew: a block 6 s ahead reached every node within {:.1} s (max_future 2 s); \
         one tip {tip} at height 8, the node ahead still connected, the node behind ({behind}) \
         followed",
        waited.as_secs_f64()
    );
    net.stop().await;
}
