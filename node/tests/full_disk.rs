//! Faults: a full disk. A mining node whose data directory is on a small tmpfs (root only;
//! skipped with a message elsewhere) runs out of space when the test fills the tmpfs. It must
//! refuse transactions with 503 `disk_full` and a clear log line, keep serving reads, mark no
//! block invalid, and recover by itself once the space is freed, with a store that passes
//! `verify_consistency` afterwards.
//!
//! Two runs: `--disk-reserve-mb 0`, where only a failed write can stop the node (sled then
//! refuses every write until the store is reopened, so recovery must reopen it), and
//! `--disk-reserve-mb 8`, the early stop on low free space.
//!
//! Run: `cargo test -p peerchain --test full_disk -- --nocapture` (as root).

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::{Genesis, Store, StoreConfig};
use peerchain_testkit::{Tmpfs, fill_disk};
use serde_json::Value;
use support::{Http, NodeProcess, wait_for, write_genesis};

const TOKEN: &str = "full-disk-test-token";

/// Signs and submits a transfer from dev account `from` (nonce 0): the status and answer.
fn submit(http: &Http, node: &NodeProcess, chain_id: u64, from: u32) -> (u16, Value, String) {
    let tx = Keypair::dev(from).sign_transfer(chain_id, Keypair::dev(0).address(), 1, 1, 0);
    let body = serde_json::to_value(&tx).expect("json");
    let (status, answer) = http
        .post(&format!("{}/v1/transactions", node.rpc), &body)
        .unwrap_or((0, Value::Null));
    (status, answer, tx.txid().to_string())
}

fn height(http: &Http, node: &NodeProcess) -> Option<u64> {
    http.get(&format!("{}/v1/status", node.rpc))?["height"].as_u64()
}

fn run(reserve_mb: u32) {
    let Some(fs) = Tmpfs::mount("64m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let genesis_path = work.path().join("genesis.json");
    let chain_id = write_genesis(&genesis_path, 400, 500);
    let data_dir: PathBuf = fs.path().join("node");
    let reserve = reserve_mb.to_string();
    let mut node = NodeProcess::start(
        &genesis_path,
        &data_dir,
        &work.path().join("node.log"),
        &[
            "--mine",
            "--mine-hashrate",
            "20000",
            "--cache-mb",
            "8",
            "--admin-token",
            TOKEN,
            "--disk-reserve-mb",
            &reserve,
        ],
    );
    let http = Http::new();
    node.wait_up(&http);
    wait_for("three blocks mined", Duration::from_secs(30), || {
        height(&http, &node).filter(|h| *h >= 3)
    });
    let (status, answer, before) = submit(&http, &node, chain_id, 1);
    assert_eq!(status, 202, "{answer}");

    // Fill the disk; the node must notice and refuse transfers with 503 disk_full.
    let filler = fs.path().join("filler");
    let filled = fill_disk(&filler);
    let full_at = Instant::now();
    let mut from = 2;
    let refusal = wait_for("a 503 disk_full", Duration::from_secs(20), || {
        from += 1;
        let (status, answer, _) = submit(&http, &node, chain_id, from);
        (status == 503).then_some(answer)
    });
    let noticed = full_at.elapsed();
    assert_eq!(refusal["error"]["code"], "disk_full", "{refusal}");
    // Reads go on; mining pauses; nothing is marked invalid.
    let h_full = height(&http, &node).unwrap_or_else(|| {
        let answer = http.code(&format!("{}/v1/status", node.rpc));
        panic!(
            "status is served while the disk is full (a second try answered {answer:?}); log:\n{}",
            node.log()
        )
    });
    assert!(http.get(&format!("{}/v1/blocks", node.rpc)).is_some());
    let metrics = http
        .get_text(&format!("{}/metrics", node.rpc))
        .expect("metrics");
    assert!(
        metrics.lines().any(|l| l.ends_with("disk_full 1")),
        "the disk_full gauge is set"
    );
    std::thread::sleep(Duration::from_secs(2));
    let h_later = height(&http, &node)
        .unwrap_or_else(|| panic!("status while the disk is full; log:\n{}", node.log()));
    assert!(
        h_later <= h_full + 1,
        "mining paused: {h_full} -> {h_later}"
    );
    let tips = http
        .get(&format!("{}/v1/chain/tips", node.rpc))
        .expect("tips");
    assert!(
        !tips.to_string().contains("\"invalid\""),
        "a full disk is no verdict on blocks: {tips}"
    );
    let log = node.log();
    assert!(log.contains("disk full"), "a clear log line:\n{log}");

    // Free the space: the node resumes by itself.
    std::fs::remove_file(&filler).expect("free the space");
    let freed_at = Instant::now();
    let recovered = wait_for(
        "a 202 after space returned",
        Duration::from_secs(30),
        || {
            from += 1;
            let (status, _, txid) = submit(&http, &node, chain_id, from);
            (status == 202).then_some(txid)
        },
    );
    let recovery = freed_at.elapsed();
    wait_for("mining again", Duration::from_secs(30), || {
        height(&http, &node).filter(|h| *h >= h_later + 2)
    });
    for (which, txid) in [("before the disk filled", &before), ("after", &recovered)] {
        let started = Instant::now();
        loop {
            let v = http.get(&format!("{}/v1/transactions/{txid}", node.rpc));
            if v.as_ref().is_some_and(|v| v["status"] == "confirmed") {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the transfer accepted {which} ({txid}) is not confirmed within 30 s: {v:?}; log:\n{}",
                node.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let log = node.log();
    let reopened = log.contains("reopened=true");
    assert!(log.contains("disk space is back"), "{log}");
    if reserve_mb == 0 {
        assert!(
            reopened,
            "a failed write is recovered by reopening the store:\n{log}"
        );
    }
    node.stop();

    let text = std::fs::read_to_string(&genesis_path).expect("genesis");
    let genesis = Genesis::from_json(&text).expect("genesis");
    let store = Store::open(&StoreConfig::new(data_dir.join("chain")), &genesis).expect("reopen");
    store
        .verify_consistency(&genesis)
        .expect("consistent after a full disk");
    let final_height = store.tip_record().expect("tip").header.height;
    eprintln!(
        "REPORT full disk, reserve {reserve_mb} MiB: filled {} MiB; 503 disk_full after {:.1} s; height {h_full} while full (reads served, mining paused, nothing invalid); accepting again {:.1} s after the space was freed (store reopened: {reopened}); final height {final_height}, consistent",
        filled >> 20,
        noticed.as_secs_f64(),
        recovery.as_secs_f64(),
    );
}

#[test]
fn a_full_disk_stops_writes_serves_reads_and_recovers_by_itself() {
    run(0);
    run(8);
}
