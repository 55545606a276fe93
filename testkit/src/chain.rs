//! Easy-proof-of-work dev genesis blocks and clocks.

use peerchain_ledger::{Genesis, Target, U256};

/// A dev genesis with `accounts` funded dev keys (10^9 each, 2 s blocks) whose proof of work
/// takes about two hashes, allowing blocks of up to `max_block_txs` transactions (or the dev
/// default when larger).
///
/// # Panics
/// When the result is not a valid genesis.
pub fn easy_genesis(accounts: u32, max_block_txs: usize) -> Genesis {
    let mut g = Genesis::dev(accounts, 1_000_000_000, 2000);
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g.max_block_txs = g.max_block_txs.max(max_block_txs as u64);
    g.validate().expect("valid genesis");
    g
}

/// A dev network for real nodes, like the multi-node harness's `easy_genesis` (a few hundred
/// hashes per block, 1 s block time, 10^12 per account), with `accounts` funded dev accounts.
pub fn node_genesis(accounts: u32) -> Genesis {
    let mut g = Genesis::dev(accounts, 1_000_000_000_000, 1000);
    g.initial_target = Target(U256::MAX >> 8);
    g.pow_limit = Target(U256::MAX >> 4);
    g
}

/// A clock (milliseconds) far enough after `genesis` that no test or benchmark block built on
/// it is from the future.
pub fn late_clock_ms(genesis: &Genesis) -> u64 {
    genesis.timestamp_ms + 1_000_000_000
}

/// The wall clock: milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_builders_are_valid() {
        let g = easy_genesis(3, 50_000);
        assert_eq!(g.max_block_txs, 50_000);
        assert!(late_clock_ms(&g) > g.timestamp_ms);
        node_genesis(4).validate().expect("valid genesis");
        assert!(now_ms() > 1_600_000_000_000);
    }
}
