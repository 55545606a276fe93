//! Node facts: status, mempool and peers.

use axum::Json;
use axum::extract::State;
use peerchain_ledger::FeeCursor;
use peerchain_ledger::types::u256_hex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::node_api::{BannedPeerInfo, LinkFaultView, NodeRequest, PeerInfo};
use crate::pagination::PageParams;
use crate::state::{AppState, blocking};
use crate::views::TransactionView;

/// The node and its main chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusView {
    /// Network chain id.
    pub chain_id: u64,
    /// Genesis block hash (identifies the network).
    pub genesis_hash: String,
    /// Main-chain tip height.
    pub height: u64,
    /// Main-chain tip hash.
    pub tip_hash: String,
    /// Tip timestamp (ms since the Unix epoch).
    pub tip_timestamp_ms: u64,
    /// Target of the tip block (64 hex digits).
    pub target: String,
    /// Cumulative work of the main chain (64 hex digits).
    pub total_work: String,
    /// State digest after the tip (64 hex digits).
    pub state_digest: String,
    /// Pending transactions.
    pub mempool_size: u64,
    /// Connected peers.
    pub peer_count: u64,
    /// Whether the node is catching up with a peer that has more work.
    pub syncing: bool,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// Software version.
    pub version: String,
    /// Whether continuous mining is on.
    pub mining: bool,
    /// Operator-set link faults (`POST /v1/admin/peers/{peer_id}/link`); empty unless a test
    /// set some.
    pub link_faults: Vec<LinkFaultView>,
}

/// Chain tip and node facts.
#[utoipa::path(
    get, path = "/v1/status", tag = "node",
    responses((status = 200, body = StatusView))
)]
pub(crate) async fn status(State(state): State<AppState>) -> Result<Json<StatusView>, ApiError> {
    let snapshot = state.api().snapshot();
    let api = state.api().clone();
    let view = blocking(move || {
        let tip = api.store.tip()?;
        let record = api
            .store
            .record(&tip)?
            .ok_or_else(|| ApiError::internal(format!("tip block {tip} has no record")))?;
        let digest = api
            .store
            .digest_of(&tip)?
            .ok_or_else(|| ApiError::internal(format!("tip block {tip} has no state digest")))?;
        Ok(StatusView {
            chain_id: api.genesis.chain_id,
            genesis_hash: api.store.genesis_hash().to_hex(),
            height: record.header.height,
            tip_hash: tip.to_hex(),
            tip_timestamp_ms: record.header.timestamp_ms,
            target: record.header.target.to_string(),
            total_work: u256_hex(&record.total_work),
            state_digest: digest.to_hex(),
            mempool_size: snapshot.mempool.len() as u64,
            peer_count: api.net.peer_count() as u64,
            syncing: api.net.syncing(),
            peer_id: api.net.peer_id().to_owned(),
            version: api.version.clone(),
            mining: snapshot.mining,
            link_faults: api.net.link_faults(),
        })
    })
    .await?;
    Ok(Json(view))
}

/// The mempool: its size and a page of pending transactions, highest fee first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MempoolView {
    /// Pending transactions in all.
    pub count: u64,
    /// Their encoded bytes.
    pub bytes: u64,
    /// This page.
    pub items: Vec<TransactionView>,
    /// Cursor of the next page, `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Pending transactions, highest fee first.
#[utoipa::path(
    get, path = "/v1/mempool", tag = "node",
    params(PageParams),
    responses((status = 200, body = MempoolView))
)]
pub(crate) async fn mempool(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<MempoolView>, ApiError> {
    let limit = page.limit()?;
    let after = page.cursor(FeeCursor::from_text)?;
    let snapshot = state.api().snapshot();
    let pool = &snapshot.mempool;
    let mut entries = pool.by_fee_desc_after(after).take(limit + 1);
    let page: Vec<_> = entries.by_ref().take(limit).collect();
    let more = entries.next().is_some();
    Ok(Json(MempoolView {
        count: pool.len() as u64,
        bytes: pool.bytes() as u64,
        next_cursor: more
            .then(|| page.last().map(|e| e.fee_cursor().to_text()))
            .flatten(),
        items: page
            .iter()
            .map(|e| TransactionView::pending(&e.tx, Some(e.first_seen_ms)))
            .collect(),
    }))
}

/// Connected peers.
#[utoipa::path(
    get, path = "/v1/peers", tag = "node",
    responses((status = 200, body = Vec<PeerInfo>))
)]
pub(crate) async fn peers(State(state): State<AppState>) -> Result<Json<Vec<PeerInfo>>, ApiError> {
    Ok(Json(state.api().ask(NodeRequest::Peers).await?))
}

/// Peers this node refuses: banned for misbehaviour (until `until_ms`) or blocked by the
/// operator (`until_ms` null); at most 1,000, ordered by peer id.
#[utoipa::path(
    get, path = "/v1/peers/banned", tag = "node",
    responses((status = 200, body = Vec<BannedPeerInfo>))
)]
pub(crate) async fn banned_peers(
    State(state): State<AppState>,
) -> Result<Json<Vec<BannedPeerInfo>>, ApiError> {
    Ok(Json(state.api().ask(NodeRequest::BannedPeers).await?))
}
