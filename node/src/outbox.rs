//! The chain thread's ordered, bounded line to the network.
//!
//! The chain thread is a plain thread and must never block on the network, so it queues
//! [`NetCommand`]s here with `try_send`; one task drains the queue in order and awaits each
//! network call. Order is kept (a newer local tip can never be overtaken by an older one), the
//! queue is bounded ([`crate::config::NodeLimits::net_outbox`]), and when it is full the command
//! is dropped and counted, never queued in a spawned task. The local tip travels beside the
//! queue in a `watch` channel: only the newest matters, it is never dropped, and an older one
//! can never overtake it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use peerchain_ledger::{Block, Hash, Transaction};
use peerchain_network::{Acceptance, LocalTip, MessageRef, NetworkHandle};
use tokio::sync::{mpsc, watch};

/// One thing the chain thread asks of the network.
#[derive(Debug)]
pub enum NetCommand {
    /// Gossip a block.
    PublishBlock(Box<Block>),
    /// Gossip transactions.
    PublishTxs(Vec<Transaction>),
    /// Report a gossip validation result.
    Report(MessageRef, Acceptance),
    /// Penalise a peer.
    Penalize {
        /// The peer.
        peer: String,
        /// Why.
        reason: String,
    },
    /// Fetch the ancestors of an orphan from the peer that sent it.
    RequestAncestors {
        /// The peer.
        peer: String,
        /// The oldest missing block.
        missing: Hash,
    },
    /// Ask the peer that sent a compact block for the transactions it lacks.
    RequestBlockTxs {
        /// The peer.
        peer: String,
        /// The block.
        block: Hash,
        /// Positions in the block, strictly increasing.
        indexes: Vec<u32>,
    },
}

/// The sending side, owned by the chain thread.
#[derive(Debug, Clone)]
pub struct NetOutbox {
    tx: mpsc::Sender<NetCommand>,
    tip: Arc<watch::Sender<Option<LocalTip>>>,
    dropped: Arc<AtomicU64>,
}

/// The receiving side, for [`drain`].
#[derive(Debug)]
pub struct NetInbox {
    rx: mpsc::Receiver<NetCommand>,
    tip: watch::Receiver<Option<LocalTip>>,
}

#[cfg(test)]
impl NetInbox {
    /// The next queued command, if any (unit tests of the chain thread's parts).
    pub(crate) fn try_recv(&mut self) -> Option<NetCommand> {
        self.rx.try_recv().ok()
    }
}

impl NetOutbox {
    /// A queue of at most `capacity` commands and the receiver for [`drain`].
    pub fn new(capacity: usize) -> (Self, NetInbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (tip_tx, tip) = watch::channel(None);
        (
            NetOutbox {
                tx,
                tip: Arc::new(tip_tx),
                dropped: Arc::new(AtomicU64::new(0)),
            },
            NetInbox { rx, tip },
        )
    }

    /// Announces a new local tip (replacing any not yet delivered).
    pub fn set_local_tip(&self, tip: LocalTip) {
        self.tip.send_replace(Some(tip));
    }

    /// Queues `command`; when the queue is full it is dropped, counted and logged.
    pub fn send(&self, command: NetCommand) {
        match self.tx.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(c)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, command = ?kind(&c), "network outbox full; command dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Commands dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn kind(c: &NetCommand) -> &'static str {
    match c {
        NetCommand::PublishBlock(_) => "publish_block",
        NetCommand::PublishTxs(_) => "publish_txs",
        NetCommand::Report(..) => "report",
        NetCommand::Penalize { .. } => "penalize",
        NetCommand::RequestAncestors { .. } => "request_ancestors",
        NetCommand::RequestBlockTxs { .. } => "request_block_txs",
    }
}

/// Most transactions gathered from consecutive queued [`NetCommand::PublishTxs`] into one
/// publication (the network cuts them into messages of at most `MAX_TX_BATCH`).
pub const MAX_TXS_GATHERED: usize = 4 * peerchain_network::MAX_TX_BATCH;

/// Joins the transactions of the [`NetCommand::PublishTxs`] queued right behind the first
/// (up to [`MAX_TXS_GATHERED`]), so transactions admitted one request at a time still leave
/// in few gossip messages; nothing waits for more to come. Returns the first other command
/// met, to be carried out next (order is kept).
fn gather_txs(
    txs: &mut Vec<Transaction>,
    rx: &mut mpsc::Receiver<NetCommand>,
) -> Option<NetCommand> {
    while txs.len() < MAX_TXS_GATHERED {
        match rx.try_recv() {
            Ok(NetCommand::PublishTxs(more)) => txs.extend(more),
            Ok(other) => return Some(other),
            Err(_) => return None,
        }
    }
    None
}

/// Carries out the queued commands in order until the queue closes.
pub async fn drain(inbox: NetInbox, net: NetworkHandle) {
    let NetInbox { mut rx, mut tip } = inbox;
    let mut next: Option<NetCommand> = None;
    loop {
        if let Some(command) = next.take() {
            next = carry_out(command, &net, &mut rx).await;
            continue;
        }
        let command = tokio::select! {
            biased;
            changed = tip.changed() => {
                if changed.is_err() {
                    return;
                }
                let latest = *tip.borrow_and_update();
                if let Some(t) = latest {
                    net.set_local_tip(t).await;
                }
                continue;
            }
            command = rx.recv() => match command {
                Some(c) => c,
                None => return,
            },
        };
        next = carry_out(command, &net, &mut rx).await;
    }
}

/// Carries out one command; returns the command met while gathering transactions, if any.
async fn carry_out(
    command: NetCommand,
    net: &NetworkHandle,
    rx: &mut mpsc::Receiver<NetCommand>,
) -> Option<NetCommand> {
    match command {
        NetCommand::PublishBlock(block) => net.publish_block(&block).await,
        NetCommand::PublishTxs(mut txs) => {
            let next = gather_txs(&mut txs, rx);
            net.publish_txs(&txs).await;
            return next;
        }
        NetCommand::Report(msg, acceptance) => net.report(msg, acceptance).await,
        NetCommand::Penalize { peer, reason } => net.penalize(&peer, &reason).await,
        NetCommand::RequestAncestors { peer, missing } => {
            net.request_ancestors(&peer, missing).await;
        }
        NetCommand::RequestBlockTxs {
            peer,
            block,
            indexes,
        } => net.request_block_txs(&peer, block, indexes).await,
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::U256;

    fn penalty(n: u64) -> NetCommand {
        NetCommand::Penalize {
            peer: format!("p{n}"),
            reason: "test".into(),
        }
    }

    #[test]
    fn commands_keep_their_order_and_overflow_is_counted() {
        let (outbox, mut inbox) = NetOutbox::new(3);
        for n in 1..=5 {
            outbox.send(penalty(n));
        }
        assert_eq!(outbox.dropped(), 2);
        let peers: Vec<String> = std::iter::from_fn(|| inbox.rx.try_recv().ok())
            .map(|c| match c {
                NetCommand::Penalize { peer, .. } => peer,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(peers, vec!["p1", "p2", "p3"]);
    }

    fn transfers(n: u64) -> Vec<Transaction> {
        let key = peerchain_ledger::crypto::Keypair::dev(1);
        (0..n)
            .map(|i| key.sign_transfer(7, peerchain_ledger::Address([2; 20]), 5, 1, i))
            .collect()
    }

    #[test]
    fn queued_transactions_are_gathered_up_to_the_next_other_command() {
        let (outbox, mut inbox) = NetOutbox::new(16);
        let txs = transfers(5);
        outbox.send(NetCommand::PublishTxs(txs[1..3].to_vec()));
        outbox.send(NetCommand::PublishTxs(txs[3..4].to_vec()));
        outbox.send(penalty(1));
        outbox.send(NetCommand::PublishTxs(txs[4..].to_vec()));
        let mut gathered = txs[..1].to_vec();
        let next = gather_txs(&mut gathered, &mut inbox.rx);
        assert_eq!(gathered, txs[..4].to_vec(), "in order, up to the penalty");
        assert!(matches!(next, Some(NetCommand::Penalize { ref peer, .. }) if peer == "p1"));
        assert!(matches!(inbox.rx.try_recv(), Ok(NetCommand::PublishTxs(ref t)) if t == &txs[4..]));
    }

    #[test]
    fn gathering_stops_at_its_bound() {
        let (outbox, mut inbox) = NetOutbox::new(4 * MAX_TXS_GATHERED);
        let txs = transfers(3);
        for _ in 0..MAX_TXS_GATHERED {
            outbox.send(NetCommand::PublishTxs(txs.clone()));
        }
        let mut gathered = Vec::new();
        assert!(gather_txs(&mut gathered, &mut inbox.rx).is_none());
        assert!(gathered.len() >= MAX_TXS_GATHERED);
        assert!(gathered.len() < MAX_TXS_GATHERED + txs.len());
        assert!(
            inbox.rx.try_recv().is_ok(),
            "the rest waits for the next publication"
        );
    }

    #[test]
    fn only_the_newest_tip_is_delivered_and_never_dropped() {
        let (outbox, mut inbox) = NetOutbox::new(1);
        for height in 1..=100u64 {
            outbox.set_local_tip(LocalTip {
                hash: Hash([height as u8; 32]),
                height,
                total_work: U256::from(height),
            });
        }
        assert_eq!(outbox.dropped(), 0);
        let latest = *inbox.tip.borrow_and_update();
        assert_eq!(latest.map(|t| t.height), Some(100));
    }
}
