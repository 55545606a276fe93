//! # peerchain-consensus
//!
//! The consensus rules of SPEC section 3 (docs/PROTOCOL.md) on top of `peerchain-ledger`:
//! proof of work ([`pow`]), the ASERT difficulty rule and median time past ([`difficulty`]),
//! the pure block validity checks ([`rules`]), the block tree with fork choice, reorgs,
//! orphans, invalidate/reconsider and the mempool that follows the tip ([`chain`]), and block
//! templates ([`template`]).
//!
//! It owns: every rule that decides whether a block or a transaction is valid, and the
//! chain's writes to the store ([`Chain`] holds the only `peerchain_ledger::Store`).
//! It must never: start threads, read the clock (callers pass `now_ms`), do network or HTTP
//! work, or decide what a verdict costs a peer (the node maps verdicts to penalties).

pub mod chain;
pub mod difficulty;
mod just_stored;
pub mod pow;
pub mod rules;
pub mod template;

pub use chain::{
    BlockContents, Chain, ChainConfig, ChainError, ChainEvent, ChainTip, DurableMark, Imported,
    RelayableBlock, SavedMempoolChanges, TipStatus, Verdict,
};
pub use rules::ConsensusError;
pub use template::{Template, TemplateBuilder, build_template, solve};
