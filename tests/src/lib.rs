//! # peerchain-tests
//!
//! The shared harness of the multi-node tests: start a network of in-process nodes on free
//! loopback ports, talk to their HTTP APIs, wait for conditions, restart nodes, and stop
//! everything at the end. Written once and used by every test under `tests/tests/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use peerchain::RunningNode;
use peerchain::adversary::AdversaryMode;
use peerchain::cli::LogFormat;
use peerchain::config::{DevMode, FailPoints, NodeConfig, NodeLimits};
use peerchain_ledger::{Address, Genesis, Target, Transaction, U256};
use serde_json::Value;

mod events;
pub use events::EventReader;

/// A genesis whose proof of work takes a handful of hashes, with 10 dev accounts.
pub fn easy_genesis() -> Genesis {
    let mut g = Genesis::dev(10, 1_000_000_000_000, 1000);
    g.initial_target = Target(U256::MAX >> 8);
    g.pow_limit = Target(U256::MAX >> 4);
    g
}

/// How one test node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Continuous mining.
    pub mine: bool,
    /// Hash-rate cap when mining.
    pub hashrate: Option<u64>,
    /// Dev mode (instant or interval mining).
    pub dev: Option<DevMode>,
    /// sled page cache in MiB (tests use 16; the node's own default is 64).
    pub cache_mb: u64,
    /// Bounds of the node's queues, pools and HTTP server.
    pub limits: NodeLimits,
    /// Injected faults.
    pub failpoints: FailPoints,
    /// Start as an adversary (allows adversary modes).
    pub adversary: Option<AdversaryMode>,
    /// Where mined rewards go.
    pub miner: Address,
    /// Misbehaviour bans cover loopback addresses too (tests of address bans).
    pub ban_loopback_addresses: bool,
    /// Shift of the node's clock (tests of clock skew).
    pub clock_offset_ms: i64,
    /// The node key given as by `--node-key-file` / `--node-key-seed` (default: the data
    /// directory's `node.key`).
    pub node_key: Option<peerchain::node_key::NodeKey>,
    /// P2P listen multiaddr (default `/ip4/127.0.0.1/tcp/0`).
    pub p2p_listen: Option<String>,
    /// Bootnodes instead of node 0's address.
    pub bootnodes: Option<Vec<String>>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            mine: false,
            hashrate: Some(20_000),
            dev: None,
            cache_mb: 16,
            limits: NodeLimits::default(),
            failpoints: FailPoints::default(),
            adversary: None,
            miner: Address([0xaa; 20]),
            ban_loopback_addresses: false,
            clock_offset_ms: 0,
            node_key: None,
            p2p_listen: None,
            bootnodes: None,
        }
    }
}

/// A node of a [`TestNet`].
#[derive(Debug)]
pub struct TestNode {
    /// The running node (None while stopped).
    pub node: Option<RunningNode>,
    /// Its data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Base URL of its HTTP API.
    pub url: String,
    /// Its P2P address with `/p2p/<peer id>`.
    pub p2p: String,
    /// Its peer id.
    pub peer_id: String,
    /// Admin token.
    pub token: String,
    options: NodeOptions,
    bootnodes: Vec<String>,
}

/// Several in-process nodes on loopback that stop when dropped (call [`TestNet::stop`] to stop
/// them cleanly).
#[derive(Debug)]
pub struct TestNet {
    /// The nodes, node 0 first (the bootnode of the others).
    pub nodes: Vec<TestNode>,
    /// The network.
    pub genesis: Genesis,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn config(
    genesis: &Genesis,
    data_dir: &Path,
    options: &NodeOptions,
    bootnodes: Vec<String>,
) -> NodeConfig {
    NodeConfig {
        genesis: genesis.clone(),
        data_dir: data_dir.to_owned(),
        p2p_listen: options
            .p2p_listen
            .clone()
            .unwrap_or_else(|| "/ip4/127.0.0.1/tcp/0".into()),
        rpc_listen: "127.0.0.1:0".parse().expect("literal address"),
        bootnodes,
        mine: options.mine,
        miner_address: options.miner,
        mine_threads: 1,
        mine_hashrate: options.hashrate,
        admin_token: Some("test-token".into()),
        node_key: options.node_key.clone(),
        cache_mb: options.cache_mb,
        log_format: LogFormat::Text,
        mdns: false,
        dev: options.dev,
        explorer_nodes: None,
        heartbeat_ms: 100,
        temp_dir: None,
        limits: options.limits.clone(),
        failpoints: options.failpoints.clone(),
        allow_adversary: options.adversary.is_some(),
        adversary: options.adversary.clone(),
        ban_loopback_addresses: options.ban_loopback_addresses,
        clock_offset_ms: options.clock_offset_ms,
        fault_seed: None,
    }
}

async fn launch(
    genesis: &Genesis,
    data_dir: &Path,
    options: &NodeOptions,
    bootnodes: Vec<String>,
) -> anyhow::Result<TestNode> {
    let mut node = peerchain::start(config(genesis, data_dir, options, bootnodes.clone())).await?;
    let p2p = node
        .p2p_addr(Duration::from_secs(10))
        .await
        .context("node reported no P2P address")?;
    Ok(TestNode {
        url: format!("http://{}", node.rpc_addr),
        peer_id: node.peer_id.clone(),
        token: node.admin_token.clone(),
        p2p,
        data_dir: data_dir.to_owned(),
        node: Some(node),
        options: options.clone(),
        bootnodes,
    })
}

impl TestNet {
    /// Starts `n` nodes with the same options; nodes 1.. use node 0 as bootnode.
    pub async fn start(n: usize, genesis: Genesis, options: NodeOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut net = TestNet {
            nodes: Vec::new(),
            genesis,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        };
        for _ in 0..n {
            net.add_node(options.clone()).await?;
        }
        Ok(net)
    }

    /// Starts one more node (bootnodes: `options.bootnodes`, else node 0, if any).
    pub async fn add_node(&mut self, options: NodeOptions) -> anyhow::Result<usize> {
        let i = self.nodes.len();
        let data_dir = self.node_dir(i);
        let bootnodes = options.bootnodes.clone().unwrap_or_else(|| {
            self.nodes
                .first()
                .map(|n| vec![n.p2p.clone()])
                .unwrap_or_default()
        });
        let node = launch(&self.genesis, &data_dir, &options, bootnodes).await?;
        self.nodes.push(node);
        Ok(i)
    }

    /// The data directory of node `i` (also before [`TestNet::add_node`] starts it, so a
    /// benchmark can prepare a store in its `chain` subdirectory first).
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}"))
    }

    /// Stops node `i` gracefully, keeping its data.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].node.take() {
            node.shutdown().await;
        }
    }

    /// Starts a stopped node again on its data directory (new ports).
    pub async fn restart_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.stop_node(i).await;
        let old = &self.nodes[i];
        let node = launch(
            &self.genesis,
            &old.data_dir,
            &old.options,
            old.bootnodes.clone(),
        )
        .await?;
        self.nodes[i] = node;
        Ok(())
    }

    /// Stops every node.
    pub async fn stop(mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i).await;
        }
    }

    /// GET `path` on node `i` and parse JSON (errors on non-2xx).
    pub async fn get(&self, i: usize, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.nodes[i].url);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .with_context(|| format!("GET {url}: not JSON"))?;
        if !status.is_success() {
            bail!("GET {url}: {status} {body}");
        }
        Ok(body)
    }

    /// POST JSON to `path` on node `i`; returns status and body.
    pub async fn post(&self, i: usize, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.nodes[i].url);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.nodes[i].token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Submits one transaction to node `i` (`POST /v1/transactions`); returns status and body.
    pub async fn submit(&self, i: usize, tx: &Transaction) -> anyhow::Result<(u16, Value)> {
        self.post(i, "/v1/transactions", &serde_json::to_value(tx)?)
            .await
    }

    /// Peer ids of node `i`'s connected peers.
    ///
    /// # Panics
    /// When `/v1/peers` fails or is not a list (a test must not read that as "no peers").
    pub async fn peer_ids(&self, i: usize) -> Vec<String> {
        match self.get(i, "/v1/peers").await {
            Ok(Value::Array(list)) => list
                .iter()
                .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
                .collect(),
            other => panic!("node {i}: /v1/peers: {other:?}"),
        }
    }

    /// `/v1/status` of node `i`.
    pub async fn status(&self, i: usize) -> anyhow::Result<Value> {
        self.get(i, "/v1/status").await
    }

    /// Mines `n` blocks on node `i` through the admin API; returns their hashes.
    pub async fn mine(&self, i: usize, n: u32) -> anyhow::Result<Vec<String>> {
        let (status, body) = self
            .post(i, "/v1/admin/mine", &serde_json::json!({ "blocks": n }))
            .await?;
        if status != 200 {
            bail!("mine on node {i}: {status} {body}");
        }
        let hashes = body
            .as_array()
            .or_else(|| body["hashes"].as_array())
            .context("mine answered no hash list")?;
        Ok(hashes
            .iter()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect())
    }

    /// Waits until `check` holds for every running node, polling.
    pub async fn wait_all<F>(&self, what: &str, timeout: Duration, check: F) -> anyhow::Result<()>
    where
        F: Fn(&Value) -> bool,
    {
        let started = Instant::now();
        loop {
            let mut ok = true;
            for (i, n) in self.nodes.iter().enumerate() {
                if n.node.is_none() {
                    continue;
                }
                match self.status(i).await {
                    Ok(s) if check(&s) => {}
                    _ => ok = false,
                }
            }
            if ok {
                return Ok(());
            }
            if started.elapsed() > timeout {
                let mut states = Vec::new();
                for i in 0..self.nodes.len() {
                    states.push(
                        self.status(i)
                            .await
                            .map(|s| s.to_string())
                            .unwrap_or_else(|e| e.to_string()),
                    );
                }
                bail!("timed out after {timeout:?} waiting for {what}: {states:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running node has the same tip at height >= `height`.
    pub async fn wait_same_tip(&self, height: u64, timeout: Duration) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            let mut tips = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                if n.node.is_some() {
                    let s = self.status(i).await?;
                    tips.push((
                        s["height"].as_u64().unwrap_or(0),
                        s["tip_hash"].as_str().unwrap_or("").to_owned(),
                    ));
                }
            }
            if let Some(first) = tips.first()
                && first.0 >= height
                && tips.iter().all(|t| t == first)
            {
                return Ok(first.1.clone());
            }
            if started.elapsed() > timeout {
                bail!(
                    "nodes did not agree on a tip at height >= {height} within {timeout:?}: {tips:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A free TCP port on 127.0.0.1, never one an outgoing connection can take first
/// (`peerchain::ports`); 0 (any) if none is found.
pub fn free_port() -> u16 {
    peerchain::ports::free_loopback_port().unwrap_or(0)
}

/// Path of the workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}
