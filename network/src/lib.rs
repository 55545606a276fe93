//! # peerchain-network
//!
//! The peer-to-peer layer of peerchain: libp2p gossip of blocks and transactions, block sync,
//! peer discovery and peer protection. The wire protocols, topics, limits and penalties are
//! specified in `docs/NETWORK.md`.
//!
//! It owns: every libp2p type (swarm, transport, behaviours, peer ids, multiaddrs, message
//! ids), the node key (in the data directory, or a seed the operator gives: `identity.rs`), the sync protocol and its codec, and all peer
//! bookkeeping (status, scores, penalties, bans, redials). One service task owns the swarm;
//! the rest of the node talks to it through a cloneable [`NetworkHandle`] (commands over a
//! bounded channel, replies over oneshot) and receives [`NetworkEvent`]s from a bounded
//! channel. Sync requests from peers are served from the [`StoreReader`] read API on the blocking
//! pool.
//!
//! It must never: leak a libp2p type through its public API (peers are base58 strings,
//! addresses are text, gossip messages are opaque [`MessageRef`]s); write to the store or
//! touch sled in any way other than the store's read API (the chain service is the only
//! writer); judge consensus validity (it only checks what is cheap and certain: decoding,
//! Merkle roots, header linkage and proof of work against the header's own target, and leaves
//! the rest to the node's verdicts); run CPU-heavy work on the service task; or keep an
//! unbounded queue.
//!
//! Start it with [`start`].
//!
//! Code map (the service routes; the parts below it hold the state and the policies, take the
//! clock as an argument, and are unit-tested without a network):
//!
//! - `service.rs` (+ `service/sync_protocol.rs`): the task that owns the swarm; routes swarm
//!   events, commands and blocking-job results to the parts and applies their decisions.
//! - `peers.rs`: the peer book: connected peers, status handshakes, request budgets,
//!   misbehaviour points, bans (of peer ids and the addresses they cover) and operator
//!   blocks, per-IP inbound limits, bootnode redials.
//! - `sync_round.rs`: the header-first sync round as a state machine, and the download buffer.
//! - `requests.rs`: outstanding sync requests and what each answer or failure means.
//! - `serving.rs`: the responder side: the queue of inbound sync requests and the byte budget
//!   of responses in flight, per peer and in total.
//! - `adversary.rs`: deliberately dishonest modes (`NetworkConfig::adversary`), for testing
//!   the defences; the only code that misbehaves on purpose.
//! - `gossip.rs`: gossip dispatch, the event queue in three bounded lanes (control, blocks,
//!   transactions), transactions kept for republishing.
//! - `link_faults.rs`: operator-set link faults (loss, delay, bandwidth) on what this node
//!   receives from chosen peers, for testing on one machine (glue in
//!   `service/link_shaping.rs`).
//! - `tx_budget.rs`: how many gossiped transactions each peer may relay, by its score.
//! - `timers.rs`: which periodic duties are due.
//! - `sync.rs` (store-side helpers), `codec.rs`, `behaviour.rs`, `handle.rs`, `identity.rs`,
//!   `config.rs` (every bound), `error.rs`, `types.rs`.
//! - `fuzzing` (at the end of this file, feature `fuzzing`): the entry points of the fuzz
//!   targets in `fuzz/` (docs/FUZZING.md).

mod address_book;
mod adversary;
mod behaviour;
mod codec;
mod config;
mod error;
mod gossip;
mod handle;
mod identity;
mod link_faults;
mod peers;
mod requests;
mod service;
mod serving;
mod sync;
mod sync_round;
mod timers;
mod tx_budget;
mod types;

use std::collections::HashMap;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, Swarm, SwarmBuilder, noise, tcp, yamux};
use peerchain_ledger::StoreReader;
use tokio::sync::mpsc;

pub use adversary::{Adversary, MAX_SYBIL_IDENTITIES};
pub use config::{
    MAX_INBOUND_PER_IP, MAX_INBOUND_PER_LOOPBACK, MAX_KNOWN_PEERS, MAX_LINK_DELAY_MS,
    MAX_LINK_FAULTS, MAX_TX_BATCH, MAX_TXS_PER_REQUEST, NetworkConfig,
};
pub use error::NetworkError;
pub use handle::NetworkHandle;
pub use identity::NodeKeySeed;
pub use link_faults::{LinkFault, PeerLinkFault};
#[cfg(feature = "test-hooks")]
pub use types::RawTopic;
pub use types::{
    Acceptance, BannedPeer, BlockOrigin, CompactBlock, LocalTip, MessageRef, NetworkEvent,
    PeerSummary,
};

use crate::behaviour::{Behaviour, Names};
use crate::config::{COMMAND_CHANNEL, EVENT_CHANNEL, IDLE_CONNECTION_TIMEOUT};
use crate::peers::peer_of;
use crate::service::Service;

fn parse_addr(text: &str) -> Result<Multiaddr, NetworkError> {
    text.parse()
        .map_err(|e: libp2p::multiaddr::Error| NetworkError::BadAddress {
            addr: text.to_owned(),
            detail: e.to_string(),
        })
}

/// What [`NetworkError::Setup`] names when the system's DNS resolver cannot be set up.
const DNS_SETUP: &str = "DNS resolver";

/// Whether dialling `addr` needs a name resolved (`/dns4`, `/dns6`, `/dns`, `/dnsaddr`).
fn needs_dns(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(
            p,
            Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_)
        )
    })
}

/// The swarm: TCP with Noise and Yamux, and with `dns` a resolver (the system's
/// configuration, /etc/resolv.conf and /etc/hosts) in front of it, so `/dns4`, `/dns6` and
/// `/dns` multiaddrs are resolved when dialled: on every dial and every redial, never once
/// for good (answers are cached no longer than their TTL).
fn build_swarm(
    key: Keypair,
    config: &NetworkConfig,
    names: &Names,
    dns: bool,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let behaviour = behaviour::build(&key, config, names)?;
    let transport_err = |e: &dyn std::fmt::Display| NetworkError::Setup {
        what: "transport",
        detail: e.to_string(),
    };
    let behaviour_err = |e: &dyn std::fmt::Debug| NetworkError::Setup {
        what: "behaviour",
        detail: format!("{e:?}"),
    };
    let tcp = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport_err(&e))?;
    let swarm_config =
        |c: libp2p::swarm::Config| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT);
    Ok(if dns {
        tcp.with_dns()
            .map_err(|e| NetworkError::Setup {
                what: DNS_SETUP,
                detail: e.to_string(),
            })?
            .with_behaviour(|_| behaviour)
            .map_err(|e| behaviour_err(&e))?
            .with_swarm_config(swarm_config)
            .build()
    } else {
        tcp.with_behaviour(|_| behaviour)
            .map_err(|e| behaviour_err(&e))?
            .with_swarm_config(swarm_config)
            .build()
    })
}

/// Starts the network service: loads (or creates) the node key, listens, dials the bootnodes
/// and spawns the service task on the current tokio runtime. Returns the handle and the
/// event stream. `store` must belong to `config.genesis_hash`'s network.
pub async fn start(
    config: NetworkConfig,
    store: StoreReader,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    if store.genesis_hash() != config.genesis_hash {
        return Err(NetworkError::Setup {
            what: "store",
            detail: format!(
                "the store belongs to genesis {} but the network is configured for {}",
                store.genesis_hash(),
                config.genesis_hash
            ),
        });
    }
    let key = identity::node_key(&config.data_dir, config.node_key.as_ref())?;
    let local_peer_id = key.public().to_peer_id();
    let names = Names::new(&config)?;

    let listen = config
        .listen
        .iter()
        .map(|a| parse_addr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bootnodes = HashMap::new();
    for text in &config.bootnodes {
        let addr = parse_addr(text)?;
        let peer = peer_of(&addr)
            .ok_or_else(|| NetworkError::BootnodeWithoutPeerId { addr: text.clone() })?;
        if peer != local_peer_id {
            bootnodes.insert(peer, addr);
        }
    }

    let mut swarm = match build_swarm(key.clone(), &config, &names, true) {
        Ok(swarm) => swarm,
        Err(NetworkError::Setup {
            what: DNS_SETUP,
            detail,
        }) => {
            // Without a readable /etc/resolv.conf the node still runs on IP multiaddrs; only a
            // DNS bootnode makes it a startup error.
            if let Some(addr) = bootnodes.values().find(|a| needs_dns(a)) {
                return Err(NetworkError::Setup {
                    what: DNS_SETUP,
                    detail: format!(
                        "bootnode {addr} has a DNS name, but the system resolver configuration \
                         (/etc/resolv.conf) cannot be read: {detail}"
                    ),
                });
            }
            tracing::warn!(error = %detail, "cannot read the system resolver configuration (/etc/resolv.conf): /dns4, /dns6 and /dns multiaddrs cannot be dialled");
            build_swarm(key, &config, &names, false)?
        }
        Err(e) => return Err(e),
    };

    for addr in listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.to_string(),
                detail: error::with_sources(&e),
            })?;
    }

    let known = service::known_peers::load(&config.data_dir, local_peer_id, config.max_known_peers);
    let tip = store.tip_record()?;
    let local_tip = LocalTip {
        hash: tip.header.hash(),
        height: tip.header.height,
        total_work: tip.total_work,
    };
    let (command_tx, command_rx) = mpsc::channel(COMMAND_CHANNEL);
    let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL);
    tracing::info!(peer_id = %local_peer_id, height = local_tip.height, "network starting");
    let mut service = Service::new(
        swarm, config, names, store, command_rx, event_tx, local_tip, bootnodes, known,
    );
    service.dial_bootnodes();
    tokio::spawn(service.run());
    Ok((
        NetworkHandle {
            commands: command_tx,
            local_peer_id: local_peer_id.to_string(),
        },
        event_rx,
    ))
}

/// Entry points of the fuzz targets in `fuzz/` (feature `fuzzing`, off by default; the node
/// never enables it): the decoders a peer reaches, driven as the service and the sync codec
/// drive them. Not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use futures::executor::block_on;
    use libp2p::StreamProtocol;
    use libp2p::request_response::Codec as _;
    use peerchain_ledger::{Block, Hash, U256};

    use crate::codec::{self, Refusal, Status, SyncCodec, SyncRequest, SyncResponse};
    use crate::config::NetworkConfig;

    /// Size limit of one sync request.
    pub const SYNC_REQUEST_LIMIT: usize = crate::config::SYNC_REQUEST_LIMIT;

    /// Size limit of one sync response on a network with this `max_block_txs`.
    pub fn sync_response_limit(max_block_txs: usize) -> usize {
        NetworkConfig::new("", Hash::ZERO, max_block_txs).sync_response_limit()
    }

    /// Most transactions in one message of the transaction topic.
    pub const MAX_TX_BATCH: usize = crate::config::MAX_TX_BATCH;

    /// A message of the transaction topic as the service decodes it: a batch of 1 to
    /// [`MAX_TX_BATCH`] transactions.
    pub fn decode_gossip_txs(bytes: &[u8]) -> Result<Vec<peerchain_ledger::Transaction>, String> {
        codec::decode_tx_batch(bytes)
    }

    /// A gossip block as the service decodes it: a compact block (header and txids) and the
    /// Merkle root check.
    pub fn decode_gossip_block(
        bytes: &[u8],
        max_block_txs: usize,
    ) -> Result<crate::CompactBlock, String> {
        codec::decode_compact_block(bytes, max_block_txs)
    }

    /// The honest sync codec of a network with this `max_block_txs` (as `behaviour.rs` builds it).
    fn sync_codec(max_block_txs: usize) -> SyncCodec {
        SyncCodec {
            max_block_txs,
            response_limit: sync_response_limit(max_block_txs),
            stall_block_reads: None,
        }
    }

    /// Reads one inbound sync request from a stream holding `bytes` through the codec (size
    /// limit, then decoding). Returns the request encoded again, or why it was refused.
    pub fn read_sync_request(bytes: &[u8], max_block_txs: usize) -> Result<Vec<u8>, String> {
        let protocol = StreamProtocol::new("/peerchain/fuzz/sync");
        let mut io = futures::io::Cursor::new(bytes);
        block_on(sync_codec(max_block_txs).read_request(&protocol, &mut io))
            .map(|req| codec::encode_request(&req))
            .map_err(|e| e.to_string())
    }

    /// Reads one sync response from a stream holding `bytes` through the codec (size limit,
    /// decoding, Merkle roots). Returns the response encoded again, or why it is refused
    /// (an I/O error, or the reason of a `Malformed` response).
    pub fn read_sync_response(bytes: &[u8], max_block_txs: usize) -> Result<Vec<u8>, String> {
        let protocol = StreamProtocol::new("/peerchain/fuzz/sync");
        let mut io = futures::io::Cursor::new(bytes);
        match block_on(sync_codec(max_block_txs).read_response(&protocol, &mut io)) {
            Ok(SyncResponse::Malformed(reason)) => Err(reason),
            Ok(resp) => Ok(codec::encode_response(&resp)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sync requests of every kind about a chain from `genesis` to `blocks`, encoded (seed
    /// corpus of the fuzz targets).
    pub fn example_sync_requests(genesis: Hash, blocks: &[Block]) -> Vec<Vec<u8>> {
        let hashes: Vec<Hash> = blocks.iter().map(Block::hash).collect();
        let tip = hashes.last().copied().unwrap_or(genesis);
        [
            SyncRequest::Status(example_status(genesis, blocks)),
            SyncRequest::GetHeaders {
                locator: vec![tip, genesis],
                max: 512,
            },
            SyncRequest::GetBlocks(hashes),
            SyncRequest::GetBlockTxs {
                block: tip,
                indexes: vec![0, 2, 3],
            },
        ]
        .iter()
        .map(codec::encode_request)
        .collect()
    }

    /// Sync responses of every kind about a chain from `genesis` to `blocks`, encoded (seed
    /// corpus of the fuzz targets).
    pub fn example_sync_responses(genesis: Hash, blocks: &[Block]) -> Vec<Vec<u8>> {
        [
            SyncResponse::Status(example_status(genesis, blocks)),
            SyncResponse::Headers(blocks.iter().map(|b| b.header.clone()).collect()),
            SyncResponse::Blocks(blocks.to_vec()),
            SyncResponse::BlockTxs(
                blocks
                    .iter()
                    .flat_map(|b| b.transactions.iter().take(2).cloned())
                    .collect(),
            ),
            SyncResponse::Refused(Refusal::Busy),
        ]
        .iter()
        .map(codec::encode_response)
        .collect()
    }

    fn example_status(genesis: Hash, blocks: &[Block]) -> Status {
        Status {
            genesis,
            tip: blocks.last().map_or(genesis, Block::hash),
            height: blocks.last().map_or(0, |b| b.header.height),
            total_work: blocks.iter().fold(U256::zero(), |w, b| {
                w.saturating_add(b.header.target.work())
            }),
        }
    }
}

/// Helpers shared by the unit tests of the parts.
#[cfg(test)]
mod test_support {
    use libp2p::PeerId;
    use libp2p::identity::Keypair;

    /// A fixed peer id for `n`.
    pub(crate) fn peer(n: u8) -> PeerId {
        Keypair::ed25519_from_bytes([n; 32])
            .expect("valid key")
            .public()
            .to_peer_id()
    }
}
