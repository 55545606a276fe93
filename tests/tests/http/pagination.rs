//! Pagination: walks without gaps or repeats, also while blocks arrive.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::*;

fn with_cursor(path: &str, cursor: &Option<String>) -> String {
    match cursor {
        Some(c) => format!("{path}&cursor={c}"),
        None => path.to_owned(),
    }
}

/// Submits `n` transfers from dev `from` to `to` starting at `nonce`; returns their txids.
async fn submit_many(node: &TestNode, from: usize, to: usize, nonce: u64, n: u64) -> Vec<String> {
    let txs: Vec<_> = (0..n)
        .map(|i| node.transfer(from, node.address(to), 1 + i % 5, 1 + i % 3, nonce + i))
        .collect();
    let body = Value::Array(txs.iter().map(tx_json).collect());
    let (status, answer) = node.post("/v1/transactions/batch", &body).await;
    assert_eq!(status, StatusCode::OK);
    for (tx, a) in txs.iter().zip(answer.as_array().expect("array")) {
        assert_eq!(
            a,
            &json!({ "txid": tx.txid().to_hex(), "status": "pending" })
        );
    }
    txs.iter().map(|t| t.txid().to_hex()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_history_walk_has_no_gaps_or_repeats_while_blocks_arrive() {
    let node = TestNode::start().await;
    let a0 = node.address(0);
    let mut initial: Vec<String> = Vec::new();
    // 1,000 confirmed transactions of dev 0, in four blocks.
    for round in 0..4 {
        initial.extend(submit_many(&node, 0, 1, round * 250, 250).await);
        node.mine(1).await;
    }
    // Pending ones, sent and received.
    initial.extend(submit_many(&node, 0, 1, 1_000, 30).await);
    initial.extend(submit_many(&node, 2, 0, 0, 20).await);
    assert_eq!(initial.len(), 1_050);
    let (_, account) = node.get(&format!("/v1/accounts/{a0}")).await;
    assert_eq!(account["tx_count"], 1_000);
    assert_eq!(account["next_nonce"], 1_030);

    let mut seen: Vec<String> = Vec::new();
    let mut statuses: Vec<String> = Vec::new();
    let mut arrived: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0u64;
    loop {
        let path = with_cursor(&format!("/v1/accounts/{a0}/transactions?limit=37"), &cursor);
        let (status, page) = node.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 37);
        for item in items {
            seen.push(item["txid"].as_str().expect("txid").to_owned());
            statuses.push(item["status"].as_str().expect("status").to_owned());
        }
        pages += 1;
        if pages % 2 == 1 {
            // New activity between pages: a fresh payment to dev 0, then a block that
            // confirms whatever is pending (the walk's pending ones included).
            arrived.extend(submit_many(&node, 3, 0, pages / 2, 1).await);
            node.mine(1).await;
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
        assert!(pages < 100, "the walk ends");
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no transaction is listed twice");
    for txid in &initial {
        assert!(unique.contains(txid), "{txid} is listed");
    }
    for txid in &seen {
        assert!(
            initial.contains(txid) || arrived.contains(txid),
            "{txid} belongs to the account"
        );
    }
    // The pending section comes first: once a page lists an item of the confirmed section
    // (the 1,000 confirmed at the start), nothing of the start's pending section follows.
    let confirmed_at_start: HashSet<&String> = initial[..1_000].iter().collect();
    let first_old = seen
        .iter()
        .position(|t| confirmed_at_start.contains(t))
        .expect("confirmed items");
    assert!(
        seen[first_old..]
            .iter()
            .all(|t| confirmed_at_start.contains(t)),
        "pending first, then confirmed"
    );
    assert!(statuses[first_old..].iter().all(|s| s == "confirmed"));
    // Confirmed section newest first: dev 0's own transfers appear in descending nonce order.
    let order: Vec<&String> = seen[first_old..].iter().collect();
    let expected: Vec<&String> = initial[..1_000].iter().rev().collect();
    assert_eq!(order, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_and_block_transaction_pages() {
    let node = TestNode::start().await;
    node.mine(29).await;
    let ids = submit_many(&node, 0, 1, 0, 250).await;
    let block = node.mine(1).await.remove(0);

    // Block transactions: 3 pages in block order, equal to the txids.
    let (_, txids) = node.get(&format!("/v1/blocks/{block}/txids")).await;
    assert_eq!(txids.as_array().map(Vec::len), Some(250));
    let mut listed: Vec<Value> = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let path = with_cursor(
            &format!("/v1/blocks/{block}/transactions?limit=100"),
            &cursor,
        );
        let (status, page) = node.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        for item in page["items"].as_array().expect("items") {
            assert_eq!(item["index"], listed.len());
            listed.push(item["txid"].clone());
        }
        pages += 1;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(Value::Array(listed), txids);
    let mut sorted_ids = ids.clone();
    sorted_ids.sort();
    let mut from_block: Vec<String> = txids
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("hex").to_owned())
        .collect();
    from_block.sort();
    assert_eq!(sorted_ids, from_block);

    // Blocks: newest first, contiguous, unaffected by new blocks.
    let mut heights = Vec::new();
    let mut cursor = None;
    loop {
        let (status, page) = node.get(&with_cursor("/v1/blocks?limit=7", &cursor)).await;
        assert_eq!(status, StatusCode::OK);
        for item in page["items"].as_array().expect("items") {
            heights.push(item["height"].as_u64().expect("height"));
        }
        node.mine(1).await;
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(heights, (0..=30).rev().collect::<Vec<u64>>());
    let (_, default) = node.get("/v1/blocks").await;
    assert_eq!(default["items"].as_array().map(Vec::len), Some(25));
    let (_, max) = node.get("/v1/blocks?limit=100").await;
    assert_eq!(max["items"].as_array().map(Vec::len), Some(36));
    assert_eq!(max["next_cursor"], Value::Null);
}
