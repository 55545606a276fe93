//! The contract between the HTTP API and the node: reads go straight to the ledger [`Store`];
//! everything else (mempool, peers, mining, admin) is a request sent to the node over a
//! bounded channel with a oneshot reply. The node crate serves these requests; tests may serve
//! them with a `peerchain_consensus::Chain` of their own.

use std::sync::Arc;

use peerchain_ledger::mempool::MempoolError;
use peerchain_ledger::{Address, Genesis, Hash, Store, Transaction, U256};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::metrics::Metrics;

/// A transaction waiting in the mempool.
#[derive(Debug, Clone)]
pub struct PendingTx {
    /// The transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Hash,
    /// When this node first saw it (ms since the Unix epoch).
    pub first_seen_ms: u64,
}

/// Outcome of one submitted transaction that was not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its id.
    pub txid: Hash,
    /// False when it was already pending (idempotent resubmission).
    pub new: bool,
}

/// A page of the mempool, highest fee first.
#[derive(Debug, Clone)]
pub struct MempoolPage {
    /// Pending transactions in all.
    pub count: usize,
    /// Their encoded bytes.
    pub bytes: usize,
    /// This page.
    pub items: Vec<PendingTx>,
    /// Offset of the next page, when there is one.
    pub next_offset: Option<usize>,
}

/// A connected peer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// Remote multiaddr.
    pub address: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// When the connection was established (ms since the Unix epoch).
    pub connected_since_ms: u64,
    /// The peer's best height from its status handshake, when known.
    pub best_height: Option<u64>,
}

/// A branch tip (SPEC `/v1/chain/tips`).
#[derive(Debug, Clone)]
pub struct TipInfo {
    /// Tip hash.
    pub hash: Hash,
    /// Tip height.
    pub height: u64,
    /// Cumulative work.
    pub total_work: U256,
    /// Blocks between the main chain and the tip.
    pub branch_length: u64,
    /// `active`, `valid-fork`, `invalid` or `headers-only`.
    pub status: &'static str,
}

/// Node facts that are not in the store.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    /// Pending transactions.
    pub mempool_size: usize,
    /// Connected peers.
    pub peer_count: usize,
    /// Whether the node is catching up with a peer that has more work.
    pub syncing: bool,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// Whether continuous mining is on.
    pub mining: bool,
}

/// Events streamed to `/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A block joined the main chain.
    Block {
        /// Its hash.
        hash: Hash,
        /// Its height.
        height: u64,
    },
    /// The main chain switched branches.
    Reorg {
        /// Height of the common ancestor.
        fork_height: u64,
        /// Tip before.
        old_tip: Hash,
        /// Tip after.
        new_tip: Hash,
        /// Blocks that left the main chain, old tip first.
        disconnected: Vec<Hash>,
        /// Blocks that joined it, fork point first.
        connected: Vec<Hash>,
    },
    /// A transaction entered the mempool.
    Tx {
        /// Its id.
        txid: Hash,
    },
}

/// Why an admin or node request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The request names something unknown (block, peer).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (bad multiaddr, bad peer id).
    #[error("{0}")]
    BadRequest(String),
    /// The node is shutting down or its service stopped.
    #[error("the node is not serving requests: {0}")]
    Unavailable(String),
}

/// One reply channel.
pub type Reply<T> = oneshot::Sender<T>;

/// Requests the node serves for the HTTP API.
#[derive(Debug)]
pub enum NodeRequest {
    /// Admit transactions (signatures checked by the node on all cores).
    Submit(
        Vec<Transaction>,
        Reply<Vec<Result<Submitted, MempoolError>>>,
    ),
    /// A pending transaction.
    PendingTx(Hash, Reply<Option<PendingTx>>),
    /// When this node first saw a transaction (pending or since confirmed), if it did.
    FirstSeen(Hash, Reply<Option<u64>>),
    /// Pending transactions that send from or pay to an address, newest first.
    PendingInvolving(Address, Reply<Vec<PendingTx>>),
    /// The next nonce of an address counting its pending transactions.
    NextNonce(Address, Reply<u64>),
    /// A page of the mempool from an offset.
    Mempool {
        /// Offset into the fee-ordered list.
        offset: usize,
        /// Page size.
        limit: usize,
        /// Reply.
        reply: Reply<MempoolPage>,
    },
    /// Node status facts.
    Status(Reply<NodeStatus>),
    /// Connected peers.
    Peers(Reply<Vec<PeerInfo>>),
    /// Every branch tip.
    ChainTips(Reply<Vec<TipInfo>>),
    /// Mine `blocks` blocks now on the tip, crediting `miner` (or the node's miner address).
    Mine {
        /// Blocks to mine.
        blocks: u32,
        /// Reward address.
        miner: Option<Address>,
        /// Reply with the new block hashes.
        reply: Reply<Result<Vec<Hash>, NodeError>>,
    },
    /// Start or stop continuous mining.
    SetMining(bool, Reply<Result<(), NodeError>>),
    /// Dial a multiaddr.
    Dial(String, Reply<Result<(), NodeError>>),
    /// Disconnect and refuse a peer.
    BlockPeer(String, Reply<Result<(), NodeError>>),
    /// Allow a blocked peer again.
    UnblockPeer(String, Reply<Result<(), NodeError>>),
    /// Treat a block and its descendants as invalid.
    Invalidate(Hash, Reply<Result<(), NodeError>>),
    /// Undo `Invalidate`.
    Reconsider(Hash, Reply<Result<(), NodeError>>),
}

/// What the HTTP API needs from the node: the store for reads, the request channel, the
/// event stream and the network definition.
#[derive(Debug, Clone)]
pub struct NodeApi {
    /// Read access to the chain store.
    pub store: Store,
    /// The network.
    pub genesis: Genesis,
    /// Requests to the node.
    pub requests: mpsc::Sender<NodeRequest>,
    /// Chain and mempool events.
    pub events: broadcast::Sender<NodeEvent>,
    /// Bearer token of the admin calls.
    pub admin_token: String,
    /// Software version string.
    pub version: String,
    /// Prometheus metrics, shared with the node (it records chain, mempool, peer and gossip
    /// figures; the HTTP layer records requests and latency).
    /// JSON file listing the testnet's node URLs for the explorer's testnet view.
    pub explorer_nodes: Option<std::path::PathBuf>,
    pub metrics: Arc<Metrics>,
}

impl NodeApi {
    /// Sends a request built around a fresh reply channel and awaits the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> NodeRequest) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Unavailable("request channel closed".into()))?;
        rx.await
            .map_err(|_| NodeError::Unavailable("request dropped".into()))
    }
}
