//! `POST /v1/transactions`, `POST /v1/transactions/batch`, `GET /v1/transactions/{txid}` and
//! its Merkle proof.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use peerchain_ledger::merkle::inclusion_proof;
use peerchain_ledger::{Hash, Transaction};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::config::MAX_BATCH;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiJson, has_json_content_type, invalid_json, parse_hash, unsupported_media_type,
};
use crate::node_api::{NodeRequest, Submitted};
use crate::reads::confirmed_tx;
use crate::state::{AppState, blocking};
use crate::views::{SubmitResult, TransactionView, TxFields, TxStatus};

/// Submits one transaction: 202 when it entered the mempool, 200 when it was already pending
/// or confirmed.
#[utoipa::path(
    post, path = "/v1/transactions", tag = "transactions",
    request_body = TxFields,
    responses(
        (status = 202, description = "Entered the mempool (status pending), or waits for its sender's earlier nonces (status queued)", body = SubmitResult),
        (status = 200, description = "Already known (queued, pending or confirmed)", body = SubmitResult),
        (status = 422, description = "Invalid against the state: bad_signature, wrong_chain, fee_too_low, nonce_too_low, nonce_too_high, insufficient_funds, replacement_underpriced", body = ErrorBody),
        (status = 429, description = "mempool_full or rate_limited", body = ErrorBody),
    )
)]
pub(crate) async fn submit(
    State(state): State<AppState>,
    ApiJson(fields): ApiJson<TxFields>,
) -> Result<(StatusCode, Json<SubmitResult>), ApiError> {
    let tx: Transaction = fields.into();
    let txid = tx.txid();
    if is_confirmed(&state, txid).await? {
        return Ok((StatusCode::OK, Json(result(txid, TxStatus::Confirmed))));
    }
    let mut answers = state
        .api()
        .ask(|reply| NodeRequest::Submit(vec![tx], reply))
        .await??;
    let answer = answers
        .pop()
        .ok_or_else(|| ApiError::internal("the node answered a submission with no result"))?;
    match answer {
        Ok(s) => {
            let status = if s.new {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(submitted(&s))))
        }
        // Confirmed between the first look and the submission: known, not an error.
        Err(_) if is_confirmed(&state, txid).await? => {
            Ok((StatusCode::OK, Json(result(txid, TxStatus::Confirmed))))
        }
        Err(e) => Err(ApiError::from_mempool(&e)),
    }
}

/// The answer to an accepted submission: `queued` or `pending`.
fn submitted(s: &Submitted) -> SubmitResult {
    let status = if s.queued {
        TxStatus::Queued
    } else {
        TxStatus::Pending
    };
    result(s.txid, status)
}

fn result(txid: Hash, status: TxStatus) -> SubmitResult {
    SubmitResult {
        txid: txid.to_hex(),
        status,
    }
}

/// Whether `txid` is in the main chain.
async fn is_confirmed(state: &AppState, txid: Hash) -> Result<bool, ApiError> {
    Ok(confirmed_among(state, vec![txid]).await?.first() == Some(&true))
}

/// Which of `txids` are in the main chain.
async fn confirmed_among(state: &AppState, txids: Vec<Hash>) -> Result<Vec<bool>, ApiError> {
    let store = state.api().store.clone();
    blocking(move || {
        txids
            .iter()
            .map(|t| Ok(store.tx_location(t)?.is_some()))
            .collect()
    })
    .await
}

/// One entry of a batch answer: the outcome or the error of the item at the same position.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    /// Accepted or already known.
    Accepted(SubmitResult),
    /// Refused by the node (the 422 and 429 codes of `POST /v1/transactions`).
    Refused(ErrorBody),
}

/// The items of a batch, parsed lazily; counts items past the cap without keeping them.
struct CappedBatch<'a> {
    items: Vec<&'a RawValue>,
    total: usize,
}

impl<'de> Deserialize<'de> for CappedBatch<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CappedBatch<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON array of transaction objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                let mut total = 0usize;
                while total < MAX_BATCH {
                    match seq.next_element::<&RawValue>()? {
                        Some(item) => {
                            items.push(item);
                            total += 1;
                        }
                        None => return Ok(CappedBatch { items, total }),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    total += 1;
                }
                Ok(CappedBatch { items, total })
            }
        }
        d.deserialize_seq(V)
    }
}

/// Submits up to 10,000 transactions; the answer holds one entry per item, in order.
#[utoipa::path(
    post, path = "/v1/transactions/batch", tag = "transactions",
    request_body(content = Vec<TxFields>, description = "Up to 10,000 transaction objects"),
    responses(
        (status = 200, description = "One result per item, in order", body = Vec<BatchItem>),
        (status = 400, description = "invalid_json: the body is not an array of transaction objects (the message names the first malformed item)", body = ErrorBody),
        (status = 413, description = "body_too_large, or batch_too_large for more than 10,000 items", body = ErrorBody),
    )
)]
pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<BatchItem>>, ApiError> {
    if !has_json_content_type(&headers) {
        return Err(unsupported_media_type());
    }
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large(state.limits().max_batch_body_bytes)
        } else {
            ApiError::bad_request("invalid_json", r.body_text())
        }
    })?;
    let txs = parse_batch(&body)?;
    Ok(Json(admit_all(&state, txs).await?))
}

/// Parses a batch body: a JSON array of at most [`MAX_BATCH`] transaction objects.
pub(crate) fn parse_batch(body: &[u8]) -> Result<Vec<Transaction>, ApiError> {
    let batch: CappedBatch<'_> =
        serde_json::from_slice(body).map_err(|e| invalid_json(&e.to_string()))?;
    if batch.total > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "batch of {} transactions is over the limit of {MAX_BATCH}",
                batch.total
            ),
        ));
    }
    // Like a single submission, a malformed item refuses the request (400, naming the item);
    // the per-item answers are the node's verdicts on well-formed transactions.
    batch
        .items
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_str::<TxFields>(raw.get())
                .map(Transaction::from)
                .map_err(|e| invalid_json(&format!("item {i}: {e}")))
        })
        .collect()
}

/// Looks up confirmed items, submits the rest in one request and merges the answers in order.
async fn admit_all(state: &AppState, txs: Vec<Transaction>) -> Result<Vec<BatchItem>, ApiError> {
    let txids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
    let confirmed = confirmed_among(state, txids.clone()).await?;
    let mut out: Vec<Option<BatchItem>> = Vec::with_capacity(txs.len());
    let mut to_submit = Vec::new();
    let mut slots = Vec::new();
    for (i, ((tx, txid), done)) in txs.into_iter().zip(txids).zip(confirmed).enumerate() {
        if done {
            out.push(Some(BatchItem::Accepted(result(txid, TxStatus::Confirmed))));
        } else {
            out.push(None);
            slots.push(i);
            to_submit.push(tx);
        }
    }
    if !to_submit.is_empty() {
        let answers = state
            .api()
            .ask(|reply| NodeRequest::Submit(to_submit, reply))
            .await??;
        for (slot, answer) in slots.into_iter().zip(answers) {
            let item = match answer {
                Ok(s) => BatchItem::Accepted(submitted(&s)),
                Err(e) => BatchItem::Refused(ApiError::from_mempool(&e).body()),
            };
            if let Some(entry) = out.get_mut(slot) {
                *entry = Some(item);
            }
        }
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| ApiError::internal("the node answered fewer results than items")))
        .collect()
}

/// A transaction by id: pending or confirmed, with `first_seen_ms` when this node saw it.
#[utoipa::path(
    get, path = "/v1/transactions/{txid}", tag = "transactions",
    params(("txid" = String, Path, description = "Transaction id (64 hex digits)", pattern = "^(0[xX])?[0-9a-fA-F]{64}$")),
    responses(
        (status = 200, body = TransactionView),
        (status = 404, description = "not_found", body = ErrorBody),
    )
)]
pub(crate) async fn get_transaction(
    State(state): State<AppState>,
    Path(txid): Path<String>,
) -> Result<Json<TransactionView>, ApiError> {
    let txid = parse_hash(&txid, "txid")?;
    if let Some(view) = confirmed_view(&state, txid).await? {
        return Ok(Json(view));
    }
    let snapshot = state.api().snapshot();
    if let Some(p) = snapshot.mempool.get(&txid) {
        return Ok(Json(TransactionView::pending(&p.tx, Some(p.first_seen_ms))));
    }
    if let Some(tx) = snapshot.queued.get(&txid) {
        return Ok(Json(TransactionView::queued(tx)));
    }
    // It may have been confirmed while we asked the mempool.
    if let Some(view) = confirmed_view(&state, txid).await? {
        return Ok(Json(view));
    }
    Err(ApiError::not_found(format!(
        "transaction {txid} is unknown"
    )))
}

async fn confirmed_view(state: &AppState, txid: Hash) -> Result<Option<TransactionView>, ApiError> {
    let store = state.api().store.clone();
    let found =
        blocking(move || {
            let tip = store.tip_record()?.header.height;
            Ok(confirmed_tx(&store, &txid)?
                .map(|(tx, loc)| TransactionView::confirmed(&tx, &loc, tip)))
        })
        .await?;
    let Some(mut view) = found else {
        return Ok(None);
    };
    view.first_seen_ms = state.api().snapshot().first_seen_ms(&txid);
    Ok(Some(view))
}

/// RFC 9162 inclusion proof of a confirmed transaction.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProofView {
    /// Transaction id (the leaf).
    pub txid: String,
    /// Block that holds it.
    pub block_hash: String,
    /// Its height.
    pub height: u64,
    /// Position of the leaf.
    pub index: u32,
    /// Leaves in the tree (transactions in the block).
    pub leaf_count: u64,
    /// Audit path: sibling hashes from the leaf upwards.
    pub siblings: Vec<String>,
    /// Merkle root in the block header.
    pub tx_root: String,
}

/// The Merkle inclusion proof of a confirmed transaction.
#[utoipa::path(
    get, path = "/v1/transactions/{txid}/proof", tag = "transactions",
    params(("txid" = String, Path, description = "Transaction id (64 hex digits)", pattern = "^(0[xX])?[0-9a-fA-F]{64}$")),
    responses(
        (status = 200, body = ProofView),
        (status = 404, description = "not_found: unknown or not confirmed", body = ErrorBody),
    )
)]
pub(crate) async fn get_proof(
    State(state): State<AppState>,
    Path(txid): Path<String>,
) -> Result<Json<ProofView>, ApiError> {
    let txid = parse_hash(&txid, "txid")?;
    let store = state.api().store.clone();
    let view = blocking(move || {
        let Some(loc) = store.tx_location(&txid)? else {
            return Err(ApiError::not_found(format!(
                "transaction {txid} is not in the main chain"
            )));
        };
        let block = store.block(&loc.block_hash)?.ok_or_else(|| {
            ApiError::internal(format!("indexed block {} is missing", loc.block_hash))
        })?;
        let leaves = block.txids();
        let siblings = inclusion_proof(&leaves, loc.index as usize).ok_or_else(|| {
            ApiError::internal(format!(
                "index {} is outside block {}",
                loc.index, loc.block_hash
            ))
        })?;
        Ok(ProofView {
            txid: txid.to_hex(),
            block_hash: loc.block_hash.to_hex(),
            height: loc.height,
            index: loc.index,
            leaf_count: leaves.len() as u64,
            siblings: siblings.iter().map(Hash::to_hex).collect(),
            tx_root: block.header.tx_root.to_hex(),
        })
    })
    .await?;
    Ok(Json(view))
}
