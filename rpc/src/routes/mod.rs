//! Handlers, one module per resource group.

pub mod accounts;
pub mod admin;
pub mod blocks;
pub mod node;
pub mod search;
pub mod transactions;
