//! The server loop: graceful shutdown, header, body and write deadlines, the connection bound.

use std::time::Duration;

use peerchain_rpc::Limits;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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
    let mut events = open_events(&node, "").await;
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
    assert!(closed_total(&node, "header_timeout").await >= 1);

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

/// Whether the server closed `stream` within `wait` (reading and discarding what comes).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// `peerchain_http_connections_closed_total{reason}` on `/metrics`.
async fn closed_total(node: &TestNode, reason: &str) -> u64 {
    let text = reqwest::get(node.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let series = format!("peerchain_http_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Faults (abusive clients): idle connections held every connection slot until their header
/// deadline, so an honest client and the operator waited in the accept queue (and an
/// attacker reconnecting at once locked them out for good). When all slots are taken, a new
/// connection now closes the one idle the longest; an event stream in progress is not idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_make_room_for_new_ones() {
    let node = TestNode::start_with(Options {
        limits: Limits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(3),
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let addr = node.base.trim_start_matches("http://").to_owned();
    // A busy connection (an event stream) and idle ones, more than the slots left.
    let mut events = open_events(&node, "").await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The oldest idle one made room for the fourth.
    assert!(closed_within(&mut idle[0], Duration::from_secs(1)).await);
    // An honest client from a fresh connection is served at once (before: after the header
    // deadline, 3 s).
    let started = tokio::time::Instant::now();
    let (status, _) = read(
        reqwest::Client::new()
            .get(node.url("/v1/status"))
            .send()
            .await
            .expect("status"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(closed_within(&mut idle[1], Duration::from_secs(1)).await);
    // So is the operator, and the event stream, busy, was never taken.
    node.mine(1).await;
    assert_eq!(events.next().await.0, "block");
    assert!(closed_total(&node, "evicted").await >= 3);
    // The rest are closed too, to make room or at the header deadline.
    for stream in &mut idle[2..] {
        assert!(closed_within(stream, Duration::from_secs(5)).await);
    }
}

/// Faults (abusive clients): an event-stream subscriber that never reads held its stream slot
/// (and the kernel held up to several MiB of events for it) forever. Once its writes have
/// stalled for `write_stall_timeout`, with at most `max_unsent_bytes` queued, it is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_dropped() {
    let node = TestNode::start_with(Options {
        limits: Limits {
            max_event_streams: 1,
            write_stall_timeout: Duration::from_secs(1),
            max_unsent_bytes: 4096,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let addr = node
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut silent = socket.connect(addr).await.expect("connect");
    silent
        .write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        silent.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // The only slot is taken.
    assert_eq!(
        node.get("/v1/events").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Events it does not read: 300 blocks, about 130 KiB.
    node.mine(300).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while closed_total(&node, "write_stalled").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent subscriber was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its slot is free again, and its connection was reset.
    let _honest = open_events(&node, "").await;
    let _ = silent.write_all(b"\r\n").await;
    assert!(closed_within(&mut silent, Duration::from_secs(2)).await);
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
