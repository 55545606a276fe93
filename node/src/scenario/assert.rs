//! Assertions: pure functions from what the run recorded (samples, steps, chain events,
//! transfers, the final chain) to a pass or fail with the expected and the actual value.
//!
//! It owns: the meaning of each `[assert]` field (docs/SCENARIOS.md), and of "running" at a
//! time (from the step records: down from the start of a kill or stop, up from the end of a
//! successful start).
//! It must never: read a clock, do I/O or look at anything but [`Evidence`]; every time it
//! uses is a field of it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::blocks::BlockTree;
use super::confirm::FinalChain;
use super::events::{ChainEvent, EventKind};
use super::load::TransferRecord;
use super::sample::Sample;
use super::spec::{Action, Assertions, Load};
use super::timeline::StepRecord;

/// The result of one assertion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// The `[assert]` field.
    pub name: &'static str,
    /// What it asks, in words.
    pub expected: String,
    /// What the run measured, in words.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}

/// Everything the assertions look at.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    /// Whether each node was started at the beginning of the run.
    pub initially_running: &'a [bool],
    /// The steps carried out.
    pub steps: &'a [StepRecord],
    /// Status samples.
    pub samples: &'a [Sample],
    /// Chain events of every node.
    pub events: &'a [ChainEvent],
    /// Why the events may miss a reorg (`events::incomplete`), if they may.
    pub events_incomplete: Option<&'a str>,
    /// The blocks those events saw.
    pub blocks: &'a BlockTree,
    /// The load's transfers, annotated with their confirmations.
    pub transfers: &'a [TransferRecord],
    /// The reference node's final main chain, if one could be read.
    pub chain: Option<&'a FinalChain>,
    /// The load, if any.
    pub load: Option<&'a Load>,
    /// Whether each node started in an adversary mode.
    pub adversary_at_start: &'a [bool],
    /// Each node's libp2p peer id, once known.
    pub peer_ids: &'a [Option<String>],
}

/// Evaluates every assertion the scenario sets, in a fixed order.
pub fn evaluate(a: &Assertions, ev: &Evidence<'_>) -> Vec<Outcome> {
    let mut out = Vec::new();
    if let Some(window) = a.converge_within_ms {
        out.push(converge(window, ev));
    }
    if a.no_transfer_lost {
        out.push(no_transfer_lost(ev));
    }
    if let Some(limit) = a.max_reorg_depth {
        out.push(max_reorg_depth(limit, ev.events, ev.events_incomplete));
    }
    if let Some(min) = a.min_confirmed_tps {
        out.push(min_confirmed_tps(min, ev));
    }
    if let Some(max) = a.max_p99_confirmation_s {
        out.push(max_p99_confirmation(max, ev.transfers));
    }
    if let Some(max) = a.max_stale_rate {
        out.push(max_stale_rate(max, ev));
    }
    if let Some(within) = a.adversary_banned_within_ms {
        out.push(adversary_banned(within, ev));
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Whether node `node` was running at `t_ms`, replaying the step records.
pub fn running_at(node: usize, t_ms: u64, initially: bool, steps: &[StepRecord]) -> bool {
    let mut running = initially;
    for s in steps {
        match s.action {
            Action::Start(i) if i == node && s.ok && s.finished_ms <= t_ms => running = true,
            Action::Kill(i) | Action::Stop(i) if i == node && s.started_ms <= t_ms => {
                running = false;
            }
            _ => {}
        }
    }
    running
}

/// The first sampling round taken wholly at or after `from_ms` in which every node running
/// then answered with the same tip; its time.
pub fn converged_at(ev: &Evidence<'_>, from_ms: u64) -> Option<u64> {
    rounds(ev.samples)
        .into_iter()
        .find(|round| round.iter().all(|s| s.t_ms >= from_ms) && agree(ev, round))
        .and_then(|round| round.iter().map(|s| s.t_ms).max())
}

fn rounds(samples: &[Sample]) -> Vec<Vec<&Sample>> {
    let mut by_round: BTreeMap<u32, Vec<&Sample>> = BTreeMap::new();
    for s in samples {
        by_round.entry(s.round).or_default().push(s);
    }
    by_round.into_values().collect()
}

/// Whether every honest node running at the round's time (every running node, when all are
/// adversaries) answered with the same tip. An adversary is left out: a banned one cannot
/// follow the others until its ban ends, and a selfish one keeps a private chain.
fn agree(ev: &Evidence<'_>, round: &[&Sample]) -> bool {
    let t = round.iter().map(|s| s.t_ms).max().unwrap_or(0);
    let adversaries = adversaries_since(ev);
    let all_adversaries = (0..ev.initially_running.len()).all(|i| adversaries.contains_key(&i));
    let mut tips = ev
        .initially_running
        .iter()
        .enumerate()
        .filter(|&(i, _)| all_adversaries || !adversaries.contains_key(&i))
        .filter(|&(i, &initially)| running_at(i, t, initially, ev.steps))
        .map(|(i, _)| {
            round
                .iter()
                .find(|s| s.node == i)
                .and_then(|s| s.tip.as_deref())
        });
    let Some(Some(first)) = tips.next() else {
        return false;
    };
    tips.all(|tip| tip == Some(first))
}

/// How far back from the last sampling round "still on one tip at the end" looks: a block
/// mined just before the end may be on its way to the last nodes in the very last round.
pub const END_AGREEMENT_MS: u64 = 3_000;

/// Whether the nodes agreed in some round of the last [`END_AGREEMENT_MS`] of samples.
fn still_agree_at_the_end(ev: &Evidence<'_>) -> bool {
    let all = rounds(ev.samples);
    let Some(last_t) = all.last().and_then(|r| r.iter().map(|s| s.t_ms).max()) else {
        return false;
    };
    all.iter()
        .rev()
        .take_while(|r| r.iter().all(|s| s.t_ms + END_AGREEMENT_MS >= last_t))
        .any(|r| agree(ev, r))
}

fn converge(window_ms: u64, ev: &Evidence<'_>) -> Outcome {
    let from = ev.steps.last().map_or(0, |s| s.finished_ms);
    let expected = format!(
        "every running honest node on one tip within {} after the last step",
        seconds(window_ms)
    );
    let found = converged_at(ev, from);
    let stayed = still_agree_at_the_end(ev);
    let (passed, actual) = match found {
        Some(t) if t - from <= window_ms && !stayed => (
            false,
            format!(
                "one tip {} after the last step, but not at the end; {}",
                seconds(t - from),
                last_tips(ev)
            ),
        ),
        Some(t) if t - from <= window_ms => (
            true,
            format!("one tip {} after the last step", seconds(t - from)),
        ),
        Some(t) => (
            false,
            format!("one tip only {} after the last step", seconds(t - from)),
        ),
        None => (
            false,
            format!("never on one tip after the last step; {}", last_tips(ev)),
        ),
    };
    Outcome {
        name: "converge_within_s",
        expected,
        actual,
        passed,
    }
}

fn last_tips(ev: &Evidence<'_>) -> String {
    let Some(round) = rounds(ev.samples).pop() else {
        return "no samples".to_owned();
    };
    let parts: Vec<String> = round
        .iter()
        .map(|s| match (&s.tip, s.height) {
            (Some(tip), Some(h)) => format!("node {} at {h} {}", s.node, short(tip)),
            _ => format!("node {} down", s.node),
        })
        .collect();
    format!("last samples: {}", parts.join(", "))
}

fn no_transfer_lost(ev: &Evidence<'_>) -> Outcome {
    let accepted: Vec<&TransferRecord> = ev.transfers.iter().filter(|t| t.accepted()).collect();
    let expected = "every accepted transfer in the final main chain".to_owned();
    let Some(chain) = ev.chain else {
        return Outcome {
            name: "no_transfer_lost",
            expected,
            actual: "no final chain: no node could be read at the end".to_owned(),
            passed: false,
        };
    };
    let lost: Vec<&str> = accepted
        .iter()
        .filter(|t| t.height.is_none())
        .filter_map(|t| t.txid.as_deref())
        .collect();
    let where_ = format!(
        "node {}'s main chain at height {}",
        chain.node, chain.height
    );
    if accepted.is_empty() {
        return Outcome {
            name: "no_transfer_lost",
            expected,
            actual: format!(
                "no transfer was accepted ({} submitted): nothing to check",
                ev.transfers.len()
            ),
            passed: false,
        };
    }
    let actual = if lost.is_empty() {
        format!("all {} accepted transfers are in {where_}", accepted.len())
    } else {
        let first: Vec<&str> = lost.iter().take(5).map(|t| short(t)).collect();
        format!(
            "{} of {} accepted transfers are not in {where_} (first: {})",
            lost.len(),
            accepted.len(),
            first.join(", ")
        )
    };
    Outcome {
        name: "no_transfer_lost",
        expected,
        actual,
        passed: lost.is_empty(),
    }
}

/// The deepest reorg: (depth, node, time).
pub fn deepest_reorg(events: &[ChainEvent]) -> Option<(u64, usize, u64)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reorg { depth, .. } => Some((depth, e.node, e.t_ms)),
            _ => None,
        })
        .max_by_key(|&(depth, node, t)| (depth, std::cmp::Reverse((t, node))))
}

fn max_reorg_depth(limit: u64, events: &[ChainEvent], incomplete: Option<&str>) -> Outcome {
    let count = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Reorg { .. }))
        .count();
    let (mut passed, mut actual) = match deepest_reorg(events) {
        None => (true, "no reorg".to_owned()),
        Some((depth, node, t)) => (
            depth <= limit,
            format!(
                "deepest {} (node {node} at {}); {} in all",
                plural(depth, "block"),
                seconds(t),
                plural(count as u64, "reorg")
            ),
        ),
    };
    // A record that may miss the deepest reorg proves nothing.
    if let Some(why) = incomplete {
        passed = false;
        actual = format!("{actual}, but the record may miss reorgs: {why}");
    }
    Outcome {
        name: "max_reorg_depth",
        expected: format!("no reorg deeper than {}", plural(limit, "block")),
        actual,
        passed,
    }
}

fn max_stale_rate(max: f64, ev: &Evidence<'_>) -> Outcome {
    let expected = format!("at most {:.1}% of the blocks seen are stale", max * 100.0);
    let (passed, actual) = match ev.chain {
        None => (false, "the final chain could not be read".to_owned()),
        Some(_) => match ev.blocks.stale_count() {
            (0, _) => (false, "no block was seen".to_owned()),
            (seen, stale) => {
                let rate = stale as f64 / seen as f64;
                let mut actual = format!(
                    "{:.1}%: {stale} of {} not in the final chain",
                    rate * 100.0,
                    plural(seen, "block")
                );
                // A record that may miss blocks may miss stale ones.
                let passed = match ev.events_incomplete {
                    Some(why) => {
                        actual = format!("{actual}, but the record may miss blocks: {why}");
                        false
                    }
                    None => rate <= max,
                };
                (passed, actual)
            }
        },
    };
    Outcome {
        name: "max_stale_rate",
        expected,
        actual,
        passed,
    }
}

/// When each adversary's mode first went on: at the start, or when its `adversary` step
/// finished.
fn adversaries_since(ev: &Evidence<'_>) -> BTreeMap<usize, u64> {
    let mut since: BTreeMap<usize, u64> = ev
        .adversary_at_start
        .iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(i, _)| (i, 0))
        .collect();
    for s in ev.steps {
        if let Action::Adversary {
            node,
            mode: Some(_),
        } = &s.action
            && s.ok
        {
            since.entry(*node).or_insert(s.finished_ms);
        }
    }
    since
}

/// The first sample of `node` at or after `from_ms` that lists `peer` among its bans.
fn banned_at(samples: &[Sample], node: usize, peer: &str, from_ms: u64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.node == node && s.t_ms >= from_ms)
        .find(|s| {
            s.banned
                .as_ref()
                .is_some_and(|b| b.iter().any(|p| p == peer))
        })
        .map(|s| s.t_ms)
}

fn adversary_banned(within_ms: u64, ev: &Evidence<'_>) -> Outcome {
    let since = adversaries_since(ev);
    let nodes = ev.peer_ids.len();
    let honest: Vec<usize> = (0..nodes).filter(|i| !since.contains_key(i)).collect();
    let mut failures = Vec::new();
    let mut slowest: Option<(u64, usize, usize)> = None;
    for (&adversary, &from) in &since {
        let Some(peer) = ev.peer_ids.get(adversary).and_then(Option::as_deref) else {
            failures.push(format!("node {adversary} never started"));
            continue;
        };
        for &h in &honest {
            let initially = ev.initially_running.get(h).copied().unwrap_or(false);
            if !running_at(h, from, initially, ev.steps) {
                continue;
            }
            match banned_at(ev.samples, h, peer, from) {
                Some(t) if t - from <= within_ms => {
                    if slowest.is_none_or(|(d, _, _)| t - from > d) {
                        slowest = Some((t - from, h, adversary));
                    }
                }
                Some(t) => failures.push(format!(
                    "node {h} banned node {adversary} after {}",
                    seconds(t - from)
                )),
                None => failures.push(format!("node {h} never banned node {adversary}")),
            }
        }
    }
    let passed = failures.is_empty() && slowest.is_some();
    let actual = if !failures.is_empty() {
        failures.join("; ")
    } else {
        match slowest {
            Some((d, h, a)) => {
                format!("the slowest: node {h} banned node {a} after {}", seconds(d))
            }
            None => "no honest node was running when an adversary started".to_owned(),
        }
    };
    Outcome {
        name: "adversary_banned_within_s",
        expected: format!(
            "every honest node running bans each adversary within {} of its mode going on",
            seconds(within_ms)
        ),
        actual,
        passed,
    }
}

fn min_confirmed_tps(min: f64, ev: &Evidence<'_>) -> Outcome {
    let confirmed = ev.transfers.iter().filter(|t| t.height.is_some()).count();
    let duration_ms = ev.load.map_or(0, |l| l.duration_ms).max(1);
    let tps = confirmed as f64 * 1000.0 / duration_ms as f64;
    Outcome {
        name: "min_confirmed_tps",
        expected: format!("at least {min} confirmed transfers/s"),
        actual: format!(
            "{tps:.2}/s ({confirmed} confirmed over {} of load)",
            seconds(duration_ms)
        ),
        passed: tps >= min,
    }
}

/// Submit-to-confirmation times of the confirmed transfers, ms, sorted.
pub fn latencies(transfers: &[TransferRecord]) -> Vec<u64> {
    let mut l: Vec<u64> = transfers
        .iter()
        .filter_map(|t| t.confirmed_ms.map(|c| c.saturating_sub(t.submit_ms)))
        .collect();
    l.sort_unstable();
    l
}

/// The `p`-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn max_p99_confirmation(max_s: f64, transfers: &[TransferRecord]) -> Outcome {
    let mut l = latencies(transfers);
    // An accepted transfer never confirmed counts as confirmed never.
    let unconfirmed = transfers
        .iter()
        .filter(|t| t.accepted() && t.confirmed_ms.is_none())
        .count();
    let confirmed = l.len();
    l.extend(std::iter::repeat_n(u64::MAX, unconfirmed));
    let expected = format!("99% of accepted transfers confirmed within {max_s} s of submission");
    let (passed, actual) = match (percentile(&l, 99.0), percentile(&l, 50.0)) {
        (Some(u64::MAX), _) => (
            false,
            format!(
                "{unconfirmed} of {} accepted transfers never confirmed",
                l.len()
            ),
        ),
        (Some(p99), Some(p50)) => (
            p99 as f64 / 1000.0 <= max_s,
            format!(
                "p99 {:.2} s, p50 {:.2} s over {confirmed} confirmed ({unconfirmed} accepted never)",
                p99 as f64 / 1000.0,
                p50 as f64 / 1000.0,
            ),
        ),
        _ => (false, "no transfer accepted".to_owned()),
    };
    Outcome {
        name: "max_p99_confirmation_s",
        expected,
        actual,
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::Answer;
    use super::*;

    fn step(action: Action, started_ms: u64, finished_ms: u64) -> StepRecord {
        StepRecord {
            t_ms: started_ms,
            started_ms,
            finished_ms,
            source: "at[0]".into(),
            line: 1,
            action,
            ok: true,
            error: None,
            notes: Vec::new(),
        }
    }

    fn sample(round: u32, node: usize, tip: Option<&str>) -> Sample {
        Sample {
            round,
            t_ms: u64::from(round) * 250 + node as u64,
            node,
            up: tip.is_some(),
            height: tip.map(|_| 1),
            tip: tip.map(String::from),
            peers: Some(1),
            mining: Some(true),
            link_faults: None,
            banned: None,
        }
    }

    fn transfer(txid: &str, submit_ms: u64, confirmed_ms: Option<u64>) -> TransferRecord {
        TransferRecord {
            height: confirmed_ms.map(|_| 3),
            confirmed_ms,
            ..TransferRecord::test_pending(txid, submit_ms)
        }
    }

    static EMPTY_TREE: BlockTree = BlockTree {
        blocks: Vec::new(),
        dropped: 0,
    };

    fn evidence<'a>(
        initially: &'a [bool],
        steps: &'a [StepRecord],
        samples: &'a [Sample],
    ) -> Evidence<'a> {
        Evidence {
            initially_running: initially,
            steps,
            samples,
            events: &[],
            events_incomplete: None,
            blocks: &EMPTY_TREE,
            transfers: &[],
            chain: None,
            load: None,
            adversary_at_start: &[],
            peer_ids: &[],
        }
    }

    #[test]
    fn the_stale_rate_is_the_block_trees_and_needs_a_whole_record() {
        let events: Vec<ChainEvent> = ["a", "b", "c", "d"]
            .iter()
            .map(|h| ChainEvent::test_block(0, 0, h, "m"))
            .collect();
        let mut chain = FinalChain::default();
        for h in ["a", "b", "c"] {
            chain.timestamps.insert(h.into(), 0);
        }
        let tree = super::super::blocks::build(&events, 1, &[], Some(&chain));
        let ev = Evidence {
            blocks: &tree,
            chain: Some(&chain),
            ..evidence(&[true], &[], &[])
        };
        let ok = max_stale_rate(0.25, &ev);
        assert!(
            ok.passed && ok.actual.contains("25.0%: 1 of 4 blocks"),
            "{ok:?}"
        );
        assert!(!max_stale_rate(0.2, &ev).passed);
        let partial = Evidence {
            events_incomplete: Some("3 events dropped"),
            ..ev
        };
        let out = max_stale_rate(0.5, &partial);
        assert!(
            !out.passed && out.actual.contains("3 events dropped"),
            "{out:?}"
        );
        let unread = Evidence { chain: None, ..ev };
        assert!(!max_stale_rate(1.0, &unread).passed);
    }

    /// Node 2 turns adversary at 1 s; nodes 0 and 1 are honest, node 1 bans it at 3.5 s and
    /// node 0 at `zero_bans_ms` (or never).
    fn ban_samples(zero_bans_ms: Option<u64>) -> Vec<Sample> {
        let mut out = Vec::new();
        for round in 0..40u32 {
            for node in 0..2 {
                let mut s = sample(round, node, Some("t"));
                let banned_from = if node == 0 { zero_bans_ms } else { Some(3_500) };
                let listed = banned_from.is_some_and(|from| s.t_ms >= from);
                s.banned = Some(if listed {
                    vec!["P2".into()]
                } else {
                    Vec::new()
                });
                out.push(s);
            }
        }
        out
    }

    #[test]
    fn every_honest_node_must_ban_the_adversary_in_time() {
        let steps = [step(
            Action::Adversary {
                node: 2,
                mode: Some("invalid-blocks".into()),
            },
            900,
            1_000,
        )];
        let peers = [Some("P0".into()), Some("P1".into()), Some("P2".into())];
        let initially = [true, true, true];
        let samples = ban_samples(Some(2_000));
        let ev = Evidence {
            peer_ids: &peers,
            adversary_at_start: &[false, false, false],
            ..evidence(&initially, &steps, &samples)
        };
        let ok = adversary_banned(3_000, &ev);
        assert!(ok.passed, "{ok:?}");
        assert!(
            ok.actual.contains("node 1 banned node 2 after 2.5 s"),
            "{ok:?}"
        );
        let late = adversary_banned(2_000, &ev);
        assert!(!late.passed && late.actual.contains("node 1 banned node 2 after 2.5 s"));
        let samples = ban_samples(None);
        let never = adversary_banned(
            3_000,
            &Evidence {
                samples: &samples,
                ..ev
            },
        );
        assert!(
            !never.passed && never.actual.contains("node 0 never banned node 2"),
            "{never:?}"
        );
        // An adversary from the start counts from 0.
        let samples = ban_samples(Some(2_000));
        let from_start = Evidence {
            steps: &[],
            samples: &samples,
            adversary_at_start: &[false, false, true],
            ..ev
        };
        let out = adversary_banned(3_000, &from_start);
        assert!(!out.passed && out.actual.contains("after 3.5 s"), "{out:?}");
    }

    #[test]
    fn running_follows_kills_and_successful_starts() {
        let mut failed_start = step(Action::Start(1), 9_000, 9_500);
        failed_start.ok = false;
        let steps = [
            step(Action::Kill(1), 1_000, 1_010),
            step(Action::Start(1), 5_000, 6_000),
            step(Action::Stop(1), 8_000, 8_500),
            failed_start,
        ];
        let at = |t| running_at(1, t, true, &steps);
        assert!(at(999));
        assert!(!at(1_000));
        assert!(!at(5_999), "up only once the start finished");
        assert!(at(6_000));
        assert!(!at(8_000));
        assert!(!at(10_000), "a failed start leaves it down");
        assert!(running_at(0, 10_000, true, &steps), "other nodes untouched");
        assert!(
            !running_at(2, 0, false, &steps),
            "a delayed node is down until started"
        );
    }

    #[test]
    fn convergence_needs_every_running_node_on_one_tip_after_the_last_step() {
        let steps = [step(Action::Heal, 400, 500)];
        let samples = [
            // Round 1 (250 ms) is before the step finished: ignored though it agrees.
            sample(1, 0, Some("a")),
            sample(1, 1, Some("a")),
            sample(2, 0, Some("a")),
            sample(2, 1, Some("b")),
            sample(3, 0, Some("c")),
            sample(3, 1, None),
            sample(4, 0, Some("c")),
            sample(4, 1, Some("c")),
        ];
        let initially = [true, true];
        let ev = evidence(&initially, &steps, &samples);
        assert_eq!(converged_at(&ev, 500), Some(1_001));
        let ok = converge(600, &ev);
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.actual, "one tip 0.5 s after the last step");
        let late = converge(400, &ev);
        assert!(
            !late.passed && late.actual.contains("only 0.5 s"),
            "{late:?}"
        );
    }

    #[test]
    fn agreement_must_hold_within_the_last_seconds_and_adversaries_are_left_out() {
        let steps = [step(Action::Heal, 0, 100)];
        let initially = [true, true];
        // Agree in round 2, then node 1 lags from round 3 to the end (round 30, 7.5 s).
        let mut lagging = Vec::new();
        for round in 2..=30 {
            lagging.push(sample(round, 0, Some("a")));
            lagging.push(sample(round, 1, Some(if round == 2 { "a" } else { "b" })));
        }
        let out = converge(5_000, &evidence(&initially, &steps, &lagging));
        assert!(
            !out.passed && out.actual.contains("not at the end"),
            "{out:?}"
        );
        // A block on its way in the last round only (agreement 0.5 s before the end) passes.
        let mut racing = Vec::new();
        for round in 2..=30 {
            racing.push(sample(round, 0, Some("a")));
            racing.push(sample(round, 1, Some(if round == 30 { "b" } else { "a" })));
        }
        let out = converge(5_000, &evidence(&initially, &steps, &racing));
        assert!(out.passed, "{out:?}");
        // Node 1 an adversary from the start: node 0 alone must agree with itself.
        let ev = Evidence {
            adversary_at_start: &[false, true],
            ..evidence(&initially, &steps, &lagging)
        };
        assert!(converge(5_000, &ev).passed);
    }

    #[test]
    fn a_killed_node_is_left_out_and_no_agreement_fails_naming_the_tips() {
        let steps = [step(Action::Kill(1), 100, 110)];
        let samples = [sample(2, 0, Some("a")), sample(2, 1, None)];
        let initially = [true, true];
        let ev = evidence(&initially, &steps, &samples);
        assert_eq!(converged_at(&ev, 110), Some(501), "the round's last answer");
        let diverged = [sample(2, 0, Some("aaaa")), sample(2, 1, Some("bbbb"))];
        let ev = evidence(&initially, &[], &diverged);
        let out = converge(1_000, &ev);
        assert!(!out.passed);
        assert!(
            out.actual.contains("node 0 at 1 aaaa, node 1 at 1 bbbb"),
            "{}",
            out.actual
        );
    }

    #[test]
    fn lost_transfers_are_named_and_need_a_final_chain() {
        let transfers = [
            transfer("aaaaaaaaaaaaaaaa", 0, Some(100)),
            transfer("bbbbbbbbbbbbbbbb", 0, None),
            TransferRecord {
                answer: Answer::Refused {
                    code: "fee_too_low".into(),
                    message: String::new(),
                },
                ..transfer("cccccccccccccccc", 0, None)
            },
        ];
        let chain = FinalChain {
            node: 0,
            height: 9,
            ..FinalChain::default()
        };
        let ev = Evidence {
            transfers: &transfers,
            chain: Some(&chain),
            ..evidence(&[], &[], &[])
        };
        let out = no_transfer_lost(&ev);
        assert!(!out.passed);
        assert_eq!(
            out.actual,
            "1 of 2 accepted transfers are not in node 0's main chain at height 9 (first: bbbbbbbbbbbb)"
        );
        let none = no_transfer_lost(&Evidence { chain: None, ..ev });
        assert!(!none.passed && none.actual.contains("no final chain"));
        let fine = no_transfer_lost(&Evidence {
            transfers: &transfers[..1],
            ..ev
        });
        assert!(fine.passed, "{fine:?}");
        // Nothing accepted proves nothing.
        let empty = no_transfer_lost(&Evidence {
            transfers: &[],
            ..ev
        });
        assert!(!empty.passed && empty.actual.starts_with("no transfer was accepted"));
    }

    #[test]
    fn reorg_depth_is_the_deepest_event() {
        let reorg = |t_ms, node, depth| ChainEvent {
            t_ms,
            node,
            kind: EventKind::Reorg {
                depth,
                fork_height: 1,
                old_tip: "o".into(),
                new_tip: "n".into(),
            },
        };
        let events = [reorg(1_000, 0, 2), reorg(2_000, 3, 5), reorg(3_000, 1, 5)];
        assert_eq!(deepest_reorg(&events), Some((5, 3, 2_000)));
        assert!(max_reorg_depth(5, &events, None).passed);
        let out = max_reorg_depth(4, &events, None);
        assert!(!out.passed);
        assert_eq!(
            out.actual,
            "deepest 5 blocks (node 3 at 2.0 s); 3 reorgs in all"
        );
        assert_eq!(max_reorg_depth(0, &[], None).actual, "no reorg");
        // A record that may miss reorgs proves nothing, even with none seen.
        let blind = max_reorg_depth(5, &[], Some("2 events dropped"));
        assert!(!blind.passed, "{blind:?}");
        assert!(blind.actual.ends_with("may miss reorgs: 2 events dropped"));
    }

    #[test]
    fn throughput_and_latency_use_confirmed_transfers() {
        let transfers: Vec<TransferRecord> = (0..100)
            .map(|i| transfer(&format!("t{i}"), 0, (i < 90).then_some(1_000 + i * 10)))
            .collect();
        let load = Load {
            tps: 10,
            start_ms: 0,
            duration_ms: 10_000,
            accounts: 1,
            pattern: super::super::spec::Pattern::Steady,
            nodes: vec![0],
            fee: 1,
            confirm_timeout_ms: 0,
        };
        let ev = Evidence {
            transfers: &transfers,
            load: Some(&load),
            ..evidence(&[], &[], &[])
        };
        let tps = min_confirmed_tps(9.0, &ev);
        assert!(
            tps.passed && tps.actual.starts_with("9.00/s (90 confirmed"),
            "{tps:?}"
        );
        assert!(!min_confirmed_tps(9.5, &ev).passed);
        let l = latencies(&transfers);
        assert_eq!(percentile(&l, 99.0), Some(1_890));
        assert_eq!(percentile(&l, 50.0), Some(1_440));
        let confirmed = &transfers[..90];
        assert!(max_p99_confirmation(1.89, confirmed).passed);
        let slow = max_p99_confirmation(1.5, confirmed);
        assert!(
            !slow.passed && slow.actual.starts_with("p99 1.89 s"),
            "{slow:?}"
        );
        assert!(!max_p99_confirmation(1.0, &[]).passed);
        // Accepted transfers that never confirmed count: 10 of 100 put p99 at never.
        let never = max_p99_confirmation(100.0, &transfers);
        assert!(!never.passed, "{never:?}");
        assert_eq!(never.actual, "10 of 100 accepted transfers never confirmed");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 100.0), Some(4));
        assert_eq!(percentile(&[1, 2, 3, 4], 0.0), Some(1));
    }
}
