//! Adversary modes: a real node that misbehaves on purpose, so a user can watch an attack in
//! the explorer and a test can run one against honest nodes over the real protocols.
//!
//! Off unless the node was started with `--allow-adversary`; a mode is chosen with
//! `--adversary MODE` or `POST /v1/admin/adversary`, and announced loudly in the banner and
//! the log. There are two kinds:
//! - chain-level modes (`invalid-blocks`, `tx-flood`, `cheap-fork`, `double-spend`) run on
//!   the chain thread's tick: they read the chain to build their junk and send it through
//!   the ordinary network outbox, bypassing the node's own validation; `selfish[:DEPTH]`
//!   hooks into what the node mines and sees instead. They can be switched on and off at run
//!   time;
//! - network-level modes (`stall-sync`, `stall-silent`, `slow-reader`, `sybil:N`) change how
//!   the network layer itself behaves (`peerchain_network::Adversary`) and are chosen at
//!   start only.
//!
//! It must never: change what the node itself accepts (its own main chain stays honest), or
//! run without `--allow-adversary`.

mod cheap_fork;
mod double_spend;
mod invalid_blocks;
mod selfish;
mod tx_flood;

pub use selfish::DEFAULT_DEPTH as SELFISH_DEFAULT_DEPTH;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use peerchain_consensus::Chain;
use peerchain_ledger::Block;
use peerchain_network::LocalTip;

use crate::outbox::NetOutbox;

/// What an adversary node does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdversaryMode {
    /// Mines and gossips blocks that break each consensus rule in turn (bad proof of work,
    /// wrong target, bad tx_root, overspend, duplicate transaction, bad signature, wrong
    /// height, too far in the future, another network's genesis).
    InvalidBlocks,
    /// Floods validly signed transactions from unfunded keys and with nonce gaps.
    TxFlood,
    /// Mines and floods a side branch from an old block, always lighter than the main chain.
    CheapFork,
    /// Keeps one spend of a funded dev key in its own mempool and gossips a conflicting
    /// spend (same nonce, other recipient) to its peers, every round.
    DoubleSpend,
    /// Selfish mining: withholds the blocks it mines (at most `depth`) and releases them to
    /// orphan honest blocks.
    Selfish {
        /// Most blocks withheld at once.
        depth: u32,
    },
    /// A mode of the network layer (chosen at start only).
    Network(peerchain_network::Adversary),
}

/// The chain-level modes, for listing.
const CHAIN_MODES: [AdversaryMode; 4] = [
    AdversaryMode::InvalidBlocks,
    AdversaryMode::TxFlood,
    AdversaryMode::CheapFork,
    AdversaryMode::DoubleSpend,
];

impl AdversaryMode {
    /// The name used on the command line and in the admin API.
    pub fn name(&self) -> String {
        match self {
            AdversaryMode::InvalidBlocks => "invalid-blocks".to_owned(),
            AdversaryMode::TxFlood => "tx-flood".to_owned(),
            AdversaryMode::CheapFork => "cheap-fork".to_owned(),
            AdversaryMode::DoubleSpend => "double-spend".to_owned(),
            AdversaryMode::Selfish { depth } => format!("selfish:{depth}"),
            AdversaryMode::Network(a) => a.name(),
        }
    }

    /// Every mode's name (`sybil:N` with its parameter).
    pub fn names() -> Vec<String> {
        let mut names: Vec<String> = CHAIN_MODES.iter().map(AdversaryMode::name).collect();
        names.extend(
            [
                "selfish[:DEPTH]",
                "stall-sync",
                "stall-silent",
                "slow-reader",
                "sybil:N",
            ]
            .map(String::from),
        );
        names
    }

    /// The network layer's mode, if this is one.
    pub fn network(&self) -> Option<peerchain_network::Adversary> {
        match self {
            AdversaryMode::Network(a) => Some(a.clone()),
            _ => None,
        }
    }

    fn period(&self) -> Duration {
        match self {
            AdversaryMode::InvalidBlocks => Duration::from_millis(500),
            AdversaryMode::TxFlood => Duration::from_millis(100),
            AdversaryMode::CheapFork => Duration::from_millis(200),
            AdversaryMode::DoubleSpend => Duration::from_millis(1000),
            AdversaryMode::Selfish { .. } | AdversaryMode::Network(_) => Duration::MAX,
        }
    }
}

impl fmt::Display for AdversaryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for AdversaryMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(mode) = CHAIN_MODES.iter().find(|m| m.name() == text) {
            return Ok(mode.clone());
        }
        if text == "selfish" {
            return Ok(AdversaryMode::Selfish {
                depth: selfish::DEFAULT_DEPTH,
            });
        }
        if let Some(depth) = text.strip_prefix("selfish:") {
            return match depth.parse::<u32>() {
                Ok(depth @ 1..=1000) => Ok(AdversaryMode::Selfish { depth }),
                _ => Err(format!(
                    "{text:?}: selfish:DEPTH needs a withhold depth between 1 and 1000"
                )),
            };
        }
        match text.parse::<peerchain_network::Adversary>() {
            Ok(a) => Ok(AdversaryMode::Network(a)),
            Err(e) if text.starts_with("sybil:") => Err(e),
            Err(_) => Err(format!(
                "unknown adversary mode {text:?}; known: {}",
                AdversaryMode::names().join(", ")
            )),
        }
    }
}

/// The running chain-level adversary.
#[derive(Debug)]
pub struct Adversary {
    mode: AdversaryMode,
    last: Instant,
    step: u64,
    cheap_fork: cheap_fork::CheapFork,
    /// Started on first use (it needs the chain).
    selfish: Option<selfish::Selfish>,
}

impl Adversary {
    /// Starts `mode`, announcing it.
    pub fn new(mode: AdversaryMode) -> Self {
        tracing::warn!(
            mode = %mode,
            "ADVERSARY MODE ON: this node attacks its peers on purpose (testing only)"
        );
        Adversary {
            mode,
            last: Instant::now(),
            step: 0,
            cheap_fork: cheap_fork::CheapFork::default(),
            selfish: None,
        }
    }

    fn selfish(&mut self, chain: &Chain) -> Option<&mut selfish::Selfish> {
        let AdversaryMode::Selfish { depth } = self.mode else {
            return None;
        };
        Some(
            self.selfish
                .get_or_insert_with(|| selfish::Selfish::new(depth, chain)),
        )
    }

    /// A block mined here joined the main chain: the blocks to publish now (the block
    /// itself, unless a selfish miner withholds it).
    pub fn on_mined(&mut self, block: Block, chain: &Chain) -> Vec<Block> {
        match self.selfish(chain) {
            Some(s) => s.on_mined(block, chain),
            None => vec![block],
        }
    }

    /// A valid block of height `height` from a peer was seen: the withheld blocks to
    /// publish in answer (selfish mining only).
    pub fn on_public_block(&mut self, height: u64, chain: &Chain) -> Vec<Block> {
        match self.selfish(chain) {
            Some(s) => s.on_public_block(height, chain),
            None => Vec::new(),
        }
    }

    /// The tip to announce to peers instead of the real one (a selfish miner hides what it
    /// withholds).
    pub fn announced_tip(&self) -> Option<LocalTip> {
        self.selfish.as_ref().and_then(selfish::Selfish::announced)
    }

    /// The mode.
    pub fn mode(&self) -> &AdversaryMode {
        &self.mode
    }

    /// Sends the next round of junk when it is due.
    pub fn tick(&mut self, chain: &mut Chain, outbox: &NetOutbox, now_ms: u64) {
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
            AdversaryMode::CheapFork => {
                self.cheap_fork.round(chain, outbox, now_ms);
            }
            AdversaryMode::DoubleSpend => {
                double_spend::round(chain, outbox, now_ms);
            }
            AdversaryMode::Selfish { .. } | AdversaryMode::Network(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_mode_parses_back_and_bad_names_say_what_exists() {
        for name in AdversaryMode::names() {
            let name = name.replace("sybil:N", "sybil:5").replace("[:DEPTH]", ":3");
            let mode: AdversaryMode = name.parse().expect("listed modes parse");
            assert_eq!(mode.name(), name);
        }
        assert!(
            "sybil:5"
                .parse::<AdversaryMode>()
                .expect("sybil")
                .network()
                .is_some()
        );
        assert!(
            "cheap-fork"
                .parse::<AdversaryMode>()
                .expect("fork")
                .network()
                .is_none()
        );
        let err = "nope".parse::<AdversaryMode>().expect_err("unknown");
        assert!(
            err.contains("double-spend") && err.contains("slow-reader"),
            "{err}"
        );
        let err = "sybil:0"
            .parse::<AdversaryMode>()
            .expect_err("zero identities");
        assert!(err.contains("between 1 and"), "{err}");
    }
}
