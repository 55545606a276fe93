//! Liveness and readiness probes (`GET /v1/health`, `GET /v1/ready`) against the real node:
//! what a Docker HEALTHCHECK or a Kubernetes probe sees (docs/DEPLOY.md).

use std::time::Duration;

use peerchain_rpc::Limits;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

/// Polls `path` until it answers `status`, for up to 20 s; returns the last answer.
async fn wait_for_status(
    node: &TestNode,
    path: &str,
    status: StatusCode,
) -> (StatusCode, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = node.get(path).await;
        if got.0 == status {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}; last: {} {}",
            got.0,
            got.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_always_ok_and_ready_needs_a_peer() {
    // A lone node: alive, not ready.
    let mut lone = TestNode::start().await;
    let health = lone.get("/v1/health").await;
    assert_eq!(health, (StatusCode::OK, json!({ "status": "ok" })));
    let r = lone.get("/v1/ready").await;
    let message = assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "no_peers");
    assert!(message.contains("no connected peers"), "{message}");
    let head = lone
        .client
        .head(lone.url("/v1/health"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(
        head.status(),
        StatusCode::OK,
        "HEAD works too (curl -I, probes)"
    );
    let post = lone.post("/v1/health", &json!({})).await;
    assert_error(&post, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    lone.stop().await;

    // With a peer: ready (once any sync at connection time is over).
    let mut node = TestNode::start_with(Options {
        peer: true,
        ..Options::default()
    })
    .await;
    let ready = wait_for_status(&node, "/v1/ready", StatusCode::OK).await;
    assert_eq!(ready.1, json!({ "status": "ready", "peer_count": 1 }));
    assert_eq!(node.get("/v1/health").await.0, StatusCode::OK);

    // The peer goes away: not ready again, still alive.
    if let Some(peer) = node.peer.take() {
        peer.shutdown().await;
    }
    let r = wait_for_status(&node, "/v1/ready", StatusCode::SERVICE_UNAVAILABLE).await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "no_peers");
    assert_eq!(node.get("/v1/health").await.0, StatusCode::OK);

    // Probes are counted in the HTTP metrics like any route.
    let metrics = node
        .client
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("route=\"/v1/ready\"") && metrics.contains("route=\"/v1/health\""),
        "{metrics}"
    );
    node.stop().await;
}

/// A busy node (every public slot taken) still answers its probes: a liveness probe that got
/// 429 would make Kubernetes restart a node for being busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_when_the_public_lane_is_full() {
    let mut node = TestNode::start_with(Options {
        limits: Limits {
            max_concurrent_requests: 1,
            request_timeout: Duration::from_secs(6),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    // A submission waits for the stalled chain thread and holds the only public slot.
    node.node().stall_chain_thread(Duration::from_secs(4)).await;
    let client = node.client.clone();
    let url = node.url("/v1/transactions");
    let tx = tx_json(&node.transfer(0, node.address(1), 1, 1, 0));
    let waiting =
        tokio::spawn(
            async move { read(client.post(url).json(&tx).send().await.expect("POST")).await },
        );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shed = node.get("/v1/status").await;
    assert_error(&shed, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(
        node.get("/v1/health").await,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    let r = node.get("/v1/ready").await;
    assert_error(&r, StatusCode::SERVICE_UNAVAILABLE, "no_peers");
    let submitted = waiting.await.expect("task");
    assert_eq!(submitted.0, StatusCode::ACCEPTED, "{}", submitted.1);
    node.stop().await;
}
