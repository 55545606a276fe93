//! The layout of the per-address history index (store format 2), and the upgrade from
//! format 1.
//!
//! One row per address and main-chain block: the key is `address (20) ‖ height (8, big
//! endian)`, the value the entries `index (4, big endian) ‖ txid (32)` of the block's
//! transactions that sent from or paid to the address, in ascending index. A block of 5,000
//! transfers among 50 accounts writes 50 rows, not 10,000 (format 1 wrote one row per address
//! and transaction, and those writes were most of a block's commit; docs/BENCHMARKS.md).
//!
//! Owns the encoding and the paging only; the store decides when rows are written (with the
//! block, in one transaction) and must never write a row of a block off the main chain.

use std::collections::BTreeMap;

use crate::error::{DecodeError, StoreError};
use crate::types::{Address, Block, Hash};

/// Bytes of a row key: address and height.
pub(crate) const ROW_KEY_LEN: usize = 28;
/// Bytes of one entry of a row: index and txid.
const ENTRY_LEN: usize = 36;
/// Bytes of a format-1 key: address, height and index (its value is the txid).
const V1_KEY_LEN: usize = 32;
/// Format-1 rows rewritten per sled batch while upgrading (whole groups only, so a process
/// killed during the upgrade leaves every group in one format or the other).
const UPGRADE_BATCH_ROWS: usize = 50_000;

/// A position in an address's history: newest first means descending (height, index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryCursor {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
}

impl HistoryCursor {
    /// Opaque text form for APIs.
    pub fn to_text(&self) -> String {
        format!("{}-{}", self.height, self.index)
    }

    /// Parses [`HistoryCursor::to_text`]'s output.
    pub fn from_text(text: &str) -> Option<Self> {
        let (h, i) = text.split_once('-')?;
        Some(HistoryCursor {
            height: h.parse().ok()?,
            index: i.parse().ok()?,
        })
    }
}

/// A page of an address's history: (position, txid) newest first, and the cursor of the last
/// item when more may follow.
pub type HistoryPage = (Vec<(HistoryCursor, Hash)>, Option<HistoryCursor>);

/// The key of `address`'s row at `height`.
pub(crate) fn row_key(address: &Address, height: u64) -> [u8; ROW_KEY_LEN] {
    let mut k = [0u8; ROW_KEY_LEN];
    let (a, h) = k.split_at_mut(20);
    a.copy_from_slice(&address.0);
    h.copy_from_slice(&height.to_be_bytes());
    k
}

/// The rows `block` adds, by address (sorted, so the writes are deterministic), each with the
/// number of its entries (a transfer to oneself is one entry).
pub(crate) fn block_rows(block: &Block, txids: &[Hash]) -> BTreeMap<Address, Vec<u8>> {
    let mut rows: BTreeMap<Address, Vec<u8>> = BTreeMap::new();
    for (i, (tx, txid)) in (0u32..).zip(block.transactions.iter().zip(txids)) {
        let sender = tx.sender();
        push_entry(rows.entry(sender).or_default(), i, txid);
        if tx.to != sender {
            push_entry(rows.entry(tx.to).or_default(), i, txid);
        }
    }
    rows
}

/// Entries in a row value.
pub(crate) fn entry_count(value: &[u8]) -> u64 {
    (value.len() / ENTRY_LEN) as u64
}

fn push_entry(row: &mut Vec<u8>, index: u32, txid: &Hash) {
    row.extend_from_slice(&index.to_be_bytes());
    row.extend_from_slice(&txid.0);
}

/// The height in a row key.
fn key_height(key: &[u8]) -> Result<u64, DecodeError> {
    let height: [u8; 8] = key
        .get(20..ROW_KEY_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Length {
            what: "history row key",
            expected: ROW_KEY_LEN,
            got: key.len(),
        })?;
    Ok(u64::from_be_bytes(height))
}

/// The entries of a row value, in ascending index.
fn entries(value: &[u8]) -> Result<Vec<(u32, Hash)>, DecodeError> {
    if !value.len().is_multiple_of(ENTRY_LEN) {
        return Err(DecodeError::Length {
            what: "history row",
            expected: value.len().next_multiple_of(ENTRY_LEN),
            got: value.len(),
        });
    }
    value
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let (index, txid) = e.split_at(4);
            let index: [u8; 4] = index.try_into().map_err(|_| DecodeError::Length {
                what: "history entry index",
                expected: 4,
                got: index.len(),
            })?;
            Ok((u32::from_be_bytes(index), Hash::from_slice(txid)?))
        })
        .collect()
}

/// Up to `limit` entries strictly older than `before`, newest first, from `rows` (one
/// address's rows in descending height, as a reverse range over the tree yields them), and
/// the cursor of the last when more may follow.
pub(crate) fn page(
    rows: impl Iterator<Item = Result<(sled::IVec, sled::IVec), sled::Error>>,
    before: Option<HistoryCursor>,
    limit: usize,
) -> Result<HistoryPage, StoreError> {
    let mut items = Vec::with_capacity(limit.min(1024));
    'rows: for row in rows {
        let (key, value) = row?;
        let height = key_height(&key)?;
        for (index, txid) in entries(&value)?.into_iter().rev() {
            let at = HistoryCursor { height, index };
            if before.is_some_and(|b| at >= b) {
                continue;
            }
            if items.len() > limit {
                break 'rows;
            }
            items.push((at, txid));
        }
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(|(c, _)| *c)
    } else {
        None
    };
    Ok((items, next))
}

/// Rewrites a format-1 history tree in format 2, a batch of whole groups at a time; rows
/// already in format 2 are left alone, so an upgrade cut short by a crash resumes. Returns
/// the format-1 rows rewritten.
pub(crate) fn upgrade_from_v1(tree: &sled::Tree) -> Result<u64, StoreError> {
    upgrade_in_batches(tree, UPGRADE_BATCH_ROWS)
}

fn upgrade_in_batches(tree: &sled::Tree, batch_rows: usize) -> Result<u64, StoreError> {
    let mut rewritten = 0u64;
    let mut from: Vec<u8> = Vec::new();
    loop {
        let (batch, rows, resume) = next_upgrade_batch(tree, &from, batch_rows)?;
        if rows == 0 {
            return Ok(rewritten);
        }
        tree.apply_batch(batch)?;
        rewritten = rewritten.saturating_add(rows);
        match resume {
            Some(key) => from = key,
            None => return Ok(rewritten),
        }
    }
}

/// One batch of the upgrade from `from` (about `batch_rows` format-1 rows, whole groups): the
/// batch, the format-1 rows it rewrites, and where the next batch starts (`None`: done).
fn next_upgrade_batch(
    tree: &sled::Tree,
    from: &[u8],
    batch_rows: usize,
) -> Result<(sled::Batch, u64, Option<Vec<u8>>), StoreError> {
    let mut batch = sled::Batch::default();
    let mut rows = 0u64;
    let mut group: Option<([u8; ROW_KEY_LEN], Vec<u8>)> = None;
    for item in tree.range(from..) {
        let (key, value) = item?;
        if key.len() != V1_KEY_LEN {
            continue; // format 2 already
        }
        let (prefix, index) = key.split_at(ROW_KEY_LEN);
        let prefix: [u8; ROW_KEY_LEN] = prefix.try_into().map_err(|_| DecodeError::Length {
            what: "history key",
            expected: V1_KEY_LEN,
            got: key.len(),
        })?;
        let index: [u8; 4] = index.try_into().map_err(|_| DecodeError::Length {
            what: "history key",
            expected: V1_KEY_LEN,
            got: key.len(),
        })?;
        let txid = Hash::from_slice(&value)?;
        let starts_group = group.as_ref().is_none_or(|(k, _)| *k != prefix);
        if starts_group {
            if rows >= batch_rows as u64 {
                flush_group(&mut batch, group.take());
                return Ok((batch, rows, Some(prefix.to_vec())));
            }
            flush_group(&mut batch, group.take());
            group = Some((prefix, Vec::new()));
        }
        if let Some((_, row)) = group.as_mut() {
            push_entry(row, u32::from_be_bytes(index), &txid);
        }
        batch.remove(&*key);
        rows = rows.saturating_add(1);
    }
    flush_group(&mut batch, group);
    Ok((batch, rows, None))
}

fn flush_group(batch: &mut sled::Batch, group: Option<([u8; ROW_KEY_LEN], Vec<u8>)>) {
    if let Some((key, row)) = group {
        batch.insert(&key, row);
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

    fn tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("history").unwrap()
    }

    fn txid(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn v1_key(address: &Address, height: u64, index: u32) -> Vec<u8> {
        let mut k = row_key(address, height).to_vec();
        k.extend_from_slice(&index.to_be_bytes());
        k
    }

    /// Rows of one address: height 5 with indexes 0, 3, 7; height 2 with 1.
    fn sample(t: &sled::Tree, a: &Address) {
        let mut row5 = Vec::new();
        for (i, n) in [(0, 1), (3, 2), (7, 3)] {
            push_entry(&mut row5, i, &txid(n));
        }
        let mut row2 = Vec::new();
        push_entry(&mut row2, 1, &txid(4));
        t.insert(row_key(a, 5), row5).unwrap();
        t.insert(row_key(a, 2), row2).unwrap();
        // Another address around it must never show.
        let mut other = Vec::new();
        push_entry(&mut other, 0, &txid(9));
        t.insert(row_key(&Address([0x11; 20]), 3), other).unwrap();
    }

    fn pages(
        t: &sled::Tree,
        a: &Address,
        before: Option<HistoryCursor>,
        limit: usize,
    ) -> HistoryPage {
        let rows = t.range(row_key(a, 0)..=row_key(a, u64::MAX)).rev();
        page(rows, before, limit).unwrap()
    }

    #[test]
    fn pages_run_newest_first_across_rows_and_resume_at_the_cursor() {
        let t = tree();
        let a = Address([0x10; 20]);
        sample(&t, &a);
        let (first, next) = pages(&t, &a, None, 2);
        let at = |height, index| HistoryCursor { height, index };
        assert_eq!(first, vec![(at(5, 7), txid(3)), (at(5, 3), txid(2))]);
        assert_eq!(next, Some(at(5, 3)));
        let (second, next) = pages(&t, &a, next, 2);
        assert_eq!(second, vec![(at(5, 0), txid(1)), (at(2, 1), txid(4))]);
        assert_eq!(next, None, "nothing older");
        let (all, next) = pages(&t, &a, None, 10);
        assert_eq!(all.len(), 4);
        assert_eq!(next, None);
        let (exact, next) = pages(&t, &a, None, 4);
        assert_eq!(
            (exact.len(), next),
            (4, None),
            "a full last page says no more"
        );
    }

    #[test]
    fn a_row_of_a_broken_length_is_a_decode_error() {
        let t = tree();
        let a = Address([0x10; 20]);
        t.insert(row_key(&a, 1), vec![0u8; 40]).unwrap();
        let rows = t.range(row_key(&a, 0)..=row_key(&a, u64::MAX)).rev();
        assert!(matches!(
            page(rows, None, 10),
            Err(StoreError::Decode(DecodeError::Length { got: 40, .. }))
        ));
    }

    #[test]
    fn the_upgrade_groups_format_1_rows_and_resumes_after_a_partial_run() {
        let t = tree();
        let a = Address([0x10; 20]);
        let b = Address([0x20; 20]);
        let mut expected = BTreeMap::new();
        for h in 0..40u64 {
            for i in 0..3u32 {
                let n = (h as u8).wrapping_mul(3).wrapping_add(i as u8);
                for addr in [&a, &b] {
                    t.insert(v1_key(addr, h, i * 2), &txid(n).0).unwrap();
                    let row: &mut Vec<u8> = expected.entry(row_key(addr, h).to_vec()).or_default();
                    push_entry(row, i * 2, &txid(n));
                }
            }
        }
        // A first batch alone, as if the process died after it: whole groups only.
        let (batch, rows, resume) = next_upgrade_batch(&t, &[], 10).unwrap();
        assert_eq!(rows, 12, "stops at the first group boundary past 10 rows");
        assert_eq!(resume, Some(row_key(&a, 4).to_vec()));
        t.apply_batch(batch).unwrap();
        assert_eq!(
            upgrade_in_batches(&t, 10).unwrap(),
            228,
            "the rest, in batches of 12"
        );
        // A group reverted to format 1 (a crash between batches) is upgraded again alone.
        t.remove(row_key(&b, 7)).unwrap();
        for i in 0..3u32 {
            let n = 7u8 * 3 + i as u8;
            t.insert(v1_key(&b, 7, i * 2), &txid(n).0).unwrap();
        }
        assert_eq!(
            upgrade_from_v1(&t).unwrap(),
            3,
            "only the reverted group again"
        );
        let stored: BTreeMap<Vec<u8>, Vec<u8>> = t
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, expected.into_iter().collect());
    }
}
