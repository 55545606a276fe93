//! Hostile peers, defect 1: a sync round never ends while the peer keeps answering.
//!
//! The staller is a raw network instance in `Adversary::StallSync` mode: it claims an
//! enormous chain in its status handshake and answers every `GetHeaders` with headers the
//! requester already holds (the requester's own tip, fetched from the requester itself).
//! Before the fix the requester's round looped on its own tip forever (paced requests, never
//! an end, never the "served less work than it claimed" penalty), so a node that was behind
//! never synced from anyone else. Now the second answer without progress ends the round at
//! the staller's fault, its lie is penalised too (ban), and the round moves to an honest peer.
//!
//! The silent variant (`Adversary::StallSilent`) never answers at all. Before the fix its
//! round ended only when the request timed out (20 points, no lie penalty, a 30 s cooldown,
//! then the same again): it was never banned. Now the progress timeout (15 s of waiting
//! without anything new) ends the round first, as a stall plus a lie: banned at once.

mod adversary_support;

use std::time::{Duration, Instant};

use adversary_support::{Raw, dial, tip, wait_for};
use peerchain_network::Adversary;
use peerchain_tests::{NodeOptions, TestNet, easy_genesis};

/// Runs the scenario against a staller in `mode`: the node behind (real node, 5 blocks)
/// meets the staller first, then dials an honest peer (real node, 30 blocks of its own).
/// Returns (staller banned after its start, node caught up after dialling the honest peer).
async fn behind_node_meets(mode: Adversary, within: Duration) -> (Duration, Duration) {
    let g = easy_genesis();
    let behind = TestNet::start(1, g.clone(), NodeOptions::default())
        .await
        .expect("node starts");
    behind.mine(0, 5).await.expect("mined");
    let behind_id = behind.nodes[0].peer_id.clone();

    // The staller connects first and claims the most work: the node syncs from it first.
    let started = Instant::now();
    let staller = Raw::start(&g, vec![behind.nodes[0].p2p.clone()], 4, Some(mode.clone())).await;
    wait_for("the staller's handshake", 20, async || {
        staller.met(&behind_id)
    })
    .await;

    // An honest peer with a heavier chain of its own, dialled by the node behind while the
    // staller is (or was) connected.
    let ahead = TestNet::start(1, g.clone(), NodeOptions::default())
        .await
        .expect("node starts");
    ahead.mine(0, 30).await.expect("mined");
    let (ahead_tip, ahead_height) = tip(&ahead, 0).await;
    assert_eq!(ahead_height, 30);
    dial(&behind, 0, &ahead.nodes[0].p2p).await;

    // The node behind catches up with the honest peer, and the staller is penalised and
    // banned (dropped). Record when each happened.
    let dialled = Instant::now();
    let (mut caught_up, mut dropped) = (None, None);
    while caught_up.is_none() || dropped.is_none() {
        assert!(
            dialled.elapsed() < within,
            "{mode}: after {within:?}: caught up {caught_up:?}, staller dropped {dropped:?} \
             (height {})",
            tip(&behind, 0).await.1
        );
        if caught_up.is_none() && tip(&behind, 0).await.0 == ahead_tip {
            caught_up = Some(dialled.elapsed());
        }
        if dropped.is_none() && !behind.peer_ids(0).await.contains(&staller.peer_id) {
            dropped = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Its redials are refused.
    staller
        .net
        .dial(&behind.nodes[0].p2p)
        .await
        .expect("dial starts");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !behind.peer_ids(0).await.contains(&staller.peer_id),
        "{mode}: the banned staller was let back in"
    );
    assert!(staller.net.peers().await.is_empty());
    // The honest peer is still connected (the ban covers the staller's address for inbound
    // connections only: the node dialled the honest peer itself).
    assert!(behind.peer_ids(0).await.contains(&ahead.nodes[0].peer_id));
    assert_eq!(tip(&behind, 0).await.1, 30);

    staller.stop().await;
    ahead.stop().await;
    behind.stop().await;
    (dropped.unwrap_or_default(), caught_up.unwrap_or_default())
}

/// Defect 1: the staller answering with the requester's own tip is cut off at its second
/// such answer and banned (its lie counted); the node catches up with the honest peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_node_catches_up_while_a_staller_loops_on_its_tip_and_the_staller_is_banned() {
    let (banned, caught_up) =
        behind_node_meets(Adversary::StallSync, Duration::from_secs(40)).await;
    println!(
        "stall-sync: staller banned {banned:?} after it started; the node behind caught up \
         {caught_up:?} after dialling the honest peer"
    );
}

/// Defect 1: a staller that never answers loses its round after the progress timeout (15 s)
/// and is banned; the node catches up with the honest peer meanwhile dialled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_node_catches_up_while_a_staller_never_answers_and_the_staller_is_banned() {
    let (banned, caught_up) =
        behind_node_meets(Adversary::StallSilent, Duration::from_secs(40)).await;
    println!(
        "stall-silent: staller banned {banned:?} after it started; the node behind caught up \
         {caught_up:?} after dialling the honest peer"
    );
}
