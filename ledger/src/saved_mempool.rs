//! The saved mempool: a log of records in the store's `mempool` tree, so that a node killed
//! at any instant restarts with the transactions it had accepted (docs/RELIABILITY.md,
//! item 3). It owns the record layout, the replay and the compaction; it never decides
//! whether a transaction is valid (the chain revalidates everything it loads).
//!
//! Each save appends records (key: a sequence number, u64 big-endian) holding the
//! transactions added and the txids removed since the save before, in one atomic sled batch,
//! instead of one sled write per transaction: sled pays about 10 µs per write, so a
//! 5,000-transfer block's deletions cost 50-100 ms one by one and about a millisecond as
//! records. A record holds at most [`RECORD_BYTES`]: sled writes a larger value to a file of
//! its own and rewrites a whole leaf (up to 16 keys) when it consolidates it, so records stay
//! small enough that a leaf of them is an ordinary page. A *snapshot* (its first record of
//! kind snapshot, the rest of kind snapshot-continued) holds the whole pool and makes every
//! record before it obsolete; the log is compacted into one when the records since the last
//! snapshot exceed [`MAX_RECORDS`] or their bytes exceed [`MIN_COMPACT_BYTES`] and twice the
//! snapshot's, so the log stays within a small multiple of the pool's own size. A snapshot is
//! written, and the records it replaces deleted, in one atomic batch.
//!
//! Record layout: kind (u8: 0 changes, 1 snapshot, 2 snapshot continued), the removed count
//! (u32 LE) and txids (32 bytes each), the added count (u32 LE) and transactions (their
//! 148-byte encodings).
//! The layout before this one (a transaction per key, keyed by its 32-byte txid) is still
//! read: such entries replay as added (before every record), and the snapshot written after
//! a load replaces them.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{DecodeError, StoreError};
use crate::types::{Hash, Reader, TX_ENCODED_LEN, Transaction};

/// Records after the last snapshot that make the next save compact the log.
pub(crate) const MAX_RECORDS: u64 = 4_096;
/// Largest record written, in bytes (header included): 54 transactions, or 255 txids.
pub(crate) const RECORD_BYTES: usize = 8 * 1024;
/// Bytes of records after the last snapshot below which the log is not compacted for size
/// (past it, it is once they also exceed twice the snapshot).
pub(crate) const MIN_COMPACT_BYTES: u64 = 8 * 1024 * 1024;

const KIND_CHANGES: u8 = 0;
const KIND_SNAPSHOT: u8 = 1;
const KIND_SNAPSHOT_MORE: u8 = 2;
/// A record's kind and its two counts.
const RECORD_HEADER: usize = 9;
const LEGACY_KEY_LEN: usize = 32;

/// What the log holds past its last snapshot, learnt from the tree at the first save after
/// the store opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LogState {
    next_key: u64,
    records: u64,
    bytes: u64,
    snapshot_bytes: u64,
}

impl LogState {
    fn needs_compaction(&self) -> bool {
        self.records > MAX_RECORDS
            || (self.bytes > MIN_COMPACT_BYTES
                && self.bytes > self.snapshot_bytes.saturating_mul(2))
    }
}

/// The saved mempool's log over one open `mempool` tree. Saves are serialised (the chain's
/// replacement and the store-writer's changes may come from two threads).
#[derive(Debug, Default)]
pub(crate) struct SavedMempool {
    state: Mutex<Option<LogState>>,
}

impl SavedMempool {
    /// Replaces the log with one snapshot of `txs` and flushes it.
    pub(crate) fn replace(&self, tree: &sled::Tree, txs: &[Transaction]) -> Result<(), StoreError> {
        let mut guard = self.lock();
        let next_key = match guard.take() {
            Some(state) => state.next_key,
            None => scan(tree)?.next_key,
        };
        let state = write_snapshot(tree, next_key, txs)?;
        tree.flush()?;
        *guard = Some(state);
        Ok(())
    }

    /// Appends the changes (`added` transactions, `removed` txids; disjoint, as the chain's
    /// diff of two pools is) as records in one atomic batch (sled's write lock is held for
    /// about 10 µs a record: 1-2 ms for 5,000 transactions), without waiting for the disk,
    /// and compacts the log when it has grown past its bounds.
    pub(crate) fn append(
        &self,
        tree: &sled::Tree,
        added: &[Transaction],
        removed: &[Hash],
    ) -> Result<(), StoreError> {
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        // The state is taken out while the tree changes: a failed write leaves it to be
        // read from the tree again.
        let mut guard = self.lock();
        let mut state = match guard.take() {
            Some(state) => state,
            None => scan(tree)?,
        };
        let mut batch = sled::Batch::default();
        for record in encode_records(KIND_CHANGES, removed, added) {
            state.records = state.records.saturating_add(1);
            state.bytes = state.bytes.saturating_add(record.len() as u64);
            batch.insert(&state.next_key.to_be_bytes(), record);
            state.next_key = state.next_key.saturating_add(1);
        }
        tree.apply_batch(batch)?;
        if state.needs_compaction() {
            let pool: Vec<Transaction> = replay(tree)?.into_values().collect();
            state = write_snapshot(tree, state.next_key, &pool)?;
        }
        *guard = Some(state);
        Ok(())
    }

    /// The saved transactions: the log replayed from its last snapshot. Undecodable records
    /// are skipped with a warning (the chain revalidates what it loads).
    pub(crate) fn load(&self, tree: &sled::Tree) -> Result<Vec<Transaction>, StoreError> {
        let _guard = self.lock();
        Ok(replay(tree)?.into_values().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<LogState>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Writes `pool` as a snapshot from `key` on (past every key in the tree) and deletes every
/// other entry, in one atomic batch.
fn write_snapshot(
    tree: &sled::Tree,
    key: u64,
    pool: &[Transaction],
) -> Result<LogState, StoreError> {
    let mut batch = sled::Batch::default();
    for item in tree.iter().keys() {
        batch.remove(item?);
    }
    let mut next_key = key;
    let mut snapshot_bytes = 0u64;
    for record in encode_records(KIND_SNAPSHOT, &[], pool) {
        snapshot_bytes = snapshot_bytes.saturating_add(record.len() as u64);
        batch.insert(&next_key.to_be_bytes(), record);
        next_key = next_key.saturating_add(1);
    }
    tree.apply_batch(batch)?;
    Ok(LogState {
        next_key,
        records: 0,
        bytes: 0,
        snapshot_bytes,
    })
}

/// The log's state as the tree holds it.
fn scan(tree: &sled::Tree) -> Result<LogState, StoreError> {
    let mut state = LogState::default();
    for item in tree.iter() {
        let (key, value) = item?;
        let Ok(seq) = <[u8; 8]>::try_from(key.as_ref()) else {
            // An entry of the older layout: counted as a record, so it is compacted away.
            state.records = state.records.saturating_add(1);
            state.bytes = state.bytes.saturating_add(value.len() as u64);
            continue;
        };
        state.next_key = state
            .next_key
            .max(u64::from_be_bytes(seq).saturating_add(1));
        let len = value.len() as u64;
        if value.first() == Some(&KIND_SNAPSHOT) {
            state.records = 0;
            state.bytes = 0;
            state.snapshot_bytes = len;
        } else if value.first() == Some(&KIND_SNAPSHOT_MORE) {
            state.snapshot_bytes = state.snapshot_bytes.saturating_add(len);
        } else {
            state.records = state.records.saturating_add(1);
            state.bytes = state.bytes.saturating_add(len);
        }
    }
    Ok(state)
}

/// The pool the log describes (txid → transaction): entries of the older layout first (as
/// transactions added: any log record was written after them), then the records in key
/// order, each snapshot starting the pool afresh.
fn replay(tree: &sled::Tree) -> Result<HashMap<Hash, Transaction>, StoreError> {
    let mut pool = HashMap::new();
    for legacy in [true, false] {
        for item in tree.iter() {
            let (key, value) = item?;
            if (key.len() == LEGACY_KEY_LEN) != legacy {
                continue;
            }
            let decoded = if legacy {
                Transaction::decode(&value).map(|tx| Record {
                    snapshot: false,
                    removed: Vec::new(),
                    added: vec![tx],
                })
            } else {
                decode_record(&value)
            };
            match decoded {
                Ok(record) => record.apply_to(&mut pool),
                Err(e) => tracing::warn!(error = %e, "skipping undecodable saved mempool record"),
            }
        }
    }
    Ok(pool)
}

/// One decoded record.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    snapshot: bool,
    removed: Vec<Hash>,
    added: Vec<Transaction>,
}

impl Record {
    fn apply_to(self, pool: &mut HashMap<Hash, Transaction>) {
        if self.snapshot {
            pool.clear();
        }
        for txid in &self.removed {
            pool.remove(txid);
        }
        for tx in self.added {
            pool.insert(tx.txid(), tx);
        }
    }
}

/// The records of one save (`first_kind` [`KIND_CHANGES`] or [`KIND_SNAPSHOT`]), each at
/// most [`RECORD_BYTES`]: the removed txids first, then the added transactions. Always at
/// least one (an empty snapshot is one record).
fn encode_records(first_kind: u8, removed: &[Hash], added: &[Transaction]) -> Vec<Vec<u8>> {
    let budget = RECORD_BYTES.saturating_sub(RECORD_HEADER);
    let (mut removed, mut added) = (removed, added);
    let mut records = Vec::new();
    loop {
        let (r, rest_r) = removed.split_at(removed.len().min(budget / 32));
        let room = budget.saturating_sub(r.len().saturating_mul(32));
        let (a, rest_a) = added.split_at(added.len().min(room / TX_ENCODED_LEN));
        let kind = match (records.is_empty(), first_kind) {
            (true, kind) => kind,
            (false, KIND_SNAPSHOT) => KIND_SNAPSHOT_MORE,
            (false, _) => KIND_CHANGES,
        };
        records.push(encode_record(kind, r, a));
        (removed, added) = (rest_r, rest_a);
        if removed.is_empty() && added.is_empty() {
            return records;
        }
    }
}

fn encode_record(kind: u8, removed: &[Hash], added: &[Transaction]) -> Vec<u8> {
    let len = RECORD_HEADER
        .saturating_add(removed.len().saturating_mul(32))
        .saturating_add(added.len().saturating_mul(TX_ENCODED_LEN));
    let mut out = Vec::with_capacity(len);
    out.push(kind);
    out.extend_from_slice(&count_u32(removed.len()).to_le_bytes());
    for txid in removed {
        out.extend_from_slice(&txid.0);
    }
    out.extend_from_slice(&count_u32(added.len()).to_le_bytes());
    for tx in added {
        tx.encode_into(&mut out);
    }
    out
}

/// A record's count: at most [`RECORD_BYTES`] / 32, so the maximum is never written (were it,
/// the record would fail to decode, losing a best-effort copy and nothing else).
fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn decode_record(bytes: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader::new(bytes);
    let [kind] = r.array::<1>()?;
    if ![KIND_CHANGES, KIND_SNAPSHOT, KIND_SNAPSHOT_MORE].contains(&kind) {
        return Err(DecodeError::Record {
            what: "saved mempool",
            detail: format!("unknown record kind {kind}"),
        });
    }
    let removed_count = r.u32()? as usize;
    let mut removed = Vec::with_capacity(removed_count.min(r.remaining() / 32));
    for _ in 0..removed_count {
        removed.push(Hash(r.array::<32>()?));
    }
    let added_count = r.u32()? as usize;
    let mut added = Vec::with_capacity(added_count.min(r.remaining() / TX_ENCODED_LEN));
    for _ in 0..added_count {
        added.push(Transaction::read(&mut r)?);
    }
    r.finish()?;
    Ok(Record {
        snapshot: kind == KIND_SNAPSHOT,
        removed,
        added,
    })
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
    use crate::genesis::Genesis;
    use crate::testkit::ChainBuilder;

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("mempool").unwrap()
    }

    fn transfers(n: usize, salt: u64) -> Vec<Transaction> {
        ChainBuilder::new(Genesis::dev(4, 1_000_000, 1_000), 4).transfers(n, salt)
    }

    fn sorted(mut txs: Vec<Transaction>) -> Vec<Hash> {
        let mut ids: Vec<Hash> = txs.drain(..).map(|t| t.txid()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn changes_replay_onto_the_snapshot_in_order() {
        let t = tree();
        let log = SavedMempool::default();
        let txs = transfers(10, 1);
        log.replace(&t, &txs[..4]).unwrap();
        // A save's removed and added sets are disjoint (the chain's diff of two pools).
        log.append(&t, &txs[4..8], &[txs[0].txid(), txs[2].txid()])
            .unwrap();
        log.append(&t, &txs[8..], &[txs[4].txid()]).unwrap();
        let expected: Vec<Transaction> = [1, 3, 5, 6, 7, 8, 9]
            .iter()
            .map(|&i| txs[i].clone())
            .collect();
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(expected));
        // One record per save, whatever its size.
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_large_save_is_split_into_small_records_and_replays_whole() {
        let t = tree();
        let log = SavedMempool::default();
        let txs = transfers(300, 7);
        log.replace(&t, &txs[..120]).unwrap();
        let snapshot_records = t.len();
        assert_eq!(snapshot_records, 3, "120 transactions, 54 a record");
        let removed: Vec<Hash> = txs[..100].iter().map(Transaction::txid).collect();
        log.append(&t, &txs[120..], &removed).unwrap();
        for item in t.iter() {
            let (_, value) = item.unwrap();
            assert!(
                value.len() <= RECORD_BYTES,
                "a record of {} bytes",
                value.len()
            );
        }
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(txs[100..].to_vec()));
        // A reopened store counts the snapshot's records as the snapshot, not as changes.
        let state = scan(&t).unwrap();
        assert_eq!(state.records as usize, t.len() - snapshot_records);
        assert_eq!(state.next_key as usize, t.len());
    }

    #[test]
    fn a_new_handle_continues_the_log_a_killed_process_left() {
        let t = tree();
        let txs = transfers(6, 2);
        let first = SavedMempool::default();
        first.replace(&t, &txs[..2]).unwrap();
        first.append(&t, &txs[2..4], &[]).unwrap();
        // A reopened store starts without state: it appends after the last key.
        let second = SavedMempool::default();
        second.append(&t, &txs[4..], &[txs[2].txid()]).unwrap();
        let expected = vec![
            txs[0].clone(),
            txs[1].clone(),
            txs[3].clone(),
            txs[4].clone(),
            txs[5].clone(),
        ];
        assert_eq!(sorted(second.load(&t).unwrap()), sorted(expected));
    }

    #[test]
    fn the_log_is_compacted_into_one_snapshot_past_its_record_bound() {
        let t = tree();
        let log = SavedMempool::default();
        let txs = transfers(3, 3);
        log.replace(&t, &[]).unwrap();
        let (a, b) = (txs[0].clone(), txs[1].clone());
        // Add and remove the same transactions, over and over: the pool stays {a}.
        log.append(&t, std::slice::from_ref(&a), &[]).unwrap();
        for _ in 0..MAX_RECORDS {
            log.append(&t, std::slice::from_ref(&b), &[]).unwrap();
            log.append(&t, &[], &[b.txid()]).unwrap();
        }
        assert!(
            t.len() as u64 <= MAX_RECORDS + 1,
            "{} records after {} saves",
            t.len(),
            2 * MAX_RECORDS + 1
        );
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(vec![a.clone()]));
        // Compacted state carries on: more changes replay onto the snapshot.
        log.append(&t, std::slice::from_ref(&txs[2]), &[a.txid()])
            .unwrap();
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(vec![txs[2].clone()]));
    }

    #[test]
    fn entries_of_the_older_layout_are_read_and_compacted_away() {
        let t = tree();
        let txs = transfers(3, 4);
        for tx in &txs[..2] {
            t.insert(tx.txid().0, tx.encode()).unwrap();
        }
        let log = SavedMempool::default();
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(txs[..2].to_vec()));
        log.append(&t, &txs[2..], &[txs[0].txid()]).unwrap();
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(txs[1..].to_vec()));
        let pool = log.load(&t).unwrap();
        log.replace(&t, &pool).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.iter().keys().all(|k| k.unwrap().len() == 8));
        assert_eq!(sorted(log.load(&t).unwrap()), sorted(txs[1..].to_vec()));
    }

    #[test]
    fn an_undecodable_record_is_skipped_and_the_rest_replayed() {
        let t = tree();
        let log = SavedMempool::default();
        let txs = transfers(3, 5);
        log.replace(&t, &txs[..1]).unwrap();
        t.insert(7u64.to_be_bytes(), vec![KIND_CHANGES, 9, 9])
            .unwrap();
        t.insert(8u64.to_be_bytes(), vec![42u8; 200]).unwrap();
        let fresh = SavedMempool::default();
        fresh.append(&t, &txs[1..], &[]).unwrap();
        assert_eq!(sorted(fresh.load(&t).unwrap()), sorted(txs));
    }

    #[test]
    fn records_decode_as_encoded_and_refuse_what_does_not_fit() {
        let txs = transfers(2, 6);
        let removed = [Hash([3; 32])];
        let bytes = encode_record(KIND_CHANGES, &removed, &txs);
        let record = decode_record(&bytes).unwrap();
        assert_eq!(
            record,
            Record {
                snapshot: false,
                removed: removed.to_vec(),
                added: txs.clone(),
            }
        );
        for cut in 0..bytes.len() {
            assert!(decode_record(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_record(&longer).is_err());
        // A count far past the bytes neither allocates for it nor panics.
        let mut huge = vec![KIND_SNAPSHOT];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_record(&huge).is_err());
    }

    #[test]
    fn compaction_waits_for_size_past_the_snapshot() {
        let state = |records, bytes, snapshot_bytes| LogState {
            next_key: 0,
            records,
            bytes,
            snapshot_bytes,
        };
        assert!(!state(10, MIN_COMPACT_BYTES, 0).needs_compaction());
        assert!(state(10, MIN_COMPACT_BYTES + 1, 0).needs_compaction());
        assert!(!state(10, MIN_COMPACT_BYTES * 3, MIN_COMPACT_BYTES * 2).needs_compaction());
        assert!(state(10, MIN_COMPACT_BYTES * 4 + 1, MIN_COMPACT_BYTES * 2).needs_compaction());
        assert!(state(MAX_RECORDS + 1, 0, 0).needs_compaction());
    }
}
