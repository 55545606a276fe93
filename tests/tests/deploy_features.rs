//! Node features container engines need (docs/DEPLOY.md), with in-process nodes: bootnodes
//! given as DNS multiaddrs, resolved when dialled and again on every redial, and node keys
//! known before the node starts (a seed and an ordinal), so a bootnode address can be written
//! down before its node exists.

use std::time::{Duration, Instant};

use peerchain::node_key::NodeKey;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis, free_port};

const WAIT: Duration = Duration::from_secs(40);

/// Waits until node `i` lists `peer` among its connected peers.
async fn wait_for_peer(net: &TestNet, i: usize, peer: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if net.peer_ids(i).await.iter().any(|p| p == peer) {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            anyhow::bail!(
                "node {i} did not connect to {peer} within {WAIT:?}; it has {:?}",
                net.peer_ids(i).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootnode_given_as_dns4_localhost_is_dialled_by_name() -> anyhow::Result<()> {
    let mut net = TestNet::start(1, easy_genesis(), NodeOptions::default()).await?;
    let by_ip = net.nodes[0].p2p.clone();
    assert!(by_ip.starts_with("/ip4/127.0.0.1/tcp/"), "{by_ip}");
    let by_name = by_ip.replacen("/ip4/127.0.0.1/", "/dns4/localhost/", 1);
    let joiner = net
        .add_node(NodeOptions {
            bootnodes: Some(vec![by_name.clone()]),
            ..NodeOptions::default()
        })
        .await?;
    let boot_id = net.nodes[0].peer_id.clone();
    wait_for_peer(&net, joiner, &boot_id).await?;
    // The handshake completed (the status exchange), so blocks flow over the connection.
    net.mine(0, 3).await?;
    net.wait_same_tip(3, WAIT).await?;
    net.stop().await;
    Ok(())
}

/// As in a StatefulSet: node 1 starts first with node 0's address written down in advance
/// (a DNS name and the peer id derived from the testnet secret and ordinal 0). Node 0 does not
/// exist yet, so the dial fails; when node 0 comes up, a redial (resolving the name again)
/// finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootnode_written_down_in_advance_is_found_once_it_starts() -> anyhow::Result<()> {
    const SECRET: &str = "testnet secret for deploy_features";
    let boot_key = NodeKey::derived(SECRET, 0);
    let boot_port = free_port();
    let boot_addr = format!(
        "/dns4/localhost/tcp/{boot_port}/p2p/{}",
        boot_key.seed.peer_id()
    );
    let mut net = TestNet::start(
        1,
        easy_genesis(),
        NodeOptions {
            node_key: Some(NodeKey::derived(SECRET, 1)),
            bootnodes: Some(vec![boot_addr]),
            ..NodeOptions::default()
        },
    )
    .await?;
    assert_eq!(
        net.nodes[0].peer_id,
        NodeKey::derived(SECRET, 1).seed.peer_id(),
        "the derived key is the node's identity"
    );
    assert!(
        !net.nodes[0].data_dir.join("node.key").exists(),
        "a given key leaves <data-dir>/node.key unwritten"
    );
    // Let the first dials fail and redials be scheduled.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(net.status(0).await?["peer_count"], 0);
    let boot = net
        .add_node(NodeOptions {
            node_key: Some(boot_key.clone()),
            p2p_listen: Some(format!("/ip4/127.0.0.1/tcp/{boot_port}")),
            bootnodes: Some(Vec::new()),
            ..NodeOptions::default()
        })
        .await?;
    assert_eq!(net.nodes[boot].peer_id, boot_key.seed.peer_id());
    // Only node 1 dials (node 0 has no bootnode), so this connection is node 1's redial.
    wait_for_peer(&net, 0, &boot_key.seed.peer_id()).await?;
    net.stop().await;
    Ok(())
}
