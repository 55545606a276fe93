//! The difficulty rule of SPEC section 3: relative ASERT (the 2^x polynomial of Bitcoin Cash's
//! aserti3-2d), one exponential step per block, and the median time past of rule 3.
//!
//! Everything here is pure integer arithmetic, defined for every input: timestamps may go
//! backwards or jump by `u64::MAX`, targets may be 0 or `U256::MAX`, and an unvalidated genesis
//! with a zero half-life still yields a target in `[1, pow_limit]` without panicking.

use peerchain_ledger::{BlockHeader, Genesis, Target, U256};
use primitive_types::U512;

/// How many timestamps, ending with the parent's, the median time past looks at.
pub const MEDIAN_TIME_SPAN: usize = 11;

/// Fixed-point scale of the ASERT exponent (16 fractional bits).
const RADIX: i128 = 1 << 16;

/// Target of the child of `parent`, whose own parent is `grandparent` (`None` when `parent` is
/// the genesis header, so the child is block 1 and gets `initial_target`).
pub fn next_target(
    parent: &BlockHeader,
    grandparent: Option<&BlockHeader>,
    genesis: &Genesis,
) -> Target {
    let Some(grandparent) = grandparent else {
        return genesis.initial_target;
    };
    // Cannot overflow: the difference of two u64 values fits an i128.
    #[allow(clippy::arithmetic_side_effects)]
    let solve_time = i128::from(parent.timestamp_ms) - i128::from(grandparent.timestamp_ms);
    asert_step(&parent.target, solve_time, genesis)
}

/// One ASERT step: scales `target` by `2^((st - T) / H)` with `st` the parent's solve time
/// clamped to `[-10T, 10T]`, then bounds the result to `[1, pow_limit]`.
pub fn asert_step(target: &Target, solve_time: i128, genesis: &Genesis) -> Target {
    let block_time = i128::from(genesis.target_block_time_ms);
    // A validated genesis has H >= T >= 1; `max(1)` only keeps a bad one from dividing by 0.
    let half_life = i128::from(genesis.difficulty_half_life_ms).max(1);
    // Cannot overflow: 0 <= T < 2^64, so 10 * T < 2^68 fits an i128.
    #[allow(clippy::arithmetic_side_effects)]
    let st = solve_time.clamp(-10 * block_time, 10 * block_time);
    // Cannot overflow: |st - T| <= 11 * 2^64 and 11 * 2^64 * 2^16 < 2^84; H >= 1.
    #[allow(clippy::arithmetic_side_effects)]
    let exponent = ((st - block_time) * RADIX).div_euclid(half_life);
    let shifts = exponent >> 16;
    // The low 16 bits: `exponent - shifts * RADIX`, in [0, RADIX).
    let frac = u16::try_from(exponent & (RADIX - 1)).unwrap_or(0);
    let scaled = target.0.full_mul(U256::from(pow2_factor(frac)));
    // Cannot overflow: a right shift by 16 of 512 bits.
    #[allow(clippy::arithmetic_side_effects)]
    let shifted = shift_signed(scaled, shifts) >> 16;
    let limit = U512::from(genesis.pow_limit.0);
    let bounded = shifted.max(U512::one()).min(limit);
    // `bounded <= pow_limit < 2^256`, so the conversion cannot fail.
    Target(U256::try_from(bounded).unwrap_or(genesis.pow_limit.0))
}

/// `2^(frac / 65536) * 65536` by the aserti3-2d cubic.
// Cannot overflow: f < 2^16, so each term is below 2^64 and their sum below 2^66.
#[allow(clippy::arithmetic_side_effects)]
fn pow2_factor(frac: u16) -> u128 {
    let f = u128::from(frac);
    ((195_766_423_245_049 * f + 971_821_376 * f * f + 5127 * f * f * f + (1 << 47)) >> 48) + 65_536
}

/// `value << shifts` for `shifts >= 0`, `value >> -shifts` otherwise; bits shifted past either
/// end of 512 bits saturate (all ones) or vanish (zero), which the caller's clamp then bounds.
// Cannot overflow: the guards keep every shift below 512 bits, and `-s` below 512.
#[allow(clippy::arithmetic_side_effects)]
fn shift_signed(value: U512, shifts: i128) -> U512 {
    if value.is_zero() {
        return value;
    }
    // `512 - value.bits()`.
    let headroom = i128::from(value.leading_zeros());
    match shifts {
        s if s > headroom => U512::MAX,
        s if s >= 0 => value << (s as usize),
        s if s > -512 => value >> ((-s) as usize),
        _ => U512::zero(),
    }
}

/// Median time past of SPEC rule 3: of the last (up to) 11 `timestamps`, ordered oldest first
/// and ending with the parent's, the element `len / 2` once sorted (the upper median for an
/// even count). An empty slice gives 0.
pub fn median_time_past(timestamps: &[u64]) -> u64 {
    let start = timestamps.len().saturating_sub(MEDIAN_TIME_SPAN);
    let mut window = timestamps.get(start..).unwrap_or_default().to_vec();
    window.sort_unstable();
    window.get(window.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use peerchain_ledger::{Address, Hash};
    use proptest::prelude::*;

    fn spec_genesis() -> Genesis {
        Genesis::dev(1, 1000, 2000)
    }

    fn target(hex: &str) -> Target {
        hex.parse().expect("64 hex digits")
    }

    fn header(timestamp_ms: u64, target: Target) -> BlockHeader {
        BlockHeader {
            version: 1,
            height: 1,
            prev_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            timestamp_ms,
            target,
            nonce: 0,
            miner: Address::ZERO,
        }
    }

    /// Target after a parent with `parent_target` solved `st` ms after its grandparent.
    fn after(parent_target: Target, st: i64, g: &Genesis) -> Target {
        let base = 1_000_000_000u64;
        let gp = header(base, Target(U256::one()));
        let p = header(
            base.checked_add_signed(st).expect("in range"),
            parent_target,
        );
        next_target(&p, Some(&gp), g)
    }

    #[test]
    fn spec_parameters_match_section_4() {
        let g = spec_genesis();
        assert_eq!(g.difficulty_half_life_ms, 60_000);
        assert_eq!(
            g.initial_target,
            target("00000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
        );
        assert_eq!(
            g.pow_limit,
            target("0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
        );
    }

    #[test]
    fn spec_section_7_difficulty_vectors() {
        let g = spec_genesis();
        let init = g.initial_target;
        let gen_header = g.header();
        assert_eq!(
            next_target(&gen_header, None, &g),
            init,
            "parent is genesis"
        );
        let rows: [(Target, i64, &str); 9] = [
            (
                init,
                2000,
                "00000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                init,
                0,
                "00000fa29fffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                init,
                7000,
                "000010f3fffffffffffffffffffffffffffffffffffffffffffffffffffffffe",
            ),
            (
                init,
                20000,
                "000013b29ffffffffffffffffffffffffffffffffffffffffffffffffffffffe",
            ),
            (
                init,
                500_000,
                "000013b29ffffffffffffffffffffffffffffffffffffffffffffffffffffffe",
            ),
            (
                init,
                -20000,
                "00000c68afffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                init,
                -500_000,
                "00000c68afffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                g.pow_limit,
                20000,
                "0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            ),
            (
                Target(U256::one()),
                0,
                "0000000000000000000000000000000000000000000000000000000000000001",
            ),
        ];
        for (parent, st, want) in rows {
            assert_eq!(
                after(parent, st, &g),
                target(want),
                "parent {parent} st {st}"
            );
        }
    }

    #[test]
    fn extreme_inputs_stay_in_bounds() {
        let mut g = spec_genesis();
        let limit = g.pow_limit;
        for t in [U256::zero(), U256::one(), U256::MAX] {
            for (a, b) in [(0, u64::MAX), (u64::MAX, 0), (0, 0)] {
                let got = next_target(&header(b, Target(t)), Some(&header(a, Target(t))), &g);
                assert!(got.0 >= U256::one() && got <= limit, "{t} {a} {b}: {got}");
            }
        }
        // An unvalidated genesis (H = 0, T huge) must not panic either.
        g.difficulty_half_life_ms = 0;
        g.target_block_time_ms = u64::MAX;
        for (a, b) in [(0, u64::MAX), (u64::MAX, 0)] {
            let got = next_target(&header(b, g.pow_limit), Some(&header(a, g.pow_limit)), &g);
            assert!(got.0 >= U256::one() && got <= limit);
        }
        assert_eq!(shift_signed(U512::one(), i128::MIN), U512::zero());
        assert_eq!(shift_signed(U512::one(), i128::MAX), U512::MAX);
        assert_eq!(shift_signed(U512::one(), 511), U512::one() << 511usize);
    }

    #[test]
    fn polynomial_endpoints() {
        assert_eq!(pow2_factor(0), 65_536);
        // 2^(65535/65536) * 65536 = 131070.6..., the cubic rounds down to just below 2^17.
        let top = pow2_factor(65_535);
        assert!((131_060..131_072).contains(&top), "{top}");
    }

    /// Relative difference `|a - b| / b`, in parts per million.
    fn ppm(a: U256, b: U256) -> u64 {
        let diff = if a > b { a - b } else { b - a };
        (diff * U256::from(1_000_000u64) / b).low_u64()
    }

    /// Builds `steps` blocks after genesis, `interval` ms apart, and returns the target of the
    /// next block, which has seen `steps` ASERT steps (block 1 takes `initial_target` as is).
    fn simulate(g: &Genesis, interval: u64, steps: usize) -> Target {
        let mut grandparent: Option<BlockHeader> = None;
        let mut parent = g.header();
        for _ in 0..steps {
            let t = next_target(&parent, grandparent.as_ref(), g);
            let child = header(parent.timestamp_ms + interval, t);
            grandparent = Some(std::mem::replace(&mut parent, child));
        }
        next_target(&parent, grandparent.as_ref(), g)
    }

    /// Tolerance against the ideal `2^x`: the SPEC cubic is up to 1.2e-4 off per step and
    /// the floored exponent up to 1.1e-5, so relative ASERT drifts by up to ~0.013% per block.
    /// With the SPEC parameters the drift after one half-life is +0.115% (T/2 blocks, 60 steps)
    /// and +0.187% (2T blocks, 30 steps), so 0.1% is too tight for the rule itself.
    const CLOSED_FORM_PPM: u64 = 2500;

    #[test]
    fn simulated_hash_rate_change_follows_closed_form() {
        let g = spec_genesis();
        let (t, h) = (g.target_block_time_ms, g.difficulty_half_life_ms);
        // Hash rate doubled: a block every T/2, each step lags the schedule by T/2, so after
        // H / (T/2) steps the lag is one half-life and the target should halve.
        let steps = usize::try_from(h / (t / 2)).expect("small");
        let fast = simulate(&g, t / 2, steps);
        assert!(fast < g.initial_target);
        let predicted = g.initial_target.0 >> 1;
        assert!(
            ppm(fast.0, predicted) < CLOSED_FORM_PPM,
            "{fast} vs {predicted:x}"
        );
        // Exact value from an independent (Python, arbitrary precision) implementation.
        assert_eq!(
            fast,
            target("000008025cf728ba4568419e45a4e2129a6dc419accd3c55e1252a00b35b2965")
        );
        // Hash rate halved: a block every 2T, the target doubles after H / T steps.
        let steps = usize::try_from(h / t).expect("small");
        let slow = simulate(&g, 2 * t, steps);
        let predicted = (g.initial_target.0 << 1) | U256::one();
        assert!(
            ppm(slow.0, predicted) < CLOSED_FORM_PPM,
            "{slow} vs {predicted:x}"
        );
        assert_eq!(
            slow,
            target("0000200f49fe396aa557859b589adeaf56af8ad31bcdd6ae9f1adb56e3ffffe1")
        );
        // On schedule nothing changes.
        assert_eq!(simulate(&g, t, 50), g.initial_target);
    }

    #[test]
    fn median_time_past_windows() {
        assert_eq!(median_time_past(&[]), 0);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(
            median_time_past(&[1, 9]),
            9,
            "upper median of an even count"
        );
        assert_eq!(median_time_past(&[3, 1, 2]), 2);
        assert_eq!(median_time_past(&[4, 3, 2, 1]), 3);
        // Only the last 11 count: the huge early values are ignored.
        let mut ts = vec![1_000_000, 1_000_000];
        ts.extend(1..=11);
        assert_eq!(median_time_past(&ts), 6);
        assert_eq!(
            median_time_past(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 5]),
            50
        );
    }

    proptest! {
        #[test]
        fn always_within_one_and_pow_limit(
            words in proptest::array::uniform4(any::<u64>()),
            parent_ts in any::<u64>(),
            grandparent_ts in any::<u64>(),
            block_time in 1u64..100_000,
            extra_half_life in 0u64..10_000_000,
        ) {
            let mut g = spec_genesis();
            g.target_block_time_ms = block_time;
            g.difficulty_half_life_ms = block_time + extra_half_life;
            let parent_target = Target(U256(words));
            let got = next_target(
                &header(parent_ts, parent_target),
                Some(&header(grandparent_ts, Target(U256::one()))),
                &g,
            );
            prop_assert!(got.0 >= U256::one());
            prop_assert!(got <= g.pow_limit);
        }

        #[test]
        fn slower_parent_never_gives_a_harder_target(
            words in proptest::array::uniform4(any::<u64>()),
            a in -30_000i64..30_000,
            b in -30_000i64..30_000,
        ) {
            let g = spec_genesis();
            let parent = Target(U256(words) >> 4);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(after(parent, lo, &g) <= after(parent, hi, &g));
        }
    }
}
