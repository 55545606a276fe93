//! Hostile peers, defect 3: bans are per peer id only, and ids are free.
//!
//! The sybil is a raw network instance in `Adversary::Sybil` mode: besides itself it connects
//! to the victim with 40 fresh identities from 127.0.0.1, each completing the status
//! handshake and redialling every second when refused. Before the fix they took 41 of the
//! victim's 50 slots (all of them, with a few more), and banning one identity did nothing to
//! the next. Now at most `MAX_INBOUND_PER_LOOPBACK` (32) inbound peers are admitted from one
//! loopback address (8 from a public one), the victim can still connect to honest peers, and
//! a misbehaviour ban covers the banned peer's address: fresh identities from it are refused
//! for the ban's duration.

mod adversary_support;

use std::time::{Duration, Instant};

use adversary_support::{Raw, dial, peers, wait_for};
use peerchain_network::{Adversary, MAX_INBOUND_PER_LOOPBACK, RawTopic};
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};

/// Sybil identities: more than the per-IP bound and, with the sybil itself and the junk
/// publisher, within a few of the victim's 50 slots.
const IDENTITIES: u32 = 40;

/// Inbound peers of node `i` whose address is on 127.0.0.1.
async fn inbound_from_loopback(net: &TestNet, i: usize) -> usize {
    peers(net, i)
        .await
        .iter()
        .filter(|p| {
            p["direction"] == "inbound"
                && p["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("/ip4/127.0.0.1/"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sybils_from_one_address_get_a_bounded_share_and_a_ban_covers_the_address() {
    let g = easy_genesis();
    // Everything here is on 127.0.0.1: let bans cover loopback (off by default, so that a
    // local testnet keeps working after a local adversary is banned).
    let options = NodeOptions {
        ban_loopback_addresses: true,
        ..NodeOptions::default()
    };
    let victim = TestNet::start(1, g.clone(), options)
        .await
        .expect("victim starts");
    let victim_id = victim.nodes[0].peer_id.clone();
    let victim_addr = victim.nodes[0].p2p.clone();

    // A peer from 127.0.0.1 that will misbehave later (it publishes junk through the test
    // hook); it connects first.
    let junk = Raw::start(&g, vec![victim_addr.clone()], 1, None).await;
    wait_for("the junk publisher's handshake", 20, async || {
        junk.met(&victim_id)
    })
    .await;

    // 41 more identities from 127.0.0.1.
    let sybil = Raw::start(
        &g,
        vec![victim_addr.clone()],
        4,
        Some(Adversary::Sybil {
            identities: IDENTITIES,
        }),
    )
    .await;
    let limit = MAX_INBOUND_PER_LOOPBACK as usize;
    let filled = wait_for("the per-IP bound to fill", 30, async || {
        inbound_from_loopback(&victim, 0).await >= limit
    })
    .await;
    // They keep redialling; the bound holds.
    let mut most = 0;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(4) {
        most = most.max(inbound_from_loopback(&victim, 0).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = peers(&victim, 0).await.len();
    assert_eq!(most, limit, "inbound peers from 127.0.0.1");
    assert!(total < 50, "the victim's slots are not all taken: {total}");

    // The victim still connects to an honest peer.
    let honest = TestNet::start(1, g.clone(), NodeOptions::default())
        .await
        .expect("honest peer starts");
    let honest_id = honest.nodes[0].peer_id.clone();
    dial(&victim, 0, &honest.nodes[0].p2p).await;
    wait_for("the honest peer to connect", 20, async || {
        victim.peer_ids(0).await.contains(&honest_id)
    })
    .await;

    // One identity misbehaves (undecodable gossip: its gossip score falls below the ban
    // threshold) and is banned; the ban covers 127.0.0.1.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let junk_started = Instant::now();
    for i in 0..5u8 {
        junk.net
            .publish_raw(RawTopic::Blocks, vec![0xee, i, 1, 2, 3])
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for("the junk publisher's ban", 20, async || {
        !victim.peer_ids(0).await.contains(&junk.peer_id)
    })
    .await;
    let time_to_ban = junk_started.elapsed();

    // A fresh identity from the banned address is refused (it never completes a
    // handshake), and so are the sybils' redials; the honest peer stays.
    let fresh = Raw::start(&g, vec![victim_addr.clone()], 1, None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !fresh.met(&victim_id),
        "a fresh identity from a banned address got in"
    );
    assert!(!victim.peer_ids(0).await.contains(&fresh.peer_id));
    assert!(inbound_from_loopback(&victim, 0).await < limit);
    assert!(victim.peer_ids(0).await.contains(&honest_id));
    println!(
        "sybil: {} identities from 127.0.0.1 took {most} of the victim's inbound slots \
         (bound {limit}, reached after {filled:?}; {total} peers in all, of 50); the junk \
         publisher was banned {time_to_ban:?} after its first junk message, and a fresh \
         identity from 127.0.0.1 was refused afterwards",
        IDENTITIES + 2
    );

    fresh.stop().await;
    sybil.stop().await;
    junk.stop().await;
    honest.stop().await;
    victim.stop().await;
}
