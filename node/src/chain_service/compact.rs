//! Gossiped compact blocks (docs/NETWORK.md section 3): a block arrives as its header and its
//! txids. When the mempool holds every transaction, the block is rebuilt from it and imported
//! like any gossip block (its signatures are in the verified set: none is checked again).
//! A rebuilt block that `Chain::relayable` passes (it extends the tip; header rules, body and
//! signatures hold) is forwarded before the import, as BIP 152's
//! high-bandwidth mode does, so each hop costs the checks and not the state's write; a block
//! relayed so and then found invalid on state alone costs its peer nothing.
//!
//! When the mempool lacks some transactions, the node asks the peer that sent the block for
//! those alone (`GetBlockTxs`, BIP 152's `getblocktxn`; at most
//! `peerchain_network::MAX_TXS_PER_REQUEST`), and for the whole block (the orphan-ancestor
//! download, `RequestAncestors`) when it lacks more, when the block's parent is unknown, or
//! when that answer does not complete the block. The gossip verdict waits in `CompactFetches`: the message is forwarded once
//! the completed or fetched block is accepted, rejected if it is invalid, and ignored if it
//! does not come within `FETCH_WAIT` (10 s).
//!
//! Before anything is fetched, the header must carry its own proof of work (a target no
//! easier than `pow_limit`, met by its hash); when its parent is known, the target the
//! difficulty rule asks for on a branch at least as heavy as the tip (a lighter one counts
//! against the peer, as a whole block of a lighter branch does); when its parent is unknown,
//! a height above our tip. A fetch so costs the sender a block's proof of work, as a whole
//! block did.
//!
//! It must never: fetch for a header without its proof of work; hold more than
//! `NodeLimits::compact_fetches` waiting messages.

use std::time::Instant;

use peerchain_consensus::Verdict;
use peerchain_ledger::{Hash, Transaction};
use peerchain_network::{Acceptance, CompactBlock, MAX_TXS_PER_REQUEST, MessageRef};

use super::compact_fetches::Asked;
use super::gossip::Arrival;
use super::{ChainService, PeerBlock, clock_ms};
use crate::outbox::NetCommand;
use crate::verdict::block_acceptance;

/// What to do with a compact block whose transactions are not all held.
#[derive(Debug, PartialEq, Eq)]
enum Precheck {
    /// Fetch the whole block.
    Fetch,
    /// Invalid header: reject the message.
    Reject(String),
    /// Cannot add work: ignore the message (and count it against the peer, as a whole
    /// block of a lighter branch is).
    Lighter,
    /// An orphan at or below the tip's height: most likely a cheap side branch, not fetched
    /// (sync still finds any heavier chain from the peers' announced work).
    LowOrphan,
}

impl ChainService {
    /// A block from the network's block lane.
    pub(super) fn peer_block(&mut self, b: PeerBlock) {
        match b {
            PeerBlock::Full {
                block,
                peer,
                origin,
            } => self.import_from_peer(block, peer, origin.into()),
            PeerBlock::Compact { block, peer, msg } => self.compact_from_peer(&block, peer, msg),
            PeerBlock::MissingTxs { block, peer, txs } => {
                self.block_txs_from_peer(block, peer, txs)
            }
        }
    }

    fn compact_from_peer(&mut self, compact: &CompactBlock, peer: String, msg: MessageRef) {
        let hash = compact.hash();
        if let Some((_, _, status)) = self.chain.block_info(&hash) {
            let verdict = if status.is_invalid() {
                Acceptance::Reject
            } else {
                Acceptance::Ignore
            };
            self.report_block(msg, verdict);
            return;
        }
        if self.disk_full().is_some()
            || self.chain.knows(&hash)
            || self.compact_fetches.is_waiting(&hash)
        {
            // Nothing is judged while the disk is full; a held orphan or a block being
            // fetched gets its verdict once, from that path.
            self.report_block(msg, Acceptance::Ignore);
            return;
        }
        let rebuilt = self
            .chain
            .mempool()
            .rebuild(compact.header.clone(), &compact.txids);
        match rebuilt {
            Ok(rebuilt) => {
                self.links.metrics.compact_block("rebuilt");
                match self
                    .chain
                    .prepare_relay_rebuilt(rebuilt, clock_ms(self.clock_offset_ms))
                {
                    Ok(checked) => {
                        // High-bandwidth relay: forwarded now, its state applied next.
                        self.report_block(msg, Acceptance::Accept);
                        self.import_relayed_early(checked, peer);
                    }
                    Err(block) => self.import_from_peer(block, peer, Arrival::Gossip(msg)),
                }
            }
            Err(_) => self.fetch_missing(compact, peer, msg),
        }
    }

    /// The header checks a fetch needs (see the module docs).
    fn precheck(&self, compact: &CompactBlock) -> Precheck {
        let header = &compact.header;
        if let Err(e) = self.chain.check_own_work(header, &compact.hash()) {
            return Precheck::Reject(e.to_string());
        }
        let Some(work) = self.chain.work_with(header) else {
            // An orphan: fetched (with its ancestors, bounded by the network's ancestor
            // budget per peer) only above our tip, as a whole gossip block's ancestors are.
            if header.height > self.chain.tip_header().height {
                return Precheck::Fetch;
            }
            return Precheck::LowOrphan;
        };
        if self.chain.next_target_after(&header.prev_hash) != Some(header.target) {
            return Precheck::Reject("the header's target is not the difficulty rule's".into());
        }
        if work < self.chain.tip_work() {
            return Precheck::Lighter;
        }
        Precheck::Fetch
    }

    /// A compact block whose transactions are not all held: once its header passes the
    /// checks, its sender is asked for the missing ones (for the whole block when more are
    /// missing than one request carries, or when its parent is unknown), and its message
    /// waits for the block.
    fn fetch_missing(&mut self, compact: &CompactBlock, peer: String, msg: MessageRef) {
        let hash = compact.hash();
        match self.precheck(compact) {
            Precheck::Fetch => {}
            Precheck::Reject(why) => {
                tracing::debug!(%peer, %hash, why, "compact block rejected");
                self.report_block(msg, Acceptance::Reject);
                return;
            }
            Precheck::Lighter => {
                self.count_lighter(&peer);
                self.report_block(msg, Acceptance::Ignore);
                return;
            }
            Precheck::LowOrphan => {
                self.report_block(msg, Acceptance::Ignore);
                return;
            }
        }
        let mempool = self.chain.mempool();
        let missing = Asked::missing_of(compact, |txid| mempool.contains(txid));
        tracing::debug!(%peer, %hash, missing = missing.len(), "compact block lacks transactions; fetching them");
        // An orphan's header carries no more than its own proof of work (at `pow_limit`, a
        // few hashes): it takes the ancestor download, bounded per peer, whose blocks wait
        // unchecked, rather than transactions whose signatures would be checked at once.
        let orphan = self.chain.work_with(&compact.header).is_none();
        let asked = (!orphan && missing.len() <= MAX_TXS_PER_REQUEST).then(|| Asked {
            compact: compact.clone(),
            missing,
        });
        let indexes = asked.as_ref().map(|a| a.missing.clone());
        for dropped in self.compact_fetches.wait(hash, msg, Instant::now(), asked) {
            self.report_block(dropped, Acceptance::Ignore);
        }
        match indexes {
            Some(indexes) => {
                self.links.metrics.compact_block("fetched");
                self.links.outbox.send(NetCommand::RequestBlockTxs {
                    peer,
                    block: hash,
                    indexes,
                });
            }
            None => self.fetch_whole(peer, hash),
        }
    }

    /// Asks `peer` for the whole block `hash` (the ancestor download), a compact block's
    /// message waiting for it.
    fn fetch_whole(&mut self, peer: String, hash: Hash) {
        self.links.metrics.compact_block("fetched_whole");
        self.links.outbox.send(NetCommand::RequestAncestors {
            peer,
            missing: hash,
        });
    }

    /// The answer of `peer` to the missing transactions of the compact block `hash`: the
    /// block is completed and imported (its message gets the verdict), or fetched whole when
    /// the answer does not complete it (a wrong one also costs the peer a penalty). The
    /// fetched transactions' signatures are checked by the import (on all cores), once
    /// their txids are known to be the block's.
    fn block_txs_from_peer(&mut self, hash: Hash, peer: String, txs: Option<Vec<Transaction>>) {
        let Some(asked) = self.compact_fetches.take_asked(&hash) else {
            return; // its message expired, or the block came another way
        };
        let Some(txs) = txs else {
            return self.fetch_whole(peer, hash);
        };
        let mempool = self.chain.mempool();
        match asked.complete(txs, |txid| mempool.get(txid).map(|e| e.tx.clone())) {
            Ok(block) => self.import_from_peer(block, peer, Arrival::Sync),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "block transactions do not complete the block");
                if e.is_peers_fault() {
                    self.links.outbox.send(NetCommand::Penalize {
                        peer: peer.clone(),
                        reason: e.to_string(),
                    });
                }
                self.fetch_whole(peer, hash);
            }
        }
    }

    /// A block fetched (completed, or downloaded whole) was judged: the gossip message of its
    /// compact form, if one waits for it, gets the same verdict (forwarded when accepted). An orphan or a block
    /// from the future is not judged yet: its message waits on (for the import that follows
    /// its ancestors or its time) until `FETCH_WAIT`.
    /// Returns whether a message waited for it. A block that fails on state alone is
    /// ignored, not rejected: the peer may have relayed it early, as this node would.
    pub(super) fn answer_compact_fetch(&mut self, hash: &Hash, verdict: &Verdict) -> bool {
        if matches!(verdict, Verdict::Orphan { .. } | Verdict::Future { .. }) {
            return self.compact_fetches.is_waiting(hash);
        }
        let Some(msg) = self.compact_fetches.take(hash) else {
            return false;
        };
        let acceptance = match verdict {
            Verdict::Invalid(e) if e.needs_state() => Acceptance::Ignore,
            _ => block_acceptance(verdict),
        };
        self.report_block(msg, acceptance);
        true
    }

    /// Compact blocks whose whole block did not come in time: ignored.
    pub(super) fn expire_compact_fetches(&mut self) {
        for msg in self.compact_fetches.expire(Instant::now()) {
            self.report_block(msg, Acceptance::Ignore);
        }
    }
}
