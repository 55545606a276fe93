//! Resolves `peerchain node` flags, environment variables and the TOML config file into one
//! [`NodeConfig`], with errors that name the problem.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use peerchain_ledger::{Address, Genesis, Target, U256};
use serde::Deserialize;

use crate::cli::{LogFormat, NodeArgs};

/// Default P2P listen address.
pub const DEFAULT_P2P: &str = "/ip4/127.0.0.1/tcp/7710";
/// Default HTTP listen address.
pub const DEFAULT_RPC: &str = "127.0.0.1:8710";
/// Default hash-rate cap (hashes per second per node).
pub const DEFAULT_HASHRATE: u64 = 200_000;

/// Keys of the TOML config file: the long flag names with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    genesis: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    p2p_listen: Option<String>,
    rpc_listen: Option<String>,
    bootnodes: Option<Vec<String>>,
    mine: Option<bool>,
    miner_address: Option<String>,
    miner_key: Option<PathBuf>,
    mine_threads: Option<usize>,
    mine_hashrate: Option<u64>,
    admin_token: Option<String>,
    admin_token_file: Option<PathBuf>,
    node_key_file: Option<PathBuf>,
    node_key_seed: Option<String>,
    node_ordinal: Option<u32>,
    cache_mb: Option<u64>,
    disk_reserve_mb: Option<u64>,
    log_format: Option<LogFormat>,
    mdns: Option<bool>,
    explorer_nodes: Option<PathBuf>,
}

/// Every bound of the node's queues, pools and caches, named in one place. The defaults suit a
/// testnet node; tests shrink them to reach the limits quickly.
#[derive(Debug, Clone)]
pub struct NodeLimits {
    /// The HTTP server's limits (bodies, concurrency, timeouts, event streams).
    pub http: peerchain_rpc::Limits,
    /// The mempool's bounds and policy.
    pub mempool: peerchain_ledger::MempoolConfig,
    /// HTTP requests waiting for the chain thread, in a lane of their own (so that gossip
    /// cannot crowd them out).
    pub chain_inbox: usize,
    /// Gossiped transaction batches (up to `MAX_TX_BATCH` transactions each) waiting for the
    /// chain thread; when full, the network sheds gossip (its overload rule).
    pub gossip_batches: usize,
    /// Blocks from the network waiting for the chain thread, in their own lane that goes
    /// first.
    pub chain_blocks: usize,
    /// HTTP requests waiting to be dispatched to the chain thread or the network.
    pub requests: usize,
    /// Commands waiting for the network (gossip reports, publications, penalties).
    pub net_outbox: usize,
    /// Events buffered for each `/v1/events` subscriber before it lags.
    pub events: usize,
    /// Transactions whose first-seen time is remembered after they leave the mempool.
    pub first_seen: usize,
    /// Gossiped transactions held ahead of a nonce gap.
    pub gap_queue: usize,
    /// Of those, held per sending account.
    pub gap_per_sender: usize,
    /// How long a held transaction waits for its predecessors.
    pub gap_ttl_ms: u64,
    /// Free space (MiB) kept on the data directory's disk: below it the node stops taking
    /// transactions and blocks until twice as much is free (`--disk-reserve-mb`).
    pub disk_reserve_mb: u64,
    /// Gossiped compact blocks whose whole block is being fetched (their gossip verdict
    /// waits for it); beyond it the oldest is answered `Ignore`.
    pub compact_fetches: usize,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            http: peerchain_rpc::Limits::default(),
            mempool: peerchain_ledger::MempoolConfig::default(),
            chain_inbox: 1024,
            gossip_batches: 64,
            chain_blocks: 64,
            requests: 1024,
            net_outbox: 8192,
            events: 4096,
            first_seen: 200_000,
            gap_queue: 10_000,
            gap_per_sender: 1_000,
            gap_ttl_ms: 120_000,
            disk_reserve_mb: 64,
            compact_fetches: 64,
        }
    }
}

/// Faults a test can inject into a running node (all off by default). The binary reads them
/// from `PEERCHAIN_FAILPOINTS` (comma-separated `name=value`), which is meant for tests only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailPoints {
    /// `chain-panic-after-ms=N`: the chain thread panics N ms after start (supervision test).
    pub chain_panic_after_ms: Option<u64>,
    /// `chain-stall-on-shutdown-ms=N`: the chain thread sleeps N ms before it stops (a
    /// shutdown that hangs, for the shutdown deadline test).
    pub chain_stall_on_shutdown_ms: Option<u64>,
    /// `store-probe-stall-ms=N`: each periodic probe of the store (a small write and a
    /// flush) first waits N ms, as a flush behind a slow or busy disk does.
    pub store_probe_stall_ms: Option<u64>,
}

impl FailPoints {
    /// The variable the binary reads.
    pub const ENV: &'static str = "PEERCHAIN_FAILPOINTS";

    /// Parses `name=value,...`; unknown names and bad values are errors naming them.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut points = FailPoints::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            match name {
                "chain-panic-after-ms" => {
                    let ms = value.parse().with_context(|| {
                        format!("{}: {name} needs a number of ms, got {value:?}", Self::ENV)
                    })?;
                    points.chain_panic_after_ms = Some(ms);
                }
                "chain-stall-on-shutdown-ms" => {
                    let ms = value.parse().with_context(|| {
                        format!("{}: {name} needs a number of ms, got {value:?}", Self::ENV)
                    })?;
                    points.chain_stall_on_shutdown_ms = Some(ms);
                }
                "store-probe-stall-ms" => {
                    let ms = value.parse().with_context(|| {
                        format!("{}: {name} needs a number of ms, got {value:?}", Self::ENV)
                    })?;
                    points.store_probe_stall_ms = Some(ms);
                }
                other => bail!("{}: unknown fail point {other:?}", Self::ENV),
            }
        }
        Ok(points)
    }

    /// The fail points set in the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(Self::ENV) {
            Ok(text) => Self::parse(&text),
            Err(_) => Ok(FailPoints::default()),
        }
    }
}

/// Dev mode settings.
#[derive(Debug, Clone, Copy)]
pub struct DevMode {
    /// 0: mine when a transaction arrives; otherwise mine one block every this many ms.
    pub block_time_ms: u64,
}

/// Everything a node needs to start.
#[derive(Debug)]
pub struct NodeConfig {
    /// The network.
    pub genesis: Genesis,
    /// Data directory.
    pub data_dir: PathBuf,
    /// P2P listen multiaddr.
    pub p2p_listen: String,
    /// HTTP listen address.
    pub rpc_listen: SocketAddr,
    /// Bootnode multiaddrs.
    pub bootnodes: Vec<String>,
    /// Mine continuously from the start.
    pub mine: bool,
    /// Reward address.
    pub miner_address: Address,
    /// Mining threads.
    pub mine_threads: usize,
    /// Hash-rate cap for the node, `None` for none.
    pub mine_hashrate: Option<u64>,
    /// Admin token from `--admin-token` or the content of `--admin-token-file` (else the
    /// data directory's admin.token).
    pub admin_token: Option<String>,
    /// The node key given by the operator (`--node-key-file`, `--node-key-seed`); `None`:
    /// the data directory's `node.key`, created when missing.
    pub node_key: Option<crate::node_key::NodeKey>,
    /// sled cache in MiB.
    pub cache_mb: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// mDNS discovery.
    pub mdns: bool,
    /// Dev mode.
    pub dev: Option<DevMode>,
    /// Testnet node list for the explorer.
    pub explorer_nodes: Option<PathBuf>,
    /// Gossip heartbeat (tests shorten it).
    pub heartbeat_ms: u64,
    /// Held so a dev node's temporary directory lives as long as the node.
    pub temp_dir: Option<std::sync::Arc<tempfile::TempDir>>,
    /// Bounds of queues, pools and caches.
    pub limits: NodeLimits,
    /// Injected faults (tests only).
    pub failpoints: FailPoints,
    /// Whether adversary modes may be switched on (`--allow-adversary`).
    pub allow_adversary: bool,
    /// The adversary mode to start in (`--adversary`).
    pub adversary: Option<crate::adversary::AdversaryMode>,
    /// Whether a misbehaviour ban covers a loopback address too (off: a local testnet shares
    /// 127.0.0.1; tests of address bans turn it on).
    pub ban_loopback_addresses: bool,
    /// Added to the wall clock for every consensus time (block timestamps, the future-block
    /// rule, mempool expiry): tests of clock skew only (`--clock-offset-ms`).
    pub clock_offset_ms: i64,
    /// Seed of the link faults' loss draws and the sybil identities (`--fault-seed`, tests
    /// only); `None`: random.
    pub fault_seed: Option<u64>,
}

/// The initial target for a network expected to hash at `hashrate` per second and produce a
/// block every `block_time_ms`: work per block = hashrate × block time.
pub fn target_for_hashrate(hashrate: u64, block_time_ms: u64) -> Target {
    let work = (u128::from(hashrate) * u128::from(block_time_ms) / 1000).max(1);
    // target = 2^256 / work - 1, computed as (2^256 - 1) / work.
    Target(U256::MAX / U256::from(work))
}

impl NodeConfig {
    /// Resolves flags (already merged with environment variables by clap), the config file and
    /// defaults.
    pub fn resolve(args: NodeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        if let Some(mode) = &args.adversary
            && !args.allow_adversary
        {
            bail!(
                "--adversary {} attacks this node's peers: it needs --allow-adversary too",
                mode
            );
        }
        let dev = args.dev.then(|| DevMode {
            block_time_ms: args.block_time.unwrap_or(0),
        });
        let (genesis, data_dir, temp_dir) = genesis_and_dir(&args, &file, dev)?;
        let rpc_text = args
            .rpc_listen
            .or(file.rpc_listen)
            .unwrap_or_else(|| DEFAULT_RPC.to_owned());
        let rpc_listen: SocketAddr = rpc_text.parse().with_context(|| {
            format!("--rpc-listen {rpc_text:?} is not an address like 127.0.0.1:8710")
        })?;
        let miner_address = miner_address(
            args.miner_address.or(file.miner_address),
            args.miner_key.or(file.miner_key),
            dev.is_some(),
        )?;
        let mine = args.mine || file.mine.unwrap_or(false);
        let hashrate = args
            .mine_hashrate
            .or(file.mine_hashrate)
            .unwrap_or(DEFAULT_HASHRATE);
        // Each pair of alternatives comes from the highest-precedence source that sets
        // either (flags and environment, else the file); both at one level is an error.
        let (admin_token, admin_token_file) = highest(
            (args.admin_token, args.admin_token_file),
            (file.admin_token, file.admin_token_file),
        );
        let admin_token = match (admin_token, admin_token_file) {
            (Some(_), Some(path)) => bail!(
                "give either --admin-token or --admin-token-file ({}), not both",
                path.display()
            ),
            (Some(token), None) => Some(token),
            (None, Some(path)) => Some(crate::keys::read_admin_token_file(&path)?),
            (None, None) => None,
        };
        let (node_key_file, node_key_seed) = highest(
            (args.node_key_file, args.node_key_seed),
            (file.node_key_file, file.node_key_seed),
        );
        let node_key = crate::node_key::resolve(
            node_key_file,
            node_key_seed,
            args.node_ordinal.or(file.node_ordinal),
        )?;
        let bootnodes = if args.bootnodes.is_empty() {
            file.bootnodes.unwrap_or_default()
        } else {
            args.bootnodes
        };
        Ok(NodeConfig {
            genesis,
            data_dir,
            p2p_listen: args
                .p2p_listen
                .or(file.p2p_listen)
                .unwrap_or_else(|| DEFAULT_P2P.to_owned()),
            rpc_listen,
            bootnodes,
            mine,
            miner_address,
            mine_threads: args.mine_threads.or(file.mine_threads).unwrap_or(1).max(1),
            mine_hashrate: (hashrate > 0).then_some(hashrate),
            admin_token,
            node_key,
            cache_mb: args.cache_mb.or(file.cache_mb).unwrap_or(64).max(1),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            mdns: args.mdns || file.mdns.unwrap_or(false),
            dev,
            explorer_nodes: args.explorer_nodes.or(file.explorer_nodes),
            heartbeat_ms: 700,
            temp_dir,
            limits: NodeLimits {
                disk_reserve_mb: args
                    .disk_reserve_mb
                    .or(file.disk_reserve_mb)
                    .unwrap_or(NodeLimits::default().disk_reserve_mb),
                ..NodeLimits::default()
            },
            failpoints: FailPoints::from_env()?,
            allow_adversary: args.allow_adversary,
            adversary: args.adversary,
            ban_loopback_addresses: false,
            clock_offset_ms: args.clock_offset_ms,
            fault_seed: args.fault_seed,
        })
    }
}

/// `cli` when it sets either alternative, else `file`: a flag (or its environment variable)
/// for one of two alternatives overrides the config file's setting of the other.
fn highest<A, B>(
    cli: (Option<A>, Option<B>),
    file: (Option<A>, Option<B>),
) -> (Option<A>, Option<B>) {
    if cli.0.is_some() || cli.1.is_some() {
        cli
    } else {
        file
    }
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

type GenesisAndDir = (Genesis, PathBuf, Option<std::sync::Arc<tempfile::TempDir>>);

/// The network and the data directory. A genesis file given by flag, `PEERCHAIN_GENESIS` or the
/// config file is used in dev mode too (docs/DECISIONS.md, Node); without one, dev mode builds
/// the dev genesis from `--accounts` and `--balance`.
fn genesis_and_dir(
    args: &NodeArgs,
    file: &FileConfig,
    dev: Option<DevMode>,
) -> anyhow::Result<GenesisAndDir> {
    let data_dir = args.data_dir.clone().or(file.data_dir.clone());
    let genesis_file = args.genesis.clone().or(file.genesis.clone());
    let Some(dev) = dev else {
        let path = genesis_file.unwrap_or_else(|| PathBuf::from("genesis.json"));
        let data_dir = data_dir.unwrap_or_else(|| PathBuf::from("peerchain-data"));
        return Ok((Genesis::from_file(&path)?, data_dir, None));
    };
    let genesis = match genesis_file {
        Some(path) => dev_genesis_file(args, &path)?,
        None => crate::dev::genesis(
            dev.block_time_ms,
            args.accounts.unwrap_or(crate::dev::DEFAULT_ACCOUNTS),
            args.balance.unwrap_or(crate::dev::DEFAULT_BALANCE),
        )?,
    };
    Ok(match data_dir {
        Some(dir) => (genesis, dir, None),
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("peerchain-dev-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            let dir = tmp.path().to_owned();
            (genesis, dir, Some(std::sync::Arc::new(tmp)))
        }
    })
}

/// A dev node's genesis file, which `--accounts` and `--balance` cannot change.
fn dev_genesis_file(args: &NodeArgs, path: &Path) -> anyhow::Result<Genesis> {
    let shaping: Vec<String> = [
        args.accounts.map(|n| format!("--accounts {n}")),
        args.balance.map(|b| format!("--balance {b}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !shaping.is_empty() {
        bail!(
            "{}: only the built-in dev genesis takes these, but --dev was given the genesis \
             file {} (by --genesis, PEERCHAIN_GENESIS or the config file); fund accounts in \
             that file (`peerchain genesis new --dev-accounts N --balance B`), or drop it",
            shaping.join(" and "),
            path.display()
        );
    }
    Ok(Genesis::from_file(path)?)
}

fn miner_address(
    address: Option<String>,
    key: Option<PathBuf>,
    dev: bool,
) -> anyhow::Result<Address> {
    match (address, key) {
        (Some(_), Some(_)) => bail!("give either --miner-address or --miner-key, not both"),
        (Some(text), None) => text
            .parse()
            .map_err(|e| anyhow::anyhow!("--miner-address {text:?}: {e}")),
        (None, Some(path)) => Ok(crate::keys::read_key_file(&path)?.address()),
        // Dev mode pays dev account 0; otherwise rewards go to the zero address until set.
        (None, None) if dev => Ok(peerchain_ledger::crypto::Keypair::dev(0).address()),
        (None, None) => Ok(Address::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_which_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("node.toml");
        std::fs::write(
            &cfg,
            "rpc_listen = \"127.0.0.1:9999\"\ncache_mb = 32\nmine_threads = 3\n",
        )
        .expect("write");
        let args = NodeArgs {
            config: Some(cfg),
            dev: true,
            data_dir: Some(dir.path().join("data")),
            mine_threads: Some(2),
            ..NodeArgs::default()
        };
        let c = NodeConfig::resolve(args).expect("resolve");
        assert_eq!(c.rpc_listen.port(), 9999, "file beats default");
        assert_eq!(c.mine_threads, 2, "flag beats file");
        assert_eq!(c.cache_mb, 32);
        assert_eq!(c.p2p_listen, DEFAULT_P2P);
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("node.toml");
        std::fs::write(&cfg, "no_such_key = 1\n").expect("write");
        let err = NodeConfig::resolve(NodeArgs {
            config: Some(cfg),
            dev: true,
            ..NodeArgs::default()
        })
        .expect_err("unknown key");
        assert!(format!("{err:#}").contains("no_such_key"), "{err:#}");
        let err = NodeConfig::resolve(NodeArgs {
            dev: true,
            rpc_listen: Some("nope".into()),
            ..NodeArgs::default()
        })
        .expect_err("bad address");
        assert!(err.to_string().contains("--rpc-listen"), "{err}");
    }

    /// `peerchain node ARGS` as clap parses it.
    fn node_args(argv: &[&str]) -> Result<NodeArgs, clap::Error> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["peerchain", "node"].iter().chain(argv))?;
        match cli.command {
            crate::cli::Command::Node(args) => Ok(*args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_fault_seed_is_the_flag_else_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_str().expect("utf-8 path");
        let resolve = |extra: &[&str]| {
            let argv: Vec<&str> = ["--dev", "--data-dir", data]
                .iter()
                .chain(extra)
                .copied()
                .collect();
            NodeConfig::resolve(node_args(&argv).expect("parses")).expect("resolves")
        };
        assert_eq!(resolve(&["--fault-seed", "42"]).fault_seed, Some(42));
        assert_eq!(resolve(&[]).fault_seed, None);
        let err = node_args(&["--fault-seed", "x"]).expect_err("not a u64");
        assert!(err.to_string().contains("--fault-seed"), "{err}");
    }

    #[test]
    fn dev_accounts_and_balance_shape_the_dev_genesis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_str().expect("utf-8 path");
        let args = [
            "--dev",
            "--data-dir",
            data,
            "--accounts",
            "25",
            "--balance",
            "7",
        ];
        let c = NodeConfig::resolve(node_args(&args).expect("parses")).expect("resolves");
        assert_eq!(c.genesis.allocations.len(), 25);
        assert!(c.genesis.allocations.iter().all(|a| a.balance == 7));
        let c = NodeConfig::resolve(node_args(&["--dev", "--data-dir", data]).expect("parses"))
            .expect("resolves");
        assert_eq!(
            c.genesis.allocations.len(),
            crate::dev::DEFAULT_ACCOUNTS as usize
        );
        for flag in [["--accounts", "3"], ["--balance", "7"]] {
            let err = node_args(&flag).expect_err("needs --dev").to_string();
            assert!(err.contains(flag[0]) && err.contains("--dev"), "{err}");
        }
        let err = node_args(&["--dev", "--accounts", "100001"]).expect_err("too many");
        assert!(err.to_string().contains("limit of 100000"), "{err}");
    }

    #[test]
    fn dev_mode_uses_a_given_genesis_file_and_refuses_to_reshape_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.json");
        let mut g = Genesis::dev(2, 5, 2000);
        g.chain_id = 4242;
        std::fs::write(&path, g.to_json()).expect("write genesis");
        let file = path.to_str().expect("utf-8 path");
        let c = NodeConfig::resolve(node_args(&["--dev", "--genesis", file]).expect("parses"))
            .expect("resolves");
        assert_eq!(c.genesis, g);
        assert!(
            c.temp_dir.is_some(),
            "a temporary data directory, as in dev mode"
        );
        assert!(c.dev.is_some());
        let args = [
            "--dev",
            "--genesis",
            file,
            "--accounts",
            "3",
            "--balance",
            "9",
        ];
        let err = NodeConfig::resolve(node_args(&args).expect("parses")).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("--accounts 3 and --balance 9"), "{text}");
        assert!(text.contains(file), "{text}");
        // The config file's `genesis` counts as given too.
        let cfg = dir.path().join("node.toml");
        std::fs::write(&cfg, format!("genesis = {file:?}\n")).expect("write config");
        let cfg = cfg.to_str().expect("utf-8 path");
        let args = ["--dev", "--config", cfg, "--balance", "9"];
        let err = NodeConfig::resolve(node_args(&args).expect("parses")).expect_err("refused");
        assert!(err.to_string().contains("--balance 9"), "{err}");
    }

    #[test]
    fn node_key_and_admin_token_files_resolve_with_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8 path");
        let token = dir.path().join("token");
        std::fs::write(&token, "  from-a-file\n").expect("write");
        let token = token.to_str().expect("utf-8 path");
        let args = ["--dev", "--data-dir", data, "--admin-token-file", token];
        let c = NodeConfig::resolve(node_args(&args).expect("parses")).expect("resolves");
        assert_eq!(c.admin_token.as_deref(), Some("from-a-file"));
        assert!(
            c.node_key.is_none(),
            "no key given: the data directory's node.key"
        );

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let empty = empty.to_str().expect("utf-8 path");
        let args = ["--dev", "--data-dir", data, "--admin-token-file", empty];
        let err = NodeConfig::resolve(node_args(&args).expect("parses")).expect_err("empty");
        assert!(err.to_string().contains(empty), "{err}");
        let args = ["--dev", "--admin-token", "t", "--admin-token-file", token];
        let err = node_args(&args).expect_err("conflict").to_string();
        assert!(
            err.contains("--admin-token-file") && err.contains("cannot be used"),
            "{err}"
        );

        let args = [
            "--dev",
            "--data-dir",
            data,
            "--node-key-seed",
            "s",
            "--node-ordinal",
            "4",
        ];
        let c = NodeConfig::resolve(node_args(&args).expect("parses")).expect("resolves");
        let key = c.node_key.expect("a key");
        assert_eq!(key.seed, peerchain_network::NodeKeySeed::derive(b"s", 4));
        let args = ["--dev", "--node-key-seed", "s", "--node-key-file", token];
        let err = node_args(&args).expect_err("conflict").to_string();
        assert!(
            err.contains("--node-key-file") && err.contains("cannot be used"),
            "{err}"
        );
        let args = ["--dev", "--data-dir", data, "--node-key-file", token];
        let err = NodeConfig::resolve(node_args(&args).expect("parses")).expect_err("not hex");
        assert!(format!("{err:#}").contains(token), "{err:#}");

        // A flag for one alternative overrides the config file's other one.
        let cfg = dir.path().join("node.toml");
        std::fs::write(
            &cfg,
            "admin_token = \"from-the-file\"\nnode_key_seed = \"s\"\nnode_ordinal = 2\n",
        )
        .expect("write config");
        let cfg = cfg.to_str().expect("utf-8 path");
        let c = NodeConfig::resolve(
            node_args(&["--dev", "--data-dir", data, "--config", cfg]).expect("parses"),
        )
        .expect("resolves");
        assert_eq!(c.admin_token.as_deref(), Some("from-the-file"));
        let key = c.node_key.expect("a key");
        assert_eq!(key.seed, peerchain_network::NodeKeySeed::derive(b"s", 2));
        let args = [
            "--dev",
            "--data-dir",
            data,
            "--config",
            cfg,
            "--admin-token-file",
            token,
        ];
        let c = NodeConfig::resolve(node_args(&args).expect("parses")).expect("resolves");
        assert_eq!(c.admin_token.as_deref(), Some("from-a-file"));
    }

    #[test]
    fn fail_points_parse_and_refuse_what_they_do_not_know() {
        assert_eq!(FailPoints::parse("").expect("empty"), FailPoints::default());
        let p = FailPoints::parse("chain-panic-after-ms=250").expect("known");
        assert_eq!(p.chain_panic_after_ms, Some(250));
        let p = FailPoints::parse("chain-stall-on-shutdown-ms=9").expect("known");
        assert_eq!(p.chain_stall_on_shutdown_ms, Some(9));
        let p = FailPoints::parse("store-probe-stall-ms=60000").expect("known");
        assert_eq!(p.store_probe_stall_ms, Some(60_000));
        let e = FailPoints::parse("chain-panic-after-ms=soon").expect_err("bad value");
        assert!(e.to_string().contains("soon"), "{e}");
        let e = FailPoints::parse("disk-full").expect_err("unknown");
        assert!(e.to_string().contains("disk-full"), "{e}");
    }

    #[test]
    fn target_suits_the_hash_rate() {
        let t = target_for_hashrate(500_000, 2000);
        // Work = 1,000,000 hashes per block.
        let work = t.work().low_u64();
        assert!((999_000..=1_001_000).contains(&work), "work {work}");
    }
}
