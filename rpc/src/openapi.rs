//! The OpenAPI document, generated from the handlers' own types and `#[utoipa::path]`
//! attributes, served at `/openapi.json`. Every operation also documents the error responses
//! any route can give (the error model of SPEC section 5), so a schema checker finds every
//! status the server may answer.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::routes::{accounts, admin, blocks, node, search, transactions};
use crate::sse::{LaggedEvent, ReorgEvent, TxEvent};
use crate::views::BlockSummary;
use crate::{explorer, metrics, sse};

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "peerchain HTTP API",
        description = "JSON over HTTP for a peerchain node (SPEC section 5). Errors are `{\"error\": {\"code\", \"message\"}}`; lists are pages `{\"items\", \"next_cursor\"}` with `limit` (default 25, at most 100) and an opaque `cursor`. Hashes, keys, addresses and 256-bit numbers are lowercase hex."
    ),
    paths(
        node::health,
        node::ready,
        node::status,
        transactions::submit,
        transactions::submit_batch,
        transactions::get_transaction,
        transactions::get_proof,
        blocks::list_blocks,
        blocks::get_block,
        blocks::block_txids,
        blocks::block_transactions,
        blocks::chain_tips,
        accounts::get_account,
        accounts::account_history,
        node::mempool,
        node::peers,
        node::banned_peers,
        search::search,
        sse::events,
        metrics::metrics_text,
        openapi_json,
        explorer::index,
        admin::mine,
        admin::set_mining,
        admin::dial,
        admin::block_peer,
        admin::unblock_peer,
        admin::set_link_fault,
        admin::invalidate,
        admin::reconsider,
        admin::set_adversary,
    ),
    components(schemas(ErrorBody, BlockSummary, ReorgEvent, TxEvent, LaggedEvent)),
    modifiers(&BearerAuth, &CommonErrors),
    tags(
        (name = "node", description = "Node status, mempool and peers"),
        (name = "transactions", description = "Submit and look up transactions"),
        (name = "blocks", description = "Blocks and chain tips"),
        (name = "accounts", description = "Balances and account history"),
        (name = "search", description = "Resolve a height, hash, txid or address"),
        (name = "events", description = "Server-Sent Events"),
        (name = "admin", description = "Operator calls, behind the bearer token of admin.token"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token in admin.token in the node's data directory",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the error responses every route may give to each operation that does not list them.
struct CommonErrors;

const ANY_ROUTE: &[(&str, &str)] = &[
    ("400", "Malformed request (bad hex, query, limit or cursor)"),
    ("404", "not_found"),
    ("429", "rate_limited: too many requests in progress"),
    ("500", "internal: the store failed"),
    ("503", "unavailable (the node cannot serve) or timeout"),
];

const WITH_BODY: &[(&str, &str)] = &[
    ("400", "invalid_json: missing, extra or mistyped field"),
    ("413", "body_too_large"),
    (
        "415",
        "unsupported_media_type: the body must be application/json",
    ),
];

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                if op.request_body.is_some() {
                    add_errors(op, WITH_BODY);
                }
                add_errors(op, ANY_ROUTE);
            }
        }
    }
}

fn add_errors(op: &mut Operation, codes: &[(&str, &str)]) {
    for (status, description) in codes {
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build(),
                )
            });
    }
}

/// The document as JSON text (built once).
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = match serde_json::to_value(ApiDoc::openapi()) {
            Ok(doc) => doc,
            Err(e) => return format!("{{\"error\":\"openapi: {e}\"}}"),
        };
        exact_unsigned(&mut doc);
        doc.to_string()
    })
}

/// utoipa describes `u64` as `int64` (whose maximum is 2^63 - 1) and `u32` as `int32`; the
/// API's integers are unsigned, so the bound is stated exactly instead.
fn exact_unsigned(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let unsigned = map.get("type").and_then(|t| t.as_str()) == Some("integer")
                && map.get("minimum").and_then(|m| m.as_f64()) == Some(0.0);
            let max = match map.get("format").and_then(|f| f.as_str()) {
                Some("int64") if unsigned => Some(u64::MAX),
                Some("int32") if unsigned => Some(u64::from(u32::MAX)),
                _ => None,
            };
            if let Some(max) = max {
                map.remove("format");
                map.entry("maximum").or_insert_with(|| max.into());
                map.insert("minimum".into(), 0.into());
            }
            map.values_mut().for_each(exact_unsigned);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(exact_unsigned),
        _ => {}
    }
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "node",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}
