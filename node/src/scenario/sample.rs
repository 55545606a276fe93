//! Status samples: every [`SAMPLE_MS`], each node's `/v1/status` (height, tip, peers,
//! mining, faulted links; banned peers when an assertion needs them), or that it did not
//! answer.
//!
//! It owns: the sampling thread and its bounded record ([`MAX_SAMPLES`]; samples past it are
//! counted in `dropped`, not kept).
//! It must never: block the timeline, or keep more than [`MAX_SAMPLES`] samples.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::http::Api;
use super::timeline::Clock;

/// Time between two rounds of samples.
pub const SAMPLE_MS: u64 = 250;
/// Most samples kept (a round is one sample per node): 16 nodes for an hour at 4 rounds a
/// second is 230,400.
pub const MAX_SAMPLES: usize = 250_000;
/// A node that does not answer within this is sampled as down.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// One node's state at one round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Round number; round `k` is due at `k x SAMPLE_MS`.
    pub round: u32,
    /// When the answer came, ms on the run's clock.
    pub t_ms: u64,
    /// Node index.
    pub node: usize,
    /// Whether it answered.
    pub up: bool,
    /// Main-chain height.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Tip hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tip: Option<String>,
    /// Connected peers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<u64>,
    /// Continuous mining on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mining: Option<bool>,
    /// Peers whose link to this node has a fault set (the status's `link_faults`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_faults: Option<u64>,
    /// Peer ids the node refuses (`GET /v1/peers/banned`), sampled only for the
    /// `adversary_banned_within_s` assertion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned: Option<Vec<String>>,
}

/// What the sampler recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SampleLog {
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// Samples not kept because [`MAX_SAMPLES`] were.
    pub dropped: u64,
}

impl SampleLog {
    fn push(&mut self, s: Sample) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(s);
        } else {
            self.dropped += 1;
        }
    }
}

/// Starts sampling `urls` (node `i` at `urls[i]`) until `stop` is set; with `bans`, each
/// sample also holds the node's banned peers.
pub fn spawn(
    urls: Vec<String>,
    bans: bool,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<SampleLog>> {
    let api = Api::new(SAMPLE_TIMEOUT)?;
    std::thread::Builder::new()
        .name("scenario-sample".into())
        .spawn(move || sample_until_stopped(&api, &urls, bans, &clock, &stop))
        .context("cannot start the sampling thread")
}

fn sample_until_stopped(
    api: &Api,
    urls: &[String],
    bans: bool,
    clock: &Clock,
    stop: &AtomicBool,
) -> SampleLog {
    let mut log = SampleLog::default();
    let mut round: u32 = 0;
    loop {
        let due = u64::from(round) * SAMPLE_MS;
        if !clock.sleep_until(due, stop) {
            return log;
        }
        for (node, rpc) in urls.iter().enumerate() {
            log.push(sample(api, rpc, node, round, bans, clock));
        }
        // A late round skips the rounds it overran instead of bunching them up.
        let next = clock.now_ms() / SAMPLE_MS + 1;
        round = u32::try_from(next).unwrap_or(u32::MAX).max(round + 1);
    }
}

fn sample(api: &Api, rpc: &str, node: usize, round: u32, bans: bool, clock: &Clock) -> Sample {
    let status = api.status(rpc).ok();
    let banned = if bans && status.is_some() {
        api.banned(rpc).ok()
    } else {
        None
    };
    Sample {
        round,
        t_ms: clock.now_ms(),
        node,
        up: status.is_some(),
        height: status.as_ref().map(|s| s.height),
        tip: status.as_ref().map(|s| s.tip_hash.clone()),
        peers: status.as_ref().map(|s| s.peer_count),
        mining: status.as_ref().map(|s| s.mining),
        link_faults: status.as_ref().map(|s| s.link_faults.len() as u64),
        banned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_counts_what_it_drops() {
        let mut log = SampleLog {
            samples: Vec::new(),
            dropped: 0,
        };
        let s = Sample {
            round: 0,
            t_ms: 0,
            node: 0,
            up: false,
            height: None,
            tip: None,
            peers: None,
            mining: None,
            link_faults: None,
            banned: None,
        };
        log.samples = vec![s.clone(); MAX_SAMPLES - 1];
        log.push(s.clone());
        log.push(s);
        assert_eq!(log.samples.len(), MAX_SAMPLES);
        assert_eq!(log.dropped, 1);
    }
}
