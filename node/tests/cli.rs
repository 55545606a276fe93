//! CLI tests: every subcommand's happy path and its bad-input errors, run against the real
//! binary (and a real `--dev` node where a node is needed).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use peerchain_ledger::Genesis;
use predicates::prelude::*;

const DEV0_SEED: &str = "b99f56239ba1dd408c5bddedf55e1a5a332cd2ba16eb4eae0fe47fbe310ab574";
const DEV0_ADDR: &str = "49a6bdea2673b89bd7b3992b18711ea9597c666a";
const DEV1_ADDR: &str = "1489567a16dc6f7c680d290992ffe2bdf35c69c6";

fn bin() -> Command {
    Command::cargo_bin("peerchain").expect("binary built")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A node process killed when dropped.
struct NodeProcess {
    child: Child,
    rpc: String,
    _dir: tempfile::TempDir,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `peerchain node --dev` on free ports and waits for its banner.
fn dev_node(extra: &[&str]) -> NodeProcess {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, rpc) = dev_node_at(dir.path(), extra);
    NodeProcess {
        child,
        rpc,
        _dir: dir,
    }
}

/// Starts `peerchain node --dev` on `dir` (free ports), waits for its banner, and returns the
/// process and its HTTP address. The log goes to `dir/node.log` (appended).
fn dev_node_at(dir: &std::path::Path, extra: &[&str]) -> (Child, String) {
    dev_node_on(dir, "127.0.0.1", extra)
}

/// [`dev_node_at`] with the HTTP API on `host`.
fn dev_node_on(dir: &std::path::Path, host: &str, extra: &[&str]) -> (Child, String) {
    let rpc_port = free_port();
    let p2p_port = free_port();
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("peerchain"))
        .args(["node", "--dev", "--data-dir"])
        .arg(dir)
        .args(["--rpc-listen", &format!("{host}:{rpc_port}")])
        .args(["--p2p-listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("node.log"))
                .expect("log file"),
        )
        .spawn()
        .expect("spawn node");
    let stdout = child.stdout.take().expect("stdout");
    let mut banner = String::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("banner line");
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Data directory") {
            break;
        }
    }
    // Keep reading so the node never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(banner.contains("PUBLIC TEST KEYS"), "banner: {banner}");
    assert!(
        banner.contains(DEV0_SEED),
        "banner lists dev seeds: {banner}"
    );
    assert!(
        banner.contains(&format!(":{rpc_port}/")),
        "banner: {banner}"
    );
    (child, format!("http://127.0.0.1:{rpc_port}"))
}

fn dev0_key(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("dev0.key");
    std::fs::write(&path, format!("{DEV0_SEED}\n")).expect("write key");
    path
}

#[test]
fn help_documents_every_command_and_precedence() {
    bin()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("keygen").and(predicate::str::contains("genesis")));
    bin().args(["node", "--help"]).assert().success().stdout(
        predicate::str::contains("Precedence").and(predicate::str::contains("--mine-hashrate")),
    );
}

#[test]
fn keygen_and_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("me.key");
    let out = bin().args(["keygen", "--out"]).arg(&key).assert().success();
    let addr = String::from_utf8(out.get_output().stdout.clone()).expect("utf-8");
    assert_eq!(addr.trim().len(), 40);
    let mode = std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    bin()
        .args(["address", "--key"])
        .arg(&key)
        .assert()
        .success()
        .stdout(addr.clone());
    bin()
        .args(["keygen", "--out"])
        .arg(&key)
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot create"));
    bin()
        .args(["address", "--key"])
        .arg(dev0_key(&dir))
        .assert()
        .success()
        .stdout(format!("{DEV0_ADDR}\n"));
    std::fs::write(dir.path().join("bad.key"), "not a key").expect("write");
    bin()
        .args(["address", "--key"])
        .arg(dir.path().join("bad.key"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("64 hex digits"));
}

#[test]
fn tx_sign_reproduces_the_spec_vector() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["tx", "sign", "--key"])
        .arg(dev0_key(&dir))
        .args([
            "--to",
            DEV1_ADDR,
            "--amount",
            "1000",
            "--fee",
            "10",
            "--nonce",
            "0",
            "--chain-id",
            "7710",
        ])
        .assert()
        .success();
    let tx: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).expect("json");
    assert_eq!(
        tx["signature"],
        "b6fadac22aafd9c8f943aa94776a52902589043d39806c73140868d58ce5b90f14e4ebc7e45b3fb8ce313689b15be2684a96534f07f312318f6451273377bf05"
    );
    bin()
        .args(["tx", "sign", "--key"])
        .arg(dev0_key(&dir))
        .args([
            "--to",
            "xyz",
            "--amount",
            "1",
            "--nonce",
            "0",
            "--chain-id",
            "1",
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--to"));
    bin()
        .args(["tx", "sign", "--key"])
        .arg(dev0_key(&dir))
        .args(["--to", DEV1_ADDR, "--amount", "-5"])
        .assert()
        .failure();
}

#[test]
fn genesis_new_writes_a_valid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("g.json");
    bin()
        .args([
            "genesis",
            "new",
            "--dev-accounts",
            "3",
            "--block-time",
            "1000",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success();
    let g = Genesis::from_file(&out).expect("valid genesis");
    assert_eq!(g.allocations.len(), 3);
    assert_eq!(g.target_block_time_ms, 1000);
    bin()
        .args(["genesis", "new", "--out"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicate::str::contains("refusing to overwrite"));
}

#[test]
fn node_startup_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"chain_id": "x"}"#).expect("write");
    bin()
        .args(["node", "--genesis"])
        .arg(&bad)
        .assert()
        .failure()
        .stderr(predicate::str::contains("genesis field `chain_id`"));
    bin()
        .args(["node", "--genesis"])
        .arg(dir.path().join("missing.json"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot read genesis file"));
    bin()
        .args(["node", "--dev", "--data-dir", "/dev/null/x"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot create data directory"));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    bin()
        .args([
            "node",
            "--dev",
            "--rpc-listen",
            &format!("127.0.0.1:{port}"),
        ])
        .assert()
        .failure()
        .stderr(predicate::str::contains("port in use"));
    // A data directory created for one network refuses another.
    let data = dir.path().join("data");
    let g1 = dir.path().join("g1.json");
    let g2 = dir.path().join("g2.json");
    bin()
        .args(["genesis", "new", "--out"])
        .arg(&g1)
        .assert()
        .success();
    bin()
        .args(["genesis", "new", "--chain-id", "99", "--out"])
        .arg(&g2)
        .assert()
        .success();
    let mut first = StdCommand::new(assert_cmd::cargo::cargo_bin("peerchain"))
        .args(["node", "--genesis"])
        .arg(&g1)
        .arg("--data-dir")
        .arg(&data)
        .args(["--rpc-listen", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--p2p-listen",
            &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !data.join("admin.token").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = StdCommand::new("kill")
        .arg("-TERM")
        .arg(first.id().to_string())
        .status();
    let _ = first.wait();
    bin()
        .args(["node", "--genesis"])
        .arg(&g2)
        .arg("--data-dir")
        .arg(&data)
        .assert()
        .failure()
        .stderr(predicate::str::contains("data directory holds the network"));
}

#[test]
fn dev_node_send_wait_status_admin_and_load() {
    let node = dev_node(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    bin()
        .args(["status", "--rpc", &node.rpc])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"chain_id\": 7711"));
    bin()
        .args(["tx", "send", "--key"])
        .arg(dev0_key(&dir))
        .args([
            "--to",
            DEV1_ADDR,
            "--amount",
            "1234",
            "--fee",
            "2",
            "--rpc",
            &node.rpc,
            "--wait",
            "--timeout",
            "30",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("confirmed in block"));
    let token = std::fs::read_to_string(node._dir.path().join("admin.token")).expect("token");
    bin()
        .args([
            "admin",
            "--rpc",
            &node.rpc,
            "--token",
            token.trim(),
            "mine",
            "2",
        ])
        .assert()
        .success();
    bin()
        .args(["admin", "--rpc", &node.rpc, "--token", "wrong", "mine", "1"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("401"));
    let load = bin()
        .args([
            "load",
            "--rpc",
            &node.rpc,
            "--tps",
            "20",
            "--seconds",
            "1",
            "--confirm-timeout",
            "20",
        ])
        .output()
        .expect("load runs");
    let stdout = String::from_utf8_lossy(&load.stdout);
    assert!(
        stdout.contains("sent 20 accepted 20 confirmed 20"),
        "load: {stdout}\nstderr: {}\nnode log: {}",
        String::from_utf8_lossy(&load.stderr),
        std::fs::read_to_string(node._dir.path().join("node.log")).unwrap_or_default()
    );
    bin()
        .args(["status", "--rpc", "http://127.0.0.1:1"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("cannot reach"));
}

/// Supervision: when the chain thread dies, the process logs why and exits non-zero instead
/// of serving stale data (it used to keep answering HTTP with a dead chain thread).
#[test]
fn node_exits_non_zero_when_its_chain_thread_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("node.log");
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("peerchain"))
        .args(["node", "--dev", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--rpc-listen", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--p2p-listen",
            &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        ])
        .env(peerchain::FailPoints::ENV, "chain-panic-after-ms=300")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn node");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!(
                "node still running 30 s after its chain thread died: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!status.success(), "exit status {status}: {text}");
    assert!(text.contains("chain thread ended"), "{text}");
    assert!(text.contains("chain-panic-after-ms=300"), "{text}");
}

/// Faults: a transaction the node accepted more than a second before it was SIGKILLed is
/// still pending after the restart. The mempool used to be saved only on a clean shutdown, so
/// a killed node lost every pending transaction; its changes are now written every 400 ms
/// (and sled writes them within 500 ms).
#[test]
fn a_transaction_accepted_a_second_before_sigkill_is_pending_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Dev mode with a block interval far away: the transaction stays pending.
    let flags = ["--block-time", "3600000"];
    let (mut child, rpc) = dev_node_at(dir.path(), &flags);
    let keys = tempfile::tempdir().expect("tempdir");
    let sent = bin()
        .args(["tx", "send", "--key"])
        .arg(dev0_key(&keys))
        .args([
            "--to", DEV1_ADDR, "--amount", "5", "--fee", "2", "--rpc", &rpc,
        ])
        .output()
        .expect("tx send runs");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let pending = |rpc: &str| -> String {
        let out = bin()
            .args(["status", "--rpc", rpc])
            .output()
            .expect("status runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        pending(&rpc).contains("\"mempool_size\": 1"),
        "{}",
        pending(&rpc)
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().expect("reaped");

    let (mut child, rpc) = dev_node_at(dir.path(), &flags);
    let status = pending(&rpc);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        status.contains("\"mempool_size\": 1"),
        "the pending transaction survived the kill: {status}\nnode log: {}",
        std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default()
    );
}

/// Security defaults: binding the HTTP API to a non-loopback address is allowed (admin calls
/// always need the token, created 0600) but said loudly in the log; admin calls without the
/// token are refused.
#[test]
fn a_public_http_address_is_announced_and_admin_needs_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, rpc) = dev_node_on(dir.path(), "0.0.0.0", &[]);
    let unauthorised = bin()
        .args(["admin", "--rpc", &rpc, "--token", "wrong", "mine", "1"])
        .output()
        .expect("admin runs");
    let _ = child.kill();
    let _ = child.wait();
    assert!(!unauthorised.status.success());
    assert!(String::from_utf8_lossy(&unauthorised.stderr).contains("401"));
    let token = dir.path().join("admin.token");
    let mode = std::fs::metadata(&token)
        .expect("token file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the admin token is private");
    let log = std::fs::read_to_string(dir.path().join("node.log")).expect("log");
    assert!(log.contains("non-loopback address"), "warned: {log}");
}
