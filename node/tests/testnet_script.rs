//! Drives `scripts/testnet.sh` with 3 nodes on non-default ports through up, status, load,
//! partition, heal, kill, start and down, and checks that every node ends on the same tip with
//! nothing lost; then restarts the nodes one by one, a lone node first and the bootnode last.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peerchain_ledger::crypto::Keypair;

struct Testnet {
    dir: PathBuf,
    p2p_base: u16,
    rpc_base: u16,
    genesis: PathBuf,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A base port with `n` consecutive free ports.
fn free_base(n: u16, seed: u16) -> u16 {
    for attempt in 0..200u16 {
        let base = 20_000 + (seed.wrapping_mul(7919).wrapping_add(attempt * 97)) % 30_000;
        if (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range");
}

impl Testnet {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(root().join("scripts/testnet.sh"))
            .args(args)
            .current_dir(std::env::temp_dir()) // works from any current directory
            .env("TESTNET_DIR", &self.dir)
            .env("P2P_BASE", self.p2p_base.to_string())
            .env("RPC_BASE", self.rpc_base.to_string())
            .env("GENESIS", &self.genesis)
            .env("HASHRATE", "20000")
            .env("PEERCHAIN_BIN", env!("CARGO_BIN_EXE_peerchain"))
            .output()
            .expect("run testnet.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "testnet.sh {args:?} failed:\n{text}");
        text
    }

    /// (up, height, tip) per node from `status`.
    fn tips(&self) -> Vec<(bool, u64, String)> {
        self.ok(&["status"])
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let up = f.get(2) == Some(&"up");
                let height = f.get(4).and_then(|h| h.parse().ok()).unwrap_or(0);
                (up, height, f.get(6).unwrap_or(&"").to_string())
            })
            .collect()
    }

    fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&[(bool, u64, String)]) -> bool,
    ) {
        let started = Instant::now();
        loop {
            let tips = self.tips();
            if ok(&tips) {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}: {tips:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn rpc(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}", self.rpc_base + i)
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn all_same_tip(min_height: u64) -> impl Fn(&[(bool, u64, String)]) -> bool {
    move |t| t.iter().all(|x| x.0 && x.1 >= min_height && x.2 == t[0].2)
}

fn count(text: &str, word: &str) -> u64 {
    let f: Vec<&str> = text.split_whitespace().collect();
    f.iter()
        .position(|w| *w == word)
        .and_then(|i| f.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{word} N` in {text}"))
}

/// Sum of the dev accounts' nonces on node `i`: every confirmed transfer of the load counted once.
fn confirmed_sends(rpc: &str) -> u64 {
    let http = reqwest::blocking::Client::new();
    (0..10)
        .map(|i| {
            let url = format!("{rpc}/v1/accounts/{}", Keypair::dev(i).address());
            let body: serde_json::Value = http
                .get(url)
                .send()
                .and_then(|r| r.json())
                .unwrap_or_default();
            body["nonce"].as_u64().unwrap_or(0)
        })
        .sum()
}

#[test]
fn testnet_script_lifecycle() {
    let work = tempfile::tempdir().expect("tempdir");
    let genesis = work.path().join("genesis.json");
    let made = Command::new(env!("CARGO_BIN_EXE_peerchain"))
        .args([
            "genesis",
            "new",
            "--dev-accounts",
            "10",
            "--block-time",
            "1000",
            "--hashrate",
            "60000",
            "--out",
        ])
        .arg(&genesis)
        .status()
        .expect("genesis new");
    assert!(made.success());
    let seed = std::process::id() as u16;
    let net = Testnet {
        dir: work.path().join("net"),
        p2p_base: free_base(3, seed),
        rpc_base: free_base(3, seed.wrapping_add(1)),
        genesis,
    };
    let table = net.ok(&["up", "3"]);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("http://127.0.0.1:"))
            .count(),
        3,
        "{table}"
    );
    assert!(
        !net.run(&["up", "3"]).0,
        "a second testnet on the same ports is refused"
    );

    let load = net.ok(&["load", "10", "2"]);
    assert_eq!(count(&load, "sent"), 20, "{load}");
    assert_eq!(count(&load, "accepted"), 20, "{load}");
    assert_eq!(count(&load, "confirmed"), 20, "{load}");

    net.ok(&["partition", "0", "1,2"]);
    let during = net.ok(&["load", "10", "2"]);
    let accepted_during = count(&during, "accepted");
    let at_split = net.tips().iter().map(|t| t.1).max().unwrap_or(0);
    net.wait_until(
        "both sides to mine on their own",
        Duration::from_secs(60),
        |t| t[0].1 > at_split + 1 && t[1].1 > at_split + 1 && t[0].2 != t[1].2,
    );
    net.ok(&["heal"]);
    net.wait_until(
        "one tip after healing",
        Duration::from_secs(90),
        all_same_tip(at_split + 2),
    );

    net.ok(&["kill", "1"]);
    assert!(!net.tips()[1].0, "node 1 is down after kill");
    std::thread::sleep(Duration::from_secs(2));
    net.ok(&["start", "1"]);
    let height = net.tips()[0].1;
    net.wait_until(
        "node 1 to catch up",
        Duration::from_secs(90),
        all_same_tip(height),
    );

    // Nothing lost: every accepted transfer ends up confirmed on every node.
    let expected = 20 + accepted_during;
    let started = Instant::now();
    loop {
        let sends: Vec<u64> = (0..3).map(|i| confirmed_sends(&net.rpc(i))).collect();
        if sends.iter().all(|s| *s == expected) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "expected {expected} confirmed sends on every node, got {sends:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    net.ok(&["down"]);
    assert!(net.tips().iter().all(|t| !t.0), "every node is down");

    // Restarts in any order. A lone node starts (it used to wait 60 s for a peer and exit
    // non-zero although it ran fine) and says it has no peers yet; the others join it, the
    // bootnode last, and every node finds both others again.
    let lone = net.ok(&["start", "2"]);
    assert!(lone.contains("no peers yet"), "{lone}");
    net.ok(&["start", "1"]);
    net.ok(&["start", "0"]);
    let started = Instant::now();
    loop {
        let status = net.ok(&["status"]);
        let connected = status.lines().filter(|l| l.contains(" peers 2 ")).count();
        if connected == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "every node connected to both others:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    net.ok(&["down"]);
}
