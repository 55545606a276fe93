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
//!
//! This module holds the types, [`Chain::open`] and the reads of the block tree; the rest of
//! `Chain`'s methods sit by concern: `import` (checks without state, storing, orphans and
//! future blocks, the import loop), `relay` (the checks before an early relay), `fork_choice`
//! (the heaviest valid branch, reorgs, the mempool after a switch, `invalidate` and
//! `reconsider`), `pool` (admission, selection and the saved mempool) and `durability`
//! (blocks kept until a write reaches the disk, the reopen that imports them again).

use std::collections::{HashMap, HashSet, VecDeque};

use peerchain_ledger::fast_hash::FastSet;
use peerchain_ledger::{
    Address, Block, BlockHeader, BlockStatus, Genesis, Hash, Mempool, MempoolConfig, Store,
    StoreError, StoreReader, Transaction, U256,
};

use crate::difficulty::{median_time_past, next_target};
use crate::just_stored::JustStored;
use crate::rules::ConsensusError;

mod durability;
mod fork_choice;
mod import;
mod pool;
mod relay;

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

/// What a connected block holds, known when it was applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockContents {
    /// Transactions in the block.
    pub tx_count: u64,
    /// The sum of their fees.
    pub fees: u64,
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
        /// Its transactions and their fees, so that whoever describes the block need not
        /// read it back.
        contents: BlockContents,
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

    /// The store (reads).
    pub fn store(&self) -> &StoreReader {
        &self.store
    }

    /// A read-only handle on the store for other threads.
    pub fn store_reader(&self) -> StoreReader {
        self.store.reader()
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

    /// Whether `hash` is on the main chain.
    pub fn is_on_main(&self, hash: &Hash) -> bool {
        let Some(n) = self.nodes.get(hash) else {
            return false;
        };
        matches!(self.store.main_hash(n.header.height), Ok(Some(h)) if h == *hash)
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
