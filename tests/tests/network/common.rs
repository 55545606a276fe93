//! Harness of the network tests.
//!
//! Every HONEST node is the real node: `peerchain::start` (the function the binary runs) on a
//! temporary data directory, P2P and HTTP on 127.0.0.1 with free ports. A test sees an honest
//! node only through what the node offers: its HTTP API (status, blocks, transactions, peers,
//! admin calls with the admin token) and its Prometheus metrics (`RunningNode::metrics`).
//!
//! ADVERSARIES (peers that publish junk, lie about their work or serve forged blocks) are a
//! boundary we do not own, so they are raw network instances: `peerchain_network::start` on a
//! store of their own, with the `test-hooks` publishing hook. They never validate or relay.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use peerchain::cli::LogFormat;
use peerchain::config::{FailPoints, NodeLimits};
use peerchain::{NodeConfig, RunningNode};
use peerchain_consensus::pow::mine_range;
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{
    Address, Block, BlockHeader, BlockRecord, BlockStatus, Genesis, Hash, Store, Target,
    Transaction, U256,
};
use peerchain_network::{NetworkConfig, NetworkEvent, NetworkHandle};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Dev accounts funded in test genesis blocks.
pub(crate) const ACCOUNTS: u32 = 6;
/// Block limit of test networks (small, so oversized blocks are easy to build).
pub(crate) const MAX_BLOCK_TXS: u64 = 100;
/// The genesis `min_fee` of test networks: 2, so that a fee of 1 is provably too low.
pub(crate) const MIN_FEE: u64 = 2;
/// Admin token of every honest test node.
pub(crate) const TOKEN: &str = "network-test-token";
/// Gossipsub heartbeat of every test node.
pub(crate) const HEARTBEAT_MS: u64 = 100;
/// Most blocks one `POST /v1/admin/mine` may ask for.
const MINE_CHUNK: u64 = 1000;

/// A dev network whose proof of work takes about two hashes. Its genesis lies years in the
/// past and its block time is 1 ms, so ASERT keeps the target at `pow_limit` (up to a hair)
/// however fast the real node mines: every block carries the same work, and a chain of more
/// blocks is the heavier one. `chain_id` tells networks apart.
pub(crate) fn test_genesis(chain_id: u64) -> Genesis {
    let mut g = Genesis::dev(ACCOUNTS, 1_000_000_000, 1);
    g.chain_id = chain_id;
    g.timestamp_ms = 1_600_000_000_000;
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g.max_block_txs = MAX_BLOCK_TXS;
    g.min_fee = MIN_FEE;
    g
}

/// A valid transfer from dev account `from` (fee `MIN_FEE`).
pub(crate) fn transfer(g: &Genesis, from: u32, to: u32, amount: u64, nonce: u64) -> Transaction {
    Keypair::dev(from).sign_transfer(
        g.chain_id,
        Keypair::dev(to).address(),
        amount,
        MIN_FEE,
        nonce,
    )
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("mutex not poisoned")
}

/// Waits until `cond` holds, polling every 50 ms; panics after `secs` seconds.
pub(crate) async fn wait_for(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `cond` holds, polling as fast as it answers (every 2 ms), for conditions that
/// may hold only briefly; panics after `secs` seconds.
pub(crate) async fn wait_until_polled(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The value of one series in a Prometheus text exposition: `name` with every label of
/// `labels` (other labels ignored); 0 when no such series was recorded yet.
pub(crate) fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|pair| pair == format!("{k}=\"{v}\""))
                });
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

// ----- honest nodes: the real node ----------------------------------------------------------

fn node_config(
    genesis: &Genesis,
    data_dir: &Path,
    bootnodes: Vec<String>,
    miner: Address,
) -> NodeConfig {
    NodeConfig {
        genesis: genesis.clone(),
        data_dir: data_dir.to_owned(),
        p2p_listen: "/ip4/127.0.0.1/tcp/0".into(),
        rpc_listen: "127.0.0.1:0".parse().expect("literal address"),
        bootnodes,
        mine: false,
        miner_address: miner,
        mine_threads: 1,
        mine_hashrate: None,
        admin_token: Some(TOKEN.into()),
        node_key: None,
        cache_mb: 16,
        log_format: LogFormat::Text,
        mdns: false,
        dev: None,
        explorer_nodes: None,
        heartbeat_ms: HEARTBEAT_MS,
        temp_dir: None,
        limits: NodeLimits::default(),
        failpoints: FailPoints::default(),
        allow_adversary: false,
        adversary: None,
        ban_loopback_addresses: false,
        clock_offset_ms: 0,
        fault_seed: None,
    }
}

/// One honest node: the real node started in this process.
pub(crate) struct Honest {
    pub(crate) name: String,
    /// Base URL of its HTTP API.
    pub(crate) url: String,
    /// Its P2P address with `/p2p/<peer id>`.
    pub(crate) p2p: String,
    pub(crate) peer_id: String,
    pub(crate) data_dir: PathBuf,
    node: Option<RunningNode>,
    genesis: Genesis,
    bootnodes: Vec<String>,
    miner: Address,
    http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

impl Honest {
    /// Starts a real node on a temporary data directory, dialling `bootnodes`.
    pub(crate) async fn start(name: &str, genesis: &Genesis, bootnodes: Vec<String>) -> Honest {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let mut node = Self::launch(name, genesis, &path, bootnodes).await;
        node._dir = Some(dir);
        node
    }

    /// Starts a real node on a data directory the test keeps (for restarts).
    pub(crate) async fn start_in(
        name: &str,
        genesis: &Genesis,
        bootnodes: Vec<String>,
        data_dir: &Path,
    ) -> Honest {
        Self::launch(name, genesis, data_dir, bootnodes).await
    }

    async fn launch(name: &str, genesis: &Genesis, dir: &Path, bootnodes: Vec<String>) -> Honest {
        let mut miner = [0x11; 20];
        for (m, b) in miner.iter_mut().zip(name.bytes()) {
            *m = b;
        }
        let miner = Address(miner);
        let mut node = peerchain::start(node_config(genesis, dir, bootnodes.clone(), miner))
            .await
            .unwrap_or_else(|e| panic!("{name} starts: {e:#}"));
        let p2p = node
            .p2p_addr(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{name} reported no P2P address"));
        Honest {
            name: name.to_owned(),
            url: format!("http://{}", node.rpc_addr),
            p2p,
            peer_id: node.peer_id.clone(),
            data_dir: dir.to_owned(),
            node: Some(node),
            genesis: genesis.clone(),
            bootnodes,
            miner,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(150))
                .build()
                .expect("HTTP client"),
            _dir: None,
        }
    }

    /// The running node.
    pub(crate) fn node(&self) -> &RunningNode {
        self.node
            .as_ref()
            .unwrap_or_else(|| panic!("{} is stopped", self.name))
    }

    /// Stops the node in order (HTTP, chain thread, network), keeping its data directory.
    pub(crate) async fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }

    /// Starts the stopped node again on its data directory with the same bootnodes (new
    /// ports, so `url` and `p2p` change).
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let again = Self::launch(
            &self.name,
            &self.genesis,
            &self.data_dir,
            self.bootnodes.clone(),
        )
        .await;
        let dir = self._dir.take();
        *self = Honest { _dir: dir, ..again };
    }

    /// Stops the node and drops its data directory.
    pub(crate) async fn shutdown(mut self) {
        self.stop().await;
    }

    // ----- HTTP -----------------------------------------------------------------------------

    /// GET `path`: status and JSON body (`Null` when the body is not JSON).
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GET `path`, which must succeed.
    pub(crate) async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{}: GET {path}: {body}", self.name);
        body
    }

    /// POST JSON to `path` with the admin token: status and JSON body.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST `path` (an admin call), which must succeed.
    pub(crate) async fn admin(&self, path: &str, body: &Value) -> Value {
        let (status, answer) = self.post(path, body).await;
        assert_eq!(status, 200, "{}: POST {path} {body}: {answer}", self.name);
        answer
    }

    /// `/v1/status`.
    pub(crate) async fn status(&self) -> Value {
        self.get_ok("/v1/status").await
    }

    /// Main-chain tip: hash and height.
    pub(crate) async fn tip(&self) -> (String, u64) {
        let s = self.status().await;
        (
            s["tip_hash"].as_str().unwrap_or_default().to_owned(),
            s["height"].as_u64().unwrap_or_default(),
        )
    }

    pub(crate) async fn height(&self) -> u64 {
        self.tip().await.1
    }

    /// Mines `n` blocks now through the admin API (each is published by the node as it is
    /// found); returns their hashes.
    pub(crate) async fn mine(&self, n: u64) -> Vec<String> {
        let mut hashes = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(MINE_CHUNK);
            let body = self.admin("/v1/admin/mine", &json!({ "blocks": k })).await;
            hashes.extend(
                body["hashes"]
                    .as_array()
                    .expect("mine answers hashes")
                    .iter()
                    .map(|h| h.as_str().expect("hash").to_owned()),
            );
            left -= k;
        }
        assert_eq!(hashes.len() as u64, n);
        hashes
    }

    /// Submits a transaction (`POST /v1/transactions`, 202); returns its txid.
    pub(crate) async fn submit(&self, tx: &Transaction) -> String {
        let body = serde_json::to_value(tx).expect("transaction JSON");
        let (status, answer) = self.post("/v1/transactions", &body).await;
        assert_eq!(status, 202, "{}: submit: {answer}", self.name);
        tx.txid().to_hex()
    }

    /// `pending` or `confirmed` for a transaction this node knows; `None` on 404.
    pub(crate) async fn tx_status(&self, txid: &str) -> Option<String> {
        let (status, body) = self.get(&format!("/v1/transactions/{txid}")).await;
        match status {
            200 => Some(body["status"].as_str().unwrap_or_default().to_owned()),
            404 => None,
            other => panic!("{}: GET transaction {txid}: {other} {body}", self.name),
        }
    }

    /// `/v1/blocks/{hash}`; `None` on 404.
    pub(crate) async fn block(&self, hash: &str) -> Option<Value> {
        let (status, body) = self.get(&format!("/v1/blocks/{hash}")).await;
        match status {
            200 => Some(body),
            404 => None,
            other => panic!("{}: GET block {hash}: {other} {body}", self.name),
        }
    }

    /// `/v1/peers`.
    pub(crate) async fn peers(&self) -> Vec<Value> {
        match self.get_ok("/v1/peers").await {
            Value::Array(peers) => peers,
            other => panic!("{}: /v1/peers is not a list: {other}", self.name),
        }
    }

    /// Peer ids of the connected (handshaked) peers.
    pub(crate) async fn peer_ids(&self) -> Vec<String> {
        self.peers()
            .await
            .iter()
            .map(|p| p["peer_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// `POST /v1/admin/peers`: dial `addr`.
    pub(crate) async fn dial(&self, addr: &str) -> (u16, Value) {
        self.post("/v1/admin/peers", &json!({ "addr": addr })).await
    }

    /// `POST /v1/admin/peers/{peer}/block`.
    pub(crate) async fn block_peer(&self, peer: &str) -> (u16, Value) {
        self.post(&format!("/v1/admin/peers/{peer}/block"), &json!({}))
            .await
    }

    /// `POST /v1/admin/peers/{peer}/unblock`.
    pub(crate) async fn unblock_peer(&self, peer: &str) -> (u16, Value) {
        self.post(&format!("/v1/admin/peers/{peer}/unblock"), &json!({}))
            .await
    }

    // ----- metrics --------------------------------------------------------------------------

    /// The node's metrics, as `/metrics` serves them.
    pub(crate) fn metrics(&self) -> String {
        self.node().metrics.render()
    }

    /// One metric series (see [`metric_value`]).
    pub(crate) fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }

    /// Gossip messages of `topic` (`blocks` or `transactions`) this node judged with
    /// `result` (`accept`, `reject` or `ignore`).
    pub(crate) fn gossip(&self, topic: &str, result: &str) -> f64 {
        self.metric(
            "peerchain_gossip_messages_total",
            &[("topic", topic), ("result", result)],
        )
    }

    /// Every gossip message of `topic` this node judged, whatever the result.
    pub(crate) fn gossip_seen(&self, topic: &str) -> f64 {
        self.metric("peerchain_gossip_messages_total", &[("topic", topic)])
    }

    /// Blocks that joined this node's main chain since it started.
    pub(crate) fn blocks_imported(&self) -> f64 {
        self.metric("peerchain_blocks_imported_total", &[])
    }

    /// Reorganisations since start.
    pub(crate) fn reorgs(&self) -> f64 {
        self.metric("peerchain_reorgs_total", &[])
    }
}

/// Waits until every node has at least `n` connected peers.
pub(crate) async fn wait_for_peers(nodes: &[&Honest], n: usize, secs: u64) {
    wait_for(&format!("{n} peers each"), secs, async || {
        for node in nodes {
            if node.peers().await.len() < n {
                return false;
            }
        }
        true
    })
    .await;
}

/// Waits until every node's tip is `hash`.
pub(crate) async fn wait_for_tip(nodes: &[&Honest], hash: &str, secs: u64) {
    wait_for(&format!("every tip to be {hash}"), secs, async || {
        for node in nodes {
            if node.tip().await.0 != hash {
                return false;
            }
        }
        true
    })
    .await;
}

/// Waits until `node` does not list `peer` among its connected peers.
pub(crate) async fn wait_for_no_peer(node: &Honest, peer: &str, secs: u64) {
    wait_for(&format!("{} to drop {peer}", node.name), secs, async || {
        !node.peer_ids().await.iter().any(|p| p == peer)
    })
    .await;
}

// ----- adversaries: raw network instances ---------------------------------------------------

/// What an adversary's network delivered to it.
#[derive(Debug, Default)]
pub(crate) struct AdvLog {
    /// Blocks received (gossip or sync).
    pub(crate) blocks: Vec<Hash>,
    /// Transactions received by gossip.
    pub(crate) txs: Vec<Hash>,
    pub(crate) connected: Vec<String>,
    pub(crate) disconnected: Vec<String>,
    pub(crate) listening: Vec<String>,
}

/// How to start an adversary.
pub(crate) struct AdvOpts {
    pub(crate) bootnodes: Vec<String>,
    /// Listen on 127.0.0.1 (false: it can only dial out, so no honest node can dial it).
    pub(crate) listen: bool,
    /// Its peer limit (its bootnodes are always admitted).
    pub(crate) max_peers: u32,
    /// Its block size limit, to publish blocks larger than the network allows.
    pub(crate) max_block_txs: Option<usize>,
    /// A prepared store (e.g. holding a forged chain) instead of genesis only.
    pub(crate) store: Option<Store>,
}

impl Default for AdvOpts {
    fn default() -> Self {
        AdvOpts {
            bootnodes: Vec::new(),
            listen: true,
            max_peers: 50,
            max_block_txs: None,
            store: None,
        }
    }
}

/// A peer we do not own: the network layer alone on its own store. It never validates,
/// reports or relays anything; the test drives it through its [`NetworkHandle`].
pub(crate) struct Adversary {
    pub(crate) net: NetworkHandle,
    pub(crate) peer_id: String,
    /// Its listen address with `/p2p/<peer id>` (when it listens).
    pub(crate) addr: Option<String>,
    pub(crate) log: Arc<Mutex<AdvLog>>,
    pub(crate) genesis: Genesis,
    store: Store,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Adversary {
    pub(crate) async fn start(genesis: &Genesis, opts: AdvOpts) -> Adversary {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = match opts.store {
            Some(s) => s,
            None => Store::temporary(genesis).expect("temporary store"),
        };
        let mut config = NetworkConfig::new(
            dir.path(),
            genesis.hash(),
            opts.max_block_txs.unwrap_or(genesis.max_block_txs()),
        );
        config.listen = if opts.listen {
            vec!["/ip4/127.0.0.1/tcp/0".to_owned()]
        } else {
            Vec::new()
        };
        config.bootnodes = opts.bootnodes;
        config.heartbeat_ms = HEARTBEAT_MS;
        config.max_peers = opts.max_peers;
        let (net, mut events) = peerchain_network::start(config, store.reader())
            .await
            .expect("adversary network starts");
        let log = Arc::new(Mutex::new(AdvLog::default()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while let Some(event) = events.recv().await {
                    let mut log = lock(&log);
                    match event {
                        NetworkEvent::Block { block, .. } => log.blocks.push(block.hash()),
                        NetworkEvent::CompactBlock { block, .. } => log.blocks.push(block.hash()),
                        NetworkEvent::Txs { txs, .. } => {
                            log.txs.extend(txs.iter().map(|tx| tx.txid()));
                        }
                        NetworkEvent::PeerConnected { peer } => log.connected.push(peer),
                        NetworkEvent::PeerDisconnected { peer } => log.disconnected.push(peer),
                        NetworkEvent::Listening { addr } => log.listening.push(addr),
                        NetworkEvent::Syncing(_) | NetworkEvent::BlockTxs { .. } => {}
                    }
                }
            }
        });
        let addr = if opts.listen {
            let log = log.clone();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(a) = lock(&log).listening.first().cloned() {
                    break Some(a);
                }
                assert!(Instant::now() < deadline, "adversary never listened");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } else {
            None
        };
        Adversary {
            peer_id: net.local_peer_id(),
            net,
            addr,
            log,
            genesis: genesis.clone(),
            store,
            task,
            _dir: dir,
        }
    }

    /// Its listen address (panics when it does not listen).
    pub(crate) fn addr(&self) -> &str {
        self.addr.as_deref().expect("the adversary listens")
    }

    /// Peer ids of its handshaked peers.
    pub(crate) async fn peer_ids(&self) -> Vec<String> {
        self.net
            .peers()
            .await
            .into_iter()
            .map(|p| p.peer_id)
            .collect()
    }

    /// Stops its network and event task.
    pub(crate) async fn stop(self) {
        self.net.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        drop(self.store);
    }
}

/// A temporary store whose main chain has `n` blocks that pass every check of the network
/// layer (they decode, link, and meet their own proof-of-work target) but break the
/// difficulty rule: their target is 4x harder than the network's, so the chain claims more
/// work than an honest one of the same length. The attacker writes it straight into its own
/// store (no `Chain` would accept it). Returns the store and the forged block hashes.
pub(crate) fn forged_store(g: &Genesis, n: usize) -> (Store, Vec<Hash>) {
    let store = Store::temporary(g).expect("store");
    let mut parent = g.header();
    let mut work = parent.target.work();
    let mut hashes = Vec::new();
    for _ in 0..n {
        let mut header = BlockHeader {
            version: 1,
            height: parent.height + 1,
            prev_hash: parent.hash(),
            tx_root: merkle_root(&[]),
            timestamp_ms: parent.timestamp_ms + 1000,
            target: Target(U256::MAX >> 3),
            nonce: 0,
            miner: Address([0x66; 20]),
        };
        header.nonce = mine_range(&header, 0, u64::MAX).expect("solvable");
        let block = Block {
            header: header.clone(),
            transactions: Vec::new(),
        };
        work += header.target.work();
        let delta = peerchain_ledger::state::apply_block(&store, g, &block).expect("ledger-valid");
        let record = BlockRecord {
            header: header.clone(),
            total_work: work,
            status: BlockStatus::Valid,
            seq: store.next_seq().expect("seq"),
        };
        store.put_block(&block, &record).expect("put");
        store.connect_block(&block, &delta).expect("connect");
        hashes.push(block.hash());
        parent = header;
    }
    (store, hashes)
}

/// A block on the tip `status` (an honest node's `/v1/status`) that passes every check of the
/// network layer (decodes, Merkle root, proof of work against its own target) but breaks the
/// difficulty rule: its target is twice as hard as the network allows.
pub(crate) fn block_breaking_the_difficulty_rule(status: &Value, miner: u8) -> Block {
    let parent: Hash = status["tip_hash"]
        .as_str()
        .expect("tip hash")
        .parse()
        .expect("hex");
    let height = status["height"].as_u64().expect("height") + 1;
    solved_block(parent, height, Target(U256::MAX >> 2), miner)
}

/// An empty block on `parent` at `height` with `target`, paying `miner`, its proof of work
/// found.
fn solved_block(parent: Hash, height: u64, target: Target, miner: u8) -> Block {
    solved_block_with(parent, height, target, miner, Vec::new())
}

/// A block carrying `transactions` (valid or not) on `parent` at `height` with `target`,
/// paying `miner`, its Merkle root right and its proof of work found.
pub(crate) fn solved_block_with(
    parent: Hash,
    height: u64,
    target: Target,
    miner: u8,
    transactions: Vec<Transaction>,
) -> Block {
    let txids: Vec<Hash> = transactions.iter().map(Transaction::txid).collect();
    let mut header = BlockHeader {
        version: 1,
        height,
        prev_hash: parent,
        tx_root: merkle_root(&txids),
        timestamp_ms: now_ms(),
        target,
        nonce: 0,
        miner: Address([miner; 20]),
    };
    header.nonce = mine_range(&header, 0, u64::MAX).expect("solvable");
    Block {
        header,
        transactions,
    }
}

/// A store for an adversary to serve from: `chain`, a line of blocks on genesis in order,
/// stored as they are (valid or not), each marked valid.
pub(crate) fn store_with(
    g: &peerchain_ledger::Genesis,
    chain: &[&Block],
) -> peerchain_ledger::Store {
    use peerchain_ledger::{BlockRecord, BlockStatus, Store};
    let store = Store::temporary(g).expect("store");
    let mut work = g.header().target.work();
    for block in chain {
        work += block.header.target.work();
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: work,
            status: BlockStatus::Valid,
            seq: store.next_seq().expect("seq"),
        };
        store.put_block(block, &record).expect("put");
    }
    store
}

/// Starts an adversary that dials `victim` and keeps no other peer: it does not listen (no
/// honest node can dial it) and its peer limit is 1 (its bootnode is always admitted, every
/// peer its own discovery finds is refused). So `victim` is the only honest node that can
/// receive anything from it: whatever another honest node sees, `victim` relayed.
pub(crate) async fn adversary_on(
    victim: &Honest,
    g: &peerchain_ledger::Genesis,
    max_block_txs: usize,
) -> Adversary {
    adversary_with_store_on(victim, g, max_block_txs, None).await
}

/// [`adversary_on`], the adversary serving sync from `store` (genesis only when `None`).
pub(crate) async fn adversary_with_store_on(
    victim: &Honest,
    g: &peerchain_ledger::Genesis,
    max_block_txs: usize,
    store: Option<Store>,
) -> Adversary {
    let m = Adversary::start(
        g,
        AdvOpts {
            bootnodes: vec![victim.p2p.clone()],
            listen: false,
            max_peers: 1,
            max_block_txs: Some(max_block_txs),
            store,
        },
    )
    .await;
    wait_for("the adversary to reach its victim", 20, async || {
        m.peer_ids().await == vec![victim.peer_id.clone()]
    })
    .await;
    // Its Kademlia bootstrap dials the other honest nodes once; they are refused at once as
    // over its peer limit. Let that settle before it publishes anything.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(m.peer_ids().await, vec![victim.peer_id.clone()]);
    m
}

/// A block at height 1 with the same parent (genesis), target and so the same work as any
/// other first block of `g`'s chain, paying `miner`: a valid competitor of a first block.
pub(crate) fn first_block_sibling(g: &Genesis, miner: u8) -> Block {
    solved_block(g.hash(), 1, g.initial_target, miner)
}
