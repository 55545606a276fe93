//! HTTP API tests against a real chain (see `common`).

mod common;
mod errors;
mod events;
mod happy;
mod pagination;
mod serving;
