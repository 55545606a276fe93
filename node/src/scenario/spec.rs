//! Scenario files: TOML text → typed, validated [`Scenario`].
//!
//! It owns: the file format (docs/SCENARIOS.md documents every field), the defaults, and
//! every check that can be made before a node starts: counts and bounds, node indexes,
//! the order of the timeline (a node is killed only while running, a partition is healed
//! only when there is one), the genesis the `[network]` fields describe, and the keys that
//! are planned but not built yet (refused with "not supported yet"). The seeded parts of the
//! timeline are drawn here, before those checks, so they judge the drawn timeline: each
//! step's time within its `jitter_s` and the node of `kill`, `stop` or `start = "any"` (the
//! draws themselves are [`super::seeded`]'s).
//! It must never: start processes, touch the network, read the clock or draw from anything
//! but the run's seed. Errors name the field (and the line for `[[at]]` and
//! `[[network.node]]` entries) and the value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use peerchain_network::MAX_LINK_DELAY_MS;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::seeded::{self, Stream};
use crate::adversary::AdversaryMode;
use crate::cli::GenesisNewArgs;

/// Most nodes a scenario may start (each is a process with its own store on this machine).
pub const MAX_NODES: usize = 16;
/// Longest run, in seconds: bounds the samples kept in memory and in the report.
pub const MAX_DURATION_S: f64 = 3600.0;
/// Most transfers a load may send (`tps x duration_s`); each is kept for the report.
pub const MAX_TRANSFERS: u64 = 200_000;
/// Most `[[at]]` steps.
pub const MAX_STEPS: usize = 1000;
/// Highest `[load] tps`.
pub const MAX_TPS: u32 = 10_000;
/// Run time after the last step or the end of the load when `duration_s` is not given.
pub const DEFAULT_TAIL_S: f64 = 20.0;

/// A parsed and validated scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// `name`, or the file's stem.
    pub name: String,
    /// The time scale it was read with (`--scale`; 1 as written).
    pub scale: f64,
    /// The run's seed: `--seed`, else the file's `seed`, else a random one ([`SeedChoice`]).
    /// It fixes the load's choices and the timeline's draws.
    pub seed: u64,
    /// Length of the run from the moment every initially started node is up, in ms.
    pub duration_ms: u64,
    /// `[network]`.
    pub network: Network,
    /// `[load]`, if any.
    pub load: Option<Load>,
    /// `[[at]]` steps plus the implicit starts of delayed nodes, in time order.
    pub steps: Vec<Step>,
    /// `[assert]`.
    pub assert: Assertions,
}

/// `[network]`: the nodes and their genesis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// How many nodes.
    pub nodes: usize,
    /// Total hash rate of the network, hashes per second, shared by the nodes' hash shares.
    pub hashrate: u64,
    /// The genesis fields.
    pub genesis: GenesisParams,
    /// Every node, index `i` at position `i`.
    pub node: Vec<NodeSpec>,
    /// Faults of every link from the start (`[network.link]`), if any.
    pub link: Option<LinkSpec>,
}

/// The faults of a link, set on both of its nodes (`POST /v1/admin/peers/{peer_id}/link`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct LinkSpec {
    /// Fraction of gossip messages dropped, 0 to 1.
    pub loss: f64,
    /// Added delay of every message, ms.
    pub delay_ms: u64,
    /// Bandwidth, kilobits per second (0: unlimited).
    pub bandwidth_kbps: u64,
}

impl LinkSpec {
    /// Whether it changes nothing (setting it clears a link's fault).
    pub fn is_clear(&self) -> bool {
        *self == LinkSpec::default()
    }

    /// `loss 5%, delay 100 ms, 1000 kbit/s`, or `clear`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.loss > 0.0 {
            parts.push(format!("loss {}%", self.loss * 100.0));
        }
        if self.delay_ms > 0 {
            parts.push(format!("delay {} ms", self.delay_ms));
        }
        if self.bandwidth_kbps > 0 {
            parts.push(format!("{} kbit/s", self.bandwidth_kbps));
        }
        if parts.is_empty() {
            "clear".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The genesis fields a scenario sets (the rest are `peerchain genesis new`'s defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenesisParams {
    /// `chain_id`.
    pub chain_id: u64,
    /// `target_block_time_ms`.
    pub block_time_ms: u64,
    /// `difficulty_half_life_ms` (`None`: `genesis new`'s default).
    pub difficulty_half_life_ms: Option<u64>,
    /// `min_fee`.
    pub min_fee: u64,
    /// `max_block_txs`.
    pub max_block_txs: u64,
    /// `max_future_ms`.
    pub max_future_ms: u64,
    /// `initial_reward`.
    pub initial_reward: u64,
    /// `halving_interval`.
    pub halving_interval: u64,
    /// Dev accounts 0..accounts-1 prefunded.
    pub accounts: u32,
    /// Balance of each dev account.
    pub balance: u64,
}

/// One node's settings after defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSpec {
    /// Its index.
    pub index: usize,
    /// Its share of `[network] hashrate`, 0 to 1.
    pub hash_share: f64,
    /// Its hash-rate cap (`--mine-hashrate`), hashes per second; 0 when its share is 0.
    pub hashrate: u64,
    /// Whether it mines from the start (`--mine`).
    pub mine: bool,
    /// Adversary mode at start (`--adversary`), already checked.
    pub adversary: Option<String>,
    /// Whether it gets `--allow-adversary` (a start mode or an `adversary` step needs it).
    pub allow_adversary: bool,
    /// When it starts, ms after the run starts; 0 for the initial nodes.
    pub start_ms: u64,
    /// `--clock-offset-ms`.
    pub clock_offset_ms: i64,
}

/// `[load]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    /// Transfers per second (the average, for bursts too).
    pub tps: u32,
    /// When sending starts, ms after the run starts.
    pub start_ms: u64,
    /// How long it sends, ms.
    pub duration_ms: u64,
    /// Dev accounts 0..accounts-1 that send.
    pub accounts: u32,
    /// How sends are spread over time.
    pub pattern: Pattern,
    /// Nodes that receive transfers; sender `s` always uses `nodes[s % len]`.
    pub nodes: Vec<usize>,
    /// Fee of each transfer.
    pub fee: u64,
    /// After the run, how long to wait for accepted transfers to confirm, ms.
    pub confirm_timeout_ms: u64,
}

impl Load {
    /// Transfers the load sends in all.
    pub fn total(&self) -> u64 {
        u64::from(self.tps) * self.duration_ms / 1000
    }

    /// When the load ends, ms after the run starts.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + self.duration_ms
    }
}

/// How the load spreads its transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Pattern {
    /// Evenly, sent every 100 ms.
    Steady,
    /// All of a period's transfers at once at the start of each period.
    Bursts {
        /// The period, ms.
        period_ms: u64,
    },
}

/// A timeline step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// When, ms after the run starts: `written_t_ms`, plus a draw from `0..=jitter_ms`.
    pub t_ms: u64,
    /// Its `t` as written (times `--scale`), ms.
    pub written_t_ms: u64,
    /// Its `jitter_s` (times `--scale`), ms; 0 when not given.
    pub jitter_ms: u64,
    /// Line of its `[[at]]` (or `[[network.node]]` for a delayed start) in the file.
    pub line: usize,
    /// Where the file gives it: `at[3]`, or `network.node[index = 2].start_s`.
    pub source: String,
    /// What it does (with the node drawn, for `"any"`).
    pub action: Action,
    /// For `kill`, `stop` or `start = "any"`: the nodes the seed chose among.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawn_from: Option<Vec<usize>>,
}

impl Step {
    /// What the seed decided about this step, one sentence each (none for a step written
    /// with a fixed time and node), e.g. `t drawn from 10 s to 15 s: 12.345 s`.
    pub fn draws(&self) -> Vec<String> {
        let mut said = Vec::new();
        if self.jitter_ms > 0 {
            said.push(format!(
                "t drawn from {} s to {} s: {} s",
                secs(self.written_t_ms),
                secs(self.written_t_ms + self.jitter_ms),
                secs(self.t_ms)
            ));
        }
        if let (Some(pool), Some(node)) = (&self.drawn_from, self.action.node()) {
            said.push(format!("node {node} drawn from {pool:?}"));
        }
        said
    }

    /// The latest time it can have, whatever the seed: its written time plus its jitter.
    pub fn latest_ms(&self) -> u64 {
        self.written_t_ms + self.jitter_ms
    }
}

/// Ms as seconds for a message: `12.345`, `10`.
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Every pair of nodes in different groups blocks each other.
    Partition(Vec<Vec<usize>>),
    /// Undo the partition.
    Heal,
    /// SIGKILL a node.
    Kill(usize),
    /// SIGTERM a node and wait for it to exit.
    Stop(usize),
    /// Start a node again with the same data directory (or for the first time).
    Start(usize),
    /// Turn continuous mining on or off.
    Mining {
        /// Node index.
        node: usize,
        /// On or off.
        enabled: bool,
    },
    /// Switch an adversary mode on (`Some`) or off.
    Adversary {
        /// Node index.
        node: usize,
        /// Mode name, or `None` for off.
        mode: Option<String>,
    },
    /// Set the faults of the links between groups (every link when `between` is `None`);
    /// a clear fault lifts them.
    Link {
        /// Groups: every pair of nodes in different groups.
        between: Option<Vec<Vec<usize>>>,
        /// The faults.
        fault: LinkSpec,
    },
    /// Change a node's share of the network's hash rate (0 stops its mining, more starts it).
    HashShare {
        /// Node index.
        node: usize,
        /// The new share, 0 to 1.
        share: f64,
    },
}

impl Action {
    /// The one node it acts on, if it acts on one.
    pub fn node(&self) -> Option<usize> {
        match self {
            Action::Kill(i) | Action::Stop(i) | Action::Start(i) => Some(*i),
            Action::Mining { node, .. }
            | Action::Adversary { node, .. }
            | Action::HashShare { node, .. } => Some(*node),
            Action::Partition(_) | Action::Heal | Action::Link { .. } => None,
        }
    }

    /// A short description, e.g. `kill 2` or `partition [0, 1] | [2, 3]`.
    pub fn describe(&self) -> String {
        match self {
            Action::Partition(groups) => {
                let parts: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
                format!("partition {}", parts.join(" | "))
            }
            Action::Heal => "heal".to_owned(),
            Action::Kill(i) => format!("kill {i}"),
            Action::Stop(i) => format!("stop {i}"),
            Action::Start(i) => format!("start {i}"),
            Action::Mining { node, enabled } => {
                format!("mining {node} {}", if *enabled { "on" } else { "off" })
            }
            Action::Adversary { node, mode } => {
                format!("adversary {node} {}", mode.as_deref().unwrap_or("off"))
            }
            Action::Link { between, fault } => match between {
                Some(groups) => {
                    let parts: Vec<String> = groups.iter().map(|g| format!("{g:?}")).collect();
                    format!("link {} {}", parts.join(" | "), fault.describe())
                }
                None => format!("link all {}", fault.describe()),
            },
            Action::HashShare { node, share } => format!("hash_share {node} {share}"),
        }
    }
}

/// `[assert]`: every field optional; only those given are evaluated.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Assertions {
    /// After the last step, every running node reports the same tip within this many ms.
    pub converge_within_ms: Option<u64>,
    /// Every accepted transfer is in the final main chain.
    pub no_transfer_lost: bool,
    /// No node reorganises more blocks than this at once.
    pub max_reorg_depth: Option<u64>,
    /// Confirmed transfers per second of load at least this.
    pub min_confirmed_tps: Option<f64>,
    /// 99th percentile of submit-to-confirmation time at most this many seconds.
    pub max_p99_confirmation_s: Option<f64>,
    /// Blocks some node took in (main chain or side branch) and not in the final one, as a
    /// fraction of all blocks seen, at most this.
    pub max_stale_rate: Option<f64>,
    /// Every honest node running when an adversary mode went on lists the adversary among
    /// its banned peers within this many ms.
    pub adversary_banned_within_ms: Option<u64>,
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a field of the wrong type, unknown or missing (the message has the line).
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// A field's value breaks a rule.
    #[error("{}{field} = {value}: {reason}", line_prefix(.line))]
    Invalid {
        /// Path of the field, e.g. `at[2].kill`.
        field: String,
        /// The value as written.
        value: String,
        /// The rule it breaks.
        reason: String,
        /// Line in the file, when known.
        line: Option<usize>,
    },
}

fn line_prefix(line: &Option<usize>) -> String {
    line.map(|l| format!("line {l}: ")).unwrap_or_default()
}

fn invalid(field: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
        line: None,
    }
}

impl SpecError {
    fn at_line(mut self, l: usize) -> Self {
        match &mut self {
            SpecError::Invalid { line, .. } => {
                line.get_or_insert(l);
            }
            SpecError::Read { .. } | SpecError::Toml(_) => {}
        }
        self
    }
}

// ----- the file as written ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    seed: Option<u64>,
    duration_s: Option<f64>,
    network: RawNetwork,
    load: Option<RawLoad>,
    #[serde(default)]
    at: Vec<Spanned<RawStep>>,
    #[serde(default)]
    assert: RawAssert,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    nodes: usize,
    hashrate: Option<u64>,
    chain_id: Option<u64>,
    block_time_ms: Option<u64>,
    difficulty_half_life_ms: Option<u64>,
    min_fee: Option<u64>,
    max_block_txs: Option<u64>,
    max_future_ms: Option<u64>,
    initial_reward: Option<u64>,
    halving_interval: Option<u64>,
    accounts: Option<u32>,
    balance: Option<u64>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
    link: Option<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    between: Option<Vec<Vec<usize>>>,
    loss: Option<f64>,
    delay_ms: Option<u64>,
    bandwidth_kbps: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHashShare {
    node: usize,
    share: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    index: usize,
    hash_share: Option<f64>,
    mine: Option<bool>,
    adversary: Option<String>,
    start_s: Option<f64>,
    clock_offset_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    tps: u32,
    duration_s: f64,
    start_s: Option<f64>,
    accounts: Option<u32>,
    pattern: Option<String>,
    burst_period_s: Option<f64>,
    nodes: Option<Vec<usize>>,
    fee: Option<u64>,
    confirm_timeout_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    t: f64,
    jitter_s: Option<f64>,
    partition: Option<Vec<Vec<usize>>>,
    heal: Option<bool>,
    kill: Option<RawNodeRef>,
    stop: Option<RawNodeRef>,
    start: Option<RawNodeRef>,
    mining: Option<RawMining>,
    adversary: Option<RawAdversary>,
    link: Option<RawLink>,
    hash_share: Option<RawHashShare>,
}

/// The node of a `kill`, `stop` or `start` step: an index, or `"any"` (drawn from the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawNodeRef {
    Index(usize),
    Any,
}

impl<'de> Deserialize<'de> for RawNodeRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeRefVisitor)
    }
}

struct NodeRefVisitor;

impl serde::de::Visitor<'_> for NodeRefVisitor {
    type Value = RawNodeRef;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a node index or \"any\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawNodeRef, E> {
        usize::try_from(v)
            .map(RawNodeRef::Index)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawNodeRef, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawNodeRef, E> {
        if v == "any" {
            Ok(RawNodeRef::Any)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMining {
    node: usize,
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdversary {
    node: usize,
    mode: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssert {
    converge_within_s: Option<f64>,
    no_transfer_lost: Option<bool>,
    max_reorg_depth: Option<u64>,
    min_confirmed_tps: Option<f64>,
    max_p99_confirmation_s: Option<f64>,
    max_stale_rate: Option<f64>,
    adversary_banned_within_s: Option<f64>,
}

// ----- reading ------------------------------------------------------------------------------

/// Where the run's seed comes from: `--seed` when given, else the file's `seed`, else
/// `otherwise` (the caller's random number; the default, 0, suits tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedChoice {
    /// `--seed`.
    pub flag: Option<u64>,
    /// The seed when neither `--seed` nor the file gives one.
    pub otherwise: u64,
}

impl SeedChoice {
    fn resolve(self, file: Option<u64>) -> u64 {
        self.flag.or(file).unwrap_or(self.otherwise)
    }
}

/// Reads and validates a scenario file, its timeline scaled by `scale` and drawn from the
/// seed `seed` chooses ([`parse_with`]).
pub fn load(path: &Path, scale: f64, seed: SeedChoice) -> Result<Scenario, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_owned(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".to_owned());
    parse_with(&text, &stem, scale, seed)
}

/// Parses and validates scenario text; `default_name` names it when it has no `name`. The
/// seed is the file's, else 0.
pub fn parse(text: &str, default_name: &str) -> Result<Scenario, SpecError> {
    parse_with(text, default_name, 1.0, SeedChoice::default())
}

/// Shortest and longest time scale (`--scale`).
pub const SCALE_RANGE: std::ops::RangeInclusive<f64> = 0.05..=20.0;

/// [`parse`] with the timeline scaled by `scale` ([`parse_with`]).
pub fn parse_scaled(text: &str, default_name: &str, scale: f64) -> Result<Scenario, SpecError> {
    parse_with(text, default_name, scale, SeedChoice::default())
}

/// Parses scenario text with every time of its timeline multiplied by `scale` (`--scale`):
/// the step times and their `jitter_s`, `duration_s`, the load's `start_s` and `duration_s`
/// and the nodes' `start_s`. The network (block time, half-life), the load's rate, the
/// convergence window and the confirmation timeout keep their values. Then draws the
/// timeline's seeded parts from the seed `seed` chooses, and validates the result as if it
/// had been written so.
pub fn parse_with(
    text: &str,
    default_name: &str,
    scale: f64,
    seed: SeedChoice,
) -> Result<Scenario, SpecError> {
    if !SCALE_RANGE.contains(&scale) {
        return Err(invalid(
            "--scale",
            scale,
            format!(
                "must be from {} to {}",
                SCALE_RANGE.start(),
                SCALE_RANGE.end()
            ),
        ));
    }
    let mut raw: RawFile = toml::from_str(text)?;
    scale_times(&mut raw, scale);
    let seed = seed.resolve(raw.seed);
    let lines = LineIndex::new(text);
    let mut network = network(&raw.network, &lines)?;
    let load = raw
        .load
        .as_ref()
        .map(|l| load_of(l, &network))
        .transpose()?;
    if let Some(l) = &load
        && l.accounts > network.genesis.accounts
    {
        return Err(invalid(
            "load.accounts",
            l.accounts,
            format!(
                "more senders than the {} dev accounts the genesis funds (network.accounts)",
                network.genesis.accounts
            ),
        ));
    }
    let mut drafts = at_steps(&raw.at, &lines, network.nodes, seed)?;
    drafts.extend(delayed_starts(&raw.network, &network, &lines));
    // Stable: steps at the same time keep their order in the file.
    drafts.sort_by_key(|d| d.t_ms);
    let (steps, ends_partitioned) = resolve_timeline(drafts, &network, seed)?;
    allow_adversaries(&steps, &mut network);
    let assert = assertions(&raw.assert, load.is_some())?;
    let has_adversary = network.node.iter().any(|n| n.adversary.is_some())
        || steps
            .iter()
            .any(|s| matches!(&s.action, Action::Adversary { mode: Some(_), .. }));
    if assert.adversary_banned_within_ms.is_some() && !has_adversary {
        return Err(invalid(
            "assert.adversary_banned_within_s",
            raw.assert.adversary_banned_within_s.unwrap_or_default(),
            "no node is an adversary: give one an adversary mode",
        ));
    }
    if steps.is_empty() && assert.converge_within_ms.is_some() {
        return Err(invalid(
            "assert.converge_within_s",
            raw.assert.converge_within_s.unwrap_or_default(),
            "measures from the last [[at]] step, and there is none: every node starts on \
             genesis, so it would pass at once",
        ));
    }
    if ends_partitioned && assert.converge_within_ms.is_some() {
        return Err(invalid(
            "assert.converge_within_s",
            raw.assert.converge_within_s.unwrap_or_default(),
            "the timeline ends with a partition in place, so the nodes cannot converge after \
             it: add a `heal = true` step",
        ));
    }
    let duration_ms = duration(raw.duration_s, &steps, load.as_ref(), &assert)?;
    Ok(Scenario {
        name: raw.name.clone().unwrap_or_else(|| default_name.to_owned()),
        scale,
        seed,
        duration_ms,
        network,
        load,
        steps,
        assert,
    })
}

/// The `[[at]]` steps in file order, each at its drawn time.
fn at_steps(
    raw: &[Spanned<RawStep>],
    lines: &LineIndex,
    nodes: usize,
    seed: u64,
) -> Result<Vec<Draft>, SpecError> {
    if raw.len() > MAX_STEPS {
        return Err(invalid(
            "at",
            format!("{} steps", raw.len()),
            format!("at most {MAX_STEPS} steps"),
        ));
    }
    let mut drafts = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let line = lines.line_of(s.span().start);
        let draft = step(i, s.get_ref(), nodes, seed).map_err(|e| e.at_line(line))?;
        drafts.push(Draft { line, ..draft });
    }
    Ok(drafts)
}

/// The first start of every node with a `start_s`, as a step.
fn delayed_starts(raw: &RawNetwork, network: &Network, lines: &LineIndex) -> Vec<Draft> {
    network
        .node
        .iter()
        .filter(|n| n.start_ms > 0)
        .map(|n| {
            let line = raw
                .node
                .iter()
                .find(|r| r.get_ref().index == n.index)
                .map_or(0, |r| lines.line_of(r.span().start));
            Draft {
                at: None,
                t_ms: n.start_ms,
                written_t_ms: n.start_ms,
                jitter_ms: 0,
                line,
                source: format!("network.node[index = {}].start_s", n.index),
                planned: Planned::Fixed(Action::Start(n.index)),
            }
        })
        .collect()
}

/// Byte offsets of line starts, to turn a span into a 1-based line number.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex(starts)
    }

    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// Seconds as written → milliseconds, refusing NaN, negatives and values above `max_s`.
fn millis(field: &str, seconds: f64, max_s: f64) -> Result<u64, SpecError> {
    if !seconds.is_finite() || seconds < 0.0 || seconds > max_s {
        return Err(invalid(
            field,
            seconds,
            format!("must be a number of seconds from 0 to {max_s}"),
        ));
    }
    // In range: 0..=3.6e6 ms fits in u64 exactly.
    Ok((seconds * 1000.0).round() as u64)
}

fn positive_millis(field: &str, seconds: f64, max_s: f64) -> Result<u64, SpecError> {
    let ms = millis(field, seconds, max_s)?;
    if ms == 0 {
        return Err(invalid(field, seconds, "must be more than 0 seconds"));
    }
    Ok(ms)
}

fn index(field: &str, i: usize, nodes: usize) -> Result<usize, SpecError> {
    if i >= nodes {
        return Err(invalid(
            field,
            i,
            format!(
                "no such node: the network has {nodes} (0..={})",
                nodes.saturating_sub(1)
            ),
        ));
    }
    Ok(i)
}

fn scale_times(raw: &mut RawFile, scale: f64) {
    if scale == 1.0 {
        return;
    }
    raw.duration_s = raw.duration_s.map(|d| d * scale);
    if let Some(load) = raw.load.as_mut() {
        load.duration_s *= scale;
        load.start_s = load.start_s.map(|s| s * scale);
    }
    for node in &mut raw.network.node {
        let node = node.get_mut();
        node.start_s = node.start_s.map(|s| s * scale);
    }
    for step in &mut raw.at {
        let step = step.get_mut();
        step.t *= scale;
        step.jitter_s = step.jitter_s.map(|j| j * scale);
    }
}

// ----- [network] ----------------------------------------------------------------------------

fn network(raw: &RawNetwork, lines: &LineIndex) -> Result<Network, SpecError> {
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

fn link_spec(field: &str, raw: &RawLink) -> Result<LinkSpec, SpecError> {
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
fn link_groups(
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

// ----- [load] -------------------------------------------------------------------------------

fn load_of(raw: &RawLoad, network: &Network) -> Result<Load, SpecError> {
    if !(1..=MAX_TPS).contains(&raw.tps) {
        return Err(invalid(
            "load.tps",
            raw.tps,
            format!("must be 1 to {MAX_TPS}"),
        ));
    }
    let duration_ms = positive_millis("load.duration_s", raw.duration_s, MAX_DURATION_S)?;
    let start_ms = millis("load.start_s", raw.start_s.unwrap_or(0.0), MAX_DURATION_S)?;
    let accounts = raw.accounts.unwrap_or(8);
    if accounts == 0 {
        return Err(invalid("load.accounts", 0, "at least 1 sending account"));
    }
    let pattern = pattern(raw)?;
    let nodes = match &raw.nodes {
        None => (0..network.nodes).collect(),
        Some(list) if list.is_empty() => {
            return Err(invalid("load.nodes", "[]", "name at least one node"));
        }
        Some(list) => list
            .iter()
            .map(|&i| index("load.nodes", i, network.nodes))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let fee = raw.fee.unwrap_or(network.genesis.min_fee);
    if fee < network.genesis.min_fee {
        return Err(invalid(
            "load.fee",
            fee,
            format!("below the network's min_fee {}", network.genesis.min_fee),
        ));
    }
    let confirm_timeout_ms = millis(
        "load.confirm_timeout_s",
        raw.confirm_timeout_s.unwrap_or(30.0),
        MAX_DURATION_S,
    )?;
    let load = Load {
        tps: raw.tps,
        start_ms,
        duration_ms,
        accounts,
        pattern,
        nodes,
        fee,
        confirm_timeout_ms,
    };
    if load.total() > MAX_TRANSFERS {
        return Err(invalid(
            "load.tps x load.duration_s",
            load.total(),
            format!("at most {MAX_TRANSFERS} transfers (each is kept for the report)"),
        ));
    }
    Ok(load)
}

fn pattern(raw: &RawLoad) -> Result<Pattern, SpecError> {
    match raw.pattern.as_deref().unwrap_or("steady") {
        "steady" => Ok(Pattern::Steady),
        "bursts" => Ok(Pattern::Bursts {
            period_ms: positive_millis(
                "load.burst_period_s",
                raw.burst_period_s.unwrap_or(5.0),
                MAX_DURATION_S,
            )?,
        }),
        other => Err(invalid(
            "load.pattern",
            format!("{other:?}"),
            "must be \"steady\" or \"bursts\"",
        )),
    }
}

// ----- [[at]] -------------------------------------------------------------------------------

/// A step as the file gives it, its time drawn, its node not yet when it is `"any"`.
#[derive(Debug, Clone)]
struct Draft {
    /// Its `[[at]]` index (`None`: a delayed start), the item of its draws.
    at: Option<usize>,
    t_ms: u64,
    written_t_ms: u64,
    jitter_ms: u64,
    line: usize,
    source: String,
    planned: Planned,
}

/// What a draft does.
#[derive(Debug, Clone)]
enum Planned {
    /// As written.
    Fixed(Action),
    /// `kill`, `stop` or `start = "any"`: the node is drawn when the timeline is walked.
    Any(Lifecycle),
}

/// The steps that may name `"any"` node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Kill,
    Stop,
    Start,
}

impl Lifecycle {
    fn name(self) -> &'static str {
        match self {
            Lifecycle::Kill => "kill",
            Lifecycle::Stop => "stop",
            Lifecycle::Start => "start",
        }
    }

    fn action(self, node: usize) -> Action {
        match self {
            Lifecycle::Kill => Action::Kill(node),
            Lifecycle::Stop => Action::Stop(node),
            Lifecycle::Start => Action::Start(node),
        }
    }
}

/// `[[at]]` number `i`: its one action and its time, drawn from `[t, t + jitter_s]`.
fn step(i: usize, raw: &RawStep, nodes: usize, seed: u64) -> Result<Draft, SpecError> {
    let f = |name: &str| format!("at[{i}].{name}");
    let written_t_ms = millis(&f("t"), raw.t, MAX_DURATION_S)?;
    let jitter_ms = jitter(&f("jitter_s"), raw.jitter_s, written_t_ms)?;
    let mut actions: Vec<(&str, Planned)> = Vec::new();
    if let Some(groups) = &raw.partition {
        let groups = partition(&f("partition"), groups, nodes)?;
        actions.push(("partition", Planned::Fixed(Action::Partition(groups))));
    }
    if let Some(heal) = raw.heal {
        if !heal {
            return Err(invalid(
                f("heal"),
                false,
                "write `heal = true` or leave it out",
            ));
        }
        actions.push(("heal", Planned::Fixed(Action::Heal)));
    }
    for (lifecycle, node) in [
        (Lifecycle::Kill, raw.kill),
        (Lifecycle::Stop, raw.stop),
        (Lifecycle::Start, raw.start),
    ] {
        let planned = match node {
            None => continue,
            Some(RawNodeRef::Any) => Planned::Any(lifecycle),
            Some(RawNodeRef::Index(n)) => {
                Planned::Fixed(lifecycle.action(index(&f(lifecycle.name()), n, nodes)?))
            }
        };
        actions.push((lifecycle.name(), planned));
    }
    if let Some(m) = &raw.mining {
        let node = index(&f("mining.node"), m.node, nodes)?;
        let enabled = m.enabled;
        actions.push(("mining", Planned::Fixed(Action::Mining { node, enabled })));
    }
    if let Some(a) = &raw.adversary {
        let action = adversary_step(&f("adversary"), a, nodes)?;
        actions.push(("adversary", Planned::Fixed(action)));
    }
    if let Some(l) = &raw.link {
        actions.push(("link", Planned::Fixed(link_step(&f("link"), l, nodes)?)));
    }
    if let Some(h) = &raw.hash_share {
        let action = hash_share_step(&f("hash_share"), h, nodes)?;
        actions.push(("hash_share", Planned::Fixed(action)));
    }
    let planned = match actions.len() {
        1 => actions.remove(0).1,
        0 => {
            return Err(invalid(
                format!("at[{i}]"),
                format!("t = {}", raw.t),
                "no action: give one of partition, heal, kill, stop, start, mining, adversary, link, hash_share",
            ));
        }
        _ => {
            let names: Vec<&str> = actions.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                format!("at[{i}]"),
                names.join(" and "),
                "a step holds exactly one action: write one [[at]] per action",
            ));
        }
    };
    let item = i as u64;
    let offset = seeded::below(seed, Stream::StepTime, item, jitter_ms + 1);
    Ok(Draft {
        at: Some(i),
        t_ms: written_t_ms + offset,
        written_t_ms,
        jitter_ms,
        line: 0,
        source: format!("at[{i}]"),
        planned,
    })
}

/// `jitter_s` in ms (0 when not given); the step must end by [`MAX_DURATION_S`] whatever
/// is drawn.
fn jitter(field: &str, given: Option<f64>, t_ms: u64) -> Result<u64, SpecError> {
    let Some(seconds) = given else {
        return Ok(0);
    };
    let ms = millis(field, seconds, MAX_DURATION_S)?;
    let max_ms = (MAX_DURATION_S * 1000.0) as u64;
    if t_ms + ms > max_ms {
        return Err(invalid(
            field,
            seconds,
            format!(
                "t + jitter_s is {} s: a step must be due by {MAX_DURATION_S} s",
                secs(t_ms + ms)
            ),
        ));
    }
    Ok(ms)
}

fn link_step(field: &str, raw: &RawLink, nodes: usize) -> Result<Action, SpecError> {
    let between = match &raw.between {
        Some(groups) => Some(link_groups(&format!("{field}.between"), groups, nodes)?),
        None => None,
    };
    let fault = link_spec(field, raw)?;
    Ok(Action::Link { between, fault })
}

fn hash_share_step(field: &str, raw: &RawHashShare, nodes: usize) -> Result<Action, SpecError> {
    let node = index(&format!("{field}.node"), raw.node, nodes)?;
    if !(raw.share.is_finite() && (0.0..=1.0).contains(&raw.share)) {
        return Err(invalid(
            format!("{field}.share"),
            raw.share,
            "must be from 0 to 1",
        ));
    }
    Ok(Action::HashShare {
        node,
        share: raw.share,
    })
}

fn partition(
    field: &str,
    groups: &[Vec<usize>],
    nodes: usize,
) -> Result<Vec<Vec<usize>>, SpecError> {
    let groups = link_groups(field, groups, nodes)?;
    // A node outside every group would stay connected to both sides and relay between them.
    if let Some(left_out) = (0..nodes).find(|n| !groups.iter().flatten().any(|g| g == n)) {
        return Err(invalid(
            field,
            format!("{groups:?}"),
            format!("node {left_out} is in no group: put every node in one"),
        ));
    }
    Ok(groups)
}

fn adversary_step(field: &str, raw: &RawAdversary, nodes: usize) -> Result<Action, SpecError> {
    let node = index(&format!("{field}.node"), raw.node, nodes)?;
    if raw.mode == "off" {
        return Ok(Action::Adversary { node, mode: None });
    }
    let mode: AdversaryMode = raw
        .mode
        .parse()
        .map_err(|e| invalid(format!("{field}.mode"), format!("{:?}", raw.mode), e))?;
    if mode.network().is_some() {
        return Err(invalid(
            format!("{field}.mode"),
            format!("{:?}", raw.mode),
            "a network-level mode can only be chosen at start: set it in [[network.node]] adversary",
        ));
    }
    Ok(Action::Adversary {
        node,
        mode: Some(raw.mode.clone()),
    })
}

/// Walks the drafts in time order: draws the node of each `"any"` step among those in the
/// right state then, and refuses the steps that cannot happen ([`Sim::apply`]). Returns the
/// steps and whether a partition is still in place at the end.
fn resolve_timeline(
    drafts: Vec<Draft>,
    network: &Network,
    seed: u64,
) -> Result<(Vec<Step>, bool), SpecError> {
    let adversaries = adversary_nodes(&drafts, network);
    let mut sim = Sim::new(network);
    let mut steps = Vec::with_capacity(drafts.len());
    for d in drafts {
        let (action, drawn_from) = match d.planned {
            Planned::Fixed(action) => (action, None),
            Planned::Any(lifecycle) => {
                let pool = sim.candidates(lifecycle, &adversaries);
                if pool.is_empty() {
                    return Err(invalid(
                        format!("{}.{}", d.source, lifecycle.name()),
                        "\"any\"",
                        format!(
                            "{} {}",
                            no_candidate(lifecycle),
                            when(d.t_ms, d.written_t_ms, d.jitter_ms, seed)
                        ),
                    )
                    .at_line(d.line));
                }
                let item = d.at.unwrap_or_default() as u64;
                let pick = seeded::below(seed, Stream::StepNode, item, pool.len() as u64);
                let node = pool[usize::try_from(pick).unwrap_or_default()];
                (lifecycle.action(node), Some(pool))
            }
        };
        let step = Step {
            t_ms: d.t_ms,
            written_t_ms: d.written_t_ms,
            jitter_ms: d.jitter_ms,
            line: d.line,
            source: d.source,
            action,
            drawn_from,
        };
        sim.apply(&step).map_err(|(value, reason)| {
            let at = when(step.t_ms, step.written_t_ms, step.jitter_ms, seed);
            invalid(step.source.clone(), value, format!("{reason} {at}")).at_line(step.line)
        })?;
        steps.push(step);
    }
    Ok((steps, sim.partitioned))
}

/// Why no node qualifies for an `"any"` step.
fn no_candidate(lifecycle: Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Kill | Lifecycle::Stop => {
            "no node qualifies: every node that is never an adversary is down then"
        }
        Lifecycle::Start => {
            "no node qualifies: no node that is never an adversary was killed or stopped and \
             is down then"
        }
    }
}

/// `(t = 12.3 s)`, or `(t = 12.3 s, drawn from 10 s to 15 s with seed 7)`.
fn when(t_ms: u64, written_t_ms: u64, jitter_ms: u64, seed: u64) -> String {
    if jitter_ms == 0 {
        return format!("(t = {} s)", secs(t_ms));
    }
    format!(
        "(t = {} s, drawn from {} s to {} s with seed {seed})",
        secs(t_ms),
        secs(written_t_ms),
        secs(written_t_ms + jitter_ms)
    )
}

/// The nodes in an adversary mode at some time: from the start or by an `adversary` step.
fn adversary_nodes(drafts: &[Draft], network: &Network) -> BTreeSet<usize> {
    let from_steps = drafts.iter().filter_map(|d| match &d.planned {
        Planned::Fixed(Action::Adversary {
            node,
            mode: Some(_),
        }) => Some(*node),
        _ => None,
    });
    network
        .node
        .iter()
        .filter(|n| n.adversary.is_some())
        .map(|n| n.index)
        .chain(from_steps)
        .collect()
}

/// The static simulation of the timeline: which nodes run, which have a hash share, whether
/// a partition is in place.
struct Sim {
    running: Vec<bool>,
    /// Whether the node has run at some time (a delayed node has not before its start).
    started: Vec<bool>,
    has_share: Vec<bool>,
    partitioned: bool,
}

impl Sim {
    fn new(network: &Network) -> Self {
        let running: Vec<bool> = network.node.iter().map(|n| n.start_ms == 0).collect();
        Sim {
            started: running.clone(),
            running,
            has_share: network.node.iter().map(|n| n.hashrate > 0).collect(),
            partitioned: false,
        }
    }

    /// The nodes an `"any"` step may draw: never adversaries, running (kill, stop) or down
    /// after having run (start); node 0, the bootnode, only when it is the only one.
    fn candidates(&self, lifecycle: Lifecycle, adversaries: &BTreeSet<usize>) -> Vec<usize> {
        let fits: Vec<usize> = (0..self.running.len())
            .filter(|n| !adversaries.contains(n))
            .filter(|&n| match lifecycle {
                Lifecycle::Kill | Lifecycle::Stop => self.running[n],
                Lifecycle::Start => !self.running[n] && self.started[n],
            })
            .collect();
        if fits.iter().any(|&n| n != 0) {
            fits.into_iter().filter(|&n| n != 0).collect()
        } else {
            fits
        }
    }

    /// Carries out `step` on the simulation, or says why it cannot happen: killing, stopping
    /// or switching a node that is not running, starting one that is, healing without a
    /// partition, partitioning twice, turning on mining on a node with no hash share then.
    /// The error is the value and the reason.
    fn apply(&mut self, step: &Step) -> Result<(), (String, String)> {
        let what = step.action.describe();
        let fail = |reason: String| Err((what.clone(), reason));
        match &step.action {
            Action::Partition(_) if self.partitioned => {
                return fail("a partition is in place: heal it first".into());
            }
            Action::Partition(_) => self.partitioned = true,
            Action::Heal if !self.partitioned => {
                return fail("there is no partition to heal".into());
            }
            Action::Heal => self.partitioned = false,
            Action::Kill(i) | Action::Stop(i) => {
                if !self.running[*i] {
                    return fail(format!("node {i} is not running then"));
                }
                self.running[*i] = false;
            }
            Action::Start(i) => {
                if self.running[*i] {
                    return fail(format!("node {i} is already running then"));
                }
                self.running[*i] = true;
                self.started[*i] = true;
            }
            Action::Mining { node, enabled } => {
                if !self.running[*node] {
                    return fail(format!("node {node} is not running then"));
                }
                if *enabled && !self.has_share[*node] {
                    return fail(format!(
                        "node {node} has hash_share 0 then: give it a share in [[network.node]] or a hash_share step"
                    ));
                }
            }
            Action::HashShare { node, share } => self.has_share[*node] = *share > 0.0,
            Action::Link { .. } => {}
            Action::Adversary { node, .. } => {
                if !self.running[*node] {
                    return fail(format!("node {node} is not running then"));
                }
            }
        }
        Ok(())
    }
}

/// A node switched into an adversary mode on the timeline needs `--allow-adversary`.
fn allow_adversaries(steps: &[Step], network: &mut Network) {
    for s in steps {
        if let Action::Adversary { node, .. } = s.action {
            network.node[node].allow_adversary = true;
        }
    }
}

// ----- [assert] and the run's length -----------------------------------------------------

fn assertions(raw: &RawAssert, has_load: bool) -> Result<Assertions, SpecError> {
    if let Some(rate) = raw.max_stale_rate
        && !(rate.is_finite() && (0.0..=1.0).contains(&rate))
    {
        return Err(invalid(
            "assert.max_stale_rate",
            rate,
            "must be from 0 to 1",
        ));
    }
    let adversary_banned_within_ms = raw
        .adversary_banned_within_s
        .map(|s| positive_millis("assert.adversary_banned_within_s", s, MAX_DURATION_S))
        .transpose()?;
    let converge_within_ms = raw
        .converge_within_s
        .map(|s| positive_millis("assert.converge_within_s", s, MAX_DURATION_S))
        .transpose()?;
    let needs_load = |field: &str| {
        if has_load {
            Ok(())
        } else {
            Err(invalid(field, "(set)", "needs a [load] section"))
        }
    };
    let no_transfer_lost = raw.no_transfer_lost.unwrap_or(false);
    if no_transfer_lost {
        needs_load("assert.no_transfer_lost")?;
    }
    if let Some(tps) = raw.min_confirmed_tps {
        needs_load("assert.min_confirmed_tps")?;
        if !tps.is_finite() || tps < 0.0 {
            return Err(invalid(
                "assert.min_confirmed_tps",
                tps,
                "must be 0 or more",
            ));
        }
    }
    if let Some(p99) = raw.max_p99_confirmation_s {
        needs_load("assert.max_p99_confirmation_s")?;
        if !p99.is_finite() || p99 <= 0.0 {
            return Err(invalid(
                "assert.max_p99_confirmation_s",
                p99,
                "must be more than 0",
            ));
        }
    }
    Ok(Assertions {
        converge_within_ms,
        no_transfer_lost,
        max_reorg_depth: raw.max_reorg_depth,
        min_confirmed_tps: raw.min_confirmed_tps,
        max_p99_confirmation_s: raw.max_p99_confirmation_s,
        max_stale_rate: raw.max_stale_rate,
        adversary_banned_within_ms,
    })
}

/// `duration_s`, or enough to cover the steps, the load and the convergence window plus
/// [`DEFAULT_TAIL_S`]; a given `duration_s` must cover them.
fn duration(
    given: Option<f64>,
    steps: &[Step],
    load: Option<&Load>,
    assert: &Assertions,
) -> Result<u64, SpecError> {
    // The latest a step can be due whatever the seed draws, so a given duration_s is
    // accepted or refused alike for every seed.
    let last_step = steps.iter().map(Step::latest_ms).max().unwrap_or(0);
    let needed = (last_step + assert.converge_within_ms.unwrap_or(0))
        .max(last_step)
        .max(load.map_or(0, Load::end_ms));
    let max_ms = (MAX_DURATION_S * 1000.0) as u64;
    if needed > max_ms {
        return Err(invalid(
            "duration_s",
            needed as f64 / 1000.0,
            format!(
                "the last step, the load and the convergence window need more than the \
                 longest run ({MAX_DURATION_S} s)"
            ),
        ));
    }
    let Some(seconds) = given else {
        let tail = (DEFAULT_TAIL_S * 1000.0) as u64;
        let wanted = needed
            .max(last_step + tail)
            .max(load.map_or(0, |l| l.end_ms() + tail));
        return Ok(wanted.min(max_ms));
    };
    let ms = positive_millis("duration_s", seconds, MAX_DURATION_S)?;
    if ms < needed {
        return Err(invalid(
            "duration_s",
            seconds,
            format!(
                "ends before the scenario does: the last step, the load and the convergence \
                 window need {} s",
                needed as f64 / 1000.0
            ),
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "demo"
seed = 7

[network]
nodes = 4
block_time_ms = 1000
hashrate = 40000
min_fee = 2

[[network.node]]
index = 3
hash_share = 0.4
adversary = "selfish"

[[network.node]]
index = 2
start_s = 5

[load]
tps = 20
duration_s = 30
accounts = 6
nodes = [0, 1]

[[at]]
t = 10
partition = [[0, 1], [2, 3]]

[[at]]
t = 20
heal = true

[[at]]
t = 25
kill = 1

[[at]]
t = 30
start = 1

[[at]]
t = 31
adversary = { node = 3, mode = "off" }

[assert]
converge_within_s = 15
no_transfer_lost = true
max_reorg_depth = 6
"#;

    fn err(text: &str) -> String {
        parse(text, "x").expect_err("must be refused").to_string()
    }

    /// GOOD with `from` replaced by `to` (which must occur).
    fn good_with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn a_good_file_parses_with_defaults_and_shares() {
        let s = parse(GOOD, "x").expect("valid");
        assert_eq!(s.name, "demo");
        assert_eq!(s.seed, 7);
        assert_eq!(s.network.nodes, 4);
        assert_eq!(s.network.genesis.min_fee, 2);
        assert_eq!(s.network.genesis.accounts, 16);
        let n = &s.network.node;
        assert!((n[3].hash_share - 0.4).abs() < 1e-9);
        assert_eq!(n[3].hashrate, 16_000);
        assert_eq!(n[0].hashrate, 8_000, "the rest split evenly");
        assert!(
            n[3].allow_adversary,
            "start mode and step need --allow-adversary"
        );
        assert_eq!(n[2].start_ms, 5000);
        let load = s.load.as_ref().expect("load");
        assert_eq!((load.tps, load.accounts, load.fee), (20, 6, 2));
        assert_eq!(load.nodes, vec![0, 1]);
        assert_eq!(load.total(), 600);
        let actions: Vec<String> = s.steps.iter().map(|s| s.action.describe()).collect();
        assert_eq!(
            actions,
            [
                "start 2",
                "partition [0, 1] | [2, 3]",
                "heal",
                "kill 1",
                "start 1",
                "adversary 3 off"
            ]
        );
        assert_eq!(s.steps[1].line, 26, "the line of its [[at]]");
        assert_eq!(s.steps[0].line, 16, "the line of its [[network.node]]");
        assert_eq!(s.assert.converge_within_ms, Some(15_000));
        // Last step 31 s + 15 s window, or load end 30 s + 20 s tail: 51 s.
        assert_eq!(s.duration_ms, 51_000);
    }

    #[test]
    fn the_smallest_file_is_one_node() {
        let s = parse("[network]\nnodes = 1\n", "tiny").expect("valid");
        assert_eq!(s.name, "tiny");
        assert_eq!(s.network.node[0].hashrate, 100_000);
        assert_eq!(s.duration_ms, 20_000);
        assert!(s.load.is_none() && s.steps.is_empty());
    }

    #[test]
    fn toml_errors_name_the_line_and_field() {
        let e = err("[network]\nnodes = 4\nspeed = 3\n");
        assert!(
            e.contains("line 3") && e.contains("unknown field `speed`"),
            "{e}"
        );
        let e = err("[network]\nnodes = \"four\"\n");
        assert!(e.contains("line 2") && e.contains("nodes"), "{e}");
        let e = err("[load]\ntps = 1\nduration_s = 1\n");
        assert!(e.contains("missing field `network`"), "{e}");
        let e = err(&good_with("kill = 1", "kill = -1"));
        assert!(e.contains("line 36"), "{e}");
    }

    #[test]
    fn bad_values_name_field_value_and_rule() {
        let cases = [
            (
                "nodes = 4",
                "nodes = 17",
                "network.nodes = 17: must be 1 to 16",
            ),
            ("nodes = 4", "nodes = 0", "network.nodes = 0"),
            ("hashrate = 40000", "hashrate = 0", "network.hashrate = 0"),
            (
                "block_time_ms = 1000",
                "block_time_ms = 0",
                "network.block_time_ms = 0",
            ),
            (
                "hash_share = 0.4",
                "hash_share = 1.5",
                "network.node[index = 3].hash_share = 1.5",
            ),
            (
                "index = 3",
                "index = 9",
                "network.node.index = 9: no such node",
            ),
            (
                "index = 2",
                "index = 3",
                "network.node.index = 3: given twice",
            ),
            (
                "\"selfish\"",
                "\"sneaky\"",
                "network.node[index = 3].adversary = \"sneaky\": unknown adversary mode",
            ),
            ("tps = 20", "tps = 0", "load.tps = 0"),
            (
                "accounts = 6",
                "accounts = 17",
                "load.accounts = 17: more senders",
            ),
            ("nodes = [0, 1]", "nodes = [0, 7]", "load.nodes = 7"),
            ("duration_s = 30", "duration_s = -1", "load.duration_s = -1"),
            ("t = 10", "t = -3", "at[0].t = -3"),
            ("kill = 1", "kill = 4", "at[2].kill = 4: no such node"),
            (
                "[[0, 1], [2, 3]]",
                "[[0, 1], [1, 3]]",
                "node 1 is in more than one group",
            ),
            (
                "[[0, 1], [2, 3]]",
                "[[0, 1, 2, 3]]",
                "at least two non-empty groups",
            ),
            ("heal = true", "heal = false", "at[1].heal = false"),
            (
                "mode = \"off\"",
                "mode = \"stall-sync\"",
                "can only be chosen at start",
            ),
            (
                "max_reorg_depth = 6",
                "max_reorg_depth = 6\nmin_confirmed_tps = -1",
                "assert.min_confirmed_tps = -1",
            ),
        ];
        for (from, to, want) in cases {
            let e = err(&good_with(from, to));
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn step_errors_carry_their_line() {
        let e = err(&good_with("kill = 1", "kill = 4"));
        assert!(e.starts_with("line 34: at[2].kill = 4"), "{e}");
        let e = err(&good_with("kill = 1", "kill = 1\nstop = 2"));
        assert!(
            e.contains("line 34: at[2] = kill and stop: a step holds exactly one action"),
            "{e}"
        );
        let e = err(&good_with("kill = 1", ""));
        assert!(e.contains("at[2] = t = 25: no action"), "{e}");
    }

    #[test]
    fn impossible_timelines_are_refused() {
        let e = err(&good_with("start = 1", "kill = 1"));
        assert!(
            e.contains("at[3] = kill 1: node 1 is not running then (t = 30 s)"),
            "{e}"
        );
        let e = err(&good_with("heal = true", "partition = [[0], [1, 2, 3]]"));
        assert!(e.contains("a partition is in place"), "{e}");
        let e = err(&good_with("heal = true", "partition = [[0], [1]]"));
        assert!(
            e.contains("node 2 is in no group: put every node in one"),
            "{e}"
        );
        let e = err(&good_with("partition = [[0, 1], [2, 3]]", "kill = 0"));
        assert!(e.contains("heal: there is no partition to heal"), "{e}");
        let e = err(&good_with("start = 1", "start = 2"));
        assert!(e.contains("start 2: node 2 is already running then"), "{e}");
    }

    #[test]
    fn convergence_cannot_be_asked_of_a_partition_never_healed() {
        let e = err(&good_with(
            "heal = true",
            "mining = { node = 0, enabled = false }",
        ));
        assert!(
            e.contains("assert.converge_within_s = 15: the timeline ends with a partition"),
            "{e}"
        );
    }

    #[test]
    fn the_example_scenarios_parse_and_say_what_they_show() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("scenarios/") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            assert!(
                text.starts_with("# Shows: "),
                "{}: first line",
                path.display()
            );
            let s = load(&path, 1.0, SeedChoice::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(s.duration_ms <= 90_000, "{}: short", path.display());
            count += 1;
        }
        assert!(count >= 3, "{count} examples");
    }

    #[test]
    fn mining_on_needs_a_share() {
        let text = "[network]\nnodes = 2\n[[network.node]]\nindex = 1\nmine = false\n\
                    [[at]]\nt = 1\nmining = { node = 1, enabled = true }\n";
        let e = err(text);
        assert!(e.contains("node 1 has hash_share 0"), "{e}");
        let ok = text.replace("mine = false", "mine = false\nhash_share = 0.5");
        let s = parse(&ok, "x").expect("valid with a share");
        assert_eq!(s.network.node[1].hashrate, 50_000);
        assert!(!s.network.node[1].mine);
    }

    #[test]
    fn the_ban_assertion_needs_an_adversary() {
        let sc = parse(
            &good_with("max_reorg_depth = 6", "adversary_banned_within_s = 10"),
            "x",
        )
        .expect("valid: node 3 is an adversary");
        assert_eq!(sc.assert.adversary_banned_within_ms, Some(10_000));
        let e = err("[network]\nnodes = 2\n[assert]\nadversary_banned_within_s = 5\n");
        assert!(e.contains("no node is an adversary"), "{e}");
    }

    /// The last step of GOOD, free to replace.
    const ADV_OFF: &str = r#"adversary = { node = 3, mode = "off" }"#;

    #[test]
    fn link_faults_hash_shares_and_stale_rates_parse_and_bad_ones_are_refused() {
        let text = good_with(
            ADV_OFF,
            "link = { between = [[0], [2, 3]], loss = 0.05, delay_ms = 80, bandwidth_kbps = 500 }",
        );
        let text = text.replace("min_fee = 2", "min_fee = 2\n[network.link]\ndelay_ms = 20");
        let text = text.replace(
            "max_reorg_depth = 6",
            "max_reorg_depth = 6\nmax_stale_rate = 0.2",
        );
        let text = format!("{text}\n[[at]]\nt = 12\nhash_share = {{ node = 2, share = 0 }}\n");
        let sc = parse(&text, "t").expect("valid");
        assert_eq!(
            sc.network.link,
            Some(LinkSpec {
                loss: 0.0,
                delay_ms: 20,
                bandwidth_kbps: 0
            })
        );
        assert_eq!(sc.assert.max_stale_rate, Some(0.2));
        let actions: Vec<String> = sc.steps.iter().map(|s| s.action.describe()).collect();
        assert!(
            actions.contains(&"link [0] | [2, 3] loss 5%, delay 80 ms, 500 kbit/s".to_owned()),
            "{actions:?}"
        );
        assert!(
            actions.contains(&"hash_share 2 0".to_owned()),
            "{actions:?}"
        );

        let bad = [
            ("link = { loss = 1.5 }", "at[4].link.loss"),
            ("link = { delay_ms = 20000 }", "at[4].link.delay_ms"),
            ("link = { between = [[0], [0]] }", "more than one group"),
            ("link = { between = [[0, 1]] }", "at least two"),
            ("link = { jitter_ms = 3 }", "unknown field `jitter_ms`"),
            (
                "hash_share = { node = 9, share = 0.1 }",
                "at[4].hash_share.node",
            ),
            (
                "hash_share = { node = 1, share = 2 }",
                "at[4].hash_share.share",
            ),
        ];
        for (step, want) in bad {
            let e = err(&good_with(ADV_OFF, step));
            assert!(e.contains(want), "{step}: {e}");
        }
        let e = err(&good_with("max_reorg_depth = 6", "max_stale_rate = 1.5"));
        assert!(e.contains("assert.max_stale_rate"), "{e}");
        let e = err(&good_with(
            "min_fee = 2",
            "min_fee = 2\n[network.link]\nbetween = [[0], [1]]",
        ));
        assert!(e.contains("network.link.between"), "{e}");
    }

    #[test]
    fn scale_multiplies_the_timeline_and_nothing_else() {
        let full = parse(GOOD, "x").expect("valid");
        let half = parse_scaled(GOOD, "x", 0.5).expect("valid at half length");
        assert_eq!(half.scale, 0.5);
        let times = |s: &Scenario| s.steps.iter().map(|s| s.t_ms).collect::<Vec<_>>();
        let halved: Vec<u64> = times(&full).iter().map(|t| t / 2).collect();
        assert_eq!(times(&half), halved);
        let (fl, hl) = (full.load.as_ref(), half.load.as_ref());
        assert_eq!(hl.map(|l| l.duration_ms), fl.map(|l| l.duration_ms / 2));
        assert_eq!(hl.map(|l| l.tps), fl.map(|l| l.tps));
        assert_eq!(half.network.node[2].start_ms, 2_500);
        assert_eq!(half.network.genesis, full.network.genesis);
        assert_eq!(half.assert, full.assert);
        let e = parse_scaled(GOOD, "x", 0.0)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("--scale"), "{e}");
    }

    #[test]
    fn mining_needs_a_share_then_and_a_hash_share_step_gives_one() {
        let base = "[network]\nnodes = 2\n[[network.node]]\nindex = 1\nmine = false\n";
        let on = "[[at]]\nt = 5\nmining = { node = 1, enabled = true }\n";
        let e = err(&format!("{base}{on}"));
        assert!(e.contains("hash_share 0 then"), "{e}");
        let share = "[[at]]\nt = 2\nhash_share = { node = 1, share = 0.3 }\n";
        parse(&format!("{base}{share}{on}"), "t").expect("a share before mining on");
    }

    #[test]
    fn load_assertions_need_a_load_and_duration_must_cover_the_run() {
        let e = err("[network]\nnodes = 1\n[assert]\nno_transfer_lost = true\n");
        assert!(
            e.contains("assert.no_transfer_lost = (set): needs a [load] section"),
            "{e}"
        );
        let e = err(&format!("duration_s = 40\n{GOOD}"));
        assert!(
            e.contains("duration_s = 40: ends before the scenario does"),
            "{e}"
        );
        let s = parse(&format!("duration_s = 60\n{GOOD}"), "x").expect("long enough");
        assert_eq!(s.duration_ms, 60_000);
    }

    #[test]
    fn a_bad_genesis_is_refused_before_any_node_starts() {
        let e = err(&good_with(
            "min_fee = 2",
            "min_fee = 2\naccounts = 50000\nbalance = 1000000000000",
        ));
        assert!(
            e.contains("network = (the genesis fields)") && e.contains("2^53"),
            "{e}"
        );
        let e = err(&good_with("accounts = 6", "accounts = 6\nfee = 1"));
        assert!(
            e.contains("load.fee = 1: below the network's min_fee 2"),
            "{e}"
        );
    }

    #[test]
    fn too_much_load_is_refused() {
        let e =
            err(&good_with("tps = 20", "tps = 10000")
                .replace("duration_s = 30", "duration_s = 100"));
        assert!(e.contains("at most 200000 transfers"), "{e}");
    }

    /// Three nodes, node 2 an adversary, a kill and a start of any node with jitter.
    const SEEDED: &str = r#"
[network]
nodes = 4
[[network.node]]
index = 3
adversary = "selfish"

[[at]]
t = 10
jitter_s = 5
kill = "any"

[[at]]
t = 20
jitter_s = 2.5
start = "any"

[[at]]
t = 30
partition = [[0, 1], [2, 3]]

[[at]]
t = 40
heal = true
jitter_s = 10
"#;

    fn seeded(text: &str, seed: u64) -> Scenario {
        let choice = SeedChoice {
            flag: Some(seed),
            otherwise: 0,
        };
        parse_with(text, "s", 1.0, choice).unwrap_or_else(|e| panic!("seed {seed}: {e}"))
    }

    /// Each step's time and action, the timeline a seed draws.
    fn timeline(s: &Scenario) -> Vec<(u64, String)> {
        s.steps
            .iter()
            .map(|s| (s.t_ms, s.action.describe()))
            .collect()
    }

    #[test]
    fn one_seed_draws_one_timeline_and_another_seed_another() {
        let a = seeded(SEEDED, 11);
        assert_eq!(a.seed, 11);
        assert_eq!(timeline(&a), timeline(&seeded(SEEDED, 11)), "repeatable");
        let others: BTreeSet<Vec<(u64, String)>> = (0..20)
            .map(|seed| timeline(&seeded(SEEDED, seed)))
            .collect();
        assert!(others.len() > 10, "seeds draw different timelines");
        for seed in 0..50 {
            let s = seeded(SEEDED, seed);
            let [kill, start, _, heal] = s.steps.as_slice() else {
                panic!("four steps: {:?}", timeline(&s));
            };
            assert!((10_000..=15_000).contains(&kill.t_ms), "{}", kill.t_ms);
            assert!((20_000..=22_500).contains(&start.t_ms), "{}", start.t_ms);
            assert!((40_000..=50_000).contains(&heal.t_ms), "{}", heal.t_ms);
            assert_eq!(kill.written_t_ms, 10_000);
            assert_eq!(kill.jitter_ms, 5_000);
            let Action::Kill(killed) = kill.action else {
                panic!("{:?}", kill.action);
            };
            assert!([1, 2].contains(&killed), "never node 0 nor the adversary 3");
            assert_eq!(kill.drawn_from, Some(vec![1, 2]));
            assert_eq!(start.action, Action::Start(killed), "the only node down");
            assert_eq!(start.drawn_from, Some(vec![killed]));
            // The duration covers the latest heal any seed can draw, plus the 20 s tail.
            assert_eq!(s.duration_ms, 70_000);
        }
    }

    #[test]
    fn the_report_states_what_the_seed_drew() {
        let s = seeded(SEEDED, 3);
        let kill = &s.steps[0];
        let node = kill.action.node().expect("a node");
        assert_eq!(
            kill.draws(),
            [
                format!("t drawn from 10 s to 15 s: {} s", kill.t_ms as f64 / 1000.0),
                format!("node {node} drawn from [1, 2]"),
            ]
        );
        assert!(s.steps[2].draws().is_empty(), "written as it happens");
    }

    #[test]
    fn a_step_added_at_the_end_changes_no_other_draw_nor_the_load_seed() {
        let more = format!("{SEEDED}\n[[at]]\nt = 45\njitter_s = 3\nkill = \"any\"\n");
        let by_source = |s: &Scenario| -> Vec<(String, u64, String)> {
            s.steps
                .iter()
                .filter(|s| s.source != "at[4]")
                .map(|s| (s.source.clone(), s.t_ms, s.action.describe()))
                .collect()
        };
        for seed in 0..10 {
            let (a, b) = (seeded(SEEDED, seed), seeded(&more, seed));
            assert_eq!(by_source(&a), by_source(&b), "seed {seed}");
            assert_eq!(b.steps.len(), 5);
            assert_eq!(a.seed, b.seed);
        }
    }

    #[test]
    fn jitter_scales_with_the_timeline() {
        let choice = SeedChoice {
            flag: Some(5),
            otherwise: 0,
        };
        let half = parse_with(SEEDED, "s", 0.5, choice).expect("valid at half length");
        assert_eq!(half.steps[0].written_t_ms, 5_000);
        assert_eq!(half.steps[0].jitter_ms, 2_500);
        assert!((5_000..=7_500).contains(&half.steps[0].t_ms));
    }

    #[test]
    fn the_seed_is_the_flag_then_the_file_then_the_fallback() {
        let choice = |flag| SeedChoice {
            flag,
            otherwise: 99,
        };
        let with_seed = format!("seed = 4\n{SEEDED}");
        let pick = |text: &str, flag| parse_with(text, "s", 1.0, choice(flag)).expect("ok");
        assert_eq!(pick(&with_seed, Some(8)).seed, 8);
        assert_eq!(pick(&with_seed, None).seed, 4);
        assert_eq!(pick(SEEDED, None).seed, 99);
    }

    #[test]
    fn the_drawn_times_are_what_the_timeline_checks() {
        // Node 1 is killed between 10 and 20 s and started at 15 s: refused when the kill
        // falls after the start, valid otherwise.
        let text = "[network]\nnodes = 2\n[[at]]\nt = 10\njitter_s = 10\nkill = 1\n\
                    [[at]]\nt = 15\nstart = 1\n";
        let outcomes: Vec<Result<Scenario, String>> = (0..20)
            .map(|seed| {
                let choice = SeedChoice {
                    flag: Some(seed),
                    otherwise: 0,
                };
                parse_with(text, "s", 1.0, choice).map_err(|e| e.to_string())
            })
            .collect();
        assert!(outcomes.iter().any(Result::is_ok), "{outcomes:?}");
        let refused = outcomes
            .iter()
            .find_map(|o| o.as_ref().err())
            .expect("some seed draws the kill after the start");
        assert!(
            refused
                .starts_with("line 7: at[1] = start 1: node 1 is already running then (t = 15 s)"),
            "{refused}"
        );
        for s in outcomes.iter().flatten() {
            assert_eq!(s.steps[0].action, Action::Kill(1), "{:?}", timeline(s));
            assert!(s.steps[0].t_ms <= 15_000, "the kill drawn before the start");
        }
        let text = "[network]\nnodes = 2\n[[at]]\nt = 10\njitter_s = 10\nkill = 1\n\
                    [[at]]\nt = 25\nkill = 1\n";
        let e = err(text);
        assert!(
            e.contains("at[1] = kill 1: node 1 is not running then (t = 25 s)"),
            "{e}"
        );
        let text = "[network]\nnodes = 2\n[[at]]\nt = 10\njitter_s = 10\nkill = 1\n\
                    [[at]]\nt = 12\njitter_s = 1\nkill = 1\n";
        let e = err(text);
        assert!(
            e.contains("node 1 is not running then (t = ") && e.contains("with seed 0)"),
            "the drawn time, its range and the seed: {e}"
        );
    }

    #[test]
    fn any_node_prefers_others_to_node_0_and_refuses_when_none_fits() {
        let one = "[network]\nnodes = 1\n[[at]]\nt = 1\nstop = \"any\"\n\
                   [[at]]\nt = 2\nstart = \"any\"\n";
        let s = parse(one, "x").expect("node 0 is the only choice");
        assert_eq!(
            timeline(&s),
            [(1_000, "stop 0".to_owned()), (2_000, "start 0".to_owned())]
        );
        let e = err("[network]\nnodes = 2\n[[at]]\nt = 1\nstart = \"any\"\n");
        assert!(
            e.starts_with("line 3: at[0].start = \"any\": no node qualifies: no node that is never an adversary was killed or stopped and is down then (t = 1 s)"),
            "{e}"
        );
        let adversaries = "[network]\nnodes = 2\n[[network.node]]\nindex = 1\n\
                           adversary = \"selfish\"\n[[at]]\nt = 1\nkill = 0\n\
                           [[at]]\nt = 2\njitter_s = 1\nkill = \"any\"\n";
        let e = err(adversaries);
        assert!(
            e.starts_with("line 9: at[1].kill = \"any\": no node qualifies: every node that is never an adversary is down then (t = "),
            "{e}"
        );
        // A node delayed by start_s is not "down" for start = "any" before its start.
        let delayed = "[network]\nnodes = 3\n[[network.node]]\nindex = 2\nstart_s = 9\n\
                       [[at]]\nt = 1\nkill = 1\n[[at]]\nt = 2\nstart = \"any\"\n";
        let s = parse(delayed, "x").expect("valid");
        assert_eq!(s.steps[1].action, Action::Start(1));
    }

    #[test]
    fn bad_node_refs_and_jitters_name_the_line_and_field() {
        let e = err(&good_with("kill = 1", "kill = \"some\""));
        assert!(
            e.contains("line 36") && e.contains("kill") && e.contains("a node index or \"any\""),
            "{e}"
        );
        let e = err(&good_with("kill = 1", "kill = \"any\"\njitter_s = -1"));
        assert!(
            e.starts_with("line 34: at[2].jitter_s = -1: must be a number of seconds"),
            "{e}"
        );
        let e = err(&good_with("kill = 1", "kill = 1\njitter_s = 3590"));
        assert!(
            e.starts_with("line 34: at[2].jitter_s = 3590: t + jitter_s is 3615 s"),
            "{e}"
        );
        let e = err(&good_with("kill = 1", "kill = 7"));
        assert!(e.contains("at[2].kill = 7: no such node"), "{e}");
    }
}
