//! A full disk: the store on a small tmpfs (root only; skipped with a message elsewhere)
//! fills up while blocks are connected. The failure is reported as `StoreError::DiskFull`,
//! reads keep working, sled keeps refusing writes after space returns until the store is
//! reopened, and the reopened store (seen through a reader taken before) is consistent and
//! takes new blocks.
//!
//! Run: `cargo test -p peerchain-ledger --test full_disk -- --nocapture` (as root).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::arithmetic_side_effects,
    reason = "tests: the crate's no-panic lints are for consensus code"
)]

use std::path::PathBuf;

use peerchain_ledger::testkit::connect_transfer_block;
use peerchain_ledger::{Genesis, Store, StoreConfig, StoreError};
use peerchain_testkit::{Tmpfs, fill_disk};

const ACCOUNTS: u32 = 6;

#[test]
fn a_full_disk_is_reported_reads_go_on_and_a_reopen_recovers() {
    let Some(fs) = Tmpfs::mount("24m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let g = Genesis::dev(ACCOUNTS, 1_000_000_000, 2000);
    let mut config = StoreConfig::new(fs.path().join("db"));
    config.cache_mb = 4;
    config.sync_every_block = false; // sled's own background flushes: the hardest case
    let store = Store::open(&config, &g).expect("open");
    let reader = store.reader();
    for salt in 0..20 {
        connect_transfer_block(&store, &g, ACCOUNTS, 20, salt).expect("room for blocks");
    }
    let filler: PathBuf = fs.path().join("filler");
    let filled = fill_disk(&filler);
    let mut salt = 100;
    let error = loop {
        salt += 1;
        match connect_transfer_block(&store, &g, ACCOUNTS, 20, salt) {
            Ok(_) => assert!(salt < 100_000, "the disk never filled up"),
            Err(e) => break e,
        }
        // sled writes in the background: flush so that the disk is touched now.
        if let Err(e) = store.flush() {
            break e;
        }
    };
    eprintln!(
        "filled {} MiB; the store failed with: {error}",
        filled >> 20
    );
    assert!(matches!(error, StoreError::DiskFull(_)), "{error:?}");
    assert!(error.is_io(), "a full disk is no verdict on data");
    let height = reader.tip_record().expect("reads go on").header.height;
    assert!(height >= 20);

    std::fs::remove_file(&filler).expect("free the space");
    let sticky = connect_transfer_block(&store, &g, ACCOUNTS, 20, salt + 1)
        .err()
        .or_else(|| store.flush().err());
    eprintln!("a write after space returned, before the reopen: {sticky:?}");

    store.reopen().expect("reopen once space returned");
    reader
        .verify_consistency(&g)
        .expect("the reopened store is consistent");
    let reopened = reader
        .tip_record()
        .expect("read after reopen")
        .header
        .height;
    // As after a crash, blocks sled had not written yet are gone; nothing else.
    assert!(reopened <= height + 1, "{reopened} vs {height}");
    for s in 0..5 {
        connect_transfer_block(&store, &g, ACCOUNTS, 20, salt + 10 + s).expect("writes again");
    }
    store.flush().expect("flush");
    reader.verify_consistency(&g).expect("consistent");
    eprintln!(
        "tip {height} when the disk filled, {reopened} after the reopen, {} after 5 more blocks",
        reader.tip_record().expect("tip").header.height
    );
}
