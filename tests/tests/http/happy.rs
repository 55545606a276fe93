//! Every endpoint's happy path on a mined chain.

use peerchain_ledger::merkle::verify_inclusion;
use peerchain_ledger::{Hash, Transaction};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn hash(v: &Value) -> Hash {
    v.as_str().expect("hex string").parse().expect("hash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_blocks_and_proofs() {
    // A connected peer, so the status reports a real peer count.
    let node = TestNode::start_with(Options {
        peer: true,
        ..Options::default()
    })
    .await;
    let mined = node.mine(3).await;
    assert_eq!(mined.len(), 3);

    // Submit: 202 new, 200 when pending, 200 confirmed once mined.
    let to = node.address(1);
    let tx = node.transfer(0, to, 1_000, 10, 0);
    let txid = tx.txid().to_hex();
    let first = node.post("/v1/transactions", &tx_json(&tx)).await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(first.1, json!({ "txid": txid, "status": "pending" }));
    let again = node.post("/v1/transactions", &tx_json(&tx)).await;
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(again.1, json!({ "txid": txid, "status": "pending" }));

    let (status, pending) = node.get(&format!("/v1/transactions/{txid}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["sender"], node.address(0).to_hex());
    assert_eq!(pending["amount"], 1_000);
    assert!(pending["first_seen_ms"].as_u64().expect("first seen") > 0);
    assert!(pending.get("block_hash").is_none());
    let back: Transaction = serde_json::from_value(json!({
        "chain_id": pending["chain_id"], "from": pending["from"], "to": pending["to"],
        "amount": pending["amount"], "fee": pending["fee"], "nonce": pending["nonce"],
        "signature": pending["signature"],
    }))
    .expect("the view carries the transaction object");
    assert_eq!(back, tx);

    let block4 = node.mine(1).await.remove(0);
    let (status, confirmed) = node.get(&format!("/v1/transactions/{txid}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["block_hash"], block4);
    assert_eq!(confirmed["height"], 4);
    assert_eq!(confirmed["index"], 0);
    assert_eq!(confirmed["confirmations"], 1);
    assert_eq!(confirmed["first_seen_ms"], pending["first_seen_ms"]);
    let known = node.post("/v1/transactions", &tx_json(&tx)).await;
    assert_eq!(known.0, StatusCode::OK);
    assert_eq!(known.1["status"], "confirmed");
    node.mine(1).await;
    let (_, later) = node
        .get(&format!("/v1/transactions/0x{}", txid.to_uppercase()))
        .await;
    assert_eq!(
        later["confirmations"], 2,
        "hex input accepts 0x and uppercase"
    );

    // Proof verifies against the header's tx_root.
    let (status, proof) = node.get(&format!("/v1/transactions/{txid}/proof")).await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    let siblings: Vec<Hash> = proof["siblings"]
        .as_array()
        .expect("siblings")
        .iter()
        .map(hash)
        .collect();
    assert!(verify_inclusion(
        &tx.txid(),
        proof["index"].as_u64().expect("index"),
        proof["leaf_count"].as_u64().expect("count"),
        &siblings,
        &hash(&proof["tx_root"]),
    ));
    assert_eq!(proof["block_hash"], block4);
    assert_eq!(proof["height"], 4);

    // Block by height and by hash: every field.
    let (status, b) = node.get("/v1/blocks/4").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let (_, by_hash) = node.get(&format!("/v1/blocks/{block4}")).await;
    assert_eq!(b, by_hash);
    for field in [
        "version",
        "height",
        "prev_hash",
        "tx_root",
        "timestamp_ms",
        "target",
        "nonce",
        "miner",
        "hash",
        "reward",
        "fees",
        "tx_count",
        "work",
        "total_work",
        "state_digest",
        "confirmations",
        "in_main_chain",
        "next_hash",
        "status",
    ] {
        assert!(b.get(field).is_some(), "block has {field}: {b}");
    }
    assert_eq!(b["hash"], block4);
    assert_eq!(b["prev_hash"], mined[2]);
    assert_eq!(b["tx_count"], 1);
    assert_eq!(b["fees"], 10);
    assert_eq!(b["reward"], node.genesis.initial_reward);
    assert_eq!(b["confirmations"], 2);
    assert_eq!(b["in_main_chain"], true);
    assert_eq!(b["status"], "valid");
    assert_eq!(b["version"], 1);
    assert_eq!(b["work"], format!("{:064x}", 2));
    assert_eq!(b["total_work"], format!("{:064x}", 2 * 5));
    let (_, b3) = node.get("/v1/blocks/3").await;
    assert_eq!(b3["next_hash"], block4);
    let (_, tip) = node.get("/v1/blocks/5").await;
    assert_eq!(tip["next_hash"], Value::Null);
    let (_, genesis) = node.get("/v1/blocks/0").await;
    assert_eq!(genesis["hash"], node.genesis.hash().to_hex());
    assert_eq!(genesis["reward"], 0);
    assert_eq!(genesis["tx_count"], 0);
    assert_eq!(genesis["total_work"], format!("{:064x}", 2));

    // Txids and transactions of the block.
    let (status, txids) = node.get("/v1/blocks/4/txids").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(txids, json!([txid]));
    let (status, page) = node.get(&format!("/v1/blocks/{block4}/transactions")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(page["items"][0]["txid"], txid);
    assert_eq!(page["items"][0]["index"], 0);
    assert_eq!(page["items"][0]["signature"], tx.signature.to_hex());

    // Blocks list: newest first.
    let (status, list) = node.get("/v1/blocks?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["height"], 5);
    assert_eq!(items[1]["hash"], block4);
    assert_eq!(items[1]["tx_count"], 1);
    assert_eq!(items[1]["fees"], 10);
    assert!(list["next_cursor"].is_string());

    // Status.
    let (status, s) = node.get("/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    let (tip_hash, height) = node.tip().await;
    assert_eq!(s["chain_id"], 7710);
    assert_eq!(s["genesis_hash"], node.genesis.hash().to_hex());
    assert_eq!(s["height"], height);
    assert_eq!(s["tip_hash"], tip_hash.to_hex());
    assert_eq!(s["tip_timestamp_ms"], tip["timestamp_ms"]);
    assert_eq!(s["target"], tip["target"]);
    assert_eq!(s["total_work"], tip["total_work"]);
    assert_eq!(s["state_digest"], tip["state_digest"]);
    assert_eq!(s["mempool_size"], 0);
    assert_eq!(s["peer_count"], 1);
    assert_eq!(s["syncing"], false);
    assert_eq!(s["peer_id"], node.node().peer_id);
    assert_ne!(s["peer_id"], node.peer_id(), "its own id, not the peer's");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["mining"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_mempool_search_tips_and_peers() {
    let node = TestNode::start_with(Options {
        peer: true,
        ..Options::default()
    })
    .await;
    node.mine(1).await;
    let a0 = node.address(0);
    let a1 = node.address(1);
    let confirmed = node.transfer(0, a1, 5, 2, 0);
    assert_eq!(
        node.post("/v1/transactions", &tx_json(&confirmed)).await.0,
        StatusCode::ACCEPTED
    );
    node.mine(1).await;
    let cheap = node.transfer(0, a1, 7, 1, 1);
    let rich = node.transfer(2, a0, 9, 50, 0);
    for tx in [&cheap, &rich] {
        assert_eq!(
            node.post("/v1/transactions", &tx_json(tx)).await.0,
            StatusCode::ACCEPTED
        );
    }

    let (status, account) = node.get(&format!("/v1/accounts/{a0}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        account,
        json!({
            "address": a0.to_hex(), "balance": 1_000_000_000u64 - 7, "nonce": 1,
            "next_nonce": 2, "tx_count": 1,
        })
    );
    let stranger = peerchain_ledger::Address([0x42; 20]);
    let (_, empty) = node.get(&format!("/v1/accounts/{stranger}")).await;
    assert_eq!(empty["balance"], 0);
    assert_eq!(empty["next_nonce"], 0);

    // History: pending first (newest first), then confirmed.
    let (status, history) = node.get(&format!("/v1/accounts/{a0}/transactions")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let items = history["items"].as_array().expect("items");
    let ids: Vec<&str> = items
        .iter()
        .map(|i| i["txid"].as_str().expect("txid"))
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[2], confirmed.txid().to_hex());
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[1]["status"], "pending");
    assert_eq!(items[2]["status"], "confirmed");
    assert_eq!(history["next_cursor"], Value::Null);

    // Mempool: highest fee first.
    let (status, pool) = node.get("/v1/mempool").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pool["count"], 2);
    assert_eq!(pool["bytes"], 2 * 148);
    assert_eq!(pool["items"][0]["txid"], rich.txid().to_hex());
    assert_eq!(pool["items"][1]["txid"], cheap.txid().to_hex());
    assert_eq!(pool["items"][0]["status"], "pending");
    let (_, first) = node.get("/v1/mempool?limit=1").await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1));
    let cursor = first["next_cursor"].as_str().expect("more").to_owned();
    let (_, second) = node
        .get(&format!("/v1/mempool?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["txid"], cheap.txid().to_hex());
    assert_eq!(second["next_cursor"], Value::Null);

    // Search.
    let (tip, _) = node.tip().await;
    for (q, kind, id) in [
        ("2".to_owned(), "block", tip.to_hex()),
        (tip.to_hex(), "block", tip.to_hex()),
        (
            confirmed.txid().to_hex(),
            "transaction",
            confirmed.txid().to_hex(),
        ),
        (
            rich.txid().to_hex().to_uppercase(),
            "transaction",
            rich.txid().to_hex(),
        ),
        (format!("0x{a0}"), "account", a0.to_hex()),
    ] {
        let (status, hit) = node.get(&format!("/v1/search?q={q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}: {hit}");
        assert_eq!(hit, json!({ "kind": kind, "id": id }), "{q}");
    }

    // Tips, peers.
    let (status, tips) = node.get("/v1/chain/tips").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tips,
        json!([{ "hash": tip.to_hex(), "height": 2, "total_work": format!("{:064x}", 6),
                 "branch_length": 0, "status": "active" }])
    );
    // The peer dialled this node (it is the peer's bootnode): one inbound connection.
    let (status, peers) = node.get("/v1/peers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(peers.as_array().map(Vec::len), Some(1), "{peers}");
    let peer = &peers[0];
    assert_eq!(peer["peer_id"], node.peer_id());
    assert_eq!(peer["direction"], "inbound", "{peer}");
    let address = peer["address"].as_str().expect("address");
    assert!(address.starts_with("/ip4/127.0.0.1/tcp/"), "{address}");
    let since = peer["connected_since_ms"].as_u64().expect("since");
    assert!(since > 0 && since <= now_ms(), "{peer}");
    // Announced by the peer itself: unknown, or at most this node's height.
    let best = &peer["best_height"];
    assert!(
        best.is_null() || best.as_u64().is_some_and(|h| h <= 2),
        "{peer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_answers_every_item_in_order() {
    let node = TestNode::start().await;
    let a1 = node.address(1);
    let confirmed = node.transfer(3, a1, 1, 1, 0);
    node.post("/v1/transactions", &tx_json(&confirmed)).await;
    node.mine(1).await;

    let good: Vec<Transaction> = (0..40).map(|n| node.transfer(0, a1, 1 + n, 1, n)).collect();
    let mut tampered = node.transfer(2, a1, 5, 1, 0);
    tampered.amount = 6;
    let mut items: Vec<Value> = good.iter().map(tx_json).collect();
    items.insert(5, tx_json(&tampered));
    items.insert(6, tx_json(&good[0]));
    items.push(tx_json(&confirmed));

    // A malformed item refuses the whole batch, naming it.
    let mut malformed = items.clone();
    malformed.insert(7, json!({ "chain_id": 7710 }));
    let got = node
        .post("/v1/transactions/batch", &Value::Array(malformed))
        .await;
    let message = assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(
        message.contains("item 7") && message.contains("missing field"),
        "{message}"
    );
    let (_, pool) = node.get("/v1/mempool").await;
    assert_eq!(pool["count"], 0, "nothing of a refused batch is admitted");

    let (status, answer) = node
        .post("/v1/transactions/batch", &Value::Array(items))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let answer = answer.as_array().expect("array");
    assert_eq!(answer.len(), 43);
    assert_eq!(
        answer[0],
        json!({ "txid": good[0].txid().to_hex(), "status": "pending" })
    );
    assert_eq!(answer[5]["error"]["code"], "bad_signature");
    assert!(
        answer[5]["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&tampered.txid().to_hex())
    );
    assert_eq!(
        answer[6],
        json!({ "txid": good[0].txid().to_hex(), "status": "pending" })
    );
    assert_eq!(answer[7]["txid"], good[5].txid().to_hex());
    assert_eq!(
        answer[42],
        json!({ "txid": confirmed.txid().to_hex(), "status": "confirmed" })
    );
    let (_, pool) = node.get("/v1/mempool").await;
    assert_eq!(pool["count"], 40);

    let (status, empty) = node.post("/v1/transactions/batch", &json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls() {
    let node = TestNode::start_with(Options {
        peer: true,
        ..Options::default()
    })
    .await;
    let miner = peerchain_ledger::Address([0x11; 20]);
    let (status, mined) = node
        .admin(
            "/v1/admin/mine",
            &json!({ "blocks": 2, "miner": miner.to_hex() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mined}");
    let hashes = mined["hashes"].as_array().expect("hashes");
    assert_eq!(hashes.len(), 2);
    let (_, b) = node.get("/v1/blocks/2").await;
    assert_eq!(b["miner"], miner.to_hex());
    assert_eq!(b["hash"], hashes[1]);

    let (status, on) = node
        .admin("/v1/admin/mining", &json!({ "enabled": true }))
        .await;
    assert_eq!(
        (status, on),
        (
            StatusCode::OK,
            json!({ "mining": true, "hashrate_cap": null })
        )
    );
    let (_, s) = node.get("/v1/status").await;
    assert_eq!(s["mining"], true);
    let (status, off) = node
        .admin("/v1/admin/mining", &json!({ "enabled": false }))
        .await;
    assert_eq!(
        (status, off),
        (
            StatusCode::OK,
            json!({ "mining": false, "hashrate_cap": null })
        )
    );

    let ok = json!({ "ok": true });
    let dial = node
        .admin(
            "/v1/admin/peers",
            &json!({ "addr": "/ip4/127.0.0.1/tcp/7712" }),
        )
        .await;
    assert_eq!(dial, (StatusCode::OK, ok.clone()));
    let peer = node.peer_id();
    let block = node
        .admin(&format!("/v1/admin/peers/{peer}/block"), &json!({}))
        .await;
    assert_eq!(block, (StatusCode::OK, ok.clone()));
    node.wait_for("the blocked peer to be disconnected", |s| {
        s["peer_count"] == 0
    })
    .await;
    let unblock = node
        .admin(&format!("/v1/admin/peers/{peer}/unblock"), &json!({}))
        .await;
    assert_eq!(unblock, (StatusCode::OK, ok.clone()));

    // Invalidate block 2: the chain steps back; reconsider: it returns. (Mining was on for a
    // moment above, so a block 3 may have been found on top of it.)
    let (_, s) = node.get("/v1/status").await;
    let height_before = s["height"].as_u64().expect("height");
    let tip_before = s["tip_hash"].clone();
    let tip = hashes[1].as_str().expect("hex").to_owned();
    let inv = node
        .admin("/v1/admin/invalidate", &json!({ "hash": tip }))
        .await;
    assert_eq!(inv, (StatusCode::OK, ok.clone()));
    let (_, s) = node.get("/v1/status").await;
    assert_eq!(s["height"], 1);
    let (_, b) = node.get(&format!("/v1/blocks/{tip}")).await;
    assert_eq!(b["status"], "invalidated");
    assert_eq!(b["in_main_chain"], false);
    assert_eq!(b["confirmations"], 0);
    assert_eq!(b["next_hash"], Value::Null);
    let (_, tips) = node.get("/v1/chain/tips").await;
    assert_eq!(tips[1]["status"], "invalid");
    assert_eq!(tips[1]["branch_length"], height_before - 1);
    let re = node
        .admin("/v1/admin/reconsider", &json!({ "hash": tip }))
        .await;
    assert_eq!(re, (StatusCode::OK, ok));
    let (_, s) = node.get("/v1/status").await;
    assert_eq!(s["height"], height_before);
    assert_eq!(s["tip_hash"], tip_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_openapi_and_explorer() {
    let node = TestNode::start().await;
    node.mine(2).await;
    let tx = node.transfer(0, node.address(1), 1, 1, 0);
    node.post("/v1/transactions", &tx_json(&tx)).await;
    node.post(
        "/v1/transactions",
        &tx_json(&node.transfer(0, node.address(1), 1, 0, 1)),
    )
    .await;
    node.get("/v1/status").await;
    node.get("/v1/blocks/1").await;

    let r = node
        .client
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("openmetrics-text")
    );
    let text = r.text().await.expect("text");
    for needle in [
        "peerchain_chain_height 2",
        "peerchain_blocks_imported_total 2",
        "peerchain_transactions_accepted_total 1",
        "peerchain_transactions_rejected_total{reason=\"fee_too_low\"} 1",
        "peerchain_mempool_transactions 1",
        "peerchain_mempool_bytes 148",
        "peerchain_http_requests_total{route=\"/v1/blocks/{id}\",method=\"GET\",status=\"200\"} 1",
        "peerchain_http_request_duration_seconds_count{route=\"/v1/status\",method=\"GET\"} 1",
        "peerchain_peers",
        "peerchain_reorgs_total",
        "peerchain_hashrate_hashes_per_second",
        "# EOF",
    ] {
        assert!(text.contains(needle), "metrics lack {needle:?}:\n{text}");
    }
    // The node's own registry: what the node records is what `/metrics` renders.
    let metrics = &node.node().metrics;
    metrics.gossip("blocks", "accept");
    metrics.set_hashrate(12.5);
    metrics.set_peers(3);
    metrics.reorg(2);
    let text = metrics.render();
    assert!(text.contains("peerchain_gossip_messages_total{topic=\"blocks\",result=\"accept\"} 1"));
    assert!(text.contains("peerchain_hashrate_hashes_per_second 12.5"));
    assert!(text.contains("peerchain_peers 3"));
    assert!(text.contains("peerchain_reorg_depth_count 1"));

    let (status, doc) = node.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    assert!(doc["components"]["schemas"]["TxFields"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let r = node
        .client
        .get(node.url("/"))
        .send()
        .await
        .expect("explorer");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert!(r.text().await.expect("html").contains("/openapi.json"));
}

/// Every operation in the OpenAPI document is routed (no fallback 404, no 405), and the
/// document lists exactly the routes of SPEC section 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_matches_the_router() {
    let node = TestNode::start().await;
    let (_, doc) = node.get("/openapi.json").await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut listed = Vec::new();
    for (path, item) in paths {
        for method in ["get", "post"] {
            let Some(op) = item.get(method) else { continue };
            listed.push(format!("{} {path}", method.to_uppercase()));
            for code in ["400", "404", "429", "500", "503"] {
                assert!(
                    op["responses"].get(code).is_some(),
                    "{method} {path} documents {code}"
                );
            }
            let concrete = path
                .replace("{txid}", &"00".repeat(32))
                .replace("{id}", "0")
                .replace("{address}", &"00".repeat(20))
                .replace("{peer_id}", "nobody");
            let url = node.url(&concrete);
            let request = if method == "get" {
                node.client.get(&url)
            } else {
                node.client.post(&url).json(&json!({}))
            };
            let r = request.send().await.expect("request");
            let status = r.status();
            if path == "/v1/events" {
                assert_eq!(status, StatusCode::OK);
                continue;
            }
            let (_, body) = read(r).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let unrouted = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no route"));
            assert!(!unrouted, "{method} {path} is not routed: {body}");
        }
    }
    listed.sort();
    let mut expected: Vec<String> = [
        "GET /",
        "GET /metrics",
        "GET /openapi.json",
        "GET /v1/accounts/{address}",
        "GET /v1/accounts/{address}/transactions",
        "GET /v1/blocks",
        "GET /v1/blocks/{id}",
        "GET /v1/blocks/{id}/transactions",
        "GET /v1/blocks/{id}/txids",
        "GET /v1/chain/tips",
        "GET /v1/events",
        "GET /v1/health",
        "GET /v1/mempool",
        "GET /v1/peers",
        "GET /v1/peers/banned",
        "GET /v1/ready",
        "GET /v1/search",
        "GET /v1/status",
        "GET /v1/transactions/{txid}",
        "GET /v1/transactions/{txid}/proof",
        "POST /v1/admin/adversary",
        "POST /v1/admin/invalidate",
        "POST /v1/admin/mine",
        "POST /v1/admin/mining",
        "POST /v1/admin/peers",
        "POST /v1/admin/peers/{peer_id}/block",
        "POST /v1/admin/peers/{peer_id}/link",
        "POST /v1/admin/peers/{peer_id}/unblock",
        "POST /v1/admin/reconsider",
        "POST /v1/transactions",
        "POST /v1/transactions/batch",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_read_only_cross_origin_gets() {
    let node = TestNode::start().await;
    let r = node
        .client
        .get(node.url("/v1/status"))
        .header("origin", "http://explorer.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    let preflight = node
        .client
        .request(reqwest::Method::OPTIONS, node.url("/v1/transactions"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("OPTIONS");
    let allowed = preflight
        .headers()
        .get("access-control-allow-methods")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    assert!(allowed.contains("GET"), "{allowed}");
    assert!(!allowed.contains("POST"), "{allowed}");
}
