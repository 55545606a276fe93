//! # peerchain (node)
//!
//! The `peerchain` binary: the clap CLI ([`cli`]), configuration with its precedence rules
//! ([`config`]), key and token files ([`keys`]), the node key an operator gives by file or
//! seed and `peerchain node-key` ([`node_key`]), dev mode's genesis, banner and keys ([`dev`]),
//! `genesis new` ([`genesis_new`]), the client subcommands ([`commands`]), and the
//! assembly and supervision of a running node ([`node`]): store, chain thread
//! ([`chain_service`]), miner ([`miner`]), network and HTTP API, and the bridges between them
//! ([`dispatch`], [`outbox`]). The decisions at the node's borders (verdicts, penalties, HTTP
//! errors) are plain functions in [`verdict`]. The scenario runner ([`scenario`], `peerchain
//! scenario run`) starts nodes of this executable as processes and drives them over HTTP.
//!
//! It owns: process concerns (signals, logging, exit codes, handing freed memory back:
//! [`heap`]) and the wiring between crates.
//! It must never: implement consensus rules, protocol details or HTTP routes itself; those
//! live in `peerchain-consensus`, `peerchain-network` and `peerchain-rpc`.

pub mod adversary;
pub mod chain_service;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dev;
pub mod dispatch;
pub mod gap;
pub mod genesis_new;
pub mod heap;
pub mod keys;
pub mod load;
pub mod miner;
pub mod node;
pub mod node_key;
pub mod outbox;
pub mod ports;
pub mod scenario;
pub mod verdict;

pub use config::{FailPoints, NodeConfig, NodeLimits};
pub use node::{Exit, RunningNode, start};
