//! `[network]` and its `[[network.node]]` entries: node count, links, hash shares and the
//! genesis they describe, checked against the bounds. It must never start a node or write a
//! file.

use std::collections::BTreeSet;
use std::path::PathBuf;

use peerchain_network::MAX_LINK_DELAY_MS;

use super::raw::{RawLink, RawNetwork, RawNode};
use super::{
    GenesisParams, LineIndex, LinkSpec, MAX_DURATION_S, MAX_NODES, Network, NodeSpec, SpecError,
    index, invalid, millis,
};
use crate::adversary::AdversaryMode;
use crate::cli::GenesisNewArgs;

pub(super) fn network(raw: &RawNetwork, lines: &LineIndex) -> Result<Network, SpecError> {
    let nodes = raw.nodes;
    if !(1..=MAX_NODES).contains(&nodes) {
        return Err(invalid(
            "network.nodes",
            nodes,
            format!("must be 1 to {MAX_NODES}"),
        ));
    }
    let hashrate = raw.hashrate.unwrap_or(100_000);
    if hashrate == 0 {
        return Err(invalid(
            "network.hashrate",
            0,
            "must be at least 1 hash per second",
        ));
    }
    let genesis = genesis_params(raw)?;
    let mut node: Vec<NodeSpec> = (0..nodes).map(default_node).collect();
    let mut seen = BTreeSet::new();
    let mut explicit_share = vec![None; nodes];
    for r in &raw.node {
        let line = lines.line_of(r.span().start);
        let n = r.get_ref();
        let i = index("network.node.index", n.index, nodes).map_err(|e| e.at_line(line))?;
        if !seen.insert(i) {
            return Err(invalid("network.node.index", i, "given twice").at_line(line));
        }
        let field = |name: &str| format!("network.node[index = {i}].{name}");
        override_node(&mut node[i], n, &field).map_err(|e| e.at_line(line))?;
        explicit_share[i] = n.hash_share;
    }
    shares(&mut node, &explicit_share, hashrate)?;
    build_genesis(&genesis, hashrate)?;
    let link = match &raw.link {
        Some(l) if l.between.is_some() => {
            return Err(invalid(
                "network.link.between",
                "groups",
                "[network.link] faults every link; use an [[at]] link step for groups",
            ));
        }
        Some(l) => Some(link_spec("network.link", l)?),
        None => None,
    };
    Ok(Network {
        nodes,
        hashrate,
        genesis,
        node,
        link,
    })
}

pub(super) fn link_spec(field: &str, raw: &RawLink) -> Result<LinkSpec, SpecError> {
    let loss = raw.loss.unwrap_or(0.0);
    if !(loss.is_finite() && (0.0..=1.0).contains(&loss)) {
        return Err(invalid(
            format!("{field}.loss"),
            loss,
            "must be from 0 to 1",
        ));
    }
    let delay_ms = raw.delay_ms.unwrap_or(0);
    if delay_ms > MAX_LINK_DELAY_MS {
        return Err(invalid(
            format!("{field}.delay_ms"),
            delay_ms,
            format!("must be at most {MAX_LINK_DELAY_MS}"),
        ));
    }
    Ok(LinkSpec {
        loss,
        delay_ms,
        bandwidth_kbps: raw.bandwidth_kbps.unwrap_or(0),
    })
}

/// Groups of a link step or a partition: two or more disjoint, non-empty groups of known
/// nodes (in a link step, nodes in no group keep their links).
pub(super) fn link_groups(
    field: &str,
    groups: &[Vec<usize>],
    nodes: usize,
) -> Result<Vec<Vec<usize>>, SpecError> {
    if groups.len() < 2 || groups.iter().any(Vec::is_empty) {
        return Err(invalid(
            field,
            format!("{groups:?}"),
            "give at least two non-empty groups, e.g. [[0, 1], [2, 3]]",
        ));
    }
    let mut seen = BTreeSet::new();
    for &n in groups.iter().flatten() {
        index(field, n, nodes)?;
        if !seen.insert(n) {
            return Err(invalid(
                field,
                format!("{groups:?}"),
                format!("node {n} is in more than one group"),
            ));
        }
    }
    Ok(groups.to_vec())
}

fn default_node(index: usize) -> NodeSpec {
    NodeSpec {
        index,
        hash_share: 0.0,
        hashrate: 0,
        mine: true,
        adversary: None,
        allow_adversary: false,
        start_ms: 0,
        clock_offset_ms: 0,
    }
}

fn override_node(
    node: &mut NodeSpec,
    raw: &RawNode,
    field: &dyn Fn(&str) -> String,
) -> Result<(), SpecError> {
    if let Some(share) = raw.hash_share
        && !(share.is_finite() && (0.0..=1.0).contains(&share))
    {
        return Err(invalid(field("hash_share"), share, "must be from 0 to 1"));
    }
    if let Some(mine) = raw.mine {
        node.mine = mine;
    }
    if let Some(mode) = &raw.adversary {
        mode.parse::<AdversaryMode>()
            .map_err(|e| invalid(field("adversary"), format!("{mode:?}"), e))?;
        node.adversary = Some(mode.clone());
        node.allow_adversary = true;
    }
    if let Some(s) = raw.start_s {
        node.start_ms = millis(&field("start_s"), s, MAX_DURATION_S)?;
        if node.index == 0 && node.start_ms > 0 {
            return Err(invalid(
                field("start_s"),
                s,
                "node 0 is the bootnode and starts first",
            ));
        }
    }
    if let Some(offset) = raw.clock_offset_ms {
        node.clock_offset_ms = offset;
    }
    Ok(())
}

/// Nodes with an explicit `hash_share` get it; the rest of 1 is split evenly among the other
/// nodes that mine. Each node's cap is its share of `hashrate`.
fn shares(node: &mut [NodeSpec], explicit: &[Option<f64>], hashrate: u64) -> Result<(), SpecError> {
    let given: f64 = explicit.iter().flatten().sum();
    if given > 1.0 + 1e-9 {
        return Err(invalid(
            "network.node.hash_share",
            format!("{given} in all"),
            "the hash shares add up to more than 1",
        ));
    }
    let rest: Vec<usize> = node
        .iter()
        .filter(|n| explicit[n.index].is_none() && n.mine)
        .map(|n| n.index)
        .collect();
    let each = if rest.is_empty() {
        0.0
    } else {
        (1.0 - given).max(0.0) / rest.len() as f64
    };
    for n in node.iter_mut() {
        n.hash_share =
            explicit[n.index].unwrap_or(if rest.contains(&n.index) { each } else { 0.0 });
        // share in 0..=1 and hashrate a u64: the product fits.
        n.hashrate = (n.hash_share * hashrate as f64).round() as u64;
        if n.hash_share > 0.0 && n.hashrate == 0 {
            n.hashrate = 1;
        }
        if n.mine && n.hashrate == 0 {
            return Err(invalid(
                format!("network.node[index = {}].hash_share", n.index),
                n.hash_share,
                "a node that mines needs a share above 0 (or set mine = false)",
            ));
        }
    }
    Ok(())
}

fn genesis_params(raw: &RawNetwork) -> Result<GenesisParams, SpecError> {
    let block_time_ms = raw.block_time_ms.unwrap_or(1000);
    if block_time_ms == 0 {
        return Err(invalid("network.block_time_ms", 0, "must be at least 1 ms"));
    }
    let accounts = raw.accounts.unwrap_or(16);
    crate::dev::parse_accounts(&accounts.to_string())
        .map_err(|e| invalid("network.accounts", accounts, e))?;
    Ok(GenesisParams {
        chain_id: raw.chain_id.unwrap_or(7710),
        block_time_ms,
        difficulty_half_life_ms: raw.difficulty_half_life_ms,
        min_fee: raw.min_fee.unwrap_or(1),
        max_block_txs: raw.max_block_txs.unwrap_or(20_000),
        max_future_ms: raw.max_future_ms.unwrap_or(15_000),
        initial_reward: raw.initial_reward.unwrap_or(1_000_000_000),
        halving_interval: raw.halving_interval.unwrap_or(2_000_000),
        accounts,
        balance: raw.balance.unwrap_or(1_000_000_000),
    })
}

/// The `genesis new` options for these fields, `out` left empty.
pub fn genesis_args(g: &GenesisParams, hashrate: u64) -> GenesisNewArgs {
    GenesisNewArgs {
        dev_accounts: g.accounts,
        balance: g.balance,
        allocs: Vec::new(),
        chain_id: g.chain_id,
        timestamp_ms: 1_767_225_600_000,
        block_time: g.block_time_ms,
        difficulty_half_life_ms: g.difficulty_half_life_ms,
        hashrate,
        initial_target: None,
        pow_limit: None,
        initial_reward: g.initial_reward,
        halving_interval: g.halving_interval,
        min_fee: g.min_fee,
        max_block_txs: g.max_block_txs,
        max_future_ms: g.max_future_ms,
        out: PathBuf::new(),
    }
}

/// Builds the genesis the fields describe, so a bad one is refused before any node starts.
pub fn build_genesis(
    g: &GenesisParams,
    hashrate: u64,
) -> Result<peerchain_ledger::Genesis, SpecError> {
    crate::genesis_new::build(&genesis_args(g, hashrate)).map_err(|e| {
        invalid(
            "network",
            "(the genesis fields)",
            format!(
                "they describe an invalid genesis ({e:#}); the scenario fields are named like \
                 the options of `peerchain genesis new` (accounts = --dev-accounts)"
            ),
        )
    })
}
