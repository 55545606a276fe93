//! Helpers shared by the tests that drive real node processes (`CARGO_BIN_EXE_peerchain`):
//! free ports, a genesis file, a node process that is killed when dropped, and a small
//! blocking HTTP client. Each test file includes it with `mod support;`.

#![allow(dead_code, reason = "each test file uses a part")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The node binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_peerchain");

/// A TCP port free on loopback now, never one an outgoing connection can take first
/// (`peerchain::ports`).
pub(crate) fn free_port() -> u16 {
    peerchain::ports::free_loopback_port().expect("free port")
}

/// Writes a genesis of `accounts` funded dev accounts with blocks every `block_time_ms` at
/// 60,000 H/s to `path` (`peerchain genesis new`); returns its chain id.
pub(crate) fn write_genesis(path: &Path, accounts: u32, block_time_ms: u64) -> u64 {
    let made = Command::new(BIN)
        .args(["genesis", "new", "--dev-accounts", &accounts.to_string()])
        .args(["--block-time", &block_time_ms.to_string()])
        .args(["--hashrate", "60000", "--out"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("genesis new");
    assert!(made.success(), "genesis new failed");
    let text = std::fs::read_to_string(path).expect("genesis");
    let v: Value = serde_json::from_str(&text).expect("genesis json");
    v["chain_id"].as_u64().expect("chain id")
}

/// A node process on loopback, SIGKILLed when dropped. Its stderr goes to `log`.
pub(crate) struct NodeProcess {
    child: Option<Child>,
    /// Base URL of its HTTP API.
    pub(crate) rpc: String,
    /// Its P2P port on 127.0.0.1.
    pub(crate) p2p_port: u16,
    /// Its log file.
    pub(crate) log: PathBuf,
}

impl NodeProcess {
    /// Starts `peerchain node` with `genesis`, `data_dir`, free loopback ports and `extra`
    /// arguments, logging to `log`.
    pub(crate) fn start(genesis: &Path, data_dir: &Path, log: &Path, extra: &[&str]) -> Self {
        let rpc_port = free_port();
        let p2p_port = free_port();
        let log_file = std::fs::File::create(log).expect("log file");
        let child = Command::new(BIN)
            .arg("node")
            .arg("--genesis")
            .arg(genesis)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--p2p-listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
            .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn node");
        NodeProcess {
            child: Some(child),
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            p2p_port,
            log: log.to_owned(),
        }
    }

    /// Its P2P address with `/p2p/<peer id>` (`status` is its `/v1/status`), for `--bootnode`.
    pub(crate) fn multiaddr(&self, status: &Value) -> String {
        let id = status["peer_id"].as_str().expect("peer_id in the status");
        format!("/ip4/127.0.0.1/tcp/{}/p2p/{id}", self.p2p_port)
    }

    /// The node's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 30 s) until the node answers `/v1/status`; returns it.
    pub(crate) fn wait_up(&self, http: &Http) -> Value {
        let started = Instant::now();
        loop {
            if let Some(s) = http.get(&format!("{}/v1/status", self.rpc)) {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node at {} did not start; log:\n{}",
                self.rpc,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the node with SIGTERM and waits (up to 20 s) for it to exit.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if terminate(&mut child, Duration::from_secs(20)).is_none() {
            panic!("the node did not stop on SIGTERM; log:\n{}", self.log());
        }
    }
}

/// Sends `sig` to a child not yet reaped (std offers SIGKILL only).
pub(crate) fn signal(child: &Child, sig: i32) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) only reads its integer arguments; the child is not reaped yet, so its
    // pid cannot have been reused.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

/// SIGTERM, then waits up to `limit` for the child to exit: its exit status, or `None` when it
/// did not exit in time (it is then killed and reaped).
pub(crate) fn terminate(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    signal(child, libc::SIGTERM);
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A blocking HTTP client with a 5 s timeout.
pub(crate) struct Http(pub(crate) reqwest::blocking::Client);

impl Http {
    /// A client.
    pub(crate) fn new() -> Self {
        Http(
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .expect("client"),
        )
    }

    /// GET `url` as JSON; `None` on any failure or non-2xx status.
    pub(crate) fn get(&self, url: &str) -> Option<Value> {
        let r = self.0.get(url).send().ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().ok()
    }

    /// The HTTP status of a GET (`None` when unreachable).
    pub(crate) fn code(&self, url: &str) -> Option<u16> {
        Some(self.0.get(url).send().ok()?.status().as_u16())
    }

    /// GET `url` as text; `None` on any failure or non-2xx status.
    pub(crate) fn get_text(&self, url: &str) -> Option<String> {
        let r = self.0.get(url).send().ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().ok()
    }

    /// POST `body` as JSON to `url`: the status and the JSON answer (`Null` if none).
    pub(crate) fn post(&self, url: &str, body: &Value) -> Option<(u16, Value)> {
        let r = self.0.post(url).json(body).send().ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().unwrap_or(Value::Null)))
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics with `what` after `limit`.
pub(crate) fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
