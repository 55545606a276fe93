//! The file as serde reads it: every table and key of the format, unchecked, with the spans
//! the errors' line numbers come from. It must never validate anything (the other modules do).

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) name: Option<String>,
    pub(super) seed: Option<u64>,
    pub(super) duration_s: Option<f64>,
    pub(super) network: RawNetwork,
    pub(super) load: Option<RawLoad>,
    #[serde(default)]
    pub(super) at: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub(super) assert: RawAssert,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub(super) nodes: usize,
    pub(super) hashrate: Option<u64>,
    pub(super) chain_id: Option<u64>,
    pub(super) block_time_ms: Option<u64>,
    pub(super) difficulty_half_life_ms: Option<u64>,
    pub(super) min_fee: Option<u64>,
    pub(super) max_block_txs: Option<u64>,
    pub(super) max_future_ms: Option<u64>,
    pub(super) initial_reward: Option<u64>,
    pub(super) halving_interval: Option<u64>,
    pub(super) accounts: Option<u32>,
    pub(super) balance: Option<u64>,
    #[serde(default)]
    pub(super) node: Vec<Spanned<RawNode>>,
    pub(super) link: Option<RawLink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub(super) between: Option<Vec<Vec<usize>>>,
    pub(super) loss: Option<f64>,
    pub(super) delay_ms: Option<u64>,
    pub(super) bandwidth_kbps: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHashShare {
    pub(super) node: usize,
    pub(super) share: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) index: usize,
    pub(super) hash_share: Option<f64>,
    pub(super) mine: Option<bool>,
    pub(super) adversary: Option<String>,
    pub(super) start_s: Option<f64>,
    pub(super) clock_offset_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub(super) tps: u32,
    pub(super) duration_s: f64,
    pub(super) start_s: Option<f64>,
    pub(super) accounts: Option<u32>,
    pub(super) pattern: Option<String>,
    pub(super) burst_period_s: Option<f64>,
    pub(super) nodes: Option<Vec<usize>>,
    pub(super) fee: Option<u64>,
    pub(super) confirm_timeout_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub(super) t: f64,
    pub(super) jitter_s: Option<f64>,
    pub(super) partition: Option<Vec<Vec<usize>>>,
    pub(super) heal: Option<bool>,
    pub(super) kill: Option<RawNodeRef>,
    pub(super) stop: Option<RawNodeRef>,
    pub(super) start: Option<RawNodeRef>,
    pub(super) mining: Option<RawMining>,
    pub(super) adversary: Option<RawAdversary>,
    pub(super) link: Option<RawLink>,
    pub(super) hash_share: Option<RawHashShare>,
}

/// The node of a `kill`, `stop` or `start` step: an index, or `"any"` (drawn from the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RawNodeRef {
    Index(usize),
    Any,
}

impl<'de> Deserialize<'de> for RawNodeRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeRefVisitor)
    }
}

struct NodeRefVisitor;

impl serde::de::Visitor<'_> for NodeRefVisitor {
    type Value = RawNodeRef;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a node index or \"any\"")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawNodeRef, E> {
        usize::try_from(v)
            .map(RawNodeRef::Index)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawNodeRef, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawNodeRef, E> {
        if v == "any" {
            Ok(RawNodeRef::Any)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMining {
    pub(super) node: usize,
    pub(super) enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdversary {
    pub(super) node: usize,
    pub(super) mode: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssert {
    pub(super) converge_within_s: Option<f64>,
    pub(super) no_transfer_lost: Option<bool>,
    pub(super) max_reorg_depth: Option<u64>,
    pub(super) min_confirmed_tps: Option<f64>,
    pub(super) max_p99_confirmation_s: Option<f64>,
    pub(super) max_stale_rate: Option<f64>,
    pub(super) adversary_banned_within_s: Option<f64>,
}
