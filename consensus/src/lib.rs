//! # peerchain-consensus
//!
//! The consensus rules of SPEC section 3 on top of `peerchain-ledger`: proof of work
//! ([`pow`]), the ASERT difficulty rule and median time past ([`difficulty`]) and the pure
//! block validity checks ([`rules`]).

pub mod difficulty;
pub mod pow;
pub mod rules;

pub use rules::ConsensusError;
pub mod chain;

pub use chain::{
    Chain, ChainConfig, ChainError, ChainEvent, ChainTip, Imported, TipStatus, Verdict,
};
pub mod miner;
pub use miner::{Miner, MinerConfig, Template, build_template, solve};
