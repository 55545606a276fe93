//! The disk under the store: the [`StorageGuard`] decides when the node stops taking
//! transactions and blocks (a full disk, or less free space than the reserve) and when it
//! tries to resume.
//!
//! sled refuses every write after one failed (a full disk leaves it in a sticky error state
//! until the store is reopened), so a node that merely retried would never recover, and one
//! that went on importing would mistake I/O errors for something else. The guard is checked
//! once a second with the free space of the data directory's disk and the result of a small
//! probe write and flush (made on the `store-probe` thread, `prober`, so the chain thread
//! never waits for the disk; while a probe is slow, the free space alone is judged): below
//! `reserve` free, or after a failed write, the node is *full*: HTTP submissions get 503
//! `disk_full`, gossiped transactions and blocks are ignored (no penalty), mining pauses,
//! reads go on. Once at least twice the reserve (and at least [`MIN_RESUME_FREE`]) is free
//! (and a probe after a reopen succeeds) it resumes; after a failed write the chain service
//! reopens the store first (`Chain::reopen_store`).
//!
//! It must never: read the clock or the disk itself (the chain service passes `now`, the free
//! space and the probe's result); or mark anything invalid (a full disk is no verdict on data).

use std::time::{Duration, Instant};

use super::prober::{ProbeRequest, ProbeResult};

/// How often the free space is read and the probe written.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Free space needed to resume, whatever the reserve: reopening the store on a disk that is
/// still full would fail, and reads fail while the store is reopened.
pub(crate) const MIN_RESUME_FREE: u64 = 16 * 1024 * 1024;
/// Least time between two attempts to reopen the store.
pub(crate) const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// What the chain service must do after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing changed.
    None,
    /// The node just became full: stop writing (log `reason`).
    Stop {
        /// Why, for the log and the API.
        reason: String,
    },
    /// Space is back: resume, reopening the store first if `reopen`.
    Resume {
        /// A write failed while full: sled needs a reopen.
        reopen: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Healthy,
    Full {
        reason: String,
        /// A write failed: the store must be reopened before it takes writes again.
        write_failed: bool,
        /// A write failed for another reason than a full disk (an I/O error, a read-only
        /// file system): reopening could fail and leave no store to read, so the node keeps
        /// serving reads from the one it has and takes no writes until it is restarted.
        broken: bool,
        last_reopen: Option<Instant>,
    },
}

/// A write to the store that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WriteFailure {
    /// The store's error.
    pub message: String,
    /// Whether it was a full disk (or quota): then a reopen, once space returns, recovers.
    pub disk_full: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct StorageGuard {
    reserve: u64,
    state: State,
    last_check: Option<Instant>,
}

fn broken_reason(error: &str) -> String {
    format!(
        "the store failed with an I/O error that is not a full disk ({error}); reads go on, writes need a restart of the node"
    )
}

/// Why a disk with `free` bytes below `reserve` stops the node.
fn low_space_reason(free: u64, reserve: u64) -> String {
    format!(
        "only {} MiB free on the data directory's disk, below the reserve of {} MiB",
        mib(free),
        mib(reserve)
    )
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

impl StorageGuard {
    /// A guard keeping `reserve_bytes` free.
    pub(crate) fn new(reserve_bytes: u64) -> Self {
        StorageGuard {
            reserve: reserve_bytes,
            state: State::Healthy,
            last_check: None,
        }
    }

    /// Why the node is full, when it is.
    pub(crate) fn full_reason(&self) -> Option<&str> {
        match &self.state {
            State::Healthy => None,
            State::Full { reason, .. } => Some(reason),
        }
    }

    /// Whether a check is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> bool {
        self.last_check
            .is_none_or(|t| now.saturating_duration_since(t) >= CHECK_INTERVAL)
    }

    /// A write to the store failed with an I/O error.
    pub(crate) fn write_failed(&mut self, failure: &WriteFailure) -> Action {
        let broken_now = !failure.disk_full;
        match &mut self.state {
            State::Full {
                write_failed,
                broken,
                reason,
                ..
            } => {
                *write_failed = true;
                if broken_now && !*broken {
                    *broken = true;
                    *reason = broken_reason(&failure.message);
                    return Action::Stop {
                        reason: reason.clone(),
                    };
                }
                Action::None
            }
            State::Healthy => {
                let reason = if broken_now {
                    broken_reason(&failure.message)
                } else {
                    format!("a write to the store failed: {}", failure.message)
                };
                self.state = State::Full {
                    reason: reason.clone(),
                    write_failed: true,
                    broken: broken_now,
                    last_reopen: None,
                };
                Action::Stop { reason }
            }
        }
    }

    /// The periodic check at `now` while the probe write has not finished: only low free
    /// space (`free` bytes, `None` when it cannot be read) stops the node; nothing resumes
    /// it without a probe.
    pub(crate) fn check_space(&mut self, now: Instant, free: Option<u64>) -> Action {
        self.last_check = Some(now);
        let low = free.is_some_and(|f| f < self.reserve);
        if low && self.state == State::Healthy {
            return self.stop_for_low_space(free);
        }
        Action::None
    }

    /// A healthy guard with `free` bytes below the reserve becomes full, and the node stops.
    fn stop_for_low_space(&mut self, free: Option<u64>) -> Action {
        let reason = low_space_reason(free.unwrap_or(0), self.reserve);
        self.state = State::Full {
            reason: reason.clone(),
            write_failed: false,
            broken: false,
            last_reopen: None,
        };
        Action::Stop { reason }
    }

    /// The periodic check at `now`: `free` bytes on the disk (`None` when it cannot be
    /// read), and the result of the probe write (`Err` with the store's error).
    pub(crate) fn check(
        &mut self,
        now: Instant,
        free: Option<u64>,
        probe: Result<(), WriteFailure>,
    ) -> Action {
        self.last_check = Some(now);
        if let Err(e) = &probe {
            let action = self.write_failed(e);
            if action != Action::None {
                return action;
            }
        }
        let low = free.is_some_and(|f| f < self.reserve);
        match &mut self.state {
            State::Healthy if low => self.stop_for_low_space(free),
            State::Healthy => Action::None,
            State::Full { broken: true, .. } => Action::None,
            State::Full {
                write_failed,
                last_reopen,
                ..
            } => {
                // Resume with room to spare (twice the reserve), so the node does not flap.
                let needed = self.reserve.saturating_mul(2).max(MIN_RESUME_FREE);
                let roomy = free.is_none_or(|f| f >= needed);
                if !roomy {
                    return Action::None;
                }
                if *write_failed {
                    if last_reopen
                        .is_some_and(|t| now.saturating_duration_since(t) < REOPEN_INTERVAL)
                    {
                        return Action::None;
                    }
                    *last_reopen = Some(now);
                    return Action::Resume { reopen: true };
                }
                if probe.is_ok() {
                    return Action::Resume { reopen: false };
                }
                Action::None
            }
        }
    }

    /// The store was reopened and took a write again (or never needed a reopen): healthy.
    pub(crate) fn resumed(&mut self) {
        self.state = State::Healthy;
    }
}

/// The failure a store error stands for.
fn store_failure(error: &peerchain_ledger::StoreError) -> WriteFailure {
    WriteFailure {
        message: error.to_string(),
        disk_full: error.is_disk_full(),
    }
}

impl super::ChainService {
    /// Why the node takes no transactions or blocks now (its disk is full), if so.
    pub(super) fn disk_full(&self) -> Option<&str> {
        self.storage.full_reason()
    }

    /// `DiskFull` while the disk is full: requests that write are refused.
    pub(super) fn refuse_if_disk_full(&self) -> Result<(), peerchain_rpc::node_api::NodeError> {
        match self.disk_full() {
            Some(reason) => Err(peerchain_rpc::node_api::NodeError::DiskFull {
                detail: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The once-a-second check of the disk: stops the node when it is full, and resumes it
    /// (reopening the store after a failed write) when space returns. The probe write and
    /// its flush run on the `store-probe` thread (`prober`): a check is asked for when due,
    /// with the free space read then, and judged on the step after the probe finishes.
    pub(super) fn check_storage(&mut self) {
        if let Some(result) = self.prober.finished() {
            self.storage_checked(result);
        }
        let now = Instant::now();
        if !self.storage.due(now) {
            return;
        }
        if self.prober.busy() {
            // The probe is slow (a busy disk): the free space is still judged on time.
            let action = self.storage.check_space(now, self.free_space());
            self.storage_action(action);
            return;
        }
        self.prober.request(ProbeRequest {
            mark: self.chain.durable_mark(),
        });
    }

    /// A probe finished: the blocks connected before it are durable if it succeeded, and
    /// the guard judges the disk with its result and the free space now.
    fn storage_checked(&mut self, result: ProbeResult) {
        let ProbeResult { request, outcome } = result;
        let probe = match outcome {
            Ok(()) => {
                self.chain.blocks_durable(request.mark);
                Ok(())
            }
            Err(e) => Err(store_failure(&e)),
        };
        let action = self.storage.check(Instant::now(), self.free_space(), probe);
        self.storage_action(action);
    }

    /// Free bytes on the store's disk, `None` when they cannot be read.
    fn free_space(&self) -> Option<u64> {
        fs2::available_space(&self.store_dir).ok()
    }

    /// Carries out what a check decided.
    fn storage_action(&mut self, action: Action) {
        match action {
            Action::None => {}
            Action::Stop { reason } => {
                tracing::error!(
                    %reason,
                    "disk full: refusing transactions and blocks until space returns (reads go on; nothing is marked invalid)"
                );
                self.links.metrics.set_disk_full(true);
                self.refresh_template(true);
            }
            Action::Resume { reopen } => self.resume_storage(reopen),
        }
    }

    fn resume_storage(&mut self, reopen: bool) {
        if reopen {
            let now_ms = super::clock_ms(self.clock_offset_ms);
            // The writer's jobs and the probe in flight target the store being closed; the
            // reopened one is caught up from its own records and probed below.
            self.writer.wait();
            self.prober.settle();
            if let Err(e) = self.chain.reopen_store(now_ms) {
                tracing::warn!(error = %e, "space is back but reopening the store failed; will retry");
                return;
            }
            if let Err(e) = self.chain.probe_store() {
                tracing::warn!(error = %e, "the reopened store refuses writes; will retry");
                return;
            }
        }
        self.storage.resumed();
        self.links.metrics.set_disk_full(false);
        // Held transactions waited while nothing could be admitted (their predecessors were
        // ignored): their relays must not be judged by that time.
        self.gap.restamp(super::clock_ms(self.clock_offset_ms));
        tracing::info!(
            reopened = reopen,
            height = self.chain.tip_header().height,
            "disk space is back: accepting transactions and blocks again"
        );
        self.tips_dirty = true;
        self.links.outbox.set_local_tip(self.local_tip());
        self.refresh_template(true);
    }

    /// A write failed with an I/O error outside the periodic check (importing a block,
    /// saving the mempool): stop at once if it is the store's.
    pub(super) fn store_write_failed(&mut self, error: &peerchain_consensus::ChainError) {
        if let peerchain_consensus::ChainError::Store(e) = error
            && e.is_io()
        {
            self.storage_write_failed(e);
        }
    }

    /// A write to the store failed with `error` (an I/O error): stop at once.
    pub(super) fn storage_write_failed(&mut self, error: &peerchain_ledger::StoreError) {
        if let Action::Stop { reason } = self.storage.write_failed(&store_failure(error)) {
            tracing::error!(%reason, "disk full or failing: refusing transactions and blocks until it recovers");
            self.links.metrics.set_disk_full(true);
            self.refresh_template(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn full(message: &str) -> Result<(), WriteFailure> {
        Err(WriteFailure {
            message: message.into(),
            disk_full: true,
        })
    }

    fn io_error(message: &str) -> WriteFailure {
        WriteFailure {
            message: message.into(),
            disk_full: false,
        }
    }

    #[test]
    fn low_space_stops_the_node_while_a_probe_is_slow_but_only_a_probe_resumes_it() {
        let mut g = StorageGuard::new(64 * MIB);
        let t = Instant::now();
        assert_eq!(g.check_space(t, Some(500 * MIB)), Action::None);
        assert!(!g.due(t), "the space check counts as the second's check");
        let Action::Stop { reason } = g.check_space(t, Some(10 * MIB)) else {
            panic!("not stopped");
        };
        assert!(reason.contains("10 MiB free"), "{reason}");
        assert_eq!(
            g.check_space(t, Some(500 * MIB)),
            Action::None,
            "room again, but no probe yet"
        );
        assert!(g.full_reason().is_some());
        assert_eq!(
            g.check(t, Some(500 * MIB), Ok(())),
            Action::Resume { reopen: false }
        );
    }

    #[test]
    fn low_space_stops_the_node_and_twice_the_reserve_resumes_it() {
        let mut g = StorageGuard::new(64 * MIB);
        let t = Instant::now();
        assert_eq!(g.check(t, Some(500 * MIB), Ok(())), Action::None);
        let Action::Stop { reason } = g.check(t, Some(10 * MIB), Ok(())) else {
            panic!("not stopped");
        };
        assert!(
            reason.contains("10 MiB free") && reason.contains("64 MiB"),
            "{reason}"
        );
        assert!(g.full_reason().is_some());
        assert_eq!(
            g.check(t, Some(100 * MIB), Ok(())),
            Action::None,
            "not twice the reserve yet"
        );
        assert_eq!(
            g.check(t, Some(128 * MIB), Ok(())),
            Action::Resume { reopen: false }
        );
        g.resumed();
        assert_eq!(g.full_reason(), None);
    }

    #[test]
    fn a_failed_write_stops_the_node_until_a_reopen_once_space_returns() {
        let mut g = StorageGuard::new(64 * MIB);
        let t = Instant::now();
        let Action::Stop { reason } = g.check(t, Some(500 * MIB), full("No space left")) else {
            panic!("not stopped");
        };
        assert!(reason.contains("No space left"), "{reason}");
        // Space came back at once (a file was deleted): reopen, not merely resume.
        assert_eq!(
            g.check(t, Some(500 * MIB), full("sticky")),
            Action::Resume { reopen: true }
        );
        // The reopen failed: not retried before REOPEN_INTERVAL.
        let soon = t + CHECK_INTERVAL;
        assert_eq!(g.check(soon, Some(500 * MIB), full("sticky")), Action::None);
        let later = t + REOPEN_INTERVAL;
        assert_eq!(
            g.check(later, Some(500 * MIB), full("sticky")),
            Action::Resume { reopen: true }
        );
        g.resumed();
        assert_eq!(g.check(later, Some(500 * MIB), Ok(())), Action::None);
    }

    #[test]
    fn a_write_failing_while_low_on_space_still_asks_for_a_reopen() {
        let mut g = StorageGuard::new(64 * MIB);
        let t = Instant::now();
        assert!(matches!(g.check(t, Some(MIB), Ok(())), Action::Stop { .. }));
        assert_eq!(
            g.write_failed(&WriteFailure {
                message: "No space left".into(),
                disk_full: true
            }),
            Action::None,
            "already stopped"
        );
        assert_eq!(
            g.check(t, Some(500 * MIB), Ok(())),
            Action::Resume { reopen: true }
        );
    }

    #[test]
    fn a_disk_still_nearly_full_is_not_reopened_even_without_a_reserve() {
        let mut g = StorageGuard::new(0);
        let t = Instant::now();
        assert!(matches!(
            g.check(t, Some(0), full("No space left")),
            Action::Stop { .. }
        ));
        let almost = MIN_RESUME_FREE - 1;
        assert_eq!(g.check(t, Some(almost), full("sticky")), Action::None);
        assert_eq!(
            g.check(t, Some(MIN_RESUME_FREE), full("sticky")),
            Action::Resume { reopen: true }
        );
    }

    #[test]
    fn unknown_free_space_relies_on_the_probe() {
        let mut g = StorageGuard::new(64 * MIB);
        let t = Instant::now();
        assert_eq!(g.check(t, None, Ok(())), Action::None);
        assert!(matches!(
            g.check(t, None, full("ENOSPC")),
            Action::Stop { .. }
        ));
        assert_eq!(
            g.check(t, None, full("ENOSPC")),
            Action::Resume { reopen: true }
        );
    }

    /// Review finding: another I/O error (a read-only remount, EIO) must not trigger a
    /// reopen, which could fail and leave nothing to read from: reads go on from the store
    /// the node has, writes wait for a restart, whatever the free space.
    #[test]
    fn an_io_error_that_is_not_a_full_disk_is_never_reopened() {
        let mut g = StorageGuard::new(64 * MIB);
        let t = Instant::now();
        let Action::Stop { reason } = g.check(t, Some(500 * MIB), Err(io_error("EROFS"))) else {
            panic!("not stopped");
        };
        assert!(reason.contains("restart"), "{reason}");
        for s in 1..5 {
            let later = t + REOPEN_INTERVAL * s;
            assert_eq!(
                g.check(later, Some(500 * MIB), Err(io_error("EROFS"))),
                Action::None
            );
            assert_eq!(g.check(later, Some(500 * MIB), Ok(())), Action::None);
        }
        // A full disk that turns into another failure: no reopen either.
        let mut g = StorageGuard::new(64 * MIB);
        assert!(matches!(g.check(t, Some(MIB), Ok(())), Action::Stop { .. }));
        assert!(matches!(
            g.write_failed(&io_error("EIO")),
            Action::Stop { .. }
        ));
        assert_eq!(g.check(t, Some(500 * MIB), Ok(())), Action::None);
    }

    #[test]
    fn checks_are_spaced() {
        let mut g = StorageGuard::new(MIB);
        let t = Instant::now();
        assert!(g.due(t));
        g.check(t, Some(100 * MIB), Ok(()));
        assert!(!g.due(t + Duration::from_millis(500)));
        assert!(g.due(t + CHECK_INTERVAL));
    }
}
