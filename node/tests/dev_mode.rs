//! The dev conveniences of issue 14, run against the real binary: `node --dev --accounts N
//! --balance B` (the banner and the funded accounts), `node --dev --genesis FILE` (that network,
//! in a temporary data directory) and its refusal of `--accounts`, `genesis new` with every
//! genesis field as an option, and `dev-key`.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use peerchain_ledger::Genesis;
use peerchain_ledger::crypto::Keypair;
use support::{BIN, Http, free_port, terminate};

const DEV0_SEED: &str = "b99f56239ba1dd408c5bddedf55e1a5a332cd2ba16eb4eae0fe47fbe310ab574";
const DEV0_ADDR: &str = "49a6bdea2673b89bd7b3992b18711ea9597c666a";

/// A `peerchain node --dev` process with its banner; SIGKILLed when dropped.
struct DevNode {
    child: Option<Child>,
    rpc: String,
    banner: String,
    log: PathBuf,
}

impl DevNode {
    /// Starts `peerchain node --dev ARGS` on free loopback ports, logging to `log`, and waits
    /// (up to 60 s) for its banner.
    fn start(args: &[&str], log: &Path) -> Self {
        let rpc_port = free_port();
        let mut child = Command::new(BIN)
            .args(["node", "--dev"])
            .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
            .args([
                "--p2p-listen",
                &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = String::new();
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                banner.push_str(&line);
                banner.push('\n');
                if line.starts_with("Data directory") {
                    break;
                }
            }
            let _ = tx.send(banner);
            // Keep reading so the node never writes into a closed pipe.
            lines.for_each(drop);
        });
        let banner = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let node = DevNode {
            child: Some(child),
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            banner,
            log: log.to_owned(),
        };
        assert!(
            node.banner.contains("Data directory"),
            "no banner: {:?}\nlog: {}",
            node.banner,
            node.log()
        );
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` on the node's HTTP API.
    fn get(&self, http: &Http, path: &str) -> serde_json::Value {
        http.get(&format!("{}{path}", self.rpc))
            .unwrap_or_else(|| panic!("GET {path} failed; log:\n{}", self.log()))
    }

    /// SIGTERM, then waits (up to 20 s) for a clean exit.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        match terminate(&mut child, Duration::from_secs(20)) {
            Some(status) => assert!(status.success(), "exit {status}; log:\n{}", self.log()),
            None => panic!("the node did not stop on SIGTERM; log:\n{}", self.log()),
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn dev_accounts_and_balance_fund_the_dev_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let args = ["--data-dir", data, "--accounts", "25", "--balance", "7"];
    let mut node = DevNode::start(&args, &dir.path().join("node.log"));
    let banner = &node.banner;
    assert_eq!(banner.matches("    secret seed ").count(), 10, "{banner}");
    assert!(banner.contains(DEV0_SEED), "{banner}");
    assert!(
        banner.contains("(9) ") && !banner.contains("(10) "),
        "{banner}"
    );
    assert!(banner.contains("... and 15 more accounts"), "{banner}");
    assert!(banner.contains("peerchain dev-key <i>"), "{banner}");
    let http = Http::new();
    let last = Keypair::dev(24).address();
    let account = node.get(&http, &format!("/v1/accounts/{last}"));
    assert_eq!(account["balance"], 7, "{account}");
    let beyond = Keypair::dev(25).address();
    let account = node.get(&http, &format!("/v1/accounts/{beyond}"));
    assert_eq!(account["balance"], 0, "{account}");
    assert_eq!(node.get(&http, "/v1/status")["chain_id"], 7711);
    node.stop();
}

#[test]
fn dev_mode_runs_the_network_of_a_genesis_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("g.json");
    let file = file.to_str().expect("utf-8 path");
    let made = run(&[
        "genesis",
        "new",
        "--chain-id",
        "4242",
        "--dev-accounts",
        "12",
        "--balance",
        "11",
        "--out",
        file,
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let hash = text(&made.stdout).trim().to_owned();
    // No --data-dir: dev mode's temporary directory, removed on exit.
    let mut node = DevNode::start(&["--genesis", file], &dir.path().join("node.log"));
    let http = Http::new();
    let status = node.get(&http, "/v1/status");
    assert_eq!(status["chain_id"], 4242, "{status}");
    assert_eq!(status["genesis_hash"], hash.as_str(), "{status}");
    assert!(
        node.banner.contains("Chain id        4242"),
        "{}",
        node.banner
    );
    assert!(
        node.banner.contains("and 2 more accounts"),
        "{}",
        node.banner
    );
    let account = node.get(&http, &format!("/v1/accounts/{DEV0_ADDR}"));
    assert_eq!(account["balance"], 11, "{account}");
    let data_line = node
        .banner
        .lines()
        .find(|l| l.starts_with("Data directory"))
        .expect("data directory line");
    let data_dir = PathBuf::from(data_line.trim_start_matches("Data directory").trim());
    assert!(
        data_dir.to_string_lossy().contains("peerchain-dev-"),
        "{data_line}"
    );
    assert!(data_dir.exists());
    node.stop();
    assert!(!data_dir.exists(), "{} left behind", data_dir.display());
}

#[test]
fn dev_mode_refuses_to_reshape_a_genesis_file_and_bounds_accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("g.json");
    let file = file.to_str().expect("utf-8 path");
    let made = run(&["genesis", "new", "--out", file]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let out = run(&[
        "node",
        "--dev",
        "--genesis",
        file,
        "--data-dir",
        data,
        "--accounts",
        "3",
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("--accounts 3"), "{stderr}");
    assert!(stderr.contains(&format!("genesis file {file}")), "{stderr}");
    assert!(
        !Path::new(data).exists(),
        "refused before creating anything"
    );

    let out = run(&["node", "--accounts", "3"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--accounts") && stderr.contains("--dev"),
        "{stderr}"
    );
    let out = run(&["node", "--dev", "--accounts", "100001"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("limit of 100000"), "{stderr}");
    let out = run(&["node", "--dev", "--accounts", "10000", "--data-dir", data]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("2^53") && stderr.contains("--balance can be at most"),
        "{stderr}"
    );
}

#[test]
fn genesis_new_writes_every_field_it_is_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("g.json");
    let file_arg = file.to_str().expect("utf-8 path");
    let other = Keypair::dev(500).address().to_string();
    let target = format!("0000{}", "f".repeat(60));
    let limit = format!("00{}", "f".repeat(62));
    let made = run(&[
        "genesis",
        "new",
        "--dev-accounts",
        "3",
        "--balance",
        "1000",
        "--alloc",
        &format!("{other}=77"),
        "--chain-id",
        "99",
        "--timestamp-ms",
        "1700000000000",
        "--block-time",
        "1500",
        "--difficulty-half-life-ms",
        "30000",
        "--initial-target",
        &target,
        "--pow-limit",
        &limit,
        "--initial-reward",
        "5000",
        "--halving-interval",
        "1000",
        "--min-fee",
        "4",
        "--max-block-txs",
        "500",
        "--max-future-ms",
        "9000",
        "--out",
        file_arg,
    ]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let g = Genesis::from_file(&file).expect("valid genesis");
    assert_eq!(text(&made.stdout).trim(), g.hash().to_string());
    assert_eq!((g.chain_id, g.timestamp_ms), (99, 1_700_000_000_000));
    assert_eq!(
        (g.target_block_time_ms, g.difficulty_half_life_ms),
        (1500, 30_000)
    );
    assert_eq!(g.initial_target.to_string(), target);
    assert_eq!(g.pow_limit.to_string(), limit);
    assert_eq!((g.initial_reward, g.halving_interval), (5000, 1000));
    assert_eq!(
        (g.min_fee, g.max_block_txs, g.max_future_ms),
        (4, 500, 9000)
    );
    let allocs: Vec<(String, u64)> = g
        .allocations
        .iter()
        .map(|a| (a.address.to_string(), a.balance))
        .collect();
    let dev = |i| Keypair::dev(i).address().to_string();
    assert_eq!(
        allocs,
        [(dev(0), 1000), (dev(1), 1000), (dev(2), 1000), (other, 77)]
    );

    let refused = run(&[
        "genesis",
        "new",
        "--difficulty-half-life-ms",
        "10",
        "--out",
        &format!("{file_arg}.2"),
    ]);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("--difficulty-half-life-ms 10")
            && stderr.contains("`difficulty_half_life_ms` (10)"),
        "{stderr}"
    );
    let help = text(&run(&["genesis", "new", "--help"]).stdout);
    for option in [
        "--timestamp-ms <MS>",
        "--max-block-txs <N>",
        "--initial-reward <UNITS>",
        "--halving-interval <BLOCKS>",
        "--hashrate <H/S>",
    ] {
        assert!(help.contains(option), "{option} in {help}");
    }
}

#[test]
fn dev_key_prints_and_writes_dev_keys() {
    let out = run(&["dev-key", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{DEV0_ADDR} {DEV0_SEED}\n"));
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("dev7.key");
    let key_arg = key.to_str().expect("utf-8 path");
    let out = run(&["dev-key", "7", "--out", key_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let address = run(&["address", "--key", key_arg]);
    assert_eq!(
        text(&address.stdout).trim(),
        Keypair::dev(7).address().to_string()
    );
    assert!(
        !run(&["dev-key", "7", "--out", key_arg]).status.success(),
        "never overwrites"
    );
}
