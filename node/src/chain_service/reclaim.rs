//! Freeing what readers no longer see off the chain thread: the `reclaim` thread.
//!
//! After each step the chain thread publishes a fresh [`NodeSnapshot`]; the one it replaces
//! is freed by whoever lets go of it last, nearly always the chain thread at once. After a
//! block that confirms the pool, that old snapshot holds the only reference left to the old
//! pool: thousands of entries in six persistent indexes. Freeing it cost a receiver's chain
//! thread 3-4 ms per 5,000-transfer block in a profile of ten node processes, between taking
//! the block and taking the next one, while the other nodes on the machine imported the same
//! block (docs/BENCHMARKS.md section 16). The `reclaim` thread frees it instead, at the
//! helpers' lowered priority (`priority::NICE`).
//!
//! Bounds: at most [`RECLAIM_QUEUE`] values wait; past that, or when the thread could not be
//! started, the caller frees the value itself, as before the thread existed.
//!
//! It owns the thread and its queue. It must never read or change what it frees, or keep it
//! past its turn in the queue.

use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};

use super::priority::lower_priority;

/// Values waiting to be freed, at most: a snapshot is published after every step, and only
/// the one that held a confirmed pool is large, so a short queue is rarely full.
pub(super) const RECLAIM_QUEUE: usize = 8;

/// The `reclaim` thread and its queue of values to free. See the module docs.
pub(super) struct Reclaimer<T: Send + 'static> {
    /// `None` when the thread could not be started, or once stopped.
    queue: Option<Sender<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Reclaimer<T> {
    /// Starts the thread; if it cannot start, [`Reclaimer::free`] frees on the caller's thread.
    pub(super) fn start() -> Self {
        let (queue, values) = crossbeam_channel::bounded::<T>(RECLAIM_QUEUE);
        let started = std::thread::Builder::new()
            .name("reclaim".into())
            .spawn(move || {
                lower_priority("reclaim");
                for value in values {
                    drop(value);
                }
            });
        match started {
            Ok(thread) => Reclaimer {
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the reclaim thread; the chain thread frees old snapshots itself");
                Reclaimer {
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// Has `value` freed by the thread, or here when its queue is full or it is gone.
    pub(super) fn free(&self, value: T) {
        let Some(queue) = &self.queue else {
            return drop(value);
        };
        match queue.try_send(value) {
            Ok(()) => {}
            Err(TrySendError::Full(value) | TrySendError::Disconnected(value)) => drop(value),
        }
    }

    /// Frees everything queued and ends the thread (shutdown).
    pub(super) fn stop(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the reclaim thread panicked");
        }
    }
}

impl<T: Send + 'static> Drop for Reclaimer<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::sync::{Arc, Barrier, Mutex};

    use super::*;

    /// Records the name of the thread that frees it.
    struct Noted(Arc<Mutex<Vec<String>>>);

    impl Drop for Noted {
        fn drop(&mut self) {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            self.0.lock().expect("lock").push(name);
        }
    }

    /// Freed, it meets the test at the barrier twice: once inside its drop, then to leave.
    struct Gate(Arc<Barrier>);

    impl Drop for Gate {
        fn drop(&mut self) {
            self.0.wait();
            self.0.wait();
        }
    }

    type Any = Box<dyn Send>;

    #[test]
    fn values_are_freed_by_the_reclaim_thread_or_here_when_its_queue_is_full() {
        let freed_by = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Barrier::new(2));
        let mut reclaimer = Reclaimer::<Any>::start();
        reclaimer.free(Box::new(Noted(freed_by.clone())));
        reclaimer.free(Box::new(Gate(gate.clone())));
        gate.wait(); // the thread holds the gate: what follows queues up
        for _ in 0..RECLAIM_QUEUE + 2 {
            reclaimer.free(Box::new(Noted(freed_by.clone())));
        }
        let here = std::thread::current().name().unwrap_or("").to_owned();
        assert_eq!(
            *freed_by.lock().expect("lock"),
            ["reclaim".to_owned(), here.clone(), here],
            "the first by the thread, the two past a full queue here"
        );
        gate.wait();
        reclaimer.stop();
        let names = freed_by.lock().expect("lock");
        assert_eq!(names.len(), RECLAIM_QUEUE + 3, "every value is freed once");
        assert!(
            names[3..].iter().all(|n| n == "reclaim"),
            "the queued ones by the thread, before it stops: {names:?}"
        );
    }

    #[test]
    fn values_are_freed_here_once_the_thread_is_stopped() {
        let freed_by = Arc::new(Mutex::new(Vec::new()));
        let mut reclaimer = Reclaimer::<Any>::start();
        reclaimer.stop();
        reclaimer.free(Box::new(Noted(freed_by.clone())));
        let here = std::thread::current().name().unwrap_or("").to_owned();
        assert_eq!(*freed_by.lock().expect("lock"), [here]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_reclaim_thread_runs_at_a_lowered_priority() {
        use crate::chain_service::priority::{NICE, nice_values_of};
        let gate = Arc::new(Barrier::new(2));
        let reclaimer = Reclaimer::<Any>::start();
        reclaimer.free(Box::new(Gate(gate.clone())));
        gate.wait(); // the thread is in the gate's drop, its priority lowered before
        let nice_values = nice_values_of("reclaim");
        gate.wait();
        drop(reclaimer);
        // Other tests' reclaim threads may be starting (not lowered yet): ours is.
        assert!(nice_values.contains(&NICE), "{nice_values:?}");
    }
}
