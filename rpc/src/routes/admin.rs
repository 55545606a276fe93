//! Admin calls, behind `Authorization: Bearer <token>` (compared in constant time; 401
//! `unauthorized` otherwise): mine now, mining on/off and the hash-rate cap, dial,
//! block/unblock a peer, link faults, invalidate/reconsider a block, adversary modes.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use peerchain_ledger::{Address, Hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::config::MAX_MINE_BLOCKS;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::node_api::{LinkFaultView, NodeRequest};
use crate::state::AppState;

/// Whether `given` equals `expected`, in time independent of where they differ (both are
/// hashed first, so their lengths do not leak either).
fn tokens_match(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Middleware of the admin routes: 401 unless the bearer token matches (an empty configured
/// token disables the admin calls).
pub(crate) async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let expected = &state.api().admin_token;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(token) if !expected.is_empty() && tokens_match(token, expected) => next.run(req).await,
        Some(_) => unauthorized("the bearer token does not match admin.token"),
        None => unauthorized(
            "admin calls need the header Authorization: Bearer <token from admin.token>",
        ),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// `POST /v1/admin/mine` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MineRequest {
    /// Blocks to mine now on the current tip.
    #[schema(minimum = 1, maximum = 1000)]
    pub blocks: u32,
    /// Reward address (default: the node's miner address).
    #[schema(value_type = Option<String>, pattern = "^(0[xX])?[0-9a-fA-F]{40}$")]
    #[serde(default)]
    pub miner: Option<Address>,
}

/// The blocks mined.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MineResponse {
    /// Their hashes, in order.
    pub hashes: Vec<String>,
}

/// Success of an admin call without a result.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminOk {
    /// Always true.
    pub ok: bool,
}

fn ok() -> Json<AdminOk> {
    Json(AdminOk { ok: true })
}

/// Mines `blocks` blocks now on the current tip.
#[utoipa::path(
    post, path = "/v1/admin/mine", tag = "admin",
    request_body = MineRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = MineResponse),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn mine(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MineRequest>,
) -> Result<Json<MineResponse>, ApiError> {
    if body.blocks == 0 || body.blocks > MAX_MINE_BLOCKS {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("blocks {} is outside 1..={MAX_MINE_BLOCKS}", body.blocks),
        ));
    }
    let hashes = state
        .api()
        .ask(|reply| NodeRequest::Mine {
            blocks: body.blocks,
            miner: body.miner,
            reply,
        })
        .await??;
    Ok(Json(MineResponse {
        hashes: hashes.iter().map(Hash::to_hex).collect(),
    }))
}

/// `POST /v1/admin/mining` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MiningRequest {
    /// Start (true) or stop (false) continuous mining.
    pub enabled: bool,
    /// New hash-rate cap of the node's miner, hashes per second (0: no cap); absent leaves it.
    #[serde(default)]
    pub hashrate: Option<u64>,
}

/// Mining state after the call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MiningResponse {
    /// Whether continuous mining is on.
    pub mining: bool,
    /// The miner's hash-rate cap, hashes per second (`null`: no cap).
    pub hashrate_cap: Option<u64>,
}

/// Starts or stops continuous mining.
#[utoipa::path(
    post, path = "/v1/admin/mining", tag = "admin",
    request_body = MiningRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = MiningResponse),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn set_mining(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MiningRequest>,
) -> Result<Json<MiningResponse>, ApiError> {
    let hashrate_cap = state
        .api()
        .ask(|reply| NodeRequest::SetMining {
            enabled: body.enabled,
            hashrate: body.hashrate,
            reply,
        })
        .await??;
    Ok(Json(MiningResponse {
        mining: body.enabled,
        hashrate_cap,
    }))
}

/// `POST /v1/admin/peers/{peer_id}/link` body: the fault of the link from that peer. Absent
/// fields are zero; all zero clears the fault.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkFaultRequest {
    /// Fraction of the peer's gossip messages dropped, 0 to 1.
    #[serde(default)]
    pub loss: f64,
    /// Added delay of every message from the peer, ms (at most 10,000).
    #[serde(default)]
    pub delay_ms: u64,
    /// Bandwidth of the link from the peer, kilobits per second (0: unlimited).
    #[serde(default)]
    pub bandwidth_kbps: u64,
}

/// Every faulted link after the call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LinkFaultsResponse {
    /// The faulted links, by peer id.
    pub link_faults: Vec<LinkFaultView>,
}

/// Sets the fault of the link from a peer: this node drops a fraction of that peer's gossip,
/// delays its messages, or limits their bandwidth (for testing a network on one machine; see
/// docs/SCENARIOS.md). Set it on both nodes to fault both directions.
#[utoipa::path(
    post, path = "/v1/admin/peers/{peer_id}/link", tag = "admin",
    params(("peer_id" = String, Path, description = "libp2p peer id")),
    request_body = LinkFaultRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = LinkFaultsResponse),
        (status = 400, description = "a value out of range, a malformed peer id or this node's own", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 409, description = "every link-fault slot is taken", body = ErrorBody),
    )
)]
pub(crate) async fn set_link_fault(
    State(state): State<AppState>,
    Path(peer_id): Path<String>,
    ApiJson(body): ApiJson<LinkFaultRequest>,
) -> Result<Json<LinkFaultsResponse>, ApiError> {
    let fault = LinkFaultView {
        peer_id,
        loss: body.loss,
        delay_ms: body.delay_ms,
        bandwidth_kbps: body.bandwidth_kbps,
    };
    let link_faults = state
        .api()
        .ask(|reply| NodeRequest::SetLinkFault(fault, reply))
        .await??;
    Ok(Json(LinkFaultsResponse { link_faults }))
}

/// `POST /v1/admin/peers` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialRequest {
    /// Multiaddr to dial, e.g. `/ip4/127.0.0.1/tcp/7711`.
    #[schema(pattern = "^/")]
    pub addr: String,
}

/// Dials a peer.
#[utoipa::path(
    post, path = "/v1/admin/peers", tag = "admin",
    request_body = DialRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminOk),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn dial(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DialRequest>,
) -> Result<Json<AdminOk>, ApiError> {
    state
        .api()
        .ask(|reply| NodeRequest::Dial(body.addr, reply))
        .await??;
    Ok(ok())
}

/// Disconnects and refuses a peer.
#[utoipa::path(
    post, path = "/v1/admin/peers/{peer_id}/block", tag = "admin",
    params(("peer_id" = String, Path, description = "libp2p peer id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminOk),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn block_peer(
    State(state): State<AppState>,
    Path(peer_id): Path<String>,
) -> Result<Json<AdminOk>, ApiError> {
    state
        .api()
        .ask(|reply| NodeRequest::BlockPeer(peer_id, reply))
        .await??;
    Ok(ok())
}

/// Allows a blocked peer again.
#[utoipa::path(
    post, path = "/v1/admin/peers/{peer_id}/unblock", tag = "admin",
    params(("peer_id" = String, Path, description = "libp2p peer id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminOk),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn unblock_peer(
    State(state): State<AppState>,
    Path(peer_id): Path<String>,
) -> Result<Json<AdminOk>, ApiError> {
    state
        .api()
        .ask(|reply| NodeRequest::UnblockPeer(peer_id, reply))
        .await??;
    Ok(ok())
}

/// `POST /v1/admin/invalidate` and `/v1/admin/reconsider` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HashRequest {
    /// Block hash (64 hex digits).
    #[schema(value_type = String, pattern = "^(0[xX])?[0-9a-fA-F]{64}$")]
    pub hash: Hash,
}

/// Treats a block and its descendants as invalid, reorganising away from them.
#[utoipa::path(
    post, path = "/v1/admin/invalidate", tag = "admin",
    request_body = HashRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminOk),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HashRequest>,
) -> Result<Json<AdminOk>, ApiError> {
    state
        .api()
        .ask(|reply| NodeRequest::Invalidate(body.hash, reply))
        .await??;
    Ok(ok())
}

/// Undoes `invalidate` on a block and its descendants.
#[utoipa::path(
    post, path = "/v1/admin/reconsider", tag = "admin",
    request_body = HashRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminOk),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
pub(crate) async fn reconsider(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<HashRequest>,
) -> Result<Json<AdminOk>, ApiError> {
    state
        .api()
        .ask(|reply| NodeRequest::Reconsider(body.hash, reply))
        .await??;
    Ok(ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(tokens_match("secret", "secret"));
        assert!(!tokens_match("secret", "secreT"));
        assert!(!tokens_match("", "secret"));
        assert!(!tokens_match("secret-and-more", "secret"));
    }
}

/// Body of `POST /v1/admin/adversary`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdversaryRequest {
    /// `invalid-blocks`, `tx-flood`, `cheap-fork`, `double-spend`, `selfish` or
    /// `selfish:DEPTH`, or `null` to stop. The network-level modes (`stall-sync`,
    /// `stall-silent`, `slow-reader`, `sybil:N`) are chosen at start only (400 here).
    pub mode: Option<String>,
}

/// Switches an adversary mode on or off (only on a node started with `--allow-adversary`:
/// 403 `adversary_not_allowed` otherwise). For testing defences; never on a network you care
/// about.
#[utoipa::path(
    post, path = "/v1/admin/adversary", tag = "admin",
    request_body = AdversaryRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = AdminOk),
        (status = 400, description = "unknown mode, or a mode chosen at start only", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "adversary_not_allowed", body = ErrorBody),
    )
)]
pub(crate) async fn set_adversary(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AdversaryRequest>,
) -> Result<Json<AdminOk>, ApiError> {
    state
        .api()
        .ask(|reply| NodeRequest::SetAdversary(body.mode, reply))
        .await??;
    Ok(ok())
}
