//! # peerchain (node)
//!
//! The `peerchain` binary: the clap CLI ([`cli`]), configuration with its precedence rules
//! ([`config`]), key and token files ([`keys`]), the client subcommands ([`commands`]), and the
//! wiring of a running node ([`service`]): store, chain thread, miner, network and HTTP API.
//!
//! It owns: process concerns (signals, logging, exit codes) and the wiring between crates.
//! It must never: implement consensus rules, protocol details or HTTP routes itself; those
//! live in `peerchain-consensus`, `peerchain-network` and `peerchain-rpc`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod gap;
pub mod keys;
pub mod load;
pub mod service;

pub use config::NodeConfig;
pub use service::{RunningNode, start};
