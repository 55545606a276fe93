//! A real node for HTTP tests: a `peerchain_consensus::Chain` on a temporary store, served by
//! a thread that answers `NodeRequest`s the way the node does, with the router bound on
//! 127.0.0.1:0 and reqwest as the client.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peerchain_consensus::{
    Chain, ChainConfig, ChainEvent, Template, TipStatus, Verdict, build_template, solve,
};
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::mempool::Admitted;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{
    AccountReader, Address, Block, BlockHeader, Genesis, Hash, MempoolConfig, Store, Target,
    Transaction, U256,
};
use peerchain_rpc::node_api::{
    MempoolPage, NodeError, NodeEvent, NodeRequest, NodeStatus, PeerInfo, PendingTx, Submitted,
    TipInfo,
};
use peerchain_rpc::{Limits, Metrics, NodeApi};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};

pub const ACCOUNTS: u32 = 6;
pub const TOKEN: &str = "test-admin-token";
pub const PEER_ID: &str = "12D3KooWPeerchainTestPeer";

/// A dev genesis whose proof of work takes about two hashes.
pub fn easy_genesis() -> Genesis {
    let mut g = Genesis::dev(ACCOUNTS, 1_000_000_000, 2000);
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How a test node is set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub limits: Limits,
    pub mempool: MempoolConfig,
    pub event_capacity: usize,
    /// Drop the request receiver: every node request fails (503).
    pub no_node: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            mempool: MempoolConfig::default(),
            event_capacity: 4096,
            no_node: false,
        }
    }
}

/// A running node with its HTTP server.
pub struct TestNode {
    pub base: String,
    pub client: reqwest::Client,
    pub chain: Arc<Mutex<Chain>>,
    pub genesis: Genesis,
    pub metrics: Arc<Metrics>,
    pub events: broadcast::Sender<NodeEvent>,
    pub keys: Vec<Keypair>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestNode {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let genesis = easy_genesis();
        let store = Store::temporary(&genesis).expect("temporary store");
        let config = ChainConfig {
            mempool: options.mempool.clone(),
            ..ChainConfig::default()
        };
        let chain = Chain::open(store.clone(), genesis.clone(), config).expect("chain");
        let chain = Arc::new(Mutex::new(chain));
        let metrics = Arc::new(Metrics::new());
        let (events, _) = broadcast::channel(options.event_capacity);
        let (requests, rx) = mpsc::channel(64);
        if options.no_node {
            drop(rx);
        } else {
            let service = Service {
                chain: chain.clone(),
                events: events.clone(),
                metrics: metrics.clone(),
                first_seen: HashMap::new(),
                mining: false,
                blocked: HashSet::new(),
            };
            std::thread::Builder::new()
                .name("test-node".into())
                .spawn(move || service.run(rx))
                .expect("node thread");
        }
        let api = NodeApi {
            store,
            genesis: genesis.clone(),
            requests,
            events: events.clone(),
            admin_token: TOKEN.into(),
            version: "peerchain-test/0.1.0".into(),
            metrics: metrics.clone(),
            explorer_nodes: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(peerchain_rpc::serve_with(
            listener,
            api,
            options.limits,
            async move {
                let _ = rx.await;
            },
        ));
        TestNode {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            chain,
            genesis,
            metrics,
            events,
            keys: (0..ACCOUNTS).map(Keypair::dev).collect(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server and waits for `serve` to return.
    pub async fn stop(&mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await.expect("server task"),
            None => Ok(()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        read(r).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        read(r).await
    }

    pub async fn post_raw(
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

    pub async fn admin(&self, path: &str, body: &Value) -> (StatusCode, Value) {
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
    pub async fn mine(&self, n: u32) -> Vec<String> {
        let (status, body) = self.admin("/v1/admin/mine", &json!({ "blocks": n })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .map(|h| h.as_str().expect("hex").to_owned())
            .collect()
    }

    /// Runs `f` on the chain and publishes the events it caused, as the node would.
    pub fn with_chain<R>(&self, f: impl FnOnce(&mut Chain) -> R) -> R {
        let mut chain = self.lock_chain();
        let r = f(&mut chain);
        publish(&mut chain, &self.events, &self.metrics);
        r
    }

    /// Holds the chain: the node thread stalls until the guard is dropped.
    pub fn lock_chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().expect("chain lock")
    }

    pub fn address(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    /// A signed transfer from dev `from` to `to`.
    pub fn transfer(
        &self,
        from: usize,
        to: Address,
        amount: u64,
        fee: u64,
        nonce: u64,
    ) -> Transaction {
        self.keys[from].sign_transfer(self.genesis.chain_id, to, amount, fee, nonce)
    }

    pub fn tip(&self) -> (Hash, u64) {
        let chain = self.lock_chain();
        (chain.tip(), chain.tip_header().height)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn read(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn tx_json(tx: &Transaction) -> Value {
    serde_json::to_value(tx).expect("tx json")
}

/// Asserts an error response in the error model and returns its message.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) -> String {
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

/// A sealed empty block on `parent` (a fork when `parent` is not the tip).
pub fn fork_block(chain: &Chain, parent: &Hash, miner: Address) -> Block {
    let (header, _, _) = chain.block_info(parent).expect("known parent");
    let target = chain.next_target_after(parent).expect("target");
    let template = Template {
        header: BlockHeader {
            version: 1,
            height: header.height + 1,
            prev_hash: *parent,
            tx_root: merkle_root(&[]),
            timestamp_ms: header.timestamp_ms + chain.genesis().target_block_time_ms,
            target,
            nonce: 0,
            miner,
        },
        transactions: Vec::new(),
    };
    solve(template).expect("easy target")
}

/// Moves the chain's events to the broadcast channel and the metrics, as the node does.
pub fn publish(chain: &mut Chain, events: &broadcast::Sender<NodeEvent>, metrics: &Metrics) {
    for e in chain.take_events() {
        let event = match e {
            ChainEvent::BlockConnected { hash, height } => {
                metrics.block_imported();
                metrics.set_chain(height);
                NodeEvent::Block { hash, height }
            }
            ChainEvent::Reorg {
                fork_height,
                old_tip,
                new_tip,
                disconnected,
                connected,
            } => {
                metrics.reorg(disconnected.len() as u64);
                NodeEvent::Reorg {
                    fork_height,
                    old_tip,
                    new_tip,
                    disconnected,
                    connected,
                }
            }
            ChainEvent::TxAdmitted(txid) | ChainEvent::TxReturned(txid) => NodeEvent::Tx { txid },
        };
        let _ = events.send(event);
    }
    metrics.set_mempool(chain.mempool().len(), chain.mempool().bytes());
}

/// Answers node requests from a chain, on its own thread, like the node's chain service.
struct Service {
    chain: Arc<Mutex<Chain>>,
    events: broadcast::Sender<NodeEvent>,
    metrics: Arc<Metrics>,
    first_seen: HashMap<Hash, u64>,
    mining: bool,
    blocked: HashSet<String>,
}

fn peer() -> PeerInfo {
    PeerInfo {
        peer_id: PEER_ID.into(),
        address: "/ip4/127.0.0.1/tcp/7711".into(),
        direction: "outbound".into(),
        connected_since_ms: 1_767_225_600_000,
        best_height: Some(3),
    }
}

impl Service {
    fn run(mut self, mut rx: mpsc::Receiver<NodeRequest>) {
        while let Some(request) = rx.blocking_recv() {
            let chain = self.chain.clone();
            let mut chain = chain.lock().expect("chain lock");
            self.handle(&mut chain, request);
            publish(&mut chain, &self.events, &self.metrics);
        }
    }

    fn handle(&mut self, chain: &mut Chain, request: NodeRequest) {
        match request {
            NodeRequest::Submit(txs, reply) => {
                let _ = reply.send(self.submit(chain, txs));
            }
            NodeRequest::PendingTx(txid, reply) => {
                let _ = reply.send(chain.mempool().get(&txid).map(|e| PendingTx {
                    tx: e.tx.clone(),
                    txid: e.txid,
                    first_seen_ms: e.first_seen_ms,
                }));
            }
            NodeRequest::FirstSeen(txid, reply) => {
                let _ = reply.send(self.first_seen.get(&txid).copied());
            }
            NodeRequest::PendingInvolving(address, reply) => {
                let _ = reply.send(
                    chain
                        .mempool()
                        .involving(&address)
                        .into_iter()
                        .map(|e| PendingTx {
                            tx: e.tx.clone(),
                            txid: e.txid,
                            first_seen_ms: e.first_seen_ms,
                        })
                        .collect(),
                );
            }
            NodeRequest::NextNonce(address, reply) => {
                let nonce = chain.store().account(&address).map_or(0, |a| a.nonce);
                let _ = reply.send(chain.mempool().next_nonce(&address, nonce));
            }
            NodeRequest::Mempool {
                offset,
                limit,
                reply,
            } => {
                let pool = chain.mempool();
                let mut items: Vec<PendingTx> = pool
                    .by_fee_desc()
                    .skip(offset)
                    .take(limit + 1)
                    .map(|e| PendingTx {
                        tx: e.tx.clone(),
                        txid: e.txid,
                        first_seen_ms: e.first_seen_ms,
                    })
                    .collect();
                let more = items.len() > limit;
                items.truncate(limit);
                let _ = reply.send(MempoolPage {
                    count: pool.len(),
                    bytes: pool.bytes(),
                    next_offset: more.then_some(offset + limit),
                    items,
                });
            }
            NodeRequest::Status(reply) => {
                let _ = reply.send(NodeStatus {
                    mempool_size: chain.mempool().len(),
                    peer_count: 1,
                    syncing: false,
                    peer_id: PEER_ID.into(),
                    mining: self.mining,
                });
            }
            NodeRequest::Peers(reply) => {
                let _ = reply.send(vec![peer()]);
            }
            NodeRequest::ChainTips(reply) => {
                let tips = chain
                    .tips()
                    .into_iter()
                    .map(|t| TipInfo {
                        hash: t.hash,
                        height: t.height,
                        total_work: t.total_work,
                        branch_length: t.branch_length,
                        status: match t.status {
                            TipStatus::Active => "active",
                            TipStatus::ValidFork => "valid-fork",
                            TipStatus::Invalid => "invalid",
                        },
                    })
                    .collect();
                let _ = reply.send(tips);
            }
            NodeRequest::Mine {
                blocks,
                miner,
                reply,
            } => {
                let miner = miner.unwrap_or(Address([0xaa; 20]));
                let _ = reply.send(mine(chain, blocks, miner));
            }
            NodeRequest::SetMining(on, reply) => {
                self.mining = on;
                let _ = reply.send(Ok(()));
            }
            NodeRequest::Dial(addr, reply) => {
                let r = if addr.starts_with('/') {
                    Ok(())
                } else {
                    Err(NodeError::BadRequest(format!(
                        "{addr:?} is not a multiaddr"
                    )))
                };
                let _ = reply.send(r);
            }
            NodeRequest::BlockPeer(id, reply) => {
                let r = if id == PEER_ID {
                    self.blocked.insert(id);
                    Ok(())
                } else {
                    Err(NodeError::NotFound(format!("peer {id} is unknown")))
                };
                let _ = reply.send(r);
            }
            NodeRequest::UnblockPeer(id, reply) => {
                let r = if self.blocked.remove(&id) {
                    Ok(())
                } else {
                    Err(NodeError::NotFound(format!("peer {id} is not blocked")))
                };
                let _ = reply.send(r);
            }
            NodeRequest::Invalidate(hash, reply) => {
                let _ = reply.send(chain.invalidate(&hash).map_err(chain_error));
            }
            NodeRequest::Reconsider(hash, reply) => {
                let _ = reply.send(chain.reconsider(&hash).map_err(chain_error));
            }
        }
    }

    fn submit(
        &mut self,
        chain: &mut Chain,
        txs: Vec<Transaction>,
    ) -> Vec<Result<Submitted, peerchain_ledger::MempoolError>> {
        let now = now_ms();
        chain
            .submit_batch(txs, now)
            .into_iter()
            .map(|r| match r {
                Ok(Admitted::New { txid, .. }) => {
                    self.first_seen.entry(txid).or_insert(now);
                    self.metrics.tx_accepted();
                    Ok(Submitted { txid, new: true })
                }
                Ok(Admitted::AlreadyPending(txid)) => Ok(Submitted { txid, new: false }),
                Err(e) => {
                    self.metrics.tx_rejected(e.code());
                    Err(e)
                }
            })
            .collect()
    }
}

fn chain_error(e: peerchain_consensus::ChainError) -> NodeError {
    match e {
        peerchain_consensus::ChainError::UnknownBlock(h) => {
            NodeError::NotFound(format!("block {h} is unknown"))
        }
        peerchain_consensus::ChainError::Genesis => NodeError::BadRequest(e.to_string()),
        other => NodeError::Unavailable(other.to_string()),
    }
}

/// Mines `n` blocks on the tip, each `target_block_time_ms` after its parent so the
/// difficulty stays put (a millisecond later when that block is already known, e.g. after
/// `invalidate`).
pub fn mine(chain: &mut Chain, n: u32, miner: Address) -> Result<Vec<Hash>, NodeError> {
    let mut out = Vec::new();
    let unavailable = |e: String| NodeError::Unavailable(e);
    for _ in 0..n {
        let mut at = chain.tip_header().timestamp_ms + chain.genesis().target_block_time_ms;
        loop {
            let template =
                build_template(chain, miner, at).map_err(|e| unavailable(e.to_string()))?;
            let block = solve(template).ok_or_else(|| unavailable("no nonce".into()))?;
            let hash = block.hash();
            if chain.knows(&hash) {
                at += 1;
                continue;
            }
            let verdicts = chain
                .import(block, None, now_ms().max(at))
                .map_err(|e| unavailable(e.to_string()))?;
            match verdicts.first().map(|v| &v.verdict) {
                Some(Verdict::Accepted { on_main: true }) => out.push(hash),
                other => return Err(unavailable(format!("mined block refused: {other:?}"))),
            }
            break;
        }
    }
    Ok(out)
}

/// Reads Server-Sent Events from a response: (event name, data as JSON).
pub struct EventReader {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>,
    buffer: String,
}

impl EventReader {
    pub async fn open(node: &TestNode, query: &str) -> Self {
        let client = reqwest::Client::new();
        let r = client
            .get(node.url(&format!("/v1/events{query}")))
            .send()
            .await
            .expect("events");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/event-stream")
        );
        use futures::StreamExt;
        let stream = r.bytes_stream().map(|c| c.map(|b| b.to_vec()));
        EventReader {
            stream: Box::pin(stream),
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the stream ended or nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<(String, Value)> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return Some((
                    name,
                    serde_json::from_str(&data).expect("event data is JSON"),
                ));
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    pub async fn next(&mut self) -> (String, Value) {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }
}
