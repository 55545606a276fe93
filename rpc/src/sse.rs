//! `GET /v1/events`: Server-Sent Events from the node's event channel.
//!
//! Event names and data (JSON objects): `block` (a [`BlockSummary`] of a block that joined the
//! main chain), `reorg` ([`ReorgEvent`]), `tx` ([`TxEvent`], a transaction entered the mempool)
//! and `lagged` ([`LaggedEvent`]: this client fell behind and `missed` events were dropped;
//! re-read the state it cares about). One more, `side_block` (a [`BlockSummary`] of a valid block
//! stored on a side branch, not on the main chain), is sent only to a stream that names it in
//! `types`, so the SPEC's three are the default. Events arrive in the order the node produced them;
//! a reorg comes before the `block` events of the blocks it connected. Streams end when the server
//! shuts down; a comment line is sent every 15 s to keep idle connections open.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, shorten};
use crate::node_api::NodeEvent;
use crate::reads::{block_summary, summary_with};
use crate::state::{AppState, blocking};
use crate::views::BlockSummary;

/// Filter of the event stream.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Comma-separated event names to receive (`block`, `side_block`, `reorg`, `tx`); when
    /// absent, `block`, `reorg` and `tx`.
    pub types: Option<String>,
}

/// Data of a `reorg` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReorgEvent {
    /// Height of the common ancestor.
    pub fork_height: u64,
    /// Tip before.
    pub old_tip: String,
    /// Tip after.
    pub new_tip: String,
    /// Blocks that left the main chain, old tip first.
    pub disconnected: Vec<String>,
    /// Blocks that joined it, fork point first.
    pub connected: Vec<String>,
}

/// Data of a `tx` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TxEvent {
    /// The transaction that entered the mempool.
    pub txid: String,
}

/// Data of a `lagged` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LaggedEvent {
    /// Events this client missed because it read too slowly.
    pub missed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Filter {
    block: bool,
    side_block: bool,
    reorg: bool,
    tx: bool,
}

impl Filter {
    fn parse(types: Option<&str>) -> Result<Self, ApiError> {
        let Some(types) = types else {
            // `side_block` only when asked for: the SPEC's three types are the default.
            return Ok(Filter {
                block: true,
                side_block: false,
                reorg: true,
                tx: true,
            });
        };
        let mut f = Filter {
            block: false,
            side_block: false,
            reorg: false,
            tx: false,
        };
        for name in types.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "block" => f.block = true,
                "side_block" => f.side_block = true,
                "reorg" => f.reorg = true,
                "tx" => f.tx = true,
                other => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!(
                            "unknown event type {:?}; the types are block, side_block, reorg and tx",
                            shorten(other)
                        ),
                    ));
                }
            }
        }
        Ok(f)
    }

    fn wants(&self, e: &NodeEvent) -> bool {
        match e {
            NodeEvent::Block { .. } => self.block,
            NodeEvent::SideBlock { .. } => self.side_block,
            NodeEvent::Reorg { .. } => self.reorg,
            NodeEvent::Tx { .. } => self.tx,
        }
    }
}

/// Live chain and mempool events.
#[utoipa::path(
    get, path = "/v1/events", tag = "events",
    params(EventParams),
    responses(
        (status = 200, description = "An endless text/event-stream; event names block, reorg, tx and lagged (and side_block when asked for in types), each data a JSON object (BlockSummary, ReorgEvent, TxEvent, LaggedEvent; BlockSummary for side_block)", content_type = "text/event-stream", body = String),
        (status = 429, description = "rate_limited: too many open streams", body = ErrorBody),
    )
)]
pub(crate) async fn events(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = Filter::parse(params.types.as_deref())?;
    let permit = state.streams().clone().try_acquire_owned().map_err(|_| {
        ApiError::rate_limited(format!(
            "{} event streams are open, the most this node serves",
            state.limits().max_event_streams
        ))
    })?;
    let mut shutdown = state.shutdown_signal();
    let source = Source {
        rx: state.api().events.subscribe(),
        state,
        filter,
        _permit: permit,
    };
    let stream = futures::stream::unfold(source, next_event).take_until(async move {
        // Ends on shutdown, or at once if the server is already gone.
        let _ = shutdown.wait_for(|closing| *closing).await;
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Source {
    rx: Receiver<NodeEvent>,
    state: AppState,
    filter: Filter,
    _permit: OwnedSemaphorePermit,
}

async fn next_event(mut src: Source) -> Option<(Result<Event, Infallible>, Source)> {
    loop {
        match src.rx.recv().await {
            Ok(e) if !src.filter.wants(&e) => continue,
            Ok(e) => {
                if let Some(event) = to_sse(&src.state, e).await {
                    return Some((Ok(event), src));
                }
            }
            Err(RecvError::Lagged(missed)) => {
                let event = json_event("lagged", &LaggedEvent { missed })?;
                return Some((Ok(event), src));
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

/// A `name` event whose data is the summary of the stored block `hash`; `contents` (its
/// transaction count and fees) when the event carries them, else read from its body.
async fn summary_event(
    state: &AppState,
    name: &str,
    hash: peerchain_ledger::Hash,
    height: u64,
    contents: Option<(u64, u64)>,
) -> Option<Event> {
    let api = state.api().clone();
    let summary: Result<Option<BlockSummary>, ApiError> = blocking(move || match contents {
        Some(contents) => summary_with(&api.store, &api.genesis, &hash, contents),
        None => block_summary(&api.store, &api.genesis, &hash),
    })
    .await;
    match summary {
        Ok(Some(s)) => json_event(name, &s),
        Ok(None) | Err(_) => {
            tracing::warn!(%hash, height, event = name, "block event for a block the store cannot summarise");
            None
        }
    }
}

fn json_event<T: Serialize>(name: &str, data: &T) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}

async fn to_sse(state: &AppState, e: NodeEvent) -> Option<Event> {
    match e {
        NodeEvent::Block {
            hash,
            height,
            tx_count,
            fees,
        } => summary_event(state, "block", hash, height, Some((tx_count, fees))).await,
        NodeEvent::SideBlock { hash, height } => {
            summary_event(state, "side_block", hash, height, None).await
        }
        NodeEvent::Reorg {
            fork_height,
            old_tip,
            new_tip,
            disconnected,
            connected,
        } => json_event(
            "reorg",
            &ReorgEvent {
                fork_height,
                old_tip: old_tip.to_hex(),
                new_tip: new_tip.to_hex(),
                disconnected: disconnected.iter().map(|h| h.to_hex()).collect(),
                connected: connected.iter().map(|h| h.to_hex()).collect(),
            },
        ),
        NodeEvent::Tx { txid } => json_event(
            "tx",
            &TxEvent {
                txid: txid.to_hex(),
            },
        ),
    }
}
