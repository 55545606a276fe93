//! The service task: the one owner of the swarm. It `select!`s over swarm events, commands
//! from [`crate::NetworkHandle`], results of blocking jobs (store reads, block decoding) and a
//! housekeeping tick, and routes each to the part that owns the concern:
//!
//! - [`PeerBook`] (`peers.rs`): per-peer bookkeeping, penalties, bans, redials;
//! - [`SyncState`] (`sync_round.rs`): the header-first sync round and the download buffer;
//! - [`GossipInbox`] (`gossip.rs`): gossip dispatch, the event lanes (control, blocks,
//!   transactions), transaction republishing;
//! - [`TxBudgets`] (`tx_budget.rs`): how many gossiped transactions each peer may relay;
//! - [`RequestTable`] (`requests.rs`): outstanding sync requests and what their answers mean;
//! - [`ServeQueue`] (`serving.rs`): inbound sync requests waiting, being read, and the bytes of
//!   responses each peer holds;
//! - [`AddressBook`] (`address_book.rs`): the peers to dial again after a restart, saved as
//!   `peers.txt` (glue in `service/known_peers.rs`);
//! - [`LinkShaper`] (`link_faults.rs`): operator-set link faults on what chosen peers send
//!   (glue in `service/link_shaping.rs`);
//! - [`AdversaryState`] (`adversary.rs`), only when `NetworkConfig::adversary` is set.
//!
//! The sync protocol's own routing (serving, requesting, starting and ending rounds) is in
//! the child module `service/sync_protocol.rs`.
//!
//! The service reads the clock and applies the parts' decisions to libp2p (dials, blocks,
//! requests, responses, validation reports); it keeps no policy of its own beyond routing.

pub(crate) mod known_peers;
mod link_shaping;
mod sync_protocol;

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{InboundRequestId, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, identify, kad, mdns};
use peerchain_ledger::StoreReader;
use tokio::sync::{mpsc, oneshot};

use crate::address_book::AddressBook;
use crate::adversary::AdversaryState;
use crate::behaviour::{Behaviour, BehaviourEvent, Names};
use crate::codec::{SyncResponse, decode_compact_block, tx_batch_len};
use crate::config::*;
use crate::error::NetworkError;
use crate::gossip::{Dispatch, GossipInbox, Published, log_block_publish, to_gossipsub};
use crate::handle::Command;
use crate::link_faults::LinkShaper;
use crate::peers::{Admission, BanDecision, PeerBook, without_p2p};
use crate::requests::RequestTable;
use crate::serving::ServeQueue;
use crate::sync_round::SyncState;
use crate::timers::Timers;
use crate::tx_budget::TxBudgets;
#[cfg(feature = "test-hooks")]
use crate::types::RawTopic;
use crate::types::{BannedPeer, BlockOrigin, CompactBlock, LocalTip, MessageRef, NetworkEvent};

/// Results of jobs run on the blocking pool.
pub(crate) enum Internal {
    /// A sync response read from the store (`bytes` long) for inbound request `key`.
    Serve {
        key: InboundRequestId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
        bytes: usize,
    },
    /// A gossip (compact) block decoded (and its Merkle root checked).
    GossipBlock {
        msg: MessageRef,
        result: Result<CompactBlock, String>,
    },
}

/// Sleeps until `at` (for ever when `None`; the caller's `if` guard keeps that branch off).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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
    tx_budgets: TxBudgets,
    /// Gossiped transactions ignored for being over their relay's budget, since start.
    tx_over_budget: u64,
    /// Outstanding sync requests of every kind.
    requests: RequestTable<OutboundRequestId>,
    /// Inbound sync requests waiting or being read, and the bytes of responses in flight.
    serving: ServeQueue<InboundRequestId, sync_protocol::ServeItem>,
    timers: Timers,
    /// The deliberate misbehaviour of an adversary instance (`None` for honest nodes).
    adversary: Option<AdversaryState>,
    /// Peers learned from identify, saved in `peers.txt` and dialled again after a restart.
    known: AddressBook,
    /// Operator-set link faults and the messages they hold.
    links: LinkShaper<BehaviourEvent>,
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
        known: AddressBook,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_CHANNEL);
        let local_peer_id = *swarm.local_peer_id();
        let link_seed = config.fault_seed.unwrap_or_else(rand::random);
        let now = Instant::now();
        let inbox = GossipInbox::new(names.blocks.hash(), names.txs.hash());
        let adversary = config.adversary.clone().map(|mode| {
            let status = crate::codec::Status {
                genesis: config.genesis_hash,
                tip: local_tip.hash,
                height: local_tip.height,
                total_work: local_tip.total_work,
            };
            AdversaryState::start(mode, &config, &names, status, &bootnodes)
        });
        let peers = PeerBook::new(local_peer_id, config.max_peers, bootnodes)
            .with_ip_limits(config.max_inbound_per_ip, config.max_inbound_per_loopback)
            .with_loopback_bans(config.ban_loopback_addresses);
        Service {
            peers,
            known,
            adversary,
            sync: SyncState::new(local_tip.total_work, now),
            inbox,
            tx_budgets: TxBudgets::default(),
            tx_over_budget: 0,
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
            requests: RequestTable::new(),
            serving: ServeQueue::new(),
            timers: Timers::new(now),
            links: LinkShaper::new(link_seed),
        }
    }

    /// Dials every bootnode and the known peers (called once before [`Service::run`]).
    pub(crate) fn dial_bootnodes(&mut self) {
        for (peer, addr) in self.peers.bootnodes() {
            let bare = without_p2p(&addr);
            self.swarm.add_peer_address(peer, bare.clone());
            self.swarm.behaviour_mut().kad.add_address(&peer, bare);
            self.dial_bootnode(peer);
        }
        self.dial_known_peers(Instant::now());
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
            let held_due = self.links.next_due();
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
                () = sleep_until(held_due), if held_due.is_some() => self.release_held(),
            }
        };
        tracing::info!("network service stopping");
        self.save_known_peers(Instant::now(), true);
        // Drop the swarm (closing every connection) and the store before acknowledging, so a
        // caller may reopen the same data directory at once.
        drop(self);
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    // ----- event delivery -------------------------------------------------------------

    /// Events in the channel, not yet received (reserved permits count as taken).
    fn queued_events(&self) -> usize {
        self.events
            .max_capacity()
            .saturating_sub(self.events.capacity())
    }

    fn can_deliver(&self) -> bool {
        let queued = self.queued_events();
        !self.inbox.is_closed()
            && (self.inbox.has_priority()
                || (self.sync.has_ready() && queued < SYNC_BLOCKS_IN_CHANNEL)
                || (self.inbox.has_txs() && queued < TXS_IN_CHANNEL))
    }

    /// Control events and gossip blocks first, then downloaded blocks, then transactions
    /// (each of the last two only while few events wait in the channel).
    fn deliver(&mut self, permit: mpsc::OwnedPermit<NetworkEvent>) {
        // Not counting the permit in hand, as `can_deliver` did not.
        let queued = self.queued_events().saturating_sub(1);
        if let Some(event) = self.inbox.pop_priority() {
            permit.send(event);
        } else if queued < SYNC_BLOCKS_IN_CHANNEL
            && let Some((block, peer)) = self.sync.pop_ready()
        {
            permit.send(NetworkEvent::Block {
                block,
                peer: peer.to_string(),
                origin: BlockOrigin::Sync,
            });
            self.pump_sync();
        } else if let Some(event) = self.inbox.pop_tx() {
            permit.send(event);
        }
    }

    // ----- commands -------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PublishBlock(bytes) => {
                let topic = self.names.blocks.hash();
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                log_block_publish(Published::of(gossipsub.publish(topic, bytes)));
            }
            Command::PublishTxs(bytes) => {
                let topic = self.names.txs.hash();
                let gossipsub = &mut self.swarm.behaviour_mut().gossipsub;
                self.inbox
                    .publish_txs(bytes, |b| Published::of(gossipsub.publish(topic, b)));
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
            Command::Report(msg, acceptance) => self.report(&msg, to_gossipsub(acceptance)),
            Command::Penalize { peer, reason } => match peer.parse::<PeerId>() {
                Ok(p) => self.misbehaved(p, points::PENALIZE, &reason),
                Err(e) => tracing::warn!(%peer, error = %e, "penalize: invalid peer id"),
            },
            Command::RequestAncestors { peer, missing } => self.request_ancestors(&peer, missing),
            Command::RequestBlockTxs {
                peer,
                block,
                indexes,
            } => self.request_block_txs(&peer, block, indexes),
            Command::SetLocalTip(tip) => {
                self.local_tip = tip;
                self.sync.set_local_work(tip.total_work);
                self.maybe_start_sync();
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers.summaries());
            }
            Command::Banned(limit, reply) => {
                let _ = reply.send(self.banned_peers(limit));
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
            Command::SetLinkFault(peer, fault, reply) => {
                let _ = reply.send(self.set_link_fault(&peer, fault));
            }
            // Handled by the run loop.
            Command::Shutdown(ack) => {
                let _ = ack.send(());
            }
        }
    }

    /// The banned and blocked peers (at most `limit`), with when each ban ends.
    fn banned_peers(&self, limit: usize) -> Vec<BannedPeer> {
        let (now, now_ms) = (Instant::now(), now_ms());
        self.peers
            .banned(now, limit)
            .into_iter()
            .map(|(p, left)| BannedPeer {
                peer_id: p.to_string(),
                until_ms: left.map(|d| now_ms.saturating_add(d.as_millis() as u64)),
            })
            .collect()
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
        let ma = self.peers.check_dial(addr, Instant::now())?;
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
            address,
            duration,
            reason,
            evicted,
        } = ban;
        tracing::warn!(%peer, ?address, ?duration, reason, "banning peer");
        let behaviour = self.swarm.behaviour_mut();
        if let Some(old) = evicted {
            behaviour.blocked.unblock_peer(old);
        }
        behaviour.blocked.block_peer(peer);
        behaviour.kad.remove_peer(&peer);
        self.known.forget(&peer);
        if self.sync.round_peer() == Some(peer) {
            self.abort_round("peer banned", None);
        }
    }

    // ----- swarm events ---------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => {
                if let Some(event) = self.shape(event) {
                    self.on_behaviour(event);
                }
            }
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
                    Admission::AddressBanned => {
                        tracing::debug!(peer = %peer_id, "inbound from a banned address; disconnecting");
                        let _ = self.swarm.disconnect_peer_id(peer_id);
                    }
                    Admission::PerIpLimit => {
                        tracing::debug!(peer = %peer_id, "inbound limit of its IP address reached; disconnecting");
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
                self.tx_budgets.remove(&peer_id);
                if self.peers.remove(&peer_id) {
                    self.inbox.push_control(NetworkEvent::PeerDisconnected {
                        peer: peer_id.to_string(),
                    });
                }
                if self.sync.round_peer() == Some(peer_id) {
                    self.abort_round("sync peer disconnected", None);
                }
                if let Some(adversary) = self.adversary.as_mut() {
                    adversary.on_disconnected(&peer_id);
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

    /// Routes an event of a behaviour (after the link faults let it through).
    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
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
        self.learn_addresses(peer_id, &info.listen_addrs);
        if info.protocols.contains(&self.names.kad) {
            for addr in info.listen_addrs {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer_id, without_p2p(&addr));
            }
            self.timers.want_bootstrap();
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
                if self.inbox.is_tx_topic(&message.topic)
                    && !self.take_tx_budget(propagation_source, tx_batch_len(message.data.len()))
                {
                    let msg = MessageRef {
                        id: message_id,
                        source: propagation_source,
                    };
                    self.report(&msg, MessageAcceptance::Ignore);
                    return;
                }
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

    /// Takes a batch of `n` transactions from `peer`'s budget, whose rate follows its
    /// gossipsub score; `false` (ignore the batch) when it is spent.
    fn take_tx_budget(&mut self, peer: PeerId, n: usize) -> bool {
        let score = self.swarm.behaviour().gossipsub.peer_score(&peer);
        let ok = self.tx_budgets.take(peer, score, n, Instant::now());
        if !ok {
            self.tx_over_budget = self.tx_over_budget.saturating_add(1);
            if self.tx_over_budget.is_power_of_two() {
                tracing::debug!(%peer, ?score, ignored = self.tx_over_budget, "transactions over the peer's budget ignored");
            }
        }
        ok
    }

    fn dispatch(&mut self, dispatch: Dispatch) {
        match dispatch {
            Dispatch::Queued => {}
            Dispatch::Report(msg, acceptance) => self.report(&msg, acceptance),
            Dispatch::DecodeBlock(msg, data) => {
                let tx = self.internal_tx.clone();
                let max_txs = self.config.max_block_txs;
                tokio::task::spawn_blocking(move || {
                    let result = decode_compact_block(&data, max_txs);
                    let _ = tx.blocking_send(Internal::GossipBlock { msg, result });
                });
            }
        }
    }

    fn on_internal(&mut self, job: Internal) {
        match job {
            Internal::Serve {
                key,
                channel,
                response,
                bytes,
            } => self.served(key, channel, response, bytes),
            Internal::GossipBlock { msg, result } => {
                if let Ok(block) = &result {
                    self.peers.note_height(&msg.source, block.header.height);
                }
                let dispatch = self.inbox.block_decoded(msg, result);
                self.dispatch(dispatch);
            }
        }
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
        // Sync: end a round past its deadlines; continue one waiting for pacing or buffer
        // room; report the end.
        let end = self.sync.check_deadlines(now);
        self.on_round_end(end);
        self.pump_sync();
        self.maybe_start_sync();
        self.sweep_serving(now);
        if let Some(adversary) = self.adversary.as_mut() {
            let peers = self.peers.handshaked();
            adversary.on_tick(&mut self.swarm, &peers, now);
        }
        let housekeeping = self.sync.housekeeping(now);
        if housekeeping.syncing_done {
            self.inbox.push_control(NetworkEvent::Syncing(false));
        }
        if housekeeping.retry {
            self.maybe_start_sync();
        }
        let below_max = self.peers.connected_count() < self.config.max_peers as usize;
        let due = self.timers.due(now, below_max);
        if due.score_poll {
            let gossipsub = &self.swarm.behaviour().gossipsub;
            let bans = self.peers.ban_low_scores(|p| gossipsub.peer_score(p), now);
            for ban in bans {
                self.apply_ban(ban);
            }
        }
        if due.slow_tick {
            self.dial_known_peers(now);
            self.save_known_peers(now, false);
            for peer in self.peers.expire_bans(now) {
                tracing::info!(%peer, "ban expired");
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                self.schedule_redial(peer);
            }
            for peer in self.peers.stale_handshakes(now) {
                tracing::debug!(%peer, "no status handshake in time; disconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
        if due.status_refresh {
            for peer in self.peers.handshaked() {
                self.send_status(peer);
            }
        }
        if due.bootstrap
            && let Err(e) = self.swarm.behaviour_mut().kad.bootstrap()
        {
            tracing::debug!(error = %e, "kademlia bootstrap skipped");
        }
    }
}
