//! # peerchain-testkit
//!
//! The one home of the helpers shared by the workspace's tests and benchmarks.
//!
//! It owns: benchmark sizes from the environment and the smoke-run rule ([`bench`](mod@bench)),
//! timing figures (percentiles, durations, MiB: [`stats`]), the result table of the benchmarks
//! ([`table`]), the process's resident memory ([`mem`]), a deterministic random generator
//! ([`rng`]), transfers signed on every core ([`sign`]), and easy-proof-of-work genesis blocks
//! and clocks ([`chain`]), a small disk to fill ([`disk`]), headless Chromium for the browser
//! tests and the check of scenario reports ([`browser`]), the host's steal time during a
//! run ([`host`]). Chain builders themselves stay in `peerchain_ledger::testkit`
//! (behind that crate's `testkit` feature, which this crate enables).
//!
//! It must never be a dependency of a non-test target: list it under `[dev-dependencies]`
//! only. It turns on `peerchain-ledger`'s `testkit` feature, which no node build may carry,
//! and it reads the wall clock and `/proc`, which library code must not.
//!
//! Everything is re-exported at the crate root, so `use peerchain_testkit::{env_count, ..}`.

pub mod bench;
pub mod browser;
pub mod chain;
pub mod disk;
pub mod host;
pub mod mem;
pub mod rng;
pub mod sign;
pub mod stats;
pub mod table;

pub use bench::{bench_mode, cores, env_count, env_counts, smoke_note, verify_rate};
pub use browser::{Browser, browser_or_skip, browser_tools};
pub use chain::{easy_genesis, late_clock_ms, node_genesis, now_ms};
pub use disk::{Tmpfs, fill_disk};
pub use host::{CpuTimes, steal_note};
pub use mem::{peak_rss_bytes, rss_bytes};
pub use rng::Rng;
pub use sign::{Transfers, dev_keys, transfers_par};
pub use stats::{fmt_duration, mib, ms, percentile, summary};
pub use table::{table_header, table_row, table_rule};
