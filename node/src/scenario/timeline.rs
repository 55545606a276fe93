//! The run's one clock and the timeline: each `[[at]]` step carried out at its time.
//!
//! It owns: [`Clock`] (every time in the report is ms on it), waiting on it so that an
//! interrupt is noticed within 50 ms, and the record of each step (planned time, when it
//! started and finished, what it did, why it failed, and what the seed drew for it: its
//! time within its `jitter_s` and the node of an `"any"` step, first among its notes).
//! It must never: decide whether the scenario passed (a failed step is recorded and the
//! timeline goes on), or drive nodes other than through [`Cluster`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::cluster::Cluster;
use super::spec::{Action, Step};

/// The run's clock: ms since the run started (every initial node up).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_epoch_ms: u64,
}

impl Clock {
    /// A clock starting now.
    pub fn start() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Clock {
            start: Instant::now(),
            start_epoch_ms: epoch,
        }
    }

    /// Ms since the start.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The Unix time of the start, ms.
    pub fn start_epoch_ms(&self) -> u64 {
        self.start_epoch_ms
    }

    /// Sleeps until `t_ms` on this clock; `false` (at once, or within 50 ms) when `stop` is set.
    pub fn sleep_until(&self, t_ms: u64, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = self.now_ms();
            if now >= t_ms {
                return true;
            }
            std::thread::sleep(Duration::from_millis((t_ms - now).min(50)));
        }
    }
}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Planned time, ms (drawn from the seed when the step has a `jitter_s`).
    pub t_ms: u64,
    /// When it started, ms.
    pub started_ms: u64,
    /// When it finished, ms.
    pub finished_ms: u64,
    /// Where the file gives it.
    pub source: String,
    /// Its line in the file.
    pub line: usize,
    /// What it did (with the node the seed drew, for `"any"`).
    pub action: Action,
    /// Whether it was carried out.
    pub ok: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Things worth knowing that did not make it fail: first what the seed drew for it
    /// ([`Step::draws`]), then e.g. a peer a node did not know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Carries out `steps` in order, each at its time; stops early when `stop` is set. Returns a
/// record per step carried out (or tried).
pub fn run(
    steps: &[Step],
    cluster: &mut Cluster,
    clock: &Clock,
    stop: &AtomicBool,
) -> Vec<StepRecord> {
    let mut records = Vec::with_capacity(steps.len());
    for step in steps {
        if !clock.sleep_until(step.t_ms, stop) {
            break;
        }
        let started_ms = clock.now_ms();
        let mut notes = step.draws();
        let drawn = if notes.is_empty() {
            String::new()
        } else {
            format!("; {}", notes.join("; "))
        };
        eprintln!(
            "[{:>7.1} s] {} (line {}{drawn})",
            started_ms as f64 / 1000.0,
            step.action.describe(),
            step.line
        );
        let result = apply(&step.action, cluster, stop);
        let finished_ms = clock.now_ms();
        let (ok, error) = match result {
            Ok(more) => {
                notes.extend(more);
                (true, None)
            }
            Err(e) => {
                eprintln!("  step failed: {e:#}");
                (false, Some(format!("{e:#}")))
            }
        };
        records.push(StepRecord {
            t_ms: step.t_ms,
            started_ms,
            finished_ms,
            source: step.source.clone(),
            line: step.line,
            action: step.action.clone(),
            ok,
            error,
            notes,
        });
    }
    records
}

fn apply(action: &Action, cluster: &mut Cluster, stop: &AtomicBool) -> anyhow::Result<Vec<String>> {
    match action {
        Action::Partition(groups) => cluster.partition(groups),
        Action::Heal => cluster.heal(),
        Action::Kill(i) => cluster.kill(*i).map(|()| Vec::new()),
        Action::Stop(i) => cluster.stop(*i).map(|()| Vec::new()),
        Action::Start(i) => cluster.start(*i, stop),
        Action::Mining { node, enabled } => {
            cluster.set_mining(*node, *enabled).map(|()| Vec::new())
        }
        Action::Adversary { node, mode } => cluster
            .set_adversary(*node, mode.as_deref())
            .map(|()| Vec::new()),
        Action::Link { between, fault } => cluster.set_links(between.as_deref(), *fault),
        Action::HashShare { node, share } => cluster.set_hash_share(*node, *share),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_until_returns_false_when_stopped() {
        let clock = Clock::start();
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert!(!clock.sleep_until(60_000, &stop));
        assert!(started.elapsed() < Duration::from_secs(1));
        let go = AtomicBool::new(false);
        assert!(clock.sleep_until(0, &go));
    }
}
