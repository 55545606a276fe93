//! A gossip block: bytes -> the decoder the network service runs on every block gossiped by
//! a peer (a compact block: the header and the txids, with the `max_block_txs` bound, then
//! the Merkle root check). What it accepts re-encodes to the same bytes. The same bytes also
//! go through `Block::decode` (whole blocks, as sync responses carry them) and the store's
//! `EncodedBlock` view, which must agree with each other.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{Block, EncodedBlock};
use peerchain_network::fuzzing::decode_gossip_block;

/// `max_block_txs` of the testnet genesis (genesis.json) and of `Genesis::dev`.
const MAX_BLOCK_TXS: usize = 20_000;

fuzz_target!(|data: &[u8]| {
    if let Ok(compact) = decode_gossip_block(data, MAX_BLOCK_TXS) {
        assert_eq!(compact.encode(), data, "the compact encoding is canonical");
        assert!(compact.txids.len() <= MAX_BLOCK_TXS);
        assert_eq!(merkle_root(&compact.txids), compact.header.tx_root);
        if let Some(max) = compact.txids.len().checked_sub(1) {
            assert!(
                decode_gossip_block(data, max).is_err(),
                "max_txs is enforced"
            );
        }
    }
    let plain = Block::decode(data, MAX_BLOCK_TXS);
    let view = EncodedBlock::new(data);
    match &plain {
        Ok(block) => {
            assert_eq!(block.encode(), data, "the block encoding is canonical");
            assert_eq!(block.encoded_len(), data.len());
            let view = view.expect("EncodedBlock accepts what Block::decode accepts");
            assert_eq!(view.tx_count(), block.transactions.len());
            let fees = block
                .transactions
                .iter()
                .fold(0u64, |sum, tx| sum.saturating_add(tx.fee));
            assert_eq!(view.fees(), fees);
            for (i, tx) in block.transactions.iter().enumerate() {
                assert_eq!(view.tx_at(i).expect("in range").as_ref(), Some(tx));
            }
            assert_eq!(
                view.tx_at(block.transactions.len()).expect("past the end"),
                None
            );
            if let Some(max) = block.transactions.len().checked_sub(1) {
                assert!(Block::decode(data, max).is_err(), "max_txs is enforced");
            }
        }
        Err(_) => {
            if let Ok(view) = view {
                assert!(view.tx_count() > MAX_BLOCK_TXS, "only the bound differs");
            }
        }
    }
});
