//! Server-Sent Events: block, tx and reorg events in order; filters; lagging clients.

use std::time::Duration;

use peerchain_ledger::Hash;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

/// The fields of a block event besides its hash and height (a block summary).
const SUMMARY_FIELDS: [&str; 8] = [
    "prev_hash",
    "timestamp_ms",
    "miner",
    "target",
    "tx_count",
    "fees",
    "reward",
    "total_work",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_tx_and_reorg_events_arrive_in_order() {
    let node = TestNode::start().await;
    let mut events = open_events(&node, "").await;

    let mined = node.mine(3).await;
    for (i, hash) in mined.iter().enumerate() {
        let (name, data) = events.next().await;
        assert_eq!(name, "block");
        assert_eq!(data["hash"], *hash);
        assert_eq!(data["height"], i + 1);
        for field in SUMMARY_FIELDS {
            assert!(data.get(field).is_some(), "block event has {field}: {data}");
        }
    }

    let tx = node.transfer(0, node.address(1), 1, 1, 0);
    assert_eq!(
        node.post("/v1/transactions", &tx_json(&tx)).await.0,
        StatusCode::ACCEPTED
    );
    let (name, data) = events.next().await;
    assert_eq!(
        (name.as_str(), data),
        ("tx", json!({ "txid": tx.txid().to_hex() }))
    );

    // A side branch, through the admin API. Invalidating block 2 steps the chain back to
    // block 1: a reorg that connects nothing.
    let a: Vec<Hash> = mined.iter().map(|h| h.parse().expect("hash")).collect();
    let hex = |hs: &[Hash]| hs.iter().map(Hash::to_hex).collect::<Vec<_>>();
    let ok = (StatusCode::OK, json!({ "ok": true }));
    let n = &node;
    let invalidate = |h: Hash| async move {
        n.admin("/v1/admin/invalidate", &json!({ "hash": h.to_hex() }))
            .await
    };
    let reconsider = |h: Hash| async move {
        n.admin("/v1/admin/reconsider", &json!({ "hash": h.to_hex() }))
            .await
    };
    assert_eq!(invalidate(a[1]).await, ok);
    let (name, back) = events.next().await;
    assert_eq!(name, "reorg");
    assert_eq!(
        back,
        json!({
            "fork_height": 1,
            "old_tip": a[2].to_hex(),
            "new_tip": a[0].to_hex(),
            "disconnected": hex(&[a[2], a[1]]),
            "connected": [],
        })
    );
    // Mining there builds a branch from block 1 (heights 2..4, the pending transaction in its
    // first block); reconsidering block 2 makes the first chain a lighter valid fork again.
    let branch: Vec<Hash> = node
        .mine(3)
        .await
        .iter()
        .map(|h| h.parse().expect("hash"))
        .collect();
    for (i, hash) in branch.iter().enumerate() {
        let (name, data) = events.next().await;
        assert_eq!(name, "block");
        assert_eq!(data["hash"], hash.to_hex());
        assert_eq!(data["height"], i + 2);
        assert_eq!(data["tx_count"], u64::from(i == 0));
    }
    assert_eq!(reconsider(a[1]).await, ok);

    // Invalidate the branch: back to the first chain, and the branch's transaction returns to
    // the mempool (its `tx` event is not ordered against the reorg: the node sends it first).
    assert_eq!(invalidate(branch[0]).await, ok);
    let mut reorgs = Vec::new();
    let mut blocks = Vec::new();
    let mut returned = 0;
    while blocks.last() != Some(&a[2].to_hex()) || returned == 0 {
        let (name, data) = events.next().await;
        match name.as_str() {
            "block" => blocks.push(data["hash"].as_str().expect("hash").to_owned()),
            "reorg" => {
                assert!(
                    blocks.is_empty(),
                    "reorgs come before the blocks they connect"
                );
                reorgs.push(data);
            }
            "tx" => {
                assert_eq!(data, json!({ "txid": tx.txid().to_hex() }));
                returned += 1;
            }
            other => panic!("unexpected {other} event: {data}"),
        }
    }
    let first = reorgs.first().expect("a reorg");
    assert_eq!(first["old_tip"], branch[2].to_hex());
    assert_eq!(first["disconnected"][0], branch[2].to_hex());
    assert_eq!(blocks, hex(&[a[1], a[2]]));
    assert_eq!(returned, 1);
    let (_, status) = node.get("/v1/status").await;
    assert_eq!(status["tip_hash"], a[2].to_hex());

    // Reconsider it: the heavier branch from block 1 (heights 2..4) replaces blocks 2 and 3.
    assert_eq!(reconsider(branch[0]).await, ok);
    let (name, reorg) = events.next().await;
    assert_eq!(name, "reorg");
    assert_eq!(
        reorg,
        json!({
            "fork_height": 1,
            "old_tip": a[2].to_hex(),
            "new_tip": branch[2].to_hex(),
            "disconnected": hex(&[a[2], a[1]]),
            "connected": hex(&branch),
        })
    );
    for (i, hash) in branch.iter().enumerate() {
        let (name, data) = events.next().await;
        assert_eq!(name, "block");
        assert_eq!(data["hash"], hash.to_hex());
        assert_eq!(data["height"], i + 2);
    }
    let (_, status) = node.get("/v1/status").await;
    assert_eq!(status["tip_hash"], branch[2].to_hex());
    assert!(
        events
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_event_describes_the_block_as_the_block_route_does() {
    // The event takes the transaction count and fees from the chain, not from the stored
    // body; they must be what the body says.
    let node = TestNode::start().await;
    let mut events = open_events(&node, "?types=block").await;
    for (from, fee) in [(0, 3), (1, 5), (0, 7)] {
        let nonce = u64::from(fee == 7);
        let tx = node.transfer(from, node.address(2), 10, fee, nonce);
        assert_eq!(
            node.post("/v1/transactions", &tx_json(&tx)).await.0,
            StatusCode::ACCEPTED
        );
    }
    let hash = node.mine(1).await.remove(0);
    let (name, event) = events.next().await;
    assert_eq!(name, "block");
    let (status, block) = node.get(&format!("/v1/blocks/{hash}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&event["tx_count"], &event["fees"]),
        (&json!(3), &json!(15))
    );
    for field in ["hash", "height"].into_iter().chain(SUMMARY_FIELDS) {
        assert_eq!(
            event[field], block[field],
            "{field}: event {event}, block {block}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_filter_by_type() {
    let node = TestNode::start().await;
    let mut blocks_only = open_events(&node, "?types=block").await;
    let mut txs_only = open_events(&node, "?types=tx,reorg").await;
    let tx = node.transfer(0, node.address(1), 1, 1, 0);
    node.post("/v1/transactions", &tx_json(&tx)).await;
    let hash = node.mine(1).await.remove(0);
    let (name, data) = blocks_only.next().await;
    assert_eq!(name, "block");
    assert_eq!(data["hash"], hash);
    assert_eq!(data["tx_count"], 1);
    let (name, data) = txs_only.next().await;
    assert_eq!(name, "tx");
    assert_eq!(data["txid"], tx.txid().to_hex());
    assert!(
        txs_only
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_client_is_told_and_keeps_receiving() {
    let node = TestNode::start_with(Options {
        event_capacity: 8,
        ..Options::default()
    })
    .await;
    let mut events = open_events(&node, "").await;
    // One batch of 2,000 transactions: the node sends their 2,000 `tx` events in one burst,
    // far more than the 8 a subscriber may have unread.
    let mut txs = Vec::new();
    for from in 0..4 {
        for nonce in 0..500 {
            txs.push(tx_json(&node.transfer(from, node.address(5), 1, 1, nonce)));
        }
    }
    let (status, answer) = node
        .post("/v1/transactions/batch", &Value::Array(txs))
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = answer.as_array().expect("array");
    assert_eq!(answer.len(), 2_000);
    assert!(answer.iter().all(|a| a["status"] == "pending"));
    let hash = node.mine(1).await.remove(0);
    let mut missed = 0;
    let mut txs_seen = 0;
    loop {
        let (name, data) = events.next().await;
        match name.as_str() {
            "lagged" => missed += data["missed"].as_u64().expect("missed"),
            "block" => {
                assert_eq!(data["hash"], hash);
                break;
            }
            other => {
                assert_eq!(other, "tx");
                txs_seen += 1;
            }
        }
    }
    assert!(missed > 0, "the client was told it missed events");
    assert_eq!(
        missed + txs_seen,
        2_000,
        "every event is either received or counted as missed"
    );
}
