//! Node facts: liveness and readiness probes, status, mempool and peers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use peerchain_ledger::FeeCursor;
use peerchain_ledger::types::u256_hex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
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

/// The answer of `GET /v1/health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: answers 200 `{"status": "ok"}` whenever the HTTP server answers at all, without
/// touching the store or the chain thread (a Kubernetes liveness probe, a Docker HEALTHCHECK).
/// Its requests are not counted against the public lane, so a busy node is not restarted for
/// answering 429.
#[utoipa::path(
    get, path = "/v1/health", tag = "node",
    responses((status = 200, body = HealthView))
)]
pub(crate) async fn health() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".to_owned(),
    })
}

/// The answer of `GET /v1/ready` when the node is ready.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyView {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// Connected peers (at least 1).
    pub peer_count: u64,
}

/// Why a node is not ready to serve the network's state: the error code and message of
/// `GET /v1/ready`, or `None` when it is ready (at least one peer, not syncing).
pub fn not_ready(peer_count: usize, syncing: bool) -> Option<(&'static str, String)> {
    if peer_count == 0 {
        Some((
            "no_peers",
            "not ready: no connected peers, so this node cannot know the network's tip".to_owned(),
        ))
    } else if syncing {
        Some((
            "syncing",
            format!(
                "not ready: syncing, catching up with a peer that has more work \
                 ({peer_count} peers connected)"
            ),
        ))
    } else {
        None
    }
}

/// Readiness: 200 when the node serves, has at least one peer and is not syncing; else 503
/// with the error code `no_peers` or `syncing` (a Kubernetes readiness probe). Answered from
/// memory, like `/v1/health`, outside the public lane; a 503 here is not logged.
#[utoipa::path(
    get, path = "/v1/ready", tag = "node",
    responses(
        (status = 200, body = ReadyView),
        (status = 503, description = "Not ready: `no_peers` (no connected peer) or `syncing` (catching up with a peer that has more work)", body = ErrorBody),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let net = &state.api().net;
    let peers = net.peer_count();
    match not_ready(peers, net.syncing()) {
        // Built here rather than through `ApiError`, which logs every 5xx: an unready node
        // answers its probe with 503 every few seconds, which is no news.
        Some((code, message)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody::new(code, message)),
        )
            .into_response(),
        None => Json(ReadyView {
            status: "ready".to_owned(),
            peer_count: peers as u64,
        })
        .into_response(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_a_peer_and_no_sync() {
        assert_eq!(not_ready(1, false), None);
        assert_eq!(not_ready(8, false), None);
        let (code, message) = not_ready(0, false).expect("no peers");
        assert_eq!(code, "no_peers");
        assert!(message.contains("no connected peers"), "{message}");
        let (code, message) = not_ready(3, true).expect("syncing");
        assert_eq!(code, "syncing");
        assert!(message.contains("3 peers"), "{message}");
        // No peers is the first reason (a node cannot sync without one anyway).
        assert_eq!(not_ready(0, true).map(|(c, _)| c), Some("no_peers"));
    }
}
