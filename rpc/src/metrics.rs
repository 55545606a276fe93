//! Prometheus metrics of the node: chain, mempool, peers, mining, gossip, compact blocks
//! (recorded by the node through the methods below), HTTP requests by route (recorded by
//! `track_http`) and the HTTP connections the server closed on a client, by reason (recorded
//! by the server loop).
//!
//! Every label takes values from a small fixed set (routes are axum's matched path templates,
//! reasons and topics are code names), so the number of series stays bounded.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GossipLabels {
    topic: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

fn depth_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 12))
}

/// The node's metrics registry. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    chain_height: Gauge,
    peers: Gauge,
    mempool_transactions: Gauge,
    mempool_bytes: Gauge,
    gap_queued: Gauge,
    gossip_waiting: Gauge,
    blocks_imported: Counter,
    reorgs: Counter,
    reorg_depth: Histogram,
    tx_accepted: Counter,
    tx_rejected: Family<ReasonLabels, Counter>,
    hashrate: Gauge<f64, AtomicU64>,
    disk_full: Gauge,
    signature_verifications: Counter,
    gossip: Family<GossipLabels, Counter>,
    compact_blocks: Family<ReasonLabels, Counter>,
    relayed_early: Family<ReasonLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_latency: HistogramFamily<RouteLabels>,
    http_connections_closed: Family<ReasonLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero, names prefixed `peerchain_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("peerchain");
        let m = Metrics {
            registry: Registry::default(),
            chain_height: Gauge::default(),
            peers: Gauge::default(),
            mempool_transactions: Gauge::default(),
            mempool_bytes: Gauge::default(),
            gap_queued: Gauge::default(),
            gossip_waiting: Gauge::default(),
            blocks_imported: Counter::default(),
            reorgs: Counter::default(),
            reorg_depth: depth_histogram(),
            tx_accepted: Counter::default(),
            tx_rejected: Family::default(),
            hashrate: Gauge::default(),
            disk_full: Gauge::default(),
            signature_verifications: Counter::default(),
            gossip: Family::default(),
            compact_blocks: Family::default(),
            relayed_early: Family::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram),
            http_connections_closed: Family::default(),
        };
        registry.register(
            "chain_height",
            "Height of the main-chain tip",
            m.chain_height.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "mempool_transactions",
            "Pending transactions in the mempool",
            m.mempool_transactions.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Encoded bytes of the pending transactions",
            m.mempool_bytes.clone(),
        );
        registry.register(
            "gap_queued_transactions",
            "Transactions held ahead of a nonce gap (status queued)",
            m.gap_queued.clone(),
        );
        registry.register(
            "gossip_messages_waiting",
            "Gossiped transaction batches whose verdict waits for their held transactions",
            m.gossip_waiting.clone(),
        );
        registry.register(
            "blocks_imported",
            "Blocks that joined the main chain",
            m.blocks_imported.clone(),
        );
        registry.register("reorgs", "Main-chain reorganisations", m.reorgs.clone());
        registry.register(
            "reorg_depth",
            "Blocks disconnected by each reorganisation",
            m.reorg_depth.clone(),
        );
        registry.register(
            "transactions_accepted",
            "Transactions admitted to the mempool",
            m.tx_accepted.clone(),
        );
        registry.register(
            "transactions_rejected",
            "Transactions refused by the mempool, by reason",
            m.tx_rejected.clone(),
        );
        registry.register(
            "hashrate_hashes_per_second",
            "Hash rate of this node's miner",
            m.hashrate.clone(),
        );
        registry.register(
            "signature_verifications",
            "Transaction signatures this node checked (at most about one per transaction it \
             saw: verified signatures are remembered)",
            m.signature_verifications.clone(),
        );
        registry.register(
            "disk_full",
            "1 while the node refuses transactions and blocks for lack of disk space",
            m.disk_full.clone(),
        );
        registry.register(
            "gossip_messages",
            "Gossip messages received, by topic and validation result",
            m.gossip.clone(),
        );
        registry.register(
            "compact_blocks",
            "Gossiped compact blocks, by how the whole block was had (reason: rebuilt from \
             the mempool, its missing transactions fetched from the peer, or fetched_whole)",
            m.compact_blocks.clone(),
        );
        registry.register(
            "blocks_relayed_early",
            "Gossip blocks forwarded before their transactions were applied (high-bandwidth \
             relay), by what the import then found (reason: applied, or invalid_state)",
            m.relayed_early.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests, by route, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route and method",
            m.http_latency.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP connections the server closed on a client, by reason (header_timeout, \
             evicted, write_stalled)",
            m.http_connections_closed.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The main-chain height.
    pub fn set_chain(&self, height: u64) {
        self.chain_height.set(saturating_i64(height));
    }

    /// Connected peers.
    pub fn set_peers(&self, n: usize) {
        self.peers.set(saturating_i64(n as u64));
    }

    /// Mempool size.
    pub fn set_mempool(&self, count: usize, bytes: usize) {
        self.mempool_transactions.set(saturating_i64(count as u64));
        self.mempool_bytes.set(saturating_i64(bytes as u64));
    }

    /// Transactions held ahead of a nonce gap, and gossip messages waiting for them.
    pub fn set_gap(&self, queued: usize, waiting_messages: usize) {
        self.gap_queued.set(saturating_i64(queued as u64));
        self.gossip_waiting
            .set(saturating_i64(waiting_messages as u64));
    }

    /// A block joined the main chain.
    pub fn block_imported(&self) {
        self.blocks_imported.inc();
    }

    /// The main chain reorganised, disconnecting `depth` blocks.
    pub fn reorg(&self, depth: u64) {
        self.reorgs.inc();
        self.reorg_depth.observe(depth as f64);
    }

    /// A transaction entered the mempool.
    pub fn tx_accepted(&self) {
        self.tx_accepted.inc();
    }

    /// A transaction was refused; `reason` is its error code (e.g. `nonce_too_low`).
    pub fn tx_rejected(&self, reason: &str) {
        self.tx_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Brings the signature-check counter up to `total` (the process-wide count).
    pub fn set_signature_verifications(&self, total: u64) {
        let seen = self.signature_verifications.get();
        self.signature_verifications
            .inc_by(total.saturating_sub(seen));
    }

    /// Whether the node's disk is full (it refuses transactions and blocks).
    pub fn set_disk_full(&self, full: bool) {
        self.disk_full.set(i64::from(full));
    }

    /// The miner's current hash rate.
    pub fn set_hashrate(&self, hashes_per_sec: f64) {
        self.hashrate.set(hashes_per_sec);
    }

    /// A gossip message on `topic` was validated with `result` (e.g. `accept`, `reject`).
    pub fn gossip(&self, topic: &str, result: &str) {
        self.gossip
            .get_or_create(&GossipLabels {
                topic: topic.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// A gossiped compact block was `rebuilt` from the mempool, its missing transactions
    /// `fetched` from its sender, or the whole block `fetched_whole`.
    pub fn compact_block(&self, how: &'static str) {
        self.compact_blocks
            .get_or_create(&ReasonLabels {
                reason: how.to_owned(),
            })
            .inc();
    }

    /// A gossip block forwarded before its transactions were applied was then `applied`,
    /// or found `invalid_state` (its only fault in balances or nonces).
    pub fn relayed_early(&self, outcome: &'static str) {
        self.relayed_early
            .get_or_create(&ReasonLabels {
                reason: outcome.to_owned(),
            })
            .inc();
    }

    /// Records an HTTP connection the server closed on its client: `header_timeout` (no
    /// complete request head in time), `evicted` (idle the longest when a new connection
    /// needed its slot) or `write_stalled` (the client took no bytes for too long).
    pub(crate) fn http_connection_closed(&self, reason: &'static str) {
        self.http_connections_closed
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records one HTTP request.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.http_latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The method label: a standard method, or `other` (a client may send any token as a method,
/// and each distinct label value would be a new series).
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// Middleware: counts every request and its latency by matched route template (`unmatched`
/// for requests no route took) and method (bounded: [`method_label`]).
pub(crate) async fn track_http(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let response = next.run(req).await;
    state.api().metrics.http_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus exposition of the node's metrics.
#[utoipa::path(
    get, path = "/metrics", tag = "node",
    responses((status = 200, description = "OpenMetrics text (Prometheus scrapes it)", content_type = "application/openmetrics-text", body = String))
)]
pub(crate) async fn metrics_text(
    State(state): State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.api().metrics.render(),
    )
}
