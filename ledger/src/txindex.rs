//! The transaction index (txid → where it sits in the main chain), written just after its
//! block's commit instead of inside it.
//!
//! A block's txindex entries were most of its sled commit once the history index was grouped
//! (one random-key insert per transaction; docs/BENCHMARKS.md), and a node relays and
//! announces a block only after the commit. So [`crate::Store::connect_block`] leaves them in
//! a [`PendingIndex`] that every reader sees through, and the chain writes them with
//! [`crate::Store::write_txindex`] once it has announced the block.
//!
//! Invariant: the meta record `txindex_tip` names the main-chain block up to which the tree
//! is complete; it is always the tip or one of its ancestors (a disconnect writes the pending
//! entries first and moves the record back with the tip). A process killed before the write
//! leaves the tree behind the tip; opening the store indexes the missing blocks again
//! ([`crate::Store`] does it before anything reads). The one gap: a block whose body is
//! damaged (a power loss, `store/bodies.rs`) cannot be read to index it, and is skipped with
//! an error logged. Owns the entry encoding and the pending set; never decides what is on the
//! main chain.

use std::sync::{Mutex, MutexGuard, RwLock};

use crate::error::DecodeError;
use crate::fast_hash::FastMap;
use crate::types::{Hash, Reader};

/// The meta record naming the block up to which the txindex tree is complete.
pub(crate) const META_TXINDEX_TIP: &[u8] = b"txindex_tip";

/// Where a confirmed transaction sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxLocation {
    /// Block hash.
    pub block_hash: Hash,
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

impl TxLocation {
    pub(crate) fn encode(&self) -> [u8; 44] {
        let mut b = [0u8; 44];
        let (hash, rest) = b.split_at_mut(32);
        let (height, index) = rest.split_at_mut(8);
        hash.copy_from_slice(&self.block_hash.0);
        height.copy_from_slice(&self.height.to_le_bytes());
        index.copy_from_slice(&self.index.to_le_bytes());
        b
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let loc = TxLocation {
            block_hash: Hash(r.array()?),
            height: r.u64()?,
            index: r.u32()?,
        };
        r.finish()?;
        Ok(loc)
    }
}

/// The locations of `txids`, the transactions of block `block_hash` at `height` in order.
pub(crate) fn block_entries(
    block_hash: Hash,
    height: u64,
    txids: &[Hash],
) -> impl Iterator<Item = (Hash, TxLocation)> + '_ {
    (0u32..).zip(txids).map(move |(index, txid)| {
        let loc = TxLocation {
            block_hash,
            height,
            index,
        };
        (*txid, loc)
    })
}

/// Entries of connected blocks not written to the tree yet, in connection order, with the
/// last such block (what `txindex_tip` becomes once they are written).
#[derive(Debug, Default)]
pub(crate) struct PendingIndex {
    inner: RwLock<Pending>,
    /// Held by whoever writes entries to the tree, from the snapshot to
    /// [`PendingIndex::written`]: two writers would both write the same entries, and a block
    /// disconnected meanwhile could leave the record naming it.
    writer: Mutex<()>,
}

#[derive(Debug, Default)]
struct Pending {
    by_txid: FastMap<Hash, TxLocation>,
    last_block: Option<Hash>,
}

/// What [`PendingIndex::snapshot`] hands to the writer.
pub(crate) struct PendingWrite {
    /// The entries to insert.
    pub(crate) entries: Vec<(Hash, TxLocation)>,
    /// The block `txindex_tip` names once they are in.
    pub(crate) last_block: Hash,
}

impl PendingIndex {
    /// Adds the entries of block `block_hash`, just connected.
    pub(crate) fn add(&self, block_hash: Hash, height: u64, txids: &[Hash]) {
        let mut p = self.write();
        p.by_txid.extend(block_entries(block_hash, height, txids));
        p.last_block = Some(block_hash);
    }

    /// The pending location of `txid`.
    pub(crate) fn get(&self, txid: &Hash) -> Option<TxLocation> {
        self.read().by_txid.get(txid).copied()
    }

    /// Entries pending.
    pub(crate) fn len(&self) -> usize {
        self.read().by_txid.len()
    }

    /// A copy of what is pending (`None`: nothing), kept readable until
    /// [`PendingIndex::written`] says it reached the tree.
    pub(crate) fn snapshot(&self) -> Option<PendingWrite> {
        let p = self.read();
        let last_block = p.last_block?;
        Some(PendingWrite {
            entries: p.by_txid.iter().map(|(t, l)| (*t, *l)).collect(),
            last_block,
        })
    }

    /// The entries of `write` are in the tree: forget them (and nothing added since).
    pub(crate) fn written(&self, write: &PendingWrite) {
        let mut p = self.write();
        for (txid, loc) in &write.entries {
            if p.by_txid.get(txid) == Some(loc) {
                p.by_txid.remove(txid);
            }
        }
        if p.by_txid.is_empty() {
            p.last_block = None;
        }
    }

    /// The right to write entries to the tree; see [`PendingIndex`]'s `writer`.
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Pending> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pending> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_reject_a_wrong_length() {
        let loc = TxLocation {
            block_hash: Hash([7; 32]),
            height: 9,
            index: 3,
        };
        assert_eq!(TxLocation::decode(&loc.encode()).unwrap(), loc);
        assert!(TxLocation::decode(&loc.encode()[..43]).is_err());
    }

    #[test]
    fn pending_entries_stay_readable_until_written_and_later_ones_survive() {
        let pending = PendingIndex::default();
        assert!(pending.snapshot().is_none(), "nothing to write");
        let (a, b) = (Hash([1; 32]), Hash([2; 32]));
        pending.add(a, 1, &[Hash([10; 32]), Hash([11; 32])]);
        let write = pending.snapshot().unwrap();
        assert_eq!((write.entries.len(), write.last_block), (2, a));
        pending.add(b, 2, &[Hash([12; 32])]);
        assert_eq!(pending.get(&Hash([11; 32])).unwrap().index, 1);
        pending.written(&write);
        assert_eq!(
            pending.get(&Hash([11; 32])),
            None,
            "written, read from the tree now"
        );
        assert_eq!(pending.get(&Hash([12; 32])).unwrap().block_hash, b);
        assert_eq!(
            pending.snapshot().unwrap().last_block,
            b,
            "block b still to write"
        );
        pending.written(&pending.snapshot().unwrap());
        assert_eq!((pending.len(), pending.snapshot().is_none()), (0, true));
    }
}
