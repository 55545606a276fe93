//! Block import and fork choice: the in-memory block tree over the store, orphans, blocks from
//! the future, the heaviest-valid-chain rule, reorgs of any depth, `invalidate` and
//! `reconsider`, chain tips, and the mempool that follows the tip.
//!
//! [`Chain`] is the single owner of the store's writes and of the mempool; the node runs it on
//! one thread. It is pure with respect to time: every call that needs the clock takes `now_ms`.
//!
//! Invariants:
//! - The store's tip is the block of greatest cumulative work among blocks not known invalid
//!   whose whole branch connected (ties: lowest arrival sequence, i.e. first seen).
//! - A block known invalid is never validated again, and neither is any descendant.
//! - After every call, the mempool holds only transactions valid on top of the tip.

use std::collections::{HashMap, HashSet, VecDeque};

use peerchain_ledger::ApplyError;
use peerchain_ledger::fast_hash::FastSet;
use peerchain_ledger::mempool::{Admitted, MempoolError, Selection};
use peerchain_ledger::state::apply_block;
use peerchain_ledger::{
    Address, BackgroundWrites, Block, BlockHeader, BlockRecord, BlockStatus, Genesis, Hash,
    Mempool, MempoolConfig, RebuiltBlock, Store, StoreError, StoreReader, Transaction, U256,
};

use crate::difficulty::{median_time_past, next_target};
use crate::just_stored::{JustStored, StoredBlock};
use crate::rules::{ConsensusError, check_body_txids, check_body_with, check_header};

/// Where a block came from, as the caller names it (e.g. a peer id); reported back with
/// verdicts so the caller can penalise the sender.
pub type Source = Option<String>;

/// Bounds of the pools the chain keeps.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Blocks whose parent is unknown, kept until the parent arrives.
    pub max_orphans: usize,
    /// Encoded bytes of those blocks.
    pub max_orphan_bytes: usize,
    /// Blocks from the future, kept until their time comes.
    pub max_future: usize,
    /// Mempool bounds.
    pub mempool: MempoolConfig,
    /// Main-chain blocks kept in memory until a write reaches the disk after them, to import
    /// again if a reopen after a failed write finds them gone ([`Chain::reopen_store`]); at
    /// the bound the store is flushed. Memory: this many blocks at most.
    pub max_undurable_blocks: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            max_orphans: 512,
            max_orphan_bytes: 64 * 1024 * 1024,
            max_future: 64,
            mempool: MempoolConfig::default(),
            max_undurable_blocks: 16,
        }
    }
}

/// What happened to one imported block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored; it is on the best chain (or a valid fork when `on_main` is false).
    Accepted {
        /// Whether it is now on the main chain.
        on_main: bool,
    },
    /// Already known; nothing changed.
    Duplicate,
    /// Parent unknown: held as an orphan. Fetch `missing` (the oldest unknown ancestor).
    Orphan {
        /// The block to request.
        missing: Hash,
    },
    /// Timestamp ahead of the clock: held and retried later; not the sender's fault.
    Future {
        /// The timestamp.
        timestamp_ms: u64,
    },
    /// Arrived unrequested and would not bring its branch to the active tip's work: neither
    /// stored nor relayed (Bitcoin Core's `AcceptBlock`). Not invalid; a peer that keeps
    /// sending such blocks wastes our time.
    Lighter {
        /// The branch's cumulative work with this block.
        work: U256,
        /// The active tip's cumulative work.
        tip_work: U256,
    },
    /// Invalid (by rule or because an ancestor is invalid): the sender should be penalised.
    Invalid(ConsensusError),
}

impl Verdict {
    /// Whether the sender deserves a penalty.
    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid(_))
    }
}

/// Events for the rest of the node (RPC, network, miner), drained with [`Chain::take_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEvent {
    /// A block joined the main chain.
    BlockConnected {
        /// Its hash.
        hash: Hash,
        /// Its height.
        height: u64,
    },
    /// A valid block was stored on a side branch: it did not join the main chain (yet).
    SideBlockStored {
        /// Its hash.
        hash: Hash,
        /// Its height.
        height: u64,
    },
    /// The main chain switched branches.
    Reorg {
        /// Height of the common ancestor.
        fork_height: u64,
        /// Tip before.
        old_tip: Hash,
        /// Tip after.
        new_tip: Hash,
        /// Blocks removed from the main chain, tip first.
        disconnected: Vec<Hash>,
        /// Blocks added, fork point first.
        connected: Vec<Hash>,
    },
    /// A transaction entered the mempool.
    TxAdmitted(Hash),
    /// A transaction of a disconnected block went back into the mempool (peers may not have
    /// it: the node rebroadcasts it).
    TxReturned(Hash),
}

/// A block's verdict with its hash and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The block.
    pub hash: Hash,
    /// Who sent it.
    pub source: Source,
    /// What happened.
    pub verdict: Verdict,
}

/// Status of a chain tip (SPEC `/v1/chain/tips`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipStatus {
    /// The main chain's tip.
    Active,
    /// A branch that is valid or not yet validated.
    ValidFork,
    /// A branch ending in an invalid block.
    Invalid,
}

/// One branch tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    /// Tip hash.
    pub hash: Hash,
    /// Tip height.
    pub height: u64,
    /// Cumulative work.
    pub total_work: U256,
    /// Blocks from the main chain to the tip (0 for the active tip).
    pub branch_length: u64,
    /// Status.
    pub status: TipStatus,
}

/// Failures of chain operations that are not verdicts on a block.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A block named by hash is unknown.
    #[error("block {0} is unknown")]
    UnknownBlock(Hash),
    /// Genesis cannot be invalidated or reconsidered.
    #[error("the genesis block cannot be invalidated or reconsidered")]
    Genesis,
}

/// What [`Chain::disconnect_to`] undid.
#[derive(Debug, Default)]
struct Disconnected {
    hashes: Vec<Hash>,
    blocks: Vec<Block>,
    touched: HashSet<Address>,
}

#[derive(Debug, Clone)]
struct Node {
    header: BlockHeader,
    total_work: U256,
    status: BlockStatus,
    seq: u64,
}

/// The block tree as the store holds it (loaded by [`Chain::open`] and
/// [`Chain::reopen_store`]).
struct StoredTree {
    nodes: HashMap<Hash, Node>,
    children: HashMap<Hash, Vec<Hash>>,
    leaves: HashSet<Hash>,
    tip: Hash,
}

impl StoredTree {
    fn load(store: &Store) -> Result<Self, ChainError> {
        let mut nodes = HashMap::new();
        let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
        for item in store.records() {
            let (hash, r) = item?;
            if r.header.height > 0 {
                children.entry(r.header.prev_hash).or_default().push(hash);
            }
            nodes.insert(
                hash,
                Node {
                    header: r.header,
                    total_work: r.total_work,
                    status: r.status,
                    seq: r.seq,
                },
            );
        }
        let tip = store.tip()?;
        let leaves = nodes
            .keys()
            .filter(|h| !children.contains_key(*h))
            .copied()
            .collect();
        Ok(StoredTree {
            nodes,
            children,
            leaves,
            tip,
        })
    }
}

/// A block that passed [`Chain::prepare_relay`] (its header on the tip, rule 5 and every
/// signature), holding that very block, so that [`Chain::import_relayable`] need not check
/// them again. Only `prepare_relay` makes one.
#[derive(Debug)]
pub struct RelayableBlock {
    block: Block,
    /// Its txids, as the checks computed them.
    txids: Vec<Hash>,
}

impl RelayableBlock {
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }
}

/// Whether the block being imported passed its checks before the import.
#[derive(Debug)]
enum Prechecked {
    /// No: check everything.
    No,
    /// [`Chain::prepare_relay`] passed (these are the block's txids): only the state is left.
    ForRelay(Vec<Hash>),
}

/// Changes of the pool not in the store's saved mempool yet
/// ([`Chain::take_saved_mempool_changes`]).
#[derive(Debug, Default)]
pub struct SavedMempoolChanges {
    /// Admitted since the last save.
    pub added: Vec<Transaction>,
    /// Gone from the pool since the last save.
    pub removed: Vec<Hash>,
}

impl SavedMempoolChanges {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// How many blocks the chain had connected on its main chain when it was taken
/// ([`Chain::durable_mark`]): a flush that starts after it makes those blocks durable
/// ([`Chain::blocks_durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurableMark(u64);

/// The block tree, fork choice and mempool. See the module docs.
#[derive(Debug)]
pub struct Chain {
    store: Store,
    genesis: Genesis,
    config: ChainConfig,
    nodes: HashMap<Hash, Node>,
    children: HashMap<Hash, Vec<Hash>>,
    orphans: HashMap<Hash, Vec<(Block, Source)>>,
    orphan_order: VecDeque<Hash>,
    orphan_bytes: usize,
    /// Blocks rejected without a record (cheap headers), most recent 10,000.
    rejected: HashSet<Hash>,
    rejected_order: VecDeque<Hash>,
    /// The clock of the latest call that passed one (stamps transactions returned by reorgs).
    clock_ms: u64,
    orphan_parent: HashMap<Hash, Hash>,
    future: Vec<(Block, Source)>,
    mempool: Mempool,
    events: Vec<ChainEvent>,
    /// Blocks that failed full validation while connecting, for the current import's verdicts.
    failed: Vec<(Hash, ConsensusError)>,
    /// A store failure interrupted fork choice: `retry_activation` runs it again.
    activation_failed: bool,
    /// Blocks that left the main chain when fork choice ran again on open (an interrupted
    /// reorg), whose transactions [`Chain::load_mempool`] offers back to the mempool.
    returned_at_open: Vec<Hash>,
    /// Txids in the store's saved mempool (kept in step by [`Chain::sync_saved_mempool`]).
    saved_mempool: FastSet<Hash>,
    /// Senders of stored blocks not yet fully validated, to report if connecting them fails.
    unvalidated_sources: HashMap<Hash, Source>,
    /// Blocks without children: the ends of every branch, where fork choice looks.
    leaves: HashSet<Hash>,
    tip: Hash,
    /// Main-chain blocks connected since a write last reached the disk, oldest first, each
    /// with its number in `connected_count` (at most `config.max_undurable_blocks`): sled
    /// drops a buffer it failed to write, so a reopen after a full disk may not find them
    /// ([`Chain::reopen_store`]).
    undurable: VecDeque<(u64, Block)>,
    /// Main-chain blocks connected since the chain was opened (numbers `undurable`).
    connected_count: u64,
    /// Blocks the current import checked and stored, for fork choice to connect.
    just_stored: JustStored,
}

impl Chain {
    /// Loads the block tree from the store, then runs fork choice again: a node killed in the
    /// middle of a reorg (each block's disconnect and connect is atomic, the reorg as a whole
    /// is not) restarts on a tip below the best chain it already stored, and moves to it here.
    /// The transactions of the blocks that left the main chain wait for
    /// [`Chain::load_mempool`]. A store failure during that fork choice does not fail the
    /// open: it is retried like any other ([`Chain::retry_activation`]).
    pub fn open(store: Store, genesis: Genesis, config: ChainConfig) -> Result<Self, ChainError> {
        let StoredTree {
            nodes,
            children,
            leaves,
            tip,
        } = StoredTree::load(&store)?;
        let mempool = Mempool::new(config.mempool.clone(), &genesis);
        let mut chain = Chain {
            store,
            genesis,
            config,
            nodes,
            children,
            orphans: HashMap::new(),
            orphan_order: VecDeque::new(),
            orphan_bytes: 0,
            rejected: HashSet::new(),
            rejected_order: VecDeque::new(),
            clock_ms: 0,
            orphan_parent: HashMap::new(),
            future: Vec::new(),
            mempool,
            events: Vec::new(),
            failed: Vec::new(),
            activation_failed: false,
            returned_at_open: Vec::new(),
            saved_mempool: FastSet::default(),
            unvalidated_sources: HashMap::new(),
            leaves,
            tip,
            undurable: VecDeque::new(),
            connected_count: 0,
            just_stored: JustStored::default(),
        };
        chain.resume_fork_choice();
        Ok(chain)
    }

    /// Reopens the store from disk and loads the block tree from it again, as a restart
    /// would: after a full disk, sled refuses every write until it is reopened, and what it
    /// holds then is what reached the disk (a write buffer that failed is dropped, as in a
    /// crash). Fork choice runs again; then the main-chain blocks connected since a write last
    /// reached the disk that the store lost are imported again (a node without peers would
    /// otherwise lose them and the transfers in them); then the mempool is rebuilt from the
    /// returned transactions, the saved mempool and the transactions pending before, each
    /// revalidated against the new tip. Orphans and future blocks in memory are kept. On an
    /// error the chain may be left unable to write; call it again later.
    pub fn reopen_store(&mut self, now_ms: u64) -> Result<(), ChainError> {
        let pending = self.mempool.snapshot();
        self.store.reopen()?;
        let tree = StoredTree::load(&self.store)?;
        self.nodes = tree.nodes;
        self.children = tree.children;
        self.leaves = tree.leaves;
        self.tip = tree.tip;
        self.failed.clear();
        self.activation_failed = false;
        self.unvalidated_sources.clear();
        self.saved_mempool.clear();
        self.just_stored.clear();
        self.mempool = self.mempool.emptied();
        self.resume_fork_choice();
        let replayed = self.replay_undurable(now_ms);
        // The pending transactions before anything else that writes (and may fail on a disk
        // that is still marginal): a failed attempt must not lose them. Offered again after
        // the returned ones, which some of them follow (their predecessors were in blocks the
        // disk lost); the periodic mempool save writes those.
        self.mempool.add_batch(pending.clone(), &self.store, now_ms);
        let loaded = self.load_mempool(now_ms);
        self.mempool.add_batch(pending, &self.store, now_ms);
        replayed.and(loaded).map(|_| ())
    }

    /// Imports again, oldest first, the kept main-chain blocks that the reopened store lacks.
    /// Returns how many. On a store error the blocks not yet imported stay kept for the next
    /// attempt.
    fn replay_undurable(&mut self, now_ms: u64) -> Result<usize, ChainError> {
        let mut kept = std::mem::take(&mut self.undurable);
        let mut replayed: usize = 0;
        while let Some((number, block)) = kept.pop_front() {
            if self.nodes.contains_key(&block.hash()) {
                continue;
            }
            // Connecting it keeps it again (in `undurable`) until a write reaches the disk.
            if let Err(e) = self.import(block.clone(), None, now_ms) {
                kept.push_front((number, block));
                self.undurable.extend(kept);
                return Err(e);
            }
            replayed = replayed.saturating_add(1);
        }
        if replayed > 0 {
            tracing::warn!(
                blocks = replayed,
                tip = %self.tip,
                "blocks the store lost in the failed write were imported again"
            );
        }
        Ok(replayed)
    }

    /// Keeps a block just connected on the main chain until a write reaches the disk. At the
    /// bound the store is flushed, which makes every kept block durable (a sync burst connects
    /// blocks faster than the once-a-second probe); if that flush fails, the oldest is let go.
    /// The flush leaves the pending txindex entries to the node's writer: on the chain thread
    /// they took every node about 40 ms per 5,000-transfer block, on the same block of each
    /// sixteen across a test network (docs/BENCHMARKS.md section 16).
    fn keep_undurable(&mut self, block: Block) {
        if self.config.max_undurable_blocks == 0 {
            return;
        }
        if self.undurable.len() >= self.config.max_undurable_blocks {
            match self.store.flush_written() {
                Ok(()) => self.undurable.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, "flushing the store failed; the oldest block kept for a reopen is let go");
                    self.undurable.pop_front();
                }
            }
        }
        self.connected_count = self.connected_count.wrapping_add(1);
        self.undurable.push_back((self.connected_count, block));
    }

    /// Fork choice on open (see [`Chain::open`]).
    fn resume_fork_choice(&mut self) {
        let opened_at = self.tip;
        if let Err(e) = self.activate_best() {
            tracing::error!(error = %e, "fork choice on open failed; will retry");
        }
        if self.tip == opened_at {
            return;
        }
        tracing::warn!(from = %opened_at, to = %self.tip, "an interrupted reorganisation was completed on open");
        // The lowest main-chain ancestor of the tip we opened on is where the branches part;
        // every valid block above it that is off the main chain now was on it before the
        // reorg began (or was disconnected just now).
        let mut fork = opened_at;
        while !self.is_on_main(&fork) {
            match self.nodes.get(&fork) {
                Some(n) if n.header.height > 0 => fork = n.header.prev_hash,
                _ => break,
            }
        }
        let mut returned = Vec::new();
        let mut stack: Vec<Hash> = self.children.get(&fork).cloned().unwrap_or_default();
        while let Some(hash) = stack.pop() {
            if self.is_on_main(&hash) {
                continue;
            }
            if self
                .nodes
                .get(&hash)
                .is_some_and(|n| n.status == BlockStatus::Valid)
            {
                returned.push(hash);
                stack.extend(self.children.get(&hash).cloned().unwrap_or_default());
            }
        }
        returned.sort_by_key(|h| self.nodes.get(h).map_or(0, |n| n.header.height));
        self.returned_at_open = returned;
        // Nothing reaches the mempool before `load_mempool` gives it the time.
        self.mempool = self.mempool.emptied();
        self.events
            .retain(|e| !matches!(e, ChainEvent::TxReturned(_)));
    }

    /// The store (reads).
    pub fn store(&self) -> &StoreReader {
        &self.store
    }

    /// A read-only handle on the store for other threads.
    pub fn store_reader(&self) -> StoreReader {
        self.store.reader()
    }

    /// Whether the store still takes writes (see `Store::probe_write`). The probe flushes:
    /// once it succeeds, every block connected before it is on the disk. A node probes on
    /// another thread ([`BackgroundWrites::probe_write`] between [`Chain::durable_mark`]
    /// and [`Chain::blocks_durable`]); this is for when it must know before going on.
    pub fn probe_store(&mut self) -> Result<(), ChainError> {
        self.store.probe_write()?;
        self.undurable.clear();
        Ok(())
    }

    /// Main-chain blocks kept in memory until a write reaches the disk (for a reopen).
    pub fn kept_for_reopen(&self) -> usize {
        self.undurable.len()
    }

    /// The blocks connected so far, to hand to [`Chain::blocks_durable`] once a flush that
    /// started after this call has succeeded.
    pub fn durable_mark(&self) -> DurableMark {
        DurableMark(self.connected_count)
    }

    /// A flush that started after `mark` was taken succeeded: the blocks connected up to it
    /// are on the disk and need not be kept for a reopen. Blocks connected since stay kept.
    pub fn blocks_durable(&mut self, mark: DurableMark) {
        while self
            .undurable
            .front()
            .is_some_and(|(number, _)| *number <= mark.0)
        {
            self.undurable.pop_front();
        }
    }

    /// Writes the txindex entries of the blocks connected since the last call (readers see
    /// them already; `Store::write_txindex`). Call it once the blocks are announced: it is
    /// most of a block's store writes. Returns how many.
    pub fn write_txindex(&self) -> Result<usize, ChainError> {
        Ok(self.store.write_txindex()?)
    }

    /// Writes everything to disk.
    pub fn flush(&mut self) -> Result<(), ChainError> {
        self.store.flush()?;
        self.undurable.clear();
        Ok(())
    }

    /// The network definition.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The mempool (reads).
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The main-chain tip hash.
    pub fn tip(&self) -> Hash {
        self.tip
    }

    /// The main-chain tip header.
    pub fn tip_header(&self) -> &BlockHeader {
        &self.node(&self.tip).header
    }

    /// Cumulative work of the main chain.
    pub fn tip_work(&self) -> U256 {
        self.node(&self.tip).total_work
    }

    /// Header, cumulative work and status of a known block.
    pub fn block_info(&self, hash: &Hash) -> Option<(BlockHeader, U256, BlockStatus)> {
        self.nodes
            .get(hash)
            .map(|n| (n.header.clone(), n.total_work, n.status))
    }

    /// Whether the block is in the tree (stored with its body, or known invalid).
    pub fn knows(&self, hash: &Hash) -> bool {
        self.nodes.contains_key(hash) || self.orphan_parent.contains_key(hash)
    }

    /// Number of held orphans.
    pub fn orphan_count(&self) -> usize {
        self.orphan_parent.len()
    }

    /// Drains the events produced since the last call.
    pub fn take_events(&mut self) -> Vec<ChainEvent> {
        std::mem::take(&mut self.events)
    }

    // Cannot panic: callers pass the tip or blocks of a branch walked through the tree, and the
    // tip and every ancestor of a stored block are in the tree by construction.
    #[allow(clippy::indexing_slicing)]
    fn node(&self, hash: &Hash) -> &Node {
        &self.nodes[hash]
    }

    /// The target the block after `parent` must carry.
    pub fn next_target_after(&self, parent: &Hash) -> Option<peerchain_ledger::Target> {
        let p = self.nodes.get(parent)?;
        let gp = (p.header.height > 0)
            .then(|| self.nodes.get(&p.header.prev_hash))
            .flatten();
        Some(next_target(&p.header, gp.map(|n| &n.header), &self.genesis))
    }

    /// Median time past of the 11 blocks ending with `parent`.
    pub fn median_time_past(&self, parent: &Hash) -> u64 {
        let mut stamps = Vec::with_capacity(11);
        let mut cursor = self.nodes.get(parent);
        while let Some(n) = cursor {
            stamps.push(n.header.timestamp_ms);
            if stamps.len() == 11 || n.header.height == 0 {
                break;
            }
            cursor = self.nodes.get(&n.header.prev_hash);
        }
        median_time_past(&stamps)
    }

    /// The cumulative work of the branch `header` would end, when its parent is in the tree
    /// (`None` for an orphan).
    pub fn work_with(&self, header: &BlockHeader) -> Option<U256> {
        let parent = self.nodes.get(&header.prev_hash)?;
        Some(parent.total_work.saturating_add(header.target.work()))
    }

    /// Imports a block that arrived unrequested (gossip). A block whose branch, with it, would
    /// still have less work than the active tip is dropped with [`Verdict::Lighter`]: a
    /// cheap side branch (a fork from an old block at `pow_limit` costs a few hashes a block)
    /// then grows neither the block tree, nor the disk, nor the cost of fork choice, and is
    /// not relayed. Blocks fetched by sync (requested, headers-first onto a heavier branch)
    /// go through [`Chain::import`].
    pub fn import_unrequested(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
    ) -> Result<Vec<Imported>, ChainError> {
        let hash = block.hash();
        if !self.nodes.contains_key(&hash)
            && let Some(work) = self.work_with(&block.header)
        {
            let tip_work = self.tip_work();
            if work < tip_work {
                return Ok(vec![Imported {
                    hash,
                    source,
                    verdict: Verdict::Lighter { work, tip_work },
                }]);
            }
        }
        self.import(block, source, now_ms)
    }

    /// Imports a block from `source`, then any orphans it unlocks. Returns one verdict per
    /// block processed (the given block first).
    pub fn import(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
    ) -> Result<Vec<Imported>, ChainError> {
        self.import_blocks(block, source, now_ms, Prechecked::No)
    }

    /// [`Chain::import`] of a block [`Chain::prepare_relay`] passed: rules 1-5 and its
    /// signatures are not checked again, only its state is (about 3-5 ms less for a
    /// 5,000-transfer block).
    pub fn import_relayable(
        &mut self,
        checked: RelayableBlock,
        source: Source,
        now_ms: u64,
    ) -> Result<Vec<Imported>, ChainError> {
        let RelayableBlock { block, txids } = checked;
        self.import_blocks(block, source, now_ms, Prechecked::ForRelay(txids))
    }

    /// Imports the blocks, then forgets the ones kept for fork choice, however it ended.
    fn import_blocks(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
        prechecked: Prechecked,
    ) -> Result<Vec<Imported>, ChainError> {
        let imported = self.import_and_activate(block, source, now_ms, prechecked);
        self.just_stored.clear();
        imported
    }

    fn import_and_activate(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
        prechecked: Prechecked,
    ) -> Result<Vec<Imported>, ChainError> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mut out = Vec::new();
        let mut queue = VecDeque::from([(block, source, prechecked)]);
        while let Some((block, source, prechecked)) = queue.pop_front() {
            let hash = block.hash();
            let verdict = self.import_one(block, &source, now_ms, prechecked)?;
            if matches!(verdict, Verdict::Accepted { .. }) {
                self.remember_source(hash, source.clone());
                queue.extend(
                    self.take_orphans_of(&hash)
                        .into_iter()
                        .map(|(b, s)| (b, s, Prechecked::No)),
                );
            } else if verdict.is_invalid() {
                self.reject_orphans_of(&hash, &mut out);
            }
            out.push(Imported {
                hash,
                source,
                verdict,
            });
        }
        self.activate_best()?;
        // Report blocks that failed while connecting, and the final main-chain status.
        let failed = std::mem::take(&mut self.failed);
        for item in &mut out {
            if let Some((_, e)) = failed.iter().find(|(h, _)| *h == item.hash) {
                item.verdict = Verdict::Invalid(e.clone());
            } else if let Verdict::Accepted { on_main } = &mut item.verdict {
                *on_main = self.is_on_main(&item.hash);
                if let (false, Some(n)) = (*on_main, self.nodes.get(&item.hash)) {
                    self.events.push(ChainEvent::SideBlockStored {
                        hash: item.hash,
                        height: n.header.height,
                    });
                }
            }
        }
        // Blocks imported earlier that failed now: report them with their original sender.
        for (hash, e) in failed {
            if !out.iter().any(|i| i.hash == hash) {
                out.push(Imported {
                    hash,
                    source: self.unvalidated_sources.remove(&hash).flatten(),
                    verdict: Verdict::Invalid(e),
                });
            }
        }
        Ok(out)
    }

    /// Keeps the sender of a stored, not yet validated block (bounded; oldest forgotten first
    /// is not tracked, so at the bound the map is simply cleared).
    fn remember_source(&mut self, hash: Hash, source: Source) {
        const MAX_SOURCES: usize = 50_000;
        if self.unvalidated_sources.len() >= MAX_SOURCES {
            self.unvalidated_sources.clear();
        }
        self.unvalidated_sources.insert(hash, source);
    }

    fn reject_orphans_of(&mut self, hash: &Hash, out: &mut Vec<Imported>) {
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            for (child, src) in self.take_orphans_of(&h) {
                let ch = child.hash();
                stack.push(ch);
                out.push(Imported {
                    hash: ch,
                    source: src,
                    verdict: Verdict::Invalid(ConsensusError::InvalidAncestor { ancestor: *hash }),
                });
            }
        }
    }

    fn import_one(
        &mut self,
        block: Block,
        source: &Source,
        now_ms: u64,
        prechecked: Prechecked,
    ) -> Result<Verdict, ChainError> {
        let hash = block.hash();
        if let Some(n) = self.nodes.get(&hash) {
            return Ok(if n.status.is_invalid() {
                Verdict::Invalid(ConsensusError::KnownInvalid { hash })
            } else {
                Verdict::Duplicate
            });
        }
        if self.orphan_parent.contains_key(&hash) {
            return Ok(Verdict::Duplicate);
        }
        // Cheap proof of work first: nothing that lacks it is held or remembered.
        if let Err(e) = self.check_own_work(&block.header, &hash) {
            return Ok(Verdict::Invalid(e));
        }
        let parent_hash = block.header.prev_hash;
        if self.rejected.contains(&parent_hash) {
            self.remember_rejected(hash);
            return Ok(Verdict::Invalid(ConsensusError::InvalidAncestor {
                ancestor: parent_hash,
            }));
        }
        let Some(parent) = self.nodes.get(&parent_hash) else {
            return Ok(self.hold_orphan(block, source.clone()));
        };
        if parent.status == BlockStatus::Invalid {
            if self.next_target_after(&parent_hash) == Some(block.header.target) {
                self.mark_invalid_header(&block.header)?;
            } else {
                self.remember_rejected(hash);
            }
            return Ok(Verdict::Invalid(ConsensusError::InvalidAncestor {
                ancestor: parent_hash,
            }));
        }
        // Children of an operator-invalidated block are kept (with their body) and follow
        // its fate: `reconsider` makes them candidates again.
        let status = if parent.status == BlockStatus::InvalidatedByUser {
            BlockStatus::InvalidatedByUser
        } else {
            BlockStatus::Unvalidated
        };
        let parent_header = parent.header.clone();
        let parent_work = parent.total_work;
        let expected = self
            .next_target_after(&parent_hash)
            .ok_or(ChainError::UnknownBlock(parent_hash))?;
        let checked = match prechecked {
            // The same block passed on the same parent: its parent is in its header, and a
            // later clock only lets more timestamps pass.
            Prechecked::ForRelay(txids) => Ok(txids),
            Prechecked::No => {
                self.check_without_state(&block, None, &parent_header, expected, now_ms)
            }
        };
        match checked {
            Err(e) if e.is_temporary() => Ok(self.hold_future(block, source.clone())),
            Err(e) => {
                // Remember it (so it is never validated again) only when its header carried
                // real work at the right difficulty; otherwise remembering would cost an
                // attacker nothing.
                if block.header.target == expected && !is_header_rule(&e) {
                    self.mark_invalid_header(&block.header)?;
                } else {
                    self.remember_rejected(hash);
                }
                Ok(Verdict::Invalid(e))
            }
            Ok(txids) => {
                let record = BlockRecord {
                    total_work: parent_work.saturating_add(block.header.target.work()),
                    header: block.header.clone(),
                    status,
                    seq: self.store.next_seq()?,
                };
                self.store.put_block(&block, &record)?;
                self.insert_node(hash, record);
                self.just_stored.keep(hash, StoredBlock { block, txids });
                Ok(Verdict::Accepted { on_main: false })
            }
        }
    }

    /// Whether `block` may be relayed before its transactions are applied (BIP 152's
    /// high-bandwidth relay, docs/NETWORK.md section 3): it extends the active tip (whose
    /// state is applied and valid, as Bitcoin Core asks), its header passes rules 1-4 on it at
    /// `now_ms`, and its body passes rule 5 and every signature check. Signatures in the
    /// verified set are not checked again, and those checked here join it, so the import
    /// checks none twice. Only the state part of rules 6-7 is left to the import, so a block
    /// relayed early and found invalid there still cost its sender a block's proof of work
    /// at the right difficulty.
    pub fn relayable(&self, block: &Block, now_ms: u64) -> bool {
        self.relay_checks(block, None, now_ms).is_some()
    }

    /// [`Chain::relayable`], keeping the proof with the block for
    /// [`Chain::import_relayable`]; the block back when it is not relayable.
    // Both variants hold the same block, moved, not copied: boxing it would only allocate.
    #[allow(clippy::result_large_err)]
    pub fn prepare_relay(&self, block: Block, now_ms: u64) -> Result<RelayableBlock, Block> {
        match self.relay_checks(&block, None, now_ms) {
            Some(txids) => Ok(RelayableBlock { block, txids }),
            None => Err(block),
        }
    }

    /// [`Chain::prepare_relay`] for a block rebuilt from this node's mempool: its txids, as
    /// the mempool computed them on admission, are not computed again (about 1.3 ms of a
    /// 5,000-transfer block's 3.4 ms of checks).
    #[allow(clippy::result_large_err)]
    pub fn prepare_relay_rebuilt(
        &self,
        rebuilt: RebuiltBlock,
        now_ms: u64,
    ) -> Result<RelayableBlock, Block> {
        let (block, txids) = rebuilt.into_parts();
        match self.relay_checks(&block, Some(txids), now_ms) {
            Some(txids) => Ok(RelayableBlock { block, txids }),
            None => Err(block),
        }
    }

    /// The block's txids when [`Chain::relayable`] passes.
    fn relay_checks(
        &self,
        block: &Block,
        known_txids: Option<Vec<Hash>>,
        now_ms: u64,
    ) -> Option<Vec<Hash>> {
        let parent_hash = &block.header.prev_hash;
        if *parent_hash != self.tip {
            return None;
        }
        let parent = self.nodes.get(parent_hash)?;
        let expected = self.next_target_after(parent_hash)?;
        self.check_without_state(block, known_txids, &parent.header, expected, now_ms)
            .ok()
    }

    /// Rules 1-5 and every signature of `block` on `parent` (the difficulty rule asking
    /// `expected`), at `now_ms`: all a block is checked for before its transactions are
    /// applied. Signatures in the verified set are not checked again; once the block passes,
    /// all of its signatures join the set, so a reorg that connects it again, the same
    /// transactions in another block, or the import after an early relay skip them.
    /// Returns the block's txids: `known_txids` when given (computed by this node's
    /// mempool, one per transaction: `RebuiltBlock`), else computed here.
    fn check_without_state(
        &self,
        block: &Block,
        known_txids: Option<Vec<Hash>>,
        parent: &BlockHeader,
        expected: peerchain_ledger::Target,
        now_ms: u64,
    ) -> Result<Vec<Hash>, ConsensusError> {
        let mtp = self.median_time_past(&block.header.prev_hash);
        check_header(&block.header, parent, expected, mtp, now_ms, &self.genesis)?;
        let mut verified = self.mempool.verified_signatures();
        let txids = match known_txids {
            Some(txids) => check_body_txids(block, txids, &self.genesis, &verified)?,
            None => check_body_with(block, &self.genesis, &verified)?,
        };
        txids.iter().for_each(|t| verified.insert(*t));
        Ok(txids)
    }

    /// The header's own proof of work: a target no easier than `pow_limit`, met by `hash`
    /// (the header's hash). Cheap, and needs no parent. It says nothing about whether the
    /// target is the right one, but makes every block a peer sends cost real work before it
    /// is held as an orphan or remembered as invalid.
    pub fn check_own_work(&self, header: &BlockHeader, hash: &Hash) -> Result<(), ConsensusError> {
        if header.target > self.genesis.pow_limit {
            return Err(ConsensusError::BadTarget {
                expected: self.genesis.pow_limit,
                got: header.target,
            });
        }
        if !header.target.is_met_by(hash) {
            return Err(ConsensusError::InsufficientWork {
                hash: *hash,
                target: header.target,
            });
        }
        Ok(())
    }

    fn insert_node(&mut self, hash: Hash, r: BlockRecord) {
        self.leaves.remove(&r.header.prev_hash);
        self.leaves.insert(hash);
        self.children
            .entry(r.header.prev_hash)
            .or_default()
            .push(hash);
        self.nodes.insert(
            hash,
            Node {
                header: r.header,
                total_work: r.total_work,
                status: r.status,
                seq: r.seq,
            },
        );
    }

    /// Remembers an invalid block by its header only (the body is not kept).
    fn mark_invalid_header(&mut self, header: &BlockHeader) -> Result<(), ChainError> {
        let parent_work = self
            .nodes
            .get(&header.prev_hash)
            .map_or(U256::zero(), |n| n.total_work);
        let record = BlockRecord {
            header: header.clone(),
            total_work: parent_work.saturating_add(header.target.work()),
            status: BlockStatus::Invalid,
            seq: self.store.next_seq()?,
        };
        self.store.put_record(&header.hash(), &record)?;
        self.insert_node(header.hash(), record);
        Ok(())
    }

    /// Remembers, in memory and bounded, a block rejected without being recorded, so its
    /// descendants are refused (and their senders penalised) instead of held as orphans.
    fn remember_rejected(&mut self, hash: Hash) {
        const MAX_REJECTED: usize = 10_000;
        if self.rejected.insert(hash) {
            self.rejected_order.push_back(hash);
        }
        while self.rejected_order.len() > MAX_REJECTED {
            if let Some(old) = self.rejected_order.pop_front() {
                self.rejected.remove(&old);
            }
        }
    }

    /// Removes and returns the held orphans whose parent is `parent`.
    fn take_orphans_of(&mut self, parent: &Hash) -> Vec<(Block, Source)> {
        let kids = self.orphans.remove(parent).unwrap_or_default();
        for (child, _) in &kids {
            let h = child.hash();
            self.orphan_parent.remove(&h);
            self.orphan_order.retain(|o| *o != h);
            self.orphan_bytes = self.orphan_bytes.saturating_sub(child.encoded_len());
        }
        kids
    }

    fn hold_orphan(&mut self, block: Block, source: Source) -> Verdict {
        let hash = block.hash();
        let parent = block.header.prev_hash;
        let size = block.encoded_len();
        while self.orphan_parent.len() >= self.config.max_orphans
            || self.orphan_bytes.saturating_add(size) > self.config.max_orphan_bytes
        {
            let Some(old) = self.orphan_order.pop_front() else {
                break;
            };
            let Some(old_parent) = self.orphan_parent.remove(&old) else {
                continue;
            };
            let mut freed: usize = 0;
            let now_empty = self.orphans.get_mut(&old_parent).is_some_and(|list| {
                list.retain(|(b, _)| {
                    let keep = b.hash() != old;
                    if !keep {
                        freed = freed.saturating_add(b.encoded_len());
                    }
                    keep
                });
                list.is_empty()
            });
            self.orphan_bytes = self.orphan_bytes.saturating_sub(freed);
            if now_empty {
                self.orphans.remove(&old_parent);
            }
        }
        self.orphans
            .entry(parent)
            .or_default()
            .push((block, source));
        self.orphan_parent.insert(hash, parent);
        self.orphan_order.push_back(hash);
        self.orphan_bytes = self.orphan_bytes.saturating_add(size);
        Verdict::Orphan {
            missing: self.missing_ancestor(&parent),
        }
    }

    /// The oldest unknown ancestor reachable through held orphans from `parent`.
    pub fn missing_ancestor(&self, parent: &Hash) -> Hash {
        let mut missing = *parent;
        while let Some(p) = self.orphan_parent.get(&missing) {
            missing = *p;
        }
        missing
    }

    /// Holds a block from the future with its sender (so an invalid one still costs its
    /// sender when it is retried); a copy already held is not held twice.
    fn hold_future(&mut self, block: Block, source: Source) -> Verdict {
        let timestamp_ms = block.header.timestamp_ms;
        let hash = block.hash();
        if self.future.iter().any(|(b, _)| b.hash() == hash) {
            return Verdict::Future { timestamp_ms };
        }
        if self.future.len() >= self.config.max_future {
            self.future.remove(0);
        }
        self.future.push((block, source));
        Verdict::Future { timestamp_ms }
    }

    /// Blocks held until their timestamp is acceptable.
    pub fn future_count(&self) -> usize {
        self.future.len()
    }

    /// Retries blocks held for their timestamp whose time has come.
    pub fn retry_future(&mut self, now_ms: u64) -> Result<Vec<Imported>, ChainError> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let limit = now_ms.saturating_add(self.genesis.max_future_ms);
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|(b, _)| b.header.timestamp_ms <= limit);
        self.future = wait;
        let mut out = Vec::new();
        for (block, source) in ready {
            out.extend(self.import(block, source, now_ms)?);
        }
        Ok(out)
    }

    /// Whether `hash` is on the main chain.
    pub fn is_on_main(&self, hash: &Hash) -> bool {
        let Some(n) = self.nodes.get(hash) else {
            return false;
        };
        matches!(self.store.main_hash(n.header.height), Ok(Some(h)) if h == *hash)
    }

    /// The best candidate: most work, not invalid, whole branch stored; ties to first seen.
    /// Only branch leaves are examined: the best block of a branch is its leaf, or, when the
    /// branch contains an invalid block, the block just below the lowest invalid one.
    fn best_candidate(&self) -> Hash {
        let tip = self.node(&self.tip);
        let mut best = self.tip;
        let mut best_key = (tip.total_work, std::cmp::Reverse(tip.seq));
        for leaf in &self.leaves {
            let Some(n) = self.nodes.get(leaf) else {
                continue;
            };
            // Cheap rejection: nothing on this branch has more work than its leaf.
            if n.total_work < best_key.0 {
                continue;
            }
            if let Some(candidate) = self.best_of_branch(leaf) {
                let c = self.node(&candidate);
                let key = (c.total_work, std::cmp::Reverse(c.seq));
                if key > best_key {
                    best = candidate;
                    best_key = key;
                }
            }
        }
        best
    }

    /// Walks from `leaf` down to the main chain and returns the highest block whose whole
    /// path to the main chain is free of invalid blocks (None when there is none above it).
    fn best_of_branch(&self, leaf: &Hash) -> Option<Hash> {
        let mut best = Some(*leaf);
        let mut cursor = *leaf;
        loop {
            let n = self.nodes.get(&cursor)?;
            if n.status.is_invalid() {
                best = None; // everything above here is unusable
            } else if best.is_none() {
                best = Some(cursor);
            }
            if n.header.height == 0 || (n.status == BlockStatus::Valid && self.is_on_main(&cursor))
            {
                return best.filter(|b| !self.is_on_main(b) || *b == self.tip);
            }
            cursor = n.header.prev_hash;
        }
    }

    /// Moves the main chain to the best candidate, falling back when a block of the new branch
    /// turns out invalid, until the tip is the best valid chain.
    fn activate_best(&mut self) -> Result<(), ChainError> {
        loop {
            let target = self.best_candidate();
            if target == self.tip {
                return Ok(());
            }
            self.switch_to(target)?;
        }
    }

    /// The blocks from the fork point (exclusive) up to `target`, fork point first, and the
    /// fork point.
    fn path_from_main(&self, target: &Hash) -> Result<(Vec<Hash>, Hash), ChainError> {
        let mut path = Vec::new();
        let mut cursor = *target;
        while !self.is_on_main(&cursor) {
            path.push(cursor);
            // Not `node`: when the store fails, `is_on_main` is false even for genesis, whose
            // parent (the zero hash) is not in the tree.
            cursor = self
                .nodes
                .get(&cursor)
                .ok_or(ChainError::UnknownBlock(cursor))?
                .header
                .prev_hash;
        }
        path.reverse();
        Ok((path, cursor))
    }

    /// Disconnects main-chain blocks until `ancestor` is the tip; returns their hashes, the
    /// blocks themselves (old tip first) and every account they had changed.
    fn disconnect_to(&mut self, ancestor: &Hash) -> Result<Disconnected, ChainError> {
        let mut out = Disconnected::default();
        while self.tip != *ancestor {
            let (block, delta) = self.store.disconnect_tip()?;
            out.hashes.push(block.hash());
            out.touched.extend(delta.changes.iter().map(|c| c.address));
            self.tip = block.header.prev_hash;
            out.blocks.push(block);
        }
        Ok(out)
    }

    fn switch_to(&mut self, target: Hash) -> Result<(), ChainError> {
        let old_tip = self.tip;
        let (path, fork) = self.path_from_main(&target)?;
        let Disconnected {
            hashes: disconnected,
            blocks: reverted_txs,
            mut touched,
        } = self.disconnect_to(&fork)?;
        let mut connected = Vec::new();
        let mut confirmed = Vec::new();
        // An I/O failure stops the switch where it is, but is never a verdict: the block stays
        // unvalidated, its senders are not blamed, and `retry_activation` tries again.
        let mut io_error: Option<ChainError> = None;
        for hash in path {
            let StoredBlock { block, txids } = match self.stored_block(&hash) {
                Ok(stored) => stored,
                Err(e) => {
                    io_error = Some(e.into());
                    break;
                }
            };
            match apply_block(&self.store, &self.genesis, &block) {
                Ok(delta) => {
                    if let Err(e) = self.store.connect_block_with_txids(&block, &txids, &delta) {
                        io_error = Some(e.into());
                        break;
                    }
                    self.tip = hash;
                    connected.push(hash);
                    for c in &delta.changes {
                        touched.insert(c.address);
                    }
                    confirmed.extend(txids);
                    self.keep_undurable(block);
                    self.unvalidated_sources.remove(&hash);
                    if let Err(e) = self.set_status(&hash, BlockStatus::Valid) {
                        io_error = Some(e);
                        break;
                    }
                }
                Err(ApplyError::Store(e)) => {
                    io_error = Some(e.into());
                    break;
                }
                Err(e) => {
                    tracing::warn!(%hash, error = %e, "block of the heavier branch is invalid");
                    self.mark_subtree(&hash, BlockStatus::Invalid)?;
                    self.failed
                        .push((hash, ConsensusError::InvalidTransactions(e)));
                    break;
                }
            }
        }
        self.update_mempool(&reverted_txs, &confirmed, touched)?;
        self.emit_switch(old_tip, fork, disconnected, connected);
        if let Some(e) = io_error {
            tracing::error!(error = %e, target = %target, "store failure while switching branches; will retry");
            self.activation_failed = true;
            return Err(e);
        }
        Ok(())
    }

    /// Runs fork choice again after a store failure interrupted it (no-op otherwise). Returns
    /// whether the tip changed.
    pub fn retry_activation(&mut self) -> Result<bool, ChainError> {
        if !self.activation_failed {
            return Ok(false);
        }
        self.activation_failed = false;
        let before = self.tip;
        self.activate_best()?;
        Ok(self.tip != before)
    }

    /// Whether fork choice waits for a retry after a store failure.
    pub fn activation_pending(&self) -> bool {
        self.activation_failed
    }

    fn emit_switch(
        &mut self,
        old_tip: Hash,
        fork: Hash,
        disconnected: Vec<Hash>,
        connected: Vec<Hash>,
    ) {
        if !disconnected.is_empty() {
            self.events.push(ChainEvent::Reorg {
                fork_height: self.node(&fork).header.height,
                old_tip,
                new_tip: self.tip,
                disconnected,
                connected: connected.clone(),
            });
        }
        for hash in connected {
            let height = self.node(&hash).header.height;
            self.events
                .push(ChainEvent::BlockConnected { hash, height });
        }
    }

    fn update_mempool(
        &mut self,
        reverted: &[Block],
        confirmed: &[Hash],
        mut touched: HashSet<Address>,
    ) -> Result<(), ChainError> {
        let now = self.clock_ms;
        for block in reverted {
            for tx in &block.transactions {
                touched.insert(tx.sender());
            }
        }
        // Re-admit first, oldest reverted block first, so each sender's nonces come back in
        // order below its still-pending later ones; then revalidate, which keeps a sender's
        // pending transactions exactly when they form a gapless, affordable run again.
        for block in reverted.iter().rev() {
            for tx in &block.transactions {
                if self.store.tx_location(&tx.txid())?.is_some() {
                    continue; // confirmed again on the new branch
                }
                if let Ok(Admitted::New { txid, .. }) =
                    self.mempool.add_verified(tx.clone(), &self.store, now)
                {
                    self.events.push(ChainEvent::TxReturned(txid));
                }
            }
        }
        self.mempool.revalidate(confirmed, touched, &self.store)?;
        Ok(())
    }

    fn set_status(&mut self, hash: &Hash, status: BlockStatus) -> Result<(), ChainError> {
        let Some(n) = self.nodes.get_mut(hash) else {
            return Err(ChainError::UnknownBlock(*hash));
        };
        if n.status == status {
            return Ok(());
        }
        n.status = status;
        let record = BlockRecord {
            header: n.header.clone(),
            total_work: n.total_work,
            status,
            seq: n.seq,
        };
        self.store.put_record(hash, &record)?;
        Ok(())
    }

    /// Sets `status` on `hash` and every descendant, except descendants already invalid by
    /// rule (they stay so whatever an operator does).
    fn mark_subtree(&mut self, hash: &Hash, status: BlockStatus) -> Result<(), ChainError> {
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if self.nodes.get(&h).map(|n| n.status) != Some(BlockStatus::Invalid) {
                self.set_status(&h, status)?;
            }
            stack.extend(self.children.get(&h).cloned().unwrap_or_default());
        }
        Ok(())
    }

    /// Submits a transaction to the mempool (signature verified here).
    pub fn submit(&mut self, tx: Transaction, now_ms: u64) -> Result<Admitted, MempoolError> {
        let r = self.mempool.add(tx, &self.store, now_ms)?;
        if let Admitted::New { txid, .. } = &r {
            self.events.push(ChainEvent::TxAdmitted(*txid));
        }
        Ok(r)
    }

    /// Submits many transactions; signatures are checked on all cores first.
    pub fn submit_batch(
        &mut self,
        txs: Vec<Transaction>,
        now_ms: u64,
    ) -> Vec<Result<Admitted, MempoolError>> {
        let results = self.mempool.add_batch(txs, &self.store, now_ms);
        for r in &results {
            if let Ok(Admitted::New { txid, .. }) = r {
                self.events.push(ChainEvent::TxAdmitted(*txid));
            }
        }
        results
    }

    /// Drops expired mempool entries.
    pub fn expire_mempool(&mut self, now_ms: u64) -> usize {
        self.mempool.expire(now_ms).len()
    }

    /// Selects the transactions of the next block.
    pub fn select_transactions(&self) -> Result<Vec<Transaction>, ChainError> {
        Ok(self.start_selection()?.into_transactions())
    }

    /// [`Chain::select_transactions`], in a form [`Chain::extend_selection`] can append to
    /// while the tip stays.
    pub fn start_selection(&self) -> Result<Selection, ChainError> {
        Ok(self
            .mempool
            .start_selection(self.genesis.max_block_txs(), &self.store)?)
    }

    /// Appends to `selection`, started on the current tip, the transactions of `admitted`
    /// (admitted since) that are now valid next for their sender, with their sender's later
    /// nonces (`Mempool::extend_selection`); returns how many it appended.
    pub fn extend_selection<'a>(
        &self,
        selection: &mut Selection,
        admitted: impl IntoIterator<Item = &'a Hash>,
    ) -> Result<usize, ChainError> {
        Ok(self.mempool.extend_selection(
            selection,
            admitted,
            self.genesis.max_block_txs(),
            &self.store,
        )?)
    }

    /// Restores the mempool at start: first the transactions of blocks an interrupted reorg
    /// took off the main chain (see [`Chain::open`]), then the saved mempool, each
    /// revalidated against the tip. Returns how many are pending. The saved mempool is then
    /// rewritten from the pool, and kept in step by [`Chain::sync_saved_mempool`].
    pub fn load_mempool(&mut self, now_ms: u64) -> Result<usize, ChainError> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let returned = std::mem::take(&mut self.returned_at_open);
        if !returned.is_empty() {
            let mut blocks = Vec::with_capacity(returned.len());
            for hash in returned.iter().rev() {
                blocks.push(
                    self.store
                        .block(hash)?
                        .ok_or(StoreError::MissingBlock(*hash))?,
                );
            }
            self.update_mempool(&blocks, &[], HashSet::new())?;
        }
        let txs = self.store.load_mempool()?;
        self.mempool.add_batch(txs, &self.store, now_ms);
        self.save_mempool()?;
        Ok(self.mempool.len())
    }

    /// Saves the whole mempool and flushes it (shutdown).
    pub fn save_mempool(&mut self) -> Result<(), ChainError> {
        self.store.save_mempool(&self.mempool.snapshot())?;
        self.store.flush()?;
        self.saved_mempool = self.mempool.txids().copied().collect();
        Ok(())
    }

    /// Brings the saved mempool in step with the pool: writes the transactions admitted and
    /// deletes those gone since the last call, without waiting for the disk (the store writes
    /// them within its flush interval). Costs one pass over the pool's txids plus the
    /// changes. Returns (added, removed).
    pub fn sync_saved_mempool(&mut self) -> Result<(usize, usize), ChainError> {
        let changes = self.saved_mempool_diff();
        if changes.is_empty() {
            return Ok((0, 0));
        }
        self.store
            .update_saved_mempool(&changes.added, &changes.removed)?;
        self.mark_saved(&changes);
        Ok((changes.added.len(), changes.removed.len()))
    }

    /// [`Chain::sync_saved_mempool`] for a caller that writes the changes on another thread
    /// ([`BackgroundWrites::update_saved_mempool`], in the order taken): the changes since
    /// the last call, counted as saved from now on. A write that then fails leaves the saved
    /// mempool behind the pool until [`Chain::reopen_store`] or [`Chain::save_mempool`]
    /// rewrites it.
    pub fn take_saved_mempool_changes(&mut self) -> SavedMempoolChanges {
        let changes = self.saved_mempool_diff();
        self.mark_saved(&changes);
        changes
    }

    fn saved_mempool_diff(&self) -> SavedMempoolChanges {
        let added: Vec<Transaction> = self
            .mempool
            .txids()
            .filter(|t| !self.saved_mempool.contains(*t))
            .filter_map(|t| self.mempool.get(t).map(|e| e.tx.clone()))
            .collect();
        let removed: Vec<Hash> = self
            .saved_mempool
            .iter()
            .filter(|t| !self.mempool.contains(t))
            .copied()
            .collect();
        SavedMempoolChanges { added, removed }
    }

    fn mark_saved(&mut self, changes: &SavedMempoolChanges) {
        for t in &changes.removed {
            self.saved_mempool.remove(t);
        }
        self.saved_mempool
            .extend(changes.added.iter().map(Transaction::txid));
    }

    /// A handle for the store writes another thread may make once the chain has announced
    /// what changed: the txindex entries of connected blocks and the saved mempool's changes
    /// ([`BackgroundWrites`]).
    pub fn background_writes(&self) -> BackgroundWrites {
        self.store.background_writes()
    }

    /// The stored block `hash` and its txids: as the import that checked it kept them, or
    /// read back from the store.
    fn stored_block(&mut self, hash: &Hash) -> Result<StoredBlock, StoreError> {
        if let Some(kept) = self.just_stored.take(hash) {
            return Ok(kept);
        }
        let block = self
            .store
            .block(hash)?
            .ok_or(StoreError::MissingBlock(*hash))?;
        let txids = block.txids();
        Ok(StoredBlock { block, txids })
    }

    /// Treats `hash` and its descendants as invalid, reorganising away from them
    /// (Bitcoin Core's `invalidateblock`).
    pub fn invalidate(&mut self, hash: &Hash) -> Result<(), ChainError> {
        let n = self
            .nodes
            .get(hash)
            .ok_or(ChainError::UnknownBlock(*hash))?;
        if n.header.height == 0 {
            return Err(ChainError::Genesis);
        }
        let parent = n.header.prev_hash;
        if self.is_on_main(hash) {
            let old_tip = self.tip;
            let Disconnected {
                hashes: disconnected,
                blocks: reverted,
                touched,
            } = self.disconnect_to(&parent)?;
            self.update_mempool(&reverted, &[], touched)?;
            self.emit_switch(old_tip, parent, disconnected, Vec::new());
        }
        self.mark_subtree(hash, BlockStatus::InvalidatedByUser)?;
        self.activate_best()?;
        self.failed.clear();
        Ok(())
    }

    /// Undoes [`Chain::invalidate`] on `hash` and its descendants, then moves to the best chain
    /// (Bitcoin Core's `reconsiderblock`). Blocks invalid by rule stay invalid.
    pub fn reconsider(&mut self, hash: &Hash) -> Result<(), ChainError> {
        let n = self
            .nodes
            .get(hash)
            .ok_or(ChainError::UnknownBlock(*hash))?;
        if n.header.height == 0 {
            return Err(ChainError::Genesis);
        }
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if self.nodes.get(&h).map(|n| n.status) == Some(BlockStatus::InvalidatedByUser) {
                self.set_status(&h, BlockStatus::Unvalidated)?;
            }
            stack.extend(self.children.get(&h).cloned().unwrap_or_default());
        }
        self.activate_best()?;
        self.failed.clear();
        Ok(())
    }

    /// Every branch tip (blocks without children), the active tip first.
    pub fn tips(&self) -> Vec<ChainTip> {
        let mut out: Vec<ChainTip> = self
            .nodes
            .iter()
            .filter(|(h, _)| self.children.get(*h).is_none_or(Vec::is_empty))
            .map(|(h, n)| {
                let status = if *h == self.tip {
                    TipStatus::Active
                } else if n.status.is_invalid() {
                    TipStatus::Invalid
                } else {
                    TipStatus::ValidFork
                };
                ChainTip {
                    hash: *h,
                    height: n.header.height,
                    total_work: n.total_work,
                    branch_length: self.branch_length(h),
                    status,
                }
            })
            .collect();
        // The active tip may have children that are all invalid or forks; list it anyway.
        if !out.iter().any(|t| t.status == TipStatus::Active) {
            let n = self.node(&self.tip);
            out.push(ChainTip {
                hash: self.tip,
                height: n.header.height,
                total_work: n.total_work,
                branch_length: 0,
                status: TipStatus::Active,
            });
        }
        out.sort_by_key(|t| (t.status != TipStatus::Active, std::cmp::Reverse(t.height)));
        out
    }

    // Cannot overflow: `len` counts distinct blocks of the tree walked parent by parent.
    #[allow(clippy::arithmetic_side_effects)]
    fn branch_length(&self, hash: &Hash) -> u64 {
        let mut len = 0;
        let mut cursor = *hash;
        while !self.is_on_main(&cursor) {
            len += 1;
            match self.nodes.get(&cursor) {
                Some(n) if n.header.height > 0 => cursor = n.header.prev_hash,
                _ => break,
            }
        }
        len
    }
}

/// Failures of the header's own rules (as opposed to its body or transactions).
fn is_header_rule(e: &ConsensusError) -> bool {
    matches!(
        e,
        ConsensusError::BadVersion { .. }
            | ConsensusError::BadHeight { .. }
            | ConsensusError::BadPrevHash { .. }
            | ConsensusError::BadTarget { .. }
            | ConsensusError::InsufficientWork { .. }
    )
}
