//! JSON shapes shared by several routes: the transaction object of SPEC section 2 and its
//! views, block summaries. Hashes, keys, addresses and 256-bit numbers are lowercase hex
//! strings; amounts are JSON numbers.

use peerchain_ledger::{Address, PublicKey, Signature, Transaction};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Pattern of a 64-hex-digit value on input.
pub const HEX64: &str = "^(0[xX])?[0-9a-fA-F]{64}$";
/// Pattern of a 40-hex-digit value on input.
pub const HEX40: &str = "^(0[xX])?[0-9a-fA-F]{40}$";
/// Pattern of a 128-hex-digit value on input.
pub const HEX128: &str = "^(0[xX])?[0-9a-fA-F]{128}$";

/// A transaction object: exactly the fields of SPEC section 2. Missing, extra or mistyped
/// fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxFields {
    /// Must equal the network's chain id.
    #[schema(example = 7710)]
    pub chain_id: u64,
    /// Sender's Ed25519 public key (64 hex digits).
    #[schema(value_type = String, pattern = "^(0[xX])?[0-9a-fA-F]{64}$")]
    pub from: PublicKey,
    /// Recipient address (40 hex digits).
    #[schema(value_type = String, pattern = "^(0[xX])?[0-9a-fA-F]{40}$")]
    pub to: Address,
    /// Amount moved.
    pub amount: u64,
    /// Fee paid to the miner.
    pub fee: u64,
    /// The sender's count of confirmed transactions.
    pub nonce: u64,
    /// Ed25519 signature of the signing message (128 hex digits).
    #[schema(value_type = String, pattern = "^(0[xX])?[0-9a-fA-F]{128}$")]
    pub signature: Signature,
}

impl From<TxFields> for Transaction {
    fn from(t: TxFields) -> Self {
        Transaction {
            chain_id: t.chain_id,
            from: t.from,
            to: t.to,
            amount: t.amount,
            fee: t.fee,
            nonce: t.nonce,
            signature: t.signature,
        }
    }
}

impl From<&Transaction> for TxFields {
    fn from(t: &Transaction) -> Self {
        TxFields {
            chain_id: t.chain_id,
            from: t.from,
            to: t.to,
            amount: t.amount,
            fee: t.fee,
            nonce: t.nonce,
            signature: t.signature,
        }
    }
}

/// The transaction object of SPEC section 2 inside responses (the same fields as
/// [`TxFields`]; views add their own fields next to them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TxObject {
    /// The network's chain id.
    pub chain_id: u64,
    /// Sender's Ed25519 public key (64 hex digits).
    #[schema(value_type = String)]
    pub from: PublicKey,
    /// Recipient address (40 hex digits).
    #[schema(value_type = String)]
    pub to: Address,
    /// Amount moved.
    pub amount: u64,
    /// Fee paid to the miner.
    pub fee: u64,
    /// The sender's count of confirmed transactions.
    pub nonce: u64,
    /// Ed25519 signature of the signing message (128 hex digits).
    #[schema(value_type = String)]
    pub signature: Signature,
}

impl From<&Transaction> for TxObject {
    fn from(t: &Transaction) -> Self {
        TxObject {
            chain_id: t.chain_id,
            from: t.from,
            to: t.to,
            amount: t.amount,
            fee: t.fee,
            nonce: t.nonce,
            signature: t.signature,
        }
    }
}

/// Where a transaction stands on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TxStatus {
    /// Ahead of its sender's next nonce: waiting (bounded) for its predecessors.
    Queued,
    /// In the mempool.
    Pending,
    /// In a main-chain block.
    Confirmed,
}

/// Outcome of one accepted submission.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubmitResult {
    /// The transaction id.
    pub txid: String,
    /// `pending`; `queued` when it waits for its sender's earlier nonces; `confirmed` when it
    /// is already in the main chain.
    pub status: TxStatus,
}

/// A transaction with its id, sender and status on this node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TransactionView {
    /// The fields of SPEC section 2.
    #[serde(flatten)]
    pub tx: TxObject,
    /// Transaction id.
    pub txid: String,
    /// Sender's address.
    pub sender: String,
    /// `pending` or `confirmed`.
    pub status: TxStatus,
    /// When this node first saw it (ms since the Unix epoch), when it did and remembers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen_ms: Option<u64>,
    /// Block that confirms it (confirmed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<String>,
    /// Height of that block (confirmed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Position in that block (confirmed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Main-chain blocks from that block to the tip, both included (confirmed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u64>,
}

impl TransactionView {
    /// A transaction waiting for its sender's earlier nonces.
    pub fn queued(tx: &Transaction) -> Self {
        TransactionView {
            status: TxStatus::Queued,
            first_seen_ms: None,
            ..TransactionView::pending(tx, None)
        }
    }

    /// A pending transaction.
    pub fn pending(tx: &Transaction, first_seen_ms: Option<u64>) -> Self {
        TransactionView {
            tx: tx.into(),
            txid: tx.txid().to_hex(),
            sender: tx.sender().to_hex(),
            status: TxStatus::Pending,
            first_seen_ms,
            block_hash: None,
            height: None,
            index: None,
            confirmations: None,
        }
    }

    /// A confirmed transaction at `location`, with the tip at `tip_height`.
    pub fn confirmed(
        tx: &Transaction,
        location: &peerchain_ledger::TxLocation,
        tip_height: u64,
    ) -> Self {
        TransactionView {
            tx: tx.into(),
            txid: tx.txid().to_hex(),
            sender: tx.sender().to_hex(),
            status: TxStatus::Confirmed,
            first_seen_ms: None,
            block_hash: Some(location.block_hash.to_hex()),
            height: Some(location.height),
            index: Some(location.index),
            confirmations: Some(tip_height.saturating_sub(location.height).saturating_add(1)),
        }
    }
}

/// A transaction of a block, with its position.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockTxView {
    /// The fields of SPEC section 2.
    #[serde(flatten)]
    pub tx: TxObject,
    /// Transaction id.
    pub txid: String,
    /// Sender's address.
    pub sender: String,
    /// Position in the block.
    pub index: u32,
}

/// A main-chain block in lists and `block` events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockSummary {
    /// Block hash.
    pub hash: String,
    /// Height.
    pub height: u64,
    /// Parent hash.
    pub prev_hash: String,
    /// Timestamp (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Address credited with reward and fees.
    pub miner: String,
    /// Proof-of-work target (64 hex digits, big-endian).
    pub target: String,
    /// Transactions in the block.
    pub tx_count: u64,
    /// Sum of the fees of its transactions.
    pub fees: u64,
    /// Block reward at its height (0 for genesis).
    pub reward: u64,
    /// Cumulative work from genesis through this block (64 hex digits).
    pub total_work: String,
}
