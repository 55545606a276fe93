//! Store tests: connect and disconnect chains, indexes, paging, reopen, wrong network.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests: the crate's no-panic lints are for consensus code"
)]

use peerchain_ledger::state::apply_block;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{
    AccountReader, Address, Block, BlockRecord, BlockStatus, Genesis, HistoryCursor, StateDigest,
    Store, StoreConfig, StoreError,
};
use proptest::prelude::*;

fn genesis() -> Genesis {
    Genesis::dev(8, 1_000_000_000, 2000)
}

fn record(block: &Block, seq: u64) -> BlockRecord {
    BlockRecord {
        header: block.header.clone(),
        total_work: block.header.target.work() * (block.header.height + 1),
        status: BlockStatus::Valid,
        seq,
    }
}

fn connect(store: &Store, genesis: &Genesis, block: &Block) -> StateDigest {
    let delta = apply_block(store, genesis, block).expect("valid block");
    store
        .put_block(block, &record(block, block.header.height))
        .expect("put");
    store.connect_block(block, &delta).expect("connect")
}

#[test]
fn connect_disconnect_restores_state_and_indexes() {
    let g = genesis();
    let store = Store::temporary(&g).expect("open");
    let genesis_digest = store.digest_of(&g.hash()).expect("read").expect("digest");
    let mut b = ChainBuilder::new(g.clone(), 8);
    let blocks: Vec<Block> = (0..5).map(|i| b.push_transfers(20, i)).collect();
    for block in &blocks {
        connect(&store, &g, block);
    }
    store
        .verify_consistency(&g)
        .expect("consistent after connect");
    assert_eq!(store.tip().expect("tip"), blocks[4].hash());
    let first_tx = blocks[2].transactions[3].clone();
    let (tx, loc) = store
        .transaction(&first_tx.txid())
        .expect("read")
        .expect("indexed");
    assert_eq!(tx, first_tx);
    assert_eq!(
        (loc.height, loc.index, loc.block_hash),
        (3, 3, blocks[2].hash())
    );
    for block in blocks.iter().rev() {
        let (gone, _) = store.disconnect_tip().expect("disconnect");
        assert_eq!(gone.hash(), block.hash());
        store
            .verify_consistency(&g)
            .expect("consistent after each disconnect");
    }
    assert_eq!(store.tip().expect("tip"), g.hash());
    assert!(store.tx_location(&first_tx.txid()).expect("read").is_none());
    for (address, account) in g.state() {
        assert_eq!(store.account(&address).expect("read"), account);
    }
    assert_eq!(
        store.digest_of(&g.hash()).expect("read"),
        Some(genesis_digest)
    );
    assert!(matches!(
        store.disconnect_tip(),
        Err(StoreError::NotAtTip { .. })
    ));
}

#[test]
fn connect_refuses_a_block_not_on_the_tip() {
    let g = genesis();
    let store = Store::temporary(&g).expect("open");
    let mut b = ChainBuilder::new(g.clone(), 8);
    let _skipped = b.push_transfers(1, 0);
    let orphan = b.push_transfers(1, 1);
    assert!(matches!(
        store.connect_block(&orphan, &peerchain_ledger::BlockDelta::default()),
        Err(StoreError::NotAtTip { .. })
    ));
}

#[test]
fn connect_with_txids_refuses_txids_that_are_not_the_blocks() {
    let g = genesis();
    let store = Store::temporary(&g).expect("open");
    let mut b = ChainBuilder::new(g.clone(), 8);
    let block = b.push_transfers(3, 0);
    let delta = apply_block(&store, &g, &block).expect("valid block");
    store.put_block(&block, &record(&block, 1)).expect("put");
    let txids = block.txids();
    assert!(matches!(
        store.connect_block_with_txids(&block, &txids[..2], &delta),
        Err(StoreError::TxidsMismatch {
            transactions: 3,
            txids: 2,
            ..
        })
    ));
    assert_eq!(store.tip().expect("tip"), g.hash(), "nothing connected");
    store
        .connect_block_with_txids(&block, &txids, &delta)
        .expect("connect");
    for (i, txid) in txids.iter().enumerate() {
        let at = store.tx_location(txid).expect("read").expect("indexed");
        assert_eq!((at.height, at.index as usize), (1, i));
    }
}

#[test]
fn history_pages_newest_first_without_gaps() {
    let g = genesis();
    let store = Store::temporary(&g).expect("open");
    let mut b = ChainBuilder::new(g.clone(), 8);
    for i in 0..30 {
        let block = b.push_transfers(16, i);
        connect(&store, &g, &block);
    }
    let who = b.keys[0].address();
    let total = store.tx_count(&who).expect("count");
    assert!(total > 50, "dev 0 should have many transfers, has {total}");
    let mut seen = Vec::new();
    let mut cursor: Option<HistoryCursor> = None;
    loop {
        let (page, next) = store.history(&who, cursor, 7).expect("page");
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|(c, txid)| (*c, *txid)));
        match next {
            Some(c) => {
                let text = c.to_text();
                cursor = Some(HistoryCursor::from_text(&text).expect("round trip"));
            }
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, total);
    assert!(
        seen.windows(2).all(|w| w[0].0 > w[1].0),
        "strictly newest first"
    );
    for (_, txid) in &seen {
        let (tx, _) = store.transaction(txid).expect("read").expect("confirmed");
        assert!(tx.sender() == who || tx.to == who);
    }
}

#[test]
fn reopen_keeps_tip_and_refuses_another_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let tip = {
        let store = Store::open(&cfg, &g).expect("open");
        for i in 0..3 {
            connect(&store, &g, &b.push_transfers(5, i));
        }
        store
            .save_mempool(&b.transfers(4, 99))
            .expect("save mempool");
        store.tip().expect("tip")
    };
    let store = Store::open(&cfg, &g).expect("reopen");
    assert_eq!(store.tip().expect("tip"), tip);
    assert_eq!(store.load_mempool().expect("load").len(), 4);
    store.verify_consistency(&g).expect("consistent");
    drop(store);
    let mut other = g.clone();
    other.chain_id += 1;
    match Store::open(&cfg, &other) {
        Err(StoreError::WrongNetwork { stored, expected }) => {
            assert_eq!(stored, g.hash());
            assert_eq!(expected, other.hash());
        }
        other => panic!("expected WrongNetwork, got {other:?}"),
    }
}

#[test]
fn self_transfer_pays_only_the_fee_and_indexes_once() {
    let g = genesis();
    let store = Store::temporary(&g).expect("open");
    let mut b = ChainBuilder::new(g.clone(), 2);
    let k = b.keys[0].clone();
    let tx = k.sign_transfer(g.chain_id, k.address(), 500, 3, 0);
    let before = store.account(&k.address()).expect("read").balance;
    let block = b.push(vec![tx], Address([9; 20]));
    connect(&store, &g, &block);
    assert_eq!(
        store.account(&k.address()).expect("read").balance,
        before - 3
    );
    assert_eq!(store.tx_count(&k.address()).expect("count"), 1);
    store.verify_consistency(&g).expect("consistent");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Applying then reverting any random block sequence restores the identical state and digest.
    #[test]
    fn apply_then_revert_restores_state(sizes in proptest::collection::vec(0usize..12, 1..10), seed in 0u64..1000) {
        let g = genesis();
        let store = Store::temporary(&g).expect("open");
        let mut b = ChainBuilder::new(g.clone(), 5);
        let mut digests = vec![store.digest_of(&g.hash()).expect("read").expect("digest")];
        let mut snapshots = vec![b.state.clone()];
        for (i, n) in sizes.iter().enumerate() {
            let block = b.push_transfers(*n, seed + i as u64);
            digests.push(connect(&store, &g, &block));
            snapshots.push(b.state.clone());
            prop_assert_eq!(digests.last().copied(), Some(StateDigest::of(&b.state)));
        }
        for i in (0..sizes.len()).rev() {
            store.disconnect_tip().expect("disconnect");
            let tip = store.tip().expect("tip");
            prop_assert_eq!(store.digest_of(&tip).expect("read"), Some(digests[i]));
            for (address, account) in &snapshots[i] {
                prop_assert_eq!(store.account(address).expect("read"), *account);
            }
            store
                .verify_consistency(&g)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
}

/// A store dropped in this process keeps its file lock until sled's flusher thread notices;
/// reopening at once failed with "could not acquire lock" (seen as a flaky restart in
/// `consensus/tests/chain.rs`). `Store::open` now waits for it, up to 2 s.
#[test]
fn reopening_waits_for_a_store_being_dropped() {
    let g = genesis();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = StoreConfig::new(dir.path().join("db"));
    let held = Store::open(&cfg, &g).expect("open");
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    let reopened = Store::open(&cfg, &g);
    dropper.join().expect("dropper");
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}

/// Every history page of `who`, walked with the cursor.
fn whole_history(store: &Store, who: &Address) -> Vec<(HistoryCursor, peerchain_ledger::Hash)> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.history(who, cursor, 5).expect("page");
        seen.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

/// Store format 2 (one history row per address and block) upgrades a format-1 store, whose
/// history held one row per address and transaction, when it is opened: the same pages, a
/// consistent store, and the format recorded. A store of a newer format is refused.
#[test]
fn a_format_1_store_is_upgraded_when_opened_and_a_newer_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let who: Vec<Address> = b.keys.iter().map(|k| k.address()).collect();
    let before: Vec<_> = {
        let store = Store::open(&cfg, &g).expect("open");
        for i in 0..6 {
            connect(&store, &g, &b.push_transfers(24, i));
        }
        who.iter().map(|a| whole_history(&store, a)).collect()
    };
    assert!(
        before.iter().all(|h| h.len() > 10),
        "a history to page through"
    );
    rewrite_as_format(&cfg, 1, |db| {
        let history = db.open_tree("history").expect("tree");
        let rows: Vec<_> = history.iter().map(|kv| kv.expect("row")).collect();
        for (key, row) in rows {
            history.remove(&key).expect("remove");
            for entry in row.chunks(36) {
                let mut v1_key = key.to_vec();
                v1_key.extend_from_slice(&entry[..4]);
                history.insert(v1_key, &entry[4..]).expect("insert");
            }
        }
    });
    {
        let store = Store::open(&cfg, &g).expect("reopen upgrades");
        store
            .verify_consistency(&g)
            .expect("consistent after the upgrade");
        let after: Vec<_> = who.iter().map(|a| whole_history(&store, a)).collect();
        assert_eq!(after, before, "the same history, page by page");
    }
    rewrite_as_format(&cfg, 4, |_| {});
    match Store::open(&cfg, &g) {
        Err(StoreError::NewerFormat {
            stored: 4,
            supported: 3,
        }) => {}
        other => panic!("a format-4 store must be refused: {other:?}"),
    }
}

/// Store format 3 keeps block bodies in block files; a format-2 store kept them in the
/// `blocks` tree. Opening one moves them, also when a process killed in the middle of the
/// move left some moved and some not (here: the even heights still inline). Every block reads
/// back as it was, from the files, and new blocks follow.
#[test]
fn a_format_2_store_has_its_bodies_moved_to_block_files_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let bodies: Vec<_> = {
        let store = Store::open(&cfg, &g).expect("open");
        for i in 0..6 {
            connect(&store, &g, &b.push_transfers(24, i));
        }
        (0..=6)
            .map(|h| {
                let hash = store.main_hash(h).expect("read").expect("main");
                let body = store.block_bytes(&hash).expect("read").expect("stored");
                (hash, body)
            })
            .collect()
    };
    rewrite_as_format(&cfg, 2, |db| {
        let blocks = db.open_tree("blocks").expect("tree");
        for (hash, body) in bodies.iter().step_by(2) {
            blocks.insert(hash.0, body.as_slice()).expect("inline body");
        }
    });
    let files_before = block_files_len(&cfg);
    {
        let store = Store::open(&cfg, &g).expect("reopen upgrades");
        for (hash, body) in &bodies {
            assert_eq!(store.block_bytes(hash).expect("read").as_ref(), Some(body));
        }
        store
            .verify_consistency(&g)
            .expect("consistent after the upgrade");
        connect(&store, &g, &b.push_transfers(24, 7));
    }
    let moved: usize = bodies.iter().step_by(2).map(|(_, body)| body.len()).sum();
    assert!(
        block_files_len(&cfg) > files_before + moved as u64,
        "the inline bodies and the new block were written to the block files"
    );
    let raw = open_raw(&cfg);
    let blocks = raw.open_tree("blocks").expect("tree");
    assert!(
        blocks.iter().all(|kv| kv.expect("entry").1.len() < 100),
        "no body is left in the tree"
    );
    let format = raw
        .open_tree("meta")
        .expect("meta")
        .get(b"format")
        .expect("read");
    assert_eq!(format.as_deref(), Some(&3u64.to_le_bytes()[..]));
}

/// A location that names another block's body (only a damaged store has one: its CRC matches,
/// the bytes are sound) is refused as damaged, never read as the block asked for; the store
/// still opens (its txindex catch-up, which reads the newest blocks, skips the damaged one,
/// whose transactions are then not found by txid).
#[test]
fn a_location_naming_another_blocks_body_is_damaged_not_that_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let (first, second, first_txid) = {
        let store = Store::open(&cfg, &g).expect("open");
        let first = b.push_transfers(5, 0);
        let second = b.push_transfers(5, 1);
        connect(&store, &g, &first);
        connect(&store, &g, &second);
        (first.hash(), second.hash(), first.transactions[0].txid())
    };
    {
        let db = open_raw(&cfg);
        let blocks = db.open_tree("blocks").expect("tree");
        let at_second = blocks.get(second.0).expect("read").expect("stored");
        blocks.insert(first.0, at_second).expect("point elsewhere");
        db.flush().expect("flush");
    }
    let store = Store::open(&cfg, &g).expect("reopen");
    match store.block(&first) {
        Err(StoreError::DamagedBody { hash, reason, .. }) => {
            assert_eq!(hash, first);
            assert_eq!(reason, "the bytes are another block");
        }
        other => panic!("must be damaged: {other:?}"),
    }
    assert!(
        matches!(
            store.block_bytes(&first),
            Err(StoreError::DamagedBody { .. })
        ),
        "the bytes a peer would be sent are refused too"
    );
    let second_block = store.block(&second).expect("read").expect("stored");
    assert_eq!(second_block.hash(), second);
    // The catch-up at the reopen indexed the sound block and skipped the damaged one.
    let (_, at) = store
        .transaction(&second_block.transactions[0].txid())
        .expect("read")
        .expect("indexed");
    assert_eq!(at.block_hash, second);
    assert_eq!(store.tx_location(&first_txid).expect("read"), None);
}

/// A reopen that failed (here: the block files' directory cannot be opened) leaves no
/// database open; a later reopen, once the cause is gone, must still open the store.
#[test]
fn a_reopen_after_a_failed_reopen_opens_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let store = Store::open(&cfg, &g).expect("open");
    let block = b.push_transfers(5, 0);
    connect(&store, &g, &block);
    store.flush().expect("flush");
    let bodies = cfg.path.join("bodies");
    let aside = dir.path().join("bodies-aside");
    std::fs::rename(&bodies, &aside).expect("move the block files aside");
    std::fs::write(&bodies, b"not a directory").expect("block the path");
    assert!(store.reopen().is_err(), "the block files cannot be opened");
    std::fs::remove_file(&bodies).expect("unblock the path");
    std::fs::rename(&aside, &bodies).expect("put the block files back");
    store.reopen().expect("the second reopen opens the store");
    assert_eq!(store.tip().expect("tip"), block.hash());
    assert_eq!(
        store.block(&block.hash()).expect("read").expect("stored"),
        block
    );
}

/// The bytes in the store's block files.
fn block_files_len(cfg: &StoreConfig) -> u64 {
    std::fs::read_dir(cfg.path.join("bodies"))
        .expect("the block files")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// Opens the store's sled database directly, lets `change` rewrite it, and records `format`.
fn rewrite_as_format(cfg: &StoreConfig, format: u64, change: impl FnOnce(&sled::Db)) {
    let db = open_raw(cfg);
    change(&db);
    db.open_tree("meta")
        .expect("meta")
        .insert(b"format", &format.to_le_bytes())
        .expect("format");
    db.flush().expect("flush");
}

/// The raw database, once the store's file lock is released (sled's flusher lets go within
/// its 500 ms interval).
fn open_raw(cfg: &StoreConfig) -> sled::Db {
    for _ in 0..100 {
        if let Ok(db) = sled::Config::new().path(&cfg.path).open() {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the store's lock was never released");
}

/// The txindex entries of a connected block are written after its commit: readers find them
/// before that, a disconnect writes them first, and a store closed before the write (as by a
/// kill) indexes the missing blocks when it is opened again.
#[test]
fn txindex_entries_written_after_the_commit_are_never_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let blocks: Vec<Block> = (0..4).map(|i| b.push_transfers(12, i)).collect();
    let located = |store: &Store, block: &Block| {
        block.transactions.iter().enumerate().all(|(i, tx)| {
            store
                .tx_location(&tx.txid())
                .expect("read")
                .map(|l| (l.block_hash, l.index))
                == Some((block.hash(), i as u32))
        })
    };
    {
        let store = Store::open(&cfg, &g).expect("open");
        connect(&store, &g, &blocks[0]);
        assert!(
            located(&store, &blocks[0]),
            "pending entries are read through"
        );
        assert_eq!(store.write_txindex().expect("write"), 12);
        assert_eq!(store.write_txindex().expect("write"), 0, "nothing left");
        for block in &blocks[1..] {
            connect(&store, &g, block);
        }
        // A disconnect writes what is pending, then removes the tip's entries.
        store.disconnect_tip().expect("disconnect");
        assert!(!located(&store, &blocks[3]));
        assert!(located(&store, &blocks[2]));
        connect(&store, &g, &blocks[3]);
        store
            .verify_consistency(&g)
            .expect("consistent with entries pending");
        // Dropped without writing blocks[3]'s entries: as a process killed before the write.
    }
    let store = Store::open(&cfg, &g).expect("reopen");
    assert!(blocks.iter().all(|block| located(&store, block)));
    assert_eq!(
        store.write_txindex().expect("write"),
        0,
        "caught up at open"
    );
    store
        .verify_consistency(&g)
        .expect("consistent after the catch-up");
}

/// The txindex written from another thread (`BackgroundWrites`, the node's `store-writer`)
/// while the chain disconnects and reconnects blocks: a write and a disconnect never
/// interleave, so the tree never keeps the entries of a block taken off the main chain, nor
/// the record a name off it. Without the writer lock the writer re-inserts a disconnected
/// block's entries after the disconnect removed them.
#[test]
fn background_txindex_writes_and_disconnects_leave_the_index_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let g = genesis();
    let cfg = StoreConfig::new(dir.path().join("db"));
    let mut b = ChainBuilder::new(g.clone(), 8);
    let blocks: Vec<Block> = (0..4).map(|i| b.push_transfers(300, i)).collect();
    {
        let store = Store::open(&cfg, &g).expect("open");
        let writes = store.background_writes();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut written = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    written += writes.write_txindex().expect("background write");
                }
                written
            })
        };
        for _ in 0..15 {
            for block in &blocks {
                connect(&store, &g, block);
            }
            for _ in &blocks[1..] {
                store.disconnect_tip().expect("disconnect");
            }
            store
                .verify_consistency(&g)
                .expect("no entries of disconnected blocks");
            for _ in &blocks[..1] {
                store.disconnect_tip().expect("disconnect");
            }
        }
        for block in &blocks[..2] {
            connect(&store, &g, block);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().expect("writer");
        assert!(written > 0, "the writer took part");
        // What the writer had not reached when it stopped.
        store.background_writes().write_txindex().expect("write");
        store.verify_consistency(&g).expect("consistent");
        assert_eq!(store.background_writes().txindex_pending(), 0);
    }
    let store = Store::open(&cfg, &g).expect("reopen");
    store
        .verify_consistency(&g)
        .expect("consistent after reopen");
    let last = blocks[1].transactions.last().expect("transfers").txid();
    assert_eq!(
        store.tx_location(&last).expect("read").map(|l| l.height),
        Some(2)
    );
}
