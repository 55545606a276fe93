//! Block sync between real nodes: a late node, a restarted node, a node on a lighter fork.

use std::time::Instant;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_node_syncs_the_whole_chain() {
    let g = test_genesis(7711);
    let a = Honest::start("a", &g, Vec::new()).await;
    let t = Instant::now();
    // More than one headers batch (512) and many block batches (128).
    a.mine(1200).await;
    eprintln!("mined 1200 blocks in {:?}", t.elapsed());
    let (tip, height) = a.tip().await;
    assert_eq!(height, 1200);

    // b joins late: it dials a itself (an outbound connection, as to a bootnode) once the
    // test watches its status, so the short time it reports syncing cannot be missed.
    let b = Honest::start("b", &g, Vec::new()).await;
    let t = Instant::now();
    let (status, body) = b.dial(&a.p2p).await;
    assert_eq!(status, 200, "{body}");
    let mut saw_syncing = false;
    wait_until_polled("b to reach a's tip", 120, async || {
        let s = b.status().await;
        saw_syncing |= s["syncing"] == true;
        s["tip_hash"] == tip.as_str()
    })
    .await;
    eprintln!("synced 1200 blocks in {:?}", t.elapsed());
    assert!(saw_syncing, "b reported that it was syncing");
    wait_for("b to report that sync ended", 20, async || {
        b.status().await["syncing"] == false
    })
    .await;
    // Every block joined b's main chain exactly once, all by sync: none came by gossip and
    // none was ever on a losing branch.
    assert_eq!(b.blocks_imported(), 1200.0, "every block imported once");
    assert_eq!(b.gossip_seen("blocks"), 0.0, "no block came by gossip");
    assert_eq!(b.reorgs(), 0.0);

    let peers = b.peers().await;
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0]["peer_id"], a.peer_id.as_str());
    assert_eq!(peers[0]["direction"], "outbound");
    assert_eq!(peers[0]["best_height"], 1200);

    b.shutdown().await;
    a.shutdown().await;
}

/// Blocks mined while the restarted node is offline (20 header batches, 79 block batches).
const CATCH_UP: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_keeps_its_peer_id_and_catches_up_10000_blocks() {
    let g = test_genesis(7712);
    let a = Honest::start("a", &g, Vec::new()).await;
    // Some blocks carry transactions.
    for nonce in 0..5 {
        a.submit(&transfer(&g, 2, 3, 10, nonce)).await;
    }
    a.mine(20).await;
    assert_eq!(a.status().await["mempool_size"], 0);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Honest::start_in("b", &g, vec![a.p2p.clone()], dir.path()).await;
    wait_for_tip(&[&b], &a.tip().await.0, 30).await;
    let b_id = b.peer_id.clone();
    b.stop().await;
    wait_for_no_peer(&a, &b_id, 20).await;

    // While b is offline, the chain grows.
    let t = Instant::now();
    a.mine(CATCH_UP).await;
    eprintln!("mined {CATCH_UP} blocks in {:?}", t.elapsed());
    let (tip, height) = a.tip().await;
    assert_eq!(height, 20 + CATCH_UP);

    let t = Instant::now();
    b.restart().await;
    assert_eq!(b.peer_id, b_id, "same data directory, same peer id");
    assert!(b.height().await >= 20, "the store kept the chain");
    wait_for_tip(&[&b], &tip, 120).await;
    eprintln!("caught up {CATCH_UP} blocks in {:?}", t.elapsed());
    // Only the blocks mined while it was away were imported after the restart: the 20 it had
    // were read back from its store.
    assert_eq!(b.blocks_imported(), CATCH_UP as f64);
    assert!(dir.path().join("node.key").is_file());

    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_on_a_lighter_fork_switches_to_the_heavier_chain() {
    let g = test_genesis(7713);
    let a = Honest::start("a", &g, Vec::new()).await;
    let b = Honest::start("b", &g, Vec::new()).await;
    // A shared prefix of 30 blocks: mined on a, synced by b...
    let prefix = a.mine(30).await;
    let (status, body) = b.dial(&a.p2p).await;
    assert_eq!(status, 200, "{body}");
    wait_for_tip(&[&b], &prefix[29], 30).await;
    // ... then b cuts the link (an operator block) and each side grows its own branch:
    // a 60 more blocks, b 40 others (with a transaction).
    let (status, body) = b.block_peer(&a.peer_id).await;
    assert_eq!(status, 200, "{body}");
    wait_for_no_peer(&a, &b.peer_id, 10).await;
    wait_for_no_peer(&b, &a.peer_id, 10).await;
    let a_blocks = a.mine(60).await;
    let txid = b.submit(&transfer(&g, 4, 5, 77, 0)).await;
    let b_blocks = b.mine(40).await;
    let a_tip = a_blocks.last().expect("mined").clone();
    let b_tip_before = b_blocks.last().expect("mined").clone();
    assert_eq!((a.height().await, b.height().await), (90, 70));
    assert_eq!(b.tx_status(&txid).await.as_deref(), Some("confirmed"));

    let (status, body) = b.unblock_peer(&a.peer_id).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.dial(&a.p2p).await;
    assert_eq!(status, 200, "{body}");
    wait_for_tip(&[&a, &b], &a_tip, 60).await;

    // a never had to switch: it was the heavier one, and none of b's blocks reached it.
    assert_eq!(a.reorgs(), 0.0);
    assert_eq!(a.gossip_seen("blocks"), 0.0);
    for h in &b_blocks {
        assert!(a.block(h).await.is_none(), "a received b's block {h}");
    }
    // b reverted its branch: its blocks are no longer on its main chain, its transaction is
    // pending again, and the one reorganisation disconnected exactly b's 40 blocks, so the
    // fork point was found at height 30 (only the blocks after it had to be fetched).
    let view = b.block(&b_tip_before).await.expect("b keeps its fork");
    assert_eq!(view["in_main_chain"], false);
    assert_eq!(b.reorgs(), 1.0);
    assert_eq!(b.metric("peerchain_reorg_depth_sum", &[]), 40.0);
    for h in &prefix {
        assert_eq!(b.block(h).await.expect("prefix")["in_main_chain"], true);
    }
    wait_for("b's reverted tx back in a mempool", 10, async || {
        b.tx_status(&txid).await.as_deref() == Some("pending")
    })
    .await;
    let tips = b.get_ok("/v1/chain/tips").await;
    assert!(
        tips.as_array()
            .expect("list")
            .iter()
            .any(|t| t["hash"] == b_tip_before.as_str()
                && t["branch_length"] == 40
                && t["status"] == "valid-fork"),
        "{tips}"
    );

    b.shutdown().await;
    a.shutdown().await;
}
