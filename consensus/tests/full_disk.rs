//! A full disk under the chain: a block is connected in memory, the disk fills before sled
//! writes it, the next write that must reach the disk fails, and once space returns
//! `Chain::reopen_store` must find every block the chain had connected (sled writes what it
//! still holds when the failed database is closed), with a store whose accounts match the
//! blocks and that takes new blocks. The store sits on a small tmpfs (root only; skipped with
//! a message elsewhere).
//!
//! Run: `cargo test -p peerchain-consensus --test full_disk -- --nocapture` (as root).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests: the crate's no-panic lints are for consensus code"
)]

mod common;

use common::{Forest, assert_state_matches, easy_genesis, now};
use peerchain_consensus::{Chain, ChainConfig, Verdict};
use peerchain_ledger::{Store, StoreConfig};
use peerchain_testkit::{Tmpfs, fill_disk};

#[test]
fn blocks_connected_after_the_last_write_that_reached_the_disk_survive_a_reopen() {
    let Some(fs) = Tmpfs::mount("24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let g = easy_genesis();
    let mut config = StoreConfig::new(fs.path().join("db"));
    config.cache_mb = 4;
    config.sync_every_block = false; // as a node runs: sled flushes in the background
    let store = Store::open(&config, &g).expect("open");
    let mut chain = Chain::open(store, g.clone(), ChainConfig::default()).expect("chain");
    let mut forest = Forest::new(&g);
    let mut tip = g.hash();
    for salt in 0..5 {
        let block = forest.child(&tip, 20, salt);
        tip = block.hash();
        let verdicts = chain.import(block, None, now(&g)).expect("room");
        assert_eq!(verdicts[0].verdict, Verdict::Accepted { on_main: true });
    }
    chain.probe_store().expect("the disk takes writes");

    // A block connected in memory (sled writes it within its flush interval), then the disk
    // fills before it is written: the next write that must reach the disk fails. Blocks go
    // on until one does (sled may have written some already).
    let filler = fs.path().join("filler");
    let mut filled = 0;
    let mut salt = 100;
    let failure = loop {
        salt += 1;
        assert!(salt < 10_000, "the disk never filled up");
        // Larger than what a nearly full tmpfs still takes in its last pages.
        let block = forest.child(&tip, 200, salt);
        match chain.import(block.clone(), None, now(&g)) {
            Ok(_) if chain.tip() == block.hash() => tip = block.hash(),
            Ok(v) => panic!("not connected: {v:?}"),
            Err(e) => break e,
        }
        if filled == 0 {
            filled = fill_disk(&filler);
            // sled's own flusher (every 500 ms) meets the full disk first.
            std::thread::sleep(std::time::Duration::from_millis(1200));
        }
        if let Err(e) = chain.probe_store() {
            break e;
        }
    };
    let height_before = chain.tip_header().height;
    eprintln!(
        "filled {} MiB; connected up to height {height_before}, then: {failure}",
        filled >> 20
    );

    std::fs::remove_file(&filler).expect("free the space");
    chain.reopen_store(now(&g)).expect("reopen");
    assert_eq!(
        chain.tip(),
        tip,
        "every block connected before the failure is on the main chain again (height {height_before}, now {})",
        chain.tip_header().height
    );
    // The state matches the blocks: every account as the builder computed it.
    assert_state_matches(&chain, &forest);
    // And the chain writes again.
    let next = forest.child(&tip, 20, 9_999);
    chain
        .import(next.clone(), None, now(&g))
        .expect("writes again");
    assert_eq!(chain.tip(), next.hash());
}
