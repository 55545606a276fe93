//! Dev mode conveniences (`peerchain node --dev`): the built-in dev genesis shaped by
//! `--accounts` and `--balance`, the accounts part of the startup banner, and dev keys by index
//! (`peerchain dev-key`).
//!
//! Dev account `i` is the key with seed `SHA-256("peerchain-dev-key-" + i)` (SPEC section 1):
//! public knowledge, for local networks only.

use anyhow::bail;
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::genesis::Allocation;
use peerchain_ledger::{Genesis, GenesisError, Target, U256};

/// Dev accounts prefunded by `--dev` when `--accounts` is not given.
pub const DEFAULT_ACCOUNTS: u32 = 10;
/// Balance of each dev account when `--balance` is not given (10^12 units).
pub const DEFAULT_BALANCE: u64 = 1_000_000_000_000;
/// Most dev accounts `--accounts` (and `genesis new --dev-accounts`) accept. Each one costs an
/// Ed25519 key derivation and a store write at the first start, and a line in a genesis file:
/// 100,000 start in a few seconds; far more would make a dev node slow to start for no test
/// that needs them.
pub const MAX_ACCOUNTS: u32 = 100_000;
/// Accounts the banner lists with their keys; the rest are counted.
pub const BANNER_ACCOUNTS: usize = 10;
/// Dev indexes searched for the key of a listed allocation that is not dev account `position`
/// (a genesis file may list dev accounts in another order).
const KEY_SEARCH: u32 = 64;

/// Parses a dev account count (clap value parser for `--accounts` and `--dev-accounts`).
pub fn parse_accounts(text: &str) -> Result<u32, String> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a number of accounts ({e})"))?;
    if n > MAX_ACCOUNTS {
        return Err(format!(
            "{n} is above the limit of {MAX_ACCOUNTS} dev accounts (each is derived and stored \
             when the node starts)"
        ));
    }
    Ok(n)
}

/// The built-in dev network: `accounts` dev accounts with `balance` each, easy work so blocks
/// are mined at once, and a difficulty half-life of about 30 years, so "mine 1,000 blocks now"
/// (blocks far faster than the target time) leaves the difficulty practically unchanged, as a
/// dev chain should. Its target block time is `block_time_ms` (`--block-time`), at least 1 s,
/// and 2 s when blocks are mined on demand (0). Errors name the flags when the balances break
/// the supply bound.
pub fn genesis(block_time_ms: u64, accounts: u32, balance: u64) -> anyhow::Result<Genesis> {
    let target_ms = if block_time_ms == 0 {
        2000
    } else {
        block_time_ms.max(1000)
    };
    let mut g = Genesis::dev(accounts, balance, target_ms);
    g.chain_id = 7711;
    g.difficulty_half_life_ms = 1_000_000_000_000;
    // Cannot overflow: right shifts of a constant by fewer than 256 bits.
    g.initial_target = Target(U256::MAX >> 12);
    g.pow_limit = Target(U256::MAX >> 4);
    match g.validate() {
        Ok(()) => Ok(g),
        Err(GenesisError::SupplyTooLarge { balances, issuance }) => {
            bail!(supply_message(accounts, balance, balances, issuance))
        }
        Err(e) => Err(e.into()),
    }
}

fn supply_message(accounts: u32, balance: u64, balances: u128, issuance: u128) -> String {
    let room = (1u128 << 53).saturating_sub(issuance).saturating_sub(1);
    let most = room.checked_div(u128::from(accounts)).unwrap_or(room);
    format!(
        "--accounts {accounts} x --balance {balance} = {balances} units plus {issuance} units of \
         block rewards reach the 2^53 supply limit (SPEC section 4): with {accounts} accounts \
         --balance can be at most {most}"
    )
}

/// The accounts part of the dev banner: the first [`BANNER_ACCOUNTS`] allocations with their
/// secret seeds when they are dev keys, then how many more there are.
pub fn banner_accounts(genesis: &Genesis) -> String {
    let mut out = String::from(
        "Dev accounts (PUBLIC TEST KEYS: anyone can spend these; never use them for value)\n\n",
    );
    for (position, a) in genesis.allocations.iter().take(BANNER_ACCOUNTS).enumerate() {
        out.push_str(&format!(
            "({position}) {}  balance {}\n",
            a.address, a.balance
        ));
        out.push_str(&key_line(a, position));
    }
    let more = genesis.allocations.len().saturating_sub(BANNER_ACCOUNTS);
    if more > 0 {
        out.push_str(&format!(
            "\n... and {more} more accounts in the genesis; `peerchain dev-key <i>` prints dev \
             account i's address and secret seed\n"
        ));
    }
    out
}

fn key_line(allocation: &Allocation, position: usize) -> String {
    match dev_index_of(allocation, position) {
        Some((i, key)) if usize::try_from(i).is_ok_and(|i| i == position) => {
            format!("    secret seed {}\n", hex::encode(key.seed()))
        }
        Some((i, key)) => format!(
            "    secret seed {} (dev account {i})\n",
            hex::encode(key.seed())
        ),
        None => "    not a dev account: its key is not known here\n".to_owned(),
    }
}

/// The dev key of an allocation: dev account `position` first, then the first [`KEY_SEARCH`].
fn dev_index_of(allocation: &Allocation, position: usize) -> Option<(u32, Keypair)> {
    u32::try_from(position)
        .ok()
        .into_iter()
        .chain(0..KEY_SEARCH)
        .map(|i| (i, Keypair::dev(i)))
        .find(|(_, key)| key.address() == allocation.address)
}

/// `peerchain dev-key I`: one line `address secret-seed`, and the key file with `--out`.
pub fn print_key(args: &crate::cli::DevKeyArgs) -> anyhow::Result<()> {
    let key = Keypair::dev(args.index);
    let seed = hex::encode(key.seed());
    if let Some(path) = &args.out {
        crate::keys::write_private(path, &format!("{seed}\n"))?;
    }
    println!("{} {seed}", key.address());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV0_SEED: &str = "b99f56239ba1dd408c5bddedf55e1a5a332cd2ba16eb4eae0fe47fbe310ab574";

    #[test]
    fn account_counts_are_bounded_with_a_reason() {
        assert_eq!(parse_accounts("0"), Ok(0));
        assert_eq!(parse_accounts("100000"), Ok(MAX_ACCOUNTS));
        let err = parse_accounts("100001").expect_err("above the bound");
        assert!(err.contains("100001") && err.contains("100000"), "{err}");
        let err = parse_accounts("ten").expect_err("not a number");
        assert!(err.contains("\"ten\""), "{err}");
        assert!(parse_accounts("-1").is_err());
    }

    #[test]
    fn dev_genesis_funds_every_account_with_the_balance() {
        let g = genesis(0, 25, 7).expect("valid");
        assert_eq!(g.chain_id, 7711);
        assert_eq!(g.allocations.len(), 25);
        assert!(g.allocations.iter().all(|a| a.balance == 7));
        assert_eq!(g.allocations[24].address, Keypair::dev(24).address());
    }

    /// The defaults give the dev network of before `--accounts` and `--balance` (its genesis
    /// hash is in docs and users' scripts).
    #[test]
    fn defaults_keep_the_dev_network() {
        for (block_time, target_ms) in [(0, 2000), (500, 1000), (3000, 3000)] {
            let mut before = Genesis::dev(10, 1_000_000_000_000, target_ms);
            before.chain_id = 7711;
            before.difficulty_half_life_ms = 1_000_000_000_000;
            before.initial_target = Target(U256::MAX >> 12);
            before.pow_limit = Target(U256::MAX >> 4);
            let now = genesis(block_time, DEFAULT_ACCOUNTS, DEFAULT_BALANCE).expect("valid");
            assert_eq!(now, before, "--block-time {block_time}");
        }
    }

    #[test]
    fn too_much_supply_names_the_flags_and_the_largest_balance() {
        let err = genesis(0, 10_000, DEFAULT_BALANCE).expect_err("above 2^53");
        let text = err.to_string();
        assert!(text.contains("--accounts 10000"), "{text}");
        assert!(text.contains("--balance 1000000000000"), "{text}");
        let most: u64 = text
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("ends with the largest balance");
        genesis(0, 10_000, most).expect("the largest balance named is valid");
        assert!(genesis(0, 10_000, most + 1).is_err());
    }

    #[test]
    fn banner_lists_ten_and_counts_the_rest() {
        let g = genesis(0, 25, 7).expect("valid");
        let text = banner_accounts(&g);
        assert_eq!(text.matches("    secret seed ").count(), 10);
        assert!(text.contains(DEV0_SEED), "{text}");
        assert!(text.contains("(9) "), "{text}");
        assert!(!text.contains("(10) "), "{text}");
        assert!(text.contains("and 15 more accounts"), "{text}");
        assert!(text.contains("peerchain dev-key <i>"), "{text}");
        let few = banner_accounts(&genesis(0, 3, 7).expect("valid"));
        assert!(!few.contains("more accounts"), "{few}");
    }

    #[test]
    fn banner_finds_dev_keys_out_of_order_and_marks_other_keys() {
        let mut g = genesis(0, 2, 7).expect("valid");
        g.allocations.swap(0, 1);
        g.allocations.push(Allocation {
            address: Keypair::generate().address(),
            balance: 1,
        });
        let text = banner_accounts(&g);
        assert!(
            text.contains(&format!("{DEV0_SEED} (dev account 0)")),
            "{text}"
        );
        assert!(text.contains("not a dev account"), "{text}");
    }
}
