//! The cloneable handle the node uses: commands over a bounded channel, replies over oneshot.

use tokio::sync::{mpsc, oneshot};

use peerchain_ledger::{Block, Hash, Transaction};

use crate::error::NetworkError;
use crate::link_faults::{LinkFault, PeerLinkFault};
#[cfg(feature = "test-hooks")]
use crate::types::RawTopic;
use crate::types::{Acceptance, BannedPeer, LocalTip, MessageRef, PeerSummary};

/// A request to the service task.
#[derive(Debug)]
pub(crate) enum Command {
    PublishBlock(Vec<u8>),
    PublishTxs(Vec<u8>),
    #[cfg(feature = "test-hooks")]
    PublishRaw(RawTopic, Vec<u8>),
    Report(MessageRef, Acceptance),
    Penalize {
        peer: String,
        reason: String,
    },
    RequestAncestors {
        peer: String,
        missing: Hash,
    },
    RequestBlockTxs {
        peer: String,
        block: Hash,
        indexes: Vec<u32>,
    },
    SetLocalTip(LocalTip),
    Peers(oneshot::Sender<Vec<PeerSummary>>),
    Banned(usize, oneshot::Sender<Vec<BannedPeer>>),
    Dial(String, oneshot::Sender<Result<(), NetworkError>>),
    BlockPeer(String, oneshot::Sender<Result<(), NetworkError>>),
    UnblockPeer(String, oneshot::Sender<Result<(), NetworkError>>),
    SetLinkFault(
        String,
        LinkFault,
        oneshot::Sender<Result<Vec<PeerLinkFault>, NetworkError>>,
    ),
    Shutdown(oneshot::Sender<()>),
}

/// The node's handle on the network service. Cheap to clone; every method is safe to call
/// after the service stopped (it logs, or returns [`NetworkError::Stopped`]).
#[derive(Clone, Debug)]
pub struct NetworkHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: String,
}

impl NetworkHandle {
    async fn send(&self, command: Command) -> bool {
        if self.commands.send(command).await.is_err() {
            tracing::debug!("network service stopped; command dropped");
            return false;
        }
        true
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)).await {
            return Err(NetworkError::Stopped);
        }
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// The local peer id (base58).
    pub fn local_peer_id(&self) -> String {
        self.local_peer_id.clone()
    }

    /// Publishes a block on the block topic, as a compact block (header and txids; peers
    /// that lack a transaction fetch the whole block). Errors are logged, never returned.
    pub async fn publish_block(&self, block: &Block) {
        let compact = crate::types::CompactBlock::of(block).encode();
        self.send(Command::PublishBlock(compact)).await;
    }

    /// Publishes transactions, in order, as batches of at most `MAX_TX_BATCH` (one gossip
    /// message each). While no peer is subscribed they are kept (bounded) and rebroadcast
    /// when one subscribes.
    pub async fn publish_txs(&self, txs: &[Transaction]) {
        for batch in crate::codec::encode_tx_batches(txs) {
            self.send(Command::PublishTxs(batch)).await;
        }
    }

    /// Publishes one transaction (a batch of one).
    pub async fn publish_tx(&self, tx: &Transaction) {
        self.publish_txs(std::slice::from_ref(tx)).await;
    }

    /// Publishes arbitrary bytes on a topic: only for adversarial tests.
    #[cfg(feature = "test-hooks")]
    pub async fn publish_raw(&self, topic: RawTopic, bytes: Vec<u8>) {
        self.send(Command::PublishRaw(topic, bytes)).await;
    }

    /// Reports the node's verdict on a gossip message: `Accept` forwards it, `Reject`
    /// penalises its senders, `Ignore` drops it.
    pub async fn report(&self, msg: MessageRef, acceptance: Acceptance) {
        self.send(Command::Report(msg, acceptance)).await;
    }

    /// Penalises a peer (e.g. it delivered an invalid block by sync); repeated offenders are
    /// disconnected and banned for a time.
    pub async fn penalize(&self, peer: &str, reason: &str) {
        self.send(Command::Penalize {
            peer: peer.to_owned(),
            reason: reason.to_owned(),
        })
        .await;
    }

    /// A gossip block from `peer` had an unknown ancestor `missing`: fetch it (and whatever
    /// it needs) from that peer.
    pub async fn request_ancestors(&self, peer: &str, missing: Hash) {
        self.send(Command::RequestAncestors {
            peer: peer.to_owned(),
            missing,
        })
        .await;
    }

    /// A compact block from `peer` lacks the transactions at `indexes` (strictly increasing,
    /// 1 to [`crate::MAX_TXS_PER_REQUEST`]): ask that peer for them. The answer comes as
    /// [`crate::NetworkEvent::BlockTxs`], with `None` when there is none to use (refused,
    /// failed, timed out, or the peer lacks the block; bad data also costs the peer a penalty).
    pub async fn request_block_txs(&self, peer: &str, block: Hash, indexes: Vec<u32>) {
        self.send(Command::RequestBlockTxs {
            peer: peer.to_owned(),
            block,
            indexes,
        })
        .await;
    }

    /// Sets the tip announced in the status handshake and used to decide when to sync.
    pub async fn set_local_tip(&self, tip: LocalTip) {
        self.send(Command::SetLocalTip(tip)).await;
    }

    /// Peers that completed the status handshake.
    pub async fn peers(&self) -> Vec<PeerSummary> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// Banned and blocked peers, at most `limit`, ordered by peer id.
    pub async fn banned_peers(&self, limit: usize) -> Vec<BannedPeer> {
        self.ask(|tx| Command::Banned(limit, tx))
            .await
            .unwrap_or_default()
    }

    /// Dials a multiaddr (with or without `/p2p/<id>`).
    pub async fn dial(&self, addr: &str) -> Result<(), NetworkError> {
        let addr = addr.to_owned();
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// Disconnects a peer and refuses it until [`NetworkHandle::unblock_peer`]. Fails with
    /// [`NetworkError::UnknownPeer`] for a peer this node does not know (not connected, not seen
    /// since start, not banned, not a bootnode), [`NetworkError::BadPeerId`] for a malformed id
    /// and [`NetworkError::LocalPeer`] for the local peer.
    pub async fn block_peer(&self, peer: &str) -> Result<(), NetworkError> {
        let peer = peer.to_owned();
        self.ask(|tx| Command::BlockPeer(peer, tx)).await?
    }

    /// Allows a blocked (or banned) peer again. Fails with [`NetworkError::NotBlocked`] for a
    /// peer that is neither, [`NetworkError::BadPeerId`] for a malformed id and
    /// [`NetworkError::LocalPeer`] for the local peer.
    pub async fn unblock_peer(&self, peer: &str) -> Result<(), NetworkError> {
        let peer = peer.to_owned();
        self.ask(|tx| Command::UnblockPeer(peer, tx)).await?
    }

    /// Sets the fault of the link from `peer` to this node (a [`LinkFault`] that changes
    /// nothing clears it) and returns every faulted link; for tests of a network on one
    /// machine (`link_faults.rs`). Fails with [`NetworkError::BadLinkFault`] for a value out of
    /// range, [`NetworkError::TooManyLinkFaults`] when every slot is taken,
    /// [`NetworkError::BadPeerId`] for a malformed id and [`NetworkError::LocalPeer`] for the
    /// local peer. The peer need not be connected.
    pub async fn set_link_fault(
        &self,
        peer: &str,
        fault: LinkFault,
    ) -> Result<Vec<PeerLinkFault>, NetworkError> {
        let peer = peer.to_owned();
        self.ask(|tx| Command::SetLinkFault(peer, fault, tx))
            .await?
    }

    /// Stops the service: closes every connection and the event channel. Returns once the
    /// service task has finished and released the store.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}
