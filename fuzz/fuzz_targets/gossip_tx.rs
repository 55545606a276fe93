//! A gossip transaction batch: bytes -> the decoder the network runs on every message of the
//! transaction topic (1 to `MAX_TX_BATCH` transactions of 148 bytes), then the txid and the
//! signature check that mempool admission runs on what decodes (a public key that is not a
//! curve point must be refused, not panic).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_ledger::crypto::verify_transaction;
use peerchain_ledger::types::TX_ENCODED_LEN;
use peerchain_network::fuzzing::{MAX_TX_BATCH, decode_gossip_txs};

fuzz_target!(|data: &[u8]| {
    let Ok(txs) = decode_gossip_txs(data) else {
        let whole = !data.is_empty() && data.len() % TX_ENCODED_LEN == 0;
        assert!(
            !whole || data.len() / TX_ENCODED_LEN > MAX_TX_BATCH,
            "every batch of whole 148-byte transactions decodes"
        );
        return;
    };
    assert!(!txs.is_empty() && txs.len() <= MAX_TX_BATCH);
    let encoded: Vec<u8> = txs.iter().flat_map(|tx| tx.encode()).collect();
    assert_eq!(encoded, data, "the batch encoding is canonical");
    for tx in &txs {
        let _ = tx.txid();
        let _ = tx.sender();
        let _ = tx.total_cost();
        let _ = verify_transaction(tx);
    }
});
