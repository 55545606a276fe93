//! Synchronous reads of the chain store shared by the routes (run them through
//! [`crate::state::blocking`]). Large blocks are read from their encoding without decoding
//! every transaction: the count and fees come from fixed offsets, single transactions are
//! decoded where they sit.

use peerchain_ledger::types::{HEADER_LEN, TX_ENCODED_LEN, u256_hex};
use peerchain_ledger::{BlockRecord, Genesis, Hash, Store, Transaction, TxLocation};

use crate::error::ApiError;
use crate::extract::BlockId;
use crate::views::BlockSummary;

/// Offset of `fee` in an encoded transaction: chain_id, from, to, amount.
const FEE_OFFSET: usize = 8 + 32 + 20 + 8;
/// Start of the first transaction in an encoded block: header, then the u32 count.
const TXS_OFFSET: usize = HEADER_LEN + 4;

/// Transaction count and fee sum of an encoded block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyStats {
    /// Transactions in the block.
    pub tx_count: u64,
    /// Sum of their fees.
    pub fees: u64,
}

fn corrupt(what: &str) -> ApiError {
    ApiError::internal(format!("stored block is corrupt: {what}"))
}

/// Reads the count and the fee sum from a block encoding.
pub(crate) fn body_stats(bytes: &[u8]) -> Result<BodyStats, ApiError> {
    let count = tx_count(bytes)?;
    let mut fees: u64 = 0;
    for i in 0..count {
        let at = TXS_OFFSET + i * TX_ENCODED_LEN + FEE_OFFSET;
        let field: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| corrupt("fee out of range"))?;
        fees = fees.saturating_add(u64::from_le_bytes(field));
    }
    Ok(BodyStats {
        tx_count: count as u64,
        fees,
    })
}

fn tx_count(bytes: &[u8]) -> Result<usize, ApiError> {
    let field: [u8; 4] = bytes
        .get(HEADER_LEN..TXS_OFFSET)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt("truncated header"))?;
    let count = u32::from_le_bytes(field) as usize;
    if bytes.len() != TXS_OFFSET + count * TX_ENCODED_LEN {
        return Err(corrupt("length does not match the transaction count"));
    }
    Ok(count)
}

/// The transaction at `index` of an encoded block, `None` past the end.
pub(crate) fn tx_at(bytes: &[u8], index: usize) -> Result<Option<Transaction>, ApiError> {
    if index >= tx_count(bytes)? {
        return Ok(None);
    }
    let at = TXS_OFFSET + index * TX_ENCODED_LEN;
    let slice = bytes
        .get(at..at + TX_ENCODED_LEN)
        .ok_or_else(|| corrupt("transaction out of range"))?;
    Transaction::decode(slice)
        .map(Some)
        .map_err(|e| corrupt(&e.to_string()))
}

/// Every transaction of an encoded block from `start`, at most `limit`.
pub(crate) fn txs_range(
    bytes: &[u8],
    start: usize,
    limit: usize,
) -> Result<Vec<Transaction>, ApiError> {
    let count = tx_count(bytes)?;
    (start..count.min(start.saturating_add(limit)))
        .map(|i| tx_at(bytes, i)?.ok_or_else(|| corrupt("transaction out of range")))
        .collect()
}

/// The block reward at `height` (genesis credits none).
pub(crate) fn reward_at(genesis: &Genesis, height: u64) -> u64 {
    if height == 0 {
        0
    } else {
        genesis.reward(height)
    }
}

/// The block a `{id}` names: a known hash, or the main-chain block at a height; 404 otherwise.
pub(crate) fn resolve_block(store: &Store, id: BlockId) -> Result<(Hash, BlockRecord), ApiError> {
    let hash = match id {
        BlockId::Hash(h) => h,
        BlockId::Height(height) => match store.main_hash(height)? {
            Some(h) => h,
            None => {
                let tip = store.tip_record()?.header.height;
                return Err(ApiError::not_found(format!(
                    "no main-chain block at height {height}; the tip is at height {tip}"
                )));
            }
        },
    };
    match store.record(&hash)? {
        Some(record) => Ok((hash, record)),
        None => Err(ApiError::not_found(format!("block {hash} is unknown"))),
    }
}

/// The encoded body of a resolved block; 404 when only its header is known (an invalid block).
pub(crate) fn block_bytes(store: &Store, hash: &Hash) -> Result<Vec<u8>, ApiError> {
    store.block_bytes(hash)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "the transactions of block {hash} are not stored (only its header is known)"
        ))
    })
}

/// Summary of a stored block; `None` when its body is not stored.
pub(crate) fn block_summary(
    store: &Store,
    genesis: &Genesis,
    hash: &Hash,
) -> Result<Option<BlockSummary>, ApiError> {
    let Some(record) = store.record(hash)? else {
        return Ok(None);
    };
    let Some(bytes) = store.block_bytes(hash)? else {
        return Ok(None);
    };
    let stats = body_stats(&bytes)?;
    let h = &record.header;
    Ok(Some(BlockSummary {
        hash: hash.to_hex(),
        height: h.height,
        prev_hash: h.prev_hash.to_hex(),
        timestamp_ms: h.timestamp_ms,
        miner: h.miner.to_hex(),
        target: h.target.to_string(),
        tx_count: stats.tx_count,
        fees: stats.fees,
        reward: reward_at(genesis, h.height),
        total_work: u256_hex(&record.total_work),
    }))
}

/// A main-chain transaction and its location, decoding only that transaction.
pub(crate) fn confirmed_tx(
    store: &Store,
    txid: &Hash,
) -> Result<Option<(Transaction, TxLocation)>, ApiError> {
    let Some(location) = store.tx_location(txid)? else {
        return Ok(None);
    };
    let bytes = store
        .block_bytes(&location.block_hash)?
        .ok_or_else(|| corrupt("indexed block is missing"))?;
    let tx = tx_at(&bytes, location.index as usize)?
        .ok_or_else(|| corrupt("indexed transaction is missing"))?;
    Ok(Some((tx, location)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::testkit::ChainBuilder;

    #[test]
    fn stats_and_single_transactions_match_a_full_decode() {
        let g = Genesis::dev(3, 1_000_000, 2000);
        let mut b = ChainBuilder::new(g, 3);
        let block = b.push_transfers(7, 3);
        let bytes = block.encode();
        let stats = body_stats(&bytes).expect("stats");
        assert_eq!(stats.tx_count, 7);
        assert_eq!(
            stats.fees,
            block.transactions.iter().map(|t| t.fee).sum::<u64>()
        );
        for (i, tx) in block.transactions.iter().enumerate() {
            assert_eq!(tx_at(&bytes, i).expect("read").as_ref(), Some(tx));
        }
        assert_eq!(tx_at(&bytes, 7).expect("read"), None);
        assert_eq!(txs_range(&bytes, 5, 10).expect("range").len(), 2);
        assert!(body_stats(&bytes[..bytes.len() - 1]).is_err());
    }
}
