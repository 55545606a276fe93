//! Shared state of the handlers: the node handle, the event-stream slots and the shutdown
//! signal that ends open event streams.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

use crate::config::Limits;
use crate::error::ApiError;
use crate::node_api::NodeApi;

/// Cheaply cloneable state of every handler.
#[derive(Debug, Clone)]
pub(crate) struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    api: NodeApi,
    limits: Limits,
    streams: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
}

impl AppState {
    pub(crate) fn new(api: NodeApi, limits: Limits) -> Self {
        let streams = Arc::new(Semaphore::new(limits.max_event_streams));
        let (shutdown, _) = watch::channel(false);
        AppState(Arc::new(Inner {
            api,
            limits,
            streams,
            shutdown,
        }))
    }

    /// The node handle.
    pub(crate) fn api(&self) -> &NodeApi {
        &self.0.api
    }

    /// The server's limits.
    pub(crate) fn limits(&self) -> &Limits {
        &self.0.limits
    }

    /// Slots of `/v1/events` streams.
    pub(crate) fn streams(&self) -> &Arc<Semaphore> {
        &self.0.streams
    }

    /// A receiver that turns true when the server shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.0.shutdown.subscribe()
    }

    /// Ends every open event stream.
    pub(crate) fn begin_shutdown(&self) {
        self.0.shutdown.send_replace(true);
    }
}

/// Runs store reads (and the hashing some of them need) on the blocking pool, so async
/// workers never wait on disk or decode large blocks inline.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?
}
