//! Starting, supervising and stopping a node: the store, the chain thread, the network, the
//! HTTP API and the bridges between them (see docs/ARCHITECTURE.md for the thread and task
//! map). The binary and every in-process test start a node with [`start`]; there is no
//! other assembly of these parts.
//!
//! Supervision: each part reports to one `Exits` channel when it ends. Outside an orderly
//! shutdown any such report is a failure: [`RunningNode::failed`] returns it, and the binary
//! logs it and exits non-zero instead of serving stale data.
//!
//! Shutdown order: stop accepting HTTP and drain requests in flight (up to the configured
//! grace), then the chain thread (mempool saved, store flushed), then the network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use peerchain_consensus::{Chain, ChainConfig};
use peerchain_ledger::{Hash, Store, StoreConfig};
use peerchain_network::{NetworkConfig, NetworkHandle};
use peerchain_rpc::metrics::Metrics;
use peerchain_rpc::node_api::{NetFacts, NodeApi, NodeRequest};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::adversary::AdversaryMode;
use crate::chain_service::{ChainMsg, ChainService, Links};
use crate::config::NodeConfig;
use crate::dispatch::{ChainInbox, NetWatch, forward_network_events, serve_requests};
use crate::outbox::{NetOutbox, drain};

/// A part of the node that ended, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// Which part: `chain thread`, `network`, `HTTP server`, ...
    pub part: &'static str,
    /// Why it ended (a panic message, an error, or "stopped").
    pub reason: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ended: {}", self.part, self.reason)
    }
}

/// Where parts report that they ended.
#[derive(Debug, Clone)]
struct Exits(mpsc::Sender<Exit>);

impl Exits {
    fn report(&self, part: &'static str, reason: impl Into<String>) {
        let _ = self.0.try_send(Exit {
            part,
            reason: reason.into(),
        });
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .map_or_else(|| "panicked".to_owned(), |m| format!("panicked: {m}"))
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
    pub data_dir: PathBuf,
    /// P2P listen addresses with `/p2p/<peer id>`, as they were reported.
    pub p2p_addrs: watch::Receiver<Vec<String>>,
    /// Prometheus metrics of this node.
    pub metrics: Arc<Metrics>,
    chain_tx: crossbeam_channel::Sender<ChainMsg>,
    net: NetworkHandle,
    exits: mpsc::Receiver<Exit>,
    rpc_shutdown: watch::Sender<bool>,
    rpc_task: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    _temp_dir: Option<Arc<tempfile::TempDir>>,
}

/// Starts a node: opens the store, starts the network, the chain thread and the HTTP API.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let limits = config.limits.clone();
    let store_cfg = StoreConfig {
        path: config.data_dir.join("chain"),
        cache_mb: config.cache_mb,
        // sled flushes every 500 ms; a crash loses at most that suffix of blocks (peers send
        // them again), never consistency. An fsync per block would cap sync at ~100 blocks/s.
        sync_every_block: false,
    };
    let store = Store::open(&store_cfg, &config.genesis).with_context(|| {
        format!(
            "cannot open the chain store in {}",
            store_cfg.path.display()
        )
    })?;
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
    if !rpc_addr.ip().is_loopback() {
        // Not refused: admin calls always need the token (created 0600 when missing); reads
        // and submissions are meant to be public on a public node.
        tracing::warn!(
            %rpc_addr,
            "the HTTP API listens on a non-loopback address: anyone who can reach it can read \
             and submit transactions; admin calls need the token"
        );
    }
    let chain_config = ChainConfig {
        mempool: limits.mempool.clone(),
        ..ChainConfig::default()
    };
    let mut chain = Chain::open(store, config.genesis.clone(), chain_config)
        .context("cannot open the chain")?;
    let restored = chain
        .load_mempool(crate::chain_service::clock_ms(config.clock_offset_ms))
        .context("cannot restore the saved mempool")?;
    tracing::info!(restored, tip = %chain.tip(), height = chain.tip_header().height, "chain loaded");
    let reader = chain.store_reader();

    let mut net_cfg = NetworkConfig::new(
        config.data_dir.clone(),
        config.genesis.hash(),
        config.genesis.max_block_txs(),
    );
    if let Some(key) = &config.node_key {
        tracing::info!(origin = %key.origin, peer_id = %key.seed.peer_id(), "node key given by the operator; <data-dir>/node.key is not used");
        net_cfg.node_key = Some(key.seed.clone());
    }
    net_cfg.listen = vec![config.p2p_listen.clone()];
    net_cfg.bootnodes = config.bootnodes.clone();
    net_cfg.mdns = config.mdns;
    net_cfg.heartbeat_ms = config.heartbeat_ms;
    net_cfg.ban_loopback_addresses = config.ban_loopback_addresses;
    net_cfg.fault_seed = config.fault_seed;
    if config.allow_adversary {
        net_cfg.adversary = config.adversary.as_ref().and_then(AdversaryMode::network);
    }
    let (net, net_events) = peerchain_network::start(net_cfg, reader.clone())
        .await
        .with_context(|| format!("cannot start the P2P network on {}", config.p2p_listen))?;

    let (exits_tx, exits) = mpsc::channel(16);
    let exits_tx = Exits(exits_tx);
    let facts = Arc::new(NetFacts::new(net.local_peer_id()));
    let metrics = Arc::new(Metrics::new());
    let (events_tx, _) = broadcast::channel(limits.events.max(1));
    let (chain_tx, chain_rx) = crossbeam_channel::bounded::<ChainMsg>(limits.gossip_batches.max(1));
    let (blocks_tx, blocks_rx) = crossbeam_channel::bounded(limits.chain_blocks.max(1));
    // HTTP requests have a lane of their own: gossiped transactions filling the inbox must
    // not make submissions 503 `busy`.
    let (chain_req_tx, chain_req_rx) = crossbeam_channel::bounded(limits.chain_inbox.max(1));
    let (req_tx, req_rx) = mpsc::channel::<NodeRequest>(limits.requests.max(1));
    let (addrs_tx, addrs_rx) = watch::channel(Vec::new());
    let (outbox, outbox_rx) = NetOutbox::new(limits.net_outbox);
    let mining = config.mine && config.dev.is_none();
    let (snapshot_tx, snapshot_rx) =
        watch::channel(Arc::new(ChainService::initial_snapshot(&chain, mining)));

    let links = Links {
        outbox: outbox.clone(),
        events: events_tx.clone(),
        metrics: metrics.clone(),
        snapshot: snapshot_tx,
    };
    let signatures = chain.mempool().signature_checker();
    let service = ChainService::new(chain, links, &config);
    outbox.set_local_tip(service.local_tip());
    let mut threads = Vec::new();
    let exits_chain = exits_tx.clone();
    threads.push(
        std::thread::Builder::new()
            .name("chain".into())
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(move || {
                    service.run(chain_rx, blocks_rx, chain_req_rx)
                });
                match std::panic::catch_unwind(run) {
                    Ok(()) => exits_chain.report("chain thread", "stopped"),
                    Err(p) => exits_chain.report("chain thread", panic_message(&*p)),
                }
            })
            .context("cannot start the chain thread")?,
    );
    let exits_fwd = exits_tx.clone();
    let seen = NetWatch {
        facts: facts.clone(),
        metrics: metrics.clone(),
        addrs: addrs_tx,
    };
    let forward_tx = chain_tx.clone();
    threads.push(
        std::thread::Builder::new()
            .name("net-events".into())
            .spawn(move || {
                let why =
                    forward_network_events(net_events, forward_tx, blocks_tx, signatures, seen);
                exits_fwd.report("network", why);
            })
            .context("cannot start the network event forwarder")?,
    );

    let api = NodeApi {
        store: reader,
        genesis: config.genesis.clone(),
        requests: req_tx,
        snapshot: snapshot_rx,
        net: facts.clone(),
        events: events_tx,
        admin_token: admin_token.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        metrics: metrics.clone(),
        explorer_nodes: config.explorer_nodes.clone(),
    };
    let (rpc_shutdown, mut rpc_stop) = watch::channel(false);
    let http_limits = limits.http.clone();
    let grace = http_limits.shutdown_grace;
    let exits_http = exits_tx.clone();
    let rpc_task = tokio::spawn(async move {
        let stop = async move {
            let _ = rpc_stop.wait_for(|s| *s).await;
        };
        match peerchain_rpc::serve_with(listener, api, http_limits, stop).await {
            Ok(()) => exits_http.report("HTTP server", "stopped"),
            Err(e) => exits_http.report("HTTP server", e.to_string()),
        }
    });
    let inbox = ChainInbox::new(chain_req_tx, limits.chain_inbox);
    let tasks = vec![
        tokio::spawn(serve_requests(req_rx, inbox, net.clone(), facts.clone())),
        tokio::spawn(drain(outbox_rx, net.clone())),
    ];
    tracing::info!(%rpc_addr, peer_id = %facts.peer_id(), "node started");
    Ok(RunningNode {
        rpc_addr,
        peer_id: facts.peer_id().to_owned(),
        genesis_hash: config.genesis.hash(),
        admin_token,
        data_dir: config.data_dir.clone(),
        p2p_addrs: addrs_rx,
        metrics,
        chain_tx,
        net,
        exits,
        rpc_shutdown,
        rpc_task: Some(rpc_task),
        grace,
        tasks,
        threads,
        _temp_dir: config.temp_dir.clone(),
    })
}

impl RunningNode {
    /// The first P2P address with `/p2p/<peer id>`, waiting up to `timeout` for it.
    pub async fn p2p_addr(&mut self, timeout: Duration) -> Option<String> {
        let wait = self.p2p_addrs.wait_for(|a| !a.is_empty());
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(addrs)) => addrs.first().cloned(),
            _ => None,
        }
    }

    /// Waits until a part of the node ends on its own: a failure (the node must not go on).
    pub async fn failed(&mut self) -> Exit {
        match self.exits.recv().await {
            Some(exit) => exit,
            None => Exit {
                part: "supervisor",
                reason: "every part is gone".into(),
            },
        }
    }

    /// Tests only: keeps the chain thread busy for `duration`, as a long reorg would.
    /// Returns once the stall has begun, so that whatever the caller sends next waits for it
    /// (the chain thread takes ready requests and messages in no fixed order).
    #[doc(hidden)]
    pub async fn stall_chain_thread(&self, duration: Duration) {
        let (began, begun) = oneshot::channel();
        if self.chain_tx.send(ChainMsg::Stall(duration, began)).is_ok() {
            let _ = begun.await;
        }
    }

    /// Stops the node in order: HTTP (draining requests up to the grace period), the chain
    /// thread (mempool saved, store flushed), then the network.
    pub async fn shutdown(mut self) {
        let _ = self.rpc_shutdown.send(true);
        if let Some(task) = self.rpc_task.take() {
            let wait = self.grace + Duration::from_secs(1);
            if tokio::time::timeout(wait, task).await.is_err() {
                tracing::warn!("HTTP server did not stop within its grace period");
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.chain_tx.send(ChainMsg::Shutdown(tx)).is_ok()
            && tokio::time::timeout(Duration::from_secs(30), rx)
                .await
                .is_err()
        {
            tracing::warn!("chain thread did not stop within 30 s");
        }
        self.net.shutdown().await;
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        tracing::info!("node stopped");
    }
}
