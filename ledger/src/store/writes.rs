//! The store's writes on the chain's thread: block bodies and records, connecting and
//! disconnecting a block in one sled transaction over every tree, the txindex caught up at
//! open, the saved mempool written whole, flushes and the disk probe. It must never decide
//! what to connect (consensus does).

use super::background::{probe_write, write_pending_txindex, write_saved_mempool_changes};
use super::records::{decode_undo, encode_undo};
use sled::Transactional;
use sled::transaction::TransactionalTree;

use crate::error::StoreError;
use crate::history;
use crate::state::{Account, BlockDelta, StateDigest};
use crate::txindex::{META_TXINDEX_TIP, block_entries};
use crate::types::{Address, Block, Hash, Transaction};

use super::records::BlockRecord;
use super::{META_SEQ, META_TIP, Store, TxResult, decode_u64, tx_err};

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

impl Store {
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
        let rec = record.encode();
        let t = self.trees()?;
        // The body before its location (`bodies`).
        let location = t.bodies.append(&block.encode())?.encode();
        (&t.blocks, &t.index)
            .transaction(|(blocks, index)| -> TxResult {
                blocks.insert(&hash.0, location.as_slice())?;
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

    /// Indexes the main-chain blocks above the meta record `txindex_tip` (left behind by a
    /// process killed before [`Store::write_txindex`]), at open. Returns the entries written.
    /// A block whose body is damaged (`bodies`) is skipped with an error logged, so that the
    /// store still opens.
    pub(super) fn catch_up_txindex(&self) -> Result<u64, StoreError> {
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
            let block = match self.block(&hash) {
                Ok(Some(block)) => block,
                Ok(None) => return Err(StoreError::MissingBlock(hash)),
                // Its transactions cannot be read anyway: the store opens without them.
                Err(e @ StoreError::DamagedBody { .. }) => {
                    tracing::error!(error = %e, height, "txindex catch-up skipped a block whose body is damaged; resync into a new data directory to repair it");
                    continue;
                }
                Err(e) => return Err(e),
            };
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
            self.flush_written()?;
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
        // Its flush is the whole database's: the bodies before the locations (`bodies`).
        t.bodies.sync()?;
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
    ///
    /// [`BackgroundWrites`]: super::BackgroundWrites
    pub fn flush_written(&self) -> Result<(), StoreError> {
        let t = self.trees()?;
        // The bodies before the locations that name them (`bodies`).
        t.bodies.sync()?;
        t.db.flush()?;
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
