//! The public data types of the network API. None of them exposes a libp2p type.

use std::fmt;

use libp2p::PeerId;
use libp2p::gossipsub::MessageId;
use peerchain_ledger::{Block, BlockHeader, Hash, Transaction, U256};

/// The node's main-chain tip, as the network announces it in the status handshake and uses to
/// decide when to sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTip {
    /// Tip hash.
    pub hash: Hash,
    /// Tip height.
    pub height: u64,
    /// Cumulative work of the main chain.
    pub total_work: U256,
}

/// The node's verdict on a gossip message, reported with [`crate::NetworkHandle::report`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid: forward it to the mesh.
    Accept,
    /// Invalid: drop it and penalise the peers that sent it.
    Reject,
    /// Cannot judge (duplicate, unknown parent, from the future): drop it, no penalty.
    Ignore,
}

/// Identifies one received gossip message and the peer that propagated it, for the
/// validation report. Opaque to the rest of the node.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageRef {
    pub(crate) id: MessageId,
    pub(crate) source: PeerId,
}

impl fmt::Debug for MessageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageRef({} from {})", self.id, self.source)
    }
}

/// How a block reached the node.
#[derive(Clone, Debug)]
pub enum BlockOrigin {
    /// Gossip: report the verdict with [`crate::NetworkHandle::report`].
    Gossip(MessageRef),
    /// A sync or ancestor download: penalise the peer with [`crate::NetworkHandle::penalize`]
    /// if the block is invalid.
    Sync,
}

/// A block as the block topic carries it: the header and the txids of its transactions, in
/// order (BIP 152's compact block, with whole txids instead of short ids: nothing to salt and
/// no collision to resolve, at 32 bytes a transaction instead of 148). The receiver rebuilds
/// the block from the transactions it already holds (`peerchain_ledger::Mempool::rebuild`) and fetches
/// the whole block from the sender when it lacks any (docs/NETWORK.md section 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactBlock {
    /// The block's header; its `tx_root` is the Merkle root of `txids` (checked on decoding).
    pub header: BlockHeader,
    /// The txids of the block's transactions, in block order.
    pub txids: Vec<Hash>,
}

impl CompactBlock {
    /// The compact form of `block`.
    pub fn of(block: &Block) -> Self {
        CompactBlock {
            header: block.header.clone(),
            txids: block.txids(),
        }
    }

    /// The block hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossiped compact block (decoded, its Merkle root checked; nothing else).
    CompactBlock {
        /// The compact block.
        block: CompactBlock,
        /// The peer id (base58) that propagated it: the one to fetch the whole block from.
        peer: String,
        /// The message to report on.
        msg: MessageRef,
    },
    /// A whole block from a peer, downloaded by sync or as an orphan's ancestor (decoded,
    /// proof of work of the header not yet checked by consensus).
    Block {
        /// The block.
        block: Block,
        /// The peer id (base58) that delivered it.
        peer: String,
        /// Gossip or sync.
        origin: BlockOrigin,
    },
    /// A gossiped batch of transactions (one message, in the order sent); report one verdict
    /// on the whole message with `msg`.
    Txs {
        /// The transactions (1 to `MAX_TX_BATCH`).
        txs: Vec<Transaction>,
        /// The peer id that propagated it.
        peer: String,
        /// The message to report on.
        msg: MessageRef,
    },
    /// The answer to [`crate::NetworkHandle::request_block_txs`]: the transactions asked
    /// for, in order (their txids not checked: the node knows which it expects), or `None`
    /// when there is none to use.
    BlockTxs {
        /// The block they belong to.
        block: Hash,
        /// The peer asked.
        peer: String,
        /// The transactions.
        txs: Option<Vec<Transaction>>,
    },
    /// A peer completed the status handshake.
    PeerConnected {
        /// Its peer id.
        peer: String,
    },
    /// A peer that had completed the handshake disconnected.
    PeerDisconnected {
        /// Its peer id.
        peer: String,
    },
    /// Block sync started (`true`) or finished (`false`).
    Syncing(bool),
    /// A listen address, with `/p2p/<local peer id>` appended.
    Listening {
        /// The multiaddr.
        addr: String,
    },
}

/// One connected peer, for the `/v1/peers` API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSummary {
    /// Peer id (base58).
    pub peer_id: String,
    /// Remote multiaddr of the first connection.
    pub address: String,
    /// `"inbound"` or `"outbound"`.
    pub direction: &'static str,
    /// When the first connection was established (ms since the Unix epoch).
    pub connected_since_ms: u64,
    /// Best height the peer announced (status handshake or gossip), if known.
    pub best_height: Option<u64>,
}

/// A peer this node refuses: banned for misbehaviour, or blocked by the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BannedPeer {
    /// Peer id (base58).
    pub peer_id: String,
    /// When the ban ends (ms since the Unix epoch); `None` for an operator block, which lasts
    /// until unblocked.
    pub until_ms: Option<u64>,
}

/// Gossip topics, for the raw publishing hook of adversarial tests.
#[cfg(feature = "test-hooks")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawTopic {
    /// The block topic.
    Blocks,
    /// The transaction topic.
    Txs,
}
