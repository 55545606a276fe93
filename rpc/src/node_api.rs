//! The contract between the HTTP API and the node.
//!
//! - Reads of the chain go straight to the ledger's read-only [`StoreReader`].
//! - Reads of the mempool, chain tips, first-seen times and mining state come from the
//!   [`NodeSnapshot`] the chain thread publishes after every step (an `Arc` in a `watch`
//!   channel), so they never wait for the chain thread.
//! - Peer facts come from [`NetFacts`], kept current by the node's network event forwarder.
//! - Everything that changes the node (submissions, mining, peers, invalidate) is a
//!   [`NodeRequest`] sent over a bounded channel with a oneshot reply. The node crate serves
//!   them; there is no other implementation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use peerchain_ledger::mempool::{Mempool, MempoolError};
use peerchain_ledger::{Address, Genesis, Hash, StoreError, StoreReader, Transaction, U256};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::metrics::Metrics;

/// Outcome of one submitted transaction that was not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its id.
    pub txid: Hash,
    /// False when it was already pending or queued (idempotent resubmission).
    pub new: bool,
    /// Held until its sender's earlier nonces arrive (status `queued`), not yet pending.
    pub queued: bool,
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

/// A peer this node refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BannedPeerInfo {
    /// libp2p peer id.
    pub peer_id: String,
    /// When the ban ends (ms since the Unix epoch); `null` for an operator block, which lasts
    /// until unblocked.
    pub until_ms: Option<u64>,
}

/// A branch tip (SPEC `/v1/chain/tips`).
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// What the chain thread publishes after every step. Cloning it is cheap: the mempool is a
/// persistent collection that shares structure with the live one, and the first-seen map is
/// shared.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    /// The mempool as it stood after the step.
    pub mempool: Mempool,
    /// When this node first saw recent transactions, pending or since confirmed (bounded;
    /// shared with the chain thread, so always the newest).
    pub first_seen: crate::first_seen::FirstSeenTimes,
    /// Every branch tip.
    pub tips: Arc<Vec<TipInfo>>,
    /// Whether continuous mining is on.
    pub mining: bool,
    /// Transactions waiting for their sender's earlier nonces (status `queued`).
    pub queued: imbl::HashMap<Hash, Transaction>,
}

impl NodeSnapshot {
    /// The snapshot of a node with an empty mempool and only `tips`.
    pub fn empty(mempool: Mempool, tips: Vec<TipInfo>) -> Self {
        NodeSnapshot {
            mempool,
            first_seen: crate::first_seen::FirstSeenTimes::new(2),
            tips: Arc::new(tips),
            mining: false,
            queued: imbl::HashMap::new(),
        }
    }

    /// When this node first saw `txid`, if it did.
    pub fn first_seen_ms(&self, txid: &Hash) -> Option<u64> {
        self.mempool
            .get(txid)
            .map(|e| e.first_seen_ms)
            .or_else(|| self.first_seen.get(txid))
    }
}

/// Peer facts, written by the node's network event forwarder and read by the status route.
#[derive(Debug, Default)]
pub struct NetFacts {
    peer_count: AtomicUsize,
    syncing: AtomicBool,
    peer_id: String,
    link_faults: parking_lot::Mutex<Vec<LinkFaultView>>,
}

impl NetFacts {
    /// Facts of the node whose libp2p peer id is `peer_id`.
    pub fn new(peer_id: String) -> Self {
        NetFacts {
            peer_id,
            ..NetFacts::default()
        }
    }

    /// This node's libp2p peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Connected peers.
    pub fn peer_count(&self) -> usize {
        self.peer_count.load(Ordering::Relaxed)
    }

    /// Sets the number of connected peers.
    pub fn set_peer_count(&self, n: usize) {
        self.peer_count.store(n, Ordering::Relaxed);
    }

    /// Whether the node is catching up with a peer that has more work.
    pub fn syncing(&self) -> bool {
        self.syncing.load(Ordering::Relaxed)
    }

    /// Sets whether the node is syncing.
    pub fn set_syncing(&self, on: bool) {
        self.syncing.store(on, Ordering::Relaxed);
    }

    /// The faulted links (empty unless an operator set some).
    pub fn link_faults(&self) -> Vec<LinkFaultView> {
        self.link_faults.lock().clone()
    }

    /// Records the faulted links after an operator changed them.
    pub fn set_link_faults(&self, faults: Vec<LinkFaultView>) {
        *self.link_faults.lock() = faults;
    }
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
        /// Its transactions (the event's summary takes them from here rather than reading
        /// the block back: about 1.6 ms a 5,000-transfer block per stream otherwise).
        tx_count: u64,
        /// The sum of their fees.
        fees: u64,
    },
    /// A valid block was stored on a side branch (it did not join the main chain).
    SideBlock {
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

/// Why a node request failed. The HTTP status of each variant is decided in one place,
/// `ApiError::from(NodeError)`: unknown things are 404, requests that can never succeed 400,
/// store failures and a stopped service 503, a refused block of our own 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// A block named by hash is unknown.
    #[error("block {0} is unknown")]
    UnknownBlock(Hash),
    /// The genesis block cannot be invalidated or reconsidered.
    #[error("the genesis block cannot be invalidated or reconsidered")]
    Genesis,
    /// A peer id this node does not know.
    #[error("peer {peer} is unknown to this node")]
    UnknownPeer {
        /// The peer id given.
        peer: String,
    },
    /// `unblock` of a peer that is not blocked.
    #[error("peer {peer} is not blocked")]
    NotBlocked {
        /// The peer id given.
        peer: String,
    },
    /// A peer id that does not parse.
    #[error("invalid peer id {peer:?}: {detail}")]
    BadPeerId {
        /// The text given.
        peer: String,
        /// Parser message.
        detail: String,
    },
    /// A multiaddr that does not parse, or that cannot be dialled at all.
    #[error("cannot dial {addr:?}: {detail}")]
    BadAddress {
        /// The text given.
        addr: String,
        /// Why.
        detail: String,
    },
    /// The request names this node itself.
    #[error("{peer} is this node itself")]
    LocalPeer {
        /// This node's peer id.
        peer: String,
    },
    /// Adversary modes need `--allow-adversary`.
    #[error("adversary modes are off: start the node with --allow-adversary to use them")]
    AdversaryNotAllowed,
    /// An adversary mode this node does not have.
    #[error("unknown adversary mode {mode:?}; known: {known}")]
    UnknownAdversary {
        /// The name given.
        mode: String,
        /// The modes there are.
        known: String,
    },
    /// A network-level adversary mode cannot be switched on while the node runs.
    #[error(
        "adversary mode {mode} changes the network layer: start the node with --adversary {mode}"
    )]
    AdversaryAtStartOnly {
        /// The mode asked for.
        mode: String,
    },
    /// A link fault value out of range.
    #[error("{0}")]
    BadLinkFault(String),
    /// Every link-fault slot is taken.
    #[error("at most {max} peers may have a link fault at once; clear one first")]
    TooManyLinkFaults {
        /// The bound.
        max: usize,
    },
    /// The chain store failed (I/O, full disk): not a verdict on the request.
    #[error("the chain store failed: {0}")]
    Store(#[from] StoreError),
    /// The node's disk is full (or below its reserve): it takes no transactions or blocks
    /// until space returns, and keeps serving reads.
    #[error(
        "the node's disk is full ({detail}); transactions and blocks are refused until space returns"
    )]
    DiskFull {
        /// What the node saw (free space, the store's error).
        detail: String,
    },
    /// A block this node mined was refused by its own chain (a bug, logged).
    #[error("mined block {hash} was not accepted: {reason}")]
    MinedBlockRefused {
        /// The block.
        hash: Hash,
        /// The chain's verdict.
        reason: String,
    },
    /// The chain service's queue is full: retry shortly.
    #[error("the node is busy: its {queue} queue of {capacity} is full; retry shortly")]
    Busy {
        /// Which queue.
        queue: &'static str,
        /// Its bound.
        capacity: usize,
    },
    /// The service that answers this request has stopped (shutting down or failed).
    #[error("the node is not serving requests: {0} stopped")]
    Stopped(&'static str),
}

/// One reply channel.
pub type Reply<T> = oneshot::Sender<T>;

/// Requests that change the node. Reads do not go through here (see the module docs).
#[derive(Debug)]
pub enum NodeRequest {
    /// Admit transactions (signatures checked by the node on all cores): one result per
    /// transaction, in order, or an error when the node could not take the request at all.
    Submit(
        Vec<Transaction>,
        Reply<Result<Vec<Result<Submitted, MempoolError>>, NodeError>>,
    ),
    /// Connected peers.
    Peers(Reply<Vec<PeerInfo>>),
    /// Banned and blocked peers (at most `MAX_BANNED_LISTED`).
    BannedPeers(Reply<Vec<BannedPeerInfo>>),
    /// Mine `blocks` blocks now on the tip, crediting `miner` (or the node's miner address).
    Mine {
        /// Blocks to mine.
        blocks: u32,
        /// Reward address.
        miner: Option<Address>,
        /// Reply with the new block hashes.
        reply: Reply<Result<Vec<Hash>, NodeError>>,
    },
    /// Start or stop continuous mining, and change the hash-rate cap when asked (`Some(0)`:
    /// no cap). Replies with the cap after the call (`None`: no cap).
    SetMining {
        /// On or off.
        enabled: bool,
        /// New cap in hashes per second; `None` leaves it.
        hashrate: Option<u64>,
        /// The cap after the call.
        reply: Reply<Result<Option<u64>, NodeError>>,
    },
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
    /// Switch an adversary mode on (by name) or off (`None`).
    SetAdversary(Option<String>, Reply<Result<(), NodeError>>),
    /// Set (or clear, with every field zero) the fault of the link from a peer; replies with
    /// every faulted link.
    SetLinkFault(LinkFaultView, Reply<Result<Vec<LinkFaultView>, NodeError>>),
}

/// A peer's link fault: what this node does to the messages it receives from that peer.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkFaultView {
    /// The peer (libp2p peer id).
    pub peer_id: String,
    /// Fraction of the peer's gossip messages dropped, 0 to 1.
    pub loss: f64,
    /// Added delay of every message, ms.
    pub delay_ms: u64,
    /// Bandwidth of the link, kilobits per second (0: unlimited).
    pub bandwidth_kbps: u64,
}

/// What the HTTP API needs from the node.
#[derive(Debug, Clone)]
pub struct NodeApi {
    /// Read access to the chain store (it cannot write).
    pub store: StoreReader,
    /// The network.
    pub genesis: Genesis,
    /// Requests to the node.
    pub requests: mpsc::Sender<NodeRequest>,
    /// The chain thread's latest snapshot.
    pub snapshot: watch::Receiver<Arc<NodeSnapshot>>,
    /// Peer facts.
    pub net: Arc<NetFacts>,
    /// Chain and mempool events.
    pub events: broadcast::Sender<NodeEvent>,
    /// Bearer token of the admin calls.
    pub admin_token: String,
    /// Software version string.
    pub version: String,
    /// Prometheus metrics, shared with the node (it records chain, mempool, peer and gossip
    /// figures; the HTTP layer records requests and latency).
    pub metrics: Arc<Metrics>,
    /// JSON file listing the testnet's node URLs for the explorer's testnet view.
    pub explorer_nodes: Option<std::path::PathBuf>,
}

impl NodeApi {
    /// The latest snapshot (never waits for the chain thread).
    pub fn snapshot(&self) -> Arc<NodeSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// Sends a request built around a fresh reply channel and awaits the reply. When the
    /// caller goes away (client hung up, timeout), the reply channel closes and the node skips
    /// work it has not started.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> NodeRequest) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped("the request channel"))?;
        rx.await
            .map_err(|_| NodeError::Stopped("the chain service"))
    }
}
