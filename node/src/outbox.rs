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
    }
}

/// Carries out the queued commands in order until the queue closes.
pub async fn drain(inbox: NetInbox, net: NetworkHandle) {
    let NetInbox { mut rx, mut tip } = inbox;
    loop {
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
        match command {
            NetCommand::PublishBlock(block) => net.publish_block(&block).await,
            NetCommand::PublishTxs(txs) => {
                for tx in &txs {
                    net.publish_tx(tx).await;
                }
            }
            NetCommand::Report(msg, acceptance) => net.report(msg, acceptance).await,
            NetCommand::Penalize { peer, reason } => net.penalize(&peer, &reason).await,
            NetCommand::RequestAncestors { peer, missing } => {
                net.request_ancestors(&peer, missing).await;
            }
        }
    }
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
