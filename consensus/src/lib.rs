//! # peerchain-consensus
//!
//! The consensus rules of SPEC section 3 on top of `peerchain-ledger`: proof of work
//! ([`pow`]), the ASERT difficulty rule and median time past ([`difficulty`]) and the pure
//! block validity checks ([`rules`]).

pub mod difficulty;
pub mod pow;
pub mod rules;

pub use rules::ConsensusError;
