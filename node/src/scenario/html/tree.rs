//! The block tree of report.html: one column per height, lane 0 the final main chain and
//! each fork a lane beside it, every block coloured by the node that mined it, stale blocks
//! outlined in red, and on hover the block's hash, miner and when the nodes took it in.
//!
//! It owns: what is drawn of a large tree (the last [`MAX_HEIGHTS_DRAWN`] heights, at most
//! [`MAX_LANES_DRAWN`] lanes), each block's colour, outline and hover text.
//! It must never: compute the tree or its lanes ([`super::super::blocks`]'s) or draw it (the
//! shared chart code's `blockTree`, through [`super::charts`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::super::blocks::{BlockTree, TreeBlock, lanes};
use super::charts::{self, TreeMark};
use super::{NODE_COLOURS, esc, secs};

/// Heights drawn, the highest ones.
pub(super) const MAX_HEIGHTS_DRAWN: u64 = 400;
/// Lanes drawn (the main chain and the forks beside it); blocks beyond are counted.
pub(super) const MAX_LANES_DRAWN: usize = 24;

/// A block's box, and the distance between heights and between lanes.
const BOX: f64 = 12.0;
const STEP_HEIGHT: f64 = 16.0;
const STEP_LANE: f64 = 20.0;

/// The section: heading, caption, the drawing in a horizontally scrolling box.
pub(super) fn section(tree: &BlockTree) -> String {
    let mut s = String::from("<h2>Block tree</h2>\n");
    if tree.blocks.is_empty() {
        s.push_str("<p>no block seen</p>\n");
        return s;
    }
    let lanes = lanes(tree);
    let top = tree.blocks.last().map_or(0, |b| b.height);
    let low = top
        .saturating_sub(MAX_HEIGHTS_DRAWN - 1)
        .max(tree.blocks[0].height);
    let drawn: Vec<(&TreeBlock, usize)> = tree
        .blocks
        .iter()
        .zip(lanes)
        .filter(|(b, lane)| b.height >= low && *lane < MAX_LANES_DRAWN)
        .collect();
    let _ = writeln!(s, "<p>{}</p>", esc(&caption(tree, low, top, drawn.len())));
    s.push_str(&legend(tree));
    s.push_str("<div style=\"overflow-x:auto\">\n");
    s.push_str(&svg(&drawn));
    s.push_str("</div>\n");
    s
}

/// The colour of each node that mined a block of the tree.
fn legend(tree: &BlockTree) -> String {
    let mut miners: Vec<usize> = tree.blocks.iter().filter_map(|b| b.mined_by).collect();
    miners.sort_unstable();
    miners.dedup();
    let mut s = String::from("<p class=\"legend\">mined by: ");
    for i in miners {
        let _ = write!(
            s,
            "<span><span class=\"sw\" style=\"background:{}\"></span>node {i}</span>",
            NODE_COLOURS[i % NODE_COLOURS.len()]
        );
    }
    if tree.blocks.iter().any(|b| b.mined_by.is_none()) {
        s.push_str("<span><span class=\"sw\" style=\"background:#bbb\"></span>no node</span>");
    }
    s.push_str("</p>\n");
    s
}

fn caption(tree: &BlockTree, low: u64, top: u64, drawn: usize) -> String {
    let mut children: HashMap<&str, usize> = HashMap::new();
    for b in &tree.blocks {
        *children.entry(b.parent.as_str()).or_default() += 1;
    }
    let forks = children.values().filter(|&&n| n > 1).count();
    let (seen, stale) = tree.stale_count();
    let mut text = format!(
        "{seen} blocks seen, {stale} stale (outlined in red), {forks} forks (a parent with two \
         children or more); lane 0 is the final main chain. Heights {low} to {top} drawn"
    );
    let left_out = tree.blocks.iter().filter(|b| b.height >= low).count() - drawn;
    if left_out > 0 {
        let _ = write!(
            text,
            "; {left_out} blocks in lanes beyond {MAX_LANES_DRAWN} not drawn"
        );
    }
    if tree.dropped > 0 {
        let _ = write!(text, "; {} lower blocks not kept", tree.dropped);
    }
    text.push('.');
    text
}

fn svg(drawn: &[(&TreeBlock, usize)]) -> String {
    charts::BlockTree {
        id: "block-tree",
        label: "block tree",
        horizontal: true,
        box_size: [BOX, BOX],
        step_height: STEP_HEIGHT,
        step_lane: STEP_LANE,
        axis_every: 10,
        blocks: drawn.iter().map(|&(b, lane)| mark(b, lane)).collect(),
    }
    .html()
}

/// A block coloured by the node that mined it (grey for none), outlined red when stale.
fn mark(b: &TreeBlock, lane: usize) -> TreeMark {
    TreeMark {
        hash: b.hash.clone(),
        parent: b.parent.clone(),
        height: b.height,
        lane,
        cls: if b.stale() { "stale" } else { "block" },
        fill: b
            .mined_by
            .map_or("#bbb", |i| NODE_COLOURS[i % NODE_COLOURS.len()]),
        stroke: b.stale().then_some("#c62828"),
        title: hover(b),
    }
}

fn hover(b: &TreeBlock) -> String {
    let miner = b.mined_by.map_or_else(
        || format!("miner {}", b.miner),
        |i| format!("mined by node {i}"),
    );
    let fate = match b.in_final_chain {
        Some(true) => "in the final chain",
        Some(false) => "stale",
        None => "final chain unknown",
    };
    let seen: Vec<String> = b
        .seen_ms
        .iter()
        .enumerate()
        .filter_map(|(node, t)| t.map(|t| format!("node {node} at {}", secs(t))))
        .collect();
    format!(
        "height {} {}, {miner}, {fate}; parent {}; taken in by {}",
        b.height,
        short(&b.hash),
        short(&b.parent),
        seen.join(", ")
    )
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64, hash: &str, parent: &str, final_chain: bool) -> TreeBlock {
        TreeBlock {
            hash: hash.into(),
            parent: parent.into(),
            height,
            miner: "m".into(),
            mined_by: Some(1),
            timestamp_ms: 0,
            target: String::new(),
            seen_ms: vec![Some(height * 1_000), None],
            in_final_chain: Some(final_chain),
        }
    }

    #[test]
    fn a_fork_is_drawn_in_a_second_lane_with_its_stale_block_outlined() {
        let tree = BlockTree {
            blocks: vec![
                block(1, "a1", "g", true),
                block(2, "a2", "a1", true),
                block(2, "b2", "a1", false),
                block(3, "a3", "a2", true),
            ],
            dropped: 0,
        };
        let html = section(&tree);
        assert!(html.contains("4 blocks seen, 1 stale"), "{html}");
        assert!(html.contains("</span>node 1</span>"), "the legend: {html}");
        assert!(html.contains("1 forks"), "{html}");
        let spec = charts::spec_in(&html, "blockTree");
        assert_eq!(spec["id"], "block-tree");
        let blocks = spec["blocks"].as_array().expect("blocks");
        let by_hash = |h: &str| {
            blocks
                .iter()
                .find(|b| b["hash"] == h)
                .unwrap_or_else(|| panic!("{h} drawn"))
        };
        assert_eq!(blocks.len(), 4);
        for (hash, lane) in [("a1", 0), ("a2", 0), ("b2", 1), ("a3", 0)] {
            assert_eq!(by_hash(hash)["lane"], lane, "{hash}'s lane");
        }
        let b2 = by_hash("b2");
        assert_eq!(b2["stroke"], "#c62828", "the stale block is outlined");
        assert_eq!(b2["parent"], "a1");
        assert!(
            by_hash("a2").get("stroke").is_none(),
            "a final-chain block is not"
        );
        assert_eq!(
            b2["title"],
            "height 2 b2, mined by node 1, stale; parent a1; taken in by node 0 at 2.0 s"
        );
    }

    #[test]
    fn an_empty_tree_says_so() {
        assert!(section(&BlockTree::default()).contains("no block seen"));
    }
}
