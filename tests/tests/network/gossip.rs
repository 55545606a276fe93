//! Gossip of transactions and blocks between real nodes.

use peerchain_ledger::Transaction;
use peerchain_network::MAX_TX_BATCH;
use peerchain_tests::EventReader;
use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_and_block_reach_every_node() {
    let g = test_genesis(7710);
    let n0 = Honest::start("n0", &g, Vec::new()).await;
    let mut nodes = Vec::new();
    for i in 1..5 {
        nodes.push(Honest::start(&format!("n{i}"), &g, vec![n0.p2p.clone()]).await);
    }
    let all: Vec<&Honest> = std::iter::once(&n0).chain(nodes.iter()).collect();
    wait_for_peers(&all, 1, 30).await;

    // Discovery: a node that only knew n0 finds the others through Kademlia.
    let last = &nodes[3];
    wait_for("n4 to discover three peers", 30, async || {
        last.peers().await.len() >= 3
    })
    .await;

    // A transaction submitted to one node reaches every mempool.
    let txid = nodes[2].submit(&transfer(&g, 0, 1, 1000, 0)).await;
    wait_for("the tx in every mempool", 30, async || {
        for n in &all {
            if n.tx_status(&txid).await.as_deref() != Some("pending") {
                return false;
            }
        }
        true
    })
    .await;

    // A block mined on one node (carrying the tx) becomes every node's tip.
    let block = nodes[1].mine(1).await.remove(0);
    let txids = nodes[1].get_ok(&format!("/v1/blocks/{block}/txids")).await;
    assert!(
        txids.as_array().expect("list").iter().any(|t| *t == txid),
        "the mined block carries the tx: {txids}"
    );
    wait_for_tip(&all, &block, 30).await;
    for n in &all {
        assert_eq!(n.tx_status(&txid).await.as_deref(), Some("confirmed"));
    }
    wait_for("the confirmed tx to leave every mempool", 10, async || {
        for n in &all {
            if n.status().await["mempool_size"] != 0 {
                return false;
            }
        }
        true
    })
    .await;

    // A few more blocks from different miners.
    for miner in &all[..3] {
        let b = miner.mine(1).await.remove(0);
        wait_for_tip(&all, &b, 30).await;
    }

    for n in nodes {
        n.shutdown().await;
    }
    n0.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_published_before_any_peer_is_rebroadcast() {
    let g = test_genesis(7750);
    let a = Honest::start("a", &g, Vec::new()).await;
    assert!(a.peers().await.is_empty());
    let txid = a.submit(&transfer(&g, 1, 2, 3, 0)).await; // nobody to send it to yet
    let b = Honest::start("b", &g, vec![a.p2p.clone()]).await;
    wait_for("the early tx at b", 20, async || {
        b.tx_status(&txid).await.as_deref() == Some("pending")
    })
    .await;
    assert_eq!(b.gossip("transactions", "accept"), 1.0, "it came by gossip");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_gossip_block_fetches_its_ancestors() {
    let g = test_genesis(7751);
    let a = Honest::start("a", &g, Vec::new()).await;
    // a mines 15 blocks alone, then hides them: invalidating the first makes genesis its tip
    // again, so the tip it announces in the status handshake is genesis.
    let hidden = a.mine(15).await;
    a.admin(
        "/v1/admin/invalidate",
        &serde_json::json!({ "hash": hidden[0] }),
    )
    .await;
    assert_eq!(a.height().await, 0);
    let b = Honest::start("b", &g, vec![a.p2p.clone()]).await;
    wait_for_peers(&[&a, &b], 1, 20).await;

    // Reconsidering brings the 15 blocks back without publishing anything, and b's view of
    // a's tip stays at genesis until the next status refresh (10 s away). So b misses 15
    // blocks, then hears of the 16th by gossip.
    a.admin(
        "/v1/admin/reconsider",
        &serde_json::json!({ "hash": hidden[0] }),
    )
    .await;
    assert_eq!(a.tip().await, (hidden[14].clone(), 15));
    let block = a.mine(1).await.remove(0);
    wait_for_tip(&[&b], &block, 30).await;

    // The gossip block arrived as an orphan (ignored: no penalty, not relayed), and its
    // ancestors were fetched from a: all 16 joined b's main chain, none was refused.
    assert_eq!(
        b.gossip("blocks", "ignore"),
        1.0,
        "the gossip block was an orphan"
    );
    assert_eq!(b.gossip("blocks", "accept"), 0.0);
    assert_eq!(b.gossip("blocks", "reject"), 0.0);
    assert_eq!(b.blocks_imported(), 16.0, "15 ancestors and the orphan");
    assert_eq!(b.reorgs(), 0.0);
    for h in &hidden {
        let view = b.block(h).await.expect("ancestor fetched");
        assert_eq!(view["in_main_chain"], true);
    }
    assert!(
        b.peer_ids().await.contains(&a.peer_id),
        "a was not penalised"
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// Transactions travel in batches: 480 transfers admitted over HTTP at one node reach its
/// peer in a few gossip messages, not 480 (before batching, one message each). (480: within
/// the budget of a new peer, 500 a second.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_travel_in_batches() {
    let g = test_genesis(7760);
    let a = Honest::start("a", &g, Vec::new()).await;
    let b = Honest::start("b", &g, vec![a.p2p.clone()]).await;
    wait_for_peers(&[&a, &b], 1, 30).await;
    let per_sender = 80u64;
    let txs: Vec<Transaction> = (0..ACCOUNTS)
        .flat_map(|from| (0..per_sender).map(move |n| (from, n)))
        .map(|(from, n)| transfer(&g, from, (from + 1) % ACCOUNTS, 1, n))
        .collect();
    let total = txs.len();
    let (status, answer) = a
        .post(
            "/v1/transactions/batch",
            &serde_json::to_value(&txs).expect("JSON"),
        )
        .await;
    let all_pending = answer
        .as_array()
        .is_some_and(|items| items.iter().all(|i| i["status"] == "pending"));
    assert!(status == 200 && all_pending, "batch answered {status}");
    wait_for("every transfer in b's mempool", 30, async || {
        b.status().await["mempool_size"] == total
    })
    .await;
    let messages = b.gossip_seen("transactions");
    eprintln!("{total} transfers reached b in {messages} gossip messages");
    assert!(
        messages <= 4.0,
        "{total} transfers took {messages} gossip messages (a batch holds up to {MAX_TX_BATCH})"
    );
    assert_eq!(b.gossip("transactions", "accept"), messages);
    b.shutdown().await;
    a.shutdown().await;
}

/// A valid block with the same work as the tip, from a peer, is stored on a side branch (the
/// tip stays) and announced as `side_block` on an event stream that asks for it, and on no
/// other (issue 14: a scenario records every block a node takes in, not only main-chain ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equal_work_sibling_of_the_tip_is_stored_aside_and_announced() {
    let g = test_genesis(7715);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    let tip = h0.mine(1).await.remove(0);
    let mut side = EventReader::open(&format!("{}/v1/events?types=side_block", h0.url)).await;
    let mut default = EventReader::open(&format!("{}/v1/events", h0.url)).await;
    let m = adversary_on(&h0, &g, g.max_block_txs()).await;
    let sibling = first_block_sibling(&g, 0x5a);
    m.net.publish_block(&sibling).await;
    let (name, data) = side.next().await;
    assert_eq!(name, "side_block");
    assert_eq!(data["hash"], sibling.hash().to_hex());
    assert_eq!(data["height"], 1);
    assert_eq!(data["miner"], sibling.header.miner.to_hex());
    assert_eq!(
        h0.status().await["tip_hash"],
        tip,
        "the first block seen stays the tip"
    );
    let tips = h0.get_ok("/v1/chain/tips").await;
    assert!(
        tips.as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["hash"] == sibling.hash().to_hex() && t["status"] == "valid-fork")),
        "stored as a valid fork: {tips}"
    );
    assert!(
        default
            .next_within(Duration::from_millis(500))
            .await
            .is_none(),
        "a stream that did not ask gets nothing"
    );
}

/// The value of `peerchain_compact_blocks_total{reason}` on `node`.
fn compact_blocks(node: &Honest, how: &str) -> f64 {
    node.metric("peerchain_compact_blocks_total", &[("reason", how)])
}

/// Blocks travel as compact blocks (header and txids): a receiver that holds every
/// transaction rebuilds the block from its mempool; one that lacks some asks the sender for
/// those alone (not the whole block), and the gossip message then gets the completed block's
/// verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_is_rebuilt_from_the_mempool_or_fetched_whole() {
    let g = test_genesis(7716);
    let n0 = Honest::start("n0", &g, Vec::new()).await;
    let n1 = Honest::start("n1", &g, vec![n0.p2p.clone()]).await;
    wait_for_peers(&[&n0, &n1], 1, 30).await;

    // Warm: n1 holds the block's transactions.
    let held = n0.submit(&transfer(&g, 0, 1, 10, 0)).await;
    wait_for("the transfer in n1's mempool", 20, async || {
        n1.tx_status(&held).await.as_deref() == Some("pending")
    })
    .await;
    let warm = n0.mine(1).await.remove(0);
    wait_for_tip(&[&n1], &warm, 20).await;
    assert_eq!(compact_blocks(&n1, "rebuilt"), 1.0, "{}", n1.metrics());
    assert_eq!(compact_blocks(&n1, "fetched"), 0.0);
    assert_eq!(n1.gossip("blocks", "accept"), 1.0);
    assert_eq!(
        relayed_early(&n1, "applied"),
        1.0,
        "forwarded before the import"
    );
    assert_eq!(n1.tx_status(&held).await.as_deref(), Some("confirmed"));

    // Cold: n1 holds one transfer, then drops n0's gossip while n0 takes another, so it
    // never holds that one; it asks n0 for that transaction alone.
    let also_held = n0.submit(&transfer(&g, 4, 5, 10, 0)).await;
    wait_for("the second transfer in n1's mempool", 20, async || {
        n1.tx_status(&also_held).await.as_deref() == Some("pending")
    })
    .await;
    let link = format!("/v1/admin/peers/{}/link", n0.peer_id);
    n1.admin(&link, &serde_json::json!({ "loss": 1.0 })).await;
    let unseen = n0.submit(&transfer(&g, 2, 3, 10, 0)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    n1.admin(&link, &serde_json::json!({ "loss": 0.0 })).await;
    assert_eq!(
        n1.tx_status(&unseen).await,
        None,
        "n1 never saw the transfer"
    );
    let cold = n0.mine(1).await.remove(0);
    wait_for_tip(&[&n1], &cold, 20).await;
    assert_eq!(compact_blocks(&n1, "fetched"), 1.0, "{}", n1.metrics());
    assert_eq!(
        compact_blocks(&n1, "fetched_whole"),
        0.0,
        "only what it lacked"
    );
    assert_eq!(compact_blocks(&n1, "rebuilt"), 1.0);
    for id in [&unseen, &also_held] {
        assert_eq!(n1.tx_status(id).await.as_deref(), Some("confirmed"));
    }
    // The waiting message got the fetched block's verdict: forwarded, after the import.
    wait_for("the compact block's message accepted", 10, async || {
        n1.gossip("blocks", "accept") == 2.0
    })
    .await;
    assert_eq!(relayed_early(&n1, "applied"), 1.0, "a fetched block waits");
    n1.shutdown().await;
    n0.shutdown().await;
}

/// The value of `peerchain_blocks_relayed_early_total{reason}` on `node`.
fn relayed_early(node: &Honest, outcome: &str) -> f64 {
    node.metric(
        "peerchain_blocks_relayed_early_total",
        &[("reason", outcome)],
    )
}

/// Issue 13, relay before state application (BIP 152's high-bandwidth mode): a compact block
/// that a node rebuilds from its mempool, on a valid parent, with a valid header and at least
/// the tip's work, is forwarded before its transactions are applied. Shown with a block whose
/// one fault is in the state (two held transfers of one sender in the wrong nonce order): h0
/// forwards it to an observer whose only peer is h0, then finds it invalid, keeps its tip and
/// both pending transfers, and neither rejects the message nor drops the sender, who may be
/// an honest node relaying early too. Before, h0 forwarded a block only after its import, so
/// it rejected this one and the observer never saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_is_relayed_before_its_state_is_applied() {
    let g = test_genesis(7718);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    let (first, second) = (transfer(&g, 1, 2, 10, 0), transfer(&g, 1, 2, 10, 1));
    let first_id = h0.submit(&first).await;
    let second_id = h0.submit(&second).await;
    let sender = adversary_on(&h0, &g, g.max_block_txs()).await;
    let observer = adversary_on(&h0, &g, g.max_block_txs()).await;
    let block = solved_block_with(g.hash(), 1, g.initial_target, 0x5b, vec![second, first]);
    let hash = block.hash();
    sender.net.publish_block(&block).await;

    wait_for(
        "the observer to receive the block from h0",
        20,
        async || lock(&observer.log).blocks.contains(&hash),
    )
    .await;
    wait_for("h0 to find the block invalid", 20, async || {
        relayed_early(&h0, "invalid_state") == 1.0
    })
    .await;
    assert_eq!(h0.height().await, 0, "the tip stays");
    for id in [&first_id, &second_id] {
        assert_eq!(h0.tx_status(id).await.as_deref(), Some("pending"));
    }
    assert_eq!(h0.gossip("blocks", "accept"), 1.0, "{}", h0.metrics());
    assert_eq!(h0.gossip("blocks", "reject"), 0.0);
    assert!(
        h0.peer_ids().await.contains(&sender.peer_id),
        "the sender is still a peer"
    );
    observer.stop().await;
    sender.stop().await;
    h0.shutdown().await;
}

/// Issue 13, "ask only for what they miss" (BIP 152's `getblocktxn`): a node that lacks
/// some of a compact block's transactions asks its sender for those positions alone. Shown
/// with a sender whose stored copy of the block is right only at the position the node
/// lacks (another valid transfer sits where the node's held one belongs, so the stored body
/// breaks the Merkle root): the node completes the block from its mempool and the one
/// transaction it asked for, and imports it. Before, it fetched the whole block, which failed
/// its Merkle check, and never had the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_missing_transactions_of_a_compact_block_are_fetched() {
    use peerchain_ledger::Block;

    let g = test_genesis(7719);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    let (held, lacked) = (transfer(&g, 1, 2, 10, 0), transfer(&g, 3, 4, 10, 0));
    let held_id = h0.submit(&held).await;
    let block = solved_block_with(
        g.hash(),
        1,
        g.initial_target,
        0x5c,
        vec![held, lacked.clone()],
    );
    // The sender's stored body: the right transaction only at position 1.
    let stored = Block {
        header: block.header.clone(),
        transactions: vec![transfer(&g, 5, 4, 10, 0), lacked],
    };
    let store = store_with(&g, &[&stored]);
    let sender = adversary_with_store_on(&h0, &g, g.max_block_txs(), Some(store)).await;
    sender.net.publish_block(&block).await;

    wait_for_tip(&[&h0], &block.hash().to_hex(), 20).await;
    assert_eq!(compact_blocks(&h0, "fetched"), 1.0, "{}", h0.metrics());
    assert_eq!(compact_blocks(&h0, "fetched_whole"), 0.0);
    assert_eq!(h0.tx_status(&held_id).await.as_deref(), Some("confirmed"));
    wait_for("the compact block's message accepted", 10, async || {
        h0.gossip("blocks", "accept") == 1.0
    })
    .await;
    sender.stop().await;
    h0.shutdown().await;
}

/// Issue 13, review of "ask only for what they miss": a transaction fetched for a compact
/// block carries the txid the block names, yet its signature is checked all the same: a txid
/// commits to a transaction's bytes, not to their validity, and a miner can put any bytes in
/// its block. Shown with a block of one transfer h0 holds and one it lacks whose amount was
/// changed after signing: h0 fetches the lacked one, finds its signature bad, rejects the
/// block's message, keeps its tip and its held transfer, and never forwards the block to an
/// observer whose only peer is h0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_transaction_with_a_bad_signature_fails_its_block() {
    let g = test_genesis(7720);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    let held = transfer(&g, 1, 2, 10, 0);
    let held_id = h0.submit(&held).await;
    let mut forged = transfer(&g, 3, 4, 10, 0);
    forged.amount = 1_000;
    let block = solved_block_with(g.hash(), 1, g.initial_target, 0x5d, vec![held, forged]);
    let hash = block.hash();
    let store = store_with(&g, &[&block]);
    let sender = adversary_with_store_on(&h0, &g, g.max_block_txs(), Some(store)).await;
    let observer = adversary_on(&h0, &g, g.max_block_txs()).await;
    sender.net.publish_block(&block).await;

    wait_for("h0 to reject the compact block", 20, async || {
        h0.gossip("blocks", "reject") == 1.0
    })
    .await;
    assert_eq!(compact_blocks(&h0, "fetched"), 1.0, "{}", h0.metrics());
    assert_eq!(h0.height().await, 0, "the tip stays");
    assert_eq!(h0.tx_status(&held_id).await.as_deref(), Some("pending"));
    assert_eq!(h0.gossip("blocks", "accept"), 0.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !lock(&observer.log).blocks.contains(&hash),
        "h0 forwarded a block with a bad signature"
    );
    observer.stop().await;
    sender.stop().await;
    h0.shutdown().await;
}

/// Issue 13, review of "ask only for what they miss": a compact block whose parent a node
/// does not know takes the ancestor download (bounded per peer; its blocks wait unchecked)
/// even when it lacks few transactions, never `GetBlockTxs`, whose answer's signatures would
/// be checked at once: an orphan's header proves no more than its own proof of work, which at
/// `pow_limit` costs a few hashes. Before the review's fix the node asked for the missing
/// transactions of an orphan as of any other block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_compact_block_takes_the_ancestor_download_not_get_block_txs() {
    let g = test_genesis(7721);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    let held = transfer(&g, 1, 2, 10, 0);
    h0.submit(&held).await;
    let parent = solved_block_with(g.hash(), 1, g.initial_target, 0x5e, Vec::new());
    std::thread::sleep(Duration::from_millis(5)); // a later timestamp than its parent's
    let lacked = transfer(&g, 3, 4, 10, 0);
    let orphan = solved_block_with(parent.hash(), 2, g.initial_target, 0x5e, vec![held, lacked]);
    let store = store_with(&g, &[&parent, &orphan]);
    let sender = adversary_with_store_on(&h0, &g, g.max_block_txs(), Some(store)).await;
    sender.net.publish_block(&orphan).await;

    wait_for_tip(&[&h0], &orphan.hash().to_hex(), 20).await;
    assert_eq!(
        compact_blocks(&h0, "fetched_whole"),
        1.0,
        "{}",
        h0.metrics()
    );
    assert_eq!(
        compact_blocks(&h0, "fetched"),
        0.0,
        "no GetBlockTxs for an orphan"
    );
    sender.stop().await;
    h0.shutdown().await;
}

/// Issue 13, review of relay before state application: an orphan that its parent's import
/// unlocks and that then fails on state alone costs the peer it came from nothing, since an
/// honest peer may have relayed it early. Shown with a sender that publishes, three times, a
/// compact block on a parent h0 lacks whose only fault is a transfer ahead of its sender's
/// nonce: h0 fetches the block (an orphan), then its parent, imports the parent and finds the
/// unlocked block invalid, and keeps the sender. Before, each such block cost the sender a
/// penalty (34 points), and the third banned it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlocked_orphan_invalid_on_state_alone_costs_its_sender_nothing() {
    let g = test_genesis(7722);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    // Three rounds: a valid empty parent on the last round's, and a child on it whose one
    // transfer is ahead of its sender's nonce (0).
    let mut rounds = Vec::new();
    let mut prev = g.hash();
    for round in 1..=3u64 {
        let parent = solved_block_with(prev, round, g.initial_target, 0x5f, Vec::new());
        std::thread::sleep(Duration::from_millis(5)); // a later timestamp than its parent's
        let ahead = transfer(&g, 1, 2, 10, 41 + round);
        let child = solved_block_with(
            parent.hash(),
            round + 1,
            g.initial_target,
            0x5f,
            vec![ahead],
        );
        std::thread::sleep(Duration::from_millis(5));
        prev = parent.hash();
        rounds.push((parent, child));
    }
    // The sender serves all six (its own tip stays genesis, so h0 fetches one at a time).
    let blocks: Vec<_> = rounds.iter().flat_map(|(p, c)| [p, c]).collect();
    let store = store_with(&g, &blocks);
    let sender = adversary_with_store_on(&h0, &g, g.max_block_txs(), Some(store)).await;

    for (parent, child) in &rounds {
        sender.net.publish_block(child).await;
        wait_for_tip(&[&h0], &parent.hash().to_hex(), 20).await;
        let hash = child.hash().to_hex();
        wait_for("h0 to find the unlocked block invalid", 20, async || {
            h0.block(&hash)
                .await
                .is_some_and(|b| b["status"] == "invalid")
        })
        .await;
    }
    assert_eq!(h0.tip().await, (rounds[2].0.hash().to_hex(), 3));
    for (_, child) in &rounds {
        let view = h0.block(&child.hash().to_hex()).await.expect("stored");
        assert_eq!(view["in_main_chain"], false, "{view}");
    }
    assert_eq!(
        compact_blocks(&h0, "fetched_whole"),
        3.0,
        "{}",
        h0.metrics()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        h0.peer_ids().await.contains(&sender.peer_id),
        "the sender is still a peer"
    );
    let banned = h0.get_ok("/v1/peers/banned").await;
    assert!(
        !banned
            .as_array()
            .expect("a list")
            .iter()
            .any(|b| b["peer_id"] == sender.peer_id.as_str()),
        "the sender is not banned: {banned}"
    );
    sender.stop().await;
    h0.shutdown().await;
}

/// A compact block whose transactions a node lacks is fetched only if its header carries
/// real proof of work: a header with a target easier than `pow_limit` (met by any hash) and an
/// unknown parent is rejected at once, and nothing is fetched for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_block_without_proof_of_work_is_rejected_without_a_fetch() {
    use peerchain_ledger::merkle::merkle_root;
    use peerchain_ledger::{Address, Block, BlockHeader, Hash, Target, U256};

    let g = test_genesis(7717);
    let h0 = Honest::start("h0", &g, Vec::new()).await;
    let m = adversary_on(&h0, &g, g.max_block_txs()).await;
    let tx = transfer(&g, 1, 2, 10, 0);
    let header = BlockHeader {
        version: 1,
        height: 50,
        prev_hash: Hash([0x5a; 32]),
        tx_root: merkle_root(&[tx.txid()]),
        timestamp_ms: now_ms(),
        target: Target(U256::MAX),
        nonce: 0,
        miner: Address([9; 20]),
    };
    m.net
        .publish_block(&Block {
            header,
            transactions: vec![tx],
        })
        .await;
    wait_for("h0 to reject the compact block", 20, async || {
        h0.gossip("blocks", "reject") >= 1.0
    })
    .await;
    assert_eq!(compact_blocks(&h0, "fetched"), 0.0, "{}", h0.metrics());
    m.stop().await;
    h0.shutdown().await;
}
