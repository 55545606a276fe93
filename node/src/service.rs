//! Wiring of a running node: the store, the chain service thread (single owner of the chain
//! and mempool), the miner, the network and the HTTP API, and their orderly shutdown.
//!
//! Data flows one way: network events and HTTP requests become [`ChainMsg`]s for the chain
//! thread; its verdicts go back to the network (accept / ignore / reject and penalise) and its
//! events out to the HTTP API's event stream and metrics.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, Sender, select};
use peerchain_consensus::{
    Chain, ChainConfig, ChainEvent, Imported, Miner, MinerConfig, TipStatus, Verdict,
    build_template, solve,
};
use peerchain_ledger::TxError;
use peerchain_ledger::mempool::{Admitted, MempoolError};
use peerchain_ledger::{AccountReader, Address, Block, Hash, Store, StoreConfig, Transaction};
use peerchain_network::{
    Acceptance, BlockOrigin, LocalTip, MessageRef, NetworkConfig, NetworkEvent, NetworkHandle,
};
use peerchain_rpc::metrics::Metrics;
use peerchain_rpc::node_api::{
    MempoolPage, NodeApi, NodeError, NodeEvent, NodeRequest, NodeStatus, PeerInfo, PendingTx,
    Submitted, TipInfo,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::NodeConfig;

/// How far ahead of a sender's next nonce a gossiped transaction may be held.
const MAX_GAP: u64 = 64;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Messages for the chain thread.
#[derive(Debug)]
pub enum ChainMsg {
    /// A block from the network.
    Block {
        /// The block.
        block: Block,
        /// Sending peer.
        peer: String,
        /// Gossip (with the message to report) or sync.
        origin: BlockOrigin,
    },
    /// A gossiped transaction.
    Tx {
        /// The transaction.
        tx: Transaction,
        /// Gossip message to report.
        msg: MessageRef,
    },
    /// An HTTP API request served by the chain thread.
    Request(NodeRequest),
    /// Stop: save the mempool, flush the store, then reply.
    Shutdown(oneshot::Sender<()>),
}

/// Facts shared between the async side and the chain thread.
#[derive(Debug, Default)]
struct Shared {
    peer_count: AtomicUsize,
    syncing: AtomicBool,
    mining: AtomicBool,
    peer_id: String,
}

/// A node started in this process.
#[derive(Debug)]
pub struct RunningNode {
    /// The HTTP API address actually bound.
    pub rpc_addr: SocketAddr,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// The genesis hash of its network.
    pub genesis_hash: Hash,
    /// The admin token.
    pub admin_token: String,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
    /// P2P listen addresses with /p2p/<peer id>, as they were reported.
    pub p2p_addrs: watch::Receiver<Vec<String>>,
    chain_tx: Sender<ChainMsg>,
    net: NetworkHandle,
    rpc_shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    chain_thread: Option<std::thread::JoinHandle<()>>,
    _temp_dir: Option<Arc<tempfile::TempDir>>,
}

/// Starts a node: opens the store, starts the network, the chain thread and the HTTP API.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store_cfg = StoreConfig {
        path: config.data_dir.join("chain"),
        cache_mb: config.cache_mb,
        // sled flushes every 500 ms; a crash loses at most that suffix of blocks (peers send
        // them again), never consistency. An fsync per block would cap sync at ~100 blocks/s.
        sync_every_block: false,
    };
    let store = Store::open(&store_cfg, &config.genesis).map_err(|e| anyhow::anyhow!("{e}"))?;
    let admin_token = match &config.admin_token {
        Some(t) => t.clone(),
        None => crate::keys::admin_token(&config.data_dir)?,
    };
    let listener = tokio::net::TcpListener::bind(config.rpc_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for HTTP on {} (port in use?)",
                config.rpc_listen
            )
        })?;
    let rpc_addr = listener.local_addr()?;
    let mut chain = Chain::open(
        store.clone(),
        config.genesis.clone(),
        ChainConfig::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let restored = chain
        .load_mempool(now_ms())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(restored, tip = %chain.tip(), height = chain.tip_header().height, "chain loaded");

    let mut net_cfg = NetworkConfig::new(
        config.data_dir.clone(),
        config.genesis.hash(),
        config.genesis.max_block_txs(),
    );
    net_cfg.listen = vec![config.p2p_listen.clone()];
    net_cfg.bootnodes = config.bootnodes.clone();
    net_cfg.mdns = config.mdns;
    net_cfg.heartbeat_ms = config.heartbeat_ms;
    let (net, net_events) = peerchain_network::start(net_cfg, store.clone())
        .await
        .with_context(|| format!("cannot start the P2P network on {}", config.p2p_listen))?;
    net.set_local_tip(local_tip(&chain)).await;

    let shared = Arc::new(Shared {
        peer_id: net.local_peer_id(),
        ..Shared::default()
    });
    let metrics = Arc::new(Metrics::new());
    let (events_tx, _) = broadcast::channel(4096);
    let (chain_tx, chain_rx) = crossbeam_channel::bounded::<ChainMsg>(1024);
    let (req_tx, req_rx) = mpsc::channel::<NodeRequest>(1024);
    let (addrs_tx, addrs_rx) = watch::channel(Vec::new());

    let service = ChainService::new(
        chain,
        net.clone(),
        events_tx.clone(),
        metrics.clone(),
        shared.clone(),
        &config,
    );
    let chain_thread = std::thread::Builder::new()
        .name("chain".into())
        .spawn(move || service.run(chain_rx))
        .context("cannot start the chain thread")?;

    let api = NodeApi {
        store,
        genesis: config.genesis.clone(),
        requests: req_tx,
        events: events_tx,
        admin_token: admin_token.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        metrics: metrics.clone(),
        explorer_nodes: config.explorer_nodes.clone(),
    };
    let (rpc_shutdown, mut rpc_stop) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        let stop = async move {
            let _ = rpc_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = peerchain_rpc::serve(listener, api, stop).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));
    tasks.push(tokio::spawn(dispatch_requests(
        req_rx,
        chain_tx.clone(),
        net.clone(),
    )));
    tasks.push(tokio::spawn(forward_network_events(
        net_events,
        chain_tx.clone(),
        shared.clone(),
        metrics,
        addrs_tx,
    )));
    tracing::info!(%rpc_addr, peer_id = %shared.peer_id, "node started");
    Ok(RunningNode {
        rpc_addr,
        peer_id: shared.peer_id.clone(),
        genesis_hash: config.genesis.hash(),
        admin_token,
        data_dir: config.data_dir.clone(),
        p2p_addrs: addrs_rx,
        chain_tx,
        net,
        rpc_shutdown,
        tasks,
        chain_thread: Some(chain_thread),
        _temp_dir: config.temp_dir.clone(),
    })
}

impl RunningNode {
    /// The first P2P address with /p2p/<peer id>, waiting up to `timeout` for it.
    pub async fn p2p_addr(&mut self, timeout: Duration) -> Option<String> {
        let wait = self.p2p_addrs.wait_for(|a| !a.is_empty());
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(addrs)) => addrs.first().cloned(),
            _ => None,
        }
    }

    /// Stops mining and HTTP, saves the mempool, flushes the store, closes peers.
    pub async fn shutdown(mut self) {
        let _ = self.rpc_shutdown.send(true);
        let (tx, rx) = oneshot::channel();
        if self.chain_tx.send(ChainMsg::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
        }
        self.net.shutdown().await;
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        if let Some(t) = self.chain_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        tracing::info!("node stopped");
    }
}

fn local_tip(chain: &Chain) -> LocalTip {
    LocalTip {
        hash: chain.tip(),
        height: chain.tip_header().height,
        total_work: chain.tip_work(),
    }
}

/// Serves network-side requests on the async runtime and forwards the rest to the chain thread.
async fn dispatch_requests(
    mut rx: mpsc::Receiver<NodeRequest>,
    chain_tx: Sender<ChainMsg>,
    net: NetworkHandle,
) {
    while let Some(req) = rx.recv().await {
        match req {
            NodeRequest::Peers(reply) => {
                let peers = net.peers().await.into_iter().map(peer_info).collect();
                let _ = reply.send(peers);
            }
            NodeRequest::Dial(addr, reply) => {
                let r = net
                    .dial(&addr)
                    .await
                    .map_err(|e| NodeError::BadRequest(e.to_string()));
                let _ = reply.send(r);
            }
            NodeRequest::BlockPeer(peer, reply) => {
                let r = net
                    .block_peer(&peer)
                    .await
                    .map_err(|e| NodeError::BadRequest(e.to_string()));
                let _ = reply.send(r);
            }
            NodeRequest::UnblockPeer(peer, reply) => {
                let r = net
                    .unblock_peer(&peer)
                    .await
                    .map_err(|e| NodeError::BadRequest(e.to_string()));
                let _ = reply.send(r);
            }
            other => {
                let tx = chain_tx.clone();
                // The chain thread's inbox is bounded: wait off the runtime if it is full.
                let _ =
                    tokio::task::spawn_blocking(move || tx.send(ChainMsg::Request(other)).is_ok())
                        .await;
            }
        }
    }
}

fn peer_info(p: peerchain_network::PeerSummary) -> PeerInfo {
    PeerInfo {
        peer_id: p.peer_id,
        address: p.address,
        direction: p.direction.to_owned(),
        connected_since_ms: p.connected_since_ms,
        best_height: p.best_height,
    }
}

async fn forward_network_events(
    mut events: mpsc::Receiver<NetworkEvent>,
    chain_tx: Sender<ChainMsg>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    addrs: watch::Sender<Vec<String>>,
) {
    while let Some(event) = events.recv().await {
        let msg = match event {
            NetworkEvent::Block {
                block,
                peer,
                origin,
            } => ChainMsg::Block {
                block,
                peer,
                origin,
            },
            NetworkEvent::Tx { tx, msg, .. } => ChainMsg::Tx { tx, msg },
            NetworkEvent::PeerConnected { .. } => {
                let n = shared.peer_count.fetch_add(1, Ordering::SeqCst) + 1;
                metrics.set_peers(n);
                continue;
            }
            NetworkEvent::PeerDisconnected { .. } => {
                let n = shared
                    .peer_count
                    .fetch_sub(1, Ordering::SeqCst)
                    .saturating_sub(1);
                metrics.set_peers(n);
                continue;
            }
            NetworkEvent::Syncing(s) => {
                shared.syncing.store(s, Ordering::SeqCst);
                continue;
            }
            NetworkEvent::Listening { addr } => {
                addrs.send_modify(|a| a.push(addr));
                continue;
            }
        };
        let tx = chain_tx.clone();
        if !matches!(
            tokio::task::spawn_blocking(move || tx.send(msg).is_ok()).await,
            Ok(true)
        ) {
            break;
        }
    }
}

/// Bounded memory of when transactions were first seen (kept after they confirm).
#[derive(Debug, Default)]
struct FirstSeen {
    map: HashMap<Hash, u64>,
    order: VecDeque<Hash>,
}

impl FirstSeen {
    const MAX: usize = 200_000;

    fn record(&mut self, txid: Hash, ms: u64) {
        if self.map.contains_key(&txid) {
            return;
        }
        if self.order.len() >= Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(txid, ms);
        self.order.push_back(txid);
    }
}

/// The chain thread: owns the chain, the mempool and the miner.
struct ChainService {
    chain: Chain,
    net: NetworkHandle,
    rt: tokio::runtime::Handle,
    events: broadcast::Sender<NodeEvent>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    miner: Miner,
    found: Receiver<Block>,
    miner_address: Address,
    dev: Option<crate::config::DevMode>,
    first_seen: FirstSeen,
    template_dirty: bool,
    last_template: Instant,
    last_dev_block: Instant,
    last_expiry: Instant,
    last_hashes: (Instant, u64),
    mine_jobs: VecDeque<MineJob>,
    gap: crate::gap::GapQueue,
    last_gap_retry: Instant,
}

/// A "mine n blocks now" request in progress.
struct MineJob {
    remaining: u32,
    miner: Option<Address>,
    done: Vec<Hash>,
    reply: peerchain_rpc::node_api::Reply<Result<Vec<Hash>, NodeError>>,
}

impl ChainService {
    fn new(
        chain: Chain,
        net: NetworkHandle,
        events: broadcast::Sender<NodeEvent>,
        metrics: Arc<Metrics>,
        shared: Arc<Shared>,
        config: &NodeConfig,
    ) -> Self {
        let (found_tx, found) = crossbeam_channel::bounded(16);
        let miner = Miner::start(
            &MinerConfig {
                threads: config.mine_threads,
                hashrate_cap: config.mine_hashrate,
            },
            found_tx,
        );
        shared
            .mining
            .store(config.mine && config.dev.is_none(), Ordering::SeqCst);
        ChainService {
            chain,
            net,
            rt: tokio::runtime::Handle::current(),
            events,
            metrics,
            shared,
            miner,
            found,
            miner_address: config.miner_address,
            dev: config.dev,
            first_seen: FirstSeen::default(),
            template_dirty: true,
            last_template: Instant::now(),
            last_dev_block: Instant::now(),
            last_expiry: Instant::now(),
            last_hashes: (Instant::now(), 0),
            mine_jobs: VecDeque::new(),
            gap: crate::gap::GapQueue::new(10_000, 120_000),
            last_gap_retry: Instant::now(),
        }
    }

    fn run(mut self, inbox: Receiver<ChainMsg>) {
        self.metrics.set_chain(self.chain.tip_header().height);
        self.refresh_template(true);
        loop {
            select! {
                recv(inbox) -> msg => match msg {
                    Ok(ChainMsg::Shutdown(done)) => {
                        self.stop();
                        let _ = done.send(());
                        return;
                    }
                    Ok(msg) => self.handle(msg),
                    Err(_) => {
                        self.stop();
                        return;
                    }
                },
                recv(self.found) -> block => {
                    if let Ok(block) = block {
                        self.import_own(block);
                    }
                },
                default(if self.mine_jobs.is_empty() { Duration::from_millis(100) } else { Duration::ZERO }) => {},
            }
            self.mine_step();
            self.tick();
        }
    }

    fn stop(&mut self) {
        self.miner.set_job(None);
        if let Err(e) = self.chain.save_mempool() {
            tracing::error!(error = %e, "could not save the mempool");
        }
        if let Err(e) = self.chain.store().flush() {
            tracing::error!(error = %e, "could not flush the store");
        }
    }

    fn handle(&mut self, msg: ChainMsg) {
        match msg {
            ChainMsg::Block {
                block,
                peer,
                origin,
            } => self.import_from_peer(block, peer, origin),
            ChainMsg::Tx { tx, msg } => self.gossiped_tx(tx, msg),
            ChainMsg::Request(req) => self.request(req),
            ChainMsg::Shutdown(_) => {}
        }
        self.publish_events();
    }

    fn spawn_net<F>(&self, f: impl FnOnce(NetworkHandle) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.net.clone()));
    }

    fn import_from_peer(&mut self, block: Block, peer: String, origin: BlockOrigin) {
        let hash = block.hash();
        let reports = match self.chain.import(block, Some(peer.clone()), now_ms()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, %hash, "store failure while importing");
                return;
            }
        };
        for r in &reports {
            if r.hash == hash {
                self.answer_origin(&origin, &peer, &r.verdict);
            } else {
                self.penalize_if_invalid(r);
            }
        }
    }

    fn answer_origin(&self, origin: &BlockOrigin, peer: &str, verdict: &Verdict) {
        let acceptance = match verdict {
            Verdict::Accepted { .. } => Acceptance::Accept,
            Verdict::Invalid(_) => Acceptance::Reject,
            Verdict::Duplicate | Verdict::Future { .. } | Verdict::Orphan { .. } => {
                Acceptance::Ignore
            }
        };
        match origin {
            BlockOrigin::Gossip(msg) => {
                let msg = msg.clone();
                self.spawn_net(move |net| async move { net.report(msg, acceptance).await });
            }
            BlockOrigin::Sync => {
                if let Verdict::Invalid(e) = verdict {
                    let (peer, reason) = (peer.to_owned(), e.to_string());
                    self.spawn_net(move |net| async move { net.penalize(&peer, &reason).await });
                }
            }
        }
        if let Verdict::Orphan { missing } = verdict {
            let (peer, missing) = (peer.to_owned(), *missing);
            self.spawn_net(move |net| async move { net.request_ancestors(&peer, missing).await });
        }
        if let Verdict::Invalid(e) = verdict {
            tracing::warn!(%peer, error = %e, "invalid block from peer");
        }
    }

    fn penalize_if_invalid(&self, r: &Imported) {
        if let (Verdict::Invalid(e), Some(peer)) = (&r.verdict, &r.source) {
            let (peer, reason) = (peer.clone(), e.to_string());
            self.spawn_net(move |net| async move { net.penalize(&peer, &reason).await });
        }
    }

    fn gossiped_tx(&mut self, tx: Transaction, msg: MessageRef) {
        let sender = tx.sender();
        let acceptance = match self.chain.submit(tx.clone(), now_ms()) {
            Ok(Admitted::New { .. }) => {
                self.metrics.tx_accepted();
                self.template_dirty = true;
                self.admit_held(&sender);
                Acceptance::Accept
            }
            Ok(Admitted::AlreadyPending(_)) => Acceptance::Ignore,
            Err(MempoolError::Invalid(TxError::NonceTooHigh { nonce, expected }))
                if nonce.saturating_sub(expected) < MAX_GAP =>
            {
                // Gossip may deliver nonce n+1 before n: wait (briefly) for the gap to close.
                self.gap.hold(tx, now_ms());
                Acceptance::Ignore
            }
            Err(e) => {
                self.metrics.tx_rejected(e.code());
                if is_peer_fault(&e) {
                    Acceptance::Reject
                } else {
                    Acceptance::Ignore
                }
            }
        };
        self.spawn_net(move |net| async move { net.report(msg, acceptance).await });
    }

    /// Offers `sender`'s held transactions to the mempool once the gap before them has
    /// closed, in nonce order, and relays those admitted; the rest wait on (keeping the time
    /// they were first held). Costs nothing while the gap is open.
    fn admit_held(&mut self, sender: &Address) {
        let account_nonce = self.chain.store().account(sender).map_or(0, |a| a.nonce);
        let mut next = self.chain.mempool().next_nonce(sender, account_nonce);
        if self
            .gap
            .first_nonce(sender)
            .is_none_or(|first| first > next)
        {
            return;
        }
        let mut relay = Vec::new();
        for (tx, held_since) in self.gap.take(sender) {
            if tx.nonce > next {
                self.gap.hold(tx, held_since);
                continue;
            }
            match self.chain.submit(tx.clone(), now_ms()) {
                Ok(Admitted::New { .. }) => {
                    self.metrics.tx_accepted();
                    self.template_dirty = true;
                    next += 1;
                    relay.push(tx);
                }
                Ok(Admitted::AlreadyPending(_)) => {}
                Err(e) => self.metrics.tx_rejected(e.code()),
            }
        }
        if !relay.is_empty() {
            // Their first delivery was not forwarded (it could not be validated then).
            self.spawn_net(move |net| async move {
                for tx in &relay {
                    net.publish_tx(tx).await;
                }
            });
        }
    }

    /// Imports a block made here and publishes it when it joined the main chain.
    fn import_own(&mut self, block: Block) -> Option<Hash> {
        let hash = block.hash();
        let reports = match self.chain.import(block.clone(), None, now_ms()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "store failure while importing a mined block");
                return None;
            }
        };
        let on_main = reports
            .iter()
            .any(|r| r.hash == hash && matches!(r.verdict, Verdict::Accepted { on_main: true }));
        if on_main {
            tracing::info!(%hash, height = block.header.height, txs = block.transactions.len(), "mined block");
            self.spawn_net(move |net| async move { net.publish_block(&block).await });
        } else {
            tracing::warn!(%hash, ?reports, "mined block not on the main chain");
        }
        self.publish_events();
        on_main.then_some(hash)
    }

    /// Turns chain events into API events, metrics, network tip updates and miner jobs.
    fn publish_events(&mut self) {
        let events = self.chain.take_events();
        if events.is_empty() {
            return;
        }
        let mut tip_changed = false;
        for e in events {
            match e {
                ChainEvent::BlockConnected { hash, height } => {
                    tip_changed = true;
                    self.metrics.block_imported();
                    self.metrics.set_chain(height);
                    let _ = self.events.send(NodeEvent::Block { hash, height });
                }
                ChainEvent::Reorg {
                    fork_height,
                    old_tip,
                    new_tip,
                    disconnected,
                    connected,
                } => {
                    tip_changed = true;
                    self.metrics.reorg(disconnected.len() as u64);
                    tracing::info!(fork_height, %old_tip, %new_tip, depth = disconnected.len(), "reorg");
                    let _ = self.events.send(NodeEvent::Reorg {
                        fork_height,
                        old_tip,
                        new_tip,
                        disconnected,
                        connected,
                    });
                }
                ChainEvent::TxAdmitted(txid) => {
                    self.first_seen.record(txid, now_ms());
                    self.template_dirty = true;
                    let _ = self.events.send(NodeEvent::Tx { txid });
                }
                ChainEvent::TxReturned(txid) => {
                    self.template_dirty = true;
                    let _ = self.events.send(NodeEvent::Tx { txid });
                    if let Some(e) = self.chain.mempool().get(&txid) {
                        let tx = e.tx.clone();
                        self.spawn_net(move |net| async move { net.publish_tx(&tx).await });
                    }
                }
            }
        }
        let m = self.chain.mempool();
        self.metrics.set_mempool(m.len(), m.bytes());
        if tip_changed {
            let tip = local_tip(&self.chain);
            self.spawn_net(move |net| async move { net.set_local_tip(tip).await });
            self.refresh_template(true);
        }
    }

    /// Gives the miner a new template: at once when the tip changed, at most once a second
    /// when only the mempool changed, and every 5 s to keep the timestamp fresh.
    fn refresh_template(&mut self, tip_changed: bool) {
        let mining = self.shared.mining.load(Ordering::SeqCst);
        if !mining {
            if self.miner.is_working() {
                self.miner.set_job(None);
            }
            return;
        }
        let age = self.last_template.elapsed();
        let due = tip_changed
            || (self.template_dirty && age >= Duration::from_secs(1))
            || age >= Duration::from_secs(5)
            || !self.miner.is_working();
        if !due {
            return;
        }
        match build_template(&self.chain, self.miner_address, now_ms()) {
            Ok(t) => self.miner.set_job(Some(t)),
            Err(e) => tracing::error!(error = %e, "cannot build a block template"),
        }
        self.template_dirty = false;
        self.last_template = Instant::now();
    }

    fn tick(&mut self) {
        match self.chain.retry_future(now_ms()) {
            Ok(reports) => reports.iter().for_each(|r| self.penalize_if_invalid(r)),
            Err(e) => tracing::error!(error = %e, "retrying future blocks failed"),
        }
        if self.last_expiry.elapsed() >= Duration::from_secs(60) {
            self.chain.expire_mempool(now_ms());
            self.gap.expire(now_ms());
            self.last_expiry = Instant::now();
        }
        if !self.gap.is_empty() && self.last_gap_retry.elapsed() >= Duration::from_secs(1) {
            // A block may have confirmed the missing nonce meanwhile.
            for sender in self.gap.senders() {
                self.admit_held(&sender);
            }
            self.last_gap_retry = Instant::now();
        }
        if let Some(dev) = self.dev
            && dev.block_time_ms > 0
            && self.last_dev_block.elapsed() >= Duration::from_millis(dev.block_time_ms)
        {
            self.last_dev_block = Instant::now();
            let _ = self.mine_now(1, None);
        }
        self.refresh_template(false);
        self.publish_events();
        let (since, hashes) = self.last_hashes;
        if since.elapsed() >= Duration::from_secs(2) {
            let now = self.miner.hashes();
            let rate = (now - hashes) as f64 / since.elapsed().as_secs_f64();
            self.metrics.set_hashrate(rate);
            self.last_hashes = (Instant::now(), now);
        }
    }

    /// Mines one block of the oldest "mine now" request and replies when it is complete.
    fn mine_step(&mut self) {
        let Some(job) = self.mine_jobs.front_mut() else {
            return;
        };
        let miner = job.miner;
        let result = if job.remaining == 0 {
            Ok(Vec::new())
        } else {
            self.mine_now(1, miner)
        };
        let Some(mut job) = self.mine_jobs.pop_front() else {
            return;
        };
        match result {
            Ok(hashes) => {
                job.done.extend(hashes);
                job.remaining = job.remaining.saturating_sub(1);
                if job.remaining == 0 {
                    let _ = job.reply.send(Ok(job.done));
                } else {
                    self.mine_jobs.push_front(job);
                }
            }
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }

    fn mine_now(&mut self, blocks: u32, miner: Option<Address>) -> Result<Vec<Hash>, NodeError> {
        let mut out = Vec::new();
        for _ in 0..blocks {
            let mut template =
                build_template(&self.chain, miner.unwrap_or(self.miner_address), now_ms())
                    .map_err(|e| NodeError::Unavailable(e.to_string()))?;
            // Right after `invalidate` the same template can rebuild the very block that was
            // invalidated (same clock millisecond): move the timestamp on until it is new.
            let block = loop {
                let block = solve(template.clone())
                    .ok_or_else(|| NodeError::Unavailable("no nonce solves the block".into()))?;
                if self.chain.block_info(&block.hash()).is_none() {
                    break block;
                }
                template.header.timestamp_ms += 1;
            };
            match self.import_own(block) {
                Some(hash) => out.push(hash),
                None => {
                    return Err(NodeError::Unavailable(
                        "mined block was not accepted".into(),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn request(&mut self, req: NodeRequest) {
        match req {
            NodeRequest::Submit(txs, reply) => {
                let _ = reply.send(self.submit(txs));
            }
            NodeRequest::PendingTx(txid, reply) => {
                let _ = reply.send(self.chain.mempool().get(&txid).map(pending));
            }
            NodeRequest::FirstSeen(txid, reply) => {
                let pending = self.chain.mempool().get(&txid).map(|e| e.first_seen_ms);
                let _ = reply.send(pending.or_else(|| self.first_seen.map.get(&txid).copied()));
            }
            NodeRequest::PendingInvolving(address, reply) => {
                let _ = reply.send(
                    self.chain
                        .mempool()
                        .involving(&address)
                        .into_iter()
                        .map(pending)
                        .collect(),
                );
            }
            NodeRequest::NextNonce(address, reply) => {
                let nonce = self
                    .chain
                    .store()
                    .account(&address)
                    .map(|a| a.nonce)
                    .unwrap_or(0);
                let _ = reply.send(self.chain.mempool().next_nonce(&address, nonce));
            }
            NodeRequest::Mempool {
                offset,
                limit,
                reply,
            } => {
                let _ = reply.send(self.mempool_page(offset, limit));
            }
            NodeRequest::Status(reply) => {
                let _ = reply.send(NodeStatus {
                    mempool_size: self.chain.mempool().len(),
                    peer_count: self.shared.peer_count.load(Ordering::SeqCst),
                    syncing: self.shared.syncing.load(Ordering::SeqCst),
                    peer_id: self.shared.peer_id.clone(),
                    mining: self.shared.mining.load(Ordering::SeqCst),
                });
            }
            NodeRequest::ChainTips(reply) => {
                let _ = reply.send(self.chain.tips().into_iter().map(tip_info).collect());
            }
            NodeRequest::Mine {
                blocks,
                miner,
                reply,
            } => {
                // Mined one block per loop turn, so other requests are served meanwhile.
                self.mine_jobs.push_back(MineJob {
                    remaining: blocks,
                    miner,
                    done: Vec::new(),
                    reply,
                });
            }
            NodeRequest::SetMining(on, reply) => {
                self.shared.mining.store(on, Ordering::SeqCst);
                self.refresh_template(true);
                let _ = reply.send(Ok(()));
            }
            NodeRequest::Invalidate(hash, reply) => {
                let r = self
                    .chain
                    .invalidate(&hash)
                    .map_err(|e| NodeError::NotFound(e.to_string()));
                let _ = reply.send(r);
            }
            NodeRequest::Reconsider(hash, reply) => {
                let r = self
                    .chain
                    .reconsider(&hash)
                    .map_err(|e| NodeError::NotFound(e.to_string()));
                let _ = reply.send(r);
            }
            // Served by the async dispatcher; never forwarded here.
            NodeRequest::Peers(reply) => {
                let _ = reply.send(Vec::new());
            }
            NodeRequest::Dial(_, reply)
            | NodeRequest::BlockPeer(_, reply)
            | NodeRequest::UnblockPeer(_, reply) => {
                let _ = reply.send(Err(NodeError::Unavailable(
                    "network request reached the chain thread".into(),
                )));
            }
        }
    }

    fn submit(&mut self, txs: Vec<Transaction>) -> Vec<Result<Submitted, MempoolError>> {
        let results = self.chain.submit_batch(txs.clone(), now_ms());
        let mut new = Vec::new();
        let out = results
            .into_iter()
            .zip(txs)
            .map(|(r, tx)| match r {
                Ok(Admitted::New { txid, .. }) => {
                    self.metrics.tx_accepted();
                    new.push(tx);
                    Ok(Submitted { txid, new: true })
                }
                Ok(Admitted::AlreadyPending(txid)) => Ok(Submitted { txid, new: false }),
                Err(e) => {
                    self.metrics.tx_rejected(e.code());
                    Err(e)
                }
            })
            .collect();
        if !new.is_empty() {
            self.template_dirty = true;
            self.spawn_net(move |net| async move {
                for tx in &new {
                    net.publish_tx(tx).await;
                }
            });
            self.publish_events();
            if matches!(self.dev, Some(d) if d.block_time_ms == 0) {
                let _ = self.mine_now(1, None);
            }
        }
        out
    }

    fn mempool_page(&self, offset: usize, limit: usize) -> MempoolPage {
        let m = self.chain.mempool();
        let items: Vec<PendingTx> = m
            .by_fee_desc()
            .skip(offset)
            .take(limit)
            .map(pending)
            .collect();
        let next = offset + items.len();
        MempoolPage {
            count: m.len(),
            bytes: m.bytes(),
            next_offset: (next < m.len() && !items.is_empty()).then_some(next),
            items,
        }
    }
}

fn pending(e: &peerchain_ledger::mempool::PoolEntry) -> PendingTx {
    PendingTx {
        tx: e.tx.clone(),
        txid: e.txid,
        first_seen_ms: e.first_seen_ms,
    }
}

fn tip_info(t: peerchain_consensus::ChainTip) -> TipInfo {
    TipInfo {
        hash: t.hash,
        height: t.height,
        total_work: t.total_work,
        branch_length: t.branch_length,
        status: match t.status {
            TipStatus::Active => "active",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::Invalid => "invalid",
        },
    }
}

/// Whether a refused gossiped transaction shows the sender misbehaved (as opposed to a
/// difference of views such as a nonce that is stale here).
fn is_peer_fault(e: &MempoolError) -> bool {
    matches!(e.code(), "bad_signature" | "wrong_chain" | "fee_too_low")
}
