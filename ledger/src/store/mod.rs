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
//! - Block bodies live in block files (`bodies`), the `blocks` tree holds where: a body is
//!   written before its location, and the store syncs the files before each flush of its own.
//!
//! This module holds the handles ([`Store`], [`StoreReader`]), the configuration, the trees and
//! opening (format upgrade, genesis); the rest sits by concern: `records` (block status, index
//! record and undo layouts), `writes` (the chain thread's writes: blocks, connect and
//! disconnect, flushes), `background` (writes another thread makes: txindex, saved-mempool
//! changes, the probe), `bodies` (the block files), `reads` and `consistency` (the check
//! against a replay).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::error::{DecodeError, StoreError};
use crate::genesis::Genesis;
use crate::history;
pub use crate::history::{HistoryCursor, HistoryPage};
use crate::saved_mempool::SavedMempool;
use crate::state::{Account, AccountReader, StateDigest};
pub use crate::txindex::TxLocation;
use crate::txindex::{META_TXINDEX_TIP, PendingIndex};
use crate::types::{Address, Hash};

mod background;
mod bodies;
mod consistency;
mod reads;
mod records;
mod writes;

pub use background::BackgroundWrites;
use bodies::{BodyFiles, BodyLocation};
pub use consistency::Inconsistency;
pub use records::{BlockRecord, BlockStatus};

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Directory of the sled database; the block files are in its `bodies` directory.
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

/// The store's layout version: 3 since block bodies are in block files (`bodies`), 2 since
/// the history index holds one row per address and block (`crate::history`). An older store
/// is upgraded when opened.
const FORMAT_VERSION: u64 = 3;

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
    /// A [`BodyLocation`] per stored block.
    blocks: sled::Tree,
    /// The block files the locations point into.
    bodies: BodyFiles,
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

impl Drop for Trees {
    /// sled flushes what it holds when the database is dropped (after this): the block files
    /// are synced first (`bodies`), on every path that drops a store.
    fn drop(&mut self) {
        if let Err(e) = self.bodies.sync() {
            tracing::warn!(error = %e, "could not sync the block files as the store closed");
        }
    }
}

impl Trees {
    fn open(db: sled::Db, bodies: BodyFiles) -> Result<Self, StoreError> {
        Ok(Trees {
            meta: db.open_tree("meta")?,
            blocks: db.open_tree("blocks")?,
            bodies,
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

fn decode_u64(bytes: &[u8], what: &'static str) -> Result<u64, DecodeError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| DecodeError::Length {
        what,
        expected: 8,
        got: bytes.len(),
    })?;
    Ok(u64::from_le_bytes(arr))
}

impl Store {
    /// Opens (or creates) the store for `genesis`. A store of another network is refused.
    pub fn open(config: &StoreConfig, genesis: &Genesis) -> Result<Self, StoreError> {
        let db = Self::open_db(config)?;
        let bodies = BodyFiles::open(&config.path.join(bodies::DIR_NAME))?;
        let mut store = Self::from_db(db, bodies, genesis, config.sync_every_block)?;
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
        // sled flushes what it holds when the old database is dropped: the bodies first
        // (`bodies`), before readers are turned away. A failure is the disk's, which the
        // reopen is about; dropping the database syncs once more. No database is open after
        // a reopen that failed: then there is nothing to sync, and the reopen goes on.
        if let Ok(t) = self.trees()
            && let Err(e) = t.bodies.sync()
        {
            tracing::warn!(error = %e, "could not sync the block files before the reopen");
        }
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
        let trees = Self::open_db(config).and_then(|db| {
            let bodies = BodyFiles::open(&config.path.join(bodies::DIR_NAME))?;
            Trees::open(db, bodies)
        });
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
        Self::from_db(db, BodyFiles::temporary()?, genesis, false)
    }

    fn from_db(
        db: sled::Db,
        bodies: BodyFiles,
        genesis: &Genesis,
        sync_every_block: bool,
    ) -> Result<Self, StoreError> {
        let reader = StoreReader {
            trees: Arc::new(RwLock::new(Some(Arc::new(Trees::open(db, bodies)?)))),
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
        if stored < 3 {
            let moved = move_inline_bodies(&t)?;
            tracing::info!(moved, "block bodies moved to block files (store format 3)");
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
        let location = t.bodies.append(&block.encode())?;
        t.bodies.sync()?;
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
                    blocks.insert(&hash.0, &location.encode())?;
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

    /// A read-only handle on this store.
    pub fn reader(&self) -> StoreReader {
        self.reader.clone()
    }
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

/// How many bytes of bodies [`move_inline_bodies`] moves before it syncs them and writes their
/// locations: what a failed move (a full disk) leaves as dead space is at most this.
const MOVE_CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// Moves the bodies a format-2 store kept in the `blocks` tree into block files, leaving their
/// locations there; returns how many. Bodies first, synced, then their locations, chunk by
/// chunk: a process killed in the middle moves the rest when the store is opened again (a
/// location is shorter than any body, so one already moved is left alone).
fn move_inline_bodies(t: &Trees) -> Result<u64, StoreError> {
    let mut locations = sled::Batch::default();
    let mut chunk = 0usize;
    let mut moved = 0u64;
    for item in t.blocks.iter() {
        let (hash, value) = item?;
        if value.len() == BodyLocation::LEN {
            continue;
        }
        let location = t.bodies.append(&value)?;
        locations.insert(hash, location.encode().as_slice());
        moved = moved.saturating_add(1);
        chunk = chunk.saturating_add(value.len());
        if chunk >= MOVE_CHUNK_BYTES {
            t.bodies.sync()?;
            t.blocks.apply_batch(std::mem::take(&mut locations))?;
            t.db.flush()?;
            chunk = 0;
        }
    }
    t.bodies.sync()?;
    t.blocks.apply_batch(locations)?;
    Ok(moved)
}

/// Turns a transaction failure into a store error.
fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::from(e),
    }
}

type TxResult = Result<(), ConflictableTransactionError<StoreError>>;
