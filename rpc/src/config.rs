//! Bounds of the HTTP server. Every queue and wait the API can be made to hold is named here.
//!
//! The numbers that are part of the API contract (page size 100, batch size 10,000, blocks per
//! `admin/mine` call) are constants, so the OpenAPI document states them exactly; the rest are
//! operating limits a node may tune.

use std::time::Duration;

/// Default page size of every list.
pub const DEFAULT_PAGE: usize = 25;
/// Largest page size of every list.
pub const MAX_PAGE: usize = 100;
/// Most transactions in one `POST /v1/transactions/batch` (SPEC section 5).
pub const MAX_BATCH: usize = 10_000;
/// Most blocks one `POST /v1/admin/mine` call may ask for.
pub const MAX_MINE_BLOCKS: u32 = 1_000;
/// Most peers `GET /v1/peers/banned` lists (a node keeps up to 10,000 bans).
pub const MAX_BANNED_LISTED: usize = 1_000;

/// Operating limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body of every route except the batch submission.
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/transactions/batch` (10,000 transactions need about 3.2 MB).
    pub max_batch_body_bytes: usize,
    /// Public requests handled at once (event streams and admin calls excluded); more are
    /// refused with 429.
    pub max_concurrent_requests: usize,
    /// Admin requests handled at once, in a lane of their own, so a flood of public requests
    /// cannot lock the operator out; more are refused with 429.
    pub max_admin_requests: usize,
    /// Batch submissions (`POST /v1/transactions/batch`, up to 10,000 transactions each)
    /// handled at once, within the public slots; more are refused with 429.
    pub max_batch_requests: usize,
    /// Time allowed for one request, reading its body included; then 503 `timeout`.
    pub request_timeout: Duration,
    /// Time allowed for one admin request (`mine` may take a while).
    pub admin_timeout: Duration,
    /// Open `/v1/events` streams at once; more are refused with 429.
    pub max_event_streams: usize,
    /// Open TCP connections at once. When all are taken, a new connection closes the one idle
    /// the longest to take its place: one with no request in progress, whether it is between
    /// keep-alive requests, has sent nothing yet or is still sending a request's headers. So
    /// idle connections, however many, cannot lock out an honest client or the operator. Only
    /// when every connection has a request or an event stream in progress do further
    /// connections wait in the accept queue; keep this above `max_concurrent_requests +
    /// max_admin_requests + max_event_streams` (520 by default) so that cannot happen.
    pub max_connections: usize,
    /// Time a client has to send a request's headers before its connection is closed. It
    /// also bounds idleness: it runs from the moment the connection opens, and again from the
    /// end of each response, so a connection that sends nothing is closed after it too.
    pub header_read_timeout: Duration,
    /// Time a response may wait for the client to take any of its bytes (the socket's send
    /// buffer stays full), such as an event stream whose subscriber stopped reading; then the
    /// connection is reset, which frees its slot and the bytes queued for it.
    pub write_stall_timeout: Duration,
    /// Bytes of a response the kernel may hold for a connection beyond what the network has
    /// in flight (`TCP_NOTSENT_LOWAT`, Linux): what a client that stops reading can make the
    /// node queue for it before its writes stall (without it, the send buffer grows to
    /// several MiB first). Does not limit the throughput of a client that reads.
    pub max_unsent_bytes: u32,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_batch_body_bytes: 8 * 1024 * 1024,
            max_concurrent_requests: 256,
            max_admin_requests: 8,
            max_batch_requests: 4,
            request_timeout: Duration::from_secs(10),
            admin_timeout: Duration::from_secs(120),
            max_event_streams: 256,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(20),
            max_unsent_bytes: 128 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
