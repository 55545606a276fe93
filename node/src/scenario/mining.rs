//! The hash-power dial's statistics: each node's hash share over the run (time-weighted over
//! the timeline's hash-share steps), the blocks it mined that some node's main chain took
//! in, how many of those ended stale (not in the final main chain), and its share of the
//! final main chain against its hash share.
//!
//! It owns: the meaning of "seen" (a block some node announced joining its main chain: a
//! selfish miner's withheld blocks that were never released are not seen, so they are not
//! stale either) and of "stale" (seen, not in the reference node's final main chain).
//! It must never: read a clock or do I/O; everything comes from the records.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::confirm::FinalChain;
use super::events::{ChainEvent, EventKind};
use super::spec::{Action, Network};
use super::timeline::StepRecord;

/// The dial's statistics for the whole network.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MiningStats {
    /// Distinct blocks seen joining some node's main chain.
    pub blocks_seen: u64,
    /// Of those, not in the final main chain.
    pub stale: u64,
    /// `stale / blocks_seen` (`None` with no block seen).
    pub stale_rate: Option<f64>,
    /// Per node, by index.
    pub by_node: Vec<NodeMining>,
}

/// One node's mining.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeMining {
    /// Node index.
    pub index: usize,
    /// Its hash share averaged over the run's time (hash-share steps change it).
    pub hash_share: f64,
    /// Distinct blocks it mined that were seen.
    pub blocks_seen: u64,
    /// Of those, not in the final main chain.
    pub stale: u64,
    /// `stale / blocks_seen` (`None` when it had none seen).
    pub stale_rate: Option<f64>,
    /// Its blocks in the final main chain (genesis excluded).
    pub main_chain: u64,
    /// `main_chain` over the final chain's height (`None` on a chain of genesis alone).
    pub main_chain_share: Option<f64>,
}

/// Every distinct block seen joining a main chain, with its miner address.
pub fn seen_blocks(events: &[ChainEvent]) -> BTreeMap<&str, &str> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Block { hash, miner, .. } => Some((hash.as_str(), miner.as_str())),
            _ => None,
        })
        .collect()
}

/// Blocks seen and how many of them are stale, against the final chain.
pub fn stale_count(events: &[ChainEvent], chain: &FinalChain) -> (u64, u64) {
    let seen = seen_blocks(events);
    let stale = seen
        .keys()
        .filter(|h| !chain.timestamps.contains_key(**h))
        .count();
    (seen.len() as u64, stale as u64)
}

/// The statistics, `miners[i]` being node i's miner address.
pub fn mining_stats(
    events: &[ChainEvent],
    chain: Option<&FinalChain>,
    miners: &[String],
    shares: &[f64],
) -> MiningStats {
    let index: HashMap<&str, usize> = miners
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let main: HashSet<&str> = chain
        .map(|c| c.timestamps.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut by_node: Vec<NodeMining> = (0..miners.len())
        .map(|i| NodeMining {
            index: i,
            hash_share: shares.get(i).copied().unwrap_or(0.0),
            ..NodeMining::default()
        })
        .collect();
    let mut stats = MiningStats::default();
    for (hash, miner) in seen_blocks(events) {
        let stale = chain.is_some() && !main.contains(hash);
        stats.blocks_seen += 1;
        stats.stale += u64::from(stale);
        if let Some(n) = index.get(miner).and_then(|&i| by_node.get_mut(i)) {
            n.blocks_seen += 1;
            n.stale += u64::from(stale);
        }
    }
    stats.stale_rate = ratio(stats.stale, stats.blocks_seen);
    for n in &mut by_node {
        n.stale_rate = ratio(n.stale, n.blocks_seen);
        if let Some(c) = chain {
            n.main_chain = c
                .blocks_by_miner
                .get(&miners[n.index])
                .copied()
                .unwrap_or(0);
            n.main_chain_share = ratio(n.main_chain, c.height);
        }
    }
    stats.by_node = by_node;
    stats
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Each node's hash share averaged over `0..end_ms`: its share from the file until a
/// hash-share step changes it (from the step's start).
pub fn average_shares(network: &Network, steps: &[StepRecord], end_ms: u64) -> Vec<f64> {
    network
        .node
        .iter()
        .map(|n| {
            let mut share = n.hash_share;
            let mut since = 0;
            let mut weighted = 0.0;
            for s in steps {
                if let Action::HashShare { node, share: next } = s.action
                    && node == n.index
                    && s.ok
                {
                    let at = s.started_ms.min(end_ms);
                    weighted += share * at.saturating_sub(since) as f64;
                    share = next;
                    since = at;
                }
            }
            weighted += share * end_ms.saturating_sub(since) as f64;
            if end_ms == 0 {
                share
            } else {
                weighted / end_ms as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(node: usize, hash: &str, miner: &str) -> ChainEvent {
        ChainEvent::test_block(0, node, hash, miner)
    }

    fn chain(main: &[(&str, &str)]) -> FinalChain {
        let mut c = FinalChain {
            node: 0,
            tip: String::new(),
            height: main.len() as u64,
            blocks_by_miner: HashMap::new(),
            timestamps: HashMap::new(),
            miners: HashMap::new(),
            txids: HashMap::new(),
        };
        for (hash, miner) in main {
            c.timestamps.insert((*hash).into(), 0);
            *c.blocks_by_miner.entry((*miner).into()).or_default() += 1;
        }
        c
    }

    #[test]
    fn stale_blocks_are_those_seen_and_not_in_the_final_chain() {
        // Node 1 mined b2, which node 0 and node 1 both took in, then lost to node 0's b3.
        let events = [
            block(0, "b1", "m0"),
            block(1, "b1", "m0"),
            block(0, "b2", "m1"),
            block(1, "b2", "m1"),
            block(0, "b3", "m0"),
            block(1, "b4", "m2"),
        ];
        let final_chain = chain(&[("b1", "m0"), ("b3", "m0"), ("b4", "m2")]);
        assert_eq!(stale_count(&events, &final_chain), (4, 1));
        let miners = ["m0".to_owned(), "m1".to_owned()];
        let s = mining_stats(&events, Some(&final_chain), &miners, &[0.6, 0.4]);
        assert_eq!((s.blocks_seen, s.stale, s.stale_rate), (4, 1, Some(0.25)));
        let n0 = &s.by_node[0];
        assert_eq!((n0.blocks_seen, n0.stale, n0.main_chain), (2, 0, 2));
        assert_eq!(n0.main_chain_share, Some(2.0 / 3.0));
        let n1 = &s.by_node[1];
        assert_eq!((n1.blocks_seen, n1.stale, n1.stale_rate), (1, 1, Some(1.0)));
        assert_eq!(n1.main_chain_share, Some(0.0));
        assert_eq!(n1.hash_share, 0.4);
    }

    #[test]
    fn without_a_final_chain_nothing_is_called_stale() {
        let events = [block(0, "b1", "m0")];
        let s = mining_stats(&events, None, &["m0".to_owned()], &[1.0]);
        assert_eq!((s.blocks_seen, s.stale), (1, 0));
        assert_eq!(s.by_node[0].main_chain_share, None);
    }

    #[test]
    fn shares_are_averaged_over_time() {
        let text = "[network]\nnodes = 2\n[[network.node]]\nindex = 0\nhash_share = 0.5\n";
        let network = super::super::spec::parse(text, "t")
            .expect("a valid scenario")
            .network;
        let step = |node, share, at| StepRecord {
            t_ms: at,
            started_ms: at,
            finished_ms: at + 10,
            source: String::new(),
            line: 0,
            action: Action::HashShare { node, share },
            ok: true,
            error: None,
            notes: Vec::new(),
        };
        // Node 1: 0.5 for 6 s, then 0 for 4 s: 0.3 on average.
        let avg = average_shares(&network, &[step(1, 0.0, 6_000)], 10_000);
        assert!((avg[0] - 0.5).abs() < 1e-9, "{avg:?}");
        assert!((avg[1] - 0.3).abs() < 1e-9, "{avg:?}");
    }
}
