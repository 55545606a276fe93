//! The HTTP/1.1 server loop: a bounded number of connections, a deadline for request headers
//! (so a client that trickles bytes cannot hold a connection), and a graceful shutdown that
//! ends event streams, lets requests in flight finish within `shutdown_grace`, then returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Limits;
use crate::node_api::NodeApi;
use crate::state::AppState;

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
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (close_tx, close_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
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
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut close = close_rx.clone();
        let header_timeout = limits.header_read_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                () = async { let _ = close.wait_for(|closing| *closing).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
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
