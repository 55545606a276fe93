//! HTTP API tests against the real node, started in-process with `peerchain::start` (see
//! `common`).

mod common;
mod errors;
mod events;
mod happy;
mod pagination;
mod probes;
mod serving;
