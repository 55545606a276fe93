//! Faults (abusive clients): slowloris, thousands of idle connections and event-stream
//! subscribers that never read, against ONE real node process (the binary, mining). Its memory
//! is read from `/proc/<pid>/status` (VmRSS sampled every 20 ms, VmHWM at the end). Each phase
//! prints a `REPORT` line: connections opened, how many the node closed and after how long, the
//! node's RSS before, at its peak and after.
//!
//! 1. Slowloris: 500 connections each trickle a request header, a byte every 2 s. The node
//!    closes each at its header deadline (`Limits::header_read_timeout`, 10 s), and answers
//!    `GET /v1/status` from fresh connections meanwhile.
//! 2. Idle connections: 200 keep-alive connections idle after one request, then 1,800 that
//!    never send a byte (2,000 in all, fewer if the file-descriptor limit is low; the test
//!    raises its soft limit, which the node inherits), over the node's 1,024-connection bound.
//!    An honest status request and an admin call (with the token) from fresh connections are
//!    answered within 5 s, and the node closes every idle connection. Before, the honest
//!    client and the operator waited in the accept queue until the header deadline closed the
//!    first 1,024 (10 s, and an attacker reconnecting at once locked them out for good): when
//!    every connection is taken, the server now closes the one idle the longest.
//! 3. Event streams that never read: after a warm-up without subscribers (20,000 transfers
//!    admitted and mined, which costs the node memory of its own, kept by its allocator),
//!    255 subscribers with a 4 KiB receive buffer never read and one reads slowly while
//!    10,000 more transfers (a `tx` event each) and the blocks holding them flow. The next
//!    stream gets 429; the slow reader receives `lagged` and is kept; the node's memory stays
//!    bounded; the node resets the never-reading streams once their writes have stalled for
//!    `Limits::write_stall_timeout` (20 s; at most `Limits::max_unsent_bytes`, 128 KiB, is
//!    queued in the kernel for each), so an honest subscriber gets a stream again. Before,
//!    they held every stream slot forever (and the kernel up to 4 MiB of events for each).
//!
//! The node's `peerchain_http_connections_closed_total{reason}` counts are printed with each
//! phase.
//! Asserted bounds are generous (answers within 5 s, RSS growth under 256 MiB per phase); the
//! figures are printed. Run: `cargo test -p peerchain --test abusive_clients -- --nocapture`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;

use peerchain_ledger::crypto::Keypair;
use peerchain_rpc::Limits;
use serde_json::Value;
use support::{free_port, write_genesis};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

const TOKEN: &str = "abusive-clients-admin-token-0123456789";
/// Answers the honest client and the operator must get while the abuse goes on.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// RSS growth allowed in each phase.
const RSS_GROWTH_CAP_KIB: u64 = 256 * 1024;

/// Raises this process's soft limit of open files towards `want` (the node, started after,
/// inherits it); returns the limit in force.
#[allow(unsafe_code)]
fn raise_fd_limit(want: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// The node process, killed when dropped.
struct NodeProcess {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    chain_id: u64,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    fn start(dev_accounts: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let genesis = dir.path().join("genesis.json");
        let chain_id = write_genesis(&genesis, dev_accounts, 500);
        let rpc_port = free_port();
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_peerchain"))
            .arg("node")
            .arg("--genesis")
            .arg(&genesis)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "--p2p-listen",
                &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
            ])
            .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
            .args(["--mine", "--mine-hashrate", "20000"])
            .args(["--admin-token", TOKEN])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn node");
        NodeProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], rpc_port)),
            dir,
            chain_id,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    async fn wait_up(&self) {
        let started = Instant::now();
        loop {
            if let Ok((200, _, _)) = exchange(self.addr, &get("/v1/status"), ANSWER_WITHIN).await {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the node did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`); 0 if unreadable.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the node's RSS every 20 ms and keeps the peak since the phase began.
struct Rss {
    pid: u32,
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Rss {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(proc_kib(pid, "VmRSS")));
        let p = peak.clone();
        let sampler = tokio::spawn(async move {
            loop {
                p.fetch_max(proc_kib(pid, "VmRSS"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Rss { pid, peak, sampler }
    }

    /// Starts a phase: the peak restarts from now; returns the RSS now.
    fn begin(&self) -> u64 {
        let now = proc_kib(self.pid, "VmRSS");
        self.peak.store(now, Ordering::Relaxed);
        now
    }

    /// Ends a phase: (before, peak, after) in KiB, and asserts the growth bound.
    fn end(&self, phase: &str, before: u64) -> String {
        let after = proc_kib(self.pid, "VmRSS");
        let peak = self.peak.load(Ordering::Relaxed).max(after);
        assert!(
            peak.saturating_sub(before) < RSS_GROWTH_CAP_KIB,
            "{phase}: the node's RSS grew from {before} KiB to {peak} KiB"
        );
        format!(
            "RSS before {} / peak {} / after {}",
            mib(before),
            mib(peak),
            mib(after)
        )
    }
}

impl Drop for Rss {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: peerchain\r\nConnection: close\r\n\r\n").into_bytes()
}

fn post(path: &str, token: Option<&str>, body: &str) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: peerchain\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status code of a response head.
fn status_code(head: &[u8]) -> u16 {
    std::str::from_utf8(head)
        .ok()
        .and_then(|t| t.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// Sends `request` (with `Connection: close`) on a fresh connection and reads the answer to
/// its end: the status code, the body and the time it took.
async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    deadline: Duration,
) -> Result<(u16, String, Duration), String> {
    let started = Instant::now();
    let answer = tokio::time::timeout(deadline, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    })
    .await
    .map_err(|_| format!("no answer within {}", secs(deadline)))?
    .map_err(|e| e.to_string())?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |i| i + 4);
    let body = String::from_utf8_lossy(&answer[split..]).into_owned();
    Ok((status_code(&answer), body, started.elapsed()))
}

/// `GET /v1/status` from a fresh connection: must be 200 within [`ANSWER_WITHIN`]; returns how
/// long it took.
async fn honest_status(addr: SocketAddr, during: &str) -> Duration {
    match exchange(addr, &get("/v1/status"), Duration::from_secs(30)).await {
        Ok((200, _, took)) => {
            assert!(
                took < ANSWER_WITHIN,
                "{during}: an honest GET /v1/status took {}",
                secs(took)
            );
            took
        }
        other => panic!("{during}: an honest GET /v1/status got {other:?}"),
    }
}

/// Reads up to the end of a response head on `s`; returns its status code (0 if the
/// connection ended first).
async fn read_head(s: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return 0,
        }
    }
    status_code(&head)
}

/// Reads a whole response with a `Content-Length` on a keep-alive connection.
async fn read_response(s: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return 0,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if s.read_exact(&mut body).await.is_err() {
        return 0;
    }
    status_code(&head)
}

/// `peerchain_http_connections_closed_total` by reason (`header_timeout`, `evicted`,
/// `write_stalled`), read from `/metrics`.
async fn closed_by_reason(addr: SocketAddr) -> [u64; 3] {
    let (code, text, _) = exchange(addr, &get("/metrics"), ANSWER_WITHIN)
        .await
        .expect("metrics");
    assert_eq!(code, 200, "metrics: {text}");
    let count = |reason: &str| {
        let series = format!("peerchain_http_connections_closed_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
            .unwrap_or(0)
    };
    [
        count("header_timeout"),
        count("evicted"),
        count("write_stalled"),
    ]
}

/// What the node's metrics say it closed since `before`.
async fn closed_since(addr: SocketAddr, before: [u64; 3]) -> String {
    let now = closed_by_reason(addr).await;
    format!(
        "node metrics: {} closed at the header deadline, {} evicted, {} for stalled writes",
        now[0] - before[0],
        now[1] - before[1],
        now[2] - before[2]
    )
}

/// What became of one abusive connection.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// It never connected.
    NotConnected,
    /// The node closed it this long after it was opened.
    Closed(Duration),
    /// Still open when the test gave up.
    Open,
}

/// Reads and discards what arrives until the node closes the connection (or until `give_up`).
async fn until_closed(mut r: impl AsyncRead + Unpin, opened: Instant, give_up: Instant) -> Fate {
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(give_up.into(), r.read(&mut buf)).await {
            Err(_) => return Fate::Open,
            Ok(Ok(0) | Err(_)) => return Fate::Closed(opened.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Collects the fates of finished connection tasks.
fn collect(set: &mut JoinSet<Fate>, into: &mut Vec<Fate>) {
    while let Some(fate) = set.try_join_next() {
        into.push(fate.expect("connection task"));
    }
}

/// Counts and close times (min / median / max) of `fates`.
struct Summary {
    connected: usize,
    closed: Vec<Duration>,
}

impl Summary {
    fn of(fates: &[Fate]) -> Self {
        let mut closed: Vec<Duration> = fates
            .iter()
            .filter_map(|f| match f {
                Fate::Closed(d) => Some(*d),
                _ => None,
            })
            .collect();
        closed.sort();
        Summary {
            connected: fates
                .iter()
                .filter(|f| !matches!(f, Fate::NotConnected))
                .count(),
            closed,
        }
    }

    fn times(&self) -> String {
        match (self.closed.first(), self.closed.last()) {
            (Some(min), Some(max)) => format!(
                "after {} / {} / {} (min / median / max)",
                secs(*min),
                secs(self.closed[self.closed.len() / 2]),
                secs(*max)
            ),
            _ => "none".to_owned(),
        }
    }
}

/// Phase 1: slowloris.
async fn slowloris(node: &NodeProcess, rss: &Rss, limits: &Limits) {
    const CONNECTIONS: usize = 500;
    let counted = closed_by_reason(node.addr).await;
    let before = rss.begin();
    let started = Instant::now();
    let give_up = started + limits.header_read_timeout + Duration::from_secs(15);
    let addr = node.addr;
    let mut set = JoinSet::new();
    for _ in 0..CONNECTIONS {
        set.spawn(async move {
            let Ok(s) = TcpStream::connect(addr).await else {
                return Fate::NotConnected;
            };
            let opened = Instant::now();
            let (r, mut w) = s.into_split();
            let trickle = async move {
                if w.write_all(b"GET /v1/status HTTP/1.1\r\nHost: peerchain\r\nX-Slow: ")
                    .await
                    .is_ok()
                {
                    loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        if w.write_all(b"a").await.is_err() {
                            break;
                        }
                    }
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                fate = until_closed(r, opened, give_up) => fate,
                () = trickle => Fate::Open,
            }
        });
    }
    let mut fates = Vec::new();
    let mut probes = 0;
    let mut worst = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(500)).await;
    loop {
        collect(&mut set, &mut fates);
        if set.is_empty() {
            break;
        }
        worst = worst.max(honest_status(addr, "slowloris").await);
        probes += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = Summary::of(&fates);
    let memory = rss.end("slowloris", before);
    let metrics = closed_since(addr, counted).await;
    eprintln!(
        "REPORT slowloris: {} connections opened, each trickling a header byte every 2 s; the \
         node closed {} {} ({metrics}); {probes} honest GET /v1/status meanwhile, slowest \
         {:.0} ms; {memory}",
        s.connected,
        s.closed.len(),
        s.times(),
        worst.as_secs_f64() * 1000.0
    );
    assert_eq!(s.connected, CONNECTIONS, "slowloris connections refused");
    assert_eq!(
        s.closed.len(),
        CONNECTIONS,
        "slowloris connections the node never closed"
    );
}

/// Phase 2: idle connections over the connection bound. Returns the honest answer times.
async fn idle_connections(node: &NodeProcess, rss: &Rss, limits: &Limits, fd_limit: usize) {
    // Room for the test's own files and the node's (the node has the same limit).
    let total = 2000.min(fd_limit.saturating_sub(300));
    let keep_alive = (total / 10).min(200);
    let silent = total - keep_alive;
    let counted = closed_by_reason(node.addr).await;
    let before = rss.begin();
    let addr = node.addr;
    let give_up = Instant::now() + limits.header_read_timeout + Duration::from_secs(20);
    let mut set = JoinSet::new();
    // Keep-alive connections idle after one request.
    for _ in 0..keep_alive {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: peerchain\r\n\r\n")
            .await
            .expect("request");
        assert_eq!(read_response(&mut s).await, 200, "keep-alive request");
        let opened = Instant::now();
        set.spawn(until_closed(s, opened, give_up));
    }
    // Connections that never send a byte, 64 connecting at a time (a burst of SYNs beyond the
    // accept queue would be dropped by the kernel, not the node).
    let connected = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut silent_set = JoinSet::new();
    for _ in 0..silent {
        let connected = connected.clone();
        let gate = gate.clone();
        silent_set.spawn(async move {
            let turn = gate.acquire_owned().await.expect("gate");
            let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await;
            drop(turn);
            match s {
                Ok(Ok(s)) => {
                    connected.fetch_add(1, Ordering::Relaxed);
                    until_closed(s, Instant::now(), give_up).await
                }
                _ => Fate::NotConnected,
            }
        });
    }
    // Until all are connected, or none has connected for 1.5 s (the accept queue is full and
    // the kernel drops further connection attempts, which retry 1, 3, 7 s later).
    let opening = Instant::now();
    let mut progress = (0, Instant::now());
    loop {
        let now = connected.load(Ordering::Relaxed);
        if now != progress.0 {
            progress = (now, Instant::now());
        }
        if now >= silent
            || progress.1.elapsed() > Duration::from_millis(1500)
            || opening.elapsed() > Duration::from_secs(10)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened_in = opening.elapsed();
    let open_now = connected.load(Ordering::Relaxed);
    // An honest client and the operator, from fresh connections.
    let status = honest_status(addr, "idle connections").await;
    let admin = match exchange(
        addr,
        &post("/v1/admin/mining", Some(TOKEN), r#"{"enabled":true}"#),
        Duration::from_secs(30),
    )
    .await
    {
        Ok((200, _, took)) => took,
        other => panic!("idle connections: the admin call got {other:?}"),
    };
    assert!(
        admin < ANSWER_WITHIN,
        "idle connections: the admin call took {}",
        secs(admin)
    );
    // Does the node close them?
    let mut keep_alive_fates = Vec::new();
    let mut silent_fates = Vec::new();
    while !(set.is_empty() && silent_set.is_empty()) {
        collect(&mut set, &mut keep_alive_fates);
        collect(&mut silent_set, &mut silent_fates);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ka = Summary::of(&keep_alive_fates);
    let si = Summary::of(&silent_fates);
    // Closed well before the header deadline: closed to make room for newer connections.
    let early = |s: &Summary| {
        s.closed
            .iter()
            .filter(|d| **d + Duration::from_secs(1) < limits.header_read_timeout)
            .count()
    };
    let memory = rss.end("idle connections", before);
    let metrics = closed_since(addr, counted).await;
    eprintln!(
        "REPORT idle connections (file limit {fd_limit}): {} keep-alive connections idle after \
         one request and {} silent ones opened ({open_now} connected after {}) against {} \
         connection slots; the node closed {} keep-alive ({} early, to make room) {} and {} \
         silent ({} early) {} ({metrics}); meanwhile an honest GET /v1/status took {:.0} ms \
         and the admin call {:.0} ms from fresh connections; {memory}",
        ka.connected,
        si.connected,
        secs(opened_in),
        limits.max_connections,
        ka.closed.len(),
        early(&ka),
        ka.times(),
        si.closed.len(),
        early(&si),
        si.times(),
        status.as_secs_f64() * 1000.0,
        admin.as_secs_f64() * 1000.0,
    );
    assert_eq!(
        ka.closed.len(),
        ka.connected,
        "keep-alive connections never closed"
    );
    assert_eq!(
        si.closed.len(),
        si.connected,
        "silent connections never closed"
    );
    assert_eq!(
        si.connected, silent,
        "silent connections that never connected"
    );
}

/// Signs `count` transfers from the first dev accounts, 1,000 each (nonces 0 to 999,
/// the mempool's nonce window).
fn transfers(chain_id: u64, count: usize) -> Vec<Value> {
    const PER_ACCOUNT: usize = 1000;
    (0..count)
        .map(|i| {
            let from = u32::try_from(i / PER_ACCOUNT).expect("account");
            let nonce = (i % PER_ACCOUNT) as u64;
            let to = Keypair::dev(from + 1).address();
            let tx = Keypair::dev(from).sign_transfer(chain_id, to, 1, 1, nonce);
            serde_json::to_value(&tx).expect("json")
        })
        .collect()
}

/// Opens `GET /v1/events` with a small receive buffer; returns the stream and the status code.
async fn open_stream(addr: SocketAddr, recv_buffer: Option<u32>) -> (TcpStream, u16) {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let mut s = socket.connect(addr).await.expect("connect");
    s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: peerchain\r\n\r\n")
        .await
        .expect("request");
    let code = tokio::time::timeout(ANSWER_WITHIN, read_head(&mut s))
        .await
        .unwrap_or(0);
    (s, code)
}

/// Submits `txs` in batches of 10,000; returns how many were accepted and the time it took.
async fn pump(addr: SocketAddr, txs: &[Value]) -> (usize, Duration) {
    let started = Instant::now();
    let mut accepted = 0;
    for chunk in txs.chunks(10_000) {
        let body = serde_json::to_string(chunk).expect("json");
        let (code, answer, _) = exchange(
            addr,
            &post("/v1/transactions/batch", None, &body),
            Duration::from_secs(60),
        )
        .await
        .expect("batch");
        assert_eq!(code, 200, "batch: {}", &answer[..answer.len().min(300)]);
        let items: Vec<Value> = serde_json::from_str(&answer).expect("batch answer");
        accepted += items.iter().filter(|i| i.get("error").is_none()).count();
    }
    (accepted, started.elapsed())
}

/// Transfers of the warm-up of phase 3.
const WARM_UP_TRANSFERS: usize = 20_000;
/// Transfers of phase 3.
const PHASE_TRANSFERS: usize = 10_000;

/// Phase 3: event streams that never read. `txs`: [`WARM_UP_TRANSFERS`], then
/// [`PHASE_TRANSFERS`].
async fn silent_subscribers(node: &NodeProcess, rss: &Rss, limits: &Limits, txs: &[Value]) {
    let addr = node.addr;
    let streams = limits.max_event_streams;
    let (warm_up, phase) = txs.split_at(WARM_UP_TRANSFERS);
    // Warm-up, no subscriber: admitting and mining 20,000 transfers costs the node memory of
    // its own (batch parsing, verification, mempool, blocks, store cache), which its
    // allocator keeps; spent before the phase so that the phase measures the streams.
    let warm_before = rss.begin();
    let (accepted, took) = pump(addr, warm_up).await;
    assert_eq!(accepted, WARM_UP_TRANSFERS, "warm-up transfers refused");
    let mined = Instant::now();
    loop {
        let (_, status, _) = exchange(addr, &get("/v1/status"), ANSWER_WITHIN)
            .await
            .expect("status");
        let status: Value = serde_json::from_str(&status).expect("status json");
        if status["mempool_size"] == 0 || mined.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warm_after = proc_kib(node.pid(), "VmRSS");
    eprintln!(
        "REPORT warm-up, no subscriber: {accepted} transfers accepted in {} and mined within {}; \
         RSS before {} / peak {} / after {}",
        secs(took),
        secs(mined.elapsed()),
        mib(warm_before),
        mib(rss.peak.load(Ordering::Relaxed)),
        mib(warm_after)
    );
    let counted = closed_by_reason(addr).await;
    let before = rss.begin();
    let mut silent = Vec::new();
    for _ in 0..streams - 1 {
        let (s, code) = open_stream(addr, Some(4096)).await;
        assert_eq!(code, 200, "event stream {} of {streams}", silent.len() + 1);
        silent.push(s);
    }
    // One subscriber reads, slowly: 1 KiB every 100 ms, with a 16 KiB receive buffer.
    let (slow, code) = open_stream(addr, Some(16 * 1024)).await;
    assert_eq!(code, 200, "the slow reader's stream");
    let stop = Arc::new(AtomicBool::new(false));
    let slow_reader = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut slow = slow;
            let mut buf = vec![0u8; 1024];
            let (mut read, mut lagged, mut tail) = (0usize, false, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match slow.read(&mut buf).await {
                    Ok(0) | Err(_) => return (read, lagged, true),
                    Ok(n) => {
                        read += n;
                        tail.extend_from_slice(&buf[..n]);
                        lagged |= tail.windows(13).any(|w| w == b"event: lagged");
                        let keep = tail.len().saturating_sub(16);
                        tail.drain(..keep);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (read, lagged, false)
        }
    });
    // The bound: one stream more is refused.
    let refused = exchange(addr, &get("/v1/events"), ANSWER_WITHIN).await;
    assert!(
        matches!(refused, Ok((429, _, _))),
        "stream {} of {streams}: {refused:?}",
        streams + 1
    );
    // Events: 10,000 transfers (a `tx` event each) and the blocks that confirm them.
    let pump_started = Instant::now();
    let (accepted, pumped_in) = pump(addr, phase).await;
    // The node drops each silent stream once its writes have stalled for
    // `write_stall_timeout`; until then an honest subscriber is refused. Status is answered
    // all along. (The test must not read the silent streams to see whether they are closed:
    // reading would make them readers.)
    let deadline = pump_started + limits.write_stall_timeout + Duration::from_secs(20);
    let mut worst = Duration::ZERO;
    let (mut freed_after, mut dropped_after) = (None, None);
    while freed_after.is_none() || dropped_after.is_none() {
        worst = worst.max(honest_status(addr, "silent subscribers").await);
        if freed_after.is_none() {
            let (_s, code) = open_stream(addr, None).await;
            match code {
                200 => freed_after = Some(pump_started.elapsed()),
                429 => {}
                other => panic!("an honest subscriber got {other}"),
            }
        }
        let stalled = closed_by_reason(addr).await[2] - counted[2];
        if dropped_after.is_none() && stalled >= (streams - 1) as u64 {
            dropped_after = Some(pump_started.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "silent subscribers: {} after the events began, {stalled} streams dropped for \
             stalled writes, an honest subscriber got a stream: {}",
            secs(pump_started.elapsed()),
            freed_after.is_some()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (slow_read, lagged, slow_dropped) = slow_reader.await.expect("slow reader");
    // The silent streams are closed: a byte sent on each draws a reset, then reading ends.
    let mut set = JoinSet::new();
    for mut s in silent {
        set.spawn(async move {
            let _ = s.write_all(b"\r\n").await;
            until_closed(s, Instant::now(), Instant::now() + ANSWER_WITHIN).await
        });
    }
    let closed = Summary::of(&set.join_all().await);
    let memory = rss.end("silent subscribers", before);
    let metrics = closed_since(addr, counted).await;
    eprintln!(
        "REPORT silent subscribers: {} event streams that never read (4 KiB receive buffer) \
         and 1 slow reader (1 KiB every 100 ms); stream {} refused with 429; {accepted} transfers accepted in {} \
         (a tx event each, plus blocks); an honest subscriber got a stream again {} and the \
         node had dropped every silent stream {} after the events began; {} of the {} silent \
         streams found closed ({metrics}); the slow \
         reader read {} KiB, was told it lagged: {lagged}, dropped: {slow_dropped}; honest GET /v1/status \
         slowest {:.0} ms; {memory}",
        streams - 1,
        streams + 1,
        secs(pumped_in),
        secs(freed_after.unwrap_or_default()),
        secs(dropped_after.unwrap_or_default()),
        closed.closed.len(),
        streams - 1,
        slow_read / 1024,
        worst.as_secs_f64() * 1000.0,
    );
    assert_eq!(accepted, PHASE_TRANSFERS, "transfers refused");
    assert_eq!(
        closed.closed.len(),
        streams - 1,
        "silent streams the node kept open"
    );
    assert!(lagged, "the slow reader was never told it lagged");
    assert!(!slow_dropped, "the slow reader, who reads, was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_clients_are_bounded_and_dropped() {
    let fd_limit = usize::try_from(raise_fd_limit(8192)).unwrap_or(usize::MAX);
    let limits = Limits::default();
    let started = Instant::now();
    let node = NodeProcess::start(64);
    // Phase 3's transfers, signed meanwhile.
    let chain_id = node.chain_id;
    let txs = tokio::task::spawn_blocking(move || {
        transfers(chain_id, WARM_UP_TRANSFERS + PHASE_TRANSFERS)
    });
    node.wait_up().await;
    let rss = Rss::start(node.pid());
    eprintln!(
        "node pid {} at {}, RSS {} after start; open-file limit {fd_limit}",
        node.pid(),
        node.addr,
        mib(proc_kib(node.pid(), "VmRSS"))
    );
    slowloris(&node, &rss, &limits).await;
    idle_connections(&node, &rss, &limits, fd_limit).await;
    let txs = txs.await.expect("signing");
    silent_subscribers(&node, &rss, &limits, &txs).await;
    eprintln!(
        "REPORT abusive clients: whole run {}, node RSS high-water mark (VmHWM) {}",
        secs(started.elapsed()),
        mib(proc_kib(node.pid(), "VmHWM"))
    );
    assert!(
        !node.log().contains("panicked"),
        "the node panicked:\n{}",
        node.log()
    );
}

#[test]
fn proc_status_fields_parse() {
    let me = std::process::id();
    let rss = proc_kib(me, "VmRSS");
    assert!(rss > 0);
    assert!(proc_kib(me, "VmHWM") >= rss);
}
