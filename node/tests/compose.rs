//! A 3-node testnet on Docker Compose, for real: the image built from this binary
//! (`scripts/docker-image.sh`, on a base made here: no registry is needed), the Compose file
//! from `scripts/compose.sh gen`, driven through `TESTNET_BACKEND=compose scripts/testnet.sh`:
//! transfers, a network cut of node 2 (`docker network disconnect`) while everyone mines, the
//! heal, a `docker kill` and restart of node 1; every node ends on one tip and state digest
//! and every accepted transfer is in the chain. It tears down what it made (containers,
//! networks, volumes, the images it built) and stops the Docker daemon if it started one.
//!
//! Docker: the daemon that runs, else `dockerd` started here (`docker.io` installed by
//! `.ci/run`). Without Docker the test says so and passes, unless
//! `PEERCHAIN_REQUIRE_DOCKER=1` (CI sets it), when it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use serde_json::Value;
use support::{BIN, terminate, wait_for};

/// Transfers of one load: 5 s at 8/s from 8 dev accounts.
const LOAD: [&str; 2] = ["8", "5"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Docker daemon this test uses; stops it on drop when the test started it.
struct Daemon {
    started: Option<Child>,
}

impl Daemon {
    /// The running daemon, or one started here; `None` when there is no Docker at all.
    fn get() -> Option<Self> {
        if works("docker", &["info"]) {
            eprintln!("docker: using the daemon that was running");
            return Some(Daemon { started: None });
        }
        if !works("dockerd", &["--version"]) {
            return None;
        }
        let log =
            std::env::temp_dir().join(format!("dockerd-peerchain-{}.log", std::process::id()));
        let child = Command::new("dockerd")
            .args(["--default-ulimit", "nofile=1024:1024"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("dockerd log"))
            .spawn()
            .expect("start dockerd");
        let daemon = Daemon {
            started: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !works("docker", &["info"]) {
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 60 s; its log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!(
            "docker: started dockerd for this test (log {})",
            log.display()
        );
        Some(daemon)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.started.take() {
            // SIGTERM lets dockerd stop cleanly; SIGKILL after 20 s.
            if terminate(&mut child, Duration::from_secs(20)).is_some() {
                eprintln!("docker: stopped the dockerd this test started");
            }
        }
    }
}

/// The testnet: its environment, and the teardown of everything it made.
struct Testnet {
    dir: tempfile::TempDir,
    project: String,
    image: String,
    base: String,
    rpc_base: u16,
}

impl Testnet {
    fn script(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(root().join("scripts/testnet.sh"));
        cmd.args(args)
            .env("TESTNET_BACKEND", "compose")
            .env("COMPOSE_DIR", self.dir.path())
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("PEERCHAIN_IMAGE", &self.image)
            .env("PEERCHAIN_BIN", BIN)
            .env("RPC_BASE", self.rpc_base.to_string())
            .env("HASHRATE", "20000");
        run(&mut cmd)
    }

    fn rpc(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}", self.rpc_base + i)
    }

    /// `peerchain status` of node `i` from inside its container (works during a cut too).
    fn status(&self, i: usize) -> Option<Value> {
        let out = Command::new("docker")
            .args(["exec", &format!("{}-node{i}", self.project)])
            .args(["peerchain", "status", "--rpc", "http://127.0.0.1:8710"])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Waits until all 3 nodes report one tip and state digest; returns the tip height.
    fn converged(&self, limit: Duration) -> u64 {
        wait_for("one tip and state digest on every node", limit, || {
            let s: Vec<Value> = (0..3).map(|i| self.status(i)).collect::<Option<_>>()?;
            let same = s.iter().all(|x| {
                x["tip_hash"] == s[0]["tip_hash"] && x["state_digest"] == s[0]["state_digest"]
            });
            same.then(|| s[0]["height"].as_u64().unwrap_or(0))
        })
    }

    /// Runs a load on `nodes`; returns how many transfers were accepted.
    fn load(&self, nodes: &[u16]) -> u64 {
        let rpcs: Vec<String> = nodes.iter().map(|&i| self.rpc(i)).collect();
        let out = run(Command::new(BIN)
            .args(["load", "--rpc", &rpcs.join(","), "--accounts", "8"])
            .args([
                "--tps",
                LOAD[0],
                "--seconds",
                LOAD[1],
                "--confirm-timeout",
                "20",
            ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "sent N accepted M confirmed K"
        let words: Vec<&str> = text.split_whitespace().collect();
        let accepted = words
            .iter()
            .position(|w| *w == "accepted")
            .and_then(|i| words.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("load printed {text:?}"));
        eprintln!("load on nodes {nodes:?}: {}", text.trim());
        accepted
    }

    /// Sum of the sending accounts' nonces on node 0's chain: transfers of theirs confirmed.
    fn confirmed_transfers(&self) -> u64 {
        let http = reqwest::blocking::Client::new();
        (0..8)
            .map(|i| {
                let address = run(Command::new(BIN).args(["dev-key", &i.to_string()]));
                let address = String::from_utf8_lossy(&address.stdout)
                    .split_whitespace()
                    .next()
                    .expect("an address")
                    .to_owned();
                let account: Value = http
                    .get(format!("{}/v1/accounts/{address}", self.rpc(0)))
                    .send()
                    .and_then(|r| r.json())
                    .expect("account");
                account["nonce"].as_u64().expect("nonce")
            })
            .sum()
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/compose.sh"))
            .arg("clean")
            .env("COMPOSE_DIR", self.dir.path())
            .env("COMPOSE_PROJECT_NAME", &self.project)
            .env("PEERCHAIN_IMAGE", &self.image)
            .stdin(Stdio::null())
            .output();
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.image, &self.base])
            .stdin(Stdio::null())
            .output();
        let left = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("name={}-", self.project)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if left.is_empty() {
            eprintln!("compose: containers, networks, volumes and images removed");
        } else {
            eprintln!("compose: containers left behind: {left}");
        }
    }
}

/// A base port with three free ports after it.
fn free_base() -> u16 {
    for _ in 0..50 {
        let base = 20_000 + (rand_u16() % 30_000);
        if (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no three free ports in a row");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

#[test]
fn a_compose_testnet_survives_a_network_cut_and_a_killed_container() {
    let Some(_daemon) = Daemon::get() else {
        let required = std::env::var("PEERCHAIN_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "PEERCHAIN_REQUIRE_DOCKER=1 but there is no Docker here (install docker.io)"
        );
        eprintln!("SKIPPED: no Docker on this machine (install docker.io); nothing was tested");
        return;
    };
    let has_compose =
        works("docker-compose", &["version"]) || works("docker", &["compose", "version"]);
    assert!(has_compose, "Docker runs but there is no docker-compose");
    let pid = std::process::id();
    let net = Testnet {
        dir: tempfile::tempdir().expect("tempdir"),
        project: format!("pctest{pid}"),
        image: format!("peerchain:test-{pid}"),
        base: format!("peerchain-base:test-{pid}"),
        rpc_base: free_base(),
    };
    let built = run(Command::new(root().join("scripts/docker-image.sh"))
        .arg(&net.image)
        .env("PEERCHAIN_BIN", BIN)
        .env("BASE_TAG", &net.base));
    eprintln!(
        "image {} built from this binary on a base made here",
        String::from_utf8_lossy(&built.stdout).trim()
    );
    net.script(&["up", "3"]);
    let mut accepted = net.load(&[0, 1, 2]);
    let height = net.converged(Duration::from_secs(90));
    eprintln!("3 nodes on one tip at height {height}");

    // A real network cut: node 2 leaves the network; both sides keep mining and diverge.
    net.script(&["partition", "0,1", "2"]);
    accepted += net.load(&[0, 1]);
    wait_for("the sides diverge", Duration::from_secs(60), || {
        let (a, b) = (net.status(0)?, net.status(2)?);
        (a["tip_hash"] != b["tip_hash"] && b["height"].as_u64()? > height).then_some(())
    });
    net.script(&["heal"]);
    let healed = net.converged(Duration::from_secs(120));
    eprintln!("healed: one tip at height {healed}");

    // SIGKILL a container and start it again: its store reopens and it catches up.
    net.script(&["kill", "1"]);
    accepted += net.load(&[0]);
    net.script(&["start", "1"]);
    let end = net.converged(Duration::from_secs(120));
    eprintln!("restarted: one tip at height {end}");
    let confirmed = wait_for(
        "every accepted transfer confirmed",
        Duration::from_secs(60),
        || {
            let c = net.confirmed_transfers();
            (c >= accepted).then_some(c)
        },
    );
    assert_eq!(confirmed, accepted, "transfers confirmed against accepted");
    let status = net.script(&["status"]);
    eprintln!("{}", String::from_utf8_lossy(&status.stdout));
}
