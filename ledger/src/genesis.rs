//! The genesis file of SPEC section 4: parsing with errors that name the field, validation,
//! the genesis commitment, header, hash and state, and the per-network parameters derived
//! from it.

use std::collections::BTreeMap;
use std::path::Path;

use primitive_types::U256;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::GenesisError;
use crate::state::Account;
use crate::types::{Address, Block, BlockHeader, Hash, Target};

/// Domain prefix of the genesis commitment.
pub const GENESIS_DOMAIN: &[u8; 20] = b"peerchain/genesis/v1";

/// One prefunded account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// The account.
    pub address: Address,
    /// Its starting balance.
    pub balance: u64,
}

/// A parsed and validated genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Replay protection across networks.
    pub chain_id: u64,
    /// Timestamp of the genesis header.
    pub timestamp_ms: u64,
    /// Intended time between blocks.
    pub target_block_time_ms: u64,
    /// ASERT half-life.
    pub difficulty_half_life_ms: u64,
    /// Target of block 1.
    pub initial_target: Target,
    /// Easiest target allowed.
    pub pow_limit: Target,
    /// Reward of the first halving era.
    pub initial_reward: u64,
    /// Blocks per halving era.
    pub halving_interval: u64,
    /// Smallest fee a transaction may pay.
    pub min_fee: u64,
    /// Most transactions in a block.
    pub max_block_txs: u64,
    /// How far a block's timestamp may be ahead of the local clock.
    pub max_future_ms: u64,
    /// Prefunded accounts.
    pub allocations: Vec<Allocation>,
}

impl Genesis {
    /// Reads and validates a genesis file.
    pub fn from_file(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|e| GenesisError::Io {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_json(&text)
    }

    /// Parses and validates genesis JSON; errors name the offending field.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let genesis: Genesis = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let detail = e.inner().to_string();
            // serde names missing and unknown fields in the message; point at them directly.
            let field = named_field(&detail).unwrap_or(field);
            GenesisError::Field { field, detail }
        })?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// The JSON text of this genesis (pretty printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the rules of SPEC section 4.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.target_block_time_ms == 0 {
            return Err(GenesisError::ZeroBlockTime);
        }
        if self.difficulty_half_life_ms < self.target_block_time_ms {
            return Err(GenesisError::HalfLifeTooShort {
                half_life: self.difficulty_half_life_ms,
                block_time: self.target_block_time_ms,
            });
        }
        if self.initial_target.0.is_zero() {
            return Err(GenesisError::ZeroTarget);
        }
        if self.initial_target > self.pow_limit {
            return Err(GenesisError::TargetAboveLimit {
                target: self.initial_target.to_string(),
                pow_limit: self.pow_limit.to_string(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        let mut balances: u128 = 0;
        for a in &self.allocations {
            if !seen.insert(a.address) {
                return Err(GenesisError::DuplicateAllocation(a.address));
            }
            balances = balances.saturating_add(u128::from(a.balance));
        }
        // Saturates: 2 * (2^64 - 1)^2 does not fit a u128, and any saturated value is refused
        // by the bound below anyway.
        let issuance = 2u128
            .saturating_mul(u128::from(self.initial_reward))
            .saturating_mul(u128::from(self.halving_interval));
        if balances.saturating_add(issuance) >= 1u128 << 53 {
            return Err(GenesisError::SupplyTooLarge { balances, issuance });
        }
        Ok(())
    }

    /// The genesis commitment (the genesis header's `tx_root`).
    pub fn commitment(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(GENESIS_DOMAIN);
        for v in [
            self.chain_id,
            self.target_block_time_ms,
            self.difficulty_half_life_ms,
        ] {
            h.update(v.to_le_bytes());
        }
        h.update(self.initial_target.to_be_bytes());
        h.update(self.pow_limit.to_be_bytes());
        for v in [
            self.initial_reward,
            self.halving_interval,
            self.min_fee,
            self.max_block_txs,
            self.max_future_ms,
            self.allocations.len() as u64,
        ] {
            h.update(v.to_le_bytes());
        }
        let mut sorted: Vec<&Allocation> = self.allocations.iter().collect();
        sorted.sort_by_key(|a| a.address);
        for a in sorted {
            h.update(a.address.0);
            h.update(a.balance.to_le_bytes());
        }
        Hash(h.finalize().into())
    }

    /// The genesis header.
    pub fn header(&self) -> BlockHeader {
        BlockHeader {
            version: 1,
            height: 0,
            prev_hash: Hash::ZERO,
            tx_root: self.commitment(),
            timestamp_ms: self.timestamp_ms,
            target: self.initial_target,
            nonce: 0,
            miner: Address::ZERO,
        }
    }

    /// The genesis block (no transactions).
    pub fn block(&self) -> Block {
        Block {
            header: self.header(),
            transactions: Vec::new(),
        }
    }

    /// The genesis hash, which identifies the network.
    pub fn hash(&self) -> Hash {
        self.header().hash()
    }

    /// The genesis state: every allocation with nonce 0.
    pub fn state(&self) -> BTreeMap<Address, Account> {
        self.allocations
            .iter()
            .filter(|a| a.balance > 0)
            .map(|a| {
                (
                    a.address,
                    Account {
                        balance: a.balance,
                        nonce: 0,
                    },
                )
            })
            .collect()
    }

    /// Block reward at `height`: `initial_reward >> (height / halving_interval)`, 0 after 64
    /// halvings.
    pub fn reward(&self, height: u64) -> u64 {
        let halvings = height.checked_div(self.halving_interval).unwrap_or(0);
        if halvings >= 64 {
            0
        } else {
            self.initial_reward >> halvings
        }
    }

    /// `max_block_txs` as a usize.
    pub fn max_block_txs(&self) -> usize {
        usize::try_from(self.max_block_txs).unwrap_or(usize::MAX)
    }

    /// A local development network: `dev_accounts` dev keys prefunded with `balance` each.
    pub fn dev(dev_accounts: u32, balance: u64, target_block_time_ms: u64) -> Self {
        // Cannot overflow: right shifts of a constant by fewer than 256 bits.
        #[allow(clippy::arithmetic_side_effects)]
        let (initial_target, pow_limit) = (Target(U256::MAX >> 20), Target(U256::MAX >> 4));
        Genesis {
            chain_id: 7710,
            timestamp_ms: 1_767_225_600_000,
            target_block_time_ms,
            difficulty_half_life_ms: 60_000.max(target_block_time_ms),
            initial_target,
            pow_limit,
            initial_reward: 1_000_000_000,
            halving_interval: 2_000_000,
            min_fee: 1,
            max_block_txs: 20_000,
            max_future_ms: 15_000,
            allocations: (0..dev_accounts)
                .map(|i| Allocation {
                    address: crate::crypto::Keypair::dev(i).address(),
                    balance,
                })
                .collect(),
        }
    }
}

/// Extracts the field name from serde's "missing field `x`" / "unknown field `x`" messages.
fn named_field(detail: &str) -> Option<String> {
    let rest = detail
        .strip_prefix("missing field `")
        .or_else(|| detail.strip_prefix("unknown field `"))?;
    rest.split('`').next().map(str::to_owned)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    pub(crate) const SPEC_GENESIS: &str = r#"{
      "chain_id": 7710,
      "timestamp_ms": 1767225600000,
      "target_block_time_ms": 2000,
      "difficulty_half_life_ms": 60000,
      "initial_target": "00000fffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      "pow_limit": "0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
      "initial_reward": 1000000000,
      "halving_interval": 2000000,
      "min_fee": 1,
      "max_block_txs": 20000,
      "max_future_ms": 15000,
      "allocations": [
        { "address": "1489567a16dc6f7c680d290992ffe2bdf35c69c6", "balance": 500 },
        { "address": "49a6bdea2673b89bd7b3992b18711ea9597c666a", "balance": 1000000 }
      ]
    }"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(SPEC_GENESIS).expect("valid json");
        v[field] = serde_json::from_str(value).expect("valid json value");
        v.to_string()
    }

    #[test]
    fn spec_commitment_hash_work_rewards() {
        let g = Genesis::from_json(SPEC_GENESIS).expect("valid genesis");
        assert_eq!(
            g.commitment().to_hex(),
            "316163cebfbf0173c05ba18f40747d09d3c5bf2430ecb0ef8bc75a593599e001"
        );
        assert_eq!(
            g.hash().to_hex(),
            "ded114ce69c07e400bec8e08ab32d2a75e101734c36ae1132c23d3dabea48795"
        );
        assert_eq!(g.initial_target.work(), U256::from(1_048_576u64));
        assert_eq!(g.reward(1), 1_000_000_000);
        assert_eq!(g.reward(2_000_000), 500_000_000);
        assert_eq!(g.reward(4_000_000), 250_000_000);
        assert_eq!(g.reward(64 * 2_000_000), 0);
        assert_eq!(g.reward(u64::MAX), 0);
    }

    #[test]
    fn every_rule_names_its_field() {
        let cases: Vec<(String, &str)> = vec![
            (with("target_block_time_ms", "0"), "target_block_time_ms"),
            (
                with("difficulty_half_life_ms", "1999"),
                "difficulty_half_life_ms",
            ),
            (with("initial_target", "\"00\""), "initial_target"),
            (
                with("initial_target", &format!("\"{}\"", "0".repeat(64))),
                "initial_target",
            ),
            (
                with("initial_target", &format!("\"1{}\"", "0".repeat(63))),
                "initial_target",
            ),
            (with("chain_id", "\"7710\""), "chain_id"),
            (with("chain_id", "-1"), "chain_id"),
            (with("min_fee", "1.5"), "min_fee"),
            (with("extra", "1"), "extra"),
            (with("initial_reward", "4503599627370496"), "allocations"),
            (
                with(
                    "allocations",
                    r#"[{"address":"49a6bdea2673b89bd7b3992b18711ea9597c666a","balance":1},{"address":"49A6BDEA2673B89BD7B3992B18711EA9597C666A","balance":2}]"#,
                ),
                "allocations",
            ),
            (
                with("allocations", r#"[{"address":"49a6","balance":1}]"#),
                "allocations[0].address",
            ),
        ];
        for (json, field) in cases {
            let err = Genesis::from_json(&json).expect_err(field);
            assert!(
                err.to_string().contains(field),
                "error {err} should name {field}"
            );
        }
        let mut v: serde_json::Value = serde_json::from_str(SPEC_GENESIS).expect("json");
        v.as_object_mut().expect("object").remove("max_future_ms");
        let err = Genesis::from_json(&v.to_string()).expect_err("missing field");
        assert!(err.to_string().contains("`max_future_ms`"), "{err}");
        assert!(Genesis::from_json("not json").is_err());
    }

    #[test]
    fn dev_genesis_is_valid() {
        let g = Genesis::dev(10, 1_000_000_000_000, 2000);
        g.validate().expect("dev genesis valid");
        assert_eq!(g.state().len(), 10);
    }

    #[test]
    fn issuance_too_large_for_u128_is_refused_not_a_panic() {
        // 2 * (2^64 - 1)^2 does not fit a u128: this used to overflow.
        let mut g = Genesis::dev(1, 1, 2000);
        g.initial_reward = u64::MAX;
        g.halving_interval = u64::MAX;
        assert!(matches!(
            g.validate(),
            Err(GenesisError::SupplyTooLarge {
                issuance: u128::MAX,
                ..
            })
        ));
    }
}
