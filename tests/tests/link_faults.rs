//! Link faults set through the admin API on real in-process nodes (`POST
//! /v1/admin/peers/{peer_id}/link`): a delayed link delivers a block late, a lossy one loses
//! gossip, the status shows the faults while they are active, and bad values are refused.

use std::time::{Duration, Instant};

use peerchain_ledger::crypto::Keypair;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);

async fn set_link(net: &TestNet, on: usize, from: usize, fault: &Value) -> (u16, Value) {
    let peer = net.nodes[from].peer_id.clone();
    net.post(on, &format!("/v1/admin/peers/{peer}/link"), fault)
        .await
        .expect("the admin call is answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_link_delivers_late_a_lossy_one_loses_gossip_and_status_shows_both()
-> anyhow::Result<()> {
    let net = TestNet::start(2, easy_genesis(), NodeOptions::default()).await?;
    net.wait_all("both nodes have a peer", WAIT, |s| {
        s["peer_count"].as_u64() >= Some(1)
    })
    .await?;
    net.mine(0, 1).await?;
    net.wait_same_tip(1, WAIT).await?;

    // Delay: node 1 handles what node 0 sends 1.5 s late, gossip and sync alike.
    let (status, body) = set_link(&net, 1, 0, &json!({ "delay_ms": 1500 })).await;
    assert_eq!(status, 200, "{body}");
    let faults = body["link_faults"].as_array().expect("a list of faults");
    assert_eq!(faults.len(), 1, "{body}");
    assert_eq!(faults[0]["peer_id"], net.nodes[0].peer_id.as_str());
    assert_eq!(faults[0]["delay_ms"], 1500);
    let s = net.status(1).await?;
    assert_eq!(
        s["link_faults"], body["link_faults"],
        "status shows the fault"
    );
    assert_eq!(net.status(0).await?["link_faults"], json!([]));
    let mined = Instant::now();
    let hash = net.mine(0, 1).await?.remove(0);
    let tip = net.wait_same_tip(2, WAIT).await?;
    assert_eq!(tip, hash);
    let took = mined.elapsed();
    assert!(
        took >= Duration::from_millis(1400),
        "the block crossed a 1,500 ms link in {took:?}"
    );

    // Loss of every gossip message: a transaction submitted to node 0 never reaches node 1's
    // mempool (transactions travel only by gossip).
    let (status, body) = set_link(&net, 1, 0, &json!({ "loss": 1.0 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["link_faults"][0]["loss"], 1.0);
    assert_eq!(body["link_faults"][0]["delay_ms"], 0);
    let g = &net.genesis;
    let tx = Keypair::dev(0).sign_transfer(g.chain_id, Keypair::dev(1).address(), 5, 1, 0);
    let (status, body) = net
        .post(0, "/v1/transactions", &serde_json::to_value(&tx)?)
        .await?;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(net.status(0).await?["mempool_size"], 1);
    assert_eq!(
        net.status(1).await?["mempool_size"],
        0,
        "a transaction crossed a link that loses every gossip message"
    );

    // Cleared: the status says so, and the block carrying the transaction reaches node 1 (by
    // gossip now, or by sync).
    let (status, body) = set_link(&net, 1, 0, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["link_faults"], json!([]));
    assert_eq!(net.status(1).await?["link_faults"], json!([]));
    net.mine(0, 1).await?;
    net.wait_same_tip(3, WAIT).await?;
    let confirmed = net
        .get(1, &format!("/v1/transactions/{}", tx.txid()))
        .await?;
    assert_eq!(confirmed["status"], "confirmed");
    net.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_link_faults_are_refused_with_the_reason() -> anyhow::Result<()> {
    let net = TestNet::start(2, easy_genesis(), NodeOptions::default()).await?;
    let cases = [
        (json!({ "loss": 1.5 }), "loss"),
        (json!({ "loss": -0.1 }), "loss"),
        (json!({ "delay_ms": 60_000 }), "delay_ms"),
        (json!({ "jitter_ms": 5 }), "jitter_ms"),
    ];
    for (body, field) in cases {
        let (status, answer) = set_link(&net, 1, 0, &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{body}: {answer}");
    }
    // This node's own id, and an id that does not parse.
    let (status, answer) = set_link(&net, 1, 1, &json!({ "delay_ms": 5 })).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = net
        .post(
            1,
            "/v1/admin/peers/not-a-peer/link",
            &json!({ "delay_ms": 5 }),
        )
        .await?;
    assert_eq!(status, 400, "{answer}");
    // Nothing was set by the refused calls.
    assert_eq!(net.status(1).await?["link_faults"], json!([]));
    // The admin token is required.
    let url = format!(
        "{}/v1/admin/peers/{}/link",
        net.nodes[1].url, net.nodes[0].peer_id
    );
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "delay_ms": 5 }))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    net.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mining_call_sets_and_clears_the_hash_rate_cap() -> anyhow::Result<()> {
    let net = TestNet::start(1, easy_genesis(), NodeOptions::default()).await?;
    let (status, body) = net
        .post(
            0,
            "/v1/admin/mining",
            &json!({ "enabled": false, "hashrate": 5000 }),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "mining": false, "hashrate_cap": 5000 }));
    // Without `hashrate` the cap stays; 0 removes it.
    let (_, body) = net
        .post(0, "/v1/admin/mining", &json!({ "enabled": false }))
        .await?;
    assert_eq!(body["hashrate_cap"], 5000, "{body}");
    let (_, body) = net
        .post(
            0,
            "/v1/admin/mining",
            &json!({ "enabled": false, "hashrate": 0 }),
        )
        .await?;
    assert_eq!(body["hashrate_cap"], Value::Null, "{body}");
    net.stop().await;
    Ok(())
}
