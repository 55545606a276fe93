//! The chain thread: the single owner of the [`Chain`] (and so of every store write), the
//! mempool, the nonce-gap queue and the miner.
//!
//! It takes blocks from the network from their own bounded lane ([`PeerBlock`]), and
//! [`ChainMsg`]s (transactions from the network, requests from the HTTP API) from one bounded
//! inbox, in order. A waiting block goes first, then one message: a flood of transactions
//! delays a block by at most one transaction (hostile peers, defect 6). After every step it
//! - turns chain events into API events, metrics and miner templates (`publish`),
//! - queues what the network must do on the ordered [`NetOutbox`] (never a spawned task),
//! - publishes a [`NodeSnapshot`] in a `watch` channel, from which every read of the API is
//!   served without waiting for this thread.
//!
//! Split by concern: `requests` (what the API asks), `gossip` (what peers send), `compact`
//! (gossiped compact blocks: rebuilt from the mempool, relayed early, or their missing
//! transactions fetched) with `compact_fetches` (what waits for a fetch), `mining` (templates,
//! found blocks, "mine now") with `miner_template` (when a template is rebuilt or extended),
//! `publish` (events and snapshots), `storage` (a full disk) with `prober` (its probe write
//! and flush, made by the `store-probe` thread), `write_behind` (the txindex and the saved
//! mempool, written by the `store-writer` thread), `reclaim` (old snapshots, freed by the
//! `reclaim` thread) and `priority` (the helper threads' lowered priority).

mod compact;
mod compact_fetches;
mod gossip;
mod miner_template;
mod mining;
mod priority;
mod prober;
mod publish;
mod reclaim;
mod requests;
mod storage;
mod write_behind;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};
use peerchain_consensus::Chain;
use peerchain_ledger::{Address, Block, Transaction};
use peerchain_network::{BlockOrigin, CompactBlock, MessageRef};
use peerchain_rpc::first_seen::FirstSeenTimes;
use peerchain_rpc::metrics::Metrics;
use peerchain_rpc::node_api::{NodeError, NodeEvent, NodeSnapshot};
use tokio::sync::{broadcast, oneshot, watch};

pub use requests::ChainRequest;

use crate::adversary::Adversary;
use crate::config::{DevMode, FailPoints, NodeConfig};
use crate::gap::{ExpiredByRelay, GapLimits, GapQueue, WaitingMessages};
use crate::miner::{Miner, MinerConfig};
use crate::outbox::NetOutbox;

/// How often the mempool's changes are written to the store. With the store's own flush
/// interval (500 ms), a transaction pending for a second survives a crash.
const MEMPOOL_SAVE_INTERVAL: Duration = Duration::from_millis(400);

/// Longest the loop waits for a message before its periodic work runs (less when a template
/// extension falls due sooner).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Milliseconds since the Unix epoch, shifted by `offset_ms` (`--clock-offset-ms`, tests of
/// clock skew only).
pub fn clock_ms(offset_ms: i64) -> u64 {
    now_ms().saturating_add_signed(offset_ms)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A block from the network, for the chain thread's block lane.
#[derive(Debug)]
pub enum PeerBlock {
    /// A whole block, downloaded by sync or as an orphan's ancestor.
    Full {
        /// The block.
        block: Block,
        /// Sending peer.
        peer: String,
        /// Gossip (with the message to report) or sync.
        origin: BlockOrigin,
    },
    /// A gossiped compact block: rebuilt from the mempool, or its missing transactions (or
    /// the whole block) fetched (`compact`).
    Compact {
        /// The header and txids.
        block: CompactBlock,
        /// The peer that propagated it (asked for what is missing).
        peer: String,
        /// The message to report the verdict on.
        msg: MessageRef,
    },
    /// The answer to a compact block's missing transactions (signatures not checked yet:
    /// the import checks them once their txids match the block's).
    MissingTxs {
        /// The block.
        block: peerchain_ledger::Hash,
        /// The peer asked.
        peer: String,
        /// The transactions, in the order asked; `None`: nothing to use.
        txs: Option<Vec<Transaction>>,
    },
}

/// Messages for the chain thread.
// Most messages are transactions: boxing the largest variant would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ChainMsg {
    /// A gossiped batch of transactions.
    Txs(GossipBatch),
    /// A request of the HTTP API that changes the chain or the mempool.
    Request(ChainRequest),
    /// Tests only: keep the chain thread busy for this long (as a long reorg would), telling
    /// the sender when the stall begins.
    Stall(Duration, oneshot::Sender<()>),
    /// Stop: save the mempool, flush the store, then reply.
    Shutdown(oneshot::Sender<()>),
}

/// One gossip message of transactions, its signatures checked.
#[derive(Debug)]
pub struct GossipBatch {
    /// The transactions, in the order sent.
    pub txs: Vec<Transaction>,
    /// The peer that relayed them.
    pub peer: String,
    /// The message to report the verdict on.
    pub msg: MessageRef,
    /// The index of the first transaction whose signature failed the check, if any (those
    /// that passed are in the mempool's verified-signature set).
    pub bad_signature: Option<usize>,
}

/// Where the chain thread's results go.
#[derive(Debug)]
pub struct Links {
    /// Ordered commands to the network.
    pub outbox: NetOutbox,
    /// API events.
    pub events: broadcast::Sender<NodeEvent>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The published snapshot.
    pub snapshot: watch::Sender<Arc<NodeSnapshot>>,
}

/// The chain thread's state. See the module docs.
pub struct ChainService {
    chain: Chain,
    links: Links,
    miner: Miner,
    found: Receiver<Block>,
    miner_address: Address,
    mining: bool,
    dev: Option<DevMode>,
    first_seen: FirstSeenTimes,
    gap: GapQueue,
    /// Gossip messages whose verdict waits for their held transactions.
    waiting: WaitingMessages,
    mine_jobs: VecDeque<mining::MineJob>,
    tips: Arc<Vec<peerchain_rpc::node_api::TipInfo>>,
    tips_dirty: bool,
    /// The miner's template and what was admitted since it last changed.
    template: miner_template::MinerTemplate,
    clocks: Clocks,
    failpoints: FailPoints,
    /// Added to the wall clock (`--clock-offset-ms`, tests of clock skew only).
    clock_offset_ms: i64,
    allow_adversary: bool,
    adversary: Option<Adversary>,
    /// Unrequested blocks of lighter branches per peer (bounded by `MAX_LIGHTER_PEERS`).
    lighter_from: std::collections::HashMap<String, u32>,
    /// Held transactions that expired, per relay (bounded by `gap::MAX_COUNTED_RELAYS`).
    expired_by_relay: ExpiredByRelay,
    /// Whether the disk has room: when full, nothing is written (see `storage.rs`).
    storage: storage::StorageGuard,
    /// Compact blocks whose whole block is being fetched, with their gossip messages.
    compact_fetches: compact_fetches::CompactFetches,
    /// The store's directory, whose disk `storage` watches.
    store_dir: std::path::PathBuf,
    /// The `store-writer` thread: the txindex and the saved mempool.
    writer: write_behind::WriteBehind,
    /// The `store-probe` thread: the once-a-second probe write and flush of `storage`.
    prober: prober::Prober,
    /// The `reclaim` thread: frees the snapshots readers no longer see.
    reclaim: reclaim::Reclaimer<Arc<NodeSnapshot>>,
}

impl std::fmt::Debug for ChainService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainService")
            .field("tip", &self.chain.tip())
            .field("mining", &self.mining)
            .finish_non_exhaustive()
    }
}

/// When periodic work last ran.
#[derive(Debug)]
struct Clocks {
    started: Instant,
    last_dev_block: Instant,
    last_expiry: Instant,
    last_gap_retry: Instant,
    last_gap_expiry: Instant,
    last_mempool_save: Instant,
    /// When a block last joined the main chain ([`write_behind::txindex_due`]).
    last_block_connected: Instant,
    last_activation_retry: Instant,
    last_hashes: (Instant, u64),
}

impl ChainService {
    /// A service for `chain`, with the miner started idle.
    pub fn new(chain: Chain, links: Links, config: &NodeConfig) -> Self {
        let (found_tx, found) = crossbeam_channel::bounded(16);
        let miner = Miner::start(
            &MinerConfig {
                threads: config.mine_threads,
                hashrate_cap: config.mine_hashrate,
            },
            found_tx,
        );
        let now = Instant::now();
        let limits = &config.limits;
        let chain_max_txs = chain.genesis().max_block_txs();
        let writer = write_behind::WriteBehind::start(chain.background_writes());
        let prober = prober::Prober::start(
            chain.background_writes(),
            config
                .failpoints
                .store_probe_stall_ms
                .map(Duration::from_millis),
        );
        ChainService {
            chain,
            links,
            miner,
            found,
            miner_address: config.miner_address,
            mining: config.mine && config.dev.is_none(),
            dev: config.dev,
            first_seen: FirstSeenTimes::new(limits.first_seen),
            gap: GapQueue::new(GapLimits {
                total: limits.gap_queue,
                per_sender: limits.gap_per_sender,
                ttl_ms: limits.gap_ttl_ms,
            }),
            waiting: WaitingMessages::default(),
            mine_jobs: VecDeque::new(),
            tips: Arc::new(Vec::new()),
            tips_dirty: true,
            template: miner_template::MinerTemplate::new(chain_max_txs, now),
            clocks: Clocks {
                started: now,
                last_dev_block: now,
                last_expiry: now,
                last_gap_retry: now,
                last_gap_expiry: now,
                last_mempool_save: now,
                last_block_connected: now,
                last_activation_retry: now,
                last_hashes: (now, 0),
            },
            failpoints: config.failpoints.clone(),
            clock_offset_ms: config.clock_offset_ms,
            allow_adversary: config.allow_adversary,
            adversary: config
                .adversary
                .clone()
                .filter(|m| config.allow_adversary && m.network().is_none())
                .map(Adversary::new),
            lighter_from: std::collections::HashMap::new(),
            expired_by_relay: ExpiredByRelay::default(),
            storage: storage::StorageGuard::new(limits.disk_reserve_mb.saturating_mul(1024 * 1024)),
            compact_fetches: compact_fetches::CompactFetches::new(limits.compact_fetches),
            store_dir: config.data_dir.join("chain"),
            writer,
            prober,
            reclaim: reclaim::Reclaimer::start(),
        }
    }

    /// The first snapshot, before the thread starts.
    pub fn initial_snapshot(chain: &Chain, mining: bool) -> NodeSnapshot {
        let mut s = NodeSnapshot::empty(
            chain.mempool().clone(),
            chain.tips().into_iter().map(publish::tip_info).collect(),
        );
        s.mining = mining;
        s
    }

    /// Runs until [`ChainMsg::Shutdown`] or until every sender of `inbox` is gone. Each step
    /// takes the next block of `blocks` if one waits, then one message of any kind.
    pub fn run(
        mut self,
        inbox: Receiver<ChainMsg>,
        blocks: Receiver<PeerBlock>,
        requests: Receiver<ChainRequest>,
    ) {
        // A closed lane is always ready: once the HTTP side is gone, wait on nothing there.
        let mut requests = requests;
        self.links.metrics.set_chain(self.chain.tip_header().height);
        self.refresh_template(true);
        self.publish_snapshot();
        loop {
            let block_first = blocks.try_recv().ok();
            let idle = if self.mine_jobs.is_empty() && block_first.is_none() {
                // Waiting admissions wake the loop when their template extension is due.
                let extension = self.template.due_in(Instant::now());
                extension.map_or(IDLE_WAIT, |due| due.min(IDLE_WAIT))
            } else {
                Duration::ZERO
            };
            if let Some(b) = block_first {
                self.peer_block(b);
            }
            select! {
                recv(requests) -> req => match req {
                    Ok(req) => self.request(req),
                    Err(_) => requests = crossbeam_channel::never(),
                },
                recv(inbox) -> msg => match msg {
                    Ok(ChainMsg::Shutdown(done)) => {
                        if let Some(ms) = self.failpoints.chain_stall_on_shutdown_ms {
                            std::thread::sleep(Duration::from_millis(ms));
                        }
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
                recv(blocks) -> b => {
                    if let Ok(b) = b {
                        self.peer_block(b);
                    }
                },
                recv(self.found) -> block => {
                    if let Ok(block) = block
                        && let Err(e) = self.import_own(block)
                        && !matches!(e, NodeError::MinedBlockRefused { .. })
                    {
                        // A lost race is logged by `import_own` (not an error).
                        tracing::error!(error = %e, "could not import a block mined here");
                    }
                },
                default(idle) => {},
            }
            self.mine_step();
            self.tick();
            self.publish_events();
            // After `publish_events`, which notes the admissions: a due extension takes them
            // in the same turn. Also the periodic rebuild, and stopping the miner on a full
            // disk.
            self.refresh_template(false);
            self.publish_snapshot();
            self.write_behind();
        }
    }

    /// Store writes that wait until what changed is announced (events, snapshot, gossip
    /// verdicts), handed to the `store-writer` thread: the txindex entries of connected
    /// blocks once no block has connected for a moment ([`write_behind::txindex_due`]), and
    /// the saved mempool's changes every [`MEMPOOL_SAVE_INTERVAL`] (later while
    /// the writer is behind). Failed writes it reports stop the node's writes here.
    fn write_behind(&mut self) {
        for e in self.writer.failures() {
            if e.is_io() {
                self.storage_write_failed(&e);
            }
        }
        if self.disk_full().is_some() {
            return;
        }
        self.writer
            .write_txindex(self.clocks.last_block_connected.elapsed());
        if self.clocks.last_mempool_save.elapsed() >= MEMPOOL_SAVE_INTERVAL && self.writer.idle() {
            let changes = self.chain.take_saved_mempool_changes();
            self.writer.save_mempool_changes(changes);
            self.clocks.last_mempool_save = Instant::now();
        }
    }

    fn stop(&mut self) {
        self.miner.set_job(None);
        // The writer's jobs first: the whole mempool is saved after its last changes.
        self.writer.stop();
        self.prober.stop();
        self.reclaim.stop();
        if let Err(e) = self.chain.save_mempool() {
            tracing::error!(error = %e, "could not save the mempool");
        }
        if let Err(e) = self.chain.flush() {
            tracing::error!(error = %e, "could not flush the store");
        }
    }

    fn handle(&mut self, msg: ChainMsg) {
        match msg {
            ChainMsg::Txs(batch) => self.gossiped_txs(batch),
            ChainMsg::Request(req) => self.request(req),
            ChainMsg::Stall(d, began) => {
                let _ = began.send(());
                std::thread::sleep(d);
            }
            ChainMsg::Shutdown(_) => {}
        }
    }

    /// Periodic work: future blocks, expiry, held transactions, dev blocks, hash rate, fail
    /// points (the template is renewed after the step's events, in `run`).
    fn tick(&mut self) {
        if let Some(ms) = self.failpoints.chain_panic_after_ms
            && self.clocks.started.elapsed() >= Duration::from_millis(ms)
        {
            panic!("fail point chain-panic-after-ms={ms} reached");
        }
        self.check_storage();
        self.expire_compact_fetches();
        if self.disk_full().is_some() {
            // Nothing that writes: future blocks, fork choice and the saved mempool wait.
            return;
        }
        match self.chain.retry_future(clock_ms(self.clock_offset_ms)) {
            Ok(reports) => {
                if !reports.is_empty() {
                    self.tips_dirty = true;
                }
                for r in &reports {
                    self.penalize_if_invalid(r);
                    self.answer_compact_fetch(&r.hash, &r.verdict);
                }
            }
            Err(e) => tracing::error!(error = %e, "retrying future blocks failed"),
        }
        if self.chain.activation_pending()
            && self.clocks.last_activation_retry.elapsed() >= Duration::from_secs(1)
        {
            // A store failure interrupted fork choice: try again (an I/O error is no verdict).
            self.clocks.last_activation_retry = Instant::now();
            match self.chain.retry_activation() {
                Ok(changed) => self.tips_dirty |= changed,
                Err(e) => tracing::error!(error = %e, "fork choice still fails; retrying"),
            }
        }
        if self.clocks.last_expiry.elapsed() >= Duration::from_secs(60) {
            self.chain.expire_mempool(clock_ms(self.clock_offset_ms));
            self.clocks.last_expiry = Instant::now();
        }
        if !self.gap.is_empty() && self.clocks.last_gap_expiry.elapsed() >= Duration::from_secs(1) {
            self.expire_held();
            self.publish_overdue_waiting();
            self.clocks.last_gap_expiry = Instant::now();
        }
        if !self.gap.is_empty() && self.clocks.last_gap_retry.elapsed() >= Duration::from_secs(1) {
            // A block may have confirmed the missing nonce meanwhile.
            for sender in self.gap.senders() {
                self.admit_held(&sender);
            }
            self.clocks.last_gap_retry = Instant::now();
        }
        if let Some(dev) = self.dev
            && dev.block_time_ms > 0
            && self.clocks.last_dev_block.elapsed() >= Duration::from_millis(dev.block_time_ms)
        {
            self.clocks.last_dev_block = Instant::now();
            if let Err(e) = self.mine_now(1, None) {
                tracing::error!(error = %e, "dev block failed");
            }
        }
        self.record_hashrate();
        if let Some(adversary) = &mut self.adversary {
            adversary.tick(
                &mut self.chain,
                &self.links.outbox,
                clock_ms(self.clock_offset_ms),
            );
        }
    }

    fn record_hashrate(&mut self) {
        let (since, hashes) = self.clocks.last_hashes;
        if since.elapsed() >= Duration::from_secs(2) {
            let now = self.miner.hashes();
            let rate = now.saturating_sub(hashes) as f64 / since.elapsed().as_secs_f64();
            self.links.metrics.set_hashrate(rate);
            self.links
                .metrics
                .set_signature_verifications(peerchain_ledger::crypto::tx_verifications());
            self.clocks.last_hashes = (Instant::now(), now);
        }
    }
}
