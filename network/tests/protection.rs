//! Peer protection: a malicious peer is rejected, never relayed and banned; a node of
//! another network is refused; penalties and operator blocks disconnect and refuse peers.

mod common;

use std::time::Duration;

use common::*;
use peerchain_consensus::{Verdict, build_template, solve};
use peerchain_ledger::{Address, Block, Hash, Target, U256};
use peerchain_network::{Acceptance, RawTopic};

/// A block on `node`'s tip that passes every network check (decodes, Merkle root, proof of
/// work against its own target) but breaks the difficulty rule.
fn invalid_block(node: &TestNode, miner: u8) -> Block {
    let c = lock(&node.chain);
    let parent_ts = c.tip_header().timestamp_ms;
    let mut template =
        build_template(&c, Address([miner; 20]), parent_ts + 2000).expect("template");
    template.header.target = Target(U256::MAX >> 2);
    solve(template).expect("solvable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malicious_peer_is_rejected_never_relayed_and_banned() {
    let g = test_genesis(7720);
    let h0 = TestNode::start(NodeOpts::new("h0", &g)).await;
    let h1 = TestNode::start(NodeOpts::new("h1", &g).bootnode(&h0)).await;
    let h2 = TestNode::start(NodeOpts::new("h2", &g).bootnode(&h0)).await;
    let honest = [&h0, &h1, &h2];
    wait_for_peers(&honest, 2, 15).await;
    let b = h0.mine(true).await;
    wait_for_tip(&honest, b.hash(), 10).await;

    // The attacker: never validates or relays, and allows itself ten times larger blocks.
    let mut opts = NodeOpts::new("mallory", &g).bootnode(&h0);
    opts.validate = false;
    opts.max_block_txs = Some(10 * MAX_BLOCK_TXS as usize);
    let m = TestNode::start(opts).await;
    wait_for_peers(&[&m], 3, 15).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // meshes settle

    // 1. A block that breaks a consensus rule.
    let bad_block = invalid_block(&h0, 0x66);
    m.net.publish_block(&bad_block).await;
    // 2. A transaction with a broken signature.
    let mut bad_tx = transfer(&g, 0, 1, 5, 0);
    bad_tx.signature.0[10] ^= 0x55;
    m.net.publish_tx(&bad_tx).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 3. Undecodable bytes on both topics.
    m.net
        .publish_raw(RawTopic::Blocks, b"definitely not a block".to_vec())
        .await;
    m.net.publish_raw(RawTopic::Txs, vec![0xee; 10]).await;
    // 4. An oversized block (more transactions than this network allows).
    let mut big = invalid_block(&h1, 0x77);
    big.transactions = vec![transfer(&g, 1, 2, 1, 0); 2 * MAX_BLOCK_TXS as usize];
    assert_ne!(big.hash(), bad_block.hash());
    m.net.publish_block(&big).await;

    // Every honest node ends up banning the attacker; the attacker is left alone.
    let m_id = m.peer_id.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut connected = false;
        for h in honest {
            connected |= h.peer_ids().await.contains(&m_id);
        }
        if !connected && m.net.peers().await.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attacker still connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its redials (h0 is its bootnode) and explicit dials are refused.
    for h in honest {
        m.net.dial(&h.addr).await.expect("dial starts");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        m.net.peers().await.is_empty(),
        "banned attacker reconnected"
    );

    // Nothing invalid was relayed between honest nodes, admitted or connected.
    let bad_block_hash = bad_block.hash();
    let bad_txid = bad_tx.txid();
    let big_hash = big.hash();
    for h in honest {
        let log = lock(&h.log);
        for (hash, peer, _, verdict) in &log.blocks {
            assert_ne!(*hash, big_hash, "{}: oversized block was delivered", h.name);
            if *hash == bad_block_hash {
                assert_eq!(peer, &m_id, "{}: invalid block relayed by {peer}", h.name);
                assert!(matches!(verdict, Verdict::Invalid(_)), "{verdict:?}");
            }
        }
        for (txid, peer, acceptance) in &log.txs {
            if *txid == bad_txid {
                assert_eq!(peer, &m_id, "{}: invalid tx relayed by {peer}", h.name);
                assert_eq!(*acceptance, Acceptance::Reject);
            }
        }
        assert!(!h.has_tx(&bad_txid));
        assert!(!lock(&h.chain).is_on_main(&bad_block_hash));
    }
    // The attacker never received its own junk back from anyone.
    assert!(
        lock(&m.log)
            .blocks
            .iter()
            .all(|(h, ..)| *h != bad_block_hash)
    );

    // The honest network keeps making progress.
    let b = h1.mine(true).await;
    wait_for_tip(&honest, b.hash(), 10).await;
    let txid = h2.submit(transfer(&g, 3, 4, 9, 0)).await;
    wait_for("tx everywhere", 10, || {
        honest.iter().all(|h| h.has_tx(&txid))
    })
    .await;

    m.stop().await;
    for h in [h0, h1, h2] {
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_of_another_network_is_refused() {
    let g = test_genesis(7730);
    let other = test_genesis(7731);
    assert_ne!(g.hash(), other.hash());
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    let b = TestNode::start(NodeOpts::new("b", &g).bootnode(&a)).await;
    wait_for_peers(&[&a, &b], 1, 10).await;
    let x = TestNode::start(NodeOpts::new("x", &other).bootnode(&a)).await;
    x.net.dial(&b.addr).await.expect("dial starts");
    // x has more work: an honest node of the same network would sync from it.
    x.mine_quietly(5).await;
    let xb = x.mine(true).await;
    x.submit(transfer(&other, 0, 1, 1, 0)).await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(x.net.peers().await.is_empty(), "x completed a handshake");
    assert!(lock(&x.log).connected.is_empty());
    for n in [&a, &b] {
        assert_eq!(
            n.peer_ids().await,
            vec![if n.name == "a" {
                b.peer_id.clone()
            } else {
                a.peer_id.clone()
            }]
        );
        let log = lock(&n.log);
        assert!(!log.connected.contains(&x.peer_id));
        assert!(
            log.blocks.is_empty() && log.txs.is_empty(),
            "{}: got data from x",
            n.name
        );
        assert_eq!(n.height(), 0);
        assert_ne!(n.tip().0, xb.hash());
    }

    x.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn penalties_and_operator_blocks_disconnect_and_refuse() {
    let g = test_genesis(7740);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    let b = TestNode::start(NodeOpts::new("b", &g).bootnode(&a)).await;
    wait_for_peers(&[&a, &b], 1, 10).await;

    // Repeated penalties ban the peer; b's bootnode redials are refused.
    for _ in 0..3 {
        a.net
            .penalize(&b.peer_id, "delivered an invalid block")
            .await;
    }
    wait_for_peers_exactly(&a, 0, 10).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.net.peers().await.is_empty(), "banned peer came back");
    assert!(b.net.peers().await.is_empty());

    // Unblocking lets b's redial (with backoff) succeed.
    a.net.unblock_peer(&b.peer_id).await.expect("unblock");
    wait_for_peers(&[&a, &b], 1, 30).await;

    // An operator block disconnects at once; unblock and dial restore the link.
    a.net.block_peer(&b.peer_id).await.expect("block");
    wait_for_peers_exactly(&a, 0, 10).await;
    assert!(
        a.net.dial(&b.addr).await.is_err(),
        "dialling a blocked peer is refused"
    );
    a.net.unblock_peer(&b.peer_id).await.expect("unblock");
    a.net.dial(&b.addr).await.expect("dial");
    wait_for_peers(&[&a, &b], 1, 10).await;

    // Bad input is an error with the values involved, never a panic.
    let err = a.net.block_peer("not-a-peer-id").await.expect_err("bad id");
    assert!(err.to_string().contains("not-a-peer-id"), "{err}");
    let err = a.net.block_peer(&a.peer_id).await.expect_err("self");
    assert!(err.to_string().contains(&a.peer_id), "{err}");
    let err = a.net.dial("/ip4/nonsense").await.expect_err("bad addr");
    assert!(err.to_string().contains("/ip4/nonsense"), "{err}");

    let (net, b_addr) = (a.net.clone(), b.addr.clone());
    b.stop().await;
    a.stop().await;
    // After shutdown the handle reports a stopped service instead of panicking.
    assert!(net.peers().await.is_empty());
    assert!(matches!(
        net.dial(&b_addr).await,
        Err(peerchain_network::NetworkError::Stopped)
    ));
    net.publish_block(&invalid_block_placeholder()).await;
    net.shutdown().await;
}

fn invalid_block_placeholder() -> Block {
    Block {
        header: peerchain_ledger::BlockHeader {
            version: 1,
            height: 1,
            prev_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            timestamp_ms: 0,
            target: Target(U256::MAX),
            nonce: 0,
            miner: Address::ZERO,
        },
        transactions: vec![],
    }
}

async fn wait_for_peers_exactly(node: &TestNode, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while node.net.peers().await.len() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never had {n} peers",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_lying_about_its_work_is_penalised_and_another_is_used() {
    let g = test_genesis(7760);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    a.mine_quietly(10).await;
    // The liar holds only genesis but claims an enormous chain.
    let mut opts = NodeOpts::new("liar", &g);
    opts.validate = false;
    let liar = TestNode::start(opts).await;
    liar.net
        .set_local_tip(peerchain_network::LocalTip {
            hash: Hash([0x42; 32]),
            height: 1_000_000,
            total_work: U256::MAX >> 8,
        })
        .await;
    a.net.dial(&liar.addr).await.expect("dial");
    wait_for("a to sync from the liar and give up", 10, || {
        lock(&a.log).syncing == vec![true, false]
    })
    .await;
    assert_eq!(a.height(), 10);
    // One lie is not a ban, and it does not make a sync from the liar again and again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.peer_ids().await.contains(&liar.peer_id));
    assert_eq!(lock(&a.log).syncing.len(), 2);

    // An honest peer with more work is used.
    let h = TestNode::start(NodeOpts::new("h", &g)).await;
    let prefix: Vec<Block> = {
        let c = lock(&a.chain);
        (1..=10)
            .map(|height| {
                let hash = c.store().main_hash(height).expect("read").expect("main");
                c.store().block(&hash).expect("read").expect("stored")
            })
            .collect()
    };
    h.import_all(&prefix).await;
    h.mine_quietly(20).await;
    a.net.dial(&h.addr).await.expect("dial");
    wait_for_tip(&[&a], h.tip().0, 15).await;

    for n in [h, liar, a] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_peer_serving_invalid_blocks_is_banned() {
    let g = test_genesis(7770);
    let a = TestNode::start(NodeOpts::new("a", &g)).await;
    a.mine_quietly(3).await;
    let a_tip = a.tip().0;
    // The forger's main chain: 8 blocks whose headers link and meet their own (too hard)
    // target, so it claims more work; consensus rejects the first one.
    let mut opts = NodeOpts::new("forger", &g);
    opts.validate = false;
    opts.store = Some(forged_store(&g, 8));
    let forger = TestNode::start(opts).await;
    assert_eq!(forger.start_height, 8);
    a.net.dial(&forger.addr).await.expect("dial");

    wait_for("the forged blocks to be judged", 10, || {
        lock(&a.log)
            .blocks
            .iter()
            .any(|(_, _, _, v)| matches!(v, Verdict::Invalid(_)))
    })
    .await;
    wait_for_peers_exactly(&a, 0, 10).await;
    assert!(forger.net.peers().await.is_empty());
    assert_eq!(a.tip().0, a_tip, "a kept its chain");
    forger.net.dial(&a.addr).await.expect("dial starts");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(a.net.peers().await.is_empty(), "the forger was let back in");

    forger.stop().await;
    a.stop().await;
}
