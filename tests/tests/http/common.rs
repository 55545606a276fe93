//! The real node for HTTP tests: `peerchain::start` (the function the binary runs) on a
//! temporary data directory with an easy genesis, HTTP on 127.0.0.1:0 and reqwest as the
//! client, plus a second real node connected to it so peer routes have a peer to show.

#![allow(dead_code)]

use std::time::Duration;

use peerchain::config::{FailPoints, NodeLimits};
use peerchain::{NodeConfig, RunningNode};
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::{Address, Genesis, Hash, MempoolConfig, Target, Transaction, U256};
use peerchain_rpc::Limits;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub(crate) const ACCOUNTS: u32 = 6;
pub(crate) const TOKEN: &str = "test-admin-token";

/// A dev genesis whose proof of work takes about two hashes.
pub(crate) fn easy_genesis() -> Genesis {
    let mut g = Genesis::dev(ACCOUNTS, 1_000_000_000, 2000);
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a test node is set up.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) limits: Limits,
    pub(crate) mempool: MempoolConfig,
    pub(crate) event_capacity: usize,
    /// Start a second node connected to this one.
    pub(crate) peer: bool,
    pub(crate) failpoints: FailPoints,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            mempool: MempoolConfig::default(),
            event_capacity: 4096,
            peer: false,
            failpoints: FailPoints::default(),
        }
    }
}

fn config(
    genesis: &Genesis,
    dir: &std::path::Path,
    options: &Options,
    boot: Vec<String>,
) -> NodeConfig {
    let limits = NodeLimits {
        http: options.limits.clone(),
        mempool: options.mempool.clone(),
        events: options.event_capacity,
        ..NodeLimits::default()
    };
    NodeConfig {
        genesis: genesis.clone(),
        data_dir: dir.to_owned(),
        p2p_listen: "/ip4/127.0.0.1/tcp/0".into(),
        rpc_listen: "127.0.0.1:0".parse().expect("literal address"),
        bootnodes: boot,
        mine: false,
        miner_address: Address([0xaa; 20]),
        mine_threads: 1,
        mine_hashrate: None,
        admin_token: Some(TOKEN.into()),
        node_key: None,
        cache_mb: 16,
        log_format: peerchain::cli::LogFormat::Text,
        mdns: false,
        dev: None,
        explorer_nodes: None,
        heartbeat_ms: 100,
        temp_dir: None,
        limits,
        failpoints: options.failpoints.clone(),
        allow_adversary: false,
        adversary: None,
        ban_loopback_addresses: false,
        clock_offset_ms: 0,
        fault_seed: None,
    }
}

/// A running node with its HTTP server (and optionally a connected peer).
pub(crate) struct TestNode {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) genesis: Genesis,
    pub(crate) keys: Vec<Keypair>,
    pub(crate) node: Option<RunningNode>,
    pub(crate) peer: Option<RunningNode>,
    _dirs: Vec<tempfile::TempDir>,
}

impl TestNode {
    pub(crate) async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub(crate) async fn start_with(options: Options) -> Self {
        let genesis = easy_genesis();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut node = peerchain::start(config(&genesis, dir.path(), &options, Vec::new()))
            .await
            .expect("node starts");
        let mut dirs = vec![dir];
        let peer = if options.peer {
            let addr = node
                .p2p_addr(Duration::from_secs(10))
                .await
                .expect("p2p address");
            let peer_dir = tempfile::tempdir().expect("tempdir");
            let peer_options = Options {
                failpoints: FailPoints::default(),
                ..options.clone()
            };
            let peer =
                peerchain::start(config(&genesis, peer_dir.path(), &peer_options, vec![addr]))
                    .await
                    .expect("peer starts");
            dirs.push(peer_dir);
            Some(peer)
        } else {
            None
        };
        let t = TestNode {
            base: format!("http://{}", node.rpc_addr),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            genesis,
            keys: (0..ACCOUNTS).map(Keypair::dev).collect(),
            node: Some(node),
            peer,
            _dirs: dirs,
        };
        if t.peer.is_some() {
            t.wait_for("a connected peer", |s| s["peer_count"].as_u64() >= Some(1))
                .await;
        }
        t
    }

    /// The running node.
    pub(crate) fn node(&self) -> &RunningNode {
        self.node.as_ref().expect("node running")
    }

    /// The running node, mutably (for [`RunningNode::failed`]).
    pub(crate) fn node_mut(&mut self) -> &mut RunningNode {
        self.node.as_mut().expect("node running")
    }

    /// The peer's id (panics without a peer).
    pub(crate) fn peer_id(&self) -> String {
        self.peer
            .as_ref()
            .expect("started with a peer")
            .peer_id
            .clone()
    }

    /// Stops the node in order (HTTP first) and its peer.
    pub(crate) async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        if let Some(peer) = self.peer.take() {
            peer.shutdown().await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        read(r).await
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        read(r).await
    }

    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        read(r).await
    }

    pub(crate) async fn admin(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("POST");
        read(r).await
    }

    /// Mines `n` blocks through the admin API; returns their hashes.
    pub(crate) async fn mine(&self, n: u32) -> Vec<String> {
        let (status, body) = self.admin("/v1/admin/mine", &json!({ "blocks": n })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .map(|h| h.as_str().expect("hex").to_owned())
            .collect()
    }

    /// Waits up to 20 s until the status satisfies `cond`.
    pub(crate) async fn wait_for(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get("/v1/status").await;
            if status == StatusCode::OK && cond(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn address(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    /// A signed transfer from dev `from` to `to`.
    pub(crate) fn transfer(
        &self,
        from: usize,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> Transaction {
        self.keys[from].sign_transfer(self.genesis.chain_id, to, amount, fee, nonce)
    }

    /// The tip hash and height, from `/v1/status`.
    pub(crate) async fn tip(&self) -> (Hash, u64) {
        let (_, s) = self.get("/v1/status").await;
        let hash: Hash = s["tip_hash"]
            .as_str()
            .expect("tip hash")
            .parse()
            .expect("hex");
        (hash, s["height"].as_u64().expect("height"))
    }
}

pub(crate) async fn read(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub(crate) fn tx_json(tx: &Transaction) -> Value {
    serde_json::to_value(tx).expect("tx json")
}

/// Asserts an error response in the error model and returns its message.
pub(crate) fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) -> String {
    assert_eq!(got.0, status, "status of {}", got.1);
    let error = got
        .1
        .get("error")
        .unwrap_or_else(|| panic!("error body: {}", got.1));
    assert_eq!(error["code"], code, "code of {}", got.1);
    let message = error["message"].as_str().expect("message").to_owned();
    assert!(!message.is_empty());
    assert_eq!(
        got.1.as_object().map(|o| o.len()),
        Some(1),
        "only `error`: {}",
        got.1
    );
    assert_eq!(
        error.as_object().map(|o| o.len()),
        Some(2),
        "code and message: {}",
        got.1
    );
    message
}

pub(crate) use peerchain_tests::EventReader;

/// Opens `node`'s event stream with `query` (e.g. `?types=block`).
pub(crate) async fn open_events(node: &TestNode, query: &str) -> EventReader {
    EventReader::open(&node.url(&format!("/v1/events{query}"))).await
}
