//! The final main chain of the reference node (the lowest-numbered honest node running at
//! the end, `Cluster::reference_node`), and each transfer's fate in it: the height of its block and when that
//! block was first seen on any node's main chain.
//!
//! It owns: walking the chain from the tip back to genesis by hash (so a reorg during the
//! walk cannot mix two branches), a cache of the blocks already read, and waiting (bounded)
//! for accepted transfers still pending at the end.
//! It must never: read more than [`MAX_FINAL_BLOCKS`] blocks, or judge the result (that is
//! `assert`'s job).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use super::blocks::BlockTree;
use super::events::TxSeen;
use super::http::{Api, Block};
use super::load::TransferRecord;

/// Most blocks the final chain may have (a run of an hour at 1 s blocks has 3,600).
pub const MAX_FINAL_BLOCKS: usize = 100_000;

/// A main-chain block and its transactions.
#[derive(Debug, Clone)]
struct ChainBlock {
    header: Block,
    txids: Vec<String>,
}

/// The reference node's main chain at the end of the run.
#[derive(Debug, Clone, Default)]
pub struct FinalChain {
    /// The node it was read from.
    pub node: usize,
    /// Its tip.
    pub tip: String,
    /// Its height.
    pub height: u64,
    /// Blocks per miner address.
    pub blocks_by_miner: HashMap<String, u64>,
    /// Block hash → header timestamp (ms since the Unix epoch), for every main-chain block.
    pub timestamps: HashMap<String, u64>,
    /// Block hash → miner address, for every main-chain block.
    pub miners: HashMap<String, String>,
    /// Txid → (height, block hash).
    pub txids: HashMap<String, (u64, String)>,
}

/// Reads main chains block by block, remembering the blocks it has read.
#[derive(Debug, Default)]
pub struct ChainReader {
    cache: HashMap<String, ChainBlock>,
}

impl ChainReader {
    /// Node `node`'s main chain now.
    pub fn read(&mut self, api: &Api, rpc: &str, node: usize) -> anyhow::Result<FinalChain> {
        let status = api.status(rpc)?;
        let mut chain = FinalChain {
            node,
            tip: status.tip_hash.clone(),
            height: status.height,
            ..FinalChain::default()
        };
        let mut hash = status.tip_hash;
        for _ in 0..MAX_FINAL_BLOCKS {
            let block = self.block(api, rpc, &hash)?;
            if block.header.height == 0 {
                return Ok(chain);
            }
            *chain
                .blocks_by_miner
                .entry(block.header.miner.clone())
                .or_default() += 1;
            chain
                .timestamps
                .insert(hash.clone(), block.header.timestamp_ms);
            chain
                .miners
                .insert(hash.clone(), block.header.miner.clone());
            for txid in &block.txids {
                chain
                    .txids
                    .insert(txid.clone(), (block.header.height, hash.clone()));
            }
            hash = block.header.prev_hash.clone();
        }
        bail!("node {node}'s main chain is longer than {MAX_FINAL_BLOCKS} blocks: not read")
    }

    fn block(&mut self, api: &Api, rpc: &str, hash: &str) -> anyhow::Result<&ChainBlock> {
        if !self.cache.contains_key(hash) {
            let header = api.block(rpc, hash)?;
            let txids = match header.tx_count {
                Some(0) => Vec::new(),
                _ if header.height == 0 => Vec::new(),
                _ => api.block_txids(rpc, hash)?,
            };
            self.cache
                .insert(hash.to_owned(), ChainBlock { header, txids });
        }
        self.cache
            .get(hash)
            .ok_or_else(|| anyhow::anyhow!("block {hash} vanished from the cache"))
    }
}

/// Reads node `node`'s chain until every txid of `accepted` is in it, `timeout` passes or
/// `stop` is set; returns the last chain read.
pub fn wait_for_chain(
    api: &Api,
    rpc: &str,
    node: usize,
    accepted: &HashSet<String>,
    timeout: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<FinalChain> {
    let started = Instant::now();
    let mut reader = ChainReader::default();
    loop {
        let chain = reader.read(api, rpc, node)?;
        let missing = accepted
            .iter()
            .filter(|t| !chain.txids.contains_key(*t))
            .count();
        if missing == 0 || started.elapsed() >= timeout || stop.load(Ordering::Relaxed) {
            return Ok(chain);
        }
        eprintln!("waiting for {missing} accepted transfers to confirm on node {node}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The first time each block hash joined any node's main chain, ms on the run's clock.
pub fn first_seen(tree: &BlockTree) -> HashMap<&str, u64> {
    tree.blocks
        .iter()
        .filter_map(|b| Some((b.hash.as_str(), b.first_seen_ms()?)))
        .collect()
}

/// How a transfer's confirmation time was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConfirmationSources {
    /// From block events (when a node first had the block).
    pub events: u64,
    /// From the block's header timestamp (no event seen for it).
    pub timestamps: u64,
}

/// Fills in each transfer's height and confirmation time from the final chain: when its
/// block first joined a node's main chain, else its header timestamp (clamped to the submit
/// time); `start_epoch_ms` is the run clock's start.
pub fn annotate(
    transfers: &mut [TransferRecord],
    chain: &FinalChain,
    seen: &HashMap<&str, u64>,
    start_epoch_ms: u64,
    clock_offsets: &HashMap<String, i64>,
) -> ConfirmationSources {
    let mut sources = ConfirmationSources::default();
    for t in transfers.iter_mut() {
        let Some((height, block)) = t.txid.as_ref().and_then(|id| chain.txids.get(id)) else {
            continue;
        };
        t.height = Some(*height);
        let at = if let Some(&ms) = seen.get(block.as_str()) {
            sources.events += 1;
            ms
        } else {
            sources.timestamps += 1;
            // A miner whose clock runs ahead stamps its blocks ahead: take its offset back.
            let offset = chain
                .miners
                .get(block)
                .and_then(|m| clock_offsets.get(m))
                .copied()
                .unwrap_or(0);
            chain.timestamps.get(block).map_or(t.submit_ms, |&ts| {
                ts.saturating_add_signed(-offset)
                    .saturating_sub(start_epoch_ms)
            })
        };
        t.confirmed_ms = Some(at.max(t.submit_ms));
    }
    sources
}

/// Fills in when each node first admitted each signed transfer, from the nodes' `tx`
/// events (`seen[i]` is node i's record).
pub fn record_admissions(transfers: &mut [TransferRecord], seen: &[TxSeen]) {
    for t in transfers.iter_mut() {
        if let Some(id) = &t.txid {
            t.seen_ms = seen.iter().map(|s| s.first_ms.get(id).copied()).collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocks;
    use super::super::events::ChainEvent;
    use super::*;

    fn transfer(txid: &str, submit_ms: u64) -> TransferRecord {
        TransferRecord::test_pending(txid, submit_ms)
    }

    fn block_event(t_ms: u64, node: usize, hash: &str) -> ChainEvent {
        ChainEvent::test_block(t_ms, node, hash, "m")
    }

    #[test]
    fn confirmation_is_the_first_sight_of_the_block_else_its_timestamp() {
        let mut chain = FinalChain::default();
        chain.txids.insert("t1".into(), (4, "b1".into()));
        chain.txids.insert("t2".into(), (5, "b2".into()));
        chain.timestamps.insert("b2".into(), 1_000_000 + 9_000);
        let events = [block_event(7_000, 1, "b1"), block_event(6_500, 0, "b1")];
        let tree = blocks::build(&events, 2, &[], None);
        let seen = first_seen(&tree);
        let mut ts = vec![
            transfer("t1", 5_000),
            transfer("t2", 8_000),
            transfer("t3", 1),
        ];
        let sources = annotate(&mut ts, &chain, &seen, 1_000_000, &HashMap::new());
        assert_eq!((ts[0].height, ts[0].confirmed_ms), (Some(4), Some(6_500)));
        assert_eq!((ts[1].height, ts[1].confirmed_ms), (Some(5), Some(9_000)));
        assert_eq!((ts[2].height, ts[2].confirmed_ms), (None, None));
        assert_eq!(
            sources,
            ConfirmationSources {
                events: 1,
                timestamps: 1
            }
        );
    }

    #[test]
    fn a_confirmation_never_precedes_its_submission() {
        let mut chain = FinalChain::default();
        chain.txids.insert("t".into(), (1, "b".into()));
        let events = [block_event(100, 0, "b")];
        let mut ts = vec![transfer("t", 150)];
        let tree = blocks::build(&events, 1, &[], None);
        annotate(&mut ts, &chain, &first_seen(&tree), 0, &HashMap::new());
        assert_eq!(ts[0].confirmed_ms, Some(150));
    }

    /// A block timestamp from a miner whose clock runs 3 s ahead is taken back 3 s (one
    /// running behind, forward).
    #[test]
    fn block_timestamps_are_corrected_by_their_miners_clock_offset() {
        let mut chain = FinalChain::default();
        chain.txids.insert("t1".into(), (1, "ahead".into()));
        chain.txids.insert("t2".into(), (2, "behind".into()));
        chain.timestamps.insert("ahead".into(), 10_000);
        chain.timestamps.insert("behind".into(), 10_000);
        chain.miners.insert("ahead".into(), "m1".into());
        chain.miners.insert("behind".into(), "m2".into());
        let offsets = HashMap::from([("m1".to_owned(), 3_000), ("m2".to_owned(), -2_000)]);
        let mut ts = vec![transfer("t1", 0), transfer("t2", 0)];
        annotate(&mut ts, &chain, &HashMap::new(), 0, &offsets);
        assert_eq!(ts[0].confirmed_ms, Some(7_000));
        assert_eq!(ts[1].confirmed_ms, Some(12_000));
    }
}
