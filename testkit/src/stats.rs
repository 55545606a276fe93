//! Timing figures: percentiles and how durations and sizes are printed.

use std::time::Duration;

/// Nearest-rank percentile `p` (0..=100) of `sorted` (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99 and max of `v` (sorted in place; all zero when empty).
pub fn summary(v: &mut [Duration]) -> (Duration, Duration, Duration) {
    v.sort_unstable();
    (
        percentile(v, 50.0),
        percentile(v, 99.0),
        v.last().copied().unwrap_or_default(),
    )
}

/// A duration as seconds or milliseconds with three decimals (`1.250 s`, `12.345 ms`).
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.3} s", d.as_secs_f64())
    } else {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    }
}

/// Milliseconds with two decimals, without the unit (for columns headed "ms").
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let (p50, p99, max) = summary(&mut v);
        assert_eq!(p50, Duration::from_millis(50));
        assert_eq!(p99, Duration::from_millis(99));
        assert_eq!(max, Duration::from_millis(100));
        assert_eq!(percentile(&v, 0.0), Duration::from_millis(1));
        assert_eq!(
            summary(&mut []),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_duration(Duration::from_micros(12_345)), "12.345 ms");
        assert_eq!(fmt_duration(Duration::from_millis(1_250)), "1.250 s");
        assert_eq!(ms(Duration::from_micros(1_234)), "1.23");
        assert_eq!(mib(3 * 1024 * 1024), 3.0);
    }
}
