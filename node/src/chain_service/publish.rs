//! After each step: chain events become API events, metrics, a network tip announcement and
//! a miner template; and a fresh [`NodeSnapshot`] is published for the readers.

use std::sync::Arc;
use std::time::Instant;

use peerchain_consensus::{ChainEvent, ChainTip, TipStatus};
use peerchain_ledger::Block;
use peerchain_network::LocalTip;
use peerchain_rpc::node_api::{NodeEvent, NodeSnapshot, TipInfo};

use super::{ChainService, clock_ms};
use crate::adversary::Adversary;
use crate::outbox::NetCommand;

/// The API's view of a branch tip.
pub(crate) fn tip_info(t: ChainTip) -> TipInfo {
    TipInfo {
        hash: t.hash,
        height: t.height,
        total_work: t.total_work,
        branch_length: t.branch_length,
        status: match t.status {
            TipStatus::Active => "active",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::Invalid => "invalid",
        },
    }
}

impl ChainService {
    /// The local tip as the network announces it (a selfish adversary announces the last
    /// block it released instead).
    pub(crate) fn local_tip(&self) -> LocalTip {
        if let Some(tip) = self.adversary.as_ref().and_then(Adversary::announced_tip) {
            return tip;
        }
        LocalTip {
            hash: self.chain.tip(),
            height: self.chain.tip_header().height,
            total_work: self.chain.tip_work(),
        }
    }

    /// Gossips blocks mined here (in order) and announces the local tip again.
    pub(super) fn publish_blocks(&mut self, blocks: Vec<Block>) {
        if blocks.is_empty() {
            return;
        }
        for block in blocks {
            self.links
                .outbox
                .send(NetCommand::PublishBlock(Box::new(block)));
        }
        self.links.outbox.set_local_tip(self.local_tip());
    }

    /// Turns chain events into API events, metrics, network tip updates and miner jobs.
    pub(super) fn publish_events(&mut self) {
        let events = self.chain.take_events();
        if events.is_empty() {
            return;
        }
        let mut tip_changed = false;
        let mut returned = Vec::new();
        for e in events {
            match e {
                ChainEvent::BlockConnected {
                    hash,
                    height,
                    contents,
                } => {
                    tip_changed = true;
                    self.clocks.last_block_connected = Instant::now();
                    self.links.metrics.block_imported();
                    self.links.metrics.set_chain(height);
                    let _ = self.links.events.send(NodeEvent::Block {
                        hash,
                        height,
                        tx_count: contents.tx_count,
                        fees: contents.fees,
                    });
                }
                ChainEvent::SideBlockStored { hash, height } => {
                    let _ = self
                        .links
                        .events
                        .send(NodeEvent::SideBlock { hash, height });
                }
                ChainEvent::Reorg {
                    fork_height,
                    old_tip,
                    new_tip,
                    disconnected,
                    connected,
                } => {
                    tip_changed = true;
                    self.links.metrics.reorg(disconnected.len() as u64);
                    tracing::info!(fork_height, %old_tip, %new_tip, depth = disconnected.len(), "reorg");
                    let _ = self.links.events.send(NodeEvent::Reorg {
                        fork_height,
                        old_tip,
                        new_tip,
                        disconnected,
                        connected,
                    });
                }
                ChainEvent::TxAdmitted(txid) => {
                    // The mempool's time, so the time shown never changes when it confirms.
                    let seen = self
                        .chain
                        .mempool()
                        .get(&txid)
                        .map_or_else(|| clock_ms(self.clock_offset_ms), |e| e.first_seen_ms);
                    self.first_seen.record(txid, seen);
                    self.template.admitted(txid);
                    let _ = self.links.events.send(NodeEvent::Tx { txid });
                }
                ChainEvent::TxReturned(txid) => {
                    let _ = self.links.events.send(NodeEvent::Tx { txid });
                    if let Some(e) = self.chain.mempool().get(&txid) {
                        returned.push(e.tx.clone());
                    }
                }
            }
        }
        if !returned.is_empty() {
            self.links.outbox.send(NetCommand::PublishTxs(returned));
        }
        let m = self.chain.mempool();
        self.links.metrics.set_mempool(m.len(), m.bytes());
        if tip_changed {
            self.tips_dirty = true;
            self.links.outbox.set_local_tip(self.local_tip());
            self.refresh_template(true);
        }
    }

    /// Publishes what readers see: O(1) for the mempool (a persistent collection) and the
    /// first-seen map (shared); the tips are recomputed only when the block tree changed.
    pub(super) fn publish_snapshot(&mut self) {
        if self.tips_dirty {
            self.tips = Arc::new(self.chain.tips().into_iter().map(tip_info).collect());
            self.tips_dirty = false;
        }
        let snapshot = NodeSnapshot {
            mempool: self.chain.mempool().clone(),
            first_seen: self.first_seen.clone(),
            tips: self.tips.clone(),
            mining: self.mining,
            queued: self.gap.queued(),
        };
        let replaced = self.links.snapshot.send_replace(Arc::new(snapshot));
        // After a block it may hold the last reference to the whole old pool.
        self.reclaim.free(replaced);
        self.links
            .metrics
            .set_gap(self.gap.len(), self.waiting.len());
    }
}
