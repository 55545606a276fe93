//! Several in-process nodes wired as in production: gossip of transactions and blocks, sync of
//! a late node, restart with the same peer id, peers remembered across a restart, and a node
//! of another network refused.

use std::time::{Duration, Instant};

use peerchain_ledger::crypto::Keypair;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_share_transactions_and_blocks() -> anyhow::Result<()> {
    let net = TestNet::start(5, easy_genesis(), NodeOptions::default()).await?;
    net.wait_all("every node has a peer", WAIT, |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await?;
    // Give gossipsub meshes a moment to form, then submit to node 3.
    let g = &net.genesis;
    let tx = Keypair::dev(0).sign_transfer(g.chain_id, Keypair::dev(1).address(), 77, 3, 0);
    let (status, body) = net
        .post(3, "/v1/transactions", &serde_json::to_value(&tx)?)
        .await?;
    assert_eq!(status, 202, "{body}");
    net.wait_all("the transaction in every mempool", WAIT, |s| {
        s["mempool_size"] == 1
    })
    .await?;
    // A block mined on node 4 (carrying the transaction) reaches every node's tip.
    let hashes = net.mine(4, 1).await?;
    let tip = net.wait_same_tip(1, WAIT).await?;
    assert_eq!(tip, hashes[0]);
    let confirmed = net
        .get(0, &format!("/v1/transactions/{}", tx.txid()))
        .await?;
    assert_eq!(confirmed["status"], "confirmed");
    net.wait_all("empty mempools", WAIT, |s| s["mempool_size"] == 0)
        .await?;
    net.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_node_syncs_and_restarted_node_keeps_its_peer_id() -> anyhow::Result<()> {
    let mut net = TestNet::start(2, easy_genesis(), NodeOptions::default()).await?;
    net.mine(0, 150).await?;
    net.wait_same_tip(150, WAIT).await?;
    let late = net.add_node(NodeOptions::default()).await?;
    let tip = net.wait_same_tip(150, WAIT).await?;
    let s = net.status(late).await?;
    assert_eq!(s["tip_hash"], tip.as_str());
    // Restart node 1 on its data directory: same peer id, catches up with blocks mined meanwhile.
    let peer_id = net.nodes[1].peer_id.clone();
    net.stop_node(1).await;
    net.mine(0, 20).await?;
    net.restart_node(1).await?;
    assert_eq!(net.nodes[1].peer_id, peer_id, "peer id survives a restart");
    net.wait_same_tip(170, WAIT).await?;
    net.stop().await;
    Ok(())
}

/// Waits until node `i` is connected to the peer `peer`.
async fn wait_peer(net: &TestNet, i: usize, peer: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let peers = net.peer_ids(i).await;
        if peers.iter().any(|p| p == peer) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("node {i} not connected to {peer} after {timeout:?}; peers: {peers:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 12: "nodes remember and redial the peers they learned". Nodes 1 and 2 have node 0 as
/// their only bootnode and find each other through it. With node 0 down, node 1 restarts (on
/// new ports): it dials node 2 from its saved address book (`peers.txt`). Before, it dialled
/// its bootnode only and stayed without peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_redials_the_peers_it_learned_while_its_bootnode_is_down()
-> anyhow::Result<()> {
    let mut net = TestNet::start(3, easy_genesis(), NodeOptions::default()).await?;
    let two = net.nodes[2].peer_id.clone();
    wait_peer(&net, 1, &two, WAIT).await?;
    net.stop_node(0).await;
    net.stop_node(1).await;
    let book = std::fs::read_to_string(net.node_dir(1).join("peers.txt"))?;
    assert!(
        book.contains(&two),
        "node 2 is in node 1's address book: {book}"
    );
    net.restart_node(1).await?;
    let started = Instant::now();
    wait_peer(&net, 1, &two, WAIT).await?;
    println!(
        "the restarted node reached a remembered peer in {:?}",
        started.elapsed()
    );
    // And they work together: a block mined by the restarted node reaches node 2.
    let hashes = net.mine(1, 1).await?;
    assert_eq!(net.wait_same_tip(1, WAIT).await?, hashes[0]);
    net.stop().await;
    Ok(())
}

/// Issue 13, goal 1: a wallet that spreads one sender's transactions over several nodes.
/// Node 1 gets nonces 10..19 before any node has seen 0..9: it queues them (202, status
/// `queued`, also on `GET /v1/transactions/{txid}`) instead of refusing them with
/// `nonce_too_high` as before; once node 0 has 0..9 and gossips them, node 1 admits its
/// queued ones, and a block confirms all 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_ahead_of_their_predecessors_are_queued_then_confirmed() -> anyhow::Result<()> {
    let net = TestNet::start(2, easy_genesis(), NodeOptions::default()).await?;
    let two = net.nodes[1].peer_id.clone();
    wait_peer(&net, 0, &two, WAIT).await?;
    let g = &net.genesis;
    let (key, to) = (Keypair::dev(2), Keypair::dev(3).address());
    let txs: Vec<_> = (0..20)
        .map(|nonce| key.sign_transfer(g.chain_id, to, 10, 2, nonce))
        .collect();
    let (status, body) = net
        .post(
            1,
            "/v1/transactions/batch",
            &serde_json::to_value(&txs[10..])?,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let items = body.as_array().expect("batch answer");
    assert!(
        items.iter().all(|i| i["status"] == "queued"),
        "ahead of their predecessors: {body}"
    );
    let later = net
        .get(1, &format!("/v1/transactions/{}", txs[15].txid()))
        .await?;
    assert_eq!(later["status"], "queued", "{later}");
    let (status, body) = net
        .post(
            0,
            "/v1/transactions/batch",
            &serde_json::to_value(&txs[..10])?,
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    net.wait_all("all 20 pending on both nodes", WAIT, |s| {
        s["mempool_size"] == 20
    })
    .await?;
    let hashes = net.mine(1, 1).await?;
    net.wait_same_tip(1, WAIT).await?;
    let block = net.get(0, &format!("/v1/blocks/{}", hashes[0])).await?;
    assert_eq!(block["tx_count"], 20, "{block}");
    net.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_of_another_network_is_refused() -> anyhow::Result<()> {
    let mut net = TestNet::start(1, easy_genesis(), NodeOptions::default()).await?;
    net.mine(0, 3).await?;
    let mut other_genesis = easy_genesis();
    other_genesis.chain_id = 99;
    let other = TestNet::start(1, other_genesis, NodeOptions::default()).await?;
    let (status, body) = other
        .post(0, "/v1/admin/peers", &json!({ "addr": net.nodes[0].p2p }))
        .await?;
    assert!(status < 500, "dial answered {status} {body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = other.status(0).await?;
    assert_eq!(s["height"], 0, "no block of the other network was imported");
    assert_eq!(
        s["peer_count"], 0,
        "the peer of another network was disconnected"
    );
    let _ = net.add_node(NodeOptions::default()).await?;
    net.wait_same_tip(3, WAIT).await?;
    other.stop().await;
    net.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_transactions_reaches_every_mempool() -> anyhow::Result<()> {
    let net = TestNet::start(3, easy_genesis(), NodeOptions::default()).await?;
    net.wait_all("every node has a peer", WAIT, |s| {
        s["peer_count"].as_u64() >= Some(2)
    })
    .await?;
    let g = &net.genesis;
    let mut batch = Vec::new();
    for sender in 0..3u32 {
        let key = Keypair::dev(sender);
        for nonce in 0..150u64 {
            batch.push(key.sign_transfer(g.chain_id, Keypair::dev(9).address(), 1, 1, nonce));
        }
    }
    let (status, body) = net
        .post(0, "/v1/transactions/batch", &serde_json::to_value(&batch)?)
        .await?;
    assert_eq!(status, 200, "{body}");
    net.wait_all("all 450 transactions in every mempool", WAIT, |s| {
        s["mempool_size"] == 450
    })
    .await?;
    net.stop().await;
    Ok(())
}
