//! Adversary modes: a real node that misbehaves on purpose, so a user can watch an attack in
//! the explorer and a test can run one against honest nodes over the real protocols.
//!
//! Off unless the node was started with `--allow-adversary`; a mode is chosen with
//! `--adversary MODE` or `POST /v1/admin/adversary`, and announced loudly in the banner and
//! the log. The adversary runs on the chain thread's tick: it reads the chain to build its
//! junk and sends it through the ordinary network outbox, bypassing its own validation.
//!
//! It must never: change what the node itself accepts (its own chain stays honest), or run
//! without `--allow-adversary`.

mod invalid_blocks;
mod tx_flood;

use std::time::{Duration, Instant};

use peerchain_consensus::Chain;

use crate::outbox::NetOutbox;

/// What an adversary node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdversaryMode {
    /// Mines and gossips blocks that break each consensus rule in turn (bad proof of work,
    /// wrong target, bad tx_root, overspend, duplicate transaction, bad signature, wrong
    /// height, too far in the future, another network's genesis).
    InvalidBlocks,
    /// Floods validly signed transactions from unfunded keys and with nonce gaps.
    TxFlood,
}

impl AdversaryMode {
    /// The name used on the command line and in the admin API.
    pub fn name(self) -> &'static str {
        match self {
            AdversaryMode::InvalidBlocks => "invalid-blocks",
            AdversaryMode::TxFlood => "tx-flood",
        }
    }

    /// Parses [`AdversaryMode::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [AdversaryMode::InvalidBlocks, AdversaryMode::TxFlood]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// Every mode's name.
    pub fn names() -> Vec<&'static str> {
        vec!["invalid-blocks", "tx-flood"]
    }

    fn period(self) -> Duration {
        match self {
            AdversaryMode::InvalidBlocks => Duration::from_millis(500),
            AdversaryMode::TxFlood => Duration::from_millis(100),
        }
    }
}

/// The running adversary.
#[derive(Debug)]
pub struct Adversary {
    mode: AdversaryMode,
    last: Instant,
    step: u64,
}

impl Adversary {
    /// Starts `mode`, announcing it.
    pub fn new(mode: AdversaryMode) -> Self {
        tracing::warn!(
            mode = mode.name(),
            "ADVERSARY MODE ON: this node attacks its peers on purpose (testing only)"
        );
        Adversary {
            mode,
            last: Instant::now(),
            step: 0,
        }
    }

    /// The mode.
    pub fn mode(&self) -> AdversaryMode {
        self.mode
    }

    /// Sends the next round of junk when it is due.
    pub fn tick(&mut self, chain: &Chain, outbox: &NetOutbox, now_ms: u64) {
        if self.last.elapsed() < self.mode.period() {
            return;
        }
        self.last = Instant::now();
        self.step = self.step.wrapping_add(1);
        match self.mode {
            AdversaryMode::InvalidBlocks => {
                invalid_blocks::send_one(chain, outbox, self.step, now_ms);
            }
            AdversaryMode::TxFlood => tx_flood::send_round(chain, outbox, self.step),
        }
    }
}
