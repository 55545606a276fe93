//! Scenario files: TOML text → typed, validated [`Scenario`].
//!
//! It owns: the file format (docs/SCENARIOS.md documents every field), the defaults, and
//! every check that can be made before a node starts: counts and bounds, node indexes,
//! the order of the timeline (a node is killed only while running, a partition is healed
//! only when there is one), the genesis the `[network]` fields describe, and the keys that
//! are planned but not built yet (refused with "not supported yet"). The seeded parts of the
//! timeline are drawn here (in `timeline`), before those checks, so they judge the drawn
//! timeline: each step's time within its `jitter_s` and the node of `kill`, `stop` or
//! `start = "any"` (the draws themselves are [`super::seeded`]'s).
//! It must never: start processes, touch the network, read the clock or draw from anything
//! but the run's seed. Errors name the field (and the line for `[[at]]` and
//! `[[network.node]]` entries) and the value.
//!
//! This module holds the typed scenario, its errors and the entry points ([`parse_with`] and
//! its wrappers); the rest sits by table: `raw` (the file as serde reads it), `network`
//! (`[network]`, its nodes and links, the genesis), `load`, `timeline` (`[[at]]` steps, drawn
//! and simulated) and `assertions`.

use std::path::{Path, PathBuf};

use serde::Serialize;

mod assertions;
mod load;
mod network;
mod raw;
#[cfg(test)]
mod tests;
mod timeline;

use assertions::duration;
use load::load_of;
pub use network::{build_genesis, genesis_args};
use raw::RawFile;
use timeline::{allow_adversaries, at_steps, delayed_starts, resolve_timeline};

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
    let mut network = network::network(&raw.network, &lines)?;
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
    let assert = assertions::assertions(&raw.assert, load.is_some())?;
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
