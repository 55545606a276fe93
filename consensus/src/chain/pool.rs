//! The mempool seen through the chain: admission against the tip's state, selection for
//! templates, expiry, and the saved copy in the store (loaded at open, written whole or as
//! changes). It must never change the chain.

use std::collections::HashSet;

use peerchain_ledger::mempool::{Admitted, MempoolError, Selection};
use peerchain_ledger::{Hash, StoreError, Transaction};

use super::{Chain, ChainError, ChainEvent, SavedMempoolChanges};

impl Chain {
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
        let (changes, added_txids) = self.saved_mempool_diff();
        if changes.is_empty() {
            return Ok((0, 0));
        }
        self.store
            .update_saved_mempool(&changes.added, &changes.removed)?;
        self.mark_saved(added_txids, &changes.removed);
        Ok((changes.added.len(), changes.removed.len()))
    }

    /// [`Chain::sync_saved_mempool`] for a caller that writes the changes on another thread
    /// ([`BackgroundWrites::update_saved_mempool`], in the order taken): the changes since
    /// the last call, counted as saved from now on. A write that then fails leaves the saved
    /// mempool behind the pool until [`Chain::reopen_store`] or [`Chain::save_mempool`]
    /// rewrites it.
    ///
    /// [`BackgroundWrites::update_saved_mempool`]: peerchain_ledger::BackgroundWrites::update_saved_mempool
    pub fn take_saved_mempool_changes(&mut self) -> SavedMempoolChanges {
        let (changes, added_txids) = self.saved_mempool_diff();
        self.mark_saved(added_txids, &changes.removed);
        changes
    }

    /// The changes, and the txids of the added transactions (the pool's keys, so that none
    /// is hashed again).
    fn saved_mempool_diff(&self) -> (SavedMempoolChanges, Vec<Hash>) {
        let (mut added, mut added_txids) = (Vec::new(), Vec::new());
        for txid in self.mempool.txids() {
            if self.saved_mempool.contains(txid) {
                continue;
            }
            if let Some(entry) = self.mempool.get(txid) {
                added.push(entry.tx.clone());
                added_txids.push(*txid);
            }
        }
        let removed: Vec<Hash> = self
            .saved_mempool
            .iter()
            .filter(|t| !self.mempool.contains(t))
            .copied()
            .collect();
        (SavedMempoolChanges { added, removed }, added_txids)
    }

    fn mark_saved(&mut self, added: Vec<Hash>, removed: &[Hash]) {
        for t in removed {
            self.saved_mempool.remove(t);
        }
        self.saved_mempool.extend(added);
    }
}
