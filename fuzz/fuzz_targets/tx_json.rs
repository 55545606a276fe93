//! The HTTP API's transaction bodies: bytes -> the body of `POST /v1/transactions` (as the
//! JSON extractor reads it) and of `POST /v1/transactions/batch` (the capped batch parser),
//! both into ledger transactions. What parses must parse again, unchanged, from the JSON the
//! API itself writes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_rpc::config::MAX_BATCH;
use peerchain_rpc::fuzzing::{parse_batch, parse_tx};
use peerchain_rpc::views::TxFields;

fuzz_target!(|data: &[u8]| {
    if let Ok(tx) = parse_tx(data) {
        let json = serde_json::to_vec(&TxFields::from(&tx)).expect("serialises");
        assert_eq!(parse_tx(&json), Ok(tx));
    }
    if let Ok(txs) = parse_batch(data) {
        assert!(txs.len() <= MAX_BATCH);
        let fields: Vec<TxFields> = txs.iter().map(TxFields::from).collect();
        let json = serde_json::to_vec(&fields).expect("serialises");
        assert_eq!(parse_batch(&json), Ok(txs));
    }
});
