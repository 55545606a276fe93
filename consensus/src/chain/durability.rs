//! What the chain keeps so that a store reopened after a failed write loses nothing it had
//! connected: the blocks connected since the last write known to be on the disk, the marks
//! a probe on another thread releases them by, the reopen that imports again what the store
//! lost, and fork choice resumed on open; also the store's flushes, its txindex writes and
//! the handle for writes on another thread. It must never decide when to probe or reopen (the
//! node's storage guard does).

use peerchain_ledger::{BackgroundWrites, Block, BlockStatus, Hash};

use super::{Chain, ChainError, ChainEvent, DurableMark, StoredTree};

impl Chain {
    /// Reopens the store from disk and loads the block tree from it again, as a restart
    /// would: after a full disk, sled refuses every write until it is reopened, and what it
    /// holds then is what reached the disk (a write buffer that failed is dropped, as in a
    /// crash). Fork choice runs again; then the main-chain blocks connected since a write last
    /// reached the disk that the store lost are imported again (a node without peers would
    /// otherwise lose them and the transfers in them); then the mempool is rebuilt from the
    /// returned transactions, the saved mempool and the transactions pending before, each
    /// revalidated against the new tip. Orphans and future blocks in memory are kept. On an
    /// error the chain may be left unable to write; call it again later.
    pub fn reopen_store(&mut self, now_ms: u64) -> Result<(), ChainError> {
        let pending = self.mempool.snapshot();
        self.store.reopen()?;
        let tree = StoredTree::load(&self.store)?;
        self.nodes = tree.nodes;
        self.children = tree.children;
        self.leaves = tree.leaves;
        self.tip = tree.tip;
        self.failed.clear();
        self.activation_failed = false;
        self.unvalidated_sources.clear();
        self.saved_mempool.clear();
        self.just_stored.clear();
        self.mempool = self.mempool.emptied();
        self.resume_fork_choice();
        let replayed = self.replay_undurable(now_ms);
        // The pending transactions before anything else that writes (and may fail on a disk
        // that is still marginal): a failed attempt must not lose them. Offered again after
        // the returned ones, which some of them follow (their predecessors were in blocks the
        // disk lost); the periodic mempool save writes those.
        self.mempool.add_batch(pending.clone(), &self.store, now_ms);
        let loaded = self.load_mempool(now_ms);
        self.mempool.add_batch(pending, &self.store, now_ms);
        replayed.and(loaded).map(|_| ())
    }

    /// Imports again, oldest first, the kept main-chain blocks that the reopened store lacks.
    /// Returns how many. On a store error the blocks not yet imported stay kept for the next
    /// attempt.
    fn replay_undurable(&mut self, now_ms: u64) -> Result<usize, ChainError> {
        let mut kept = std::mem::take(&mut self.undurable);
        let mut replayed: usize = 0;
        while let Some((number, block)) = kept.pop_front() {
            if self.nodes.contains_key(&block.hash()) {
                continue;
            }
            // Connecting it keeps it again (in `undurable`) until a write reaches the disk.
            if let Err(e) = self.import(block.clone(), None, now_ms) {
                kept.push_front((number, block));
                self.undurable.extend(kept);
                return Err(e);
            }
            replayed = replayed.saturating_add(1);
        }
        if replayed > 0 {
            tracing::warn!(
                blocks = replayed,
                tip = %self.tip,
                "blocks the store lost in the failed write were imported again"
            );
        }
        Ok(replayed)
    }

    /// Keeps a block just connected on the main chain until a write reaches the disk. At the
    /// bound the store is flushed, which makes every kept block durable (a sync burst connects
    /// blocks faster than the once-a-second probe); if that flush fails, the oldest is let go.
    /// The flush leaves the pending txindex entries to the node's writer: on the chain thread
    /// they took every node about 40 ms per 5,000-transfer block, on the same block of each
    /// sixteen across a test network (docs/BENCHMARKS.md section 16).
    pub(super) fn keep_undurable(&mut self, block: Block) {
        if self.config.max_undurable_blocks == 0 {
            return;
        }
        if self.undurable.len() >= self.config.max_undurable_blocks {
            match self.store.flush_written() {
                Ok(()) => self.undurable.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, "flushing the store failed; the oldest block kept for a reopen is let go");
                    self.undurable.pop_front();
                }
            }
        }
        self.connected_count = self.connected_count.wrapping_add(1);
        self.undurable.push_back((self.connected_count, block));
    }

    /// Fork choice on open (see [`Chain::open`]).
    pub(super) fn resume_fork_choice(&mut self) {
        let opened_at = self.tip;
        if let Err(e) = self.activate_best() {
            tracing::error!(error = %e, "fork choice on open failed; will retry");
        }
        if self.tip == opened_at {
            return;
        }
        tracing::warn!(from = %opened_at, to = %self.tip, "an interrupted reorganisation was completed on open");
        // The lowest main-chain ancestor of the tip we opened on is where the branches part;
        // every valid block above it that is off the main chain now was on it before the
        // reorg began (or was disconnected just now).
        let mut fork = opened_at;
        while !self.is_on_main(&fork) {
            match self.nodes.get(&fork) {
                Some(n) if n.header.height > 0 => fork = n.header.prev_hash,
                _ => break,
            }
        }
        let mut returned = Vec::new();
        let mut stack: Vec<Hash> = self.children.get(&fork).cloned().unwrap_or_default();
        while let Some(hash) = stack.pop() {
            if self.is_on_main(&hash) {
                continue;
            }
            if self
                .nodes
                .get(&hash)
                .is_some_and(|n| n.status == BlockStatus::Valid)
            {
                returned.push(hash);
                stack.extend(self.children.get(&hash).cloned().unwrap_or_default());
            }
        }
        returned.sort_by_key(|h| self.nodes.get(h).map_or(0, |n| n.header.height));
        self.returned_at_open = returned;
        // Nothing reaches the mempool before `load_mempool` gives it the time.
        self.mempool = self.mempool.emptied();
        self.events
            .retain(|e| !matches!(e, ChainEvent::TxReturned(_)));
    }

    /// Whether the store still takes writes (see `Store::probe_write`). The probe flushes:
    /// once it succeeds, every block connected before it is on the disk. A node probes on
    /// another thread ([`BackgroundWrites::probe_write`] between [`Chain::durable_mark`]
    /// and [`Chain::blocks_durable`]); this is for when it must know before going on.
    pub fn probe_store(&mut self) -> Result<(), ChainError> {
        self.store.probe_write()?;
        self.undurable.clear();
        Ok(())
    }

    /// Main-chain blocks kept in memory until a write reaches the disk (for a reopen).
    pub fn kept_for_reopen(&self) -> usize {
        self.undurable.len()
    }

    /// The blocks connected so far, to hand to [`Chain::blocks_durable`] once a flush that
    /// started after this call has succeeded.
    pub fn durable_mark(&self) -> DurableMark {
        DurableMark(self.connected_count)
    }

    /// A flush that started after `mark` was taken succeeded: the blocks connected up to it
    /// are on the disk and need not be kept for a reopen. Blocks connected since stay kept.
    pub fn blocks_durable(&mut self, mark: DurableMark) {
        while self
            .undurable
            .front()
            .is_some_and(|(number, _)| *number <= mark.0)
        {
            self.undurable.pop_front();
        }
    }

    /// Writes the txindex entries of the blocks connected since the last call (readers see
    /// them already; `Store::write_txindex`). Call it once the blocks are announced: it is
    /// most of a block's store writes. Returns how many.
    pub fn write_txindex(&self) -> Result<usize, ChainError> {
        Ok(self.store.write_txindex()?)
    }

    /// Writes everything to disk.
    pub fn flush(&mut self) -> Result<(), ChainError> {
        self.store.flush()?;
        self.undurable.clear();
        Ok(())
    }

    /// A handle for the store writes another thread may make once the chain has announced
    /// what changed: the txindex entries of connected blocks and the saved mempool's changes
    /// ([`BackgroundWrites`]).
    pub fn background_writes(&self) -> BackgroundWrites {
        self.store.background_writes()
    }
}
