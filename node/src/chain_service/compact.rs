//! Gossiped compact blocks (docs/NETWORK.md section 3): a block arrives as its header and its
//! txids. When the mempool holds every transaction, the block is rebuilt from it and imported
//! like any gossip block (its signatures are in the verified set: none is checked again).
//! A rebuilt block that `Chain::relayable` passes (known valid parent, header rules, work at
//! least the tip's, body and signatures) is forwarded before the import, as BIP 152's
//! high-bandwidth mode does, so each hop costs the checks and not the state's write; a block
//! relayed so and then found invalid on state alone costs its peer nothing.
//! When it lacks some, the whole block is fetched from the peer that sent it (the network's
//! orphan-ancestor download, `RequestAncestors`), and the gossip verdict waits for that block
//! in [`CompactFetches`]: the message is forwarded once the fetched block is accepted,
//! rejected if it is invalid, and ignored if it does not come within [`FETCH_WAIT`].
//!
//! Before anything is fetched, the header must carry its own proof of work (a target no
//! easier than `pow_limit`, met by its hash); when its parent is known, the target the
//! difficulty rule asks for on a branch at least as heavy as the tip (a lighter one counts
//! against the peer, as a whole block of a lighter branch does); when its parent is unknown,
//! a height above our tip. A fetch so costs the sender a block's proof of work, as a whole
//! block did.
//!
//! It must never: fetch for a header without its proof of work; hold more than
//! `NodeLimits::compact_fetches` waiting messages; read the clock in [`CompactFetches`]
//! (`now` is passed in).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use peerchain_consensus::Verdict;
use peerchain_ledger::Hash;
use peerchain_network::{Acceptance, CompactBlock, MessageRef};

use super::gossip::Arrival;
use super::{ChainService, PeerBlock, clock_ms};
use crate::outbox::NetCommand;
use crate::verdict::block_acceptance;

/// How long a gossip message waits for its fetched block. Gossipsub keeps a message about
/// 10 s (its `history_length`); after that a verdict forwards nothing.
pub(crate) const FETCH_WAIT: Duration = Duration::from_secs(10);

/// Gossip messages of compact blocks whose whole block is being fetched, oldest first.
/// Generic over the message (`MessageRef` in the node) so that tests need no network.
#[derive(Debug)]
pub(crate) struct CompactFetches<M = MessageRef> {
    waiting: VecDeque<(Hash, M, Instant)>,
    max: usize,
}

impl<M> CompactFetches<M> {
    /// At most `max` messages wait at once.
    pub(crate) fn new(max: usize) -> Self {
        CompactFetches {
            waiting: VecDeque::new(),
            max,
        }
    }

    /// Whether the block `hash` is being fetched.
    pub(crate) fn is_waiting(&self, hash: &Hash) -> bool {
        self.waiting.iter().any(|(h, ..)| h == hash)
    }

    /// `msg` waits for the block `hash` from `now` on. Returns the messages that stop
    /// waiting to make room (expired ones, then the oldest at the bound), to be ignored.
    pub(crate) fn wait(&mut self, hash: Hash, msg: M, now: Instant) -> Vec<M> {
        let mut dropped = self.expire(now);
        if self.max == 0 {
            dropped.push(msg);
            return dropped;
        }
        if self.waiting.len() >= self.max
            && let Some((_, oldest, _)) = self.waiting.pop_front()
        {
            dropped.push(oldest);
        }
        self.waiting.push_back((hash, msg, now));
        dropped
    }

    /// The message waiting for the block `hash`, which has now been judged.
    pub(crate) fn take(&mut self, hash: &Hash) -> Option<M> {
        let at = self.waiting.iter().position(|(h, ..)| h == hash)?;
        self.waiting.remove(at).map(|(_, msg, _)| msg)
    }

    /// The messages that waited [`FETCH_WAIT`] or longer at `now`, removed.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<M> {
        let mut out = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|(_, _, since)| now.saturating_duration_since(*since) >= FETCH_WAIT)
        {
            if let Some((_, msg, _)) = self.waiting.pop_front() {
                out.push(msg);
            }
        }
        out
    }

    /// How many messages wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

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
        let mempool = self.chain.mempool();
        match compact.rebuild(|txid| mempool.get(txid).map(|e| e.tx.clone())) {
            Ok(block) => {
                self.links.metrics.compact_block("rebuilt");
                if self.chain.relayable(&block, clock_ms(self.clock_offset_ms)) {
                    // High-bandwidth relay: forwarded now, its state applied next.
                    self.report_block(msg, Acceptance::Accept);
                    self.import_from_peer(block, peer, Arrival::RelayedEarly);
                } else {
                    self.import_from_peer(block, peer, Arrival::Gossip(msg));
                }
            }
            Err(missing) => self.fetch_whole(compact, peer, msg, missing),
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

    fn fetch_whole(
        &mut self,
        compact: &CompactBlock,
        peer: String,
        msg: MessageRef,
        missing: usize,
    ) {
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
        self.links.metrics.compact_block("fetched");
        tracing::debug!(%peer, %hash, missing, "compact block lacks transactions; fetching the whole block");
        for dropped in self.compact_fetches.wait(hash, msg, Instant::now()) {
            self.report_block(dropped, Acceptance::Ignore);
        }
        self.links.outbox.send(NetCommand::RequestAncestors {
            peer,
            missing: hash,
        });
    }

    /// A block downloaded whole was judged: the gossip message of its compact form, if one
    /// waits for it, gets the same verdict (forwarded when accepted). An orphan or a block
    /// from the future is not judged yet: its message waits on (for the import that follows
    /// its ancestors or its time) until [`FETCH_WAIT`].
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> u8 {
        n
    }

    fn hash(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn a_waiting_message_is_taken_once_its_block_is_judged() {
        let mut f = CompactFetches::new(4);
        let t = Instant::now();
        assert!(f.wait(hash(1), msg(1), t).is_empty());
        assert!(f.is_waiting(&hash(1)) && !f.is_waiting(&hash(2)));
        assert_eq!(f.take(&hash(2)), None);
        assert_eq!(f.take(&hash(1)), Some(msg(1)));
        assert_eq!(f.take(&hash(1)), None, "answered once");
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn waiting_messages_expire_and_are_bounded() {
        let mut f = CompactFetches::new(2);
        let t = Instant::now();
        assert!(f.wait(hash(1), msg(1), t).is_empty());
        assert!(
            f.wait(hash(2), msg(2), t + Duration::from_secs(1))
                .is_empty()
        );
        // At the bound the oldest stops waiting.
        assert_eq!(
            f.wait(hash(3), msg(3), t + Duration::from_secs(2)),
            vec![msg(1)]
        );
        assert_eq!(f.len(), 2);
        assert!(f.expire(t + FETCH_WAIT).is_empty(), "hash 2 waited 9 s");
        assert_eq!(
            f.expire(t + FETCH_WAIT + Duration::from_secs(2)),
            vec![msg(2), msg(3)]
        );
        assert_eq!(f.len(), 0);
        // A bound of 0 keeps nothing waiting.
        let mut none = CompactFetches::new(0);
        assert_eq!(none.wait(hash(1), msg(1), t), vec![msg(1)]);
        assert!(!none.is_waiting(&hash(1)));
    }
}
