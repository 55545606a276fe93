//! A sync request from a peer: bytes -> the sync codec's `read_request` (the size limit of a
//! request, then the decoder with its locator and block-count limits). What it accepts must
//! encode back to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_network::fuzzing::{SYNC_REQUEST_LIMIT, read_sync_request};

/// `max_block_txs` of the testnet genesis (genesis.json) and of `Genesis::dev`.
const MAX_BLOCK_TXS: usize = 20_000;

fuzz_target!(|data: &[u8]| {
    match read_sync_request(data, MAX_BLOCK_TXS) {
        Ok(encoded) => {
            assert!(data.len() <= SYNC_REQUEST_LIMIT);
            assert_eq!(encoded, data, "the request encoding is canonical");
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
