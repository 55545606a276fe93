//! `peerchain genesis new`: builds a genesis from its options (one per genesis field of SPEC
//! section 4, plus dev accounts and `--alloc`) and writes it. Every error names the option,
//! the genesis field and the value that broke the rule.

use anyhow::{Context, bail};
use peerchain_ledger::genesis::Allocation;
use peerchain_ledger::{Address, Genesis, GenesisError};

use crate::cli::GenesisNewArgs;
use crate::config::target_for_hashrate;

/// Writes the genesis to `--out` (never overwriting) and prints its hash.
pub fn run(args: &GenesisNewArgs) -> anyhow::Result<()> {
    let genesis = build(args)?;
    if args.out.exists() {
        bail!("{} exists: refusing to overwrite it", args.out.display());
    }
    std::fs::write(&args.out, genesis.to_json() + "\n")
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{}", genesis.hash());
    Ok(())
}

/// The genesis the options describe, validated by the rules of SPEC section 4 and two more
/// that keep a network usable: at least one block per halving era and one transaction per
/// block.
pub fn build(a: &GenesisNewArgs) -> anyhow::Result<Genesis> {
    if a.halving_interval == 0 {
        bail!("--halving-interval 0: genesis field `halving_interval` must be at least 1 block");
    }
    if a.max_block_txs == 0 {
        bail!("--max-block-txs 0: genesis field `max_block_txs` must be at least 1 transaction");
    }
    let mut g = Genesis::dev(a.dev_accounts, a.balance, a.block_time);
    g.chain_id = a.chain_id;
    g.timestamp_ms = a.timestamp_ms;
    if let Some(half_life) = a.difficulty_half_life_ms {
        g.difficulty_half_life_ms = half_life;
    }
    if let Some(limit) = a.pow_limit {
        g.pow_limit = limit;
    }
    g.initial_target = a.initial_target.unwrap_or_else(|| {
        target_for_hashrate(a.hashrate, g.target_block_time_ms.max(1)).min(g.pow_limit)
    });
    g.initial_reward = a.initial_reward;
    g.halving_interval = a.halving_interval;
    g.min_fee = a.min_fee;
    g.max_block_txs = a.max_block_txs;
    g.max_future_ms = a.max_future_ms;
    g.allocations.extend(a.allocs.iter().cloned());
    g.validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", options_of(&e, a)))?;
    Ok(g)
}

/// The options behind a broken genesis rule, with their values.
fn options_of(e: &GenesisError, a: &GenesisNewArgs) -> String {
    match e {
        GenesisError::ZeroBlockTime => format!("--block-time {}", a.block_time),
        GenesisError::HalfLifeTooShort { half_life, .. } => {
            format!("--difficulty-half-life-ms {half_life}")
        }
        GenesisError::ZeroTarget | GenesisError::TargetAboveLimit { .. } => {
            match (a.initial_target, a.pow_limit) {
                (Some(t), Some(l)) => format!("--initial-target {t} with --pow-limit {l}"),
                (Some(t), None) => format!("--initial-target {t}"),
                (None, Some(l)) => format!("--pow-limit {l}"),
                (None, None) => "--initial-target".to_owned(),
            }
        }
        GenesisError::DuplicateAllocation(address) => {
            format!("--alloc {address}=... (also a dev account or given twice)")
        }
        GenesisError::SupplyTooLarge { .. } => format!(
            "--dev-accounts {} x --balance {}, --alloc, --initial-reward {} and \
             --halving-interval {}",
            a.dev_accounts, a.balance, a.initial_reward, a.halving_interval
        ),
        GenesisError::Io { .. } | GenesisError::Field { .. } => "genesis new".to_owned(),
    }
}

/// Parses `--alloc ADDRESS=UNITS` (clap value parser).
pub fn parse_alloc(text: &str) -> Result<Allocation, String> {
    let (address, balance) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not ADDRESS=UNITS"))?;
    let address: Address = address
        .trim()
        .parse()
        .map_err(|e| format!("address {address:?} in {text:?}: {e}"))?;
    let balance: u64 = balance.trim().parse().map_err(|e| {
        format!("balance {balance:?} in {text:?} is not a whole number of units ({e})")
    })?;
    Ok(Allocation { address, balance })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use peerchain_ledger::crypto::Keypair;

    use super::*;
    use crate::cli::{Cli, Command, GenesisCommand};

    fn args(extra: &[&str]) -> GenesisNewArgs {
        let argv = ["peerchain", "genesis", "new", "--out", "g.json"];
        let cli = Cli::try_parse_from(argv.iter().chain(extra)).expect("valid arguments");
        match cli.command {
            Command::Genesis(GenesisCommand::New(a)) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn error(extra: &[&str]) -> String {
        format!("{:#}", build(&args(extra)).expect_err("invalid genesis"))
    }

    #[test]
    fn defaults_are_todays_genesis() {
        let g = build(&args(&[])).expect("valid");
        let mut today = Genesis::dev(10, 1_000_000_000_000, 2000);
        today.initial_target = target_for_hashrate(400_000, 2000);
        assert_eq!(g, today);
    }

    #[test]
    fn every_field_is_an_option() {
        let dev0 = Keypair::dev(0).address().to_string();
        let other = Keypair::dev(99).address().to_string();
        let target = format!("0000{}", "f".repeat(60));
        let limit = format!("00{}", "f".repeat(62));
        let g = build(&args(&[
            "--dev-accounts=2",
            "--balance=5",
            &format!("--alloc={other}=9"),
            "--chain-id=42",
            "--timestamp-ms=1000",
            "--target-block-time-ms=500",
            "--difficulty-half-life-ms=7000",
            &format!("--initial-target={target}"),
            &format!("--pow-limit={limit}"),
            "--initial-reward=50",
            "--halving-interval=100",
            "--min-fee=3",
            "--max-block-txs=64",
            "--max-future-ms=2000",
        ]))
        .expect("valid");
        assert_eq!(g.chain_id, 42);
        assert_eq!(g.timestamp_ms, 1000);
        assert_eq!(g.target_block_time_ms, 500);
        assert_eq!(g.difficulty_half_life_ms, 7000);
        assert_eq!(g.initial_target.to_string(), target);
        assert_eq!(g.pow_limit.to_string(), limit);
        assert_eq!(
            (g.initial_reward, g.halving_interval, g.min_fee),
            (50, 100, 3)
        );
        assert_eq!((g.max_block_txs, g.max_future_ms), (64, 2000));
        let allocs: Vec<(String, u64)> = g
            .allocations
            .iter()
            .map(|a| (a.address.to_string(), a.balance))
            .collect();
        let dev1 = Keypair::dev(1).address().to_string();
        assert_eq!(allocs, [(dev0, 5), (dev1, 5), (other, 9)]);
    }

    #[test]
    fn broken_rules_name_option_field_and_value() {
        let cases: [(&[&str], &[&str]); 8] = [
            (
                &["--block-time", "0"],
                &["--block-time 0", "target_block_time_ms"],
            ),
            (
                &["--difficulty-half-life-ms", "1999"],
                &["--difficulty-half-life-ms 1999", "(1999)", "(2000)"],
            ),
            (
                &["--initial-target", &"0".repeat(64)],
                &["--initial-target 0000", "initial_target"],
            ),
            (
                &[
                    "--initial-target",
                    &format!("00{}", "f".repeat(62)),
                    "--pow-limit",
                    &format!("000{}", "f".repeat(61)),
                ],
                &[
                    "--initial-target 00ff",
                    "with --pow-limit 000f",
                    "above `pow_limit`",
                ],
            ),
            (
                &["--pow-limit", &"0".repeat(64)],
                &["--pow-limit 0000", "`initial_target` must be above 0"],
            ),
            (
                &["--halving-interval", "0"],
                &["--halving-interval 0", "halving_interval"],
            ),
            (
                &["--max-block-txs", "0"],
                &["--max-block-txs 0", "max_block_txs"],
            ),
            (
                &["--initial-reward", "4000000000"],
                &["--initial-reward 4000000000", "2^53"],
            ),
        ];
        for (extra, wanted) in cases {
            let text = error(extra);
            for w in wanted {
                assert!(text.contains(w), "{extra:?}: {text:?} should contain {w:?}");
            }
        }
        let dev0 = Keypair::dev(0).address().to_string();
        let text = error(&["--alloc", &format!("{dev0}=1")]);
        assert!(text.contains(&dev0) && text.contains("twice"), "{text}");
    }

    #[test]
    fn bad_option_values_are_refused_by_the_parser_naming_them() {
        let parse = |extra: &[&str]| {
            let argv = ["peerchain", "genesis", "new", "--out", "g.json"];
            Cli::try_parse_from(argv.iter().chain(extra))
                .expect_err("refused")
                .to_string()
        };
        let text = parse(&["--alloc", "49a6=5"]);
        assert!(
            text.contains("--alloc") && text.contains("\"49a6\""),
            "{text}"
        );
        let text = parse(&["--alloc", "nothing"]);
        assert!(text.contains("ADDRESS=UNITS"), "{text}");
        let text = parse(&["--min-fee=-1"]);
        assert!(text.contains("--min-fee"), "{text}");
        let text = parse(&["--initial-target", "zz"]);
        assert!(text.contains("--initial-target"), "{text}");
        let text = parse(&["--dev-accounts", "100001"]);
        assert!(text.contains("100000"), "{text}");
        let text = parse(&["--hashrate", "5", "--initial-target", &"0f".repeat(32)]);
        assert!(text.contains("cannot be used with"), "{text}");
    }

    #[test]
    fn alloc_parses_address_and_units() {
        let dev0 = Keypair::dev(0).address();
        let a = parse_alloc(&format!("{dev0}=12")).expect("valid");
        assert_eq!((a.address, a.balance), (dev0, 12));
        let err = parse_alloc(&format!("{dev0}=1.5")).expect_err("not whole");
        assert!(err.contains("\"1.5\""), "{err}");
    }
}
