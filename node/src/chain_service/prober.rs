//! The disk probe off the chain thread: the `store-probe` thread.
//!
//! Once a second the chain service learns whether the disk still takes writes by writing a
//! small record and flushing the store (`storage`, the full-disk guard). A flush waits for the
//! disk: in a run of ten node processes on one machine the probe took 4 ms at the median,
//! 60 ms at p90 and up to 2 s, all of it on the chain thread, while blocks, transfers and
//! requests waited behind it (docs/BENCHMARKS.md, section 16). This thread probes instead:
//! the chain thread asks for a probe and takes its result on a later step, and keeps the
//! blocks connected since the probe's [`DurableMark`] for a reopen until a later probe
//! succeeds.
//!
//! Bounds: at most one probe is in flight (the chain service asks for the next once it has
//! the last one's result), so each channel holds at most one message.
//!
//! It owns the thread and its channels. It must never decide what a result means (the
//! chain service's `StorageGuard` does) or write anything but the probe.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use peerchain_consensus::DurableMark;
use peerchain_ledger::{BackgroundWrites, StoreError};

use super::priority::lower_priority;

/// How long [`Prober::settle`] waits for a probe in flight. The chain service reopens the
/// store only after a probe's result, so none is in flight then; the bound keeps a stalled
/// disk from holding up the chain thread if that changes.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// A probe asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProbeRequest {
    /// The blocks connected before the probe: durable once it succeeds.
    pub(super) mark: DurableMark,
}

/// A finished probe.
#[derive(Debug)]
pub(super) struct ProbeResult {
    /// What was asked.
    pub(super) request: ProbeRequest,
    /// The probe write and its flush: `Ok` when both reached the disk.
    pub(super) outcome: Result<(), StoreError>,
}

/// The `store-probe` thread. See the module docs.
#[derive(Debug)]
pub(super) struct Prober {
    writes: BackgroundWrites,
    /// `None` when the thread could not be started (probes then run on the caller's
    /// thread) or once stopped.
    requests: Option<Sender<ProbeRequest>>,
    results: Receiver<ProbeResult>,
    /// The result of a probe made on the caller's thread (no thread, or it is gone).
    inline_result: Option<ProbeResult>,
    in_flight: bool,
    /// The fail point `store-probe-stall-ms`, wherever the probe runs.
    stall: Option<Duration>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    /// Starts the thread probing through `writes`. `stall` is the fail point
    /// `store-probe-stall-ms`: each probe first waits that long, as behind a slow disk.
    pub(super) fn start(writes: BackgroundWrites, stall: Option<Duration>) -> Self {
        let (requests_tx, requests) = crossbeam_channel::bounded::<ProbeRequest>(1);
        let (results_tx, results) = crossbeam_channel::bounded::<ProbeResult>(1);
        let thread_writes = writes.clone();
        let started = std::thread::Builder::new()
            .name("store-probe".into())
            .spawn(move || {
                lower_priority("store-probe");
                serve(&thread_writes, &requests, &results_tx, stall);
            });
        let (requests, thread) = match started {
            Ok(thread) => (Some(requests_tx), Some(thread)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the store-probe thread; the chain thread probes the disk itself");
                (None, None)
            }
        };
        Prober {
            writes,
            requests,
            results,
            inline_result: None,
            in_flight: false,
            stall,
            thread,
        }
    }

    /// Whether a probe is in flight.
    pub(super) fn busy(&self) -> bool {
        self.in_flight
    }

    /// Asks for a probe. Call it only when none is in flight ([`Prober::busy`]).
    pub(super) fn request(&mut self, request: ProbeRequest) {
        self.in_flight = true;
        let unsent = match &self.requests {
            Some(requests) => requests.try_send(request).err().map(|e| e.into_inner()),
            None => Some(request),
        };
        if let Some(request) = unsent {
            // No thread (or it is gone): probe here, as before the thread existed.
            if let Some(stall) = self.stall {
                std::thread::sleep(stall);
            }
            let outcome = self.writes.probe_write();
            self.inline_result = Some(ProbeResult { request, outcome });
        }
    }

    /// The result of the probe in flight, once it has finished. A thread that ended without
    /// one (it panicked) is let go, and later probes run on the caller's thread.
    pub(super) fn finished(&mut self) -> Option<ProbeResult> {
        let result = self
            .inline_result
            .take()
            .or_else(|| self.results.try_recv().ok());
        if result.is_some() {
            self.in_flight = false;
        } else if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            tracing::error!(
                "the store-probe thread ended; the chain thread probes the disk itself"
            );
            self.requests = None;
            self.thread = None;
            self.in_flight = false;
        }
        result
    }

    /// Drops the result of a probe in flight before the store is reopened (whose flush it
    /// would otherwise report on), waiting for it at most [`SETTLE_WAIT`].
    pub(super) fn settle(&mut self) {
        self.inline_result = None;
        if self.in_flight && self.thread.is_some() {
            let _ = self.results.recv_timeout(SETTLE_WAIT);
        }
        let _ = self.results.try_recv();
        self.in_flight = false;
    }

    /// Ends the thread after the probe in flight (shutdown).
    pub(super) fn stop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store-probe thread panicked");
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread's loop: one probe per request, until the chain service lets go.
fn serve(
    writes: &BackgroundWrites,
    requests: &Receiver<ProbeRequest>,
    results: &Sender<ProbeResult>,
    stall: Option<Duration>,
) {
    while let Ok(request) = requests.recv() {
        if let Some(stall) = stall {
            // The fail point: wait as behind a slow disk, unless the node stops meanwhile.
            if let Err(RecvTimeoutError::Disconnected) = requests.recv_timeout(stall) {
                return;
            }
        }
        let outcome = writes.probe_write();
        if results.send(ProbeResult { request, outcome }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use peerchain_consensus::{Chain, ChainConfig};
    use peerchain_ledger::{Genesis, Store};

    use std::time::Instant;

    use super::*;

    fn chain() -> Chain {
        let g = Genesis::dev(2, 1_000, 2_000);
        let store = Store::temporary(&g).expect("store");
        Chain::open(store, g, ChainConfig::default()).expect("chain")
    }

    fn request(chain: &Chain) -> ProbeRequest {
        ProbeRequest {
            mark: chain.durable_mark(),
        }
    }

    #[test]
    fn a_probe_runs_on_its_thread_and_its_result_comes_back_once() {
        let chain = chain();
        let mut prober = Prober::start(chain.background_writes(), None);
        assert!(!prober.busy());
        prober.request(request(&chain));
        assert!(prober.busy());
        let deadline = Instant::now() + Duration::from_secs(10);
        let result = loop {
            if let Some(result) = prober.finished() {
                break result;
            }
            assert!(Instant::now() < deadline, "no result");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(result.outcome.is_ok(), "{:?}", result.outcome);
        assert_eq!(result.request.mark, chain.durable_mark());
        assert!(!prober.busy());
        assert!(prober.finished().is_none(), "one result per probe");
    }

    #[test]
    fn a_stalled_probe_does_not_hold_up_stop() {
        let chain = chain();
        // A stall far longer than the test: stop must end the thread at once.
        let mut prober = Prober::start(chain.background_writes(), Some(Duration::from_secs(600)));
        prober.request(request(&chain));
        assert!(prober.finished().is_none(), "still stalled");
        let stopping = std::thread::spawn(move || prober.stop());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stopping.is_finished() {
            assert!(Instant::now() < deadline, "stop waited for the stall");
            std::thread::sleep(Duration::from_millis(10));
        }
        stopping.join().expect("stopped");
    }

    #[test]
    fn once_the_thread_is_gone_probes_run_on_the_callers_thread() {
        let chain = chain();
        let mut prober = Prober::start(chain.background_writes(), None);
        prober.stop();
        prober.request(request(&chain));
        let result = prober.finished().expect("probed at once, inline");
        assert!(result.outcome.is_ok(), "{:?}", result.outcome);
        assert!(!prober.busy());
        prober.settle();
        assert!(prober.finished().is_none());
    }
}
