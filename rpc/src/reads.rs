//! Synchronous reads of the chain store shared by the routes (run them through
//! [`crate::state::blocking`]). Large blocks are read from their encoding without decoding
//! every transaction: the count and fees come from fixed offsets, single transactions are
//! decoded where they sit.

use peerchain_ledger::types::u256_hex;
use peerchain_ledger::{
    BlockRecord, DecodeError, EncodedBlock, Genesis, Hash, StoreReader, Transaction, TxLocation,
};

use crate::error::ApiError;
use crate::extract::BlockId;
use crate::views::BlockSummary;

fn corrupt(e: &DecodeError) -> ApiError {
    ApiError::internal(format!("stored block is corrupt: {e}"))
}

/// A view of a stored block's encoding; 500 when it is corrupt.
pub(crate) fn encoded(bytes: &[u8]) -> Result<EncodedBlock<'_>, ApiError> {
    EncodedBlock::new(bytes).map_err(|e| corrupt(&e))
}

/// The transaction at `index` of an encoded block, `None` past the end.
pub(crate) fn tx_at(bytes: &[u8], index: usize) -> Result<Option<Transaction>, ApiError> {
    encoded(bytes)?.tx_at(index).map_err(|e| corrupt(&e))
}

/// Every transaction of an encoded block from `start`, at most `limit`.
pub(crate) fn txs_range(
    bytes: &[u8],
    start: usize,
    limit: usize,
) -> Result<Vec<Transaction>, ApiError> {
    encoded(bytes)?.txs(start, limit).map_err(|e| corrupt(&e))
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
pub(crate) fn resolve_block(
    store: &StoreReader,
    id: BlockId,
) -> Result<(Hash, BlockRecord), ApiError> {
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
pub(crate) fn block_bytes(store: &StoreReader, hash: &Hash) -> Result<Vec<u8>, ApiError> {
    store.block_bytes(hash)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "the transactions of block {hash} are not stored (only its header is known)"
        ))
    })
}

/// Summary of a stored block; `None` when its body is not stored.
pub(crate) fn block_summary(
    store: &StoreReader,
    genesis: &Genesis,
    hash: &Hash,
) -> Result<Option<BlockSummary>, ApiError> {
    let Some(bytes) = store.block_bytes(hash)? else {
        return Ok(None);
    };
    let body = encoded(&bytes)?;
    let contents = (body.tx_count() as u64, body.fees());
    summary_with(store, genesis, hash, contents)
}

/// Summary of a block whose transaction count and fees the caller knows (a block event
/// carries them), from its index record alone: the body is not read. `None` when the
/// block has no record.
pub(crate) fn summary_with(
    store: &StoreReader,
    genesis: &Genesis,
    hash: &Hash,
    (tx_count, fees): (u64, u64),
) -> Result<Option<BlockSummary>, ApiError> {
    let Some(record) = store.record(hash)? else {
        return Ok(None);
    };
    let h = &record.header;
    Ok(Some(BlockSummary {
        hash: hash.to_hex(),
        height: h.height,
        prev_hash: h.prev_hash.to_hex(),
        timestamp_ms: h.timestamp_ms,
        miner: h.miner.to_hex(),
        target: h.target.to_string(),
        tx_count,
        fees,
        reward: reward_at(genesis, h.height),
        total_work: u256_hex(&record.total_work),
    }))
}

/// A main-chain transaction and its location, decoding only that transaction.
pub(crate) fn confirmed_tx(
    store: &StoreReader,
    txid: &Hash,
) -> Result<Option<(Transaction, TxLocation)>, ApiError> {
    let Some(location) = store.tx_location(txid)? else {
        return Ok(None);
    };
    let bytes = store.block_bytes(&location.block_hash)?.ok_or_else(|| {
        ApiError::internal(format!("indexed block {} is missing", location.block_hash))
    })?;
    let tx = tx_at(&bytes, location.index as usize)?.ok_or_else(|| {
        ApiError::internal(format!(
            "indexed transaction {txid} is missing from its block"
        ))
    })?;
    Ok(Some((tx, location)))
}
