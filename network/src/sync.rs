//! Block sync helpers over the store: block locators, serving headers and blocks (the
//! responder side), and the checks on downloaded headers. The state machine that drives a
//! round lives in [`crate::sync_round`].
//!
//! Everything here is synchronous, reads the store only through its read API and never
//! writes it; the service runs the serving functions on the blocking pool.

use peerchain_ledger::{
    BlockHeader, EncodedBlock, Hash, StoreError, StoreReader, Transaction, U256,
};

use crate::config::{MAX_HEADERS, MAX_LOCATOR, SYNC_RESPONSE_SOFT_BYTES};

/// Heights of a block locator for a main chain of height `tip`: the last ten, then
/// exponentially spaced, then genesis.
pub(crate) fn locator_heights(tip: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut height = tip;
    let mut step = 1u64;
    loop {
        out.push(height);
        if height == 0 || out.len() >= MAX_LOCATOR - 1 {
            break;
        }
        if out.len() >= 10 {
            step = step.saturating_mul(2);
        }
        height = height.saturating_sub(step);
    }
    if out.last() != Some(&0) {
        out.push(0);
    }
    out
}

/// A locator of the store's main chain with each entry's height and cumulative work.
pub(crate) fn build_locator(store: &StoreReader) -> Result<Vec<(Hash, u64, U256)>, StoreError> {
    let tip = store.tip_record()?;
    let mut out = Vec::new();
    for height in locator_heights(tip.header.height) {
        // The main chain may be moving under us (a reorg in progress): skip what is gone.
        let Some(hash) = store.main_hash(height)? else {
            continue;
        };
        let Some(record) = store.record(&hash)? else {
            continue;
        };
        out.push((hash, height, record.total_work));
    }
    Ok(out)
}

/// Whether `hash` is on the store's main chain; returns its height.
fn main_height(store: &StoreReader, hash: &Hash) -> Result<Option<u64>, StoreError> {
    let Some(record) = store.record(hash)? else {
        return Ok(None);
    };
    let height = record.header.height;
    Ok((store.main_hash(height)? == Some(*hash)).then_some(height))
}

/// Main-chain headers after the first locator hash on our main chain, at most `max`
/// (capped at [`MAX_HEADERS`]). The list is cut at the first break in linkage, so a reorg
/// during the read never produces an unlinked answer.
pub(crate) fn serve_headers(
    store: &StoreReader,
    locator: &[Hash],
    max: u32,
) -> Result<Vec<BlockHeader>, StoreError> {
    let mut start = None;
    for hash in locator {
        if let Some(height) = main_height(store, hash)? {
            start = Some((*hash, height));
            break;
        }
    }
    let Some((mut prev, height)) = start else {
        return Ok(Vec::new());
    };
    let max = (max as usize).min(MAX_HEADERS);
    let mut out = Vec::with_capacity(max.min(64));
    let mut h = height;
    while out.len() < max {
        h = h.saturating_add(1);
        let Some(hash) = store.main_hash(h)? else {
            break;
        };
        let Some(record) = store.record(&hash)? else {
            break;
        };
        if record.header.prev_hash != prev {
            break;
        }
        prev = hash;
        out.push(record.header);
    }
    Ok(out)
}

/// Stored encodings of the requested blocks, in order, stopping at the first unknown one and
/// before passing `cap` bytes (at most [`SYNC_RESPONSE_SOFT_BYTES`]; always at least one block
/// when known).
pub(crate) fn serve_blocks(
    store: &StoreReader,
    hashes: &[Hash],
    cap: usize,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let cap = cap.min(SYNC_RESPONSE_SOFT_BYTES);
    let mut out = Vec::new();
    let mut total = 0usize;
    for hash in hashes {
        let Some(bytes) = store.block_bytes(hash)? else {
            break;
        };
        if !out.is_empty() && total.saturating_add(bytes.len()) > cap {
            break;
        }
        total = total.saturating_add(bytes.len());
        out.push(bytes);
    }
    Ok(out)
}

/// The transactions at `indexes` of the stored block `hash` (the answer to a `GetBlockTxs`):
/// none when the block is not stored, `None` when an index is past its end (a bad request).
/// Only the transactions asked for are decoded, where they sit in the stored encoding
/// ([`EncodedBlock`]): a request for one transfer of a 5,000-transfer block costs a copy of
/// the block's bytes, not the decoding of all 5,000.
pub(crate) fn serve_block_txs(
    store: &StoreReader,
    hash: &Hash,
    indexes: &[u32],
) -> Result<Option<Vec<Transaction>>, StoreError> {
    let Some(bytes) = store.block_bytes(hash)? else {
        return Ok(Some(Vec::new()));
    };
    let block = EncodedBlock::new(&bytes)?;
    let mut txs = Vec::with_capacity(indexes.len());
    for &i in indexes {
        match block.tx_at(i as usize)? {
            Some(tx) => txs.push(tx),
            None => return Ok(None),
        }
    }
    Ok(Some(txs))
}

/// The last header of a checked run: hash, height and cumulative work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Anchor {
    /// Hash.
    pub hash: Hash,
    /// Height.
    pub height: u64,
    /// Cumulative work through this block.
    pub work: U256,
}

/// Checks that `headers` link one after another from `parent`, have version 1 and meet their
/// own target. Returns their hashes and the last anchor.
pub(crate) fn check_headers(
    parent: Anchor,
    headers: &[BlockHeader],
) -> Result<(Vec<Hash>, Anchor), String> {
    let mut prev = parent;
    let mut hashes = Vec::with_capacity(headers.len());
    for header in headers {
        let hash = header.hash();
        if header.prev_hash != prev.hash {
            return Err(format!(
                "header {hash} at height {} does not link to {}",
                header.height, prev.hash
            ));
        }
        if header.height != prev.height.saturating_add(1) {
            return Err(format!(
                "header {hash} has height {} after height {}",
                header.height, prev.height
            ));
        }
        if header.version != 1 {
            return Err(format!("header {hash} has version {}", header.version));
        }
        if !header.target.is_met_by(&hash) {
            return Err(format!(
                "header {hash} does not meet its target {}",
                header.target
            ));
        }
        prev = Anchor {
            hash,
            height: header.height,
            work: prev.work.saturating_add(header.target.work()),
        };
        hashes.push(hash);
    }
    Ok((hashes, prev))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_consensus::{Chain, ChainConfig, build_template, solve};
    use peerchain_ledger::{Address, Block, Genesis, Store, Target};

    fn genesis() -> Genesis {
        let mut g = Genesis::dev(2, 1_000, 2000);
        g.timestamp_ms = 1_600_000_000_000;
        g.initial_target = Target(U256::MAX >> 1);
        g.pow_limit = Target(U256::MAX >> 1);
        g
    }

    /// A chain of `n` easy blocks; returns it with the main-chain hashes by height.
    fn chain(n: u64) -> (Chain, Vec<Hash>) {
        let g = genesis();
        let store = Store::temporary(&g).expect("store");
        let mut chain = Chain::open(store, g.clone(), ChainConfig::default()).expect("chain");
        let mut hashes = vec![g.hash()];
        for _ in 0..n {
            let ts = chain.tip_header().timestamp_ms + 2000;
            let block = solve(build_template(&chain, Address([1; 20]), ts).expect("template"))
                .expect("solved");
            hashes.push(block.hash());
            chain
                .import(block, None, 2_000_000_000_000)
                .expect("imported");
        }
        assert_eq!(chain.tip(), *hashes.last().expect("tip"));
        (chain, hashes)
    }

    #[test]
    fn locator_shape() {
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
        let l = locator_heights(10_000);
        assert_eq!(
            &l[..10],
            &[
                10_000, 9_999, 9_998, 9_997, 9_996, 9_995, 9_994, 9_993, 9_992, 9_991
            ]
        );
        assert_eq!(l[10], 9_989);
        assert_eq!(l[11], 9_985);
        assert_eq!(*l.last().expect("non-empty"), 0);
        assert!(l.len() <= MAX_LOCATOR);
        assert!(l.windows(2).all(|w| w[0] > w[1]), "strictly descending");
        let huge = locator_heights(u64::MAX / 2);
        assert!(huge.len() <= MAX_LOCATOR);
        assert_eq!(*huge.last().expect("non-empty"), 0);
    }

    #[test]
    fn locator_of_a_store() {
        let (chain, hashes) = chain(40);
        let locator = build_locator(chain.store()).expect("locator");
        let heights: Vec<u64> = locator.iter().map(|(_, h, _)| *h).collect();
        assert_eq!(heights, locator_heights(40));
        for (hash, height, work) in &locator {
            assert_eq!(*hash, hashes[*height as usize]);
            let record = chain.store().record(hash).expect("read").expect("known");
            assert_eq!(*work, record.total_work);
        }
    }

    #[test]
    fn headers_follow_the_first_locator_hash_on_the_main_chain() {
        let (chain, hashes) = chain(30);
        let store = chain.store();
        let unknown = Hash([0xaa; 32]);
        let got = serve_headers(store, &[unknown, hashes[12], hashes[0]], 5).expect("served");
        let heights: Vec<u64> = got.iter().map(|h| h.height).collect();
        assert_eq!(heights, vec![13, 14, 15, 16, 17]);
        assert_eq!(got[0].prev_hash, hashes[12]);
        // At the tip: nothing more.
        assert!(
            serve_headers(store, &[hashes[30]], 5)
                .expect("served")
                .is_empty()
        );
        // No known hash at all: nothing.
        assert!(
            serve_headers(store, &[unknown], 5)
                .expect("served")
                .is_empty()
        );
        // The cap applies.
        let all = serve_headers(store, &[hashes[0]], u32::MAX).expect("served");
        assert_eq!(all.len(), 30);
        // The answer passes the requester's checks.
        let genesis = store.record(&hashes[0]).expect("read").expect("known");
        let anchor = Anchor {
            hash: hashes[0],
            height: 0,
            work: genesis.total_work,
        };
        let (checked, last) = check_headers(anchor, &all).expect("valid");
        assert_eq!(checked, hashes[1..].to_vec());
        assert_eq!(last.hash, hashes[30]);
        assert_eq!(last.work, chain.tip_work());
    }

    #[test]
    fn blocks_are_served_in_order_up_to_the_first_unknown() {
        let (chain, hashes) = chain(5);
        let store = chain.store();
        let soft = SYNC_RESPONSE_SOFT_BYTES;
        let got = serve_blocks(
            store,
            &[hashes[2], hashes[3], Hash([1; 32]), hashes[4]],
            soft,
        )
        .expect("served");
        assert_eq!(got.len(), 2);
        let block = Block::decode(&got[1], 100).expect("decodes");
        assert_eq!(block.hash(), hashes[3]);
        assert!(
            serve_blocks(store, &[Hash([1; 32])], soft)
                .expect("served")
                .is_empty()
        );
        // The byte cap of the serving budget: one block always, then only what fits.
        let one = got[0].len();
        let capped = serve_blocks(store, &hashes[1..5], 1).expect("served");
        assert_eq!(capped.len(), 1, "at least one block");
        let capped = serve_blocks(store, &hashes[1..5], 2 * one).expect("served");
        assert_eq!(capped.len(), 2);
    }

    #[test]
    fn block_transactions_are_served_by_index_and_an_index_past_the_end_is_a_bad_request() {
        let g = Genesis::dev(4, 1_000_000_000, 2000);
        let store = Store::temporary(&g).expect("store");
        let block =
            peerchain_ledger::testkit::connect_transfer_block(&store, &g, 4, 30, 1).expect("block");
        let hash = block.hash();
        let reader = store.reader();
        let served = serve_block_txs(&reader, &hash, &[29, 0, 7, 7]).expect("served");
        let expected: Vec<Transaction> = [29, 0, 7, 7]
            .iter()
            .map(|&i| block.transactions[i].clone())
            .collect();
        assert_eq!(served, Some(expected), "in the order asked, repeats kept");
        assert_eq!(
            serve_block_txs(&reader, &hash, &[]).expect("served"),
            Some(Vec::new())
        );
        assert_eq!(
            serve_block_txs(&reader, &hash, &[3, 30]).expect("served"),
            None,
            "index 30 of 30 transactions"
        );
        assert_eq!(
            serve_block_txs(&reader, &hash, &[u32::MAX]).expect("served"),
            None
        );
        assert_eq!(
            serve_block_txs(&reader, &Hash([9; 32]), &[0]).expect("served"),
            Some(Vec::new()),
            "a block not stored: nothing"
        );
    }

    #[test]
    fn broken_headers_are_refused() {
        let (chain, hashes) = chain(4);
        let store = chain.store();
        let headers = serve_headers(store, &[hashes[0]], 10).expect("served");
        let anchor = Anchor {
            hash: hashes[0],
            height: 0,
            work: U256::one(),
        };
        // Not linked to the anchor.
        let wrong_anchor = Anchor {
            hash: hashes[1],
            ..anchor
        };
        assert!(check_headers(wrong_anchor, &headers).is_err());
        // A gap.
        let gap = vec![headers[0].clone(), headers[2].clone()];
        assert!(check_headers(anchor, &gap).is_err());
        // A header whose hash misses its target.
        let mut bad = headers.clone();
        bad[3].target = Target(U256::one());
        let err = check_headers(anchor, &bad).expect_err("bad pow");
        assert!(err.contains("target"), "{err}");
        // A wrong height.
        let mut bad = headers.clone();
        bad[0].height = 7;
        assert!(check_headers(anchor, &bad).is_err());
        // An empty run changes nothing.
        assert_eq!(check_headers(anchor, &[]), Ok((vec![], anchor)));
    }
}
