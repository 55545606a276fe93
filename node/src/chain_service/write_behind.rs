//! Store writes off the chain thread: the txindex entries of connected blocks and the saved
//! mempool's changes, made by a `store-writer` thread at a lowered CPU priority once the chain
//! thread has announced what changed.
//!
//! Both used to run on the chain thread after each step, and together they took four times
//! a block's import there: a profile of a process receiving 5,000-transfer blocks put the
//! mempool save at 13.5% of its CPU, the txindex at 7.5% and the import at 5%
//! (docs/BENCHMARKS.md section 16). Whatever came next (a block, a request) waited behind
//! them. The thread lowers its own priority (`priority::NICE`): where cores are short, as with a test
//! network on one machine, imports and admissions go first, and the writes catch up when a
//! core is free. Readers see pending txindex entries meanwhile, and the saved mempool is a
//! best-effort copy (`peerchain_ledger::BackgroundWrites`).
//!
//! The txindex entries of a block are handed over [`TXINDEX_SETTLE`] after the last block
//! joined the main chain ([`txindex_due`]), so that a block's propagation among nodes sharing
//! the machine is not slowed by their writers.
//!
//! Bounds: at most one job waits (the chain thread hands one over only when none is queued,
//! and each job takes everything pending when it runs), the entries are handed over without
//! waiting to settle past [`TXINDEX_EAGER_ENTRIES`], and the chain thread waits for the
//! writer once more than [`MAX_TXINDEX_PENDING`] txindex entries are pending.
//!
//! It owns the thread and its queue. It must never choose what is written (the chain and the
//! store do), write anything else, or decide what a failure means: failures go back to the
//! chain thread, which stops on a full disk as for its own writes.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use peerchain_consensus::SavedMempoolChanges;
use peerchain_ledger::{BackgroundWrites, StoreError};

use super::priority::lower_priority;

/// Pending txindex entries above which the chain thread waits for the writer (about 80 bytes
/// each in memory): a writer starved of CPU slows the chain rather than growing without bound.
pub(super) const MAX_TXINDEX_PENDING: usize = 100_000;

/// How long after the last block joined the main chain its txindex entries are handed to the
/// writer: while a block propagates, the imports of the other nodes on the machine and this
/// node's next block go first. The writer holds sled's lock during each insert, and at nice
/// 10 it can be preempted holding it, which made the next block's writes wait 20-90 ms
/// (docs/BENCHMARKS.md, section 16). Readers see the pending entries meanwhile.
pub(super) const TXINDEX_SETTLE: Duration = Duration::from_millis(300);

/// Pending txindex entries past which they are handed over without waiting for the chain to
/// settle (a node syncing connects blocks back to back).
pub(super) const TXINDEX_EAGER_ENTRIES: usize = 20_000;

/// Whether the txindex entries waiting (`pending`) go to the writer now, `since_last_block`
/// after a block last joined the main chain.
pub(super) fn txindex_due(since_last_block: Duration, pending: usize) -> bool {
    pending > 0 && (since_last_block >= TXINDEX_SETTLE || pending >= TXINDEX_EAGER_ENTRIES)
}

/// Failures kept for the chain thread; more are logged only (the first already stopped the
/// node's writes).
const MAX_FAILURES: usize = 16;

/// Work for the writer thread.
enum Job {
    /// Write every pending txindex entry.
    Txindex,
    /// Apply these changes to the saved mempool.
    SavedMempool(SavedMempoolChanges),
    /// Reply once every job before it is done.
    Barrier(Sender<()>),
}

/// The `store-writer` thread and its queue. See the module docs.
pub(super) struct WriteBehind {
    writes: BackgroundWrites,
    /// `None` when the thread could not be started (jobs then run on the caller's thread) or
    /// once stopped.
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    failures_tx: Sender<StoreError>,
    failures: Receiver<StoreError>,
}

impl WriteBehind {
    /// Starts the writer thread for `writes`. If it cannot be started, jobs run on the
    /// calling thread (as before the thread existed).
    pub(super) fn start(writes: BackgroundWrites) -> Self {
        let (failures_tx, failures) = crossbeam_channel::bounded(MAX_FAILURES);
        let (jobs_tx, jobs) = crossbeam_channel::bounded::<Job>(1);
        let thread_writes = writes.clone();
        let thread_failures = failures_tx.clone();
        let started = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                lower_priority("store-writer");
                for job in jobs {
                    run(&thread_writes, job, &thread_failures);
                }
            });
        let (jobs, thread) = match started {
            Ok(thread) => (Some(jobs_tx), Some(thread)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the store-writer thread; the chain thread writes the txindex and the saved mempool itself");
                (None, None)
            }
        };
        WriteBehind {
            writes,
            jobs,
            thread,
            failures_tx,
            failures,
        }
    }

    /// Whether no job waits (one may still be running).
    pub(super) fn idle(&self) -> bool {
        self.jobs.as_ref().is_none_or(Sender::is_empty)
    }

    /// Has the pending txindex entries written when they are due ([`txindex_due`], a block
    /// having last joined the main chain `since_last_block` ago) and no job waits (a waiting
    /// job is followed by the next call). Waits for the writer first when too many are
    /// pending.
    pub(super) fn write_txindex(&self, since_last_block: Duration) {
        let pending = self.writes.txindex_pending();
        if !txindex_due(since_last_block, pending) {
            return;
        }
        if pending > MAX_TXINDEX_PENDING {
            self.wait();
        }
        if self.idle() {
            self.submit(Job::Txindex);
        }
    }

    /// Has `changes` written to the saved mempool, after every job handed over before.
    pub(super) fn save_mempool_changes(&self, changes: SavedMempoolChanges) {
        if !changes.is_empty() {
            self.submit(Job::SavedMempool(changes));
        }
    }

    /// Failed writes since the last call.
    pub(super) fn failures(&self) -> Vec<StoreError> {
        self.failures.try_iter().collect()
    }

    /// Returns once every job handed over so far is done (before the store is reopened).
    pub(super) fn wait(&self) {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        self.submit(Job::Barrier(done_tx));
        // An error means the thread is gone, and so are its jobs.
        let _ = done.recv();
    }

    /// Finishes every job handed over and ends the thread (shutdown).
    pub(super) fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store-writer thread panicked");
        }
    }

    fn submit(&self, job: Job) {
        match &self.jobs {
            Some(jobs) => {
                if let Err(crossbeam_channel::SendError(job)) = jobs.send(job) {
                    // The thread is gone (it panicked): write here.
                    run(&self.writes, job, &self.failures_tx);
                }
            }
            None => run(&self.writes, job, &self.failures_tx),
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one job, sending a failure back.
fn run(writes: &BackgroundWrites, job: Job, failures: &Sender<StoreError>) {
    let result = match job {
        Job::Txindex => writes.write_txindex().map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "could not write the txindex; the store catches up when reopened");
            e
        }),
        Job::SavedMempool(changes) => writes
            .update_saved_mempool(&changes.added, &changes.removed)
            .map_err(|e| {
                tracing::error!(error = %e, "could not save the mempool's changes; it is saved whole when the store is reopened or the node stops");
                e
            }),
        Job::Barrier(done) => {
            let _ = done.send(());
            Ok(())
        }
    };
    if let Err(e) = result {
        let _ = failures.try_send(e);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use peerchain_ledger::testkit::connect_transfer_block;
    use peerchain_ledger::{Genesis, Store};

    use super::*;
    #[cfg(target_os = "linux")]
    use crate::chain_service::priority::{NICE, nice_field, nice_values_of};

    fn store() -> (Store, Genesis) {
        let g = Genesis::dev(4, 1_000_000_000, 2000);
        (Store::temporary(&g).expect("store"), g)
    }

    #[test]
    fn the_txindex_waits_for_the_chain_to_settle_unless_much_is_pending() {
        let just = TXINDEX_SETTLE - Duration::from_millis(1);
        assert!(!txindex_due(TXINDEX_SETTLE * 10, 0), "nothing to write");
        assert!(
            !txindex_due(Duration::ZERO, 5_000),
            "a block just connected"
        );
        assert!(!txindex_due(just, TXINDEX_EAGER_ENTRIES - 1));
        assert!(txindex_due(TXINDEX_SETTLE, 1));
        assert!(
            txindex_due(Duration::ZERO, TXINDEX_EAGER_ENTRIES),
            "a node syncing"
        );
    }

    #[test]
    fn jobs_are_done_in_order_by_the_writer_and_waited_for() {
        let (store, g) = store();
        let block = connect_transfer_block(&store, &g, 4, 50, 1).expect("block");
        let mut writer = WriteBehind::start(store.background_writes());
        assert!(writer.thread.is_some(), "a thread of its own");
        writer.write_txindex(TXINDEX_SETTLE);
        let saved: Vec<_> = block.transactions[..10].to_vec();
        writer.save_mempool_changes(SavedMempoolChanges {
            added: saved.clone(),
            removed: Vec::new(),
        });
        writer.wait();
        assert_eq!(store.background_writes().txindex_pending(), 0);
        assert_eq!(store.load_mempool().expect("read").len(), 10);
        writer.save_mempool_changes(SavedMempoolChanges {
            added: Vec::new(),
            removed: saved[..4].iter().map(|t| t.txid()).collect(),
        });
        writer.stop();
        assert_eq!(
            store.load_mempool().expect("read").len(),
            6,
            "stop finishes the jobs handed over"
        );
        assert!(writer.failures().is_empty());
        let last = block.transactions.last().expect("transfers").txid();
        assert_eq!(
            store.tx_location(&last).expect("read").map(|l| l.index),
            Some(49)
        );
    }

    #[test]
    fn jobs_run_on_the_caller_once_the_writer_is_stopped() {
        let (store, g) = store();
        let mut writer = WriteBehind::start(store.background_writes());
        writer.stop();
        connect_transfer_block(&store, &g, 4, 20, 2).expect("block");
        writer.write_txindex(TXINDEX_SETTLE);
        assert_eq!(store.background_writes().txindex_pending(), 0);
    }

    /// The writer yields to the node's other threads (and to other nodes on the machine).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_thread_runs_at_a_lowered_priority() {
        let own_nice = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
            nice_field(&stat)
        };
        let before = own_nice();
        let (store, _) = store();
        let mut writer = WriteBehind::start(store.background_writes());
        writer.wait(); // the thread has lowered its priority before its first job
        assert_eq!(own_nice(), before, "only the writer's priority changes");
        let nice_values = nice_values_of("store-writer");
        writer.stop();
        // Other tests' writers may be starting (not lowered yet): ours, waited for, is.
        assert!(nice_values.contains(&NICE), "{nice_values:?}");
    }
}
