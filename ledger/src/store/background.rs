//! Writes another thread may make once the chain has announced what changed: the pending
//! txindex entries, the saved mempool's changes and the disk probe ([`BackgroundWrites`]). It
//! must never write a block, an account or the tip.

use crate::error::StoreError;
use crate::txindex::META_TXINDEX_TIP;
use crate::types::{Hash, Transaction};

use super::{META_PROBE, Store, StoreReader, Trees, decode_u64};

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

impl Store {
    /// A handle for the writes that may run off the chain's thread ([`BackgroundWrites`]).
    pub fn background_writes(&self) -> BackgroundWrites {
        BackgroundWrites {
            reader: self.reader.clone(),
        }
    }
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

/// The probe of [`Store::probe_write`]: the block files synced, a counter in the meta tree,
/// then a flush.
pub(super) fn probe_write(t: &Trees) -> Result<(), StoreError> {
    t.bodies.sync()?;
    t.meta.update_and_fetch(META_PROBE, |old| {
        let n = old.and_then(|b| decode_u64(b, "probe").ok()).unwrap_or(0);
        Some(n.wrapping_add(1).to_le_bytes().to_vec())
    })?;
    t.db.flush()?;
    Ok(())
}

/// Writes the pending txindex entries, then the record naming the block they reach (sled
/// recovers a prefix of the writes, so the record never names a block whose entries were
/// lost). One writer at a time ([`crate::txindex::PendingIndex::lock_writer`]).
pub(super) fn write_pending_txindex(t: &Trees) -> Result<usize, StoreError> {
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
pub(super) fn write_saved_mempool_changes(
    t: &Trees,
    added: &[Transaction],
    removed: &[Hash],
) -> Result<(), StoreError> {
    t.saved_mempool.append(&t.mempool, added, removed)
}
