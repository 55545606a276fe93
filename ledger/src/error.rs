//! Error enums of the ledger crate. Each carries the values involved.

use crate::types::{Address, Hash};

/// Bytes or text that do not decode to the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Hex of the wrong length.
    #[error("expected {expected} hex digits, got {got}")]
    HexLength {
        /// Expected digit count.
        expected: usize,
        /// Digits received.
        got: usize,
    },
    /// Not hexadecimal.
    #[error("invalid hex: {0}")]
    Hex(String),
    /// A field of the wrong byte length.
    #[error("{what}: expected {expected} bytes, got {got}")]
    Length {
        /// What was being read.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// Input ended early.
    #[error("truncated input: needed {needed} more bytes, {available} available")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Input continues after the value.
    #[error("{count} trailing bytes after the value")]
    TrailingBytes {
        /// Extra bytes.
        count: usize,
    },
    /// A block announcing more transactions than allowed.
    #[error("block has {count} transactions, at most {max} allowed")]
    TooManyTransactions {
        /// Announced count.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A stored record that does not decode (corruption or a format change).
    #[error("corrupt stored record {what}: {detail}")]
    Record {
        /// Which record.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
}

/// Why a transaction is not valid against an account state (SPEC section 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// chain_id differs from the genesis chain id.
    #[error("chain_id {got} does not match this network's chain_id {expected}")]
    WrongChain {
        /// Network chain id.
        expected: u64,
        /// Transaction's chain id.
        got: u64,
    },
    /// Signature rejected by verify_strict or a weak key.
    #[error("signature of transaction {txid} does not verify for key {from}")]
    BadSignature {
        /// The transaction.
        txid: Hash,
        /// Its public key, hex.
        from: String,
    },
    /// Fee below min_fee.
    #[error("fee {fee} is below the minimum fee {min_fee}")]
    FeeTooLow {
        /// Offered fee.
        fee: u64,
        /// Network minimum.
        min_fee: u64,
    },
    /// Nonce below the account nonce.
    #[error("nonce {nonce} is below the account nonce {expected}")]
    NonceTooLow {
        /// Transaction nonce.
        nonce: u64,
        /// Account nonce.
        expected: u64,
    },
    /// Nonce above the next expected nonce.
    #[error("nonce {nonce} is above the expected nonce {expected}")]
    NonceTooHigh {
        /// Transaction nonce.
        nonce: u64,
        /// Expected nonce.
        expected: u64,
    },
    /// Balance does not cover amount + fee.
    #[error("account {address} holds {balance}, which does not cover {needed}")]
    InsufficientFunds {
        /// The sender.
        address: Address,
        /// Its balance.
        balance: u64,
        /// amount + fee (and, in the mempool, its earlier pending transactions).
        needed: u128,
    },
    /// A balance would exceed u64 (impossible under the genesis supply rule; checked anyway).
    #[error("crediting {amount} to {address} overflows its balance {balance}")]
    BalanceOverflow {
        /// The recipient.
        address: Address,
        /// Its balance.
        balance: u64,
        /// Credit.
        amount: u64,
    },
}

impl TxError {
    /// The snake_case code of SPEC section 5.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::BadSignature { .. } => "bad_signature",
            TxError::FeeTooLow { .. } => "fee_too_low",
            TxError::NonceTooLow { .. } => "nonce_too_low",
            TxError::NonceTooHigh { .. } => "nonce_too_high",
            TxError::InsufficientFunds { .. } | TxError::BalanceOverflow { .. } => {
                "insufficient_funds"
            }
        }
    }
}

/// Why a block's transactions cannot be applied (SPEC section 3, rules 5-7).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A transaction is invalid at its position.
    #[error("transaction {index} ({txid}): {source}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Its id.
        txid: Hash,
        /// Why.
        source: TxError,
    },
    /// Crediting the miner overflows.
    #[error("miner reward {reward} plus fees {fees} overflows")]
    RewardOverflow {
        /// Block reward.
        reward: u64,
        /// Sum of fees.
        fees: u128,
    },
    /// Reading the parent state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A genesis file that cannot define a network. Each variant names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The file cannot be read.
    #[error("cannot read genesis file {path}: {detail}")]
    Io {
        /// Path given.
        path: String,
        /// OS error.
        detail: String,
    },
    /// JSON that does not match the schema; `field` is the path to the offending value.
    #[error("genesis field `{field}`: {detail}")]
    Field {
        /// Path of the field (e.g. `allocations[1].balance`), or `.` for the document.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// target_block_time_ms is 0.
    #[error("genesis field `target_block_time_ms` must be above 0")]
    ZeroBlockTime,
    /// Half-life shorter than the block time.
    #[error(
        "genesis field `difficulty_half_life_ms` ({half_life}) must be at least target_block_time_ms ({block_time})"
    )]
    HalfLifeTooShort {
        /// difficulty_half_life_ms.
        half_life: u64,
        /// target_block_time_ms.
        block_time: u64,
    },
    /// initial_target is 0.
    #[error("genesis field `initial_target` must be above 0")]
    ZeroTarget,
    /// initial_target above pow_limit.
    #[error("genesis field `initial_target` ({target}) is above `pow_limit` ({pow_limit})")]
    TargetAboveLimit {
        /// initial_target hex.
        target: String,
        /// pow_limit hex.
        pow_limit: String,
    },
    /// An address allocated twice.
    #[error("genesis field `allocations`: address {0} appears twice")]
    DuplicateAllocation(Address),
    /// Supply bound broken.
    #[error(
        "genesis field `allocations`: sum of balances {balances} + 2 * initial_reward * halving_interval ({issuance}) must be below 2^53"
    )]
    SupplyTooLarge {
        /// Sum of allocations.
        balances: u128,
        /// 2 * initial_reward * halving_interval.
        issuance: u128,
    },
}

/// A failure of the sled store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("database error: {0}")]
    Db(String),
    /// The disk holding the store is full (sled refuses further writes until the store is
    /// reopened, `Store::reopen`).
    #[error("the disk is full: {0}")]
    DiskFull(String),
    /// The store is being reopened (after a full disk); try again shortly.
    #[error("the store is being reopened")]
    Reopening,
    /// A record failed to decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The data directory belongs to another network.
    #[error(
        "data directory holds the network with genesis {stored}, not {expected}: use another --data-dir"
    )]
    WrongNetwork {
        /// Genesis hash in the store.
        stored: Hash,
        /// Genesis hash of the given genesis file.
        expected: Hash,
    },
    /// The data directory was written by a newer node whose layout this one cannot read.
    #[error(
        "data directory has store format {stored}; this node reads up to format {supported}: run a newer peerchain or use another --data-dir"
    )]
    NewerFormat {
        /// Format in the store.
        stored: u64,
        /// Newest format this node reads.
        supported: u64,
    },
    /// A block that should be present is missing.
    #[error("block {0} is not in the store")]
    MissingBlock(Hash),
    /// Undo data for a connected block is missing.
    #[error("undo data for block {0} is missing")]
    MissingUndo(Hash),
    /// Connect or disconnect that does not extend or end at the tip.
    #[error("block {block} does not fit the tip {tip}")]
    NotAtTip {
        /// The block.
        block: Hash,
        /// The current tip.
        tip: Hash,
    },
    /// A block's body in the block files is not what its location says: the file is missing
    /// or ends early, the location is longer than a block file, the bytes fail their
    /// checksum or are another block's (a power loss before the body was synced, or damage
    /// on the disk). Never taken for the block.
    #[error("block {hash}: its body in block file {file} at offset {offset} is damaged: {reason}")]
    DamagedBody {
        /// The block.
        hash: Hash,
        /// The block file's number.
        file: u32,
        /// The body's offset in it.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A block body larger than a block file (128 MiB; no valid block is).
    #[error("a block body of {len} bytes is too large to store")]
    BodyTooLarge {
        /// The body's length.
        len: usize,
    },
    /// A caller passed txids that are not one per transaction of the block.
    #[error("block {block} has {transactions} transactions but {txids} txids were given")]
    TxidsMismatch {
        /// The block.
        block: Hash,
        /// Its transactions.
        transactions: usize,
        /// The txids given.
        txids: usize,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match &e {
            sled::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                ) =>
            {
                StoreError::DiskFull(io.to_string())
            }
            _ => StoreError::Db(e.to_string()),
        }
    }
}

impl StoreError {
    /// The disk (or the quota) is full: writes may succeed once space returns and the store
    /// is reopened.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull(_))
    }

    /// A failure of the disk or the database rather than a fact about the data (a decode
    /// error or a missing record is a fact): the operation may succeed later.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Db(_) | StoreError::DiskFull(_) | StoreError::Reopening
        )
    }
}
