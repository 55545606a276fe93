//! Block import: checks that need no state, storing, orphans and blocks from the future, the
//! blocks known invalid, and the import loop that ends in fork choice. It must never connect
//! a block itself (fork choice does, in `fork_choice`).

use std::collections::VecDeque;

use peerchain_ledger::{Block, BlockHeader, BlockRecord, BlockStatus, Hash, U256};

use crate::just_stored::StoredBlock;
use crate::rules::{ConsensusError, check_body_txids, check_body_with, check_header};

use super::{
    Chain, ChainError, ChainEvent, Imported, Node, Prechecked, RelayableBlock, Source, Verdict,
    is_header_rule,
};

impl Chain {
    /// Imports a block that arrived unrequested (gossip). A block whose branch, with it, would
    /// still have less work than the active tip is dropped with [`Verdict::Lighter`]: a
    /// cheap side branch (a fork from an old block at `pow_limit` costs a few hashes a block)
    /// then grows neither the block tree, nor the disk, nor the cost of fork choice, and is
    /// not relayed. Blocks fetched by sync (requested, headers-first onto a heavier branch)
    /// go through [`Chain::import`].
    pub fn import_unrequested(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
    ) -> Result<Vec<Imported>, ChainError> {
        let hash = block.hash();
        if !self.nodes.contains_key(&hash)
            && let Some(work) = self.work_with(&block.header)
        {
            let tip_work = self.tip_work();
            if work < tip_work {
                return Ok(vec![Imported {
                    hash,
                    source,
                    verdict: Verdict::Lighter { work, tip_work },
                }]);
            }
        }
        self.import(block, source, now_ms)
    }

    /// Imports a block from `source`, then any orphans it unlocks. Returns one verdict per
    /// block processed (the given block first).
    pub fn import(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
    ) -> Result<Vec<Imported>, ChainError> {
        self.import_blocks(block, source, now_ms, Prechecked::No)
    }

    /// [`Chain::import`] of a block [`Chain::prepare_relay`] passed: rules 1-5 and its
    /// signatures are not checked again, only its state is (about 3-5 ms less for a
    /// 5,000-transfer block).
    pub fn import_relayable(
        &mut self,
        checked: RelayableBlock,
        source: Source,
        now_ms: u64,
    ) -> Result<Vec<Imported>, ChainError> {
        let RelayableBlock { block, txids } = checked;
        self.import_blocks(block, source, now_ms, Prechecked::ForRelay(txids))
    }

    /// Imports the blocks, then forgets the ones kept for fork choice, however it ended.
    fn import_blocks(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
        prechecked: Prechecked,
    ) -> Result<Vec<Imported>, ChainError> {
        let imported = self.import_and_activate(block, source, now_ms, prechecked);
        self.just_stored.clear();
        imported
    }

    fn import_and_activate(
        &mut self,
        block: Block,
        source: Source,
        now_ms: u64,
        prechecked: Prechecked,
    ) -> Result<Vec<Imported>, ChainError> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mut out = Vec::new();
        let mut queue = VecDeque::from([(block, source, prechecked)]);
        while let Some((block, source, prechecked)) = queue.pop_front() {
            let hash = block.hash();
            let verdict = self.import_one(block, &source, now_ms, prechecked)?;
            if matches!(verdict, Verdict::Accepted { .. }) {
                self.remember_source(hash, source.clone());
                queue.extend(
                    self.take_orphans_of(&hash)
                        .into_iter()
                        .map(|(b, s)| (b, s, Prechecked::No)),
                );
            } else if verdict.is_invalid() {
                self.reject_orphans_of(&hash, &mut out);
            }
            out.push(Imported {
                hash,
                source,
                verdict,
            });
        }
        self.activate_best()?;
        // Report blocks that failed while connecting, and the final main-chain status.
        let failed = std::mem::take(&mut self.failed);
        for item in &mut out {
            if let Some((_, e)) = failed.iter().find(|(h, _)| *h == item.hash) {
                item.verdict = Verdict::Invalid(e.clone());
            } else if let Verdict::Accepted { on_main } = &mut item.verdict {
                *on_main = self.is_on_main(&item.hash);
                if let (false, Some(n)) = (*on_main, self.nodes.get(&item.hash)) {
                    self.events.push(ChainEvent::SideBlockStored {
                        hash: item.hash,
                        height: n.header.height,
                    });
                }
            }
        }
        // Blocks imported earlier that failed now: report them with their original sender.
        for (hash, e) in failed {
            if !out.iter().any(|i| i.hash == hash) {
                out.push(Imported {
                    hash,
                    source: self.unvalidated_sources.remove(&hash).flatten(),
                    verdict: Verdict::Invalid(e),
                });
            }
        }
        Ok(out)
    }

    /// Keeps the sender of a stored, not yet validated block (bounded; oldest forgotten first
    /// is not tracked, so at the bound the map is simply cleared).
    fn remember_source(&mut self, hash: Hash, source: Source) {
        const MAX_SOURCES: usize = 50_000;
        if self.unvalidated_sources.len() >= MAX_SOURCES {
            self.unvalidated_sources.clear();
        }
        self.unvalidated_sources.insert(hash, source);
    }

    fn reject_orphans_of(&mut self, hash: &Hash, out: &mut Vec<Imported>) {
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            for (child, src) in self.take_orphans_of(&h) {
                let ch = child.hash();
                stack.push(ch);
                out.push(Imported {
                    hash: ch,
                    source: src,
                    verdict: Verdict::Invalid(ConsensusError::InvalidAncestor { ancestor: *hash }),
                });
            }
        }
    }

    fn import_one(
        &mut self,
        block: Block,
        source: &Source,
        now_ms: u64,
        prechecked: Prechecked,
    ) -> Result<Verdict, ChainError> {
        let hash = block.hash();
        if let Some(n) = self.nodes.get(&hash) {
            return Ok(if n.status.is_invalid() {
                Verdict::Invalid(ConsensusError::KnownInvalid { hash })
            } else {
                Verdict::Duplicate
            });
        }
        if self.orphan_parent.contains_key(&hash) {
            return Ok(Verdict::Duplicate);
        }
        // Cheap proof of work first: nothing that lacks it is held or remembered.
        if let Err(e) = self.check_own_work(&block.header, &hash) {
            return Ok(Verdict::Invalid(e));
        }
        let parent_hash = block.header.prev_hash;
        if self.rejected.contains(&parent_hash) {
            self.remember_rejected(hash);
            return Ok(Verdict::Invalid(ConsensusError::InvalidAncestor {
                ancestor: parent_hash,
            }));
        }
        let Some(parent) = self.nodes.get(&parent_hash) else {
            return Ok(self.hold_orphan(block, source.clone()));
        };
        if parent.status == BlockStatus::Invalid {
            if self.next_target_after(&parent_hash) == Some(block.header.target) {
                self.mark_invalid_header(&block.header)?;
            } else {
                self.remember_rejected(hash);
            }
            return Ok(Verdict::Invalid(ConsensusError::InvalidAncestor {
                ancestor: parent_hash,
            }));
        }
        // Children of an operator-invalidated block are kept (with their body) and follow
        // its fate: `reconsider` makes them candidates again.
        let status = if parent.status == BlockStatus::InvalidatedByUser {
            BlockStatus::InvalidatedByUser
        } else {
            BlockStatus::Unvalidated
        };
        let parent_header = parent.header.clone();
        let parent_work = parent.total_work;
        let expected = self
            .next_target_after(&parent_hash)
            .ok_or(ChainError::UnknownBlock(parent_hash))?;
        let checked = match prechecked {
            // The same block passed on the same parent: its parent is in its header, and a
            // later clock only lets more timestamps pass.
            Prechecked::ForRelay(txids) => Ok(txids),
            Prechecked::No => {
                self.check_without_state(&block, None, &parent_header, expected, now_ms)
            }
        };
        match checked {
            Err(e) if e.is_temporary() => Ok(self.hold_future(block, source.clone())),
            Err(e) => {
                // Remember it (so it is never validated again) only when its header carried
                // real work at the right difficulty; otherwise remembering would cost an
                // attacker nothing.
                if block.header.target == expected && !is_header_rule(&e) {
                    self.mark_invalid_header(&block.header)?;
                } else {
                    self.remember_rejected(hash);
                }
                Ok(Verdict::Invalid(e))
            }
            Ok(txids) => {
                let record = BlockRecord {
                    total_work: parent_work.saturating_add(block.header.target.work()),
                    header: block.header.clone(),
                    status,
                    seq: self.store.next_seq()?,
                };
                self.store.put_block(&block, &record)?;
                self.insert_node(hash, record);
                self.just_stored.keep(hash, StoredBlock { block, txids });
                Ok(Verdict::Accepted { on_main: false })
            }
        }
    }

    /// Rules 1-5 and every signature of `block` on `parent` (the difficulty rule asking
    /// `expected`), at `now_ms`: all a block is checked for before its transactions are
    /// applied. Signatures in the verified set are not checked again; once the block passes,
    /// all of its signatures join the set, so a reorg that connects it again, the same
    /// transactions in another block, or the import after an early relay skip them.
    /// Returns the block's txids: `known_txids` when given (computed by this node's
    /// mempool, one per transaction: `RebuiltBlock`), else computed here.
    pub(super) fn check_without_state(
        &self,
        block: &Block,
        known_txids: Option<Vec<Hash>>,
        parent: &BlockHeader,
        expected: peerchain_ledger::Target,
        now_ms: u64,
    ) -> Result<Vec<Hash>, ConsensusError> {
        let mtp = self.median_time_past(&block.header.prev_hash);
        check_header(&block.header, parent, expected, mtp, now_ms, &self.genesis)?;
        let mut verified = self.mempool.verified_signatures();
        let txids = match known_txids {
            Some(txids) => check_body_txids(block, txids, &self.genesis, &verified)?,
            None => check_body_with(block, &self.genesis, &verified)?,
        };
        txids.iter().for_each(|t| verified.insert(*t));
        Ok(txids)
    }

    /// The header's own proof of work: a target no easier than `pow_limit`, met by `hash`
    /// (the header's hash). Cheap, and needs no parent. It says nothing about whether the
    /// target is the right one, but makes every block a peer sends cost real work before it
    /// is held as an orphan or remembered as invalid.
    pub fn check_own_work(&self, header: &BlockHeader, hash: &Hash) -> Result<(), ConsensusError> {
        if header.target > self.genesis.pow_limit {
            return Err(ConsensusError::BadTarget {
                expected: self.genesis.pow_limit,
                got: header.target,
            });
        }
        if !header.target.is_met_by(hash) {
            return Err(ConsensusError::InsufficientWork {
                hash: *hash,
                target: header.target,
            });
        }
        Ok(())
    }

    fn insert_node(&mut self, hash: Hash, r: BlockRecord) {
        self.leaves.remove(&r.header.prev_hash);
        self.leaves.insert(hash);
        self.children
            .entry(r.header.prev_hash)
            .or_default()
            .push(hash);
        self.nodes.insert(
            hash,
            Node {
                header: r.header,
                total_work: r.total_work,
                status: r.status,
                seq: r.seq,
            },
        );
    }

    /// Remembers an invalid block by its header only (the body is not kept).
    fn mark_invalid_header(&mut self, header: &BlockHeader) -> Result<(), ChainError> {
        let parent_work = self
            .nodes
            .get(&header.prev_hash)
            .map_or(U256::zero(), |n| n.total_work);
        let record = BlockRecord {
            header: header.clone(),
            total_work: parent_work.saturating_add(header.target.work()),
            status: BlockStatus::Invalid,
            seq: self.store.next_seq()?,
        };
        self.store.put_record(&header.hash(), &record)?;
        self.insert_node(header.hash(), record);
        Ok(())
    }

    /// Remembers, in memory and bounded, a block rejected without being recorded, so its
    /// descendants are refused (and their senders penalised) instead of held as orphans.
    fn remember_rejected(&mut self, hash: Hash) {
        const MAX_REJECTED: usize = 10_000;
        if self.rejected.insert(hash) {
            self.rejected_order.push_back(hash);
        }
        while self.rejected_order.len() > MAX_REJECTED {
            if let Some(old) = self.rejected_order.pop_front() {
                self.rejected.remove(&old);
            }
        }
    }

    /// Removes and returns the held orphans whose parent is `parent`.
    fn take_orphans_of(&mut self, parent: &Hash) -> Vec<(Block, Source)> {
        let kids = self.orphans.remove(parent).unwrap_or_default();
        for (child, _) in &kids {
            let h = child.hash();
            self.orphan_parent.remove(&h);
            self.orphan_order.retain(|o| *o != h);
            self.orphan_bytes = self.orphan_bytes.saturating_sub(child.encoded_len());
        }
        kids
    }

    fn hold_orphan(&mut self, block: Block, source: Source) -> Verdict {
        let hash = block.hash();
        let parent = block.header.prev_hash;
        let size = block.encoded_len();
        while self.orphan_parent.len() >= self.config.max_orphans
            || self.orphan_bytes.saturating_add(size) > self.config.max_orphan_bytes
        {
            let Some(old) = self.orphan_order.pop_front() else {
                break;
            };
            let Some(old_parent) = self.orphan_parent.remove(&old) else {
                continue;
            };
            let mut freed: usize = 0;
            let now_empty = self.orphans.get_mut(&old_parent).is_some_and(|list| {
                list.retain(|(b, _)| {
                    let keep = b.hash() != old;
                    if !keep {
                        freed = freed.saturating_add(b.encoded_len());
                    }
                    keep
                });
                list.is_empty()
            });
            self.orphan_bytes = self.orphan_bytes.saturating_sub(freed);
            if now_empty {
                self.orphans.remove(&old_parent);
            }
        }
        self.orphans
            .entry(parent)
            .or_default()
            .push((block, source));
        self.orphan_parent.insert(hash, parent);
        self.orphan_order.push_back(hash);
        self.orphan_bytes = self.orphan_bytes.saturating_add(size);
        Verdict::Orphan {
            missing: self.missing_ancestor(&parent),
        }
    }

    /// The oldest unknown ancestor reachable through held orphans from `parent`.
    pub fn missing_ancestor(&self, parent: &Hash) -> Hash {
        let mut missing = *parent;
        while let Some(p) = self.orphan_parent.get(&missing) {
            missing = *p;
        }
        missing
    }

    /// Holds a block from the future with its sender (so an invalid one still costs its
    /// sender when it is retried); a copy already held is not held twice.
    fn hold_future(&mut self, block: Block, source: Source) -> Verdict {
        let timestamp_ms = block.header.timestamp_ms;
        let hash = block.hash();
        if self.future.iter().any(|(b, _)| b.hash() == hash) {
            return Verdict::Future { timestamp_ms };
        }
        if self.future.len() >= self.config.max_future {
            self.future.remove(0);
        }
        self.future.push((block, source));
        Verdict::Future { timestamp_ms }
    }

    /// Blocks held until their timestamp is acceptable.
    pub fn future_count(&self) -> usize {
        self.future.len()
    }

    /// Retries blocks held for their timestamp whose time has come.
    pub fn retry_future(&mut self, now_ms: u64) -> Result<Vec<Imported>, ChainError> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let limit = now_ms.saturating_add(self.genesis.max_future_ms);
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
            .into_iter()
            .partition(|(b, _)| b.header.timestamp_ms <= limit);
        self.future = wait;
        let mut out = Vec::new();
        for (block, source) in ready {
            out.extend(self.import(block, source, now_ms)?);
        }
        Ok(out)
    }
}
