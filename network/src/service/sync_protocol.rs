//! The service's routing of the sync protocol (`/peerchain/G/sync/1`): inbound requests are
//! rate-limited through the [`crate::peers::PeerBook`], queued in the
//! [`crate::serving::ServeQueue`] (byte budgets per peer and in total, released on
//! `ResponseSent` / `InboundFailure`) and served from the store on the blocking pool; a peer
//! that does not read its responses is penalised and disconnected. Outbound requests (status,
//! round, ancestor) are recorded in the [`RequestTable`], and each answer it classifies goes to
//! the peer book, the [`crate::sync_round::SyncState`] or a penalty. The glue that starts and
//! ends rounds lives here too.
//!
//! It must never: decide policy itself (rate limits, penalties and peer choice are the peer
//! book's, round progress is the state machine's, the meaning of an answer is the request
//! table's, the serving budget is the serve queue's); read the store on the service task
//! beyond the locator and `has_block` checks a round needs; or read more than `MAX_SERVING`
//! requests at once.

use std::time::Instant;

use libp2p::request_response::{
    self, InboundFailure, InboundRequestId, OutboundFailure, OutboundRequestId, ResponseChannel,
};
use libp2p::{PeerId, Swarm};
use peerchain_ledger::types::{HEADER_LEN, TX_ENCODED_LEN};
use peerchain_ledger::{Hash, StoreReader, U256};

use super::{Internal, Service};
use crate::adversary::Handled;
use crate::behaviour::Behaviour;
use crate::codec::{Refusal, Status, SyncRequest, SyncResponse};
use crate::config::{MAX_HEADERS, SYNC_RESPONSE_SOFT_BYTES, points};
use crate::requests::{Answer, Purpose, RequestTable};
use crate::serving::{QueueFull, dedup_hashes};
use crate::sync::{build_locator, serve_block_txs, serve_blocks, serve_headers};
use crate::sync_round::{Aborted, Finished, RoundEnd, RoundIo};
use crate::types::NetworkEvent;

/// An inbound `GetHeaders` or `GetBlocks` waiting in the serve queue.
#[derive(Debug)]
pub(crate) enum ServeItem {
    /// Headers after the locator.
    Headers {
        channel: ResponseChannel<SyncResponse>,
        locator: Vec<Hash>,
        max: u32,
    },
    /// Blocks by hash (duplicates removed).
    Blocks {
        channel: ResponseChannel<SyncResponse>,
        hashes: Vec<Hash>,
    },
    /// Transactions of a block, by position.
    BlockTxs {
        channel: ResponseChannel<SyncResponse>,
        block: Hash,
        indexes: Vec<u32>,
    },
}

impl ServeItem {
    fn into_channel(self) -> ResponseChannel<SyncResponse> {
        match self {
            ServeItem::Headers { channel, .. }
            | ServeItem::Blocks { channel, .. }
            | ServeItem::BlockTxs { channel, .. } => channel,
        }
    }
}

/// Bytes of a response carrying `count` items of `each` bytes, plus framing.
fn response_bytes(count: usize, each: usize) -> usize {
    count
        .saturating_mul(each.saturating_add(4))
        .saturating_add(5)
}

/// A sync round's view of the store and the swarm; every request it sends is recorded in the
/// request table.
struct SwarmIo<'a> {
    swarm: &'a mut Swarm<Behaviour>,
    store: &'a StoreReader,
    requests: &'a mut RequestTable<OutboundRequestId>,
}

impl RoundIo<OutboundRequestId> for SwarmIo<'_> {
    fn locator(&mut self) -> Result<Vec<(Hash, u64, U256)>, String> {
        build_locator(self.store).map_err(|e| e.to_string())
    }

    fn has_block(&mut self, hash: &Hash) -> bool {
        matches!(self.store.has_block(hash), Ok(true))
    }

    fn send(&mut self, peer: PeerId, request: SyncRequest) -> OutboundRequestId {
        let purpose = match request {
            SyncRequest::GetHeaders { .. } => Purpose::Headers,
            _ => Purpose::Blocks,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, peer, purpose);
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

impl Service {
    // ----- serving --------------------------------------------------------------------

    fn our_status(&self) -> Status {
        let honest = Status {
            genesis: self.config.genesis_hash,
            tip: self.local_tip.hash,
            height: self.local_tip.height,
            total_work: self.local_tip.total_work,
        };
        match &self.adversary {
            Some(adversary) => adversary.claimed_status(honest),
            None => honest,
        }
    }

    pub(super) fn on_sync_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => self.on_request(peer, request_id, request, channel),
                request_response::Message::Response {
                    request_id,
                    mut response,
                } => {
                    if let Some(adversary) = self.adversary.as_mut() {
                        match adversary.on_response(&mut self.swarm, peer, &request_id, response) {
                            Some(r) => response = r,
                            None => return,
                        }
                    }
                    if let Some((purpose, answer)) =
                        self.requests.on_response(&request_id, response)
                    {
                        self.on_answer(peer, request_id, purpose, answer);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(adversary) = self.adversary.as_mut()
                    && adversary.on_failure(peer, &request_id)
                {
                    return;
                }
                self.on_outbound_failure(peer, request_id, &error);
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => self.on_inbound_failure(peer, request_id, &error),
            request_response::Event::ResponseSent { request_id, .. } => {
                self.serving.finished(&request_id);
                self.pump_serving();
            }
        }
    }

    /// An inbound request ended without its response being sent: release its budget; a
    /// response that timed out long after we handed it over was not read.
    fn on_inbound_failure(
        &mut self,
        peer: PeerId,
        request_id: InboundRequestId,
        error: &InboundFailure,
    ) {
        tracing::debug!(%peer, %error, "inbound sync request failed");
        let now = Instant::now();
        let released = self.serving.finished(&request_id);
        match error {
            InboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let reason = format!("malformed sync request: {e}");
                self.misbehaved(peer, points::BAD_REQUEST, &reason);
            }
            InboundFailure::Timeout if released.is_some_and(|r| r.unread(now)) => {
                let bytes = released.map_or(0, |r| r.bytes);
                let reason = format!("did not read a sync response of {bytes} bytes in time");
                tracing::warn!(%peer, bytes, "peer does not read its sync responses; disconnecting");
                self.misbehaved(peer, points::SLOW_READER, &reason);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            _ => {}
        }
        self.pump_serving();
    }

    pub(super) fn respond(
        &mut self,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    ) {
        let behaviour = self.swarm.behaviour_mut();
        if behaviour.sync.send_response(channel, response).is_err() {
            tracing::debug!("sync response dropped: the request timed out or closed");
        }
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        key: InboundRequestId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if !self.peers.take_request_token(&peer, Instant::now()) {
            self.respond(channel, SyncResponse::Refused(Refusal::RateLimited));
            let reason = "sync requests over the rate limit";
            self.misbehaved(peer, points::RATE_LIMITED, reason);
            return;
        }
        let (request, channel) = match self.adversary.as_mut() {
            Some(adversary) => {
                match adversary.on_request(&mut self.swarm, peer, request, channel) {
                    Handled::Yes => return,
                    Handled::No(request, channel) => (request, channel),
                }
            }
            None => (request, channel),
        };
        let max_block = self.config.max_block_bytes();
        let (item, want, min) = match request {
            SyncRequest::Status(status) => {
                let ours = self.our_status();
                self.respond(channel, SyncResponse::Status(ours));
                self.on_peer_status(peer, status);
                return;
            }
            SyncRequest::GetHeaders { locator, max } => {
                let want = response_bytes((max as usize).min(MAX_HEADERS), HEADER_LEN);
                (
                    ServeItem::Headers {
                        channel,
                        locator,
                        max,
                    },
                    want,
                    want,
                )
            }
            SyncRequest::GetBlocks(hashes) => {
                let hashes = dedup_hashes(hashes);
                let want = response_bytes(hashes.len(), max_block)
                    .min(SYNC_RESPONSE_SOFT_BYTES.max(max_block));
                let min = response_bytes(1, max_block);
                (ServeItem::Blocks { channel, hashes }, want, min)
            }
            SyncRequest::GetBlockTxs { block, indexes } => {
                let want = response_bytes(indexes.len(), TX_ENCODED_LEN);
                let item = ServeItem::BlockTxs {
                    channel,
                    block,
                    indexes,
                };
                (item, want, want)
            }
        };
        match self.serving.enqueue(key, peer, want, min, item) {
            Ok(()) => self.pump_serving(),
            Err((full, item)) => {
                self.respond(item.into_channel(), SyncResponse::Refused(Refusal::Busy));
                if full == QueueFull::Peer {
                    let reason = "sync requests beyond its serving queue (it does not read)";
                    self.misbehaved(peer, points::OVER_BUDGET, reason);
                }
            }
        }
    }

    /// Starts the store reads the serve queue allows now, on the blocking pool; each response
    /// comes back as [`Internal::Serve`].
    pub(super) fn pump_serving(&mut self) {
        while let Some(grant) = self.serving.next(Instant::now()) {
            let store = self.store.clone();
            let tx = self.internal_tx.clone();
            let (key, cap) = (grant.key, grant.bytes);
            tokio::task::spawn_blocking(move || {
                let (channel, result) = match grant.item {
                    ServeItem::Headers {
                        channel,
                        locator,
                        max,
                    } => (
                        channel,
                        serve_headers(&store, &locator, max).map(SyncResponse::Headers),
                    ),
                    ServeItem::Blocks { channel, hashes } => (
                        channel,
                        serve_blocks(&store, &hashes, cap).map(SyncResponse::BlocksRaw),
                    ),
                    ServeItem::BlockTxs {
                        channel,
                        block,
                        indexes,
                    } => (
                        channel,
                        serve_block_txs(&store, &block, &indexes).map(|txs| {
                            txs.map_or(SyncResponse::Refused(Refusal::BadRequest), |txs| {
                                SyncResponse::BlockTxs(txs)
                            })
                        }),
                    ),
                };
                let response = result.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "store read failed while serving sync");
                    SyncResponse::Refused(Refusal::Internal)
                });
                let bytes = match &response {
                    SyncResponse::BlocksRaw(blocks) => {
                        response_bytes(blocks.len(), 0) + blocks.iter().map(Vec::len).sum::<usize>()
                    }
                    SyncResponse::Headers(headers) => response_bytes(headers.len(), HEADER_LEN),
                    SyncResponse::BlockTxs(txs) => response_bytes(txs.len(), TX_ENCODED_LEN),
                    _ => 16,
                };
                let _ = tx.blocking_send(Internal::Serve {
                    key,
                    channel,
                    response,
                    bytes,
                });
            });
        }
    }

    /// A store read finished: hand the response to libp2p (its bytes stay in the budget until
    /// it is sent or fails).
    pub(super) fn served(
        &mut self,
        key: InboundRequestId,
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
        bytes: usize,
    ) {
        if self.serving.read_done(&key, bytes, Instant::now())
            && self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, response)
                .is_err()
        {
            tracing::debug!("sync response dropped: the request timed out or closed");
            self.serving.finished(&key);
        }
        self.pump_serving();
    }

    /// Releases budget entries libp2p never reported on (a safety net).
    pub(super) fn sweep_serving(&mut self, now: Instant) {
        let swept = self.serving.sweep(now);
        if !swept.is_empty() {
            tracing::warn!(
                count = swept.len(),
                "released serving budget never reported on"
            );
            self.pump_serving();
        }
    }

    // ----- requesting -----------------------------------------------------------------

    pub(super) fn send_status(&mut self, peer: PeerId) {
        if !self.peers.begin_status(&peer) {
            return;
        }
        let request = SyncRequest::Status(self.our_status());
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, peer, Purpose::Status);
    }

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
            // Reached: its dial wait starts over (not on a bare connection, which a full
            // peer closes at once).
            self.known.connected(&peer);
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

    pub(super) fn request_ancestors(&mut self, peer: &str, missing: Hash) {
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
        if !self.sync.ancestor_room() {
            tracing::debug!(%peer, %missing, "download buffer full; ancestor not fetched");
            return;
        }
        if !self.peers.take_ancestor_token(&peer, Instant::now()) {
            tracing::debug!(%peer, %missing, "ancestor fetch budget exhausted");
            return;
        }
        self.sync.note_ancestor(missing);
        let request = SyncRequest::GetBlocks(vec![missing]);
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.requests.insert(id, peer, Purpose::Ancestor(missing));
    }

    pub(super) fn request_block_txs(&mut self, peer: &str, block: Hash, indexes: Vec<u32>) {
        let Ok(p) = peer.parse::<PeerId>() else {
            tracing::debug!(%peer, "request_block_txs: invalid peer id");
            return;
        };
        let count = indexes.len();
        let request = SyncRequest::GetBlockTxs { block, indexes };
        let id = self.swarm.behaviour_mut().sync.send_request(&p, request);
        self.requests
            .insert(id, p, Purpose::BlockTxs { block, count });
    }

    /// The answer to a `GetBlockTxs` for `block`, handed to the node (`None`: nothing to use).
    fn answer_block_txs(&mut self, peer: PeerId, block: Hash, answer: Answer) {
        let txs = match answer {
            Answer::BlockTxs(txs) => Some(txs),
            Answer::Fault { points, reason } => {
                tracing::warn!(%peer, reason, "bad block transactions");
                self.misbehaved(peer, points, &reason);
                None
            }
            other => {
                tracing::debug!(%peer, %block, ?other, "block transactions not had");
                None
            }
        };
        self.inbox.push_control(NetworkEvent::BlockTxs {
            block,
            peer: peer.to_string(),
            txs,
        });
    }

    fn on_outbound_failure(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        error: &OutboundFailure,
    ) {
        if let Some((purpose, answer)) = self.requests.on_failure(&id, error) {
            tracing::debug!(%peer, ?purpose, %error, "sync request failed");
            self.on_answer(peer, id, purpose, answer);
        }
    }

    /// Routes what an answer (or failure) to request `id` means.
    fn on_answer(&mut self, peer: PeerId, id: OutboundRequestId, purpose: Purpose, answer: Answer) {
        if purpose == Purpose::Status {
            self.peers.end_status(&peer);
        }
        if matches!(purpose, Purpose::Ancestor(_)) {
            self.sync.ancestor_done();
        }
        if let Purpose::BlockTxs { block, .. } = purpose {
            self.answer_block_txs(peer, block, answer);
            return;
        }
        // A round request of the current round's peer (any other was forgotten on abort).
        let in_round = purpose.is_round() && self.sync.round_peer() == Some(peer);
        let now = Instant::now();
        match answer {
            Answer::Status(status) => self.on_peer_status(peer, status),
            Answer::Headers(headers) => {
                let end = self.sync.on_headers(peer, id, headers, now, io!(self));
                self.on_round_end(end);
            }
            Answer::Blocks(blocks) => {
                let end = self.sync.on_blocks(id, blocks, now, io!(self));
                self.on_round_end(end);
            }
            Answer::Ancestor(block) => self.sync.push_ready(block, peer),
            Answer::BlockTxs(_) | Answer::BlockTxsMissing => {}
            Answer::AncestorMissing(missing) => {
                tracing::debug!(%peer, %missing, "peer does not have the ancestor");
            }
            Answer::Refused(refusal) => {
                tracing::debug!(%peer, ?refusal, ?purpose, "sync request refused");
                if purpose.is_round() {
                    self.abort_round(&format!("request refused: {refusal:?}"), None);
                }
            }
            Answer::Fault { points, reason } => {
                tracing::warn!(%peer, ?purpose, reason, "bad sync data");
                if in_round {
                    self.abort_round(&reason, Some(points));
                } else {
                    self.misbehaved(peer, points, &reason);
                }
            }
            Answer::OtherNetwork => {
                self.refuse_network(peer, "does not speak this network's sync protocol");
            }
            Answer::StatusTimedOut => {
                if !self.peers.is_handshaked(&peer) {
                    let _ = self.swarm.disconnect_peer_id(peer);
                }
            }
            Answer::Failed(detail) => {
                if in_round {
                    self.abort_round(&format!("request failed: {detail}"), None);
                }
            }
            Answer::Nothing => {}
        }
    }

    // ----- rounds ---------------------------------------------------------------------

    /// Starts a round with the peer of most work above ours, if any.
    pub(super) fn maybe_start_sync(&mut self) {
        if !self.sync.is_idle() || self.adversary.as_ref().is_some_and(|a| !a.mode().syncs()) {
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
    pub(super) fn pump_sync(&mut self) {
        let end = self.sync.pump(Instant::now(), io!(self));
        self.on_round_end(end);
    }

    pub(super) fn abort_round(&mut self, reason: &str, penalty: Option<f64>) {
        if let Some(aborted) = self.sync.abort(reason, penalty, Instant::now()) {
            self.round_aborted(aborted);
        }
    }

    pub(super) fn on_round_end(&mut self, end: Option<RoundEnd<OutboundRequestId>>) {
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
            self.requests.forget(id);
        }
        self.peers.set_sync_cooldown(&a.peer, a.cooldown_until);
        if let Some(served) = a.served {
            self.peers.lower_claim(&a.peer, served);
        }
        // One penalty for both offences (a stall and the lie it hid), so they add up at once.
        match (a.penalty, &a.lied) {
            (Some(pts), Some(lie)) => {
                let reason = format!("{}; {lie}", a.reason);
                self.misbehaved(a.peer, pts + points::LIED_ABOUT_WORK, &reason);
            }
            (Some(pts), None) => self.misbehaved(a.peer, pts, &a.reason),
            (None, Some(lie)) => self.misbehaved(a.peer, points::LIED_ABOUT_WORK, lie),
            (None, None) => {}
        }
        self.maybe_start_sync();
    }
}
