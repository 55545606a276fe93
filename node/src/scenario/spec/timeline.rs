//! `[[at]]` steps: each step checked, its seeded time and node drawn from the run's seed, then
//! the whole timeline simulated so that a node is killed only while running and a partition
//! healed only when there is one. It must never draw from anything but the run's seed, nor
//! carry a step out (the runner's `timeline` does).

use std::collections::BTreeSet;

use toml::Spanned;

use super::network::{link_groups, link_spec};
use super::raw::{RawAdversary, RawHashShare, RawLink, RawNetwork, RawNodeRef, RawStep};
use super::{
    Action, LineIndex, MAX_DURATION_S, MAX_STEPS, Network, SpecError, Step, index, invalid, millis,
    secs,
};
use crate::adversary::AdversaryMode;
use crate::scenario::seeded::{self, Stream};

/// The `[[at]]` steps in file order, each at its drawn time.
pub(super) fn at_steps(
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
pub(super) fn delayed_starts(raw: &RawNetwork, network: &Network, lines: &LineIndex) -> Vec<Draft> {
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

/// A step as the file gives it, its time drawn, its node not yet when it is `"any"`.
#[derive(Debug, Clone)]
pub(super) struct Draft {
    /// Its `[[at]]` index (`None`: a delayed start), the item of its draws.
    at: Option<usize>,
    pub(super) t_ms: u64,
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
pub(super) fn resolve_timeline(
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
pub(super) fn allow_adversaries(steps: &[Step], network: &mut Network) {
    for s in steps {
        if let Action::Adversary { node, .. } = s.action {
            network.node[node].allow_adversary = true;
        }
    }
}
