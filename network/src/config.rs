//! Configuration of the network service and the limits derived from it.

use std::path::PathBuf;
use std::time::Duration;

use peerchain_ledger::Hash;
use peerchain_ledger::types::{HEADER_LEN, TX_ENCODED_LEN};

use crate::adversary::Adversary;
use crate::identity::NodeKeySeed;

/// Settings of the network service. [`NetworkConfig::new`] gives sane defaults; the node
/// overrides the fields it exposes as flags.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Directory of the node key (`node.key`, mode 0600): the peer id is stable across restarts.
    pub data_dir: PathBuf,
    /// The node key given by the operator (a key file or a derived seed), so the peer id is
    /// known before the node starts; `data_dir/node.key` is then neither read nor written.
    /// `None` (the default): `data_dir/node.key`, created when missing.
    pub node_key: Option<NodeKeySeed>,
    /// Multiaddrs to listen on, e.g. `/ip4/127.0.0.1/tcp/7710` (port 0 picks a free port).
    pub listen: Vec<String>,
    /// Multiaddrs with `/p2p/<peer id>`: dialled at start and redialled with backoff when they
    /// drop. `/dns4`, `/dns6` and `/dns` names are resolved on every dial.
    pub bootnodes: Vec<String>,
    /// The network's genesis hash; part of every protocol name and gossip topic.
    pub genesis_hash: Hash,
    /// The genesis `max_block_txs`; every message size limit is derived from it.
    pub max_block_txs: usize,
    /// Discover peers on the local network with mDNS (useless on loopback-only testnets).
    pub mdns: bool,
    /// Most connected peers (distinct peer ids).
    pub max_peers: u32,
    /// Gossipsub heartbeat in milliseconds (tests use ~100 ms).
    pub heartbeat_ms: u64,
    /// Most inbound peers admitted from one IP address (bootnodes excepted). Identities are
    /// free, addresses are not: this keeps one host from filling `max_peers`. Default
    /// [`MAX_INBOUND_PER_IP`].
    pub max_inbound_per_ip: u32,
    /// The same bound for loopback addresses (`127.0.0.0/8`, `::1`), where every node of a
    /// local testnet shares one address. Default [`MAX_INBOUND_PER_LOOPBACK`]: a local testnet
    /// of up to 33 nodes works, and sybils on loopback still get at most 32 of the 50 slots.
    pub max_inbound_per_loopback: u32,
    /// Whether a misbehaviour ban also covers a loopback address (`127.0.0.0/8`, `::1`). Off
    /// by default: on a local testnet every node shares 127.0.0.1, and covering it would
    /// refuse every honest local node after one local adversary is banned. Public addresses
    /// are always covered.
    pub ban_loopback_addresses: bool,
    /// Most peers remembered in the address book (`peers.txt` in `data_dir`): the peers of
    /// our network the node learned, dialled again after a restart even when every bootnode
    /// is down. Default [`MAX_KNOWN_PEERS`]; 0 remembers none.
    pub max_known_peers: usize,
    /// A deliberately dishonest behaviour, for testing the defences of honest nodes (see
    /// `adversary.rs`). `None` (the default) is an honest node; the node binary never sets it
    /// unless told to.
    pub adversary: Option<Adversary>,
    /// Seed of the node's deliberate randomness, so a test can repeat it: the loss draws of
    /// operator-set link faults (which messages a lossy link drops) and the `sybil:N`
    /// adversary's identities. `None` (the default): random.
    pub fault_seed: Option<u64>,
}

impl NetworkConfig {
    /// Defaults: listen on `/ip4/0.0.0.0/tcp/7710`, no bootnodes, no mDNS, 50 peers, 1 s heartbeat.
    pub fn new(data_dir: impl Into<PathBuf>, genesis_hash: Hash, max_block_txs: usize) -> Self {
        NetworkConfig {
            data_dir: data_dir.into(),
            node_key: None,
            listen: vec!["/ip4/0.0.0.0/tcp/7710".to_owned()],
            bootnodes: Vec::new(),
            genesis_hash,
            max_block_txs,
            mdns: false,
            max_peers: 50,
            heartbeat_ms: 1000,
            max_inbound_per_ip: MAX_INBOUND_PER_IP,
            max_inbound_per_loopback: MAX_INBOUND_PER_LOOPBACK,
            ban_loopback_addresses: false,
            max_known_peers: MAX_KNOWN_PEERS,
            adversary: None,
            fault_seed: None,
        }
    }

    /// The gossipsub heartbeat (at least 10 ms).
    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(10))
    }

    /// Largest encoded block: header, tx count and `max_block_txs` transactions.
    pub(crate) fn max_block_bytes(&self) -> usize {
        (HEADER_LEN + 4).saturating_add(TX_ENCODED_LEN.saturating_mul(self.max_block_txs))
    }

    /// Limit of one gossipsub message on the block topic (payload plus envelope headroom).
    pub(crate) fn block_topic_limit(&self) -> usize {
        self.max_block_bytes()
            .saturating_add(GOSSIP_ENVELOPE_HEADROOM)
    }

    /// Limit of one gossipsub RPC frame: two full blocks plus headroom, so that a frame never
    /// trips the limit while one legitimate block message sits in the read buffer.
    pub(crate) fn gossip_frame_limit(&self) -> usize {
        self.block_topic_limit()
            .saturating_mul(2)
            .saturating_add(64 * 1024)
    }

    /// Limit of one sync response: 8 MiB of blocks, or one maximal block if that is larger,
    /// plus framing.
    pub(crate) fn sync_response_limit(&self) -> usize {
        SYNC_RESPONSE_SOFT_BYTES
            .max(self.max_block_bytes())
            .saturating_add(64 * 1024)
    }

    /// `/peerchain/<genesis hex>`: the prefix of every protocol name and topic.
    pub(crate) fn protocol_prefix(&self) -> String {
        format!("/peerchain/{}", self.genesis_hash.to_hex())
    }
}

/// Envelope headroom of a gossip message on top of its payload (topic, protobuf tags).
pub(crate) const GOSSIP_ENVELOPE_HEADROOM: usize = 4 * 1024;
/// Most transactions in one message of the transaction topic (a batch).
pub const MAX_TX_BATCH: usize = 512;
/// Limit of one gossipsub message on the transaction topic: a full batch and headroom.
pub(crate) const TX_TOPIC_LIMIT: usize = MAX_TX_BATCH * TX_ENCODED_LEN + 1024;

/// Most peers with a link fault at once (`NetworkHandle::set_link_fault`).
pub const MAX_LINK_FAULTS: usize = 64;
/// Most messages held by link faults at once; more are dropped.
pub(crate) const MAX_LINK_HELD: usize = 4096;
/// Most bytes of messages held by link faults at once; more are dropped.
pub(crate) const MAX_LINK_HELD_BYTES: usize = 64 * 1024 * 1024;
/// The largest `delay_ms` of a link fault, ms: the longest a gossip message waits on a
/// faulted link (delay and bandwidth queue together; one that would wait longer is dropped).
pub const MAX_LINK_DELAY_MS: u64 = 10_000;
/// [`MAX_LINK_DELAY_MS`] as a duration.
pub(crate) const MAX_LINK_BACKLOG: Duration = Duration::from_millis(MAX_LINK_DELAY_MS);

/// Most hashes in a block locator or a block request.
pub(crate) const MAX_LOCATOR: usize = 64;
/// Most headers in one `Headers` response.
pub(crate) const MAX_HEADERS: usize = 512;
/// Most blocks asked for in one `GetBlocks` request.
pub(crate) const MAX_BLOCKS_PER_REQUEST: usize = 128;
/// Most transactions asked for in one `GetBlockTxs` request (the missing ones of a compact
/// block); a block missing more is fetched whole. 4 bytes an index keep the request within
/// the 8 KiB limit of a sync request.
pub const MAX_TXS_PER_REQUEST: usize = 2000;
/// A `Blocks` response stops adding blocks past this many bytes (it always carries one).
pub(crate) const SYNC_RESPONSE_SOFT_BYTES: usize = 8 * 1024 * 1024;
/// Limit of one sync request.
pub(crate) const SYNC_REQUEST_LIMIT: usize = 8192;
/// Timeout of one sync request, covering the whole exchange.
pub(crate) const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent sync streams (inbound and outbound) of one connection; beyond it libp2p drops
/// new inbound streams.
pub(crate) const SYNC_STREAMS_PER_CONNECTION: usize = 64;
/// Concurrent `GetBlocks` requests of one sync round.
pub(crate) const SYNC_INFLIGHT_REQUESTS: usize = 4;
/// Downloaded blocks held (in order or waiting for an earlier batch) before requests pause.
pub(crate) const SYNC_BUFFER_BLOCKS: usize = 512;
/// Bytes of downloaded blocks held before requests pause.
pub(crate) const SYNC_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// Sync blocks allowed to sit in the event channel at once (backpressure from the consumer).
pub(crate) const SYNC_BLOCKS_IN_CHANNEL: usize = 32;
/// A peer whose sync round failed is not used again for this long.
pub(crate) const SYNC_COOLDOWN: Duration = Duration::from_secs(30);
/// A peer whose sync round failed through no fault of its own (disconnect, refusal, ban) is
/// not used again for this long.
pub(crate) const SYNC_RETRY_COOLDOWN: Duration = Duration::from_secs(2);
/// How long delivered blocks may take to raise the local tip before another peer is tried.
pub(crate) const EXPECTED_WORK_GRACE: Duration = Duration::from_secs(10);
/// A sync round ends after this long whatever happens (Bitcoin Core's headers-sync timeout).
/// A round that delivered something ends without penalty and the next one continues from the
/// new tip; one that delivered nothing is the peer's fault.
pub(crate) const SYNC_ROUND_DEADLINE: Duration = Duration::from_secs(120);
/// A round must deliver new headers or blocks within this much time spent waiting on the
/// peer (time with a request in flight; time the round waits for buffer room or pacing does
/// not count). Block-download stalling detection: a peer that answers with nothing new, or
/// never answers, loses the round. Shorter than [`SYNC_REQUEST_TIMEOUT`], so a peer that never
/// answers is recognised as stalling before its request merely times out.
pub(crate) const SYNC_PROGRESS_TIMEOUT: Duration = Duration::from_secs(15);
/// A round with nothing in flight (waiting for room in the download buffer because the node
/// stopped importing) ends after this long, without penalty.
pub(crate) const SYNC_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Capacity of the public event channel.
pub(crate) const EVENT_CHANNEL: usize = 1024;
/// Capacity of the command channel of [`crate::NetworkHandle`].
pub(crate) const COMMAND_CHANNEL: usize = 1024;
/// Capacity of the internal channel from blocking jobs back to the service.
pub(crate) const INTERNAL_CHANNEL: usize = 256;
/// Gossip transactions (counted one by one, whatever their batches) queued while the event
/// channel is full; a batch that does not fit is ignored.
pub(crate) const MAX_QUEUED_TXS: usize = 16_384;
/// Gossip blocks queued (or being decoded) while the event channel is full; beyond this they
/// are ignored. Their own lane: a transaction flood never takes their room.
pub(crate) const MAX_QUEUED_BLOCKS: usize = 256;
/// Gossip transaction batches allowed to sit in the event channel at once, so a block or
/// control event delivered next waits behind at most this many.
pub(crate) const TXS_IN_CHANNEL: usize = 4;
/// Control events (peer connected or disconnected, syncing, listening) queued while the event
/// channel is full; beyond this new ones are dropped with a warning.
pub(crate) const MAX_QUEUED_CONTROL: usize = 4096;
/// Gossip blocks being decoded at once; beyond this they are ignored.
pub(crate) const MAX_DECODING: usize = 64;
/// Transactions kept for rebroadcast while no peer is subscribed.
pub(crate) const MAX_PENDING_TXS: usize = 10_000;
/// Sync requests served at once (store reads on the blocking pool).
pub(crate) const MAX_SERVING: usize = 16;
/// Bytes of sync responses one peer may have in flight (read from the store and not yet sent
/// or failed). Requests beyond it wait in the serving queue; an honest requester (at most
/// `SYNC_INFLIGHT_REQUESTS` block requests) is slowed, never refused.
pub(crate) const SERVE_PEER_BYTES: usize = 16 * 1024 * 1024;
/// Bytes of sync responses in flight to all peers together.
pub(crate) const SERVE_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// Requests of one peer waiting in the serving queue; beyond it they are refused (busy) and
/// the peer is penalised (an honest requester never has this many outstanding).
pub(crate) const SERVE_QUEUE_PER_PEER: usize = 16;
/// Requests of all peers waiting in the serving queue; beyond it they are refused (busy).
pub(crate) const SERVE_QUEUE_TOTAL: usize = 256;
/// A response handed to libp2p at least this long before its request timed out was not read
/// by the peer (not our slowness): the peer is penalised and disconnected.
pub(crate) const SLOW_READ_GRACE: Duration = Duration::from_secs(5);
/// Budget entries older than this are released whatever libp2p says (a safety net: every
/// request ends with a response sent or a failure within `SYNC_REQUEST_TIMEOUT`).
pub(crate) const SERVE_HOLD_MAX: Duration = Duration::from_secs(60);
/// Default of [`NetworkConfig::max_inbound_per_ip`].
pub const MAX_INBOUND_PER_IP: u32 = 8;
/// Default of [`NetworkConfig::max_inbound_per_loopback`].
pub const MAX_INBOUND_PER_LOOPBACK: u32 = 32;
/// Most addresses banned at once (the ban ending first is forgotten beyond this).
pub(crate) const MAX_ADDRESS_BANS: usize = 10_000;
/// Per-peer inbound request rate: sustained requests per second and burst.
pub(crate) const REQUEST_RATE_PER_SEC: f64 = 32.0;
/// Burst of the per-peer inbound request rate.
pub(crate) const REQUEST_BURST: f64 = 64.0;
/// Single-block ancestor fetches per peer before the budget must refill (one per second).
pub(crate) const ANCESTOR_BUDGET: f64 = 64.0;
/// Transactions per second a gossip peer with a gossipsub score of 0 (new, or never first to
/// deliver a valid message) may hand to the node; beyond it they are ignored (`tx_budget.rs`).
/// Its bucket holds one second's worth.
pub(crate) const TX_RATE_MIN_PER_SEC: f64 = 500.0;
/// Transactions per second a trusted gossip peer (score at least [`TX_TRUSTED_SCORE`]) may
/// hand to the node: above what one node confirms, so honest relays are never the limit.
pub(crate) const TX_RATE_MAX_PER_SEC: f64 = 20_000.0;
/// The gossipsub score at which a peer gets [`TX_RATE_MAX_PER_SEC`] (20 first deliveries of
/// valid messages, the cap of that score component).
pub(crate) const TX_TRUSTED_SCORE: f64 = 20.0;
/// Peers whose transaction budget is tracked (connected peers are far fewer).
pub(crate) const MAX_TX_BUDGETS: usize = 4096;
/// Ancestor hashes remembered as requested (not fetched again); the oldest are forgotten.
pub(crate) const RECENT_ANCESTORS: usize = 1024;

/// A peer must complete the status handshake within this time.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Status is re-exchanged with every peer this often.
pub(crate) const STATUS_REFRESH: Duration = Duration::from_secs(10);
/// Kademlia bootstrap interval.
pub(crate) const KAD_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(30);
/// Least time between two Kademlia bootstraps triggered by newly learned addresses.
pub(crate) const BOOTSTRAP_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Period of the slow housekeeping (ban expiry, handshake timeouts, status refresh).
pub(crate) const SLOW_TICK: Duration = Duration::from_secs(1);
/// Idle connections are closed after this long.
pub(crate) const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Ping interval and timeout (a failed ping closes the connection).
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Ping timeout.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// First redial delay of a dropped bootnode; doubles per failure up to [`REDIAL_MAX`].
pub(crate) const REDIAL_MIN: Duration = Duration::from_millis(500);
/// Longest redial delay.
pub(crate) const REDIAL_MAX: Duration = Duration::from_secs(60);
/// Longest wait between two dials of a known peer (`address_book.rs`) that keeps failing.
pub(crate) const KNOWN_PEER_REDIAL_MAX: Duration = Duration::from_secs(300);
/// Known peers are dialled while fewer than this many peers (or `max_peers`) are connected;
/// Kademlia finds the rest.
pub(crate) const KNOWN_PEERS_DIAL_TARGET: usize = 8;
/// Least time between two saves of the address book (`peers.txt`), which is saved only
/// when it changed (and at shutdown).
pub(crate) const PEERS_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default of [`NetworkConfig::max_known_peers`].
pub const MAX_KNOWN_PEERS: usize = 256;

/// Misbehaviour points at which a peer is banned.
pub(crate) const BAN_POINTS: f64 = 100.0;
/// Misbehaviour points forgiven per second (100 per hour).
pub(crate) const POINTS_DECAY_PER_SEC: f64 = 100.0 / 3600.0;
/// Ban duration for misbehaviour (penalties or gossip score).
pub(crate) const BAN_DURATION: Duration = Duration::from_secs(600);
/// Most bans remembered (the timed ban ending first is forgotten beyond this).
pub(crate) const MAX_BANS: usize = 10_000;
/// Most peers with misbehaviour points remembered (those with the fewest are forgotten).
pub(crate) const MAX_PENALISED_PEERS: usize = 10_000;
/// Most peers remembered as seen since start (connected or discovered), for operator blocks;
/// the oldest are forgotten beyond this.
pub(crate) const MAX_SEEN_PEERS: usize = 10_000;
/// A gossipsub score below this bans the peer.
pub(crate) const BAN_SCORE: f64 = -300.0;
/// How often gossipsub scores are polled.
pub(crate) const SCORE_POLL: Duration = Duration::from_secs(1);
/// Service housekeeping tick.
pub(crate) const TICK: Duration = Duration::from_millis(50);

/// Points of each kind of misbehaviour.
pub(crate) mod points {
    /// `NetworkHandle::penalize` (invalid block from sync, reported by the node): three in a
    /// short time ban the peer.
    pub(crate) const PENALIZE: f64 = 34.0;
    /// Invalid sync data: broken header linkage, bad proof of work, malformed response.
    pub(crate) const INVALID_SYNC_DATA: f64 = 50.0;
    /// Claimed more work than the chain it served.
    pub(crate) const LIED_ABOUT_WORK: f64 = 50.0;
    /// A sync request timed out or the peer did not serve blocks it announced.
    pub(crate) const STALLED: f64 = 20.0;
    /// An inbound request over the rate limit.
    pub(crate) const RATE_LIMITED: f64 = 2.0;
    /// A malformed request.
    pub(crate) const BAD_REQUEST: f64 = 20.0;
    /// A sync round made no progress: headers it already sent or we already hold with no
    /// more work, or nothing new within `SYNC_PROGRESS_TIMEOUT`.
    pub(crate) const NO_PROGRESS: f64 = 50.0;
    /// It did not read a sync response we sent it (it timed out in its stream).
    pub(crate) const SLOW_READER: f64 = 50.0;
    /// A sync request beyond its serving queue (it keeps asking while not reading).
    pub(crate) const OVER_BUDGET: f64 = 5.0;
}
