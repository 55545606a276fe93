//! # peerchain-ledger
//!
//! The data model and state of peerchain, the base every other crate stands on.
//!
//! It owns: the byte layouts of SPEC sections 1-3 ([`types`]), Ed25519 keys and the signature
//! rule ([`crypto`]), the RFC 9162 Merkle tree ([`merkle`]), the genesis file ([`genesis`]),
//! the state transition with undo data and the state digest ([`state`]), the sled store with
//! its indexes ([`store`]) and the mempool ([`mempool`]).
//!
//! It must never: touch the network, HTTP, a clock it was not given, or mining. Consensus rules
//! about proof of work, difficulty and fork choice live in `peerchain-consensus`; this crate
//! only stores what consensus decided.

pub mod crypto;
pub mod error;
pub mod fast_hash;
pub mod generations;
pub mod genesis;
mod history;
pub mod mempool;
pub mod merkle;
mod saved_mempool;
pub mod sigcache;
pub mod state;
pub mod store;
mod txindex;
// Test and benchmark helpers, never in a node build: the no-panic lints of Cargo.toml do not
// apply to them.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod types;

pub use error::{ApplyError, DecodeError, GenesisError, StoreError, TxError};
pub use genesis::Genesis;
pub use mempool::{Admitted, FeeCursor, Mempool, MempoolConfig, MempoolError, RebuiltBlock};
pub use primitive_types::U256;
pub use state::{Account, AccountReader, BlockDelta, StateDigest};
pub use store::{
    BackgroundWrites, BlockRecord, BlockStatus, HistoryCursor, Inconsistency, Store, StoreConfig,
    StoreReader, TxLocation,
};
pub use types::{
    Address, Block, BlockHeader, EncodedBlock, Hash, PublicKey, Signature, Target, Transaction,
};
