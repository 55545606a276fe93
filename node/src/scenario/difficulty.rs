//! The difficulty response: how the chain's difficulty followed the network's hash rate,
//! against what ASERT predicts in closed form.
//!
//! The hash rate over time is the sum of the running, mining nodes' caps (hash share x
//! `[network] hashrate`; a node is out while down or not mining). Between two changes of it
//! the rate is constant, h. ASERT multiplies the target by `2^((interval - T) / H)` per
//! block (T the block time, H the half-life). Write y for the block rate as a multiple of
//! the target rate (y = h T / D, D the difficulty in hashes per block); with blocks at rate
//! y / T and each changing log2 D by `(T - T / y) / H`, `dy/dt = y (1 - y) ln 2 / H`, whose
//! solution from y0 at the change is
//!
//! ```text
//! y(t) = 1 / (1 + (1/y0 - 1) 2^(-t/H))        D(t) = D0 y0 / y(t)
//! blocks in [0, s) = (s + H/ln2 ln((1 + c 2^(-s/H)) / (1 + c))) / T,   c = 1/y0 - 1
//! ```
//!
//! (the continuous form of the rule: close when H is many block times, as ASERT needs
//! anyway; blocks arrive at random, so a run follows it only on average). Each segment
//! starts from the difficulty of the last final-chain block first seen before the change.
//!
//! It owns: the hash-rate timeline the dial implies, the closed form and the comparison.
//! It must never: read a clock or do I/O.

use serde::Serialize;

use super::blocks::{BlockTree, TreeBlock};
use super::mining::share_changes;
use super::report::FaultWindow;
use super::spec::Network;
use super::timeline::StepRecord;

/// The block rate counts as settled within this fraction of the target rate.
pub const SETTLED_WITHIN: f64 = 0.1;
/// Changes of the hash rate closer than this to the one before are taken as one (steps at
/// the same time run one after another, a few ms apart).
pub const COALESCE_MS: u64 = 1_000;

/// The response over the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DifficultyResponse {
    /// Genesis `target_block_time_ms`.
    pub block_time_ms: u64,
    /// Genesis `difficulty_half_life_ms`.
    pub half_life_ms: u64,
    /// One per period of constant hash rate.
    pub segments: Vec<Segment>,
    /// Every final-chain block of the block tree with its difficulty and the prediction.
    pub points: Vec<DifficultyPoint>,
}

/// A period of constant hash rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Start, ms on the run's clock (the change, or the first block seen after it).
    pub from_ms: u64,
    /// End, ms on the run's clock.
    pub to_ms: u64,
    /// The network's hash rate, hashes per second.
    pub hashrate: f64,
    /// The difficulty it starts from (hashes per block).
    pub start_difficulty: f64,
    /// The block rate at its start as a multiple of the target rate (y0).
    pub start_rate: f64,
    /// When ASERT should bring the block rate within [`SETTLED_WITHIN`] of the target, ms
    /// after `from_ms` (0 when it starts there; `None` when nothing mines).
    pub settle_ms: Option<u64>,
    /// Final-chain blocks the closed form expects in the segment.
    pub expected_blocks: f64,
    /// Final-chain blocks first seen in the segment.
    pub observed_blocks: u64,
    /// Median of log2(observed / expected difficulty) over its blocks (0: on the curve,
    /// 1: twice as hard).
    pub median_log2_error: Option<f64>,
}

/// One final-chain block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DifficultyPoint {
    /// When it was first seen, ms on the run's clock.
    pub t_ms: u64,
    /// Height.
    pub height: u64,
    /// Its difficulty, hashes per block (2^256 / (target + 1)).
    pub observed: f64,
    /// The closed form's difficulty at `t_ms` (`None` outside a segment with an anchor).
    pub expected: Option<f64>,
}

/// The network's hash rate from each change on: `(from_ms, hashes per second)`, the first
/// at 0. A node counts with its current hash share unless a `down` or `not_mining` window
/// holds it. Changes within [`COALESCE_MS`] of the one before are merged into it.
pub fn hashrate_timeline(
    network: &Network,
    steps: &[StepRecord],
    faults: &[FaultWindow],
    end_ms: u64,
) -> Vec<(u64, f64)> {
    let mut times: Vec<u64> = vec![0];
    times.extend(steps.iter().map(|s| s.started_ms));
    times.extend(faults.iter().flat_map(|w| [w.from_ms, w.to_ms]));
    times.retain(|&t| t < end_ms);
    times.sort_unstable();
    times.dedup();
    let mut timeline: Vec<(u64, f64)> = Vec::new();
    for t in times {
        let rate = network
            .node
            .iter()
            .filter(|n| !held(faults, n.index, t))
            .map(|n| share_at(n.hash_share, n.index, steps, t) * network.hashrate as f64)
            .sum::<f64>()
            + 0.0; // an empty sum is -0.0

        match timeline.last_mut() {
            Some((_, last)) if *last == rate => {}
            Some((since, last)) if t - *since < COALESCE_MS && *since > 0 => *last = rate,
            _ => timeline.push((t, rate)),
        }
    }
    timeline.dedup_by(|b, a| a.1 == b.1);
    timeline
}

fn held(faults: &[FaultWindow], node: usize, t: u64) -> bool {
    faults.iter().any(|w| {
        matches!(w.kind, "down" | "not_mining")
            && w.node == Some(node)
            && w.from_ms <= t
            && t < w.to_ms
    })
}

fn share_at(initial: f64, node: usize, steps: &[StepRecord], t: u64) -> f64 {
    share_changes(steps, node)
        .filter(|&(at, _)| at <= t)
        .last()
        .map_or(initial, |(_, share)| share)
}

/// Compares the final chain's difficulty with the closed form over each segment of
/// `timeline` (from [`hashrate_timeline`]).
pub fn response(
    tree: &BlockTree,
    timeline: &[(u64, f64)],
    block_time_ms: u64,
    half_life_ms: u64,
    end_ms: u64,
) -> DifficultyResponse {
    let main: Vec<(u64, &TreeBlock, f64)> = tree
        .blocks
        .iter()
        .filter(|b| b.in_final_chain == Some(true))
        .filter_map(|b| Some((b.first_seen_ms()?, b, difficulty(&b.target)?)))
        .collect();
    let mut points: Vec<DifficultyPoint> = main
        .iter()
        .map(|&(t_ms, b, observed)| DifficultyPoint {
            t_ms,
            height: b.height,
            observed,
            expected: None,
        })
        .collect();
    let (t, h) = (block_time_ms as f64, half_life_ms.max(1) as f64);
    let mut segments = Vec::new();
    for (i, &(change_ms, hashrate)) in timeline.iter().enumerate() {
        let to_ms = timeline.get(i + 1).map_or(end_ms, |&(next, _)| next);
        // The difficulty in force at the change: the last block seen before it, else the
        // first one after it (the segment then starts there).
        let anchor = main
            .iter()
            .rev()
            .find(|(seen, ..)| *seen <= change_ms)
            .map(|&(_, _, d)| (change_ms, d))
            .or_else(|| {
                main.iter()
                    .find(|(seen, ..)| *seen > change_ms && *seen < to_ms)
                    .map(|&(seen, _, d)| (seen, d))
            });
        let Some((from_ms, d0)) = anchor else {
            continue;
        };
        let curve = Curve {
            y0: hashrate * t / 1000.0 / d0,
            d0,
            t,
            h,
        };
        // With nothing mining there is no curve (y0 = 0): blocks seen then are counted only.
        let predicts = curve.y0 > 0.0 && curve.y0.is_finite();
        let (mut observed_blocks, mut errors) = (0, Vec::new());
        for p in points
            .iter_mut()
            .filter(|p| p.t_ms > from_ms && p.t_ms < to_ms)
        {
            observed_blocks += 1;
            if predicts {
                let expected = curve.difficulty((p.t_ms - from_ms) as f64);
                p.expected = Some(expected);
                errors.push((p.observed / expected).log2());
            }
        }
        segments.push(Segment {
            from_ms,
            to_ms,
            hashrate,
            start_difficulty: d0,
            start_rate: curve.y0,
            settle_ms: curve.settle_ms(),
            expected_blocks: curve.blocks(to_ms.saturating_sub(from_ms) as f64),
            observed_blocks,
            median_log2_error: median(errors),
        });
    }
    DifficultyResponse {
        block_time_ms,
        half_life_ms,
        segments,
        points,
    }
}

/// The closed form from one change: start rate y0 (a multiple of the target rate),
/// start difficulty d0, block time t and half-life h in ms.
struct Curve {
    y0: f64,
    d0: f64,
    t: f64,
    h: f64,
}

impl Curve {
    fn c(&self) -> f64 {
        1.0 / self.y0 - 1.0
    }

    /// The block rate's multiple of the target rate `s` ms after the change.
    fn rate(&self, s: f64) -> f64 {
        1.0 / (1.0 + self.c() * (-s / self.h).exp2())
    }

    /// y = h T / D, so D moves against the rate.
    fn difficulty(&self, s: f64) -> f64 {
        self.d0 * self.y0 / self.rate(s)
    }

    /// Blocks expected in the first `s` ms.
    fn blocks(&self, s: f64) -> f64 {
        if self.y0 <= 0.0 {
            return 0.0;
        }
        let c = self.c();
        let log_term = ((1.0 + c * (-s / self.h).exp2()) / (1.0 + c)).ln();
        (s + self.h / std::f64::consts::LN_2 * log_term) / self.t
    }

    /// When the rate comes within [`SETTLED_WITHIN`] of 1: `2^(-s/h) = (1/y - 1) / c`.
    fn settle_ms(&self) -> Option<u64> {
        if self.y0 <= 0.0 || !self.y0.is_finite() {
            return None;
        }
        if (self.y0 - 1.0).abs() <= SETTLED_WITHIN {
            return Some(0);
        }
        let y = if self.y0 < 1.0 {
            1.0 - SETTLED_WITHIN
        } else {
            1.0 + SETTLED_WITHIN
        };
        let s = -self.h * ((1.0 / y - 1.0) / self.c()).log2();
        Some(s.max(0.0).round() as u64)
    }
}

/// Difficulty of a 64-hex-digit target: 2^256 / (target + 1), in hashes per block.
pub fn difficulty(target_hex: &str) -> Option<f64> {
    if target_hex.len() != 64 {
        return None;
    }
    let target = target_hex.chars().try_fold(0.0f64, |acc, c| {
        Some(acc * 16.0 + f64::from(c.to_digit(16)?))
    })?;
    Some(2f64.powi(256) / (target + 1.0))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[(values.len() - 1) / 2])
}

#[cfg(test)]
mod tests {
    use super::super::events::{BlockSeen, ChainEvent, EventKind};
    use super::super::spec::Action;
    use super::super::{blocks, confirm::FinalChain};
    use super::*;

    const T: f64 = 1_000.0;
    const H: f64 = 60_000.0;

    #[test]
    fn the_closed_form_solves_the_per_block_rule() {
        // Half the hash power leaves: y0 = 0.5. Step the discrete rule block by block and
        // compare the time each block arrives, and the difficulty, with the closed form.
        let curve = Curve {
            y0: 0.5,
            d0: 1e6,
            t: T,
            h: H,
        };
        let hashrate = 0.5 * 1e6 / T; // hashes per ms
        let (mut now, mut d) = (0.0, 1e6);
        for _ in 0..300 {
            let interval = d / hashrate;
            now += interval;
            d *= ((T - interval) / H).exp2();
        }
        let expected = curve.difficulty(now);
        assert!((d / expected - 1.0).abs() < 0.02, "{d} vs {expected}");
        let blocks = curve.blocks(now);
        assert!((blocks - 300.0).abs() < 3.0, "{blocks}");
        // Far out, the rate is the target rate and the difficulty the new hash rate's.
        assert!((curve.rate(20.0 * H) - 1.0).abs() < 1e-6);
        assert!((curve.difficulty(20.0 * H) / (hashrate * T) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn settling_takes_about_three_half_lives_from_half_the_rate() {
        let curve = |y0| Curve {
            y0,
            d0: 1.0,
            t: T,
            h: H,
        };
        // 2^(-s/H) = (1/0.9 - 1) / (1/0.5 - 1) = 1/9: s = H log2 9 = 3.17 H.
        let s = curve(0.5).settle_ms().expect("settles");
        assert!((s as f64 / H - 9f64.log2()).abs() < 1e-3, "{s}");
        assert_eq!(curve(1.05).settle_ms(), Some(0));
        assert!(curve(2.0).settle_ms().is_some_and(|s| s > 0));
        assert_eq!(curve(0.0).settle_ms(), None);
    }

    #[test]
    fn difficulty_of_a_target() {
        assert_eq!(difficulty(&"f".repeat(64)), Some(1.0));
        let half = format!("7{}", "f".repeat(63));
        assert_eq!(difficulty(&half), Some(2.0));
        assert_eq!(difficulty("ff"), None);
        assert_eq!(difficulty(&"g".repeat(64)), None);
    }

    fn spec(text: &str) -> Network {
        super::super::spec::parse(text, "t")
            .expect("a valid scenario")
            .network
    }

    fn step(action: Action, at: u64) -> StepRecord {
        StepRecord {
            t_ms: at,
            started_ms: at,
            finished_ms: at + 10,
            source: String::new(),
            line: 0,
            action,
            ok: true,
            error: None,
            notes: Vec::new(),
        }
    }

    #[test]
    fn the_hash_rate_follows_shares_kills_and_restarts() {
        let network = spec("[network]\nnodes = 2\nhashrate = 1000\n");
        let steps = [
            step(
                Action::HashShare {
                    node: 1,
                    share: 0.0,
                },
                10_000,
            ),
            step(Action::Kill(0), 20_000),
            step(Action::Start(0), 30_000),
            // Two steps at one time, a few ms apart: one change (node 1 mines again from
            // the end of its step, node 0's share changes from the start of its own).
            step(
                Action::HashShare {
                    node: 1,
                    share: 0.5,
                },
                35_000,
            ),
            step(
                Action::HashShare {
                    node: 0,
                    share: 0.75,
                },
                35_004,
            ),
        ];
        let faults = super::super::report::fault_windows(&network, &steps, 40_000);
        let timeline = hashrate_timeline(&network, &steps, &faults, 40_000);
        assert_eq!(
            timeline,
            [
                (0, 1000.0),
                (10_000, 500.0),
                (20_000, 0.0),
                (30_010, 500.0),
                (35_004, 1250.0)
            ]
        );
    }

    #[test]
    fn each_segment_starts_from_the_last_block_before_its_change() {
        // Blocks of difficulty 1,024 (target 2^246 - 1) seen every second; half the power
        // (1,000 H/s → 500) leaves at 10 s.
        let target = format!("003{}", "f".repeat(61));
        let events: Vec<ChainEvent> = (1..=20u64)
            .map(|h| ChainEvent {
                t_ms: h * 1_000,
                node: 0,
                kind: EventKind::Block(BlockSeen {
                    height: h,
                    hash: format!("b{h}"),
                    prev_hash: format!("b{}", h - 1),
                    miner: "m".into(),
                    timestamp_ms: 0,
                    target: target.clone(),
                }),
            })
            .collect();
        let mut chain = FinalChain::default();
        for h in 1..=20 {
            chain.timestamps.insert(format!("b{h}"), 0);
        }
        let tree = blocks::build(&events, 1, &[], Some(&chain));
        let r = response(
            &tree,
            &[(0, 1000.0), (10_000, 500.0)],
            1_000,
            60_000,
            21_000,
        );
        assert_eq!(r.points.len(), 20);
        assert_eq!(r.segments.len(), 2);
        let (first, second) = (&r.segments[0], &r.segments[1]);
        assert_eq!(
            (first.from_ms, first.to_ms),
            (1_000, 10_000),
            "from the first block"
        );
        assert_eq!(
            first.observed_blocks, 8,
            "blocks 2-9 (block 1 is the anchor)"
        );
        assert_eq!((second.from_ms, second.observed_blocks), (10_000, 10));
        let d = r.points[0].observed;
        assert!((d - 1024.0).abs() < 1e-6, "{d}");
        assert!((second.start_difficulty - d).abs() < 1e-6);
        assert!((second.start_rate - 500.0 / d).abs() < 1e-9);
        assert!(second.settle_ms.is_some());
        assert!(
            r.points[15].expected.is_some_and(|e| e < d),
            "the prediction falls"
        );
        assert!(
            second.median_log2_error.is_some_and(|e| e > 0.0),
            "the chain lagged"
        );
        // Nothing mines from 10 s: no curve, and no number that is not one.
        let idle = response(&tree, &[(0, 1000.0), (10_000, 0.0)], 1_000, 60_000, 21_000);
        let stopped = &idle.segments[1];
        assert_eq!((stopped.observed_blocks, stopped.settle_ms), (10, None));
        assert_eq!(
            (stopped.expected_blocks, stopped.median_log2_error),
            (0.0, None)
        );
        assert!(idle.points[12].expected.is_none());
    }
}
