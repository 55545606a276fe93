//! Command-line interface: every subcommand and flag, with help text.

#![allow(
    rustdoc::invalid_html_tags,
    reason = "these doc comments are clap help text, where <data-dir> is a placeholder"
)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// peerchain: a proof-of-work peer-to-peer ledger node and its tools.
#[derive(Debug, Parser)]
#[command(name = "peerchain", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node (see `peerchain node --help` for flags and their precedence).
    Node(Box<NodeArgs>),
    /// Create a new key file (mode 0600) and print its address.
    Keygen(KeygenArgs),
    /// Print the address of a key file.
    Address(AddressArgs),
    /// Print the peer id of a node key before any node runs: of a key file (--file), or of
    /// the keys --node-key-seed derives for ordinals N.. (--seed, --ordinal, --count), so
    /// bootnode addresses can be written down in advance.
    NodeKey(NodeKeyArgs),
    /// Print dev account I's address and secret seed (public test keys, SPEC section 1), and
    /// write its key file with --out.
    DevKey(DevKeyArgs),
    /// Sign and send transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Create genesis files.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// Print a node's status.
    Status(StatusArgs),
    /// Call a node's admin API (token from --token or <data-dir>/admin.token).
    Admin(AdminArgs),
    /// Submit signed transfers between dev accounts at a steady rate, then report how many
    /// were sent, accepted and confirmed.
    Load(LoadArgs),
    /// Run testnet experiments described in a file: nodes, load, faults on a timeline and
    /// assertions (docs/SCENARIOS.md).
    #[command(subcommand)]
    Scenario(ScenarioCommand),
}

/// `peerchain scenario ...`.
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Start the scenario's nodes, drive its load and timeline, check its assertions and write
    /// report.json and report.html. Exit status: 0 every assertion passed, 1 one failed (each
    /// is named on stderr) or a step could not be carried out, 2 the scenario could not run,
    /// 130 interrupted. Every node it started is stopped on the way out.
    Run(ScenarioRunArgs),
}

/// Flags of `peerchain scenario run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: peerchain scenario run scenarios/partition-heal.toml --out /tmp/ph"
)]
pub struct ScenarioRunArgs {
    /// The scenario file (TOML; every field in docs/SCENARIOS.md).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output directory: node data, logs, report.json, report.html; must be new or empty
    /// [default: scenario-runs/<name>-<unix time>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the load's choices (recipients, amounts), the timeline's draws (the times of
    /// steps with `jitter_s`, the node of `kill`/`stop`/`start = "any"`) and each node's
    /// --fault-seed [default: the file's `seed`, else a random one, written in the report].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Multiply every time of the timeline by F (step times and their jitter, durations,
    /// delayed starts; not the block time, the load's rate or the convergence window), 0.05
    /// to 20: e.g. 0.5 for a short form of an example, 3 for a long one.
    #[arg(long, value_name = "F", default_value_t = 1.0)]
    pub scale: f64,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `peerchain node`.
///
/// Precedence, highest first: command-line flags, then `PEERCHAIN_*` environment variables,
/// then the TOML file given with `--config` (keys named like the long flags, with `_` for
/// `-`), then built-in defaults.
#[derive(Debug, Args, Default)]
#[command(
    after_help = "Precedence: flags > PEERCHAIN_* environment variables > --config TOML file > defaults.\n\
Example: peerchain node --genesis genesis.json --data-dir ./data --mine --miner-address <addr>"
)]
pub struct NodeArgs {
    /// TOML config file with any of the flags below (e.g. `rpc_listen = "127.0.0.1:8710"`).
    #[arg(long, env = "PEERCHAIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Genesis file of the network to join [default: ./genesis.json; with --dev: the built-in
    /// dev genesis].
    #[arg(long, env = "PEERCHAIN_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// Data directory (chain store, node key, admin token) [default: ./peerchain-data].
    #[arg(long, env = "PEERCHAIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// P2P listen multiaddr [default: /ip4/127.0.0.1/tcp/7710].
    #[arg(long, env = "PEERCHAIN_P2P_LISTEN")]
    pub p2p_listen: Option<String>,
    /// HTTP API listen address [default: 127.0.0.1:8710].
    #[arg(long, env = "PEERCHAIN_RPC_LISTEN")]
    pub rpc_listen: Option<String>,
    /// Bootnode multiaddr with /p2p/<peer id>; repeat for several (or separate by commas).
    /// /ip4, /ip6, or a DNS name: /dns4/peerchain-0.peerchain/tcp/7710/p2p/<peer id> (also
    /// /dns6, /dns), resolved through the system resolver (/etc/resolv.conf, /etc/hosts) on
    /// every dial and redial.
    #[arg(long = "bootnode", env = "PEERCHAIN_BOOTNODES", value_delimiter = ',')]
    pub bootnodes: Vec<String>,
    /// Mine continuously.
    #[arg(long, env = "PEERCHAIN_MINE")]
    pub mine: bool,
    /// Address credited with mining rewards.
    #[arg(long, env = "PEERCHAIN_MINER_ADDRESS")]
    pub miner_address: Option<String>,
    /// Key file whose address is credited with mining rewards (instead of --miner-address).
    #[arg(long, env = "PEERCHAIN_MINER_KEY")]
    pub miner_key: Option<PathBuf>,
    /// Mining threads [default: 1].
    #[arg(long, env = "PEERCHAIN_MINE_THREADS")]
    pub mine_threads: Option<usize>,
    /// Hash-rate cap in hashes per second for the whole node; 0 for none [default: 200000].
    #[arg(long, env = "PEERCHAIN_MINE_HASHRATE")]
    pub mine_hashrate: Option<u64>,
    /// Admin bearer token [default: read or create <data-dir>/admin.token].
    #[arg(long, env = "PEERCHAIN_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File holding the admin bearer token, e.g. a mounted Kubernetes Secret or Docker secret
    /// (whitespace around it is trimmed; an empty or unreadable file stops the node). Instead
    /// of --admin-token; <data-dir>/admin.token is then neither read nor created.
    #[arg(
        long,
        env = "PEERCHAIN_ADMIN_TOKEN_FILE",
        value_name = "PATH",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<PathBuf>,
    /// The node's P2P key from a file: 64 hex digits of an Ed25519 secret seed (e.g. from
    /// `openssl rand -hex 32`; whitespace trimmed), so its peer id is known before it starts
    /// (`peerchain node-key --file PATH` prints it). Replaces <data-dir>/node.key, which is then
    /// neither read nor written.
    #[arg(
        long,
        env = "PEERCHAIN_NODE_KEY_FILE",
        value_name = "PATH",
        conflicts_with = "node_key_seed"
    )]
    pub node_key_file: Option<PathBuf>,
    /// TESTNETS ONLY: derive the node's P2P key from this shared secret and the node's ordinal
    /// (--node-ordinal, else the host name's trailing -N: Kubernetes StatefulSet pod
    /// peerchain-3 is ordinal 3), so every node's peer id can be written down in advance
    /// (`peerchain node-key --seed SECRET --ordinal 0 --count N`). Anyone who knows the secret
    /// can impersonate every node. Replaces <data-dir>/node.key, which is then neither read nor
    /// written.
    #[arg(
        long,
        env = "PEERCHAIN_NODE_KEY_SEED",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub node_key_seed: Option<String>,
    /// The ordinal of this node for --node-key-seed (0, 1, ...) [default: the trailing -N of
    /// the host name, from HOSTNAME or else /proc/sys/kernel/hostname].
    #[arg(long, env = "PEERCHAIN_NODE_ORDINAL", value_name = "N")]
    pub node_ordinal: Option<u32>,
    /// sled page cache in MiB [default: 64].
    #[arg(long, env = "PEERCHAIN_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// Free space to keep on the data directory's disk, in MiB [default: 64]. Below it the
    /// node stops accepting transactions and blocks (HTTP 503 `disk_full`) and keeps serving
    /// reads; it resumes by itself once twice as much is free.
    #[arg(long, env = "PEERCHAIN_DISK_RESERVE_MB", value_name = "MIB")]
    pub disk_reserve_mb: Option<u64>,
    /// Log format on stderr [default: text]; json writes one JSON object per line. RUST_LOG
    /// sets the filter.
    #[arg(long, env = "PEERCHAIN_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Discover peers on the LAN with mDNS (useless on loopback).
    #[arg(long, env = "PEERCHAIN_MDNS")]
    pub mdns: bool,
    /// Development mode: the built-in dev genesis (chain id 7711, --accounts dev accounts with
    /// --balance each), or the network of --genesis when one is given; a temporary data
    /// directory unless --data-dir is given; and instant or interval mining (--block-time).
    #[arg(long)]
    pub dev: bool,
    /// Dev mode: how many dev accounts the built-in dev genesis prefunds (dev account i's key:
    /// `peerchain dev-key <i>`) [default: 10]. At most 100000: each is derived and written to
    /// the store when the node starts. Not with --genesis (fund accounts in that file).
    #[arg(long, value_name = "N", requires = "dev", value_parser = crate::dev::parse_accounts)]
    pub accounts: Option<u32>,
    /// Dev mode: the balance of each dev account, in whole units [default: 1000000000000]. All
    /// balances plus the block rewards must stay below 2^53 units. Not with --genesis.
    #[arg(long, value_name = "UNITS", requires = "dev")]
    pub balance: Option<u64>,
    /// JSON file listing testnet node URLs, served to the explorer's testnet view
    /// (`scripts/testnet.sh` writes one).
    #[arg(long, env = "PEERCHAIN_EXPLORER_NODES")]
    pub explorer_nodes: Option<PathBuf>,
    /// Dev mode block interval in ms; 0 mines a block as soon as a transaction arrives
    /// [default: 0].
    #[arg(long, value_name = "MS", requires = "dev")]
    pub block_time: Option<u64>,
    /// TEST ONLY: shift this node's clock by this many milliseconds (negative: behind), to
    /// test clock skew. Its blocks carry the shifted time; blocks of others are judged by it.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    pub clock_offset_ms: i64,
    /// TEST ONLY: seed of the node's deliberate random draws, so a test can repeat them: which
    /// messages a lossy link drops (`POST /v1/admin/peers/{peer_id}/link`) and the identities
    /// of `--adversary sybil:N` [default: random at each start]. `peerchain scenario run` sets
    /// one per node and start.
    #[arg(long, value_name = "N")]
    pub fault_seed: Option<u64>,
    /// Let this node attack its peers on purpose (for testing defences): allows --adversary and
    /// `POST /v1/admin/adversary`. Never use it on a network you care about.
    #[arg(long)]
    pub allow_adversary: bool,
    /// Start in an adversary mode (needs --allow-adversary). invalid-blocks: gossips blocks
    /// breaking each consensus rule in turn; tx-flood: unfunded and nonce-gap transactions;
    /// cheap-fork: a lighter side branch from an old block; double-spend: one spend kept, a
    /// conflicting one gossiped; stall-sync / stall-silent: claims huge work, then answers
    /// sync with known headers / never; slow-reader: requests big blocks, never reads them;
    /// sybil:N: N extra identities from this address. See docs/SECURITY.md.
    #[arg(long, value_name = "MODE")]
    pub adversary: Option<crate::adversary::AdversaryMode>,
}

/// Flags of `peerchain node-key`.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("key").required(true).args(["seed", "file"])),
    after_help = "Examples:\n  peerchain node-key --seed \"$SECRET\" --ordinal 0 --count 4   # peer ids of nodes 0-3, one per line\n  peerchain node-key --file node0.hex"
)]
pub struct NodeKeyArgs {
    /// The testnet's shared secret, as given to `peerchain node --node-key-seed` (testnets
    /// only).
    #[arg(long, value_name = "SECRET", requires = "ordinal")]
    pub seed: Option<String>,
    /// The first ordinal (as `peerchain node --node-ordinal`, or the host name's -N).
    #[arg(long, value_name = "N", requires = "seed")]
    pub ordinal: Option<u32>,
    /// How many consecutive ordinals, from --ordinal: one peer id per line, in ordinal order
    /// (at most 10000).
    #[arg(long, value_name = "C", default_value_t = 1, requires = "seed")]
    pub count: u32,
    /// A node key file (64 hex digits of an Ed25519 secret seed, as for
    /// `peerchain node --node-key-file`).
    #[arg(long, value_name = "PATH", conflicts_with = "seed")]
    pub file: Option<PathBuf>,
}

/// Flags of `peerchain keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `peerchain address`.
#[derive(Debug, Args)]
pub struct AddressArgs {
    /// Key file (64 hex digits of the secret seed).
    #[arg(long)]
    pub key: PathBuf,
}

/// Flags of `peerchain dev-key`.
#[derive(Debug, Args)]
pub struct DevKeyArgs {
    /// Index of the dev account (0, 1, 2, ...).
    #[arg(value_name = "I")]
    pub index: u32,
    /// Also write the key file here (mode 0600; refuses to overwrite), e.g. for `tx send --key`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `peerchain tx ...`.
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Sign a transfer and submit it to a node.
    Send(TxSendArgs),
    /// Sign a transfer and print its JSON without sending it.
    Sign(TxSignArgs),
}

/// The transfer itself.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Sender's key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Recipient address (40 hex digits).
    #[arg(long)]
    pub to: String,
    /// Amount in whole units.
    #[arg(long)]
    pub amount: u64,
    /// Fee in whole units.
    #[arg(long, default_value_t = 1)]
    pub fee: u64,
    /// Nonce; fetched from the node (counting pending transactions) when omitted.
    #[arg(long)]
    pub nonce: Option<u64>,
}

/// Flags of `peerchain tx send`.
#[derive(Debug, Args)]
pub struct TxSendArgs {
    /// The transfer.
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Node HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8710")]
    pub rpc: String,
    /// Wait until the transaction is confirmed.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Flags of `peerchain tx sign`.
#[derive(Debug, Args)]
pub struct TxSignArgs {
    /// The transfer.
    #[command(flatten)]
    pub transfer: TransferArgs,
    /// Chain id; read from the node given with --rpc when omitted.
    #[arg(long)]
    pub chain_id: Option<u64>,
    /// Node HTTP API (for the chain id and nonce when not given).
    #[arg(long, default_value = "http://127.0.0.1:8710")]
    pub rpc: String,
}

/// `peerchain genesis ...`.
#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Write a new genesis file: prefunded dev accounts, and every genesis field (SPEC section
    /// 4) settable; prints the genesis hash.
    New(Box<GenesisNewArgs>),
}

/// Flags of `peerchain genesis new`: one per genesis field (named like it). The defaults are
/// those of the example in SPEC section 4, except the initial target, derived from --hashrate.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: peerchain genesis new --dev-accounts 4 --balance 1000000 --block-time 1000 \\\n  --alloc <address>=5000 --min-fee 2 --out genesis.json"
)]
pub struct GenesisNewArgs {
    /// Number of dev accounts 0..N-1 to prefund (keys: `peerchain dev-key <i>`); at most
    /// 100000.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = crate::dev::parse_accounts)]
    pub dev_accounts: u32,
    /// Balance of each dev account, in whole units.
    #[arg(long, value_name = "UNITS", default_value_t = 1_000_000_000_000)]
    pub balance: u64,
    /// Another prefunded account, as ADDRESS=UNITS (40 hex digits, whole units); repeatable.
    #[arg(long = "alloc", value_name = "ADDRESS=UNITS", value_parser = crate::genesis_new::parse_alloc)]
    pub allocs: Vec<peerchain_ledger::genesis::Allocation>,
    /// `chain_id`: the network's id, signed into every transaction (replay protection).
    #[arg(long, value_name = "ID", default_value_t = 7710)]
    pub chain_id: u64,
    /// `timestamp_ms`: time of the genesis header, in ms since the Unix epoch (the default is
    /// 2026-01-01T00:00:00Z).
    #[arg(long, value_name = "MS", default_value_t = 1_767_225_600_000)]
    pub timestamp_ms: u64,
    /// `target_block_time_ms`: intended time between blocks, in ms (at least 1).
    #[arg(
        long,
        visible_alias = "target-block-time-ms",
        value_name = "MS",
        default_value_t = 2000
    )]
    pub block_time: u64,
    /// `difficulty_half_life_ms`: ASERT half-life in ms, at least the block time: the
    /// difficulty halves or doubles when blocks run this far behind or ahead of schedule
    /// [default: 60000, or the block time if longer].
    #[arg(long, value_name = "MS")]
    pub difficulty_half_life_ms: Option<u64>,
    /// Expected hash rate of the whole network in hashes per second; sets `initial_target` so
    /// the first blocks arrive about every block time (capped at --pow-limit).
    #[arg(long, value_name = "H/S", default_value_t = 400_000)]
    pub hashrate: u64,
    /// `initial_target`: target of block 1, 64 hex digits (a big-endian 256-bit number; a
    /// block's hash must be at most it), instead of deriving it from --hashrate.
    #[arg(long, value_name = "HEX", conflicts_with = "hashrate")]
    pub initial_target: Option<peerchain_ledger::Target>,
    /// `pow_limit`: easiest target difficulty adjustment may reach, 64 hex digits
    /// [default: 0fff...f, 2^252 - 1].
    #[arg(long, value_name = "HEX")]
    pub pow_limit: Option<peerchain_ledger::Target>,
    /// `initial_reward`: block reward of the first halving era, in whole units.
    #[arg(long, value_name = "UNITS", default_value_t = 1_000_000_000)]
    pub initial_reward: u64,
    /// `halving_interval`: blocks per halving era, in blocks (at least 1).
    #[arg(long, value_name = "BLOCKS", default_value_t = 2_000_000)]
    pub halving_interval: u64,
    /// `min_fee`: smallest fee a transaction may pay, in whole units.
    #[arg(long, value_name = "UNITS", default_value_t = 1)]
    pub min_fee: u64,
    /// `max_block_txs`: most transactions in a block, a count (at least 1).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub max_block_txs: u64,
    /// `max_future_ms`: how far a block's timestamp may be ahead of a node's clock, in ms.
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    pub max_future_ms: u64,
    /// Output file (refuses to overwrite).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Flags of `peerchain status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Node HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8710")]
    pub rpc: String,
    /// `json` (everything) or `line` (height, tip, peers, mempool on one line).
    #[arg(long, default_value = "json")]
    pub format: StatusFormat,
}

/// Output of `peerchain status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Pretty JSON.
    Json,
    /// One line.
    Line,
}

/// Flags of `peerchain admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Node HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8710")]
    pub rpc: String,
    /// Admin token.
    #[arg(
        long,
        env = "PEERCHAIN_ADMIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// File holding the admin token (e.g. <data-dir>/admin.token).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The call.
    #[command(subcommand)]
    pub call: AdminCall,
}

/// Admin calls.
#[derive(Debug, Subcommand)]
pub enum AdminCall {
    /// Mine blocks now.
    Mine {
        /// How many.
        #[arg(default_value_t = 1)]
        blocks: u32,
    },
    /// Turn continuous mining on or off, and change the miner's hash-rate cap.
    Mining {
        /// `on` or `off`.
        state: OnOff,
        /// New cap on the node's hashes per second (0: no cap); without it the cap stays.
        #[arg(long, value_name = "HASHES_PER_S")]
        hashrate: Option<u64>,
    },
    /// Dial a peer multiaddr.
    Dial {
        /// Multiaddr with /p2p/<peer id>.
        addr: String,
    },
    /// Disconnect and refuse a peer.
    BlockPeer {
        /// Peer id.
        peer_id: String,
    },
    /// Allow a blocked peer again.
    UnblockPeer {
        /// Peer id.
        peer_id: String,
    },
    /// Fault the link from a peer to this node (testing on one machine): drop a fraction of
    /// its gossip, delay its messages, limit its bandwidth. All zero clears the fault; set it
    /// on both nodes to fault both directions.
    Link {
        /// Peer id.
        peer_id: String,
        /// Fraction of the peer's gossip messages dropped, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Added delay of every message, ms (at most 10,000).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Bandwidth of the link, kilobits per second (0: unlimited).
        #[arg(long, default_value_t = 0)]
        bandwidth_kbps: u64,
    },
    /// Treat a block and its descendants as invalid.
    Invalidate {
        /// Block hash.
        hash: String,
    },
    /// Undo invalidate.
    Reconsider {
        /// Block hash.
        hash: String,
    },
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Flags of `peerchain load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Node HTTP APIs; dev account i sends through node i modulo their count. Repeatable or
    /// comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8710")]
    pub rpc: Vec<String>,
    /// Transactions per second.
    #[arg(long, default_value_t = 10)]
    pub tps: u32,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Dev accounts to send between.
    #[arg(long, default_value_t = 10)]
    pub accounts: u32,
    /// Seconds to wait for confirmations after sending.
    #[arg(long, default_value_t = 30)]
    pub confirm_timeout: u64,
}
