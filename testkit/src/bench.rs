//! Benchmark sizes and the smoke-run rule.
//!
//! A benchmark binary run by `cargo bench` gets `--bench` on its command line; run by
//! `cargo test --all-targets` (or `--benches`) it does not, and then uses small "smoke" sizes
//! in the unoptimised test profile, so CI only checks that it works. An environment variable
//! overrides either size.

/// Whether the binary runs as a benchmark (`cargo bench`), not as a smoke test (`cargo test`).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Says so when the sizes are smoke-test sizes from a `cargo test` build (not optimised):
/// the figures printed then are no measurement.
pub fn smoke_note() {
    if !bench_mode() {
        println!(
            "(smoke run without --bench: small sizes, test profile; figures are not measurements, \
             run with `cargo bench`)"
        );
    }
}

/// Reads `name` as a count (`_` separators allowed): the variable when set, else `full` under
/// `cargo bench` and `smoke` otherwise.
///
/// # Panics
/// When the variable is set but is not a count.
pub fn env_count(name: &str, full: usize, smoke: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) if bench_mode() => full,
        Err(_) => smoke,
    }
}

/// Reads `name` as a comma-separated list of counts (same defaults rule as [`env_count`]).
///
/// # Panics
/// When the variable is set but is not a list of counts.
pub fn env_counts(name: &str, full: &[usize], smoke: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a list of counts"))
            })
            .collect(),
        Err(_) if bench_mode() => full.to_vec(),
        Err(_) => smoke.to_vec(),
    }
}

/// Threads available to this process (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The machine's limit that most figures are measured against: signed transfers checked per
/// second on every core (`crypto::verify_many`, rayon, `verify_transaction` per item), over
/// `sample` for about one second. Fails when a transfer of the sample does not verify.
pub fn verify_rate(sample: &[peerchain_ledger::Transaction]) -> Result<f64, String> {
    if sample.is_empty() {
        return Err("no transfer to verify".into());
    }
    let t = std::time::Instant::now();
    let mut verified = 0usize;
    while t.elapsed() < std::time::Duration::from_secs(1) {
        let ok = peerchain_ledger::crypto::verify_many(sample);
        if !ok.iter().all(|&v| v) {
            return Err("a sample transfer does not verify".into());
        }
        verified += ok.len();
    }
    Ok(verified as f64 / t.elapsed().as_secs_f64())
}
