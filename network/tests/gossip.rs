//! Gossip of transactions and blocks across five nodes that know only one bootnode.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tx_and_block_reach_every_node() {
    let g = test_genesis(7710);
    let n0 = TestNode::start(NodeOpts::new("n0", &g)).await;
    let mut nodes = vec![];
    for i in 1..5 {
        nodes.push(TestNode::start(NodeOpts::new(&format!("n{i}"), &g).bootnode(&n0)).await);
    }
    let all: Vec<&TestNode> = std::iter::once(&n0).chain(nodes.iter()).collect();
    wait_for_peers(&all, 1, 15).await;

    // Discovery: a node that only knew n0 finds the others through Kademlia.
    let last = &nodes[3];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let peers = last.peer_ids().await;
        if peers.len() >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "n4 discovered only {peers:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A transaction submitted to one node reaches every mempool.
    let txid = nodes[2].submit(transfer(&g, 0, 1, 1000, 0)).await;
    wait_for("the tx in every mempool", 15, || {
        all.iter().all(|n| n.has_tx(&txid))
    })
    .await;

    // A block mined on one node (carrying the tx) becomes every node's tip.
    let block = nodes[1].mine(true).await;
    assert!(block.transactions.iter().any(|t| t.txid() == txid));
    wait_for_tip(&all, block.hash(), 15).await;
    assert!(
        all.iter().all(|n| !n.has_tx(&txid)),
        "confirmed tx left every mempool"
    );

    // A few more blocks from different miners.
    for i in 0..3 {
        let b = all[i].mine(true).await;
        wait_for_tip(&all, b.hash(), 15).await;
    }

    for n in nodes {
        n.stop().await;
    }
    n0.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tx_published_before_any_peer_is_rebroadcast() {
    let g = test_genesis(7750);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    let txid = a.submit(transfer(&g, 1, 2, 3, 0)).await; // nobody to send it to yet
    let b = TestNode::start(NodeOpts::new("b", &g).bootnode(&a)).await;
    wait_for("the early tx at b", 10, || b.has_tx(&txid)).await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphan_gossip_block_fetches_its_ancestors() {
    let g = test_genesis(7751);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    let b = TestNode::start(NodeOpts::new("b", &g).bootnode(&a)).await;
    wait_for_peers(&[&a, &b], 1, 10).await;
    // b misses 15 blocks (not gossiped; status refresh is 10 s away), then hears of the 16th.
    a.mine_quietly(15).await;
    let block = a.mine(true).await;
    wait_for_tip(&[&b], block.hash(), 5).await;
    {
        let log = lock(&b.log);
        assert!(
            log.blocks.iter().any(|(h, _, gossip, v)| *h == block.hash()
                && *gossip
                && matches!(v, peerchain_consensus::Verdict::Orphan { .. })),
            "the gossip block arrived as an orphan"
        );
        // The 15 missing blocks by sync (the orphan itself may come again as a duplicate).
        let synced = log
            .blocks
            .iter()
            .filter(|(_, _, gossip, _)| !gossip)
            .count();
        assert!((15..=16).contains(&synced), "{synced} blocks synced");
    }
    b.stop().await;
    a.stop().await;
}
