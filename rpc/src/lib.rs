//! # peerchain-rpc
//!
//! The HTTP API of SPEC section 5 (axum), its OpenAPI document, Server-Sent Events, Prometheus
//! metrics and the web block explorer.
//!
//! It owns: routes, request parsing and limits, the JSON shapes of the API, the error model.
//! It must never: talk to libp2p or sled directly. Reads go through the ledger's `Store` API;
//! everything else is a [`node_api::NodeRequest`] answered by the node.
//!
//! Code map:
//! - [`router`] and [`serve`] (here and in `server`): the routes and the layers around them
//!   (error normalisation, metrics, CORS, body limits, concurrency limit, timeouts).
//! - `routes/*`: handlers by resource; `reads`: synchronous store reads they share; `views`:
//!   shared JSON shapes; [`pagination`]: pages and cursors; [`error`]: the error model.
//! - [`first_seen`]: when this node first saw recent transactions, shared with the chain
//!   thread.
//! - [`sse`]: `/v1/events`; [`metrics`]: the registry the node records into; [`openapi`]:
//!   `/openapi.json`; `explorer`: `GET /`.
//! - `fuzzing` (at the end of this file, feature `fuzzing`): the entry points of the fuzz
//!   targets in `fuzz/` (docs/FUZZING.md).
//!
//! Invariants: every error response is `{"error": {"code", "message"}}` (the `normalize`
//! middleware rewrites the few that axum and tower produce otherwise); no handler waits on
//! the store inside an async worker (reads run on the blocking pool); every wait a client can
//! cause is bounded by a [`config::Limits`] field.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

pub mod config;
pub mod error;
mod explorer;
mod extract;
pub mod first_seen;
pub mod metrics;
pub mod node_api;
pub mod openapi;
pub mod pagination;
mod reads;
pub mod routes;
mod server;
pub mod sse;
mod state;
pub mod views;

pub use config::Limits;
pub use explorer::CHARTS_JS;
pub use metrics::Metrics;
pub use node_api::NodeApi;
pub use server::{serve, serve_with};

use crate::error::ApiError;
use crate::routes::{accounts, admin, blocks, node, search, transactions};
use crate::state::AppState;

/// The HTTP API with every layer and the default [`Limits`], ready to serve (with [`serve`],
/// or `axum::serve`, which lacks the header deadline and the connection bound).
pub fn router(api: NodeApi) -> Router {
    router_with(api, Limits::default())
}

/// [`router`] with explicit limits.
pub fn router_with(api: NodeApi, limits: Limits) -> Router {
    build(AppState::new(api, limits))
}

/// Routes and layers over an existing state (the server keeps the state to end event streams
/// at shutdown).
pub(crate) fn build(state: AppState) -> Router {
    let limits = state.limits().clone();
    let slots = Slots::new(limits.max_concurrent_requests, "requests");
    let admin_slots = Slots::new(limits.max_admin_requests, "admin requests");
    let batch_slots = Slots::new(limits.max_batch_requests, "batch submissions");
    let public = Router::new()
        .route("/v1/status", get(node::status))
        .route("/v1/transactions", post(transactions::submit))
        .route(
            "/v1/transactions/batch",
            post(transactions::submit_batch)
                .layer(DefaultBodyLimit::max(limits.max_batch_body_bytes))
                .layer(from_fn_with_state(batch_slots, limit_concurrency)),
        )
        .route(
            "/v1/transactions/{txid}",
            get(transactions::get_transaction),
        )
        .route(
            "/v1/transactions/{txid}/proof",
            get(transactions::get_proof),
        )
        .route("/v1/blocks", get(blocks::list_blocks))
        .route("/v1/blocks/{id}", get(blocks::get_block))
        .route("/v1/blocks/{id}/txids", get(blocks::block_txids))
        .route(
            "/v1/blocks/{id}/transactions",
            get(blocks::block_transactions),
        )
        .route("/v1/chain/tips", get(blocks::chain_tips))
        .route("/v1/accounts/{address}", get(accounts::get_account))
        .route(
            "/v1/accounts/{address}/transactions",
            get(accounts::account_history),
        )
        .route("/v1/mempool", get(node::mempool))
        .route("/v1/peers", get(node::peers))
        .route("/v1/peers/banned", get(node::banned_peers))
        .route("/v1/search", get(search::search))
        .route("/metrics", get(metrics::metrics_text))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/", get(explorer::index))
        .route("/explorer/app.js", get(explorer::app_js))
        .route("/explorer/charts.js", get(explorer::charts_js))
        .route("/explorer/style.css", get(explorer::style_css))
        .route("/explorer/nodes.json", get(explorer::nodes_json))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(timeout(limits.request_timeout))
        .layer(from_fn_with_state(slots, limit_concurrency));
    let admin = Router::new()
        .route("/v1/admin/mine", post(admin::mine))
        .route("/v1/admin/mining", post(admin::set_mining))
        .route("/v1/admin/peers", post(admin::dial))
        .route("/v1/admin/peers/{peer_id}/block", post(admin::block_peer))
        .route(
            "/v1/admin/peers/{peer_id}/unblock",
            post(admin::unblock_peer),
        )
        .route(
            "/v1/admin/peers/{peer_id}/link",
            post(admin::set_link_fault),
        )
        .route("/v1/admin/invalidate", post(admin::invalidate))
        .route("/v1/admin/reconsider", post(admin::reconsider))
        .route("/v1/admin/adversary", post(admin::set_adversary))
        .route_layer(from_fn_with_state(state.clone(), admin::require_admin))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(timeout(limits.admin_timeout))
        .layer(from_fn_with_state(admin_slots, limit_concurrency));
    // Event streams are long-lived: no request timeout, their own slot limit.
    let events = Router::new().route("/v1/events", get(sse::events));
    // Liveness and readiness probes answer from memory at once. They take no slot of the
    // public lane (a busy node must not fail its liveness probe with 429 and be restarted for
    // it) and sit outside the trace layer (an unready node answers 503 every probe period,
    // which is not worth a warning each time).
    let probes = Router::new()
        .route("/v1/health", get(node::health))
        .route("/v1/ready", get(node::ready))
        .layer(cors())
        .layer(from_fn_with_state(state.clone(), metrics::track_http))
        .layer(from_fn(error::normalize));
    Router::new()
        .merge(public)
        .merge(admin)
        .merge(events)
        .fallback(error::fallback)
        // A hard cap: a body announced larger than any route accepts is refused before it
        // is read. Within it, each route's own limit answers with the exact number.
        .layer(RequestBodyLimitLayer::new(
            limits
                .max_batch_body_bytes
                .max(limits.max_body_bytes)
                .saturating_add(64 * 1024),
        ))
        .layer(cors())
        .layer(from_fn_with_state(state.clone(), metrics::track_http))
        .layer(from_fn(error::normalize))
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .merge(probes)
        .with_state(state)
}

fn timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, limit)
}

/// Read-only cross-origin access: any origin may GET (one page can query several nodes);
/// no cross-origin POST, so a web page cannot submit or call admin routes from a browser.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers(Any)
        .max_age(Duration::from_secs(3600))
}

/// Requests of one lane in progress (public, admin, batch submissions).
#[derive(Debug, Clone)]
struct Slots {
    semaphore: Arc<Semaphore>,
    max: usize,
    what: &'static str,
}

impl Slots {
    fn new(max: usize, what: &'static str) -> Self {
        Slots {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            what,
        }
    }
}

/// Refuses a request with 429 `rate_limited` when its lane's slots are taken (load shedding
/// rather than queueing, so a flood cannot build a backlog).
async fn limit_concurrency(State(slots): State<Slots>, req: Request, next: Next) -> Response {
    match slots.semaphore.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => ApiError::rate_limited(format!(
            "{} {} are in progress, the most this node serves at once; retry later",
            slots.max, slots.what
        ))
        .into_response(),
    }
}

/// Entry points of the fuzz targets in `fuzz/` (feature `fuzzing`, off by default; the node
/// never enables it): the parsers an HTTP client reaches, called as the handlers call them.
/// Not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use axum::Json;
    use peerchain_ledger::{FeeCursor, Hash, HistoryCursor, Transaction};

    use crate::extract::{json_rejection, parse_address, parse_block_id, parse_hash};
    use crate::pagination::{PageParams, number_cursor};
    use crate::routes::accounts::{Walk, confirmed_cursor, parse_walk, pending_cursor};
    use crate::views::TxFields;

    /// The body of `POST /v1/transactions`, read as the `ApiJson` extractor reads it.
    pub fn parse_tx(body: &[u8]) -> Result<Transaction, String> {
        Json::<TxFields>::from_bytes(body)
            .map(|Json(fields)| fields.into())
            .map_err(|r| json_rejection(r, 0).message)
    }

    /// The body of `POST /v1/transactions/batch`.
    pub fn parse_batch(body: &[u8]) -> Result<Vec<Transaction>, String> {
        crate::routes::transactions::parse_batch(body).map_err(|e| e.message)
    }

    /// `text` as the cursor of each paged list, through `PageParams::cursor` as the handlers
    /// parse it: `Ok(None)` for the first page, `Ok(Some(c))` with `c` the cursor the list
    /// would issue for the same position, `Err` with the `invalid_cursor` message.
    #[derive(Debug)]
    pub struct Cursors {
        /// `GET /v1/blocks` and `GET /v1/blocks/{id}/transactions` (decimal positions).
        pub number: Result<Option<String>, String>,
        /// `GET /v1/mempool` (fee order).
        pub mempool: Result<Option<String>, String>,
        /// `GET /v1/accounts/{address}/transactions` (pending, then confirmed phase).
        pub history: Result<Option<String>, String>,
    }

    /// Parses `text` as every list's cursor.
    pub fn parse_cursors(text: &str) -> Cursors {
        let page = PageParams {
            limit: None,
            cursor: Some(text.to_owned()),
        };
        Cursors {
            number: page
                .cursor(number_cursor)
                .map(|c| c.map(|n| n.to_string()))
                .map_err(|e| e.message),
            mempool: page
                .cursor(FeeCursor::from_text)
                .map(|c| c.map(|c| c.to_text()))
                .map_err(|e| e.message),
            history: page
                .cursor(parse_walk)
                .map(|w| {
                    w.map(|w| match w {
                        Walk::Pending { h0, after } => {
                            after.map_or_else(|| format!("p{h0}"), |k| pending_cursor(h0, k))
                        }
                        Walk::Confirmed(c) => confirmed_cursor(c),
                    })
                })
                .map_err(|e| e.message),
        }
    }

    /// A cursor of each list, as the lists issue them (seed corpus of the fuzz targets).
    pub fn example_cursors(txid: Hash) -> Vec<String> {
        vec![
            1234.to_string(),
            FeeCursor {
                fee: 5,
                seq: 17,
                txid,
            }
            .to_text(),
            pending_cursor(12, (1_767_225_600_000, txid)),
            confirmed_cursor(HistoryCursor {
                height: 12,
                index: 3,
            }),
        ]
    }

    /// `text` as the path parameters of the routes: a hash (`/v1/transactions/{txid}`), an
    /// address (`/v1/accounts/{address}`) and a block id (`/v1/blocks/{id}`). Returns which
    /// parsed.
    pub fn parse_path_params(text: &str) -> [bool; 3] {
        [
            parse_hash(text, "txid").is_ok(),
            parse_address(text).is_ok(),
            parse_block_id(text).is_ok(),
        ]
    }
}
