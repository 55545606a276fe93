//! # peerchain-rpc
//!
//! The HTTP API of SPEC section 5 (axum), its OpenAPI document, Server-Sent Events, Prometheus
//! metrics and the web block explorer.
//!
//! It owns: routes, request parsing and limits, the JSON shapes of the API, the error model.
//! It must never: talk to libp2p or sled directly. Reads go through the ledger's `Store` API;
//! everything else is a [`node_api::NodeRequest`] answered by the node.

pub mod node_api;
