//! `GET /v1/search?q=`: what a height, hash, txid or address names.

use axum::Json;
use axum::extract::State;
use peerchain_ledger::{AccountReader, Address, Hash};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, shorten};
use crate::state::{AppState, blocking};

/// The search query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// A main-chain height (decimal), a block hash or txid (64 hex digits), or an address
    /// (40 hex digits).
    #[param(pattern = "\\S")]
    pub q: String,
}

/// What was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchKind {
    /// A block: `id` is its hash.
    Block,
    /// A transaction: `id` is its txid.
    Transaction,
    /// An account: `id` is its address.
    Account,
}

/// A search hit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResult {
    /// What `id` names.
    pub kind: SearchKind,
    /// Canonical id: a block hash, a txid or an address (lowercase hex).
    pub id: String,
}

/// Resolves a height, block hash, txid or address.
#[utoipa::path(
    get, path = "/v1/search", tag = "search",
    params(SearchParams),
    responses(
        (status = 200, body = SearchResult),
        (status = 404, description = "not_found: nothing matches", body = ErrorBody),
    )
)]
pub(crate) async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<SearchResult>, ApiError> {
    let q = params.q.trim().to_owned();
    let miss = || ApiError::not_found(format!("nothing matches {:?}", shorten(&q)));
    if q.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q is empty: give a height, a hash, a txid or an address",
        ));
    }
    let digits = q.bytes().all(|b| b.is_ascii_digit());
    if digits && q.len() != 64 && q.len() != 40 {
        let Ok(height) = q.parse::<u64>() else {
            return Err(miss());
        };
        let store = state.api().store.clone();
        let hash = blocking(move || Ok(store.main_hash(height)?)).await?;
        return hash
            .map(|h| hit(SearchKind::Block, h.to_hex()))
            .ok_or_else(miss);
    }
    if let Ok(hash) = q.parse::<Hash>() {
        return search_hash(&state, hash).await?.ok_or_else(miss);
    }
    if let Ok(address) = q.parse::<Address>() {
        return search_address(&state, address).await?.ok_or_else(miss);
    }
    Err(miss())
}

fn hit(kind: SearchKind, id: String) -> Json<SearchResult> {
    Json(SearchResult { kind, id })
}

async fn search_hash(state: &AppState, hash: Hash) -> Result<Option<Json<SearchResult>>, ApiError> {
    let store = state.api().store.clone();
    let (block, confirmed) = blocking(move || {
        Ok((
            store.record(&hash)?.is_some(),
            store.tx_location(&hash)?.is_some(),
        ))
    })
    .await?;
    if block {
        return Ok(Some(hit(SearchKind::Block, hash.to_hex())));
    }
    if confirmed || state.api().snapshot().mempool.contains(&hash) {
        return Ok(Some(hit(SearchKind::Transaction, hash.to_hex())));
    }
    Ok(None)
}

async fn search_address(
    state: &AppState,
    address: Address,
) -> Result<Option<Json<SearchResult>>, ApiError> {
    let store = state.api().store.clone();
    let known =
        blocking(move || Ok(!store.account(&address)?.is_empty() || store.tx_count(&address)? > 0))
            .await?;
    let known = known || state.api().snapshot().mempool.involving_count(&address) > 0;
    Ok(known.then(|| hit(SearchKind::Account, address.to_hex())))
}
