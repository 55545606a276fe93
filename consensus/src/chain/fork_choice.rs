//! Fork choice: the heaviest valid branch, reorgs of any depth (disconnect to the fork,
//! connect up the branch, fall back when a block fails), the mempool that follows the tip,
//! and `invalidate` / `reconsider`. It must never check a block's header or body again (import
//! did) beyond applying its state.

use std::collections::HashSet;

use peerchain_ledger::mempool::Admitted;
use peerchain_ledger::state::apply_block;
use peerchain_ledger::{Address, ApplyError, Block, BlockRecord, BlockStatus, Hash, StoreError};

use crate::just_stored::StoredBlock;
use crate::rules::ConsensusError;

use super::{BlockContents, Chain, ChainError, ChainEvent, Disconnected};

impl Chain {
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
    pub(super) fn activate_best(&mut self) -> Result<(), ChainError> {
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
                    let contents = BlockContents {
                        tx_count: block.transactions.len() as u64,
                        fees: delta.fees,
                    };
                    connected.push((hash, contents));
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
        connected: Vec<(Hash, BlockContents)>,
    ) {
        if !disconnected.is_empty() {
            self.events.push(ChainEvent::Reorg {
                fork_height: self.node(&fork).header.height,
                old_tip,
                new_tip: self.tip,
                disconnected,
                connected: connected.iter().map(|(hash, _)| *hash).collect(),
            });
        }
        for (hash, contents) in connected {
            let height = self.node(&hash).header.height;
            self.events.push(ChainEvent::BlockConnected {
                hash,
                height,
                contents,
            });
        }
    }

    pub(super) fn update_mempool(
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
}
