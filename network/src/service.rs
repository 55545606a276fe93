//! The service task: the one owner of the swarm. It `select!`s over swarm events, commands
//! from [`crate::NetworkHandle`], results of blocking jobs (store reads, block decoding) and a
//! housekeeping tick, and routes each to the part that owns the concern:
//!
//! - [`PeerBook`] (`peers.rs`): per-peer bookkeeping, penalties, bans, redials;
//! - [`SyncState`] (`sync_round.rs`): the header-first sync round and the download buffer;
//! - [`GossipInbox`] (`gossip.rs`): gossip dispatch, the event queue, transaction republishing.
//!
//! The service reads the clock and applies the parts' decisions to libp2p (dials, blocks,
//! requests, responses, validation reports); it keeps no policy of its own beyond routing.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use peerchain_ledger::{Block, Hash, StoreReader, U256};
use tokio::sync::{mpsc, oneshot};

use crate::behaviour::{Behaviour, BehaviourEvent, Names};
use crate::codec::{Refusal, Status, SyncRequest, SyncResponse, decode_block};
use crate::config::*;
use crate::error::NetworkError;
use crate::gossip::{Dispatch, GossipInbox, Published};
use crate::handle::Command;
use crate::peers::{Admission, BanDecision, PeerBook, peer_of, without_p2p};
use crate::sync::{build_locator, serve_blocks, serve_headers};
use crate::sync_round::{Aborted, Finished, RoundEnd, RoundIo, SyncState};
#[cfg(feature = "test-hooks")]
use crate::types::RawTopic;
use crate::types::{Acceptance, BlockOrigin, LocalTip, MessageRef, NetworkEvent};

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

type Requests = HashMap<OutboundRequestId, (PeerId, RequestKind)>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A sync round's view of the store and the swarm; every request it sends is recorded in the
/// service's request table.
struct SwarmIo<'a> {
    swarm: &'a mut Swarm<Behaviour>,
    store: &'a StoreReader,
    requests: &'a mut Requests,
}

impl RoundIo<OutboundRequestId> for SwarmIo<'_> {
    fn locator(&mut self) -> Result<Vec<(Hash, u64, U256)>, String> {
        build_locator(self.store).map_err(|e| e.to_string())
    }

    fn has_block(&mut self, hash: &Hash) -> bool {
        matches!(self.store.has_block(hash), Ok(true))
    }

    fn send(&mut self, peer: PeerId, request: SyncRequest) -> OutboundRequestId {
        let kind = match request {
            SyncRequest::GetHeaders { .. } => RequestKind::Headers,
            _ => RequestKind::Blocks,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, (peer, kind));
        id
    }
}

/// The [`SwarmIo`] of a service, borrowing only the fields it needs.
macro_rules! io {
    ($s:ident) => {
        &mut SwarmIo {
            swarm: &mut $s.swarm,
            store: &$s.store,
            requests: &mut $s.requests,
        }
    };
}

/// Everything the service task owns.
pub(crate) struct Service {
    swarm: Swarm<Behaviour>,
    config: NetworkConfig,
    names: Names,
    store: StoreReader,
    local_peer_id: PeerId,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
    local_tip: LocalTip,
    peers: PeerBook,
    sync: SyncState<OutboundRequestId>,
    inbox: GossipInbox,
    /// Outstanding sync requests of every kind.
    requests: Requests,
    /// Sync requests being served on the blocking pool.
    serving: usize,
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
        store: StoreReader,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetworkEvent>,
        local_tip: LocalTip,
        bootnodes: HashMap<PeerId, Multiaddr>,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_CHANNEL);
        let local_peer_id = *swarm.local_peer_id();
        let now = Instant::now();
        let inbox = GossipInbox::new(names.blocks.hash(), names.txs.hash());
        Service {
            peers: PeerBook::new(local_peer_id, config.max_peers, bootnodes),
            sync: SyncState::new(local_tip.total_work, now),
            inbox,
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
            requests: HashMap::new(),
            serving: 0,
            bootstrap_wanted: false,
            last_bootstrap: None,
            last_score_poll: now,
            last_status_refresh: now,
            last_slow_tick: now,
        }
    }

    /// Dials every bootnode (called once before [`Service::run`]).
    pub(crate) fn dial_bootnodes(&mut self) {
        for (peer, addr) in self.peers.bootnodes() {
            let bare = without_p2p(&addr);
            self.swarm.add_peer_address(peer, bare.clone());
            self.swarm.behaviour_mut().kad.add_address(&peer, bare);
            self.dial_bootnode(peer);
        }
    }

    fn dial_bootnode(&mut self, peer: PeerId) {
        let Some(addr) = self.peers.bootnode_to_dial(&peer, Instant::now()) else {
            return;
        };
        if self.swarm.is_connected(&peer) {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%peer, error = %e, "bootnode dial failed at once");
            self.schedule_redial(peer);
        }
    }

    fn schedule_redial(&mut self, peer: PeerId) {
        if let Some(delay) = self.peers.schedule_redial(peer, Instant::now()) {
            tracing::debug!(%peer, ?delay, "bootnode redial scheduled");
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
                    Err(_) => {
                        self.inbox.close();
                        self.sync.clear_ready();
                    }
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

    fn can_deliver(&self) -> bool {
        let queued = self
            .events
            .max_capacity()
            .saturating_sub(self.events.capacity());
        !self.inbox.is_closed()
            && (self.inbox.has_events()
                || (self.sync.has_ready() && queued < SYNC_BLOCKS_IN_CHANNEL))
    }

    /// Control and gossip events first, then downloaded blocks.
    fn deliver(&mut self, permit: mpsc::OwnedPermit<NetworkEvent>) {
        if let Some(event) = self.inbox.pop() {
            permit.send(event);
        } else if let Some((block, peer)) = self.sync.pop_ready() {
            permit.send(NetworkEvent::Block {
                block,
                peer: peer.to_string(),
                origin: BlockOrigin::Sync,
            });
            self.pump_sync();
        }
    }

    // ----- commands -------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PublishBlock(bytes) => {
                let topic = self.names.blocks.hash();
                match Published::of(self.swarm.behaviour_mut().gossipsub.publish(topic, bytes)) {
                    Published::Sent => {}
                    Published::NoPeers => {
                        tracing::debug!(
                            "no peer subscribed to blocks yet; peers will sync the block"
                        );
                    }
                    Published::Failed(e) => tracing::warn!(error = %e, "block publish failed"),
                }
            }
            Command::PublishTx(bytes) => {
                let topic = self.names.txs.hash();
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                self.inbox
                    .publish_tx(bytes, |b| Published::of(gossipsub.publish(topic, b)));
            }
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
                self.sync.set_local_work(tip.total_work);
                self.maybe_start_sync();
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers.summaries());
            }
            Command::Dial(addr, reply) => {
                let _ = reply.send(self.dial_addr(&addr));
            }
            Command::BlockPeer(peer, reply) => {
                let result = self
                    .peers
                    .operator_block(&peer, Instant::now())
                    .map(|ban| self.apply_ban(ban));
                let _ = reply.send(result);
            }
            Command::UnblockPeer(peer, reply) => {
                let result = self.peers.operator_unblock(&peer).map(|u| {
                    tracing::info!(peer = %u.peer, "unblocked by the operator");
                    self.swarm.behaviour_mut().blocked.unblock_peer(u.peer);
                    if u.redial_now {
                        self.dial_bootnode(u.peer);
                    }
                });
                let _ = reply.send(result);
            }
            // Handled by the run loop.
            Command::Shutdown(ack) => {
                let _ = ack.send(());
            }
        }
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
            if self.peers.is_banned(&peer, Instant::now()) {
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

    fn misbehaved(&mut self, peer: PeerId, pts: f64, reason: &str) {
        if let Some(ban) = self.peers.penalize(peer, pts, reason, Instant::now()) {
            self.apply_ban(ban);
        }
    }

    /// A peer of another network: refuse it for a while.
    fn refuse_network(&mut self, peer: PeerId, reason: &str) {
        tracing::warn!(%peer, reason, "peer is not on this network");
        if let Some(ban) = self
            .peers
            .ban(peer, Some(BAN_DURATION), reason, Instant::now())
        {
            self.apply_ban(ban);
        }
    }

    /// Disconnects and refuses the peer through the block list; ends a round with it.
    fn apply_ban(&mut self, ban: BanDecision) {
        let BanDecision {
            peer,
            duration,
            reason,
            evicted,
        } = ban;
        tracing::warn!(%peer, ?duration, reason, "banning peer");
        let behaviour = self.swarm.behaviour_mut();
        if let Some(old) = evicted {
            behaviour.blocked.unblock_peer(old);
        }
        behaviour.blocked.block_peer(peer);
        behaviour.kad.remove_peer(&peer);
        if self.sync.round_peer() == Some(peer) {
            self.abort_round("peer banned", None);
        }
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
                BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                    peer,
                    is_new_peer: true,
                    ..
                }) => self.discovered(peer),
                BehaviourEvent::Kad(_) => {}
                BehaviourEvent::Mdns(mdns::Event::Discovered(list)) => {
                    for (peer, addr) in list {
                        self.swarm.add_peer_address(peer, addr);
                        self.discovered(peer);
                    }
                }
                BehaviourEvent::Mdns(_) => {}
                BehaviourEvent::Limits(never) => match never {},
                BehaviourEvent::Memory(never) => match never {},
                BehaviourEvent::Blocked(never) => match never {},
            },
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(self.local_peer_id));
                tracing::info!(addr = %full, "listening");
                self.inbox.push_control(NetworkEvent::Listening {
                    addr: full.to_string(),
                });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => {
                let address = endpoint.get_remote_address().clone();
                let outbound = endpoint.is_dialer();
                match self
                    .peers
                    .admit(peer_id, address, outbound, Instant::now(), now_ms())
                {
                    Admission::Accepted => self.send_status(peer_id),
                    Admission::Banned => {
                        let _ = self.swarm.disconnect_peer_id(peer_id);
                    }
                    Admission::Full => {
                        tracing::debug!(peer = %peer_id, "peer limit reached; disconnecting");
                        let _ = self.swarm.disconnect_peer_id(peer_id);
                    }
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?cause, "peer disconnected");
                if self.peers.remove(&peer_id) {
                    self.inbox.push_control(NetworkEvent::PeerDisconnected {
                        peer: peer_id.to_string(),
                    });
                }
                if self.sync.round_peer() == Some(peer_id) {
                    self.abort_round("sync peer disconnected", None);
                }
                self.schedule_redial(peer_id);
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

    /// A peer found by Kademlia or mDNS: remember it and dial it while below `max_peers`.
    fn discovered(&mut self, peer: PeerId) {
        self.peers.note_seen(peer);
        if self.swarm.is_connected(&peer) || !self.peers.wants_dial(&peer, Instant::now()) {
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
                let dispatch = self.inbox.on_message(
                    propagation_source,
                    message_id,
                    &message.topic,
                    message.data,
                );
                self.dispatch(dispatch);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                tracing::debug!(peer = %peer_id, %topic, "peer subscribed");
                if self.inbox.wants_flush(&topic) {
                    let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                    self.inbox.flush_pending_txs(|bytes| {
                        Published::of(gossipsub.publish(topic.clone(), bytes))
                    });
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

    fn dispatch(&mut self, dispatch: Dispatch) {
        match dispatch {
            Dispatch::Queued => {}
            Dispatch::Report(msg, acceptance) => self.report(&msg, acceptance),
            Dispatch::DecodeBlock(msg, data) => {
                let tx = self.internal_tx.clone();
                let max_txs = self.config.max_block_txs;
                tokio::task::spawn_blocking(move || {
                    let result = decode_block(&data, max_txs);
                    let _ = tx.blocking_send(Internal::GossipBlock { msg, result });
                });
            }
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
                if let Ok(block) = &result {
                    self.peers.note_height(&msg.source, block.header.height);
                }
                let dispatch = self.inbox.block_decoded(msg, result);
                self.dispatch(dispatch);
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
        if !self.peers.begin_status(&peer) {
            return;
        }
        let request = SyncRequest::Status(self.our_status());
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
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
                    let reason = format!("malformed sync request: {e}");
                    self.misbehaved(peer, points::BAD_REQUEST, &reason);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn respond(&mut self, channel: ResponseChannel<SyncResponse>, response: SyncResponse) {
        let behaviour = self.swarm.behaviour_mut();
        if behaviour.sync.send_response(channel, response).is_err() {
            tracing::debug!("sync response dropped: the request closed");
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if !self.peers.take_request_token(&peer, Instant::now()) {
            self.respond(channel, SyncResponse::Refused(Refusal::RateLimited));
            let reason = "sync requests over the rate limit";
            self.misbehaved(peer, points::RATE_LIMITED, reason);
            return;
        }
        match request {
            SyncRequest::Status(status) => {
                let ours = self.our_status();
                self.respond(channel, SyncResponse::Status(ours));
                self.on_peer_status(peer, status);
            }
            SyncRequest::GetHeaders { locator, max } => self.serve(channel, move |store| {
                serve_headers(store, &locator, max).map(SyncResponse::Headers)
            }),
            SyncRequest::GetBlocks(hashes) => self.serve(channel, move |store| {
                serve_blocks(store, &hashes).map(SyncResponse::BlocksRaw)
            }),
        }
    }

    /// Runs a store read on the blocking pool; the response comes back as [`Internal::Serve`].
    fn serve<F>(&mut self, channel: ResponseChannel<SyncResponse>, job: F)
    where
        F: FnOnce(&StoreReader) -> Result<SyncResponse, peerchain_ledger::StoreError>
            + Send
            + 'static,
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
        let idle = self.sync.is_idle();
        let Some(update) = self.peers.on_status(&peer, status) else {
            return;
        };
        if update.first {
            tracing::info!(%peer, height = status.height, "peer connected");
            self.inbox.push_control(NetworkEvent::PeerConnected {
                peer: peer.to_string(),
            });
        }
        if let Some(missing) = update.pending_ancestor
            && status.total_work <= self.local_tip.total_work
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
        // Refresh the peer's status first: if it has more work, a sync round fetches
        // everything missing, whatever the depth; otherwise the one block is fetched.
        if self.sync.ancestor_wanted(&missing) && self.peers.set_pending_ancestor(&p, missing) {
            self.send_status(p);
        }
    }

    fn fetch_ancestor(&mut self, peer: PeerId, missing: Hash) {
        if !self.peers.take_ancestor_token(&peer, Instant::now()) {
            tracing::debug!(%peer, %missing, "ancestor fetch budget exhausted");
            return;
        }
        self.sync.note_ancestor(missing);
        let request = SyncRequest::GetBlocks(vec![missing]);
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests
            .insert(id, (peer, RequestKind::Ancestor(missing)));
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, response: SyncResponse) {
        let Some((_, kind)) = self.requests.remove(&id) else {
            return; // from an aborted round
        };
        if kind == RequestKind::Status {
            self.peers.end_status(&peer);
        }
        let now = Instant::now();
        match (kind, response) {
            (_, SyncResponse::Malformed(reason)) => {
                let reason = format!("malformed response: {reason}");
                self.sync_fault(peer, kind, points::INVALID_SYNC_DATA, &reason);
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
                let end = self.sync.on_headers(peer, id, headers, now, io!(self));
                self.on_round_end(end);
            }
            (RequestKind::Blocks, SyncResponse::Blocks(blocks)) => {
                let end = self.sync.on_blocks(id, blocks, now, io!(self));
                self.on_round_end(end);
            }
            (RequestKind::Ancestor(missing), SyncResponse::Blocks(blocks)) => {
                match blocks.into_iter().next() {
                    Some(block) if block.hash() == missing => self.sync.push_ready(block, peer),
                    Some(block) => {
                        let reason = format!("sent block {} for {missing}", block.hash());
                        self.sync_fault(peer, kind, points::INVALID_SYNC_DATA, &reason);
                    }
                    None => tracing::debug!(%peer, %missing, "peer does not have the ancestor"),
                }
            }
            (kind, other) => {
                let reason = format!(
                    "unexpected response {} to a {kind:?} request",
                    response_name(&other)
                );
                self.sync_fault(peer, kind, points::INVALID_SYNC_DATA, &reason);
            }
        }
    }

    /// A peer sent bad sync data: penalise it and, for round requests, abort the round.
    fn sync_fault(&mut self, peer: PeerId, kind: RequestKind, pts: f64, reason: &str) {
        tracing::warn!(%peer, ?kind, reason, "bad sync data");
        if self.is_round_request(peer, kind) {
            self.abort_round(reason, Some(pts));
        } else {
            self.misbehaved(peer, pts, reason);
        }
    }

    fn is_round_request(&self, peer: PeerId, kind: RequestKind) -> bool {
        matches!(kind, RequestKind::Headers | RequestKind::Blocks)
            && self.sync.round_peer() == Some(peer)
    }

    fn on_outbound_failure(&mut self, peer: PeerId, id: OutboundRequestId, error: OutboundFailure) {
        let Some((_, kind)) = self.requests.remove(&id) else {
            return;
        };
        tracing::debug!(%peer, ?kind, %error, "sync request failed");
        if kind == RequestKind::Status {
            self.peers.end_status(&peer);
        }
        match error {
            OutboundFailure::UnsupportedProtocols => {
                self.refuse_network(peer, "does not speak this network's sync protocol");
            }
            OutboundFailure::Timeout => match kind {
                RequestKind::Headers | RequestKind::Blocks => {
                    self.sync_fault(peer, kind, points::STALLED, "sync request timed out");
                }
                RequestKind::Status if !self.peers.is_handshaked(&peer) => {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
                RequestKind::Status | RequestKind::Ancestor(_) => {}
            },
            OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let reason = format!("invalid response: {e}");
                self.sync_fault(peer, kind, points::INVALID_SYNC_DATA, &reason);
            }
            _ => {
                if self.is_round_request(peer, kind) {
                    self.abort_round(&format!("request failed: {error}"), None);
                }
            }
        }
    }

    // ----- sync rounds ----------------------------------------------------------------

    /// Starts a round with the peer of most work above ours, if any.
    fn maybe_start_sync(&mut self) {
        if !self.sync.is_idle() {
            return;
        }
        let now = Instant::now();
        let Some((peer, status)) = self.peers.best_sync_peer(self.sync.work_floor(), now) else {
            return;
        };
        tracing::info!(
            %peer,
            height = status.height,
            local_height = self.local_tip.height,
            "starting sync round"
        );
        if self.sync.start(peer, status.total_work, now) {
            self.inbox.push_control(NetworkEvent::Syncing(true));
        }
        self.pump_sync();
    }

    /// Sends the requests the current round can make now, and handles its end.
    fn pump_sync(&mut self) {
        let end = self.sync.pump(Instant::now(), io!(self));
        self.on_round_end(end);
    }

    fn abort_round(&mut self, reason: &str, penalty: Option<f64>) {
        if let Some(aborted) = self.sync.abort(reason, penalty, Instant::now()) {
            self.round_aborted(aborted);
        }
    }

    fn on_round_end(&mut self, end: Option<RoundEnd<OutboundRequestId>>) {
        match end {
            None => {}
            Some(RoundEnd::Finished(finished)) => self.round_finished(finished),
            Some(RoundEnd::Aborted(aborted)) => self.round_aborted(aborted),
        }
    }

    fn round_finished(&mut self, f: Finished) {
        tracing::info!(
            peer = %f.peer,
            blocks = f.released,
            secs = f.elapsed.as_secs_f64(),
            "sync round finished"
        );
        if let Some(reason) = &f.lied {
            self.misbehaved(f.peer, points::LIED_ABOUT_WORK, reason);
        }
        // Trust only what was served until the peer announces more.
        self.peers.lower_claim(&f.peer, f.served);
        if let Some(until) = f.cooldown_until {
            self.peers.set_sync_cooldown(&f.peer, until);
        }
        self.maybe_start_sync();
    }

    /// Forgets the round's requests (late answers are ignored), applies the cooldown and the
    /// penalty, and tries another peer. Blocks already released stay queued.
    fn round_aborted(&mut self, a: Aborted<OutboundRequestId>) {
        tracing::info!(peer = %a.peer, reason = a.reason, "sync round aborted");
        for id in &a.stale {
            self.requests.remove(id);
        }
        self.peers.set_sync_cooldown(&a.peer, a.cooldown_until);
        if let Some(pts) = a.penalty {
            self.misbehaved(a.peer, pts, &a.reason);
        }
        self.maybe_start_sync();
    }

    // ----- housekeeping ---------------------------------------------------------------

    fn on_tick(&mut self) {
        let now = Instant::now();
        if self.inbox.is_closed() {
            self.sync.clear_ready();
        }
        for peer in self.peers.due_redials(now) {
            tracing::debug!(%peer, "redialling bootnode");
            self.dial_bootnode(peer);
        }
        // Sync: continue a round waiting for pacing or buffer room; report the end.
        self.pump_sync();
        self.maybe_start_sync();
        let housekeeping = self.sync.housekeeping(now);
        if housekeeping.syncing_done {
            self.inbox.push_control(NetworkEvent::Syncing(false));
        }
        if housekeeping.retry {
            self.maybe_start_sync();
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
            let gossipsub = &self.swarm.behaviour().gossipsub;
            let bans = self.peers.ban_low_scores(|p| gossipsub.peer_score(p), now);
            for ban in bans {
                self.apply_ban(ban);
            }
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

    fn slow_tick(&mut self, now: Instant) {
        for peer in self.peers.expire_bans(now) {
            tracing::info!(%peer, "ban expired");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            self.schedule_redial(peer);
        }
        for peer in self.peers.stale_handshakes(now) {
            tracing::debug!(%peer, "no status handshake in time; disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        if now.saturating_duration_since(self.last_status_refresh) >= STATUS_REFRESH {
            self.last_status_refresh = now;
            for peer in self.peers.handshaked() {
                self.send_status(peer);
            }
        }
        // Periodic discovery.
        let below_max = self.peers.connected_count() < self.config.max_peers as usize;
        if below_max
            && self
                .last_bootstrap
                .is_none_or(|t| now.saturating_duration_since(t) >= KAD_BOOTSTRAP_INTERVAL)
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
