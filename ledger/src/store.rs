//! The sled store: blocks, the block index with cumulative work, the main-chain height index,
//! the transaction index, accounts, per-address history, undo data, state digests and the tip.
//!
//! Invariants:
//! - Every write that belongs to connecting or disconnecting one block is one sled transaction
//!   over all trees; the tip is written in that same transaction. A process killed at any
//!   instant reopens with the tip, the indexes and the accounts agreeing
//!   ([`StoreReader::verify_consistency`] checks this against a replay from genesis).
//! - The one exception is the txindex of a connected block, written just after the
//!   transaction ([`Store::write_txindex`]) and visible to readers before that; the store
//!   catches the tree up when it is opened (`crate::txindex` states the invariant).
//! - Only main-chain blocks have entries in `main`, `txindex`, `history`, `tx_counts` and `undo`.
//! - A store created for one genesis refuses to open with another.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use primitive_types::U256;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::error::{DecodeError, StoreError};
use crate::genesis::Genesis;
use crate::history;
pub use crate::history::{HistoryCursor, HistoryPage};
use crate::saved_mempool::SavedMempool;
use crate::state::{Account, AccountChange, AccountReader, BlockDelta, StateDigest};
pub use crate::txindex::TxLocation;
use crate::txindex::{META_TXINDEX_TIP, PendingIndex, block_entries};
use crate::types::{Address, Block, BlockHeader, HEADER_LEN, Hash, Reader, Transaction};

/// How a block stands with respect to validation. Consensus decides; the store remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockStatus {
    /// Stored, not yet fully validated (its branch was never the best).
    Unvalidated = 0,
    /// Fully validated (it has been connected at least once).
    Valid = 1,
    /// Failed validation, or descends from a block that did.
    Invalid = 2,
    /// Marked invalid by an operator (`invalidate`); undone by `reconsider`.
    InvalidatedByUser = 3,
}

impl BlockStatus {
    fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            0 => BlockStatus::Unvalidated,
            1 => BlockStatus::Valid,
            2 => BlockStatus::Invalid,
            3 => BlockStatus::InvalidatedByUser,
            other => {
                return Err(DecodeError::Record {
                    what: "block status",
                    detail: format!("unknown status {other}"),
                });
            }
        })
    }

    /// Whether the block is known to be invalid (by rule or by operator).
    pub fn is_invalid(self) -> bool {
        matches!(self, BlockStatus::Invalid | BlockStatus::InvalidatedByUser)
    }
}

/// The block index entry of one block: its header, cumulative work, status and arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    /// The header.
    pub header: BlockHeader,
    /// Work from genesis through this block.
    pub total_work: U256,
    /// Validation status.
    pub status: BlockStatus,
    /// Arrival order: lower was seen first (breaks ties in fork choice, also after a restart).
    pub seq: u64,
}

impl BlockRecord {
    const LEN: usize = HEADER_LEN + 32 + 1 + 8;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&self.header.encode());
        out.extend_from_slice(&self.total_work.to_big_endian());
        out.push(self.status as u8);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = BlockHeader::decode(&r.array::<HEADER_LEN>()?)?;
        let total_work = U256::from_big_endian(&r.array::<32>()?);
        let status = BlockStatus::from_u8(r.array::<1>()?[0])?;
        let seq = r.u64()?;
        r.finish()?;
        Ok(BlockRecord {
            header,
            total_work,
            status,
            seq,
        })
    }
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// sled page cache in MiB (sled's own default of 1 GiB is far too much for a testnet).
    pub cache_mb: u64,
    /// fsync after every connected or disconnected block. Without it sled flushes every 500 ms;
    /// either way a crash loses at most a suffix of blocks, never consistency.
    pub sync_every_block: bool,
}

impl StoreConfig {
    /// Defaults for a directory: 64 MiB cache, sync every block.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            cache_mb: 64,
            sync_every_block: true,
        }
    }
}

/// How long [`Store::open`] waits for the file lock of a store just dropped in this process.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const META_GENESIS: &[u8] = b"genesis";
const META_TIP: &[u8] = b"tip";
const META_SEQ: &[u8] = b"seq";
const META_PROBE: &[u8] = b"probe";
const META_FORMAT: &[u8] = b"format";
/// The store's layout version: 2 since the history index holds one row per address and block
/// (`crate::history`); a format-1 store is upgraded when opened.
const FORMAT_VERSION: u64 = 2;

/// Read-only access to the chain store: cheap to clone, shares the database, and has no method
/// that writes. The HTTP API and the network hold these; only the chain holds the [`Store`].
#[derive(Clone, Debug)]
pub struct StoreReader {
    /// The open database, shared by every handle; `None` only while [`Store::reopen`] swaps
    /// it (reads then fail with [`StoreError::Reopening`]).
    trees: Arc<RwLock<Option<Arc<Trees>>>>,
    genesis_hash: Hash,
    sync_every_block: bool,
    faults: Arc<AccountReadFaults>,
}

/// The sled database and its trees.
#[derive(Debug)]
struct Trees {
    db: sled::Db,
    meta: sled::Tree,
    blocks: sled::Tree,
    index: sled::Tree,
    main: sled::Tree,
    txindex: sled::Tree,
    accounts: sled::Tree,
    history: sled::Tree,
    tx_counts: sled::Tree,
    undo: sled::Tree,
    digests: sled::Tree,
    mempool: sled::Tree,
    /// The saved mempool's log in `mempool` (`crate::saved_mempool`).
    saved_mempool: SavedMempool,
    /// Txindex entries of connected blocks not written yet (`crate::txindex`).
    pending_txindex: PendingIndex,
}

impl Trees {
    fn open(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Trees {
            meta: db.open_tree("meta")?,
            blocks: db.open_tree("blocks")?,
            index: db.open_tree("index")?,
            main: db.open_tree("main")?,
            txindex: db.open_tree("txindex")?,
            accounts: db.open_tree("accounts")?,
            history: db.open_tree("history")?,
            tx_counts: db.open_tree("tx_counts")?,
            undo: db.open_tree("undo")?,
            digests: db.open_tree("digests")?,
            mempool: db.open_tree("mempool")?,
            saved_mempool: SavedMempool::default(),
            pending_txindex: PendingIndex::default(),
            db,
        })
    }
}

/// Why [`StoreReader::verify_consistency`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// Reading the store failed: the check could not finish (no verdict on the data).
    #[error("the consistency check could not read the store: {0}")]
    Store(#[from] StoreError),
    /// The store disagrees with a replay of the main chain.
    #[error("the store is inconsistent: {0}")]
    Disagreement(String),
}

/// Injected failures of account reads, for tests that prove an I/O failure is never taken
/// for a verdict on a block. Costs one atomic load per read when unused.
#[derive(Debug, Default)]
struct AccountReadFaults {
    remaining: AtomicU64,
}

impl AccountReadFaults {
    fn take(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The sled-backed chain store and its only writer, owned by the chain. It is not `Clone`:
/// hand out [`Store::reader`]s instead. Every read method of [`StoreReader`] is available on
/// it too (through `Deref`).
#[derive(Debug)]
pub struct Store {
    reader: StoreReader,
    /// How it was opened, for [`Store::reopen`] (`None` for a temporary store).
    config: Option<StoreConfig>,
}

impl std::ops::Deref for Store {
    type Target = StoreReader;

    fn deref(&self) -> &StoreReader {
        &self.reader
    }
}

/// Turns a transaction failure into a store error.
fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::from(e),
    }
}

type TxResult = Result<(), ConflictableTransactionError<StoreError>>;

/// The trees written when a block is connected or disconnected, inside one transaction.
struct BlockTrees<'a> {
    meta: &'a TransactionalTree,
    main: &'a TransactionalTree,
    txindex: &'a TransactionalTree,
    accounts: &'a TransactionalTree,
    history: &'a TransactionalTree,
    tx_counts: &'a TransactionalTree,
    undo: &'a TransactionalTree,
    digests: &'a TransactionalTree,
}

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, DecodeError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| DecodeError::Length {
        what,
        expected: 8,
        got: bytes.len(),
    })?;
    Ok(u64::from_le_bytes(arr))
}

fn encode_undo(delta: &BlockDelta, digest_before: &StateDigest) -> Vec<u8> {
    // Cannot overflow: a `Vec<AccountChange>` holds at most isize::MAX / 52 elements.
    #[allow(clippy::arithmetic_side_effects)]
    let capacity = 48 + delta.changes.len() * 52;
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&digest_before.to_bytes());
    out.extend_from_slice(&delta.fees.to_le_bytes());
    out.extend_from_slice(&delta.reward.to_le_bytes());
    for c in &delta.changes {
        out.extend_from_slice(&c.address.0);
        out.extend_from_slice(&c.before.encode());
        out.extend_from_slice(&c.after.encode());
    }
    out
}

fn decode_undo(bytes: &[u8]) -> Result<(BlockDelta, StateDigest), DecodeError> {
    let mut r = Reader::new(bytes);
    let digest = StateDigest(U256::from_big_endian(&r.array::<32>()?));
    let fees = r.u64()?;
    let reward = r.u64()?;
    let mut changes = Vec::with_capacity(r.remaining() / 52);
    while r.remaining() > 0 {
        changes.push(AccountChange {
            address: Address(r.array()?),
            before: Account::decode(&r.array::<16>()?)?,
            after: Account::decode(&r.array::<16>()?)?,
        });
    }
    Ok((
        BlockDelta {
            changes,
            fees,
            reward,
        },
        digest,
    ))
}

impl Store {
    /// Opens (or creates) the store for `genesis`. A store of another network is refused.
    pub fn open(config: &StoreConfig, genesis: &Genesis) -> Result<Self, StoreError> {
        let db = Self::open_db(config)?;
        let mut store = Self::from_db(db, genesis, config.sync_every_block)?;
        store.config = Some(config.clone());
        Ok(store)
    }

    fn open_db(config: &StoreConfig) -> Result<sled::Db, StoreError> {
        let sled_config = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_mb.saturating_mul(1024 * 1024))
            .flush_every_ms(Some(500));
        // A store just dropped in this process keeps its file lock until sled's flusher
        // thread notices (within its 500 ms interval): wait for it a little, as a restart in
        // the same process must. Another process holding the lock still fails, after the wait.
        let started = std::time::Instant::now();
        loop {
            match sled_config.open() {
                // sled reports the lock as an `Other` I/O error; only its text says which.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return Ok(other?),
            }
        }
    }

    /// Closes the database and opens it again from disk, for every handle of this store at
    /// once (readers included). After an I/O error (a full disk) sled refuses every further
    /// write until it is reopened; the reopened store holds what reached the disk, as after
    /// a crash, so the chain must be loaded from it again (`Chain::open`). Reads made while
    /// it is swapped fail with [`StoreError::Reopening`]. A temporary store cannot be reopened.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let config = self.config.as_ref().ok_or(StoreError::Reopening)?;
        let old = self.reader.swap(None);
        // Readers in the middle of a read hold the old database; wait for them (briefly) so
        // that its file lock is released.
        if let Some(old) = old {
            let started = std::time::Instant::now();
            while Arc::strong_count(&old) > 1 && started.elapsed() < LOCK_WAIT {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(old);
        }
        let trees = Self::open_db(config).and_then(Trees::open);
        match trees {
            Ok(trees) => {
                self.reader.swap(Some(Arc::new(trees)));
                self.catch_up_txindex()?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A store in a temporary directory that is removed when dropped (for tests and benches).
    pub fn temporary(genesis: &Genesis) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        Self::from_db(db, genesis, false)
    }

    fn from_db(
        db: sled::Db,
        genesis: &Genesis,
        sync_every_block: bool,
    ) -> Result<Self, StoreError> {
        let reader = StoreReader {
            trees: Arc::new(RwLock::new(Some(Arc::new(Trees::open(db)?)))),
            genesis_hash: genesis.hash(),
            sync_every_block,
            faults: Arc::new(AccountReadFaults::default()),
        };
        let store = Store {
            reader,
            config: None,
        };
        match store.trees()?.meta.get(META_GENESIS)? {
            Some(stored) => {
                let stored = Hash::from_slice(&stored)?;
                if stored != store.genesis_hash {
                    return Err(StoreError::WrongNetwork {
                        stored,
                        expected: store.genesis_hash,
                    });
                }
                store.upgrade_format()?;
                store.catch_up_txindex()?;
            }
            None => store.init_genesis(genesis)?,
        }
        Ok(store)
    }

    /// Brings an older store's layout to [`FORMAT_VERSION`]; refuses a newer one.
    fn upgrade_format(&self) -> Result<(), StoreError> {
        let t = self.trees()?;
        let stored = match t.meta.get(META_FORMAT)? {
            Some(bytes) => decode_u64(&bytes, "store format")?,
            None => 1, // written since the first release; absent only in early test stores
        };
        if stored > FORMAT_VERSION {
            return Err(StoreError::NewerFormat {
                stored,
                supported: FORMAT_VERSION,
            });
        }
        if stored < 2 {
            let rows = history::upgrade_from_v1(&t.history)?;
            tracing::info!(rows, "history index upgraded to store format 2");
        }
        if stored < FORMAT_VERSION {
            t.meta.insert(META_FORMAT, &FORMAT_VERSION.to_le_bytes())?;
            t.db.flush()?;
        }
        Ok(())
    }

    fn init_genesis(&self, genesis: &Genesis) -> Result<(), StoreError> {
        let block = genesis.block();
        let hash = block.hash();
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: block.header.target.work(),
            status: BlockStatus::Valid,
            seq: 0,
        };
        let state = genesis.state();
        let digest = StateDigest::of(&state);
        let t = self.trees()?;
        let trees = (
            &t.meta,
            &t.blocks,
            &t.index,
            &t.main,
            &t.accounts,
            &t.digests,
        );
        trees
            .transaction(
                |(meta, blocks, index, main, accounts, digests)| -> TxResult {
                    blocks.insert(&hash.0, block.encode())?;
                    index.insert(&hash.0, record.encode())?;
                    main.insert(&0u64.to_be_bytes(), &hash.0)?;
                    for (address, account) in &state {
                        accounts.insert(&address.0, &account.encode())?;
                    }
                    digests.insert(&hash.0, &digest.to_bytes())?;
                    meta.insert(META_FORMAT, &FORMAT_VERSION.to_le_bytes())?;
                    meta.insert(META_SEQ, &1u64.to_le_bytes())?;
                    meta.insert(META_TIP, &hash.0)?;
                    meta.insert(META_TXINDEX_TIP, &hash.0)?;
                    meta.insert(META_GENESIS, &hash.0)?;
                    Ok(())
                },
            )
            .map_err(tx_err)?;
        self.trees()?.db.flush()?;
        Ok(())
    }

    /// The next arrival sequence number (persisted, so first-seen order survives restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        let updated = self.trees()?.meta.update_and_fetch(META_SEQ, |old| {
            let n = old
                .and_then(|b| decode_u64(b, "seq").ok())
                .unwrap_or(1)
                .saturating_add(1);
            Some(n.to_le_bytes().to_vec())
        })?;
        let n = updated
            .as_deref()
            .map(|b| decode_u64(b, "seq"))
            .transpose()?
            .unwrap_or(1);
        Ok(n.saturating_sub(1))
    }

    /// Stores a block body and its index record (not connected to the main chain).
    pub fn put_block(&self, block: &Block, record: &BlockRecord) -> Result<(), StoreError> {
        let hash = block.hash();
        let body = block.encode();
        let rec = record.encode();
        let t = self.trees()?;
        (&t.blocks, &t.index)
            .transaction(|(blocks, index)| -> TxResult {
                blocks.insert(&hash.0, body.as_slice())?;
                index.insert(&hash.0, rec.as_slice())?;
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(())
    }

    /// Overwrites a block's index record (status changes).
    pub fn put_record(&self, hash: &Hash, record: &BlockRecord) -> Result<(), StoreError> {
        self.trees()?.index.insert(hash.0, record.encode())?;
        Ok(())
    }

    /// Connects `block` on top of the tip with the changes `delta` computed against the tip
    /// state. One atomic transaction; returns the new state digest.
    pub fn connect_block(
        &self,
        block: &Block,
        delta: &BlockDelta,
    ) -> Result<StateDigest, StoreError> {
        self.connect_block_with_txids(block, &block.txids(), delta)
    }

    /// [`Store::connect_block`] for a caller that already holds the block's txids
    /// (`txids[i]` is `block.transactions[i].txid()`; the chain keeps them from the block's
    /// checks), so they are not hashed again.
    pub fn connect_block_with_txids(
        &self,
        block: &Block,
        txids: &[Hash],
        delta: &BlockDelta,
    ) -> Result<StateDigest, StoreError> {
        let hash = block.hash();
        if txids.len() != block.transactions.len() {
            return Err(StoreError::TxidsMismatch {
                block: hash,
                transactions: block.transactions.len(),
                txids: txids.len(),
            });
        }
        let tip = self.tip()?;
        if block.header.prev_hash != tip {
            return Err(StoreError::NotAtTip { block: hash, tip });
        }
        let before = self.digest_of(&tip)?.ok_or(StoreError::MissingUndo(tip))?;
        let after = before.apply(delta);
        let undo = encode_undo(delta, &before);
        let height = block.header.height;
        let (counts, history_rows) = self.history_rows(block, txids, true)?;
        self.with_block_trees(|t| {
            for c in &delta.changes {
                write_account(t.accounts, &c.address, &c.after)?;
            }
            for (address, row) in &history_rows {
                t.history
                    .insert(&history::row_key(address, height), row.as_slice())?;
            }
            for (address, count) in &counts {
                t.tx_counts.insert(&address.0, &count.to_le_bytes())?;
            }
            t.undo.insert(&hash.0, undo.as_slice())?;
            t.digests.insert(&hash.0, &after.to_bytes())?;
            t.main.insert(&height.to_be_bytes(), &hash.0)?;
            t.meta.insert(META_TIP, &hash.0)?;
            Ok(())
        })?;
        self.trees()?.pending_txindex.add(hash, height, txids);
        Ok(after)
    }

    /// Writes the txindex entries of the blocks connected since the last call (readers see
    /// them meanwhile; `crate::txindex`). Returns how many. The chain calls it once it has
    /// announced what it connected; [`Store::disconnect_tip`] and [`Store::flush`] call it
    /// first.
    pub fn write_txindex(&self) -> Result<usize, StoreError> {
        write_pending_txindex(&*self.trees()?)
    }

    /// A handle for the writes that may run off the chain's thread ([`BackgroundWrites`]).
    pub fn background_writes(&self) -> BackgroundWrites {
        BackgroundWrites {
            reader: self.reader.clone(),
        }
    }

    /// Indexes the main-chain blocks above the meta record `txindex_tip` (left behind by a
    /// process killed before [`Store::write_txindex`]), at open. Returns the entries written.
    fn catch_up_txindex(&self) -> Result<u64, StoreError> {
        let t = self.trees()?;
        let tip = self.tip()?;
        let indexed = match t.meta.get(META_TXINDEX_TIP)? {
            Some(bytes) => Hash::from_slice(&bytes)?,
            // Stores from before the record wrote the entries with each block.
            None => tip,
        };
        let from = match self.record(&indexed)? {
            Some(r) if self.main_hash(r.header.height)? == Some(indexed) => r.header.height,
            _ => {
                tracing::warn!(%indexed, "txindex record off the main chain; rebuilding the txindex");
                t.txindex.clear()?;
                0
            }
        };
        let tip_height = self.tip_record()?.header.height;
        let mut written = 0u64;
        for height in from.saturating_add(1)..=tip_height {
            let hash = self
                .main_hash(height)?
                .ok_or(StoreError::MissingBlock(tip))?;
            let block = self.block(&hash)?.ok_or(StoreError::MissingBlock(hash))?;
            let mut batch = sled::Batch::default();
            for (txid, loc) in block_entries(hash, height, &block.txids()) {
                batch.insert(&txid.0, loc.encode().as_slice());
                written = written.saturating_add(1);
            }
            t.txindex.apply_batch(batch)?;
            t.meta.insert(META_TXINDEX_TIP, &hash.0)?;
        }
        if written > 0 {
            tracing::info!(
                entries = written,
                from,
                to = tip_height,
                "txindex caught up with the tip"
            );
        }
        t.meta.insert(META_TXINDEX_TIP, &tip.0)?;
        Ok(written)
    }

    /// Reverts the tip block through its undo data, making its parent the tip. Returns the
    /// disconnected block and its delta.
    pub fn disconnect_tip(&self) -> Result<(Block, BlockDelta), StoreError> {
        self.write_txindex()?;
        let hash = self.tip()?;
        let block = self.block(&hash)?.ok_or(StoreError::MissingBlock(hash))?;
        if block.header.height == 0 {
            return Err(StoreError::NotAtTip {
                block: hash,
                tip: hash,
            });
        }
        let undo_bytes = self
            .trees()?
            .undo
            .get(hash.0)?
            .ok_or(StoreError::MissingUndo(hash))?;
        let (delta, _digest_before) = decode_undo(&undo_bytes)?;
        let txids = block.txids();
        let (counts, history_rows) = self.history_rows(&block, &txids, false)?;
        let height = block.header.height;
        let parent = block.header.prev_hash;
        self.with_block_trees(|t| {
            for c in delta.changes.iter().rev() {
                write_account(t.accounts, &c.address, &c.before)?;
            }
            for txid in &txids {
                t.txindex.remove(&txid.0)?;
            }
            for address in history_rows.keys() {
                t.history.remove(&history::row_key(address, height))?;
            }
            for (address, count) in &counts {
                if *count == 0 {
                    t.tx_counts.remove(&address.0)?;
                } else {
                    t.tx_counts.insert(&address.0, &count.to_le_bytes())?;
                }
            }
            t.undo.remove(&hash.0)?;
            t.main.remove(&height.to_be_bytes())?;
            t.meta.insert(META_TIP, &parent.0)?;
            t.meta.insert(META_TXINDEX_TIP, &parent.0)?;
            Ok(())
        })?;
        Ok((block, delta))
    }

    fn with_block_trees(
        &self,
        write: impl Fn(&BlockTrees<'_>) -> TxResult,
    ) -> Result<(), StoreError> {
        let t = self.trees()?;
        let trees = (
            &t.meta,
            &t.main,
            &t.txindex,
            &t.accounts,
            &t.history,
            &t.tx_counts,
            &t.undo,
            &t.digests,
        );
        trees
            .transaction(
                |(meta, main, txindex, accounts, history, tx_counts, undo, digests)| {
                    write(&BlockTrees {
                        meta,
                        main,
                        txindex,
                        accounts,
                        history,
                        tx_counts,
                        undo,
                        digests,
                    })
                },
            )
            .map_err(tx_err)?;
        if self.sync_every_block {
            self.trees()?.db.flush()?;
        }
        Ok(())
    }

    /// Writes a small record (a counter in the meta tree) and flushes it to learn whether
    /// the disk still takes writes: after a failed write (a full disk) sled refuses every
    /// write until [`Store::reopen`]. The record means nothing else.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        probe_write(&*self.trees()?)
    }

    /// Replaces the saved mempool with `txs` (a snapshot, `crate::saved_mempool`) and
    /// flushes it (shutdown, and once after loading, which also rewrites an older
    /// layout).
    pub fn save_mempool(&self, txs: &[Transaction]) -> Result<(), StoreError> {
        let t = self.trees()?;
        t.saved_mempool.replace(&t.mempool, txs)
    }

    /// Applies changes to the saved mempool (added transactions, removed txids) as records
    /// of at most 8 KiB in one atomic batch, without waiting for the disk: sled writes them
    /// within its flush interval (500 ms), so a transaction pending for longer than that
    /// survives a crash.
    pub fn update_saved_mempool(
        &self,
        added: &[Transaction],
        removed: &[Hash],
    ) -> Result<(), StoreError> {
        write_saved_mempool_changes(&*self.trees()?, added, removed)
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.write_txindex()?;
        self.flush_written()
    }

    /// Writes to disk what is written to the store, leaving the pending txindex entries to
    /// their writer ([`BackgroundWrites`]): they are an index of the blocks, which are on
    /// disk, and a store opened again writes whatever is missing. Writing them here cost the
    /// chain thread about 40 ms for a 5,000-transfer block.
    pub fn flush_written(&self) -> Result<(), StoreError> {
        self.trees()?.db.flush()?;
        Ok(())
    }

    /// A read-only handle on this store.
    pub fn reader(&self) -> StoreReader {
        self.reader.clone()
    }
}

/// The store writes a node may run on a thread of its own, after the chain has announced
/// what changed: the txindex entries of connected blocks ([`Store::write_txindex`]), the
/// saved mempool's changes ([`Store::update_saved_mempool`]) and the disk probe with its
/// flush ([`Store::probe_write`]). None is consensus state:
/// readers see pending txindex entries before they are written, and the saved mempool is a
/// best-effort copy that the chain validates when it loads it.
///
/// The txindex is written key by key, never as one `sled` batch: a batch holds sled's global
/// write lock for its whole length (40-70 ms for a 5,000-transfer block), and every read and
/// every block commit waits behind it; single writes let them interleave. A crash in the
/// middle leaves a prefix, which it tolerates (`crate::txindex` for its record). Each save of
/// the saved mempool's changes is a few small records in one atomic batch
/// (`crate::saved_mempool`).
#[derive(Clone, Debug)]
pub struct BackgroundWrites {
    reader: StoreReader,
}

impl BackgroundWrites {
    /// [`Store::write_txindex`], from another thread: serialised with it and with
    /// [`Store::disconnect_tip`].
    pub fn write_txindex(&self) -> Result<usize, StoreError> {
        write_pending_txindex(&*self.reader.trees()?)
    }

    /// [`Store::update_saved_mempool`], from another thread. Callers keep the order of their
    /// changes (one writer).
    pub fn update_saved_mempool(
        &self,
        added: &[Transaction],
        removed: &[Hash],
    ) -> Result<(), StoreError> {
        write_saved_mempool_changes(&*self.reader.trees()?, added, removed)
    }

    /// [`Store::probe_write`], from another thread: the flush can wait a long time for a
    /// busy disk (up to 2 s was seen with ten nodes on one machine), and the chain thread
    /// must not wait with it. Every write that completed before the call is on the disk
    /// when it returns `Ok`.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        probe_write(&*self.reader.trees()?)
    }

    /// Txindex entries of connected blocks not written yet.
    pub fn txindex_pending(&self) -> usize {
        self.reader.trees().map_or(0, |t| t.pending_txindex.len())
    }
}

/// The probe of [`Store::probe_write`]: a counter in the meta tree, then a flush.
fn probe_write(t: &Trees) -> Result<(), StoreError> {
    t.meta.update_and_fetch(META_PROBE, |old| {
        let n = old.and_then(|b| decode_u64(b, "probe").ok()).unwrap_or(0);
        Some(n.wrapping_add(1).to_le_bytes().to_vec())
    })?;
    t.db.flush()?;
    Ok(())
}

/// Writes the pending txindex entries, then the record naming the block they reach (sled
/// recovers a prefix of the writes, so the record never names a block whose entries were
/// lost). One writer at a time ([`PendingIndex::lock_writer`]).
fn write_pending_txindex(t: &Trees) -> Result<usize, StoreError> {
    let _writer = t.pending_txindex.lock_writer();
    let Some(mut write) = t.pending_txindex.snapshot() else {
        return Ok(0);
    };
    // In key order: consecutive inserts then land in the same leaves, which costs sled 20-40%
    // less than random order (docs/BENCHMARKS.md, section 16).
    write.entries.sort_unstable_by_key(|(txid, _)| *txid);
    for (txid, loc) in &write.entries {
        t.txindex.insert(txid.0, loc.encode().as_slice())?;
    }
    t.meta.insert(META_TXINDEX_TIP, &write.last_block.0)?;
    t.pending_txindex.written(&write);
    Ok(write.entries.len())
}

/// Appends the saved mempool's changes as records (`crate::saved_mempool`), without waiting
/// for the disk (sled writes them within its flush interval, 500 ms).
fn write_saved_mempool_changes(
    t: &Trees,
    added: &[Transaction],
    removed: &[Hash],
) -> Result<(), StoreError> {
    t.saved_mempool.append(&t.mempool, added, removed)
}

impl StoreReader {
    /// The open database (shared), or [`StoreError::Reopening`] while [`Store::reopen`] swaps it.
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        let guard = self
            .trees
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.clone().ok_or(StoreError::Reopening)
    }

    /// Replaces the open database of every handle; returns the previous one.
    fn swap(&self, trees: Option<Arc<Trees>>) -> Option<Arc<Trees>> {
        let mut guard = self
            .trees
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *guard, trees)
    }

    /// The genesis hash this store belongs to.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The main-chain tip.
    pub fn tip(&self) -> Result<Hash, StoreError> {
        let bytes =
            self.trees()?
                .meta
                .get(META_TIP)?
                .ok_or(StoreError::Decode(DecodeError::Record {
                    what: "tip",
                    detail: "missing".into(),
                }))?;
        Ok(Hash::from_slice(&bytes)?)
    }

    /// The tip's block index record.
    pub fn tip_record(&self) -> Result<BlockRecord, StoreError> {
        let tip = self.tip()?;
        self.record(&tip)?.ok_or(StoreError::MissingBlock(tip))
    }

    /// The block index record of `hash`.
    pub fn record(&self, hash: &Hash) -> Result<Option<BlockRecord>, StoreError> {
        match self.trees()?.index.get(hash.0)? {
            Some(bytes) => Ok(Some(BlockRecord::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every block index record, in key order (for loading the in-memory block tree).
    pub fn records(&self) -> impl Iterator<Item = Result<(Hash, BlockRecord), StoreError>> + '_ {
        let iter = match self.trees() {
            Ok(t) => t.index.iter(),
            Err(e) => return Box::new(std::iter::once(Err(e))) as Box<dyn Iterator<Item = _>>,
        };
        Box::new(iter.map(|item| {
            let (k, v) = item?;
            Ok((Hash::from_slice(&k)?, BlockRecord::decode(&v)?))
        }))
    }

    /// Whether the body of `hash` is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.trees()?.blocks.contains_key(hash.0)?)
    }

    /// The block `hash`, if stored.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        match self.trees()?.blocks.get(hash.0)? {
            Some(bytes) => Ok(Some(Block::decode(&bytes, usize::MAX)?)),
            None => Ok(None),
        }
    }

    /// The encoded block `hash`, if stored (served to peers as is).
    pub fn block_bytes(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.trees()?.blocks.get(hash.0)?.map(|v| v.to_vec()))
    }

    /// The main-chain block hash at `height`.
    pub fn main_hash(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        match self.trees()?.main.get(height.to_be_bytes())? {
            Some(bytes) => Ok(Some(Hash::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Where a main-chain transaction is.
    pub fn tx_location(&self, txid: &Hash) -> Result<Option<TxLocation>, StoreError> {
        let t = self.trees()?;
        if let Some(loc) = t.pending_txindex.get(txid) {
            return Ok(Some(loc));
        }
        match t.txindex.get(txid.0)? {
            Some(bytes) => Ok(Some(TxLocation::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The confirmed transaction `txid` with its location.
    pub fn transaction(
        &self,
        txid: &Hash,
    ) -> Result<Option<(Transaction, TxLocation)>, StoreError> {
        let Some(loc) = self.tx_location(txid)? else {
            return Ok(None);
        };
        let block = self
            .block(&loc.block_hash)?
            .ok_or(StoreError::MissingBlock(loc.block_hash))?;
        let tx = block
            .transactions
            .get(loc.index as usize)
            .cloned()
            .ok_or(StoreError::MissingBlock(loc.block_hash))?;
        Ok(Some((tx, loc)))
    }

    /// State digest after block `hash` (known for every block that was ever connected).
    pub fn digest_of(&self, hash: &Hash) -> Result<Option<StateDigest>, StoreError> {
        match self.trees()?.digests.get(hash.0)? {
            Some(bytes) => Ok(Some(StateDigest(U256::from_big_endian(
                &<[u8; 32]>::try_from(bytes.as_ref()).map_err(|_| DecodeError::Length {
                    what: "state digest",
                    expected: 32,
                    got: bytes.len(),
                })?,
            )))),
            None => Ok(None),
        }
    }

    /// Number of main-chain transactions that sent from or paid to `address`.
    pub fn tx_count(&self, address: &Address) -> Result<u64, StoreError> {
        match self.trees()?.tx_counts.get(address.0)? {
            Some(bytes) => Ok(decode_u64(&bytes, "tx count")?),
            None => Ok(0),
        }
    }

    /// Up to `limit` confirmed txids of `address`, newest first, strictly older than `before`.
    /// Returns the page and the cursor of its last item when more may follow.
    pub fn history(
        &self,
        address: &Address,
        before: Option<HistoryCursor>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let first = history::row_key(address, 0);
        let last = history::row_key(address, before.map_or(u64::MAX, |c| c.height));
        let rows = self.trees()?.history.range(first..=last).rev();
        history::page(rows, before, limit)
    }

    /// History index rows of a block (by address, `crate::history`) and the new per-address
    /// counts after adding (`adding`) or removing them.
    #[allow(clippy::type_complexity)]
    fn history_rows(
        &self,
        block: &Block,
        txids: &[Hash],
        adding: bool,
    ) -> Result<(Vec<(Address, u64)>, BTreeMap<Address, Vec<u8>>), StoreError> {
        let rows = history::block_rows(block, txids);
        let mut counts = Vec::with_capacity(rows.len());
        for (address, row) in &rows {
            let now = self.tx_count(address)?;
            let n = history::entry_count(row);
            let new = if adding {
                now.saturating_add(n)
            } else {
                now.saturating_sub(n)
            };
            counts.push((*address, new));
        }
        Ok((counts, rows))
    }

    /// The saved mempool, in (sender, nonce) order, so that each sender's transactions can be
    /// admitted one after the other. Undecodable entries are skipped with a warning.
    pub fn load_mempool(&self) -> Result<Vec<Transaction>, StoreError> {
        let t = self.trees()?;
        let mut out = t.saved_mempool.load(&t.mempool)?;
        out.sort_by_cached_key(|tx| (tx.sender(), tx.nonce));
        Ok(out)
    }

    /// Bytes on disk as sled reports them.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.trees()?.db.size_on_disk()?)
    }

    /// Checks that the history rows of main-chain block `block` (`hash`, its `txids`) are
    /// stored as the block says; returns how many there are.
    fn check_history_rows(
        &self,
        block: &Block,
        txids: &[Hash],
        hash: &Hash,
    ) -> Result<usize, Inconsistency> {
        let height = block.header.height;
        let rows = history::block_rows(block, txids);
        for (address, row) in &rows {
            let stored = self
                .trees()?
                .history
                .get(history::row_key(address, height))
                .map_err(StoreError::from)?;
            if stored.as_deref() != Some(row.as_slice()) {
                return Err(Inconsistency::Disagreement(format!(
                    "history row of {address} at height {height} disagrees with block {hash}"
                )));
            }
        }
        Ok(rows.len())
    }

    /// Checks that the tip, the main index, the transaction and history indexes, the accounts
    /// and the state digest agree with a replay of the main chain from genesis. Returns the
    /// first disagreement, or the store error that stopped the check (an I/O failure is not
    /// an inconsistency).
    pub fn verify_consistency(&self, genesis: &Genesis) -> Result<(), Inconsistency> {
        let tip = self.tip()?;
        let tip_record = self
            .record(&tip)?
            .ok_or_else(|| Inconsistency::Disagreement(format!("tip {tip} has no index record")))?;
        let height = tip_record.header.height;
        let mut state = genesis.state();
        let mut expected_prev = Hash::ZERO;
        let mut expected_history = 0usize;
        let mut expected_txs = 0usize;
        for h in 0..=height {
            let hash = self.main_hash(h)?.ok_or_else(|| {
                Inconsistency::Disagreement(format!(
                    "main index has no block at height {h} (tip {height})"
                ))
            })?;
            let block = self.block(&hash)?.ok_or_else(|| {
                Inconsistency::Disagreement(format!("main block {hash} at {h} has no body"))
            })?;
            if block.header.prev_hash != expected_prev || block.header.height != h {
                return Err(Inconsistency::Disagreement(format!(
                    "main block {hash} at {h} does not link to {expected_prev}"
                )));
            }
            if h > 0 {
                let delta =
                    crate::state::apply_block(&state, genesis, &block).map_err(|e| match e {
                        crate::error::ApplyError::Store(e) => Inconsistency::Store(e),
                        e => Inconsistency::Disagreement(format!(
                            "replaying block {hash} at {h}: {e}"
                        )),
                    })?;
                for c in &delta.changes {
                    if c.after.is_empty() {
                        state.remove(&c.address);
                    } else {
                        state.insert(c.address, c.after);
                    }
                }
                let txids = block.txids();
                for (i, txid) in txids.iter().enumerate() {
                    let loc = self.tx_location(txid)?;
                    if loc.map(|l| (l.block_hash, l.index)) != Some((hash, i as u32)) {
                        return Err(Inconsistency::Disagreement(format!(
                            "txindex disagrees for {txid} in block {hash}"
                        )));
                    }
                    expected_txs = expected_txs.checked_add(1).ok_or_else(|| {
                        Inconsistency::Disagreement("transaction count overflows".into())
                    })?;
                }
                let rows = self.check_history_rows(&block, &txids, &hash)?;
                expected_history = expected_history.checked_add(rows).ok_or_else(|| {
                    Inconsistency::Disagreement("history row count overflows".into())
                })?;
            }
            let digest = self.digest_of(&hash)?;
            if digest != Some(StateDigest::of(&state)) {
                return Err(Inconsistency::Disagreement(format!(
                    "state digest of block {hash} at {h} disagrees with replay"
                )));
            }
            expected_prev = hash;
        }
        // Nothing can sit above height u64::MAX.
        let above = match height.checked_add(1) {
            Some(h) => self.main_hash(h)?,
            None => None,
        };
        if above.is_some() {
            return Err(Inconsistency::Disagreement(format!(
                "main index has a block above the tip height {height}"
            )));
        }
        if expected_prev != tip {
            return Err(Inconsistency::Disagreement(
                "tip is not the last main block".into(),
            ));
        }
        let mut stored = std::collections::BTreeMap::new();
        for item in self.trees()?.accounts.iter() {
            let (k, v) = item.map_err(StoreError::from)?;
            let address = Address::from_slice(&k).map_err(StoreError::from)?;
            stored.insert(address, Account::decode(&v).map_err(StoreError::from)?);
        }
        if stored != state {
            return Err(Inconsistency::Disagreement(format!(
                "accounts tree ({} accounts) disagrees with replay ({} accounts)",
                stored.len(),
                state.len()
            )));
        }
        let t = self.trees()?;
        if t.txindex.len().saturating_add(t.pending_txindex.len()) != expected_txs {
            return Err(Inconsistency::Disagreement(
                "txindex holds entries of blocks off the main chain".into(),
            ));
        }
        if self.trees()?.history.len() != expected_history {
            return Err(Inconsistency::Disagreement(format!(
                "history index has {} rows, replay expects {expected_history}",
                self.trees()?.history.len()
            )));
        }
        Ok(())
    }
}

fn write_account(
    accounts: &TransactionalTree,
    address: &Address,
    account: &Account,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    if account.is_empty() {
        accounts.remove(&address.0)?;
    } else {
        accounts.insert(&address.0, &account.encode())?;
    }
    Ok(())
}

impl AccountReader for Store {
    fn account(&self, address: &Address) -> Result<Account, StoreError> {
        self.reader.account(address)
    }
}

impl StoreReader {
    /// Tests only: the next `n` account reads (through any handle on this store) fail with a
    /// database error, as a failing disk would.
    #[doc(hidden)]
    pub fn inject_account_read_faults(&self, n: u64) {
        self.faults.remaining.store(n, Ordering::Relaxed);
    }
}

impl AccountReader for StoreReader {
    fn account(&self, address: &Address) -> Result<Account, StoreError> {
        if self.faults.take() {
            return Err(StoreError::Db(format!(
                "injected fault reading account {address}"
            )));
        }
        match self.trees()?.accounts.get(address.0)? {
            Some(bytes) => Ok(Account::decode(&bytes)?),
            None => Ok(Account::default()),
        }
    }
}
