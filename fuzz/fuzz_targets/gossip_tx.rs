//! A gossip transaction: bytes -> `Transaction::decode`, the decoder the network runs on every
//! transaction gossiped by a peer, then the txid and the signature check that mempool
//! admission runs on what decodes (a public key that is not a curve point must be refused,
//! not panic).

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_ledger::Transaction;
use peerchain_ledger::crypto::verify_transaction;
use peerchain_ledger::types::TX_ENCODED_LEN;

fuzz_target!(|data: &[u8]| {
    let Ok(tx) = Transaction::decode(data) else {
        assert_ne!(data.len(), TX_ENCODED_LEN, "every 148 bytes decode");
        return;
    };
    assert_eq!(tx.encode(), data, "the transaction encoding is canonical");
    let _ = tx.txid();
    let _ = tx.sender();
    let _ = tx.total_cost();
    let _ = verify_transaction(&tx);
});
