//! A sync response from a peer: bytes -> the sync codec's `read_response` (the size limit of a
//! response, then the decoder: status, headers, blocks with their `max_block_txs` bound and
//! Merkle roots, refusals). What it accepts must encode back to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_network::fuzzing::{read_sync_response, sync_response_limit};

/// `max_block_txs` of the testnet genesis (genesis.json) and of `Genesis::dev`.
const MAX_BLOCK_TXS: usize = 20_000;

fuzz_target!(|data: &[u8]| {
    match read_sync_response(data, MAX_BLOCK_TXS) {
        Ok(encoded) => {
            assert!(data.len() <= sync_response_limit(MAX_BLOCK_TXS));
            assert_eq!(encoded, data, "the response encoding is canonical");
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
