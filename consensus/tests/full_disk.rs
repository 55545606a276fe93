//! A full disk under the chain: a block is connected in memory, the disk fills before sled
//! writes it, the next write that must reach the disk fails, and once space returns
//! `Chain::reopen_store` must find every block the chain had connected (sled writes what it
//! still holds when the failed database is closed), with a store whose accounts match the
//! blocks and that takes new blocks. The store sits on a small tmpfs (root only; skipped with
//! a message elsewhere).
//!
//! A second test makes the loss happen without a full disk, on any machine: the store's
//! directory is put back as it was at the last write that reached the disk (as a failed write
//! buffer leaves it), and the chain must import the blocks it connected after that again.
//!
//! Run: `cargo test -p peerchain-consensus --test full_disk -- --nocapture` (the first test
//! as root).

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
use peerchain_ledger::{Genesis, Hash, Store, StoreConfig};
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

/// A chain on a store at `path`, opened as a node opens it (sled flushes in the background).
fn chain_on_disk(g: &Genesis, path: &std::path::Path) -> Chain {
    let mut config = StoreConfig::new(path);
    config.sync_every_block = false;
    let store = Store::open(&config, g).expect("open");
    Chain::open(store, g.clone(), ChainConfig::default()).expect("chain")
}

/// Imports a child of `tip` with 20 transfers (`salt` makes it unique); it becomes the tip.
fn connect_child(chain: &mut Chain, forest: &mut Forest, g: &Genesis, tip: &mut Hash, salt: u64) {
    let block = forest.child(tip, 20, salt);
    *tip = block.hash();
    chain.import(block, None, now(g)).expect("import");
    assert_eq!(chain.tip(), *tip);
}

/// Copies the directory `from` to `to`, files and subdirectories.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

#[test]
fn blocks_the_reopened_store_lost_are_imported_again() {
    let g = easy_genesis();
    let work = tempfile::tempdir().expect("tempdir");
    let path = work.path().join("db");
    let mut chain = chain_on_disk(&g, &path);
    let mut forest = Forest::new(&g);
    let mut tip = g.hash();
    let mut connect = |chain: &mut Chain, tip: &mut Hash, salt: u64| {
        connect_child(chain, &mut forest, &g, tip, salt);
    };
    for salt in 0..3 {
        connect(&mut chain, &mut tip, salt);
    }
    // A write reaches the disk: everything so far is durable. The disk as it is now is what a
    // failed write buffer would leave.
    chain.probe_store().expect("probe");
    let durable = work.path().join("durable");
    copy_dir(&path, &durable);
    let durable_tip = tip;
    for salt in 3..6 {
        connect(&mut chain, &mut tip, salt);
    }
    // The store loses the last three blocks: its directory goes back to the durable copy (the
    // open database keeps writing to the files moved aside).
    std::fs::rename(&path, work.path().join("lost")).expect("move aside");
    copy_dir(&durable, &path);

    chain.reopen_store(now(&g)).expect("reopen");
    assert_ne!(durable_tip, tip);
    assert_eq!(
        chain.tip(),
        tip,
        "the three blocks connected after the durable point are on the main chain again"
    );
    assert_eq!(chain.tip_header().height, 6);
    assert_state_matches(&chain, &forest);
}

/// The node probes the disk on another thread (`BackgroundWrites::probe_write`): a probe
/// that succeeds makes durable the blocks connected before its mark was taken, and the
/// blocks connected while it ran stay kept, so a store that loses them gets them again.
#[test]
fn a_probe_on_another_thread_releases_only_the_blocks_connected_before_its_mark() {
    let g = easy_genesis();
    let work = tempfile::tempdir().expect("tempdir");
    let path = work.path().join("db");
    let mut chain = chain_on_disk(&g, &path);
    let mut forest = Forest::new(&g);
    let mut tip = g.hash();
    let mut connect = |chain: &mut Chain, tip: &mut Hash, salt: u64| {
        connect_child(chain, &mut forest, &g, tip, salt);
    };
    for salt in 0..3 {
        connect(&mut chain, &mut tip, salt);
    }
    assert_eq!(chain.kept_for_reopen(), 3);
    let mark = chain.durable_mark();
    let writes = chain.background_writes();
    std::thread::spawn(move || writes.probe_write())
        .join()
        .expect("the probe thread")
        .expect("the disk takes writes");
    let durable = work.path().join("durable");
    copy_dir(&path, &durable);
    // Blocks connected before the probe's result is taken.
    for salt in 3..5 {
        connect(&mut chain, &mut tip, salt);
    }
    chain.blocks_durable(mark);
    assert_eq!(
        chain.kept_for_reopen(),
        2,
        "the blocks before the mark are durable, the later ones kept"
    );
    chain.blocks_durable(mark);
    assert_eq!(chain.kept_for_reopen(), 2, "a mark releases once");

    // The store loses what was written after the probe: the two later blocks come back.
    std::fs::rename(&path, work.path().join("lost")).expect("move aside");
    copy_dir(&durable, &path);
    chain.reopen_store(now(&g)).expect("reopen");
    assert_eq!(
        chain.tip(),
        tip,
        "the two later blocks are on the main chain again"
    );
    assert_eq!(chain.tip_header().height, 5);
    assert_state_matches(&chain, &forest);
}
