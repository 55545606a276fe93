//! The block tree of a run: every block some node took in (into its main chain, or stored
//! on a side branch), with its parent, miner, target and header time, when each node took it
//! in, and whether it is in the final main chain. Forks are blocks that share a parent. The mining statistics, the
//! stale-rate assertion, the propagation histogram, the difficulty response and the
//! report's tree drawing all read this one record instead of walking the events again.
//!
//! A block no node ever stored is not here: a selfish miner's withheld blocks never
//! released, or a cheap fork every node refused unstored (lighter than its tip).
//!
//! It owns: the tree's bound ([`MAX_TREE_BLOCKS`]: the highest blocks are kept, the rest
//! counted in `dropped`), its order (height, then first seen) and the branch layout
//! ([`lanes`]).
//! It must never: read a clock or do I/O; everything comes from the records.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::confirm::FinalChain;
use super::events::{BlockSeen, ChainEvent, EventKind};

/// Most blocks the tree keeps (the highest); a run of an hour at one block a second on 16
/// nodes with a fork in ten fits.
pub const MAX_TREE_BLOCKS: usize = 20_000;

/// Every block seen, with its place in the tree.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlockTree {
    /// By height, then by first sight.
    pub blocks: Vec<TreeBlock>,
    /// Blocks left out (the lowest) because [`MAX_TREE_BLOCKS`] were kept.
    pub dropped: u64,
}

/// One block of the tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeBlock {
    /// Hash.
    pub hash: String,
    /// Parent hash.
    pub parent: String,
    /// Height.
    pub height: u64,
    /// Miner address.
    pub miner: String,
    /// The node whose address it pays (`None`: no node's).
    pub mined_by: Option<usize>,
    /// Header timestamp, ms since the Unix epoch (the miner's clock).
    pub timestamp_ms: u64,
    /// Proof-of-work target, 64 hex digits.
    pub target: String,
    /// Per node: when it first took the block in (into its main chain, or stored on a side
    /// branch), ms on the run's clock.
    pub seen_ms: Vec<Option<u64>>,
    /// In the reference node's final main chain (`None` when that chain is unknown).
    pub in_final_chain: Option<bool>,
}

impl TreeBlock {
    /// The first time any node took it in.
    pub fn first_seen_ms(&self) -> Option<u64> {
        self.seen_ms.iter().flatten().min().copied()
    }

    /// Last node's first sight minus the first node's, when two nodes or more took it in.
    pub fn spread_ms(&self) -> Option<u64> {
        let seen: Vec<u64> = self.seen_ms.iter().flatten().copied().collect();
        let (lo, hi) = (seen.iter().min()?, seen.iter().max()?);
        (seen.len() >= 2).then(|| hi - lo)
    }

    /// Stale: seen, and not in the final main chain.
    pub fn stale(&self) -> bool {
        self.in_final_chain == Some(false)
    }
}

impl BlockTree {
    /// Blocks seen and how many of them are stale.
    pub fn stale_count(&self) -> (u64, u64) {
        let stale = self.blocks.iter().filter(|b| b.stale()).count();
        (self.blocks.len() as u64, stale as u64)
    }
}

/// Builds the tree from the block events of `nodes` nodes; `miners[i]` is node i's miner
/// address.
pub fn build(
    events: &[ChainEvent],
    nodes: usize,
    miners: &[String],
    chain: Option<&FinalChain>,
) -> BlockTree {
    let by_address: HashMap<&str, usize> = miners
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut blocks: Vec<TreeBlock> = Vec::new();
    for e in events {
        let (EventKind::Block(seen) | EventKind::SideBlock(seen)) = &e.kind else {
            continue;
        };
        let BlockSeen {
            height,
            hash,
            prev_hash,
            miner,
            timestamp_ms,
            target,
        } = seen;
        let i = *index.entry(hash.as_str()).or_insert_with(|| {
            blocks.push(TreeBlock {
                hash: hash.clone(),
                parent: prev_hash.clone(),
                height: *height,
                miner: miner.clone(),
                mined_by: by_address.get(miner.as_str()).copied(),
                timestamp_ms: *timestamp_ms,
                target: target.clone(),
                seen_ms: vec![None; nodes],
                in_final_chain: chain.map(|c| c.timestamps.contains_key(hash)),
            });
            blocks.len() - 1
        });
        if let Some(seen) = blocks[i].seen_ms.get_mut(e.node) {
            *seen = Some(seen.map_or(e.t_ms, |t| t.min(e.t_ms)));
        }
    }
    blocks.sort_by_key(|b| (b.height, b.first_seen_ms()));
    let dropped = blocks.len().saturating_sub(MAX_TREE_BLOCKS);
    blocks.drain(..dropped);
    BlockTree {
        blocks,
        dropped: dropped as u64,
    }
}

/// The branch layout: one lane per block, lane 0 the main chain (the final chain's blocks,
/// or without one the ancestry of the highest block), each fork a lane of its own beside
/// it. A side branch continues its parent's lane when that lane is free at its height, else
/// takes the lowest lane free from its height on.
pub fn lanes(tree: &BlockTree) -> Vec<usize> {
    let main = main_chain(tree);
    let position: HashMap<&str, usize> = tree
        .blocks
        .iter()
        .enumerate()
        .map(|(i, b)| (b.hash.as_str(), i))
        .collect();
    let mut lane = vec![0; tree.blocks.len()];
    // Highest height taken in each lane; lane 0 belongs to the main chain.
    let mut taken_to: Vec<Option<u64>> = vec![None];
    for (i, b) in tree.blocks.iter().enumerate() {
        if main.contains(b.hash.as_str()) {
            continue;
        }
        let parent_lane = position
            .get(b.parent.as_str())
            .filter(|&&p| !main.contains(tree.blocks[p].hash.as_str()))
            .map(|&p| lane[p]);
        let chosen = match parent_lane {
            Some(l) if b.height > 0 && taken_to[l] == Some(b.height - 1) => l,
            _ => free_lane(&mut taken_to, b.height),
        };
        taken_to[chosen] = Some(b.height);
        lane[i] = chosen;
    }
    lane
}

fn free_lane(taken_to: &mut Vec<Option<u64>>, height: u64) -> usize {
    match (1..taken_to.len()).find(|&l| taken_to[l].is_none_or(|h| h < height)) {
        Some(l) => l,
        None => {
            taken_to.push(None);
            taken_to.len() - 1
        }
    }
}

/// The main chain's hashes: the final chain's blocks, or the ancestry of the highest block.
fn main_chain(tree: &BlockTree) -> HashSet<&str> {
    if tree.blocks.iter().any(|b| b.in_final_chain.is_some()) {
        return tree
            .blocks
            .iter()
            .filter(|b| b.in_final_chain == Some(true))
            .map(|b| b.hash.as_str())
            .collect();
    }
    let parents: HashMap<&str, &str> = tree
        .blocks
        .iter()
        .map(|b| (b.hash.as_str(), b.parent.as_str()))
        .collect();
    let mut main = HashSet::new();
    let mut at = tree.blocks.last().map(|b| b.hash.as_str());
    while let Some(hash) = at {
        main.insert(hash);
        at = parents.get(hash).copied();
    }
    main
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(
        t_ms: u64,
        node: usize,
        height: u64,
        hash: &str,
        parent: &str,
        miner: &str,
    ) -> ChainEvent {
        ChainEvent {
            t_ms,
            node,
            kind: EventKind::Block(BlockSeen {
                height,
                hash: hash.into(),
                prev_hash: parent.into(),
                miner: miner.into(),
                timestamp_ms: t_ms,
                target: "ff".into(),
            }),
        }
    }

    fn final_chain(main: &[&str]) -> FinalChain {
        let mut c = FinalChain::default();
        for hash in main {
            c.timestamps.insert((*hash).into(), 0);
        }
        c.height = main.len() as u64;
        c
    }

    fn lanes_by_hash(tree: &BlockTree) -> HashMap<&str, usize> {
        tree.blocks
            .iter()
            .map(|b| b.hash.as_str())
            .zip(lanes(tree))
            .collect()
    }

    /// g ← a1 ← a2 ← a3 (final) and a1 ← b2 ← b3 (node 1's side of a partition).
    fn forked() -> Vec<ChainEvent> {
        vec![
            block(100, 0, 1, "a1", "g", "m0"),
            block(130, 1, 1, "a1", "g", "m0"),
            block(200, 0, 2, "a2", "a1", "m0"),
            block(210, 1, 2, "b2", "a1", "m1"),
            block(300, 0, 3, "a3", "a2", "m0"),
            block(320, 1, 3, "b3", "b2", "m1"),
            block(900, 1, 2, "a2", "a1", "m0"),
            block(905, 1, 3, "a3", "a2", "m0"),
        ]
    }

    #[test]
    fn each_block_once_with_every_nodes_first_sight_and_its_fate() {
        let miners = ["m0".to_owned(), "m1".to_owned()];
        let chain = final_chain(&["a1", "a2", "a3"]);
        let tree = build(&forked(), 2, &miners, Some(&chain));
        let hashes: Vec<&str> = tree.blocks.iter().map(|b| b.hash.as_str()).collect();
        assert_eq!(hashes, ["a1", "a2", "b2", "a3", "b3"]);
        let a1 = &tree.blocks[0];
        assert_eq!(a1.seen_ms, [Some(100), Some(130)]);
        assert_eq!((a1.first_seen_ms(), a1.spread_ms()), (Some(100), Some(30)));
        let b2 = &tree.blocks[2];
        assert_eq!((b2.parent.as_str(), b2.mined_by), ("a1", Some(1)));
        assert_eq!(b2.spread_ms(), None, "one node only");
        assert!(b2.stale() && !a1.stale());
        assert_eq!(tree.stale_count(), (5, 2));
        assert_eq!(tree.blocks[3].seen_ms, [Some(300), Some(905)]);
    }

    /// `kind` of a block event as a side-block event.
    fn aside(e: ChainEvent) -> ChainEvent {
        let EventKind::Block(seen) = e.kind else {
            panic!("a block event");
        };
        ChainEvent {
            kind: EventKind::SideBlock(seen),
            ..e
        }
    }

    #[test]
    fn a_block_stored_aside_counts_as_a_sight_and_one_no_main_chain_took_is_still_there() {
        let miners = ["m0".to_owned(), "m1".to_owned(), "m2".to_owned()];
        let chain = final_chain(&["a1", "a2", "a3"]);
        let mut events = forked();
        // Node 0 stored node 1's b2 aside at 250; c2, by a node nobody followed, reached only
        // node 0's side branches.
        events.push(aside(block(250, 0, 2, "b2", "a1", "m1")));
        events.push(aside(block(260, 0, 2, "c2", "a1", "m2")));
        let tree = build(&events, 2, &miners, Some(&chain));
        let by_hash: HashMap<&str, &TreeBlock> =
            tree.blocks.iter().map(|b| (b.hash.as_str(), b)).collect();
        assert_eq!(by_hash["b2"].seen_ms, [Some(250), Some(210)]);
        assert_eq!(by_hash["b2"].spread_ms(), Some(40));
        let c2 = by_hash["c2"];
        assert_eq!(
            (c2.mined_by, c2.seen_ms.clone()),
            (Some(2), vec![Some(260), None])
        );
        assert!(c2.stale());
        assert_eq!(tree.stale_count(), (6, 3));
    }

    #[test]
    fn a_fork_gets_a_lane_of_its_own_and_the_main_chain_lane_0() {
        let chain = final_chain(&["a1", "a2", "a3"]);
        let tree = build(&forked(), 2, &[], Some(&chain));
        // a1 a2 b2 a3 b3
        assert_eq!(lanes(&tree), [0, 0, 1, 0, 1]);
        // Without a final chain, the highest block's ancestry is the main chain.
        let tree = build(&forked(), 2, &[], None);
        let by_hash = lanes_by_hash(&tree);
        assert_eq!(by_hash["a1"], 0);
        assert_eq!(by_hash["b3"], by_hash["b2"], "a branch keeps its lane");
        assert_ne!(by_hash["a3"], by_hash["b3"]);
        assert_eq!(
            tree.stale_count(),
            (5, 0),
            "nothing is stale without a final chain"
        );
    }

    #[test]
    fn two_forks_at_the_same_heights_take_two_lanes_and_a_later_one_reuses_a_lane() {
        let events = [
            block(1, 0, 1, "a1", "g", "m"),
            block(2, 1, 1, "x1", "g", "m"),
            block(3, 2, 1, "y1", "g", "m"),
            block(4, 0, 2, "a2", "a1", "m"),
            block(5, 0, 3, "a3", "a2", "m"),
            block(6, 1, 3, "z3", "a2", "m"),
        ];
        let chain = final_chain(&["a1", "a2", "a3"]);
        let tree = build(&events, 3, &[], Some(&chain));
        let by_hash = lanes_by_hash(&tree);
        assert_eq!((by_hash["x1"], by_hash["y1"]), (1, 2));
        assert_eq!(by_hash["z3"], 1, "lane 1 is free again at height 3");
    }

    #[test]
    fn a_side_block_at_height_0_from_a_confused_node_does_not_upset_the_layout() {
        // z0 claims height 0 and a parent seen at height 5: nonsense, laid out all the same.
        let events = [
            block(1, 0, 1, "a1", "g", "m"),
            block(2, 1, 0, "z0", "y5", "m"),
            block(3, 1, 1, "z1", "z0", "m"),
            block(4, 1, 5, "y5", "a1", "m"),
        ];
        let tree = build(&events, 2, &[], Some(&final_chain(&["a1"])));
        assert_eq!(lanes(&tree), [1, 0, 1, 1], "z0, z1 and y5 beside a1");
    }

    #[test]
    fn the_tree_keeps_the_highest_blocks() {
        let events: Vec<ChainEvent> = (1..=MAX_TREE_BLOCKS as u64 + 5)
            .map(|h| block(h, 0, h, &format!("b{h}"), &format!("b{}", h - 1), "m"))
            .collect();
        let tree = build(&events, 1, &[], None);
        assert_eq!(tree.blocks.len(), MAX_TREE_BLOCKS);
        assert_eq!(tree.dropped, 5);
        assert_eq!(tree.blocks[0].height, 6);
    }
}
