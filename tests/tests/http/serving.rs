//! The server loop: graceful shutdown, header and body deadlines.

use std::time::Duration;

use peerchain_rpc::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

async fn read_all(stream: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out))
        .await
        .expect("the server closes or answers in time");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_event_streams_and_returns() {
    let mut node = TestNode::start().await;
    let mut events = EventReader::open(&node, "").await;
    node.mine(1).await;
    assert_eq!(events.next().await.0, "block");
    tokio::time::timeout(Duration::from_secs(10), node.stop())
        .await
        .expect("the node stops promptly");
    assert!(events.next_within(Duration::from_secs(2)).await.is_none());
    let refused = reqwest::Client::new()
        .get(node.url("/v1/status"))
        .send()
        .await;
    assert!(refused.is_err(), "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_a_connection() {
    let node = TestNode::start_with(Options {
        limits: Limits {
            header_read_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(400),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let addr = node.base.trim_start_matches("http://").to_owned();

    // Headers that never finish: the connection is closed.
    let mut trickle = TcpStream::connect(&addr).await.expect("connect");
    trickle
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let answer = read_all(&mut trickle, Duration::from_secs(5)).await;
    assert!(!answer.contains("200 OK"), "{answer}");

    // A body that never finishes: 503 timeout in the error model.
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(
        b"POST /v1/transactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{",
    )
    .await
    .expect("write");
    let answer = read_all(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
}

/// A live test node for external tools (e.g. schemathesis): run with
/// `PEERCHAIN_RPC_SERVE_SECS=120 cargo test -p peerchain-tests --test http -- --ignored --nocapture serve_for_tools`;
/// it prints its URL and admin token, and serves a mined chain with pending transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a dev tool, not a test"]
async fn serve_for_tools() {
    let secs: u64 = std::env::var("PEERCHAIN_RPC_SERVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let node = TestNode::start().await;
    node.mine(5).await;
    for i in 0..3 {
        let tx = node.transfer(0, node.address(1), 10, 2, i);
        node.post("/v1/transactions", &tx_json(&tx)).await;
    }
    node.mine(1).await;
    let tx = node.transfer(0, node.address(2), 10, 2, 3);
    node.post("/v1/transactions", &tx_json(&tx)).await;
    println!("serving {} (admin token {TOKEN}) for {secs} s", node.base);
    if let Ok(path) = std::env::var("PEERCHAIN_RPC_URL_FILE") {
        std::fs::write(path, &node.base).expect("write url file");
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
