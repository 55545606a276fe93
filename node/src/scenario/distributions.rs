//! The report's distributions: transfer confirmation latency, block propagation (how long a
//! block took from the first node that took it into its main chain to the last), transfer
//! propagation (from submission to the last node that admitted it), reorg depths, and
//! confirmed transfers per second over time. Each is a fixed number of buckets
//! ([`MAX_BUCKETS`] at most), so the report stays small however long the run.
//!
//! It owns: the bucketing and what "propagation" means here (the times the runner read each
//! node's `block` event, so it includes the event stream's own delay, a few ms on loopback).
//! It must never: read a clock or do I/O.

use serde::Serialize;

use super::assert::{latencies, percentile};
use super::blocks::{BlockTree, TreeBlock};
use super::events::{ChainEvent, EventKind};
use super::load::TransferRecord;

/// Most buckets of one histogram or series.
pub const MAX_BUCKETS: usize = 40;

/// Counts of values in equal buckets from 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Histogram {
    /// Unit of the values and the bucket width (`ms` or `blocks`).
    pub unit: &'static str,
    /// Width of each bucket; bucket `i` holds values in `[i * width, (i + 1) * width)`, the
    /// last one everything above too.
    pub width: u64,
    /// Counts per bucket.
    pub counts: Vec<u64>,
    /// Values in all.
    pub total: u64,
    /// Median (nearest rank).
    pub p50: Option<u64>,
    /// 99th percentile (nearest rank).
    pub p99: Option<u64>,
    /// Largest.
    pub max: Option<u64>,
}

/// A value per time bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// What the values are.
    pub unit: &'static str,
    /// Width of each time bucket, ms; bucket `i` starts at `i * width_ms`.
    pub width_ms: u64,
    /// The values.
    pub values: Vec<f64>,
}

/// Every distribution of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distributions {
    /// Submit-to-confirmation time of confirmed transfers, ms.
    pub confirmation_ms: Histogram,
    /// Per block seen by two nodes or more: last node's event time minus the first's, ms.
    pub propagation_ms: Histogram,
    /// Per transfer admitted by two nodes or more: the last node's first admission minus
    /// the submission, ms.
    pub transfer_propagation_ms: Histogram,
    /// Blocks disconnected by each reorg.
    pub reorg_depth: Histogram,
    /// Transfers confirmed per second, by the time they were confirmed.
    pub throughput: Series,
}

/// Computes every distribution of a run that lasted `end_ms`.
pub fn distributions(
    tree: &BlockTree,
    events: &[ChainEvent],
    transfers: &[TransferRecord],
    end_ms: u64,
) -> Distributions {
    let depths: Vec<u64> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Reorg { depth, .. } => Some(depth),
            _ => None,
        })
        .collect();
    Distributions {
        confirmation_ms: histogram(latencies(transfers), "ms", 100),
        propagation_ms: histogram(propagation(tree), "ms", 10),
        transfer_propagation_ms: histogram(transfer_propagation(transfers), "ms", 10),
        reorg_depth: histogram(depths, "blocks", 1),
        throughput: throughput(transfers, end_ms),
    }
}

/// Per block taken in by two nodes or more: the spread of the nodes' first sightings.
pub fn propagation(tree: &BlockTree) -> Vec<u64> {
    tree.blocks
        .iter()
        .filter_map(TreeBlock::spread_ms)
        .collect()
}

/// Per transfer admitted by two nodes or more: the last first admission minus its
/// submission.
pub fn transfer_propagation(transfers: &[TransferRecord]) -> Vec<u64> {
    transfers
        .iter()
        .filter(|t| t.seen_ms.iter().flatten().count() >= 2)
        .filter_map(|t| {
            let last = t.seen_ms.iter().flatten().max()?;
            Some(last.saturating_sub(t.submit_ms))
        })
        .collect()
}

/// Buckets `values` at a width that is a multiple of `min_width` (1, 2 or 5 times a power
/// of ten of it) and fits them in [`MAX_BUCKETS`].
pub fn histogram(mut values: Vec<u64>, unit: &'static str, min_width: u64) -> Histogram {
    values.sort_unstable();
    let max = values.last().copied();
    let width = nice_width(max.unwrap_or(0), min_width.max(1));
    let mut counts = Vec::new();
    for &v in &values {
        let i = usize::try_from(v / width)
            .unwrap_or(usize::MAX)
            .min(MAX_BUCKETS - 1);
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
    }
    Histogram {
        unit,
        width,
        counts,
        total: values.len() as u64,
        p50: percentile(&values, 50.0),
        p99: percentile(&values, 99.0),
        max,
    }
}

fn nice_width(max: u64, min_width: u64) -> u64 {
    let mut power = min_width;
    loop {
        for m in [1, 2, 5] {
            let width = power.saturating_mul(m);
            if max / width < MAX_BUCKETS as u64 {
                return width;
            }
        }
        power = power.saturating_mul(10);
    }
}

/// Confirmed transfers per second in equal time buckets over the run.
fn throughput(transfers: &[TransferRecord], end_ms: u64) -> Series {
    let width_ms = nice_width(end_ms, 1000);
    let buckets = usize::try_from(end_ms / width_ms + 1)
        .unwrap_or(MAX_BUCKETS)
        .min(MAX_BUCKETS);
    let mut values = vec![0.0; buckets];
    for t in transfers {
        if let Some(c) = t.confirmed_ms {
            let i = usize::try_from(c / width_ms)
                .unwrap_or(usize::MAX)
                .min(buckets - 1);
            values[i] += 1000.0 / width_ms as f64;
        }
    }
    Series {
        unit: "transfers/s",
        width_ms,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(node: usize, hash: &str, t_ms: u64) -> ChainEvent {
        ChainEvent::test_block(t_ms, node, hash, "m")
    }

    fn transfer(submit_ms: u64, seen_ms: Vec<Option<u64>>) -> TransferRecord {
        TransferRecord {
            seen_ms,
            ..TransferRecord::test_pending("x", submit_ms)
        }
    }

    #[test]
    fn propagation_is_the_spread_of_first_sightings_per_block() {
        let events = [
            block(0, "a", 1_000),
            block(1, "a", 1_040),
            block(2, "a", 1_100),
            block(2, "a", 5_000), // taken in again after a reorg: not a first sighting
            block(0, "b", 2_000), // seen by one node only
        ];
        let tree = super::super::blocks::build(&events, 3, &[], None);
        assert_eq!(propagation(&tree), vec![100]);
    }

    #[test]
    fn transfer_propagation_runs_from_submission_to_the_last_admission() {
        let transfers = [
            transfer(1_000, vec![Some(1_010), Some(1_090), None]),
            transfer(2_000, vec![Some(2_005), None, None]), // one node only
            transfer(3_000, vec![]),                        // not recorded
            transfer(4_000, vec![Some(4_300), Some(4_001), Some(4_050)]),
        ];
        assert_eq!(transfer_propagation(&transfers), vec![90, 300]);
    }

    #[test]
    fn histograms_fit_their_buckets_and_keep_percentiles() {
        let h = histogram(vec![5, 15, 15, 390], "ms", 10);
        assert_eq!(h.width, 10);
        assert_eq!(h.counts.len(), 39 + 1);
        assert_eq!((h.counts[0], h.counts[1], h.counts[39]), (1, 2, 1));
        assert_eq!((h.total, h.p50, h.max), (4, Some(15), Some(390)));
        let wide = histogram(vec![0, 100_000], "ms", 10);
        assert_eq!(wide.width, 5_000);
        assert!(wide.counts.len() <= MAX_BUCKETS);
        let empty = histogram(Vec::new(), "blocks", 1);
        assert_eq!((empty.total, empty.p99, empty.counts.len()), (0, None, 0));
    }

    #[test]
    fn throughput_counts_confirmations_per_second_of_each_bucket() {
        let t = |confirmed_ms| TransferRecord {
            height: Some(1),
            confirmed_ms,
            ..transfer(0, Vec::new())
        };
        let transfers = [t(Some(500)), t(Some(700)), t(Some(2_500)), t(None)];
        let s = throughput(&transfers, 3_000);
        assert_eq!(s.width_ms, 1000);
        assert_eq!(s.values, vec![2.0, 0.0, 1.0, 0.0]);
    }
}
