//! The libp2p behaviours of a node and their configuration.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libp2p::gossipsub::{
    self, IdentTopic, IdentityTransform, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, TopicScoreParams, ValidationMode, WhitelistSubscriptionFilter,
};
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, connection_limits, identify, kad, mdns,
    memory_connection_limits, ping, request_response,
};
use sha2::{Digest, Sha256};

use crate::codec::SyncCodec;
use crate::config::{
    NetworkConfig, PING_INTERVAL, PING_TIMEOUT, SYNC_REQUEST_TIMEOUT, SYNC_STREAMS_PER_CONNECTION,
    TX_TOPIC_LIMIT,
};
use crate::error::NetworkError;

/// Every behaviour of a node. The connection gatekeepers come first (rust-libp2p #4773: a
/// later behaviour denying a connection trips request-response).
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub memory: memory_connection_limits::Behaviour,
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub gossipsub: gossipsub::Behaviour<IdentityTransform, WhitelistSubscriptionFilter>,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Names of the protocols and topics of one network.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub blocks: IdentTopic,
    pub txs: IdentTopic,
    pub sync: StreamProtocol,
    pub kad: StreamProtocol,
    pub gossip_prefix: String,
    pub identify_version: String,
}

impl Names {
    pub(crate) fn new(config: &NetworkConfig) -> Result<Self, NetworkError> {
        let prefix = config.protocol_prefix();
        let protocol = |name: String| {
            StreamProtocol::try_from_owned(name.clone()).map_err(|e| NetworkError::Setup {
                what: "protocol name",
                detail: format!("{name}: {e}"),
            })
        };
        Ok(Names {
            blocks: IdentTopic::new(format!("{prefix}/blocks/2")),
            txs: IdentTopic::new(format!("{prefix}/txs/2")),
            sync: protocol(format!("{prefix}/sync/1"))?,
            kad: protocol(format!("{prefix}/kad/1"))?,
            gossip_prefix: format!("{prefix}/meshsub"),
            identify_version: format!("{prefix}/1"),
        })
    }
}

/// Content-addressed message id: the first 20 bytes of
/// `SHA-256(topic length u32 LE ‖ topic ‖ data)`.
pub(crate) fn message_id(message: &gossipsub::Message) -> MessageId {
    let topic = message.topic.as_str().as_bytes();
    let mut h = Sha256::new();
    h.update((topic.len() as u32).to_le_bytes());
    h.update(topic);
    h.update(&message.data);
    let digest = h.finalize();
    MessageId::from(&digest[..20])
}

/// Number of heartbeats a message stays in the cache: the window in which the node must
/// report its verdict. About 10 s whatever the heartbeat.
fn history_length(heartbeat: Duration) -> usize {
    let ms = heartbeat.as_millis().max(1);
    usize::try_from(10_000u128.div_ceil(ms))
        .unwrap_or(200)
        .clamp(5, 200)
}

fn setup(what: &'static str) -> impl FnOnce(String) -> NetworkError {
    move |detail| NetworkError::Setup { what, detail }
}

/// The gossipsub configuration: validation before forwarding, content ids, size limits.
fn gossipsub_config(
    config: &NetworkConfig,
    names: &Names,
) -> Result<gossipsub::Config, NetworkError> {
    let heartbeat = config.heartbeat();
    let mut b = gossipsub::ConfigBuilder::default();
    b.protocol_id_prefix(names.gossip_prefix.clone())
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(message_id)
        .heartbeat_interval(heartbeat)
        .heartbeat_initial_delay(heartbeat)
        .history_length(history_length(heartbeat))
        .history_gossip(3)
        .duplicate_cache_time(Duration::from_secs(120))
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .gossip_lazy(6)
        .flood_publish(true)
        .max_transmit_size(config.gossip_frame_limit())
        .max_transmit_size_for_topic(config.block_topic_limit(), names.blocks.hash())
        .max_transmit_size_for_topic(TX_TOPIC_LIMIT, names.txs.hash());
    b.build().map_err(|e| NetworkError::Setup {
        what: "gossipsub",
        detail: e.to_string(),
    })
}

/// Peer scoring: only invalid messages (P4) count against a peer; mesh delivery rates are off
/// (a quiet block topic must not look like a failing peer) and loopback colocation is allowed.
pub(crate) fn score_params(names: &Names) -> (PeerScoreParams, PeerScoreThresholds) {
    let topic = TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(600)),
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 100.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(5),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        invalid_message_deliveries_weight: -50.0,
        invalid_message_deliveries_decay: gossipsub::score_parameter_decay(Duration::from_secs(
            3600,
        )),
    };
    let mut params = PeerScoreParams {
        topic_score_cap: 50.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: -5.0,
        ip_colocation_factor_threshold: 10.0,
        ip_colocation_factor_whitelist: HashSet::from([
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]),
        behaviour_penalty_weight: -1.0,
        behaviour_penalty_threshold: 6.0,
        ..PeerScoreParams::default()
    };
    params.topics.insert(names.blocks.hash(), topic.clone());
    params.topics.insert(names.txs.hash(), topic);
    let thresholds = PeerScoreThresholds {
        gossip_threshold: -400.0,
        publish_threshold: -800.0,
        graylist_threshold: -1600.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    };
    (params, thresholds)
}

/// The sync protocol's request-response behaviour (also used by the sybil identities of
/// `adversary.rs`). An adversary may stall its reads and wait longer for answers.
pub(crate) fn sync_behaviour(
    config: &NetworkConfig,
    names: &Names,
) -> request_response::Behaviour<SyncCodec> {
    let (stall_block_reads, timeout) = crate::adversary::sync_settings(config.adversary.as_ref());
    request_response::Behaviour::with_codec(
        SyncCodec {
            max_block_txs: config.max_block_txs,
            response_limit: config.sync_response_limit(),
            stall_block_reads,
        },
        [(names.sync.clone(), request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(timeout.unwrap_or(SYNC_REQUEST_TIMEOUT))
            .with_max_concurrent_streams(SYNC_STREAMS_PER_CONNECTION),
    )
}

/// Builds every behaviour.
pub(crate) fn build(
    key: &Keypair,
    config: &NetworkConfig,
    names: &Names,
) -> Result<Behaviour, NetworkError> {
    let peer_id = key.public().to_peer_id();
    let max_peers = config.max_peers.max(1);
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_pending_incoming(Some(max_peers.saturating_mul(2)))
        .with_max_pending_outgoing(Some(max_peers.saturating_mul(2)))
        .with_max_established_incoming(Some(max_peers.saturating_mul(2)))
        .with_max_established(Some(max_peers.saturating_mul(3)))
        // Two, not one: peers that dial each other at the same moment must not both close.
        .with_max_established_per_peer(Some(2));

    let filter =
        WhitelistSubscriptionFilter(HashSet::from([names.blocks.hash(), names.txs.hash()]));
    let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
        MessageAuthenticity::Anonymous,
        gossipsub_config(config, names)?,
        filter,
    )
    .map_err(|e| setup("gossipsub")(e.to_string()))?;
    let (params, thresholds) = score_params(names);
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(setup("gossipsub peer score"))?;
    gossipsub
        .subscribe(&names.blocks)
        .map_err(|e| setup("gossipsub subscription")(e.to_string()))?;
    gossipsub
        .subscribe(&names.txs)
        .map_err(|e| setup("gossipsub subscription")(e.to_string()))?;

    let sync = sync_behaviour(config, names);

    let identify = identify::Behaviour::new(
        identify::Config::new(names.identify_version.clone(), key.public())
            .with_agent_version(format!("peerchain/{}", env!("CARGO_PKG_VERSION"))),
    );

    let ping = ping::Behaviour::new(
        ping::Config::new()
            .with_interval(PING_INTERVAL)
            .with_timeout(PING_TIMEOUT),
    );

    let mut kad_config = kad::Config::new(names.kad.clone());
    kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(300)));
    let mut kad =
        kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
    // Local networks never confirm an external address; serve the DHT anyway.
    kad.set_mode(Some(kad::Mode::Server));

    let mdns = if config.mdns {
        Some(
            mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)
                .map_err(|e| setup("mdns")(e.to_string()))?,
        )
    } else {
        None
    };

    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        memory: memory_connection_limits::Behaviour::with_max_percentage(0.9),
        blocked: allow_block_list::Behaviour::default(),
        gossipsub,
        sync,
        identify,
        ping,
        kad,
        mdns: Toggle::from(mdns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::Hash;

    #[test]
    fn names_include_the_genesis_hash() {
        let config = NetworkConfig::new("/tmp/x", Hash([0xab; 32]), 100);
        let names = Names::new(&config).expect("names");
        let g = "ab".repeat(32);
        assert_eq!(names.blocks.to_string(), format!("/peerchain/{g}/blocks/2"));
        assert_eq!(names.txs.to_string(), format!("/peerchain/{g}/txs/2"));
        assert_eq!(names.sync.as_ref(), format!("/peerchain/{g}/sync/1"));
        assert_eq!(names.kad.as_ref(), format!("/peerchain/{g}/kad/1"));
        assert!(names.gossip_prefix.contains(&g));
        assert!(names.identify_version.contains(&g));
    }

    #[test]
    fn configs_are_valid() {
        let config = NetworkConfig::new("/tmp/x", Hash([1; 32]), 20_000);
        let names = Names::new(&config).expect("names");
        gossipsub_config(&config, &names).expect("gossipsub config");
        let (params, thresholds) = score_params(&names);
        params.validate().expect("score params");
        thresholds.validate().expect("thresholds");
        assert_eq!(history_length(Duration::from_millis(100)), 100);
        assert_eq!(history_length(Duration::from_secs(1)), 10);
        assert_eq!(history_length(Duration::from_secs(5)), 5);
    }

    #[test]
    fn message_ids_are_content_addressed() {
        let m = |topic: &str, data: &[u8]| gossipsub::Message {
            source: None,
            data: data.to_vec(),
            sequence_number: None,
            topic: gossipsub::TopicHash::from_raw(topic),
        };
        assert_eq!(message_id(&m("a", b"x")), message_id(&m("a", b"x")));
        assert_ne!(message_id(&m("a", b"x")), message_id(&m("b", b"x")));
        assert_ne!(message_id(&m("a", b"x")), message_id(&m("a", b"y")));
        assert_eq!(message_id(&m("a", b"x")).0.len(), 20);
    }
}
