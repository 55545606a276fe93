//! Node features container engines need (issue 15, docs/DEPLOY.md), through the real binary:
//! node keys known before the node starts (`--node-key-file`, `--node-key-seed` with
//! `--node-ordinal` or the host name's ordinal, `peerchain node-key`), the admin token from a
//! file, a DNS bootnode, readiness, JSON logs one object per line on stdout, and a clean exit
//! on SIGTERM well inside Kubernetes' 30 s grace period.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{BIN, Http, free_port, terminate, wait_for, write_genesis};

const SECRET: &str = "container test secret";

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `peerchain node-key ARGS`: its stdout lines (it must succeed).
fn node_key(args: &[&str]) -> Vec<String> {
    let mut all = vec!["node-key"];
    all.extend_from_slice(args);
    let out = run(&all, &[]);
    assert!(
        out.status.success(),
        "node-key {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// A node process on loopback (stdout and stderr to files), killed when dropped.
struct Node {
    child: Option<Child>,
    rpc: String,
    p2p_port: u16,
    data_dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Node {
    fn start(dir: &Path, name: &str, genesis: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let rpc_port = free_port();
        let p2p_port = free_port();
        let data_dir = dir.join(name);
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(BIN);
        cmd.arg("node")
            .arg("--genesis")
            .arg(genesis)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--p2p-listen", &format!("/ip4/127.0.0.1/tcp/{p2p_port}")])
            .args(["--rpc-listen", &format!("127.0.0.1:{rpc_port}")])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Node {
            child: Some(cmd.spawn().expect("spawn node")),
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            p2p_port,
            data_dir,
            stdout,
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (up to 30 s) for `/v1/status`; returns it.
    fn wait_up(&self, http: &Http) -> Value {
        let url = format!("{}/v1/status", self.rpc);
        let started = Instant::now();
        loop {
            if let Some(s) = http.get(&url) {
                return s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "node did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn peer_id(&self, http: &Http) -> String {
        self.wait_up(http)["peer_id"]
            .as_str()
            .expect("peer_id")
            .to_owned()
    }

    /// SIGTERM; asserts a successful exit within Kubernetes' default grace period (30 s);
    /// returns how long it took.
    fn stop(&mut self) -> Duration {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        match terminate(&mut child, Duration::from_secs(30)) {
            Some(status) => assert!(status.success(), "exit {status}; log:\n{}", self.log()),
            None => panic!("no exit within 30 s of SIGTERM; log:\n{}", self.log()),
        }
        started.elapsed()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn node_key_prints_the_peer_ids_nodes_started_with_those_keys_have() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = dir.path().join("genesis.json");
    write_genesis(&genesis, 2, 1000);
    let http = Http::new();

    let ids = node_key(&["--seed", SECRET, "--ordinal", "0", "--count", "3"]);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("12D3KooW")), "{ids:?}");
    assert_eq!(
        node_key(&["--seed", SECRET, "--ordinal", "2"]),
        vec![ids[2].clone()]
    );

    // The ordinal from --node-ordinal.
    let by_flag = Node::start(
        dir.path(),
        "by-flag",
        &genesis,
        &["--node-key-seed", SECRET, "--node-ordinal", "2"],
        &[],
    );
    assert_eq!(by_flag.peer_id(&http), ids[2]);
    assert!(
        !by_flag.data_dir.join("node.key").exists(),
        "<data-dir>/node.key is not written"
    );
    // The ordinal from the host name of a StatefulSet pod, the secret from the environment.
    let by_host = Node::start(
        dir.path(),
        "by-host",
        &genesis,
        &[],
        &[
            ("PEERCHAIN_NODE_KEY_SEED", SECRET),
            ("HOSTNAME", "peerchain-1"),
        ],
    );
    assert_eq!(by_host.peer_id(&http), ids[1]);
    assert!(
        by_host.log().contains("peerchain-1"),
        "the log says where the ordinal came from:\n{}",
        by_host.log()
    );
    // A key file: `node-key --file` prints the peer id the node then has, and a node.key in
    // the data directory is not read.
    let key_file = dir.path().join("node0.hex");
    std::fs::write(&key_file, format!("{}\n", "3c".repeat(32))).expect("write key");
    let key_path = key_file.to_str().expect("utf-8 path");
    let from_file = node_key(&["--file", key_path]);
    assert_eq!(from_file.len(), 1);
    let data = dir.path().join("by-file");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("node.key"), b"not a key: must not be read").expect("write");
    let by_file = Node::start(
        dir.path(),
        "by-file",
        &genesis,
        &[],
        &[("PEERCHAIN_NODE_KEY_FILE", key_path)],
    );
    assert_eq!(by_file.peer_id(&http), from_file[0]);
    let ids: Vec<String> = [&by_flag, &by_host, &by_file]
        .iter()
        .map(|n| n.peer_id(&http))
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
}

#[test]
fn node_key_and_admin_token_mistakes_are_clear_startup_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = dir.path().join("genesis.json");
    write_genesis(&genesis, 2, 1000);
    let g = genesis.to_str().expect("utf-8 path");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8 path");
    let node = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["node", "--genesis", g, "--data-dir", d];
        args.extend_from_slice(extra);
        let out = run(&args, env);
        assert!(!out.status.success(), "{args:?} must fail");
        text(&out.stderr)
    };
    // No ordinal anywhere.
    let err = node(&["--node-key-seed", SECRET], &[("HOSTNAME", "laptop")]);
    assert!(
        err.contains("--node-ordinal") && err.contains("\"laptop\""),
        "{err}"
    );
    // A key file that is not 64 hex digits, or missing.
    let bad = dir.path().join("bad.key");
    std::fs::write(&bad, "0x1234").expect("write");
    let b = bad.to_str().expect("utf-8 path");
    let err = node(&["--node-key-file", b], &[]);
    assert!(err.contains(b) && err.contains("64 hex digits"), "{err}");
    assert!(
        !err.contains("0x1234"),
        "the key's content is not echoed: {err}"
    );
    let err = node(&["--node-key-file", "/nonexistent/node.hex"], &[]);
    assert!(
        err.contains("/nonexistent/node.hex") && err.contains("cannot read"),
        "{err}"
    );
    // Both ways of giving a key at once; an ordinal without a seed.
    let err = node(
        &["--node-key-file", b],
        &[("PEERCHAIN_NODE_KEY_SEED", SECRET)],
    );
    assert!(
        err.contains("--node-key-file") && err.contains("--node-key-seed"),
        "{err}"
    );
    let err = node(&["--node-ordinal", "3"], &[]);
    assert!(err.contains("needs --node-key-seed"), "{err}");
    // The admin token file: empty, missing, or given with --admin-token.
    let empty = dir.path().join("empty.token");
    std::fs::write(&empty, "  \n").expect("write");
    let e = empty.to_str().expect("utf-8 path");
    let err = node(&["--admin-token-file", e], &[]);
    assert!(err.contains(e) && err.contains("empty"), "{err}");
    let err = node(&[], &[("PEERCHAIN_ADMIN_TOKEN_FILE", "/nonexistent/token")]);
    assert!(
        err.contains("cannot read the admin token file /nonexistent/token"),
        "{err}"
    );
    let err = node(&["--admin-token", "x", "--admin-token-file", e], &[]);
    assert!(err.contains("cannot be used with"), "{err}");
    assert!(!data.join("admin.token").exists(), "nothing was started");
    // node-key itself.
    let out = run(&["node-key"], &[]);
    assert!(!out.status.success());
    let out = run(&["node-key", "--seed", SECRET], &[]);
    assert!(
        text(&out.stderr).contains("--ordinal"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["node-key", "--file", b], &[]);
    assert!(
        text(&out.stderr).contains("64 hex digits"),
        "{}",
        text(&out.stderr)
    );
    // --help documents the flags, and hides the seed's value taken from the environment.
    let help = run(
        &["node", "--help"],
        &[("PEERCHAIN_NODE_KEY_SEED", "do-not-show-me")],
    );
    let help = text(&help.stdout);
    for flag in [
        "--node-key-file",
        "--node-key-seed",
        "--node-ordinal",
        "--admin-token-file",
        "PEERCHAIN_NODE_KEY_SEED",
        "PEERCHAIN_NODE_ORDINAL",
        "PEERCHAIN_ADMIN_TOKEN_FILE",
        "TESTNETS ONLY",
        "/dns4/",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(!help.contains("do-not-show-me"), "{help}");
}

/// Two nodes as an engine runs them: node 0 with a key file, the admin token from a file and
/// JSON logs; node 1 with a seed-derived key and node 0 as a /dns4 bootnode. Both become ready,
/// the admin token from the file works, every log line is one JSON object, on stdout (stderr
/// stays empty), and both exit cleanly well inside 30 s of SIGTERM.
#[test]
fn json_logs_token_file_dns_bootnode_readiness_and_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = dir.path().join("genesis.json");
    write_genesis(&genesis, 2, 1000);
    let http = Http::new();
    let token_file = dir.path().join("admin.secret");
    std::fs::write(&token_file, "mounted-admin-token\n").expect("write token");
    let key_file = dir.path().join("node0.hex");
    std::fs::write(&key_file, "a1".repeat(32)).expect("write key");
    let boot_id = node_key(&["--file", key_file.to_str().expect("utf-8 path")])[0].clone();

    let mut boot = Node::start(
        dir.path(),
        "node0",
        &genesis,
        &["--log-format", "json", "--mine", "--mine-hashrate", "50000"],
        &[
            (
                "PEERCHAIN_NODE_KEY_FILE",
                key_file.to_str().expect("utf-8 path"),
            ),
            (
                "PEERCHAIN_ADMIN_TOKEN_FILE",
                token_file.to_str().expect("utf-8 path"),
            ),
        ],
    );
    assert_eq!(boot.peer_id(&http), boot_id);
    assert_eq!(http.code(&format!("{}/v1/health", boot.rpc)), Some(200));
    assert_eq!(
        http.code(&format!("{}/v1/ready", boot.rpc)),
        Some(503),
        "no peer yet"
    );
    let bootnode = format!("/dns4/localhost/tcp/{}/p2p/{boot_id}", boot.p2p_port);
    let mut joiner = Node::start(
        dir.path(),
        "node1",
        &genesis,
        &["--log-format", "json", "--bootnode", &bootnode],
        &[
            ("PEERCHAIN_NODE_KEY_SEED", SECRET),
            ("PEERCHAIN_NODE_ORDINAL", "1"),
        ],
    );
    assert_eq!(
        joiner.peer_id(&http),
        node_key(&["--seed", SECRET, "--ordinal", "1"])[0]
    );
    for node in [&boot, &joiner] {
        let url = format!("{}/v1/ready", node.rpc);
        wait_for("both nodes ready", Duration::from_secs(40), || {
            (http.code(&url) == Some(200)).then_some(())
        });
    }
    assert!(
        !boot.data_dir.join("admin.token").exists(),
        "with --admin-token-file, <data-dir>/admin.token is not created"
    );
    let mine = |token: &str| {
        http.0
            .post(format!("{}/v1/admin/mine", boot.rpc))
            .bearer_auth(token)
            .json(&serde_json::json!({ "blocks": 1 }))
            .send()
            .expect("POST")
            .status()
            .as_u16()
    };
    assert_eq!(mine("mounted-admin-token"), 200, "the token from the file");
    assert_eq!(mine("wrong"), 401);

    for node in [&mut boot, &mut joiner] {
        let took = node.stop();
        eprintln!("exited {took:?} after SIGTERM");
        // JSON logs go to stdout, where container engines collect them; stderr stays empty.
        let log = std::fs::read_to_string(&node.stdout).unwrap_or_default();
        let mut lines = 0;
        for line in log.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}\nlog:\n{log}"));
            assert!(v.is_object() && v.get("level").is_some(), "{line}");
            assert!(
                v.get("timestamp").is_some() && v.get("fields").is_some(),
                "{line}"
            );
            lines += 1;
        }
        assert!(lines >= 3, "some log lines:\n{log}");
        assert!(log.contains("node stopped"), "an orderly shutdown:\n{log}");
        let stderr = node.log();
        assert!(
            stderr.is_empty(),
            "JSON logs go to stdout, not stderr: {stderr:?}"
        );
    }
}

/// A shutdown that hangs (here the chain thread, by a fail point) is cut short at the
/// deadline, inside Kubernetes' 30 s grace period, with a non-zero exit naming why, instead of
/// waiting for the SIGKILL.
#[test]
fn a_hung_shutdown_is_cut_short_inside_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let genesis = dir.path().join("genesis.json");
    write_genesis(&genesis, 2, 1000);
    let http = Http::new();
    let mut node = Node::start(
        dir.path(),
        "stuck",
        &genesis,
        &[],
        &[("PEERCHAIN_FAILPOINTS", "chain-stall-on-shutdown-ms=120000")],
    );
    node.wait_up(&http);
    let mut child = node.child.take().expect("running");
    let started = Instant::now();
    let status = terminate(&mut child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM; log:\n{}", node.log()));
    let took = started.elapsed();
    eprintln!("a hung shutdown exited {took:?} after SIGTERM");
    assert!(
        !status.success(),
        "a cut-short shutdown is a failure: {status}"
    );
    assert!(
        took >= Duration::from_secs(19),
        "{took:?}: the deadline is 20 s"
    );
    let log = node.log();
    assert!(log.contains("did not stop within 20 s"), "{log}");
}
