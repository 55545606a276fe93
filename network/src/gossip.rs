//! The gossip inbox and the event queue: [`GossipInbox`].
//!
//! It owns: the dispatch of received gossip messages by topic (transaction batches decoded
//! here, compact blocks handed out for decoding on the blocking pool, anything else
//! rejected), the count of blocks being decoded, the events waiting for room in the event
//! channel, and the transaction batches kept for republishing while no peer is subscribed to
//! the transaction topic.
//!
//! Events wait in three lanes, delivered in priority order: control events (peer connected or
//! disconnected, syncing, listening), gossip blocks, then gossip transactions. Each lane has
//! its own bound, so a flood of transactions can neither delay a block behind it nor make
//! room for blocks run out (hostile peers, defect 6).
//!
//! It must never: judge consensus validity (only decoding; verdicts come from the node);
//! decode a block on the service task; call into the swarm (it returns what to report or
//! decode, and publishing goes through a function the service passes in); or hold more than
//! [`MAX_DECODING`] blocks being decoded, [`MAX_QUEUED_BLOCKS`] gossip blocks,
//! [`MAX_QUEUED_TXS`] gossip transactions, [`MAX_QUEUED_CONTROL`] control events or
//! [`MAX_PENDING_TXS`] transactions to republish (all transactions counted one by one).

use std::collections::VecDeque;

use libp2p::PeerId;
use libp2p::gossipsub::{MessageAcceptance, MessageId, PublishError, TopicHash};

use crate::codec::{decode_tx_batch, tx_batch_len};
use crate::config::{
    MAX_DECODING, MAX_PENDING_TXS, MAX_QUEUED_BLOCKS, MAX_QUEUED_CONTROL, MAX_QUEUED_TXS,
};
use crate::types::{Acceptance, CompactBlock, MessageRef, NetworkEvent};

/// What the service does with a received gossip message.
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// Decode these compact block bytes on the blocking pool, then call
    /// [`GossipInbox::block_decoded`] (a decoding slot is taken until then).
    DecodeBlock(MessageRef, Vec<u8>),
    /// Queued for the node, which reports the verdict.
    Queued,
    /// Not for the node: report this verdict now.
    Report(MessageRef, MessageAcceptance),
}

/// The outcome of one publish call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Published {
    /// Sent, or already in the duplicate cache.
    Sent,
    /// No peer is subscribed to the topic yet (nothing was cached: retrying is safe).
    NoPeers,
    /// Another failure, with its message.
    Failed(String),
}

impl Published {
    /// Classifies gossipsub's answer to `publish`.
    pub(crate) fn of<T>(result: Result<T, PublishError>) -> Self {
        match result {
            Ok(_) | Err(PublishError::Duplicate) => Published::Sent,
            Err(PublishError::NoPeersSubscribedToTopic) => Published::NoPeers,
            Err(e) => Published::Failed(e.to_string()),
        }
    }
}

/// The gossipsub verdict of the node's [`Acceptance`].
pub(crate) fn to_gossipsub(acceptance: Acceptance) -> MessageAcceptance {
    match acceptance {
        Acceptance::Accept => MessageAcceptance::Accept,
        Acceptance::Reject => MessageAcceptance::Reject,
        Acceptance::Ignore => MessageAcceptance::Ignore,
    }
}

/// Logs the outcome of publishing a block. With no subscriber the block is not kept: peers
/// get it by sync.
pub(crate) fn log_block_publish(published: Published) {
    match published {
        Published::Sent => {}
        Published::NoPeers => {
            tracing::debug!("no peer subscribed to blocks yet; peers will sync the block");
        }
        Published::Failed(e) => tracing::warn!(error = %e, "block publish failed"),
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct GossipInbox {
    blocks_topic: TopicHash,
    txs_topic: TopicHash,
    /// Control events waiting for room in the event channel, in order.
    control: VecDeque<NetworkEvent>,
    /// Gossip blocks waiting, in order.
    blocks: VecDeque<NetworkEvent>,
    /// Gossip transaction batches waiting, in order.
    txs: VecDeque<NetworkEvent>,
    /// Transactions in `txs`.
    queued_txs: usize,
    decoding: usize,
    /// The event channel is closed: nothing is queued any more.
    closed: bool,
    /// Encoded transaction batches waiting for a subscriber, oldest first.
    pending_txs: VecDeque<Vec<u8>>,
    /// Transactions in `pending_txs`.
    pending_count: usize,
}

impl GossipInbox {
    /// An inbox for the block and transaction topics of one network.
    pub(crate) fn new(blocks_topic: TopicHash, txs_topic: TopicHash) -> Self {
        GossipInbox {
            blocks_topic,
            txs_topic,
            control: VecDeque::new(),
            blocks: VecDeque::new(),
            txs: VecDeque::new(),
            queued_txs: 0,
            decoding: 0,
            closed: false,
            pending_txs: VecDeque::new(),
            pending_count: 0,
        }
    }

    // ----- received messages ----------------------------------------------------------

    /// A gossip message `id` on `topic`, propagated by `source`.
    pub(crate) fn on_message(
        &mut self,
        source: PeerId,
        id: MessageId,
        topic: &TopicHash,
        data: Vec<u8>,
    ) -> Dispatch {
        let msg = MessageRef { id, source };
        if *topic == self.blocks_topic {
            if self.decoding >= MAX_DECODING
                || self.decoding + self.blocks.len() >= MAX_QUEUED_BLOCKS
            {
                tracing::debug!(
                    ?msg,
                    decoding = self.decoding,
                    "gossip block ignored: overloaded"
                );
                return Dispatch::Report(msg, MessageAcceptance::Ignore);
            }
            self.decoding += 1;
            Dispatch::DecodeBlock(msg, data)
        } else if *topic == self.txs_topic {
            self.on_tx_batch(source, msg, &data)
        } else {
            Dispatch::Report(msg, MessageAcceptance::Reject)
        }
    }

    /// A message of the transaction topic: queued whole when it decodes and fits in the lane.
    fn on_tx_batch(&mut self, source: PeerId, msg: MessageRef, data: &[u8]) -> Dispatch {
        let txs = match decode_tx_batch(data) {
            Ok(txs) => txs,
            Err(e) => {
                tracing::debug!(peer = %source, error = %e, "undecodable transaction batch rejected");
                return Dispatch::Report(msg, MessageAcceptance::Reject);
            }
        };
        let n = txs.len();
        if self.closed || self.queued_txs.saturating_add(n) > MAX_QUEUED_TXS {
            tracing::debug!(
                ?msg,
                bound = MAX_QUEUED_TXS,
                "transaction lane full; batch ignored"
            );
            return Dispatch::Report(msg, MessageAcceptance::Ignore);
        }
        self.queued_txs += n;
        self.txs.push_back(NetworkEvent::Txs {
            txs,
            peer: source.to_string(),
            msg,
        });
        Dispatch::Queued
    }

    /// The result of decoding a gossip (compact) block handed out by
    /// [`GossipInbox::on_message`].
    pub(crate) fn block_decoded(
        &mut self,
        msg: MessageRef,
        result: Result<CompactBlock, String>,
    ) -> Dispatch {
        self.decoding = self.decoding.saturating_sub(1);
        match result {
            Ok(block) => {
                let event = NetworkEvent::CompactBlock {
                    block,
                    peer: msg.source.to_string(),
                    msg: msg.clone(),
                };
                Self::push_gossip(&mut self.blocks, MAX_QUEUED_BLOCKS, self.closed, event, msg)
            }
            Err(e) => {
                tracing::debug!(peer = %msg.source, error = %e, "undecodable block rejected");
                Dispatch::Report(msg, MessageAcceptance::Reject)
            }
        }
    }

    /// Queues a gossip event in `lane`, or ignores its message when `bound` are waiting.
    fn push_gossip(
        lane: &mut VecDeque<NetworkEvent>,
        bound: usize,
        closed: bool,
        event: NetworkEvent,
        msg: MessageRef,
    ) -> Dispatch {
        if closed || lane.len() >= bound {
            tracing::debug!(?msg, bound, "gossip lane full; message ignored");
            return Dispatch::Report(msg, MessageAcceptance::Ignore);
        }
        lane.push_back(event);
        Dispatch::Queued
    }

    // ----- the event queue ------------------------------------------------------------

    /// Queues a control event (connected, disconnected, syncing, listening).
    pub(crate) fn push_control(&mut self, event: NetworkEvent) {
        if self.closed {
            return;
        }
        if self.control.len() >= MAX_QUEUED_CONTROL {
            tracing::warn!(
                ?event,
                bound = MAX_QUEUED_CONTROL,
                "control event queue full; event dropped"
            );
            return;
        }
        self.control.push_back(event);
    }

    /// The next control event or gossip block to deliver, control first.
    pub(crate) fn pop_priority(&mut self) -> Option<NetworkEvent> {
        self.control.pop_front().or_else(|| self.blocks.pop_front())
    }

    /// The next gossip transaction batch to deliver.
    pub(crate) fn pop_tx(&mut self) -> Option<NetworkEvent> {
        let event = self.txs.pop_front()?;
        if let NetworkEvent::Txs { txs, .. } = &event {
            self.queued_txs = self.queued_txs.saturating_sub(txs.len());
        }
        Some(event)
    }

    /// Whether control events or gossip blocks wait for delivery.
    pub(crate) fn has_priority(&self) -> bool {
        !self.control.is_empty() || !self.blocks.is_empty()
    }

    /// Whether gossip transactions wait for delivery.
    pub(crate) fn has_txs(&self) -> bool {
        !self.txs.is_empty()
    }

    /// Whether `topic` is the transaction topic.
    pub(crate) fn is_tx_topic(&self, topic: &TopicHash) -> bool {
        *topic == self.txs_topic
    }

    /// The event channel closed: drop the queue and queue nothing more.
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.control.clear();
        self.blocks.clear();
        self.txs.clear();
        self.queued_txs = 0;
    }

    /// Whether the event channel closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    // ----- republishing ---------------------------------------------------------------

    /// Publishes a transaction batch with `publish`; with no subscriber yet it is kept (the
    /// oldest batches are dropped beyond [`MAX_PENDING_TXS`] transactions) until
    /// [`GossipInbox::flush_pending_txs`].
    pub(crate) fn publish_txs(
        &mut self,
        bytes: Vec<u8>,
        publish: impl FnOnce(Vec<u8>) -> Published,
    ) {
        match publish(bytes.clone()) {
            Published::Sent => {}
            Published::NoPeers => {
                self.keep_pending(bytes);
                tracing::debug!(
                    pending = self.pending_count,
                    "no peer subscribed to transactions yet; kept for rebroadcast"
                );
            }
            Published::Failed(e) => tracing::warn!(error = %e, "transaction publish failed"),
        }
    }

    fn keep_pending(&mut self, bytes: Vec<u8>) {
        self.pending_count = self.pending_count.saturating_add(tx_batch_len(bytes.len()));
        self.pending_txs.push_back(bytes);
        while self.pending_count > MAX_PENDING_TXS {
            let Some(old) = self.pending_txs.pop_front() else {
                break;
            };
            self.pending_count = self.pending_count.saturating_sub(tx_batch_len(old.len()));
        }
    }

    /// Whether a subscription to `topic` should trigger [`GossipInbox::flush_pending_txs`].
    pub(crate) fn wants_flush(&self, topic: &TopicHash) -> bool {
        *topic == self.txs_topic && !self.pending_txs.is_empty()
    }

    /// Republishes the kept transactions in order, stopping (and keeping the rest) as soon
    /// as there is again no subscriber.
    pub(crate) fn flush_pending_txs(&mut self, mut publish: impl FnMut(Vec<u8>) -> Published) {
        while let Some(bytes) = self.pending_txs.pop_front() {
            let n = tx_batch_len(bytes.len());
            self.pending_count = self.pending_count.saturating_sub(n);
            match publish(bytes.clone()) {
                Published::Sent => {}
                Published::NoPeers => {
                    self.pending_count = self.pending_count.saturating_add(n);
                    self.pending_txs.push_front(bytes);
                    return;
                }
                Published::Failed(e) => {
                    tracing::warn!(error = %e, "transaction rebroadcast failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::peer;
    use peerchain_ledger::types::TX_ENCODED_LEN;
    use peerchain_ledger::{Address, BlockHeader, Hash, Target, Transaction, U256};

    fn inbox() -> GossipInbox {
        GossipInbox::new(TopicHash::from_raw("blocks"), TopicHash::from_raw("txs"))
    }

    fn id(n: u32) -> MessageId {
        MessageId::new(&n.to_le_bytes())
    }

    fn tx_bytes() -> Vec<u8> {
        vec![0u8; TX_ENCODED_LEN]
    }

    fn block() -> CompactBlock {
        CompactBlock {
            header: BlockHeader {
                version: 1,
                height: 7,
                prev_hash: Hash([1; 32]),
                tx_root: Hash([0; 32]),
                timestamp_ms: 1,
                target: Target(U256::MAX),
                nonce: 0,
                miner: Address([0; 20]),
            },
            txids: Vec::new(),
        }
    }

    #[test]
    fn messages_are_dispatched_by_topic() {
        let mut g = inbox();
        assert!(Transaction::decode(&tx_bytes()).is_ok(), "test tx decodes");
        let d = g.on_message(peer(1), id(1), &TopicHash::from_raw("txs"), tx_bytes());
        assert!(matches!(d, Dispatch::Queued), "{d:?}");
        let d = g.on_message(peer(1), id(2), &TopicHash::from_raw("txs"), vec![1, 2, 3]);
        assert!(
            matches!(d, Dispatch::Report(ref m, MessageAcceptance::Reject) if m.id == id(2)),
            "{d:?}"
        );
        let d = g.on_message(peer(1), id(3), &TopicHash::from_raw("blocks"), vec![9; 10]);
        assert!(
            matches!(d, Dispatch::DecodeBlock(ref m, ref data) if m.source == peer(1) && *data == vec![9; 10]),
            "{d:?}"
        );
        let d = g.on_message(peer(1), id(4), &TopicHash::from_raw("other"), vec![]);
        assert!(
            matches!(d, Dispatch::Report(_, MessageAcceptance::Reject)),
            "{d:?}"
        );
        match g.pop_tx() {
            Some(NetworkEvent::Txs { peer: p, msg, .. }) => {
                assert_eq!(p, peer(1).to_string());
                assert_eq!(msg.id, id(1));
            }
            other => panic!("expected the transaction, got {other:?}"),
        }
        assert!(g.pop_tx().is_none() && g.pop_priority().is_none());
    }

    #[test]
    fn decoded_blocks_are_queued_and_bad_ones_rejected() {
        let mut g = inbox();
        let Dispatch::DecodeBlock(msg, _) =
            g.on_message(peer(2), id(1), &TopicHash::from_raw("blocks"), vec![])
        else {
            panic!("expected a decode");
        };
        assert_eq!(g.decoding, 1);
        assert!(matches!(
            g.block_decoded(msg, Ok(block())),
            Dispatch::Queued
        ));
        assert_eq!(g.decoding, 0);
        let Dispatch::DecodeBlock(msg, _) =
            g.on_message(peer(2), id(2), &TopicHash::from_raw("blocks"), vec![])
        else {
            panic!("expected a decode");
        };
        assert!(matches!(
            g.block_decoded(msg, Err("bad merkle root".to_owned())),
            Dispatch::Report(_, MessageAcceptance::Reject)
        ));
        match g.pop_priority() {
            Some(NetworkEvent::CompactBlock {
                block: b, msg: m, ..
            }) => {
                assert_eq!(b.header.height, 7);
                assert_eq!(m.id, id(1));
            }
            other => panic!("expected the block, got {other:?}"),
        }
    }

    #[test]
    fn decoding_slots_are_bounded() {
        let mut g = inbox();
        let blocks = TopicHash::from_raw("blocks");
        let mut slots = Vec::new();
        for n in 0..MAX_DECODING as u32 {
            match g.on_message(peer(1), id(n), &blocks, vec![]) {
                Dispatch::DecodeBlock(m, _) => slots.push(m),
                other => panic!("slot {n}: {other:?}"),
            }
        }
        assert!(matches!(
            g.on_message(peer(1), id(9999), &blocks, vec![]),
            Dispatch::Report(_, MessageAcceptance::Ignore)
        ));
        let first = slots.remove(0);
        g.block_decoded(first, Err("x".to_owned()));
        assert!(matches!(
            g.on_message(peer(1), id(10_000), &blocks, vec![]),
            Dispatch::DecodeBlock(..)
        ));
    }

    /// Hostile peers, defect 6: blocks and transactions shared one queue, so a full queue of
    /// transactions refused new block decodes and a block waited behind every transaction.
    #[test]
    fn a_transaction_flood_neither_delays_nor_crowds_out_blocks() {
        let mut g = inbox();
        let txs = TopicHash::from_raw("txs");
        for n in 0..MAX_QUEUED_TXS as u32 {
            assert!(matches!(
                g.on_message(peer(1), id(n), &txs, tx_bytes()),
                Dispatch::Queued
            ));
        }
        assert!(matches!(
            g.on_message(peer(1), id(u32::MAX), &txs, tx_bytes()),
            Dispatch::Report(_, MessageAcceptance::Ignore)
        ));
        // A full transaction lane still takes blocks...
        let Dispatch::DecodeBlock(msg, _) = g.on_message(
            peer(2),
            id(u32::MAX - 1),
            &TopicHash::from_raw("blocks"),
            vec![],
        ) else {
            panic!("a block is decoded whatever the transaction lane holds");
        };
        assert!(matches!(
            g.block_decoded(msg, Ok(block())),
            Dispatch::Queued
        ));
        g.push_control(NetworkEvent::Syncing(true));
        // ...and control events, then the block, go out before any queued transaction.
        assert!(g.has_priority() && g.has_txs());
        assert!(matches!(
            g.pop_priority(),
            Some(NetworkEvent::Syncing(true))
        ));
        assert!(matches!(
            g.pop_priority(),
            Some(NetworkEvent::CompactBlock { .. })
        ));
        assert!(g.pop_priority().is_none());
        let mut n = 0;
        while let Some(e) = g.pop_tx() {
            assert!(matches!(e, NetworkEvent::Txs { ref txs, .. } if txs.len() == 1));
            n += 1;
        }
        assert_eq!(n, MAX_QUEUED_TXS);
        assert!(matches!(
            g.on_message(peer(1), id(1), &txs, tx_bytes()),
            Dispatch::Queued
        ));
    }

    #[test]
    fn the_transaction_lane_counts_transactions_not_messages() {
        let mut g = inbox();
        let topic = TopicHash::from_raw("txs");
        let batch = tx_bytes().repeat(crate::config::MAX_TX_BATCH);
        let fit = MAX_QUEUED_TXS / crate::config::MAX_TX_BATCH;
        for n in 0..fit as u32 {
            assert!(matches!(
                g.on_message(peer(1), id(n), &topic, batch.clone()),
                Dispatch::Queued
            ));
        }
        assert!(matches!(
            g.on_message(peer(1), id(9999), &topic, tx_bytes()),
            Dispatch::Report(_, MessageAcceptance::Ignore)
        ));
        match g.pop_tx() {
            Some(NetworkEvent::Txs { txs, .. }) => {
                assert_eq!(txs.len(), crate::config::MAX_TX_BATCH);
            }
            other => panic!("expected a batch, got {other:?}"),
        }
        // Room for one batch again, not for two.
        assert!(matches!(
            g.on_message(peer(1), id(10_000), &topic, batch.clone()),
            Dispatch::Queued
        ));
        assert!(matches!(
            g.on_message(peer(1), id(10_001), &topic, tx_bytes()),
            Dispatch::Report(_, MessageAcceptance::Ignore)
        ));
    }

    #[test]
    fn the_block_lane_is_bounded_with_blocks_being_decoded() {
        let mut g = inbox();
        let blocks = TopicHash::from_raw("blocks");
        let mut queued = 0;
        let mut n = 0;
        while queued < MAX_QUEUED_BLOCKS {
            n += 1;
            match g.on_message(peer(1), id(n), &blocks, vec![]) {
                Dispatch::DecodeBlock(m, _) => {
                    assert!(matches!(g.block_decoded(m, Ok(block())), Dispatch::Queued));
                    queued += 1;
                }
                other => panic!("block {n}: {other:?}"),
            }
        }
        assert!(matches!(
            g.on_message(peer(1), id(n + 1), &blocks, vec![]),
            Dispatch::Report(_, MessageAcceptance::Ignore)
        ));
        assert!(g.pop_priority().is_some());
        assert!(matches!(
            g.on_message(peer(1), id(n + 2), &blocks, vec![]),
            Dispatch::DecodeBlock(..)
        ));
    }

    #[test]
    fn control_events_are_bounded() {
        let mut g = inbox();
        for _ in 0..MAX_QUEUED_CONTROL + 10 {
            g.push_control(NetworkEvent::Syncing(false));
        }
        assert_eq!(g.control.len(), MAX_QUEUED_CONTROL);
        g.pop_priority();
        g.push_control(NetworkEvent::Syncing(true));
        assert_eq!(g.control.len(), MAX_QUEUED_CONTROL);
        assert!(matches!(
            g.control.back(),
            Some(NetworkEvent::Syncing(true))
        ));
    }

    #[test]
    fn a_closed_queue_takes_nothing() {
        let mut g = inbox();
        g.push_control(NetworkEvent::Syncing(true));
        g.close();
        assert!(g.is_closed());
        assert!(!g.has_priority());
        g.push_control(NetworkEvent::Syncing(false));
        assert!(!g.has_priority());
        assert!(matches!(
            g.on_message(peer(1), id(1), &TopicHash::from_raw("txs"), tx_bytes()),
            Dispatch::Report(_, MessageAcceptance::Ignore)
        ));
    }

    #[test]
    fn transactions_without_subscribers_are_kept_and_republished_in_order() {
        let mut g = inbox();
        let txs = TopicHash::from_raw("txs");
        assert!(!g.wants_flush(&txs));
        g.publish_txs(vec![1], |_| Published::Sent);
        assert!(!g.wants_flush(&txs));
        g.publish_txs(vec![2], |_| Published::NoPeers);
        g.publish_txs(vec![3], |_| Published::NoPeers);
        g.publish_txs(vec![4], |_| Published::Failed("queue full".to_owned()));
        assert!(g.wants_flush(&txs));
        assert!(!g.wants_flush(&TopicHash::from_raw("blocks")));
        // The first goes out, then the subscriber is gone again: the rest is kept.
        let mut sent = Vec::new();
        g.flush_pending_txs(|b| {
            if sent.is_empty() {
                sent.push(b);
                Published::Sent
            } else {
                Published::NoPeers
            }
        });
        assert_eq!(sent, vec![vec![2]]);
        assert_eq!(g.pending_txs, VecDeque::from([vec![3]]));
        let mut sent = Vec::new();
        g.flush_pending_txs(|b| {
            sent.push(b);
            Published::Sent
        });
        assert_eq!(sent, vec![vec![3]]);
        assert!(!g.wants_flush(&txs));
    }

    #[test]
    fn kept_transactions_are_bounded_oldest_dropped() {
        let mut g = inbox();
        for n in 0..MAX_PENDING_TXS + 2 {
            g.publish_txs((n as u32).to_le_bytes().to_vec(), |_| Published::NoPeers);
        }
        assert_eq!(g.pending_txs.len(), MAX_PENDING_TXS);
        assert_eq!(g.pending_txs.front(), Some(&2u32.to_le_bytes().to_vec()));
        // Batches count by their transactions.
        let batch = tx_bytes().repeat(100);
        g.publish_txs(batch.clone(), |_| Published::NoPeers);
        assert_eq!(g.pending_count, MAX_PENDING_TXS);
        assert_eq!(g.pending_txs.len(), MAX_PENDING_TXS - 99);
        assert_eq!(g.pending_txs.back(), Some(&batch));
    }

    #[test]
    fn publish_results_are_classified() {
        assert_eq!(Published::of::<()>(Ok(())), Published::Sent);
        assert_eq!(
            Published::of::<()>(Err(PublishError::Duplicate)),
            Published::Sent
        );
        assert_eq!(
            Published::of::<()>(Err(PublishError::NoPeersSubscribedToTopic)),
            Published::NoPeers
        );
        assert!(matches!(
            Published::of::<()>(Err(PublishError::MessageTooLarge)),
            Published::Failed(_)
        ));
    }
}
