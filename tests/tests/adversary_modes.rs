//! Adversary modes of the real node (`--adversary MODE`) against honest real nodes over the
//! real protocols: the honest nodes keep making progress, never relay the adversary's junk,
//! and penalise what is provably bad.

use std::time::Duration;

use peerchain::adversary::AdversaryMode;
use peerchain_ledger::crypto::Keypair;
use peerchain_testkit::now_ms;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};

/// Prints one line of figures for docs/SECURITY.md. Run with `--nocapture --test-threads=1`
/// for a peak that belongs to one test: the process holds every node of the test (the
/// adversary included), so it bounds the honest nodes' memory from above.
fn report(mode: &str, figures: &[(&str, String)]) {
    let peak = peerchain_testkit::peak_rss_bytes().map_or_else(
        || "unknown".to_owned(),
        |b| format!("{:.0} MiB", peerchain_testkit::mib(b)),
    );
    let figures: Vec<String> = figures.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    eprintln!(
        "REPORT {mode}: {}; process peak RSS {peak}",
        figures.join(", ")
    );
}

/// The value of the gossip counter for `topic` and `result` in a node's metrics text.
fn gossip_count(metrics: &str, topic: &str, result: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("peerchain_gossip_messages_total"))
        .filter(|l| l.contains(&format!("topic=\"{topic}\"")))
        .filter(|l| l.contains(&format!("result=\"{result}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn metrics(net: &TestNet, i: usize) -> String {
    net.nodes[i]
        .node
        .as_ref()
        .expect("running")
        .metrics
        .render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_blocks_are_rejected_never_relayed_and_their_sender_banned() {
    let genesis = easy_genesis();
    let mut net = TestNet::start(2, genesis, NodeOptions::default())
        .await
        .expect("honest nodes");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("honest nodes connected");
    let adversary = net
        .add_node(NodeOptions {
            adversary: Some(AdversaryMode::InvalidBlocks),
            ..NodeOptions::default()
        })
        .await
        .expect("adversary");
    let adversary_id = net.nodes[adversary].peer_id.clone();
    let started = std::time::Instant::now();

    // Honest progress while the adversary cycles through every broken rule (9 x 0.5 s).
    let mut honest_blocks = 0u64;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        net.mine(1, 1).await.expect("honest node mines");
        honest_blocks += 1;
    }
    let (first, second) = (metrics(&net, 0), metrics(&net, 1));
    let rejected =
        gossip_count(&first, "blocks", "reject") + gossip_count(&second, "blocks", "reject");
    assert!(
        rejected > 0,
        "the honest nodes rejected invalid blocks:\n{first}"
    );
    for (i, text) in [(0, &first), (1, &second)] {
        let accepted = gossip_count(text, "blocks", "accept");
        assert!(
            accepted <= honest_blocks,
            "node {i} accepted (and relayed) {accepted} gossip blocks, only {honest_blocks} were honest"
        );
    }
    // Both honest nodes end on the honest chain, which the adversary did not move.
    for i in 0..2 {
        let mut s = net.status(i).await.expect("status");
        for _ in 0..100 {
            if s["height"].as_u64() == Some(honest_blocks) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            s = net.status(i).await.expect("status");
        }
        assert_eq!(s["height"].as_u64(), Some(honest_blocks), "node {i}: {s}");
        let tips = net.get(i, "/v1/chain/tips").await.expect("tips");
        let invalid_stored = tips
            .as_array()
            .map(|t| t.iter().filter(|t| t["status"] == "valid-fork").count())
            .unwrap_or(0);
        assert_eq!(invalid_stored, 0, "node {i} holds no side branch: {tips}");
    }
    // The adversary is banned by every honest node it reached.
    let mut banned = false;
    for _ in 0..100 {
        let a = net.peer_ids(0).await;
        let b = net.peer_ids(1).await;
        if !a.contains(&adversary_id) && !b.contains(&adversary_id) {
            banned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(banned, "the adversary is still connected to an honest node");
    // ... and each lists it in /v1/peers/banned with the time its ban ends.
    for i in 0..2 {
        let list = net.get(i, "/v1/peers/banned").await.expect("banned peers");
        let entry = list
            .as_array()
            .and_then(|l| l.iter().find(|b| b["peer_id"] == adversary_id.as_str()))
            .unwrap_or_else(|| panic!("node {i} does not list the adversary: {list}"));
        let until = entry["until_ms"].as_u64().expect("a timed ban");
        assert!(
            until > now_ms(),
            "node {i}: the ban is still running: {entry}"
        );
    }
    report(
        "invalid-blocks",
        &[
            ("honest blocks mined and kept", honest_blocks.to_string()),
            ("invalid blocks rejected", rejected.to_string()),
            (
                "disconnected by both honest nodes within",
                format!("{:.1} s", started.elapsed().as_secs_f64()),
            ),
        ],
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unpayable_transactions_is_neither_held_nor_relayed() {
    let genesis = easy_genesis();
    let mut net = TestNet::start(2, genesis.clone(), NodeOptions::default())
        .await
        .expect("honest nodes");
    net.add_node(NodeOptions {
        adversary: Some(AdversaryMode::TxFlood),
        ..NodeOptions::default()
    })
    .await
    .expect("adversary");
    // Three seconds of flood: about 6,000 signed transactions.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..2 {
        let s = net.status(i).await.expect("status");
        assert_eq!(
            s["mempool_size"].as_u64(),
            Some(0),
            "node {i} holds junk: {s}"
        );
        let text = metrics(&net, i);
        assert_eq!(
            gossip_count(&text, "transactions", "accept"),
            0,
            "node {i} accepted (and relayed) junk"
        );
    }
    assert!(
        gossip_count(&metrics(&net, 0), "transactions", "ignore")
            + gossip_count(&metrics(&net, 1), "transactions", "ignore")
            > 0,
        "the flood reached the honest nodes"
    );
    // Honest transfers still go through.
    let tx = Keypair::dev(1).sign_transfer(
        genesis.chain_id,
        Keypair::dev(2).address(),
        7,
        genesis.min_fee,
        0,
    );
    let (code, body) = net
        .post(
            0,
            "/v1/transactions",
            &serde_json::to_value(&tx).expect("json"),
        )
        .await
        .expect("submit");
    assert_eq!(code, 202, "{body}");
    net.wait_all(
        "the honest transfer everywhere",
        Duration::from_secs(10),
        |s| s["mempool_size"].as_u64() == Some(1),
    )
    .await
    .expect("relayed to the honest peer");
    let ignored = gossip_count(&metrics(&net, 0), "transactions", "ignore")
        + gossip_count(&metrics(&net, 1), "transactions", "ignore");
    report(
        "tx-flood",
        &[
            (
                "junk judged and ignored by the honest nodes",
                ignored.to_string(),
            ),
            ("junk accepted or held", "0".to_owned()),
        ],
    );
    net.stop().await;
}

/// Waits until node `i` reports `height`.
async fn wait_height(net: &TestNet, i: usize, height: u64) {
    for _ in 0..200 {
        if let Ok(s) = net.status(i).await
            && s["height"].as_u64() >= Some(height)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node {i} never reached height {height}");
}

async fn tip_count(net: &TestNet, i: usize) -> usize {
    net.get(i, "/v1/chain/tips")
        .await
        .expect("tips")
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_fork_flood_is_neither_stored_nor_relayed() {
    let genesis = easy_genesis();
    let mut net = TestNet::start(2, genesis, NodeOptions::default())
        .await
        .expect("honest nodes");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("honest nodes connected");
    net.mine(0, 8).await.expect("honest chain");
    let adversary = net
        .add_node(NodeOptions {
            adversary: Some(AdversaryMode::CheapFork),
            ..NodeOptions::default()
        })
        .await
        .expect("adversary");
    wait_height(&net, adversary, 8).await;

    // Five seconds of side blocks (one every 0.2 s), while the honest nodes keep mining.
    let mut height = 8;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        net.mine(1, 1).await.expect("honest node mines");
        height += 1;
    }
    let side_blocks = gossip_count(&metrics(&net, 0), "blocks", "ignore")
        + gossip_count(&metrics(&net, 1), "blocks", "ignore");
    assert!(
        side_blocks >= 10,
        "the flood reached the honest nodes: {side_blocks}"
    );
    for i in 0..2 {
        wait_height(&net, i, height).await;
        let s = net.status(i).await.expect("status");
        assert_eq!(
            s["height"].as_u64(),
            Some(height),
            "node {i} kept the honest chain: {s}"
        );
        assert_eq!(
            tip_count(&net, i).await,
            1,
            "node {i} stored no side branch"
        );
        let accepted = gossip_count(&metrics(&net, i), "blocks", "accept");
        assert!(
            accepted <= height,
            "node {i} accepted (relayed) {accepted} gossip blocks; {height} were honest"
        );
    }
    // The adversary's own main chain stayed honest too.
    wait_height(&net, adversary, height).await;
    report(
        "cheap-fork",
        &[
            (
                "side blocks ignored (neither stored nor relayed)",
                side_blocks.to_string(),
            ),
            ("honest blocks", format!("{height}, one tip on each node")),
        ],
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_spends_confirm_once_and_every_mempool_drops_the_loser() {
    let genesis = easy_genesis();
    let mut net = TestNet::start(2, genesis, NodeOptions::default())
        .await
        .expect("honest nodes");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("honest nodes connected");
    let adversary = net
        .add_node(NodeOptions {
            adversary: Some(AdversaryMode::DoubleSpend),
            ..NodeOptions::default()
        })
        .await
        .expect("adversary");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("adversary connected");

    // Rounds of conflicting spends (one a second); the adversary and an honest node take turns
    // mining, so each side confirms its own spends some of the time.
    for round in 0..6u32 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let miner = if round % 2 == 0 { adversary } else { 0 };
        net.mine(miner, 1).await.expect("mined");
    }
    let (code, body) = net
        .post(
            adversary,
            "/v1/admin/adversary",
            &serde_json::json!({ "mode": null }),
        )
        .await
        .expect("mode off");
    assert_eq!(code, 200, "{body}");
    // Confirm whatever is still pending anywhere, then every node agrees.
    let mut height = net.status(0).await.expect("status")["height"]
        .as_u64()
        .unwrap_or(0);
    for i in [adversary, 0] {
        tokio::time::sleep(Duration::from_millis(500)).await;
        net.mine(i, 1).await.expect("mined");
        height += 1;
        wait_height(&net, 0, height).await;
        height = net.status(0).await.expect("status")["height"]
            .as_u64()
            .unwrap_or(height);
    }
    let tip = net
        .wait_same_tip(height, Duration::from_secs(20))
        .await
        .expect("one chain");

    let spender = Keypair::dev(0).address();
    let home = "d1".repeat(20);
    let away = "d2".repeat(20);
    for i in 0..net.nodes.len() {
        let account = |a: &str| format!("/v1/accounts/{a}");
        let nonce = net
            .get(i, &account(&spender.to_string()))
            .await
            .expect("spender")["nonce"]
            .as_u64()
            .unwrap_or(0);
        let received: u64 = [&home, &away]
            .iter()
            .map(|a| async { net.get(i, &account(a)).await.ok() })
            .collect::<futures::future::JoinAll<_>>()
            .await
            .into_iter()
            .map(|v| v.and_then(|v| v["balance"].as_u64()).unwrap_or(0))
            .sum();
        assert!(
            nonce >= 4,
            "node {i}: spends were confirmed (nonce {nonce})"
        );
        assert_eq!(
            received, nonce,
            "node {i} at {tip}: each nonce paid once (one unit each), never twice"
        );
        let s = net.status(i).await.expect("status");
        assert_eq!(
            s["mempool_size"].as_u64(),
            Some(0),
            "node {i} dropped every loser: {s}"
        );
    }
    report(
        "double-spend",
        &[
            ("conflicting pairs sent", "6, one a second".to_owned()),
            (
                "each nonce paid exactly once on all 3 nodes at height",
                height.to_string(),
            ),
            ("losers left in any mempool", "0".to_owned()),
        ],
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_level_mode_runs_from_the_node_and_its_staller_is_banned() {
    let genesis = easy_genesis();
    // Two honest nodes, the second a control.
    let mut net = TestNet::start(2, genesis, NodeOptions::default())
        .await
        .expect("honest nodes");
    net.mine(0, 3).await.expect("honest chain");
    let control = 1;
    let control_id = net.nodes[control].peer_id.clone();
    wait_height(&net, control, 3).await;
    let adversary = net
        .add_node(NodeOptions {
            adversary: Some("stall-sync".parse().expect("mode")),
            ..NodeOptions::default()
        })
        .await
        .expect("adversary");
    let adversary_id = net.nodes[adversary].peer_id.clone();
    // It cannot be switched at run time: the network layer is built at start.
    let (code, body) = net
        .post(
            adversary,
            "/v1/admin/adversary",
            &serde_json::json!({ "mode": "slow-reader" }),
        )
        .await
        .expect("refused");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.to_string().contains("--adversary slow-reader"),
        "{body}"
    );
    // The honest nodes try to sync the adversary's claimed work, see no progress and ban it;
    // it then stays out (its redials are refused) while the control stays connected.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for _ in 0..15 {
        let peers = net.peer_ids(0).await;
        assert!(
            peers.contains(&control_id),
            "the control is connected: {peers:?}"
        );
        for i in [0, control] {
            let peers = net.peer_ids(i).await;
            assert!(
                !peers.contains(&adversary_id),
                "node {i} still has the staller"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    net.mine(0, 2).await.expect("honest progress");
    wait_height(&net, control, 5).await;
    // A new honest node on the same address (a local testnet) still joins: the ban covers
    // the staller's peer id, not 127.0.0.1 (it used to, for the ban's whole hour).
    let late = net
        .add_node(NodeOptions::default())
        .await
        .expect("late node");
    let late_id = net.nodes[late].peer_id.clone();
    wait_height(&net, late, 5).await;
    assert!(
        net.peer_ids(0).await.contains(&late_id),
        "node 0 admitted the late local node"
    );
    report(
        "stall-sync (from peerchain node)",
        &[(
            "kept out by both honest nodes after",
            "6 s (checked for 3 s more)".to_owned(),
        )],
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selfish_miner_withholds_its_blocks_and_releases_them_to_orphan_an_honest_one() {
    let genesis = easy_genesis();
    let mut net = TestNet::start(1, genesis, NodeOptions::default())
        .await
        .expect("honest node");
    let adversary = net
        .add_node(NodeOptions {
            adversary: Some("selfish:8".parse().expect("mode")),
            ..NodeOptions::default()
        })
        .await
        .expect("adversary");
    net.wait_all("peers", Duration::from_secs(15), |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await
    .expect("connected");
    tokio::time::sleep(Duration::from_millis(1500)).await; // the mesh forms

    // The adversary mines two blocks and withholds them: the honest node sees nothing, not
    // even through the status handshake.
    let private = net.mine(adversary, 2).await.expect("adversary mines");
    wait_height(&net, adversary, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = net.status(0).await.expect("status");
    assert_eq!(
        s["height"].as_u64(),
        Some(0),
        "withheld blocks stayed hidden: {s}"
    );

    // The honest node finds block 1; the adversary (lead 2) releases both and wins.
    let honest = net.mine(0, 1).await.expect("honest node mines").remove(0);
    wait_height(&net, 0, 2).await;
    let s = net.status(0).await.expect("status");
    assert_eq!(
        s["tip_hash"].as_str(),
        private.last().map(String::as_str),
        "{s}"
    );
    let block = net
        .get(0, &format!("/v1/blocks/{honest}"))
        .await
        .expect("the honest block is still stored");
    assert_eq!(
        block["in_main_chain"], false,
        "the honest block was orphaned: {block}"
    );
    // Nobody marked anything invalid.
    let tips = net.get(0, "/v1/chain/tips").await.expect("tips");
    assert!(
        tips.as_array()
            .is_some_and(|t| t.iter().all(|t| t["status"] != "invalid")),
        "{tips}"
    );
    report(
        "selfish:8",
        &[(
            "honest block orphaned by 2 withheld blocks",
            "yes".to_owned(),
        )],
    );
    net.stop().await;
}
