//! The HTTP/1.1 server loop and what bounds its clients:
//!
//! - a bounded number of connections (`Limits::max_connections`); when all are taken, a new
//!   connection closes the one idle the longest (no request in progress) to take its place, so
//!   idle connections, however many, cannot lock out honest clients or the operator;
//! - a deadline for request headers (`Limits::header_read_timeout`), which also runs while a
//!   connection is idle, so a client that trickles bytes or sends nothing cannot hold one;
//! - a deadline for stalled writes (`Limits::write_stall_timeout`), with at most
//!   `Limits::max_unsent_bytes` queued in the kernel for a client, so a client that stops
//!   reading (an event-stream subscriber that never reads) cannot hold one either;
//! - a graceful shutdown that ends event streams, lets requests in flight finish within
//!   `shutdown_grace`, then returns.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Sleep;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::node_api::NodeApi;
use crate::state::AppState;

/// How often a new connection that found every connection busy looks again for an idle one.
const ROOM_RETRY: Duration = Duration::from_millis(100);

/// Serves the API with the default [`Limits`] on `listener` until `shutdown` completes, then
/// shuts down gracefully: stops accepting, ends `/v1/events` streams, waits up to
/// `shutdown_grace` for requests in flight and closes the rest.
pub async fn serve(
    listener: TcpListener,
    api: NodeApi,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, api, Limits::default(), shutdown).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    api: NodeApi,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState::new(api, limits.clone());
    let app = crate::build(state.clone());
    let metrics = state.api().metrics.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Connections::default());
    let (close_tx, close_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::select! {
                () = &mut shutdown => break,
                permit = make_room(&slots, &open) => permit,
            },
        };
        let _ = stream.set_nodelay(true);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(limits.max_unsent_bytes);
        let conn = Connection {
            tracker: open.register(),
            app: TowerToHyperService::new(app.clone()),
            metrics: metrics.clone(),
            limits: limits.clone(),
        };
        let close = close_rx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            conn.serve(stream, close).await;
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    state.begin_shutdown();
    close_tx.send_replace(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!("closing HTTP connections still busy after the shutdown grace period");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Waits for a connection slot while every slot is taken: closes the connection idle the
/// longest and takes its slot; while none is idle (every connection has a request or an
/// event stream in progress), waits for one to end, looking again every [`ROOM_RETRY`].
async fn make_room(slots: &Arc<Semaphore>, open: &Connections) -> OwnedSemaphorePermit {
    loop {
        open.evict_idlest();
        if let Ok(Ok(permit)) =
            tokio::time::timeout(ROOM_RETRY, slots.clone().acquire_owned()).await
        {
            return permit;
        }
    }
}

/// The open connections, so that a new connection can take the slot of the one idle the
/// longest.
#[derive(Debug)]
struct Connections {
    by_id: Mutex<HashMap<u64, Arc<Tracker>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            by_id: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Connections {
    /// Registers a new connection, idle from now; it leaves when its tracker is dropped.
    fn register(self: &Arc<Self>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tracker = Arc::new(Tracker {
            busy: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: self.epoch,
            evict: Notify::new(),
            stalled: AtomicBool::new(false),
        });
        tracker.mark_idle();
        self.lock().insert(id, tracker.clone());
        Registered {
            open: self.clone(),
            id,
            tracker,
        }
    }

    /// Asks the connection idle the longest to close (and forgets it); false if none is idle.
    fn evict_idlest(&self) -> bool {
        let mut by_id = self.lock();
        let idlest = by_id
            .iter()
            .filter(|(_, t)| t.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, t)| t.idle_since_ms.load(Ordering::Relaxed))
            .map(|(id, _)| *id);
        match idlest.and_then(|id| by_id.remove(&id)) {
            Some(tracker) => {
                tracker.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Tracker>>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the server knows of one connection.
#[derive(Debug)]
struct Tracker {
    /// Responses in progress: from a request's head until its response body is sent (an
    /// event stream's, until the stream ends).
    busy: AtomicUsize,
    /// When it last became idle (opened, or a response ended), in ms since `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    /// Tells the connection to close to make room for a new one.
    evict: Notify,
    /// Its client took no bytes for `write_stall_timeout`.
    stalled: AtomicBool,
}

impl Tracker {
    fn mark_idle(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(ms, Ordering::Relaxed);
    }
}

/// A connection's entry in [`Connections`], removed when dropped.
#[derive(Debug)]
struct Registered {
    open: Arc<Connections>,
    id: u64,
    tracker: Arc<Tracker>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

/// A response in progress on a connection; the connection is idle again when the last one
/// ends.
#[derive(Debug)]
struct Busy(Arc<Tracker>);

impl Busy {
    fn begin(tracker: &Arc<Tracker>) -> Self {
        tracker.busy.fetch_add(1, Ordering::AcqRel);
        Busy(tracker.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.mark_idle();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is sent or dropped.
#[derive(Debug)]
struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    tracker: Registered,
    app: TowerToHyperService<axum::Router>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

impl Connection {
    async fn serve(self, stream: TcpStream, mut close: watch::Receiver<bool>) {
        let tracker = self.tracker.tracker.clone();
        let app = self.app;
        let in_service = tracker.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::begin(&in_service);
            let response = hyper::service::Service::call(&app, req);
            async move {
                let response: Response<Body> = response.await?;
                Ok::<_, Infallible>(response.map(|body| TrackedBody { body, _busy: busy }))
            }
        });
        let io = StallGuard {
            stream,
            timeout: self.limits.write_stall_timeout,
            stalled: None,
            tracker: tracker.clone(),
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if tracker.stalled.load(Ordering::Relaxed) {
                        self.metrics.http_connection_closed("write_stalled");
                    } else if e.is_timeout() {
                        self.metrics.http_connection_closed("header_timeout");
                    }
                    tracing::debug!(error = %e, "HTTP connection ended with an error");
                }
            }
            () = async { let _ = close.wait_for(|closing| *closing).await; } => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
            () = tracker.evict.notified() => {
                self.metrics.http_connection_closed("evicted");
                // Graceful in every case: hyper closes an idle connection at once, and one
                // still writing a response (a large body counts as idle once hyper has taken
                // it) finishes writing first, within the stalled-write deadline.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(self.limits.write_stall_timeout, conn.as_mut()).await;
            }
        }
    }
}

/// The TCP stream of a connection: a write its client has taken no bytes of for `timeout` (the
/// send buffer stayed full) fails, and the connection is reset, so a client that stops
/// reading neither holds a connection nor keeps bytes queued for it.
struct StallGuard {
    stream: TcpStream,
    timeout: Duration,
    /// Since the first write that could not proceed, if the last write could not.
    stalled: Option<Pin<Box<Sleep>>>,
    tracker: Arc<Tracker>,
}

impl StallGuard {
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        wrote: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if wrote.is_ready() {
            self.stalled = None;
            return wrote;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stalled.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.tracker.stalled.store(true, Ordering::Relaxed);
        // Reset rather than leave the unsent bytes to the kernel.
        let _ = self.stream.set_zero_linger();
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took no bytes for {timeout:?}"),
        )))
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let wrote = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, wrote)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let wrote = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, wrote)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
