//! Server-Sent Events: block, tx and reorg events in order; filters; lagging clients.

use std::time::Duration;

use peerchain_ledger::{Address, Hash};
use peerchain_rpc::node_api::NodeEvent;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_tx_and_reorg_events_arrive_in_order() {
    let node = TestNode::start().await;
    let mut events = EventReader::open(&node, "").await;

    let mined = node.mine(3).await;
    for (i, hash) in mined.iter().enumerate() {
        let (name, data) = events.next().await;
        assert_eq!(name, "block");
        assert_eq!(data["hash"], *hash);
        assert_eq!(data["height"], i + 1);
        for field in [
            "prev_hash",
            "timestamp_ms",
            "miner",
            "target",
            "tx_count",
            "fees",
            "reward",
            "total_work",
        ] {
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

    // A heavier branch from block 1 (heights 2..4) replaces blocks 2 and 3.
    let a: Vec<Hash> = mined.iter().map(|h| h.parse().expect("hash")).collect();
    let branch: Vec<Hash> = node.with_chain(|chain| {
        let mut parent = a[0];
        let mut out = Vec::new();
        for _ in 0..3 {
            let block = fork_block(chain, &parent, Address([7; 20]));
            parent = block.hash();
            chain
                .import(block, Some("peer".into()), now_ms())
                .expect("import");
            out.push(parent);
        }
        out
    });
    let hex = |hs: &[Hash]| hs.iter().map(Hash::to_hex).collect::<Vec<_>>();
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

    // Invalidate the branch through the admin API: back to the first chain.
    let (status, _) = node
        .admin(
            "/v1/admin/invalidate",
            &json!({ "hash": branch[0].to_hex() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut blocks = Vec::new();
    let (name, first) = events.next().await;
    assert_eq!(name, "reorg");
    assert_eq!(first["old_tip"], branch[2].to_hex());
    assert_eq!(first["disconnected"][0], branch[2].to_hex());
    loop {
        let (name, data) = events.next().await;
        if name == "block" {
            blocks.push(data["hash"].as_str().expect("hash").to_owned());
            if data["hash"] == a[2].to_hex() {
                break;
            }
        } else {
            assert_eq!(name, "reorg");
            assert!(
                blocks.is_empty(),
                "reorgs come before the blocks they connect"
            );
        }
    }
    assert_eq!(blocks, hex(&[a[1], a[2]]));
    let (_, status) = node.get("/v1/status").await;
    assert_eq!(status["tip_hash"], a[2].to_hex());
    assert!(
        events
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_filter_by_type() {
    let node = TestNode::start().await;
    let mut blocks_only = EventReader::open(&node, "?types=block").await;
    let mut txs_only = EventReader::open(&node, "?types=tx,reorg").await;
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
    let mut events = EventReader::open(&node, "").await;
    for i in 0..2_000u32 {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        let _ = node.events.send(NodeEvent::Tx { txid: Hash(bytes) });
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hash = node.mine(1).await.remove(0);
    let mut missed = 0;
    loop {
        let (name, data) = events.next().await;
        match name.as_str() {
            "lagged" => missed += data["missed"].as_u64().expect("missed"),
            "block" => {
                assert_eq!(data["hash"], hash);
                break;
            }
            other => assert_eq!(other, "tx"),
        }
    }
    assert!(missed > 0, "the client was told it missed events");
}
