//! The service task: the one owner of the swarm. It `select!`s over swarm events, commands
//! from [`crate::NetworkHandle`], results of blocking jobs (store reads, block decoding) and a
//! housekeeping tick, and turns swarm events into [`NetworkEvent`]s.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use peerchain_ledger::{Block, Hash, Store, Transaction, U256};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent, Names};
use crate::codec::{Refusal, Status, SyncRequest, SyncResponse, decode_block};
use crate::config::*;
use crate::error::NetworkError;
use crate::handle::Command;
use crate::sync::{Anchor, SyncRound, build_locator, check_headers, serve_blocks, serve_headers};
#[cfg(feature = "test-hooks")]
use crate::types::RawTopic;
use crate::types::{Acceptance, BlockOrigin, LocalTip, MessageRef, NetworkEvent, PeerSummary};

/// Results of jobs run on the blocking pool.
pub(crate) enum Internal {
    /// A sync response read from the store.
    Serve {
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
    /// A gossip block decoded (and its Merkle root checked).
    GossipBlock {
        msg: MessageRef,
        result: Result<Block, String>,
    },
}

/// What an outstanding sync request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Status,
    Headers,
    Blocks,
    Ancestor(Hash),
}

/// A connected peer.
#[derive(Debug)]
struct PeerState {
    address: Multiaddr,
    outbound: bool,
    since_ms: u64,
    connected_at: Instant,
    /// Latest status; its work is lowered to what the peer actually served after a round.
    status: Option<Status>,
    handshaked: bool,
    best_height: Option<u64>,
    status_inflight: bool,
    pending_ancestor: Option<Hash>,
    /// Inbound request budget (token bucket).
    tokens: f64,
    /// Single-block ancestor fetch budget.
    ancestor_tokens: f64,
    tokens_at: Instant,
    sync_cooldown_until: Option<Instant>,
}

impl PeerState {
    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.tokens_at).as_secs_f64();
        self.tokens_at = now;
        self.tokens = (self.tokens + dt * REQUEST_RATE_PER_SEC).min(REQUEST_BURST);
        self.ancestor_tokens = (self.ancestor_tokens + dt).min(ANCESTOR_BUDGET);
    }
}

/// Bootnode redial state.
#[derive(Debug, Default)]
struct Redial {
    attempts: u32,
    due: Option<Instant>,
}

/// Work we expect the local tip to reach once downloaded blocks are imported.
#[derive(Debug)]
struct ExpectedWork {
    work: U256,
    deadline: Option<Instant>,
}

/// Requester-side pacing of the current sync round, slightly under the server's rate limit.
#[derive(Debug)]
struct Pacer {
    tokens: f64,
    at: Instant,
}

impl Pacer {
    fn new() -> Self {
        Pacer {
            tokens: REQUEST_BURST / 2.0,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * REQUEST_RATE_PER_SEC * 0.9).min(REQUEST_BURST / 2.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The peer id at the end of a multiaddr, if any.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The multiaddr without its `/p2p/..` components.
pub(crate) fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Everything the service task owns.
pub(crate) struct Service {
    pub swarm: Swarm<Behaviour>,
    pub config: NetworkConfig,
    pub names: Names,
    pub store: Store,
    pub local_peer_id: PeerId,
    pub commands: mpsc::Receiver<Command>,
    pub events: mpsc::Sender<NetworkEvent>,
    pub internal_tx: mpsc::Sender<Internal>,
    pub internal_rx: mpsc::Receiver<Internal>,
    pub local_tip: LocalTip,
    pub bootnodes: HashMap<PeerId, Multiaddr>,
    events_closed: bool,
    /// Events waiting for room in the event channel (control events and gossip).
    outbox: VecDeque<NetworkEvent>,
    queued_gossip: usize,
    decoding: usize,
    serving: usize,
    peers: HashMap<PeerId, PeerState>,
    requests: HashMap<OutboundRequestId, (PeerId, RequestKind)>,
    bans: HashMap<PeerId, Option<Instant>>,
    misbehaviour: HashMap<PeerId, (f64, Instant)>,
    redials: HashMap<PeerId, Redial>,
    pending_txs: VecDeque<Vec<u8>>,
    sync: Option<SyncRound>,
    pacer: Pacer,
    /// Downloaded blocks, in order, waiting for room in the event channel.
    ready: VecDeque<(Block, PeerId)>,
    ready_bytes: usize,
    syncing_reported: bool,
    expected_work: Option<ExpectedWork>,
    recent_ancestors: VecDeque<Hash>,
    bootstrap_wanted: bool,
    last_bootstrap: Option<Instant>,
    last_score_poll: Instant,
    last_status_refresh: Instant,
    last_slow_tick: Instant,
}

impl Service {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        config: NetworkConfig,
        names: Names,
        store: Store,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
        local_tip: LocalTip,
        bootnodes: HashMap<PeerId, Multiaddr>,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_CHANNEL);
        let local_peer_id = *swarm.local_peer_id();
        let now = Instant::now();
        Service {
            swarm,
            config,
            names,
            store,
            local_peer_id,
            commands,
            events,
            internal_tx,
            internal_rx,
            local_tip,
            bootnodes,
            events_closed: false,
            outbox: VecDeque::new(),
            queued_gossip: 0,
            decoding: 0,
            serving: 0,
            peers: HashMap::new(),
            requests: HashMap::new(),
            bans: HashMap::new(),
            misbehaviour: HashMap::new(),
            redials: HashMap::new(),
            pending_txs: VecDeque::new(),
            sync: None,
            pacer: Pacer::new(),
            ready: VecDeque::new(),
            ready_bytes: 0,
            syncing_reported: false,
            expected_work: None,
            recent_ancestors: VecDeque::new(),
            bootstrap_wanted: false,
            last_bootstrap: None,
            last_score_poll: now,
            last_status_refresh: now,
            last_slow_tick: now,
        }
    }

    /// Dials every bootnode (called once before [`Service::run`]).
    pub(crate) fn dial_bootnodes(&mut self) {
        let boots: Vec<(PeerId, Multiaddr)> = self
            .bootnodes
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (peer, addr) in boots {
            let bare = without_p2p(&addr);
            self.swarm.add_peer_address(peer, bare.clone());
            self.swarm.behaviour_mut().kad.add_address(&peer, bare);
            self.dial_bootnode(peer);
        }
    }

    fn dial_bootnode(&mut self, peer: PeerId) {
        let Some(addr) = self.bootnodes.get(&peer).cloned() else {
            return;
        };
        if self.swarm.is_connected(&peer) || self.bans.contains_key(&peer) {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![without_p2p(&addr)])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "bootnode dial failed at once");
            self.schedule_redial(peer);
        }
    }

    /// Runs until shutdown or until every handle is dropped.
    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ack: Option<oneshot::Sender<()>> = loop {
            let deliver = self.can_deliver();
            let events = self.events.clone();
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break None,
                    Some(Command::Shutdown(ack)) => break Some(ack),
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(job) = self.internal_rx.recv() => self.on_internal(job),
                permit = events.reserve_owned(), if deliver => match permit {
                    Ok(permit) => self.deliver(permit),
                    Err(_) => self.events_closed = true,
                },
                _ = tick.tick() => self.on_tick(),
            }
        };
        tracing::info!("network service stopping");
        // Drop the swarm (closing every connection) and the store before acknowledging, so a
        // caller may reopen the same data directory at once.
        drop(self);
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    // ----- event delivery -------------------------------------------------------------

    fn channel_queued(&self) -> usize {
        self.events
            .max_capacity()
            .saturating_sub(self.events.capacity())
    }

    fn can_deliver(&self) -> bool {
        !self.events_closed
            && (!self.outbox.is_empty()
                || (!self.ready.is_empty() && self.channel_queued() < SYNC_BLOCKS_IN_CHANNEL))
    }

    fn deliver(&mut self, permit: mpsc::OwnedPermit<NetworkEvent>) {
        if let Some(event) = self.outbox.pop_front() {
            if matches!(
                event,
                NetworkEvent::Tx { .. }
                    | NetworkEvent::Block {
                        origin: BlockOrigin::Gossip(_),
                        ..
                    }
            ) {
                self.queued_gossip = self.queued_gossip.saturating_sub(1);
            }
            permit.send(event);
        } else if let Some((block, peer)) = self.ready.pop_front() {
            self.ready_bytes = self.ready_bytes.saturating_sub(block.encoded_len());
            permit.send(NetworkEvent::Block {
                block,
                peer: peer.to_string(),
                origin: BlockOrigin::Sync,
            });
            self.pump_sync();
        }
    }

    fn push_control(&mut self, event: NetworkEvent) {
        if !self.events_closed {
            self.outbox.push_back(event);
        }
    }

    /// Queues a gossip event, or ignores the message when too many are waiting.
    fn push_gossip(&mut self, event: NetworkEvent, msg: &MessageRef) {
        if self.events_closed || self.queued_gossip >= MAX_QUEUED_GOSSIP {
            tracing::debug!(?msg, "event queue full; gossip message ignored");
            self.report(msg, MessageAcceptance::Ignore);
            return;
        }
        self.queued_gossip += 1;
        self.outbox.push_back(event);
    }

    fn push_ready(&mut self, block: Block, peer: PeerId) {
        self.ready_bytes = self.ready_bytes.saturating_add(block.encoded_len());
        self.ready.push_back((block, peer));
    }

    // ----- commands -------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PublishBlock(bytes) => self.publish_block(bytes),
            Command::PublishTx(bytes) => self.publish_tx(bytes),
            #[cfg(feature = "test-hooks")]
            Command::PublishRaw(topic, bytes) => {
                let topic = match topic {
                    RawTopic::Blocks => self.names.blocks.hash(),
                    RawTopic::Txs => self.names.txs.hash(),
                };
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
                    tracing::debug!(error = %e, "raw publish failed");
                }
            }
            Command::Report(msg, acceptance) => {
                let acceptance = match acceptance {
                    Acceptance::Accept => MessageAcceptance::Accept,
                    Acceptance::Reject => MessageAcceptance::Reject,
                    Acceptance::Ignore => MessageAcceptance::Ignore,
                };
                self.report(&msg, acceptance);
            }
            Command::Penalize { peer, reason } => match peer.parse::<PeerId>() {
                Ok(p) => self.misbehaved(p, points::PENALIZE, &reason),
                Err(e) => tracing::warn!(%peer, error = %e, "penalize: invalid peer id"),
            },
            Command::RequestAncestors { peer, missing } => self.request_ancestors(&peer, missing),
            Command::SetLocalTip(tip) => {
                self.local_tip = tip;
                if self
                    .expected_work
                    .as_ref()
                    .is_some_and(|e| tip.total_work >= e.work)
                {
                    self.expected_work = None;
                }
                self.maybe_start_sync();
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_summaries());
            }
            Command::Dial(addr, reply) => {
                let _ = reply.send(self.dial_addr(&addr));
            }
            Command::BlockPeer(peer, reply) => {
                let result = self.parse_remote(&peer).map(|p| {
                    self.ban(p, None, "blocked by the operator");
                });
                let _ = reply.send(result);
            }
            Command::UnblockPeer(peer, reply) => {
                let result = self.parse_remote(&peer).map(|p| self.unban(p));
                let _ = reply.send(result);
            }
            // Handled by the run loop.
            Command::Shutdown(ack) => {
                let _ = ack.send(());
            }
        }
    }

    fn parse_remote(&self, peer: &str) -> Result<PeerId, NetworkError> {
        let p = peer
            .parse::<PeerId>()
            .map_err(|e| NetworkError::BadPeerId {
                peer: peer.to_owned(),
                detail: e.to_string(),
            })?;
        if p == self.local_peer_id {
            return Err(NetworkError::LocalPeer {
                peer: peer.to_owned(),
            });
        }
        Ok(p)
    }

    fn report(&mut self, msg: &MessageRef, acceptance: MessageAcceptance) {
        let known = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&msg.id, &msg.source, acceptance);
        if !known {
            tracing::debug!(?msg, "validation result for a message no longer cached");
        }
    }

    fn publish_block(&mut self, bytes: Vec<u8>) {
        let topic = self.names.blocks.hash();
        match self.swarm.behaviour_mut().gossipsub.publish(topic, bytes) {
            Ok(_) | Err(PublishError::Duplicate) => {}
            Err(PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!("no peer subscribed to blocks yet; peers will sync the block");
            }
            Err(e) => tracing::warn!(error = %e, "block publish failed"),
        }
    }

    fn publish_tx(&mut self, bytes: Vec<u8>) {
        let topic = self.names.txs.hash();
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, bytes.clone())
        {
            Ok(_) | Err(PublishError::Duplicate) => {}
            Err(PublishError::NoPeersSubscribedToTopic) => {
                if self.pending_txs.len() >= MAX_PENDING_TXS {
                    self.pending_txs.pop_front();
                }
                self.pending_txs.push_back(bytes);
                tracing::debug!(
                    pending = self.pending_txs.len(),
                    "no peer subscribed to transactions yet; kept for rebroadcast"
                );
            }
            Err(e) => tracing::warn!(error = %e, "transaction publish failed"),
        }
    }

    fn flush_pending_txs(&mut self) {
        let topic = self.names.txs.hash();
        while let Some(bytes) = self.pending_txs.pop_front() {
            match self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), bytes.clone())
            {
                Ok(_) | Err(PublishError::Duplicate) => {}
                Err(PublishError::NoPeersSubscribedToTopic) => {
                    self.pending_txs.push_front(bytes);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "transaction rebroadcast failed"),
            }
        }
    }

    fn peer_summaries(&self) -> Vec<PeerSummary> {
        let mut out: Vec<PeerSummary> = self
            .peers
            .iter()
            .filter(|(_, s)| s.handshaked)
            .map(|(p, s)| PeerSummary {
                peer_id: p.to_string(),
                address: s.address.to_string(),
                direction: if s.outbound { "outbound" } else { "inbound" },
                connected_since_ms: s.since_ms,
                best_height: s.best_height,
            })
            .collect();
        out.sort_by(|a, b| {
            (a.connected_since_ms, &a.peer_id).cmp(&(b.connected_since_ms, &b.peer_id))
        });
        out
    }

    fn dial_addr(&mut self, addr: &str) -> Result<(), NetworkError> {
        let ma: Multiaddr =
            addr.parse()
                .map_err(|e: libp2p::multiaddr::Error| NetworkError::BadAddress {
                    addr: addr.to_owned(),
                    detail: e.to_string(),
                })?;
        if let Some(peer) = peer_of(&ma) {
            if peer == self.local_peer_id {
                return Err(NetworkError::LocalPeer {
                    peer: peer.to_string(),
                });
            }
            if self.bans.contains_key(&peer) {
                return Err(NetworkError::Dial {
                    addr: addr.to_owned(),
                    detail: format!("peer {peer} is blocked"),
                });
            }
        }
        self.swarm.dial(ma).map_err(|e| NetworkError::Dial {
            addr: addr.to_owned(),
            detail: e.to_string(),
        })
    }

    // ----- bans and penalties ---------------------------------------------------------

    /// Adds misbehaviour points; at [`BAN_POINTS`] the peer is banned for [`BAN_DURATION`].
    fn misbehaved(&mut self, peer: PeerId, pts: f64, reason: &str) {
        if peer == self.local_peer_id {
            return;
        }
        let now = Instant::now();
        if self.misbehaviour.len() >= 10_000 {
            self.misbehaviour.retain(|_, (p, at)| {
                *p - now.saturating_duration_since(*at).as_secs_f64() * POINTS_DECAY_PER_SEC > 0.0
            });
        }
        let entry = self.misbehaviour.entry(peer).or_insert((0.0, now));
        let decayed = (entry.0
            - now.saturating_duration_since(entry.1).as_secs_f64() * POINTS_DECAY_PER_SEC)
            .max(0.0);
        entry.0 = decayed + pts;
        entry.1 = now;
        let total = entry.0;
        tracing::info!(%peer, points = format!("{total:.1}"), reason, "peer penalised");
        if total >= BAN_POINTS && !self.bans.contains_key(&peer) {
            // Keep half: a peer that misbehaves again right after its ban is banned sooner.
            entry.0 = BAN_POINTS / 2.0;
            self.ban(peer, Some(BAN_DURATION), reason);
        }
    }

    /// Disconnects and refuses a peer, for `duration` or (operator blocks) until unblocked.
    fn ban(&mut self, peer: PeerId, duration: Option<Duration>, reason: &str) {
        if peer == self.local_peer_id {
            return;
        }
        tracing::warn!(%peer, ?duration, reason, "banning peer");
        if self.bans.len() >= MAX_BANS && !self.bans.contains_key(&peer) {
            // Forget the timed ban that would end first (operator blocks are kept).
            let first = self
                .bans
                .iter()
                .filter_map(|(p, until)| until.map(|u| (u, *p)))
                .min();
            if let Some((_, old)) = first {
                self.bans.remove(&old);
                self.swarm.behaviour_mut().blocked.unblock_peer(old);
            }
        }
        self.bans.insert(peer, duration.map(|d| Instant::now() + d));
        let behaviour = self.swarm.behaviour_mut();
        behaviour.blocked.block_peer(peer);
        behaviour.kad.remove_peer(&peer);
        if let Some(r) = self.redials.get_mut(&peer) {
            r.due = None;
        }
        if self.sync.as_ref().is_some_and(|r| r.peer == peer) {
            self.abort_round("peer banned", None);
        }
    }

    fn unban(&mut self, peer: PeerId) {
        self.bans.remove(&peer);
        self.misbehaviour.remove(&peer);
        self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        if self.bootnodes.contains_key(&peer) {
            self.redials.remove(&peer);
            self.dial_bootnode(peer);
        }
    }

    /// A peer of another network: refuse it for a while.
    fn refuse_network(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, reason, "peer is not on this network");
        self.ban(peer, Some(BAN_DURATION), reason);
    }

    fn schedule_redial(&mut self, peer: PeerId) {
        if !self.bootnodes.contains_key(&peer) || self.bans.contains_key(&peer) {
            return;
        }
        let r = self.redials.entry(peer).or_default();
        if r.due.is_some() {
            return;
        }
        let factor = 1u32.checked_shl(r.attempts.min(16)).unwrap_or(u32::MAX);
        let delay = REDIAL_MIN.saturating_mul(factor).min(REDIAL_MAX);
        r.attempts = r.attempts.saturating_add(1);
        r.due = Some(Instant::now() + delay);
        tracing::debug!(%peer, ?delay, "bootnode redial scheduled");
    }

    // ----- swarm events ---------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => match event {
                BehaviourEvent::Gossipsub(e) => self.on_gossip(e),
                BehaviourEvent::Sync(e) => self.on_sync_event(e),
                BehaviourEvent::Identify(e) => self.on_identify(e),
                BehaviourEvent::Ping(e) => {
                    if let Err(error) = e.result {
                        tracing::debug!(peer = %e.peer, %error, "ping failed; closing the connection");
                        self.swarm.close_connection(e.connection);
                    }
                }
                BehaviourEvent::Kad(e) => self.on_kad(e),
                BehaviourEvent::Mdns(e) => self.on_mdns(e),
                BehaviourEvent::Limits(never) => match never {},
                BehaviourEvent::Memory(never) => match never {},
                BehaviourEvent::Blocked(never) => match never {},
            },
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(self.local_peer_id));
                tracing::info!(addr = %full, "listening");
                self.push_control(NetworkEvent::Listening {
                    addr: full.to_string(),
                });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => {
                self.on_connected(
                    peer_id,
                    endpoint.get_remote_address().clone(),
                    endpoint.is_dialer(),
                );
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?cause, "peer disconnected");
                self.on_disconnected(peer_id);
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    self.schedule_redial(peer);
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => {
                tracing::warn!(?addresses, ?reason, "listener closed");
            }
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, address: Multiaddr, outbound: bool) {
        if self.bans.contains_key(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        let is_boot = self.bootnodes.contains_key(&peer);
        if !is_boot && self.peers.len() >= self.config.max_peers as usize {
            tracing::debug!(%peer, "peer limit reached; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        let now = Instant::now();
        self.peers.insert(
            peer,
            PeerState {
                address,
                outbound,
                since_ms: now_ms(),
                connected_at: now,
                status: None,
                handshaked: false,
                best_height: None,
                status_inflight: false,
                pending_ancestor: None,
                tokens: REQUEST_BURST,
                ancestor_tokens: ANCESTOR_BUDGET,
                tokens_at: now,
                sync_cooldown_until: None,
            },
        );
        self.send_status(peer);
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        if let Some(state) = self.peers.remove(&peer)
            && state.handshaked
        {
            self.push_control(NetworkEvent::PeerDisconnected {
                peer: peer.to_string(),
            });
        }
        if self.sync.as_ref().is_some_and(|r| r.peer == peer) {
            self.abort_round("sync peer disconnected", None);
        }
        self.schedule_redial(peer);
    }

    fn on_identify(&mut self, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        if info.protocol_version != self.names.identify_version {
            self.refuse_network(
                peer_id,
                &format!("identify protocol version {:?}", info.protocol_version),
            );
            return;
        }
        if info.protocols.contains(&self.names.kad) {
            for addr in info.listen_addrs {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer_id, without_p2p(&addr));
            }
            self.bootstrap_wanted = true;
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        if let kad::Event::RoutingUpdated {
            peer,
            is_new_peer: true,
            ..
        } = event
        {
            self.maybe_dial(peer);
        }
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(list) = event {
            for (peer, addr) in list {
                self.swarm.add_peer_address(peer, addr);
                self.maybe_dial(peer);
            }
        }
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        if peer == self.local_peer_id
            || self.swarm.is_connected(&peer)
            || self.bans.contains_key(&peer)
            || self.peers.len() >= self.config.max_peers as usize
        {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "dial of a discovered peer failed");
        }
    }

    // ----- gossip ---------------------------------------------------------------------

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let msg = MessageRef {
                    id: message_id,
                    source: propagation_source,
                };
                if message.topic == self.names.blocks.hash() {
                    if self.decoding >= MAX_DECODING || self.queued_gossip >= MAX_QUEUED_GOSSIP {
                        self.report(&msg, MessageAcceptance::Ignore);
                        return;
                    }
                    self.decoding += 1;
                    let tx = self.internal_tx.clone();
                    let max_txs = self.config.max_block_txs;
                    tokio::task::spawn_blocking(move || {
                        let result = decode_block(&message.data, max_txs);
                        let _ = tx.blocking_send(Internal::GossipBlock { msg, result });
                    });
                } else if message.topic == self.names.txs.hash() {
                    match Transaction::decode(&message.data) {
                        Ok(tx) => {
                            let event = NetworkEvent::Tx {
                                tx,
                                peer: propagation_source.to_string(),
                                msg: msg.clone(),
                            };
                            self.push_gossip(event, &msg);
                        }
                        Err(e) => {
                            tracing::debug!(peer = %propagation_source, error = %e, "undecodable transaction rejected");
                            self.report(&msg, MessageAcceptance::Reject);
                        }
                    }
                } else {
                    self.report(&msg, MessageAcceptance::Reject);
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
                if topic == self.names.txs.hash() && !self.pending_txs.is_empty() {
                    self.flush_pending_txs();
                }
            }
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::debug!(peer = %peer_id, "peer does not speak this network's gossipsub");
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                tracing::debug!(peer = %peer_id, ?failed_messages, "slow gossip peer");
            }
            _ => {}
        }
    }

    fn on_internal(&mut self, job: Internal) {
        match job {
            Internal::Serve { channel, response } => {
                self.serving = self.serving.saturating_sub(1);
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("sync response dropped: the request timed out or closed");
                }
            }
            Internal::GossipBlock { msg, result } => {
                self.decoding = self.decoding.saturating_sub(1);
                match result {
                    Ok(block) => {
                        if let Some(state) = self.peers.get_mut(&msg.source) {
                            let h = block.header.height;
                            state.best_height = Some(state.best_height.map_or(h, |b| b.max(h)));
                        }
                        let event = NetworkEvent::Block {
                            block,
                            peer: msg.source.to_string(),
                            origin: BlockOrigin::Gossip(msg.clone()),
                        };
                        self.push_gossip(event, &msg);
                    }
                    Err(e) => {
                        tracing::debug!(peer = %msg.source, error = %e, "undecodable block rejected");
                        self.report(&msg, MessageAcceptance::Reject);
                    }
                }
            }
        }
    }

    // ----- sync protocol: serving -----------------------------------------------------

    fn our_status(&self) -> Status {
        Status {
            genesis: self.config.genesis_hash,
            tip: self.local_tip.hash,
            height: self.local_tip.height,
            total_work: self.local_tip.total_work,
        }
    }

    fn send_status(&mut self, peer: PeerId) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        if state.status_inflight {
            return;
        }
        state.status_inflight = true;
        let status = self.our_status();
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Status(status));
        self.requests.insert(id, (peer, RequestKind::Status));
    }

    fn on_sync_event(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_response(peer, request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => self.on_outbound_failure(peer, request_id, error),
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
                if let request_response::InboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                {
                    self.misbehaved(
                        peer,
                        points::BAD_REQUEST,
                        &format!("malformed sync request: {e}"),
                    );
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn respond(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!("sync response dropped: the request closed");
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let allowed = match self.peers.get_mut(&peer) {
            Some(state) => {
                state.refill(Instant::now());
                if state.tokens >= 1.0 {
                    state.tokens -= 1.0;
                    true
                } else {
                    false
                }
            }
            None => false,
        };
        if !allowed {
            self.respond(channel, SyncResponse::Refused(Refusal::RateLimited));
            self.misbehaved(
                peer,
                points::RATE_LIMITED,
                "sync requests over the rate limit",
            );
            return;
        }
        match request {
            SyncRequest::Status(status) => {
                let ours = self.our_status();
                self.respond(channel, SyncResponse::Status(ours));
                self.on_peer_status(peer, status);
            }
            SyncRequest::GetHeaders { locator, max } => {
                self.serve(channel, move |store| {
                    serve_headers(store, &locator, max).map(SyncResponse::Headers)
                });
            }
            SyncRequest::GetBlocks(hashes) => {
                self.serve(channel, move |store| {
                    serve_blocks(store, &hashes).map(SyncResponse::BlocksRaw)
                });
            }
        }
    }

    /// Runs a store read on the blocking pool; the response comes back as [`Internal::Serve`].
    fn serve<F>(&mut self, channel: ResponseChannel<SyncResponse>, job: F)
    where
        F: FnOnce(&Store) -> Result<SyncResponse, peerchain_ledger::StoreError> + Send + 'static,
    {
        if self.serving >= MAX_SERVING {
            self.respond(channel, SyncResponse::Refused(Refusal::Busy));
            return;
        }
        self.serving += 1;
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        tokio::task::spawn_blocking(move || {
            let response = job(&store).unwrap_or_else(|e| {
                tracing::error!(error = %e, "store read failed while serving sync");
                SyncResponse::Refused(Refusal::Internal)
            });
            let _ = tx.blocking_send(Internal::Serve { channel, response });
        });
    }

    // ----- sync protocol: requesting --------------------------------------------------

    fn on_peer_status(&mut self, peer: PeerId, status: Status) {
        if status.genesis != self.config.genesis_hash {
            self.refuse_network(peer, &format!("status with genesis {}", status.genesis));
            return;
        }
        let local_work = self.local_tip.total_work;
        let idle = self.sync.is_none();
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.status = Some(status);
        state.best_height = Some(
            state
                .best_height
                .map_or(status.height, |b| b.max(status.height)),
        );
        let first = !state.handshaked;
        state.handshaked = true;
        let ancestor = state.pending_ancestor.take();
        if first {
            // A bootnode counts as reached once it completed the handshake (a connection it
            // refuses at once must not reset the redial backoff).
            self.redials.remove(&peer);
            tracing::info!(%peer, height = status.height, "peer connected");
            self.push_control(NetworkEvent::PeerConnected {
                peer: peer.to_string(),
            });
        }
        if let Some(missing) = ancestor
            && status.total_work <= local_work
            && idle
        {
            self.fetch_ancestor(peer, missing);
        }
        self.maybe_start_sync();
    }

    fn request_ancestors(&mut self, peer: &str, missing: Hash) {
        let Ok(p) = peer.parse::<PeerId>() else {
            tracing::debug!(%peer, "request_ancestors: invalid peer id");
            return;
        };
        if self.sync.is_some() || self.recent_ancestors.contains(&missing) {
            return;
        }
        let Some(state) = self.peers.get_mut(&p) else {
            return;
        };
        state.pending_ancestor = Some(missing);
        // Refresh the peer's status first: if it has more work, a sync round fetches
        // everything missing, whatever the depth; otherwise the one block is fetched.
        self.send_status(p);
    }

    fn fetch_ancestor(&mut self, peer: PeerId, missing: Hash) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.refill(Instant::now());
        if state.ancestor_tokens < 1.0 {
            tracing::debug!(%peer, %missing, "ancestor fetch budget exhausted");
            return;
        }
        state.ancestor_tokens -= 1.0;
        if self.recent_ancestors.len() >= 1024 {
            self.recent_ancestors.pop_front();
        }
        self.recent_ancestors.push_back(missing);
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::GetBlocks(vec![missing]));
        self.requests
            .insert(id, (peer, RequestKind::Ancestor(missing)));
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, response: SyncResponse) {
        let Some((_, kind)) = self.requests.remove(&id) else {
            return; // from an aborted round
        };
        if kind == RequestKind::Status
            && let Some(state) = self.peers.get_mut(&peer)
        {
            state.status_inflight = false;
        }
        match (kind, response) {
            (_, SyncResponse::Malformed(reason)) => {
                self.sync_fault(
                    peer,
                    kind,
                    points::INVALID_SYNC_DATA,
                    &format!("malformed response: {reason}"),
                );
            }
            (_, SyncResponse::Refused(reason)) => {
                tracing::debug!(%peer, ?reason, ?kind, "sync request refused");
                if matches!(kind, RequestKind::Headers | RequestKind::Blocks) {
                    self.abort_round(&format!("request refused: {reason:?}"), None);
                }
            }
            (RequestKind::Status, SyncResponse::Status(status)) => {
                self.on_peer_status(peer, status)
            }
            (RequestKind::Headers, SyncResponse::Headers(headers)) => {
                self.on_headers(peer, id, headers)
            }
            (RequestKind::Blocks, SyncResponse::Blocks(blocks)) => self.on_blocks(peer, id, blocks),
            (RequestKind::Ancestor(missing), SyncResponse::Blocks(blocks)) => {
                match blocks.into_iter().next() {
                    Some(block) if block.hash() == missing => self.push_ready(block, peer),
                    Some(block) => self.sync_fault(
                        peer,
                        kind,
                        points::INVALID_SYNC_DATA,
                        &format!("sent block {} for {missing}", block.hash()),
                    ),
                    None => tracing::debug!(%peer, %missing, "peer does not have the ancestor"),
                }
            }
            (kind, other) => {
                self.sync_fault(
                    peer,
                    kind,
                    points::INVALID_SYNC_DATA,
                    &format!(
                        "unexpected response {} to a {kind:?} request",
                        response_name(&other)
                    ),
                );
            }
        }
    }

    /// A peer sent bad sync data: penalise it and, for round requests, abort the round.
    fn sync_fault(&mut self, peer: PeerId, kind: RequestKind, pts: f64, reason: &str) {
        tracing::warn!(%peer, ?kind, reason, "bad sync data");
        let in_round = matches!(kind, RequestKind::Headers | RequestKind::Blocks)
            && self.sync.as_ref().is_some_and(|r| r.peer == peer);
        if in_round {
            self.abort_round(reason, Some(pts));
        } else {
            self.misbehaved(peer, pts, reason);
        }
    }

    fn on_outbound_failure(&mut self, peer: PeerId, id: OutboundRequestId, error: OutboundFailure) {
        let Some((_, kind)) = self.requests.remove(&id) else {
            return;
        };
        tracing::debug!(%peer, ?kind, %error, "sync request failed");
        if kind == RequestKind::Status
            && let Some(state) = self.peers.get_mut(&peer)
        {
            state.status_inflight = false;
        }
        match error {
            OutboundFailure::UnsupportedProtocols => {
                self.refuse_network(peer, "does not speak this network's sync protocol");
            }
            OutboundFailure::Timeout => match kind {
                RequestKind::Headers | RequestKind::Blocks => {
                    self.sync_fault(peer, kind, points::STALLED, "sync request timed out");
                }
                RequestKind::Status => {
                    if !self.peers.get(&peer).is_some_and(|s| s.handshaked) {
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
                RequestKind::Ancestor(_) => {}
            },
            OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.sync_fault(
                    peer,
                    kind,
                    points::INVALID_SYNC_DATA,
                    &format!("invalid response: {e}"),
                );
            }
            _ => {
                if matches!(kind, RequestKind::Headers | RequestKind::Blocks)
                    && self.sync.as_ref().is_some_and(|r| r.peer == peer)
                {
                    self.abort_round(&format!("request failed: {error}"), None);
                }
            }
        }
    }

    fn on_headers(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        headers: Vec<peerchain_ledger::BlockHeader>,
    ) {
        let Some(mut round) = self.sync.take() else {
            return;
        };
        let anchors = match round.headers_req.take() {
            Some((req, anchors)) if req == id && round.peer == peer => anchors,
            other => {
                round.headers_req = other;
                self.sync = Some(round);
                return;
            }
        };
        self.sync = Some(round);
        let Some(first) = headers.first() else {
            if let Some(r) = self.sync.as_mut() {
                r.headers_done = true;
            }
            self.pump_sync();
            return;
        };
        let Some(anchor) = anchors.get(&first.prev_hash).copied() else {
            let reason = format!(
                "first header {} does not follow any locator hash",
                first.hash()
            );
            self.abort_round(&reason, Some(points::INVALID_SYNC_DATA));
            return;
        };
        match check_headers(anchor, &headers) {
            Ok((hashes, last)) => {
                // The locator only approximates the fork point: skip the blocks we already
                // store (a stored block's ancestors are all stored, so order is kept).
                let mut known = 0usize;
                for h in &hashes {
                    match self.store.has_block(h) {
                        Ok(true) => known += 1,
                        _ => break,
                    }
                }
                if let Some(r) = self.sync.as_mut() {
                    tracing::debug!(%peer, count = hashes.len(), known, height = last.height, "headers checked");
                    r.last = Some(last);
                    r.to_fetch.extend(hashes.into_iter().skip(known));
                }
                self.pump_sync();
            }
            Err(reason) => self.abort_round(&reason, Some(points::INVALID_SYNC_DATA)),
        }
    }

    fn on_blocks(&mut self, peer: PeerId, id: OutboundRequestId, blocks: Vec<Block>) {
        let Some(mut round) = self.sync.take() else {
            return;
        };
        let Some((pos, hashes)) = round.inflight.remove(&id) else {
            self.sync = Some(round);
            return;
        };
        self.sync = Some(round);
        if blocks.is_empty() {
            self.abort_round(
                "peer did not serve blocks whose headers it sent",
                Some(points::STALLED),
            );
            return;
        }
        if blocks.len() > hashes.len() {
            self.abort_round(
                "more blocks than requested",
                Some(points::INVALID_SYNC_DATA),
            );
            return;
        }
        for (block, want) in blocks.iter().zip(&hashes) {
            let got = block.hash();
            if got != *want {
                let reason = format!("sent block {got} for {want}");
                self.abort_round(&reason, Some(points::INVALID_SYNC_DATA));
                return;
            }
        }
        let n = blocks.len();
        let Some(mut round) = self.sync.take() else {
            return;
        };
        for (i, block) in blocks.into_iter().enumerate() {
            round.received.insert(pos + i as u64, block);
        }
        if n < hashes.len() {
            // A partial answer (size bound): ask for the rest at once.
            let rest = hashes[n..].to_vec();
            let rid = self
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, SyncRequest::GetBlocks(rest.clone()));
            self.requests.insert(rid, (peer, RequestKind::Blocks));
            round.inflight.insert(rid, (pos + n as u64, rest));
        }
        while let Some(block) = round.received.remove(&round.release_pos) {
            round.release_pos += 1;
            round.released += 1;
            self.push_ready(block, peer);
        }
        self.sync = Some(round);
        self.pump_sync();
    }

    /// Starts a round with the peer of most work above ours, if any.
    fn maybe_start_sync(&mut self) {
        if self.sync.is_some() {
            return;
        }
        let now = Instant::now();
        let mut floor = self.local_tip.total_work;
        if let Some(e) = &self.expected_work {
            floor = floor.max(e.work);
        }
        let best = self
            .peers
            .iter()
            .filter(|(_, s)| s.handshaked && s.sync_cooldown_until.is_none_or(|t| t <= now))
            .filter_map(|(p, s)| s.status.map(|st| (*p, st)))
            .filter(|(_, st)| st.total_work > floor)
            .max_by_key(|(_, st)| st.total_work);
        let Some((peer, status)) = best else {
            return;
        };
        tracing::info!(
            %peer,
            height = status.height,
            local_height = self.local_tip.height,
            "starting sync round"
        );
        self.sync = Some(SyncRound::new(peer, status.total_work));
        if !self.syncing_reported {
            self.syncing_reported = true;
            self.push_control(NetworkEvent::Syncing(true));
        }
        self.pump_sync();
    }

    /// Sends the requests the current round can make now, and finishes it when done.
    fn pump_sync(&mut self) {
        let Some(mut round) = self.sync.take() else {
            return;
        };
        let peer = round.peer;
        if round.headers_req.is_none()
            && !round.headers_done
            && round.to_fetch.len() < MAX_BLOCKS_PER_REQUEST
            && self.pacer.take()
        {
            match build_locator(&self.store) {
                Ok(entries) => {
                    let mut anchors = HashMap::new();
                    let mut locator = Vec::with_capacity(MAX_LOCATOR);
                    if let Some(last) = round.last {
                        anchors.insert(last.hash, last);
                        locator.push(last.hash);
                    }
                    for (hash, height, work) in entries {
                        if locator.len() >= MAX_LOCATOR {
                            break;
                        }
                        anchors.entry(hash).or_insert(Anchor { hash, height, work });
                        locator.push(hash);
                    }
                    let id = self.swarm.behaviour_mut().sync.send_request(
                        &peer,
                        SyncRequest::GetHeaders {
                            locator,
                            max: MAX_HEADERS as u32,
                        },
                    );
                    self.requests.insert(id, (peer, RequestKind::Headers));
                    round.headers_req = Some((id, anchors));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the block locator");
                    self.sync = Some(round);
                    self.abort_round("store read failed", None);
                    return;
                }
            }
        }
        while round.inflight.len() < SYNC_INFLIGHT_REQUESTS
            && !round.to_fetch.is_empty()
            && round.buffered() + self.ready.len() < SYNC_BUFFER_BLOCKS
            && self.ready_bytes < SYNC_BUFFER_BYTES
            && self.pacer.take()
        {
            let n = round.to_fetch.len().min(MAX_BLOCKS_PER_REQUEST);
            let hashes: Vec<Hash> = round.to_fetch.drain(..n).collect();
            let pos = round.next_pos;
            round.next_pos += n as u64;
            let id = self
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, SyncRequest::GetBlocks(hashes.clone()));
            self.requests.insert(id, (peer, RequestKind::Blocks));
            round.inflight.insert(id, (pos, hashes));
        }
        if round.is_complete() {
            self.finish_round(round);
        } else {
            self.sync = Some(round);
        }
    }

    fn finish_round(&mut self, round: SyncRound) {
        let peer = round.peer;
        // Work of the chain the peer served (our locator tip when it served nothing).
        let served = round.last.map_or(self.local_tip.total_work, |a| a.work);
        tracing::info!(
            %peer,
            blocks = round.released,
            secs = round.started.elapsed().as_secs_f64(),
            "sync round finished"
        );
        if round.claimed > served {
            let reason = format!(
                "claimed total work {} but served a chain of work {served}",
                round.claimed
            );
            self.misbehaved(peer, points::LIED_ABOUT_WORK, &reason);
        }
        if let Some(state) = self.peers.get_mut(&peer)
            && let Some(status) = state.status.as_mut()
            && status.total_work > served
        {
            // Trust only what was served until the peer announces more.
            status.total_work = served;
        }
        if round.released == 0 && served > self.local_tip.total_work {
            // Its heavier chain is one we already hold and did not adopt (invalid): do not
            // run empty rounds against it over and over.
            if let Some(state) = self.peers.get_mut(&peer) {
                state.sync_cooldown_until = Some(Instant::now() + SYNC_COOLDOWN);
            }
        } else if served > self.local_tip.total_work {
            let work = self
                .expected_work
                .as_ref()
                .map_or(served, |e| e.work.max(served));
            self.expected_work = Some(ExpectedWork {
                work,
                deadline: None,
            });
        }
        self.maybe_start_sync();
    }

    /// Drops the current round; with `penalty`, the peer is penalised. Blocks already released
    /// in order stay queued for delivery.
    fn abort_round(&mut self, reason: &str, penalty: Option<f64>) {
        let Some(round) = self.sync.take() else {
            return;
        };
        let peer = round.peer;
        tracing::info!(%peer, reason, "sync round aborted");
        if let Some((id, _)) = &round.headers_req {
            self.requests.remove(id);
        }
        for id in round.inflight.keys() {
            self.requests.remove(id);
        }
        let cooldown = if penalty.is_some() {
            SYNC_COOLDOWN
        } else {
            Duration::from_secs(2)
        };
        if let Some(state) = self.peers.get_mut(&peer) {
            state.sync_cooldown_until = Some(Instant::now() + cooldown);
        }
        if let Some(pts) = penalty {
            self.misbehaved(peer, pts, reason);
        }
        self.maybe_start_sync();
    }

    // ----- housekeeping ---------------------------------------------------------------

    fn on_tick(&mut self) {
        let now = Instant::now();
        if self.events_closed {
            self.outbox.clear();
            self.queued_gossip = 0;
            self.ready.clear();
            self.ready_bytes = 0;
        }
        // Redials.
        let due: Vec<PeerId> = self
            .redials
            .iter_mut()
            .filter(|(_, r)| r.due.is_some_and(|d| d <= now))
            .map(|(p, r)| {
                r.due = None;
                *p
            })
            .collect();
        for peer in due {
            tracing::debug!(%peer, "redialling bootnode");
            self.dial_bootnode(peer);
        }
        // Sync: continue a round waiting for pacing or buffer room; report the end.
        self.pump_sync();
        if self.sync.is_none() {
            self.maybe_start_sync();
        }
        if self.syncing_reported && self.sync.is_none() && self.ready.is_empty() {
            self.syncing_reported = false;
            self.push_control(NetworkEvent::Syncing(false));
        }
        if let Some(e) = &mut self.expected_work {
            if self.local_tip.total_work >= e.work {
                self.expected_work = None;
            } else if self.ready.is_empty() {
                match e.deadline {
                    None => e.deadline = Some(now + EXPECTED_WORK_GRACE),
                    Some(d) if d <= now => {
                        tracing::debug!(
                            "downloaded blocks did not raise the tip; trying other peers"
                        );
                        self.expected_work = None;
                        self.maybe_start_sync();
                    }
                    Some(_) => {}
                }
            }
        }
        if self.bootstrap_wanted
            && self
                .last_bootstrap
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.bootstrap_wanted = false;
            self.kad_bootstrap(now);
        }
        if now.saturating_duration_since(self.last_score_poll) >= SCORE_POLL {
            self.last_score_poll = now;
            self.poll_scores();
        }
        if now.saturating_duration_since(self.last_slow_tick) >= Duration::from_secs(1) {
            self.last_slow_tick = now;
            self.slow_tick(now);
        }
    }

    fn kad_bootstrap(&mut self, now: Instant) {
        self.last_bootstrap = Some(now);
        if let Err(e) = self.swarm.behaviour_mut().kad.bootstrap() {
            tracing::debug!(error = %e, "kademlia bootstrap skipped");
        }
    }

    fn poll_scores(&mut self) {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let bad: Vec<(PeerId, f64)> = self
            .peers
            .keys()
            .filter_map(|p| gossipsub.peer_score(p).map(|s| (*p, s)))
            .filter(|(_, s)| *s < BAN_SCORE)
            .collect();
        for (peer, score) in bad {
            self.ban(
                peer,
                Some(BAN_DURATION),
                &format!("gossip score {score:.0} below {BAN_SCORE}"),
            );
        }
    }

    fn slow_tick(&mut self, now: Instant) {
        // Timed bans.
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| until.is_some_and(|u| u <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            tracing::info!(%peer, "ban expired");
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.schedule_redial(peer);
        }
        // Handshake timeouts.
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, s)| {
                !s.handshaked && now.saturating_duration_since(s.connected_at) > HANDSHAKE_TIMEOUT
            })
            .map(|(p, _)| *p)
            .collect();
        for peer in stale {
            tracing::debug!(%peer, "no status handshake in time; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        // Status refresh.
        if now.saturating_duration_since(self.last_status_refresh) >= STATUS_REFRESH {
            self.last_status_refresh = now;
            let peers: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, s)| s.handshaked)
                .map(|(p, _)| *p)
                .collect();
            for peer in peers {
                self.send_status(peer);
            }
        }
        // Periodic discovery.
        if self
            .last_bootstrap
            .is_none_or(|t| now.saturating_duration_since(t) >= KAD_BOOTSTRAP_INTERVAL)
            && (self.peers.len() as u32) < self.config.max_peers
        {
            self.kad_bootstrap(now);
        }
    }
}

fn response_name(response: &SyncResponse) -> &'static str {
    match response {
        SyncResponse::Status(_) => "Status",
        SyncResponse::Headers(_) => "Headers",
        SyncResponse::Blocks(_) | SyncResponse::BlocksRaw(_) => "Blocks",
        SyncResponse::Refused(_) => "Refused",
        SyncResponse::Malformed(_) => "Malformed",
    }
}
