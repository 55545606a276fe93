//! The run's seeded draws besides the load's: the time of a step within its `jitter_s`, the
//! node of `kill = "any"` (and `stop`, `start`), and each node start's `--fault-seed` (the
//! loss draws of its link faults, a sybil's identities).
//!
//! It owns: one independent stream per purpose and item, derived from the seed with
//! SplitMix64, so a draw depends only on the seed, the purpose and the item (a step's place
//! among the `[[at]]` entries, a node's index): adding a step does not change the load, and
//! no draw depends on the `rand` crate's version.
//! It must never: read the clock or the operating system's randomness.

/// What a draw is for; each purpose is a stream of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The time of a step within `[t, t + jitter_s]`; item: the step's `[[at]]` index.
    StepTime = 1,
    /// The node of a `"any"` step; item: the step's `[[at]]` index.
    StepNode = 2,
    /// A node's `--fault-seed`; item: the node's index (high 32 bits) and start number.
    FaultSeed = 3,
}

/// The SplitMix64 output function: a bijection of `u64` that spreads every input bit.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The draw of `stream` for `item` under `seed`: 64 bits, the same on every run and build.
pub fn derive(seed: u64, stream: Stream, item: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ stream as u64) ^ item)
}

/// A draw from `0..n` (`n` at least 1; 0 is taken as 1), by the high bits of a widening
/// multiplication: the bias is below `n / 2^64`.
pub fn below(seed: u64, stream: Stream, item: u64, n: u64) -> u64 {
    let x = u128::from(derive(seed, stream, item));
    // (x * n) >> 64 < n, so it fits in u64.
    ((x * u128::from(n.max(1))) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_fixed_by_seed_stream_and_item() {
        assert_eq!(
            derive(7, Stream::StepTime, 3),
            derive(7, Stream::StepTime, 3)
        );
        let all = [
            derive(7, Stream::StepTime, 3),
            derive(8, Stream::StepTime, 3),
            derive(7, Stream::StepNode, 3),
            derive(7, Stream::StepTime, 4),
            derive(7, Stream::FaultSeed, 3),
        ];
        let distinct: std::collections::BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut seen = [0u32; 5];
        for item in 0..1000 {
            let v = below(1, Stream::StepNode, item, 5);
            seen[usize::try_from(v).expect("small")] += 1;
        }
        assert!(seen.iter().all(|&c| c > 150), "roughly uniform: {seen:?}");
        assert_eq!(below(1, Stream::StepNode, 0, 1), 0);
        assert_eq!(below(1, Stream::StepNode, 0, 0), 0, "0 is taken as 1");
    }
}
