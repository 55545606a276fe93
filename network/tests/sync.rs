//! Block sync: a late node, a restarted node, a node on a lighter fork.

mod common;

use std::time::Instant;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_node_syncs_the_whole_chain() {
    let g = test_genesis(7711);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    let t = Instant::now();
    // More than one headers batch (512) and many block batches (64).
    a.mine_quietly(1200).await;
    eprintln!("mined 1200 blocks in {:?}", t.elapsed());
    let (tip, height) = a.tip();
    assert_eq!(height, 1200);

    let t = Instant::now();
    let b = TestNode::start(NodeOpts::new("b", &g).bootnode(&a)).await;
    wait_for_tip(&[&b], tip, 60).await;
    eprintln!("synced 1200 blocks in {:?}", t.elapsed());
    wait_for("Syncing(false)", 10, || {
        lock(&b.log).syncing == vec![true, false]
    })
    .await;
    {
        let log = lock(&b.log);
        assert!(log.blocks.iter().all(|(_, _, gossip, v)| !gossip
            && *v == peerchain_consensus::Verdict::Accepted { on_main: true }));
        assert_eq!(log.blocks.len(), 1200, "every block delivered once");
    }
    let peers = b.net.peers().await;
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].peer_id, a.peer_id);
    assert_eq!(peers[0].direction, "outbound");
    assert_eq!(peers[0].best_height, Some(1200));

    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_node_keeps_its_peer_id_and_catches_up_10000_blocks() {
    let g = test_genesis(7712);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    // Some blocks carry transactions.
    for nonce in 0..5 {
        a.submit(transfer(&g, 2, 3, 10, nonce)).await;
    }
    a.mine_quietly(20).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let opts = || {
        let mut o = NodeOpts::new("b", &g).bootnode(&a);
        o.data_dir = Some(dir.path().to_path_buf());
        o
    };
    let b = TestNode::start(opts()).await;
    wait_for_tip(&[&b], a.tip().0, 20).await;
    let b_id = b.peer_id.clone();
    b.stop().await;
    wait_for("a to see b leave", 10, || {
        lock(&a.log).disconnected.contains(&b_id)
    })
    .await;

    // While b is offline, the chain grows by 10,000 blocks.
    let t = Instant::now();
    a.mine_quietly(10_000).await;
    eprintln!("mined 10,000 blocks in {:?}", t.elapsed());
    let (tip, height) = a.tip();
    assert_eq!(height, 10_020);

    let t = Instant::now();
    let b = TestNode::start(opts()).await;
    assert_eq!(b.peer_id, b_id, "same data directory, same peer id");
    assert_eq!(b.start_height, 20, "the store kept the chain");
    wait_for_tip(&[&b], tip, 60).await;
    eprintln!("caught up 10,000 blocks in {:?}", t.elapsed());
    assert!(std::fs::metadata(dir.path().join("node.key")).is_ok());

    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_on_a_lighter_fork_switches_to_the_heavier_chain() {
    let g = test_genesis(7713);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    let b = TestNode::start(NodeOpts::new("b", &g)).await;
    // A shared prefix of 30 blocks, then a = 60 more, b = 40 others (with a transaction).
    let mut prefix = Vec::new();
    for _ in 0..30 {
        prefix.push(a.mine(false).await);
    }
    b.import_all(&prefix).await;
    assert_eq!(a.tip(), b.tip());
    a.mine_quietly(60).await;
    b.submit(transfer(&g, 4, 5, 77, 0)).await;
    b.mine_quietly(40).await;
    let (a_tip, a_height) = a.tip();
    let b_tip_before = b.tip().0;
    assert_eq!((a_height, b.height()), (90, 70));

    b.net.dial(&a.addr).await.expect("dial");
    wait_for_tip(&[&a, &b], a_tip, 30).await;
    // a never had to switch: it was the heavier one.
    assert!(
        lock(&a.log).blocks.is_empty(),
        "a received no blocks from b"
    );
    // b reverted its branch: the fork block is no longer on its main chain.
    assert!(!lock(&b.chain).is_on_main(&b_tip_before));
    {
        let log = lock(&b.log);
        let delivered: Vec<_> = log.blocks.iter().map(|(h, ..)| *h).collect();
        assert_eq!(
            delivered.len(),
            60,
            "only the blocks after the fork point were fetched"
        );
    }

    b.stop().await;
    a.stop().await;
}
