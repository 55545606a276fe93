//! Blocks: the main-chain list, a block by hash or height, its txids and transactions, and
//! the chain tips.

use axum::Json;
use axum::extract::{Path, State};
use peerchain_ledger::types::u256_hex;
use peerchain_ledger::{Block, BlockStatus, Hash};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, parse_block_id};
use crate::pagination::{Page, PageParams, number_cursor};
use crate::reads::{block_bytes, block_summary, encoded, resolve_block, reward_at, txs_range};
use crate::state::{AppState, blocking};
use crate::views::{BlockSummary, BlockTxView};

/// Main-chain blocks, newest first.
#[utoipa::path(
    get, path = "/v1/blocks", tag = "blocks",
    params(PageParams),
    responses((status = 200, body = Page<BlockSummary>))
)]
pub(crate) async fn list_blocks(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<BlockSummary>>, ApiError> {
    let limit = page.limit()?;
    let start = page.cursor(number_cursor)?;
    let api = state.api().clone();
    let page = blocking(move || {
        let tip = api.store.tip_record()?.header.height;
        let first = start.map_or(tip, |s| s.min(tip));
        let mut items = Vec::with_capacity(limit);
        let mut height = Some(first);
        while let Some(h) = height {
            if items.len() == limit {
                break;
            }
            // A reorg may shorten the chain under us; missing heights are skipped.
            if let Some(hash) = api.store.main_hash(h)?
                && let Some(summary) = block_summary(&api.store, &api.genesis, &hash)?
            {
                items.push(summary);
            }
            height = h.checked_sub(1);
        }
        Ok(Page {
            items,
            next_cursor: height.map(|h| h.to_string()),
        })
    })
    .await?;
    Ok(Json(page))
}

/// Every header field of a block and what the node knows about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockView {
    /// Header version (1).
    pub version: u32,
    /// Height.
    pub height: u64,
    /// Parent hash.
    pub prev_hash: String,
    /// Merkle root of the txids (the genesis commitment in genesis).
    pub tx_root: String,
    /// Timestamp (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Proof-of-work target (64 hex digits, big-endian).
    pub target: String,
    /// Proof-of-work nonce.
    pub nonce: u64,
    /// Address credited with reward and fees.
    pub miner: String,
    /// Block hash.
    pub hash: String,
    /// Block reward at this height (0 for genesis).
    pub reward: u64,
    /// Sum of the transaction fees; `null` when only the header is stored.
    pub fees: Option<u64>,
    /// Transactions; `null` when only the header is stored.
    pub tx_count: Option<u64>,
    /// Work of this block, `floor(2^256 / (target + 1))` (64 hex digits).
    pub work: String,
    /// Cumulative work from genesis (64 hex digits).
    pub total_work: String,
    /// State digest after this block; `null` for a block never connected.
    pub state_digest: Option<String>,
    /// Main-chain blocks from this one to the tip, both included; 0 off the main chain.
    pub confirmations: u64,
    /// Whether the block is on the main chain.
    pub in_main_chain: bool,
    /// The next main-chain block; `null` at the tip or off the main chain.
    pub next_hash: Option<String>,
    /// Validation status: `valid`, `unvalidated` (never connected), `invalid` or
    /// `invalidated` (by an operator).
    pub status: String,
}

fn status_name(status: BlockStatus) -> &'static str {
    match status {
        BlockStatus::Valid => "valid",
        BlockStatus::Unvalidated => "unvalidated",
        BlockStatus::Invalid => "invalid",
        BlockStatus::InvalidatedByUser => "invalidated",
    }
}

/// A block by hash (64 hex digits) or main-chain height (decimal).
#[utoipa::path(
    get, path = "/v1/blocks/{id}", tag = "blocks",
    params(("id" = String, Path, description = "Block hash (64 hex digits) or main-chain height (decimal)", pattern = "^([0-9]{1,19}|(0[xX])?[0-9a-fA-F]{64})$")),
    responses(
        (status = 200, body = BlockView),
        (status = 404, description = "not_found", body = ErrorBody),
    )
)]
pub(crate) async fn get_block(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<BlockView>, ApiError> {
    let id = parse_block_id(&id)?;
    let api = state.api().clone();
    let view = blocking(move || {
        let store = &api.store;
        let (hash, record) = resolve_block(store, id)?;
        let h = &record.header;
        let stats = store
            .block_bytes(&hash)?
            .map(|b| encoded(&b).map(|v| (v.tx_count() as u64, v.fees())))
            .transpose()?;
        let tip = store.tip_record()?.header.height;
        let in_main_chain = store.main_hash(h.height)? == Some(hash);
        let next_hash = if in_main_chain {
            h.height
                .checked_add(1)
                .map(|n| store.main_hash(n))
                .transpose()?
                .flatten()
        } else {
            None
        };
        Ok(BlockView {
            version: h.version,
            height: h.height,
            prev_hash: h.prev_hash.to_hex(),
            tx_root: h.tx_root.to_hex(),
            timestamp_ms: h.timestamp_ms,
            target: h.target.to_string(),
            nonce: h.nonce,
            miner: h.miner.to_hex(),
            hash: hash.to_hex(),
            reward: reward_at(&api.genesis, h.height),
            fees: stats.map(|(_, fees)| fees),
            tx_count: stats.map(|(count, _)| count),
            work: u256_hex(&h.target.work()),
            total_work: u256_hex(&record.total_work),
            state_digest: store.digest_of(&hash)?.map(|d| d.to_hex()),
            confirmations: if in_main_chain {
                tip.saturating_sub(h.height).saturating_add(1)
            } else {
                0
            },
            in_main_chain,
            next_hash: next_hash.map(|n| n.to_hex()),
            status: status_name(record.status).to_owned(),
        })
    })
    .await?;
    Ok(Json(view))
}

/// Every txid of a block, in block order.
#[utoipa::path(
    get, path = "/v1/blocks/{id}/txids", tag = "blocks",
    params(("id" = String, Path, description = "Block hash (64 hex digits) or main-chain height (decimal)", pattern = "^([0-9]{1,19}|(0[xX])?[0-9a-fA-F]{64})$")),
    responses(
        (status = 200, body = Vec<String>),
        (status = 404, description = "not_found", body = ErrorBody),
    )
)]
pub(crate) async fn block_txids(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<String>>, ApiError> {
    let id = parse_block_id(&id)?;
    let store = state.api().store.clone();
    let txids = blocking(move || {
        let (hash, _) = resolve_block(&store, id)?;
        let bytes = block_bytes(&store, &hash)?;
        let block = Block::decode(&bytes, usize::MAX)
            .map_err(|e| ApiError::internal(format!("stored block {hash} is corrupt: {e}")))?;
        Ok(block.txids().iter().map(Hash::to_hex).collect())
    })
    .await?;
    Ok(Json(txids))
}

/// A page of a block's transactions, in block order.
#[utoipa::path(
    get, path = "/v1/blocks/{id}/transactions", tag = "blocks",
    params(
        ("id" = String, Path, description = "Block hash (64 hex digits) or main-chain height (decimal)", pattern = "^([0-9]{1,19}|(0[xX])?[0-9a-fA-F]{64})$"),
        PageParams,
    ),
    responses(
        (status = 200, body = Page<BlockTxView>),
        (status = 404, description = "not_found", body = ErrorBody),
    )
)]
pub(crate) async fn block_transactions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<BlockTxView>>, ApiError> {
    let id = parse_block_id(&id)?;
    let limit = page.limit()?;
    let start = page.cursor(number_cursor)?.unwrap_or(0);
    let store = state.api().store.clone();
    let page = blocking(move || {
        let (hash, _) = resolve_block(&store, id)?;
        let bytes = block_bytes(&store, &hash)?;
        let count = encoded(&bytes)?.tx_count() as u64;
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let txs = txs_range(&bytes, start, limit)?;
        let items: Vec<BlockTxView> = txs
            .iter()
            .zip(start..)
            .map(|(tx, i)| BlockTxView {
                tx: tx.into(),
                txid: tx.txid().to_hex(),
                sender: tx.sender().to_hex(),
                index: u32::try_from(i).unwrap_or(u32::MAX),
            })
            .collect();
        let next = start.saturating_add(items.len());
        Ok(Page {
            next_cursor: ((next as u64) < count && !items.is_empty()).then(|| next.to_string()),
            items,
        })
    })
    .await?;
    Ok(Json(page))
}

/// A branch tip (SPEC `/v1/chain/tips`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TipView {
    /// Tip hash.
    pub hash: String,
    /// Tip height.
    pub height: u64,
    /// Cumulative work (64 hex digits).
    pub total_work: String,
    /// Blocks between the main chain and the tip (0 for the active tip).
    pub branch_length: u64,
    /// `active`, `valid-fork`, `invalid` or `headers-only`.
    pub status: String,
}

/// Every known branch tip, like Bitcoin Core's `getchaintips`.
#[utoipa::path(
    get, path = "/v1/chain/tips", tag = "blocks",
    responses((status = 200, body = Vec<TipView>))
)]
pub(crate) async fn chain_tips(
    State(state): State<AppState>,
) -> Result<Json<Vec<TipView>>, ApiError> {
    let snapshot = state.api().snapshot();
    Ok(Json(
        snapshot
            .tips
            .iter()
            .map(|t| TipView {
                hash: t.hash.to_hex(),
                height: t.height,
                total_work: u256_hex(&t.total_work),
                branch_length: t.branch_length,
                status: t.status.to_owned(),
            })
            .collect(),
    ))
}
