//! Support of the `adversary_*` tests: honest nodes are the real node (`peerchain::start`
//! through [`peerchain_tests::TestNet`]); adversaries are raw network instances
//! (`peerchain_network::start` on a store of their own) configured with an
//! [`Adversary`] mode, or left honest to publish junk through the test hook.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerchain_ledger::{Genesis, Store};
use peerchain_network::{Adversary, NetworkConfig, NetworkEvent, NetworkHandle};
use peerchain_tests::TestNet;
use serde_json::Value;
use tokio::task::JoinHandle;

/// A network instance we do not own: the network layer alone, on a temporary store holding
/// genesis only. It never imports what it receives.
pub(crate) struct Raw {
    pub(crate) net: NetworkHandle,
    pub(crate) peer_id: String,
    /// Peers that completed the handshake with it, in order (never cleared).
    pub(crate) connected: Arc<Mutex<Vec<String>>>,
    /// Peers that disconnected from it after a handshake, with when (never cleared).
    pub(crate) disconnected: Arc<Mutex<Vec<(String, Instant)>>>,
    task: JoinHandle<()>,
    _store: Store,
    _dir: tempfile::TempDir,
}

impl Raw {
    /// Starts an instance that does not listen (so no one can dial it) and dials
    /// `bootnodes`, with at most `max_peers` peers and the given adversary mode.
    pub(crate) async fn start(
        genesis: &Genesis,
        bootnodes: Vec<String>,
        max_peers: u32,
        adversary: Option<Adversary>,
    ) -> Raw {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::temporary(genesis).expect("temporary store");
        let mut config = NetworkConfig::new(dir.path(), genesis.hash(), genesis.max_block_txs());
        config.listen = Vec::new();
        config.bootnodes = bootnodes;
        config.heartbeat_ms = 100;
        config.max_peers = max_peers;
        config.adversary = adversary;
        let (net, mut events) = peerchain_network::start(config, store.reader())
            .await
            .expect("raw network starts");
        let connected = Arc::new(Mutex::new(Vec::new()));
        let disconnected = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (connected, disconnected) = (connected.clone(), disconnected.clone());
            async move {
                while let Some(event) = events.recv().await {
                    match event {
                        NetworkEvent::PeerConnected { peer } => {
                            connected.lock().expect("not poisoned").push(peer);
                        }
                        NetworkEvent::PeerDisconnected { peer } => {
                            let now = Instant::now();
                            disconnected.lock().expect("not poisoned").push((peer, now));
                        }
                        _ => {}
                    }
                }
            }
        });
        Raw {
            peer_id: net.local_peer_id(),
            net,
            connected,
            disconnected,
            task,
            _store: store,
            _dir: dir,
        }
    }

    /// Whether it ever completed a handshake with `peer`.
    pub(crate) fn met(&self, peer: &str) -> bool {
        self.connected
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|p| p == peer)
    }

    /// When `peer` first disconnected from it, if it did.
    pub(crate) fn dropped_by(&self, peer: &str) -> Option<Instant> {
        self.disconnected
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|(p, _)| p == peer)
            .map(|(_, at)| *at)
    }

    /// How many times `peer` disconnected from it, and when it last did.
    pub(crate) fn drops_by(&self, peer: &str) -> (usize, Option<Instant>) {
        let list = self.disconnected.lock().expect("not poisoned");
        let mine: Vec<Instant> = list
            .iter()
            .filter(|(p, _)| p == peer)
            .map(|(_, at)| *at)
            .collect();
        (mine.len(), mine.last().copied())
    }

    /// Stops its network and event task.
    pub(crate) async fn stop(self) {
        self.net.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// `/v1/peers` of node `i`.
pub(crate) async fn peers(net: &TestNet, i: usize) -> Vec<Value> {
    match net.get(i, "/v1/peers").await {
        Ok(Value::Array(list)) => list,
        other => panic!("node {i}: /v1/peers: {other:?}"),
    }
}

/// Node `i`'s tip: hash and height.
pub(crate) async fn tip(net: &TestNet, i: usize) -> (String, u64) {
    let s = net.status(i).await.expect("status");
    (
        s["tip_hash"].as_str().unwrap_or_default().to_owned(),
        s["height"].as_u64().unwrap_or_default(),
    )
}

/// Asks node `i` to dial `addr`.
pub(crate) async fn dial(net: &TestNet, i: usize, addr: &str) {
    let (status, body) = net
        .post(i, "/v1/admin/peers", &serde_json::json!({ "addr": addr }))
        .await
        .expect("dial request");
    assert_eq!(status, 200, "dial {addr}: {body}");
}

/// Waits until `cond` holds, polling every 100 ms; panics after `secs` seconds. Returns how
/// long it took.
pub(crate) async fn wait_for(
    what: &str,
    secs: u64,
    mut cond: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if cond().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resident memory of this process in MiB (`VmRSS` of `/proc/self/status`; 0 elsewhere).
pub(crate) fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
