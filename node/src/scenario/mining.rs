//! The hash-power dial's statistics: each node's hash share over the run (time-weighted over
//! the timeline's hash-share steps), the blocks it mined that some node's main chain took
//! in, how many of those ended stale (not in the final main chain), and its share of the
//! final main chain against its hash share.
//!
//! It owns: the per-node counts and shares. What "seen" and "stale" mean is
//! [`super::blocks`]'s (a block some node took into its main chain; stale: seen and not in
//! the reference node's final main chain).
//! It must never: read a clock or do I/O; everything comes from the records.

use serde::Serialize;

use super::blocks::BlockTree;
use super::confirm::FinalChain;
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

/// The statistics from the block tree, `miners[i]` being node i's miner address and
/// `shares[i]` its average hash share.
pub fn mining_stats(
    tree: &BlockTree,
    chain: Option<&FinalChain>,
    miners: &[String],
    shares: &[f64],
) -> MiningStats {
    let mut by_node: Vec<NodeMining> = (0..miners.len())
        .map(|i| NodeMining {
            index: i,
            hash_share: shares.get(i).copied().unwrap_or(0.0),
            ..NodeMining::default()
        })
        .collect();
    let mut stats = MiningStats::default();
    for b in &tree.blocks {
        let stale = u64::from(b.stale());
        stats.blocks_seen += 1;
        stats.stale += stale;
        if let Some(n) = b.mined_by.and_then(|i| by_node.get_mut(i)) {
            n.blocks_seen += 1;
            n.stale += stale;
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

/// Node `node`'s hash-share changes the timeline carried out, in order: (the step's start,
/// the new share).
pub fn share_changes(steps: &[StepRecord], node: usize) -> impl Iterator<Item = (u64, f64)> + '_ {
    steps
        .iter()
        .filter(|s| s.ok)
        .filter_map(move |s| match s.action {
            Action::HashShare { node: n, share } if n == node => Some((s.started_ms, share)),
            _ => None,
        })
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
            for (at, next) in share_changes(steps, n.index) {
                let at = at.min(end_ms);
                weighted += share * at.saturating_sub(since) as f64;
                share = next;
                since = at;
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

    use super::super::blocks;
    use super::super::events::ChainEvent;

    fn block(node: usize, hash: &str, miner: &str) -> ChainEvent {
        ChainEvent::test_block(0, node, hash, miner)
    }

    fn chain(main: &[(&str, &str)]) -> FinalChain {
        let mut c = FinalChain {
            height: main.len() as u64,
            ..FinalChain::default()
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
        let miners = ["m0".to_owned(), "m1".to_owned()];
        let tree = blocks::build(&events, 2, &miners, Some(&final_chain));
        assert_eq!(tree.stale_count(), (4, 1));
        let s = mining_stats(&tree, Some(&final_chain), &miners, &[0.6, 0.4]);
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
        let miners = ["m0".to_owned()];
        let tree = blocks::build(&events, 1, &miners, None);
        let s = mining_stats(&tree, None, &miners, &[1.0]);
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
