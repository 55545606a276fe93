//! The scenario runner's cluster, driven through its API with the binary under test: a node
//! restarted on the timeline whose ports another program took while it was down moves to
//! free ones, as at its first start. A taken P2P port alone is noted and the node rejoins
//! the network on its new one; a taken HTTP port fails the step (the runner's readers know
//! the node by its old URL) while the node still runs on its new port, listed in nodes.json.

mod support;

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use peerchain::scenario::cluster::Cluster;
use peerchain::scenario::spec;
use support::BIN;

/// How long the restarted node may take to see a peer on its new port.
const PEER_LIMIT: Duration = Duration::from_secs(30);

/// Node's `peer_count` from `/v1/status` on `rpc_port`; `None` when it does not answer.
fn peer_count(rpc_port: u16) -> Option<u64> {
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let url = format!("http://127.0.0.1:{rpc_port}/v1/status");
    let status: serde_json::Value = client.get(url).send().ok()?.json().ok()?;
    status["peer_count"].as_u64()
}

#[test]
fn a_restarted_node_whose_ports_were_taken_moves_to_free_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = spec::parse("[network]\nnodes = 2\nhashrate = 20000\n", "ports").expect("valid");
    let mut cluster =
        Cluster::prepare_with(&scenario, dir.path(), BIN.into()).expect("prepare the cluster");
    let stop = AtomicBool::new(false);
    cluster.start_initial(&stop).expect("start both nodes");
    let (rpc, p2p) = cluster.ports(1).expect("node 1");

    // Another program takes node 1's P2P port while it is down.
    cluster.kill(1).expect("kill node 1");
    let squatter = TcpListener::bind(("127.0.0.1", p2p)).expect("take node 1's P2P port");
    let notes = cluster
        .start(1, &stop)
        .expect("node 1 starts on a new P2P port");
    let (rpc_now, p2p_now) = cluster.ports(1).expect("node 1");
    assert_eq!(rpc_now, rpc, "its HTTP port was free: kept");
    assert_ne!(p2p_now, p2p);
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&format!("P2P port {p2p} to {p2p_now}"))),
        "{notes:?}"
    );
    let started = Instant::now();
    while peer_count(rpc_now).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < PEER_LIMIT,
            "node 1 saw no peer on its new P2P port"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(squatter);

    // Its HTTP port taken too: it runs on a new one, nodes.json lists it, the step fails.
    cluster.kill(1).expect("kill node 1 again");
    let squatter = TcpListener::bind(("127.0.0.1", rpc)).expect("take node 1's HTTP port");
    let e = cluster
        .start(1, &stop)
        .expect_err("a moved HTTP port fails the step")
        .to_string();
    assert!(cluster.running(1), "but node 1 runs: {e}");
    let (rpc_moved, _) = cluster.ports(1).expect("node 1");
    assert_ne!(rpc_moved, rpc);
    assert!(
        e.contains(&format!("HTTP port {rpc} to {rpc_moved}"))
            && e.contains("nothing it does from now on is recorded"),
        "{e}"
    );
    assert!(
        peer_count(rpc_moved).is_some(),
        "it answers on its new port"
    );
    let listed = std::fs::read_to_string(dir.path().join("nodes.json")).expect("nodes.json");
    assert!(
        listed.contains(&format!("http://127.0.0.1:{rpc_moved}")),
        "{listed}"
    );
    drop(squatter);
    // Dropping the cluster kills both nodes.
}
