//! Peer management: the [`PeerBook`].
//!
//! It owns every per-peer fact the service keeps: the connected peers (address, direction,
//! status handshake results, best height, request budgets, sync cooldowns), the peers seen
//! since start, misbehaviour points, timed bans and operator blocks, the addresses those bans
//! cover, the per-IP bound on inbound peers, and the redial backoff of bootnodes.
//!
//! Peer ids are free, addresses are not: at most `max_inbound_per_ip` inbound peers are
//! admitted from one IP address (`max_inbound_per_loopback` on loopback, where a whole local
//! testnet shares 127.0.0.1), and a misbehaviour ban (points or gossip score) also refuses new
//! inbound connections from the banned peer's IP address for the ban's duration (loopback
//! addresses only when `ban_loopback_addresses` is set: a local testnet shares one). Peers already
//! connected from that address stay (each is judged on its own); bootnodes and the peers we
//! dial ourselves are exempt from both. Every method is synchronous and takes the clock (`now`) as an argument, so the
//! policies are tested without a network or a real clock.
//!
//! It must never: touch the swarm or any I/O (it returns decisions, such as a [`BanDecision`]
//! or the peers to redial, and the service applies them to libp2p); read the clock itself; or
//! grow without bound (connected peers are capped by `max_peers` plus bootnodes, the other
//! tables by the `MAX_*` bounds of `config.rs`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use peerchain_ledger::{Hash, U256};

use crate::codec::Status;
use crate::config::{
    ANCESTOR_BUDGET, BAN_DURATION, BAN_POINTS, BAN_SCORE, HANDSHAKE_TIMEOUT, MAX_ADDRESS_BANS,
    MAX_BANS, MAX_INBOUND_PER_IP, MAX_INBOUND_PER_LOOPBACK, MAX_PENALISED_PEERS, MAX_SEEN_PEERS,
    POINTS_DECAY_PER_SEC, REDIAL_MAX, REDIAL_MIN, REQUEST_BURST, REQUEST_RATE_PER_SEC,
};
use crate::error::NetworkError;
use crate::types::PeerSummary;

/// The peer id at the end of a multiaddr, if any.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The IP address of a multiaddr (its first `/ip4` or `/ip6` component), if any.
pub(crate) fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// The multiaddr without its `/p2p/..` components.
pub(crate) fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// A connected peer (one that passed the ban and peer-limit checks).
#[derive(Debug)]
struct PeerState {
    address: Multiaddr,
    /// The IP address of `address`, counted against the per-IP bound when inbound.
    ip: Option<IpAddr>,
    outbound: bool,
    /// Wall-clock time of the first connection (ms since the Unix epoch), for the API.
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

/// Misbehaviour points of one peer, decaying over time.
#[derive(Debug, Clone, Copy)]
struct Points {
    points: f64,
    at: Instant,
}

impl Points {
    fn decayed(&self, now: Instant) -> f64 {
        (self.points - now.saturating_duration_since(self.at).as_secs_f64() * POINTS_DECAY_PER_SEC)
            .max(0.0)
    }
}

/// A ban the service must apply to the swarm: block `peer` (closing its connections) and, when
/// `evicted` is set, unblock that older timed ban forgotten to stay within [`MAX_BANS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BanDecision {
    /// The peer to block.
    pub peer: PeerId,
    /// The IP address the ban covers too (misbehaviour bans of a connected peer).
    pub address: Option<IpAddr>,
    /// How long; `None` for an operator block (until unblocked).
    pub duration: Option<Duration>,
    /// Why, for the log.
    pub reason: String,
    /// A timed ban dropped to make room; the service unblocks it.
    pub evicted: Option<PeerId>,
}

/// What happens to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Tracked; the service starts the status handshake.
    Accepted,
    /// Banned: disconnect.
    Banned,
    /// `max_peers` reached (bootnodes are exempt): disconnect.
    Full,
    /// An inbound connection from an address covered by a ban: disconnect.
    AddressBanned,
    /// Its IP address has as many inbound peers as allowed: disconnect.
    PerIpLimit,
}

/// The result of a status message from a connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatusUpdate {
    /// This completed the handshake (the peer now counts as connected).
    pub first: bool,
    /// An ancestor that was waiting for this status refresh.
    pub pending_ancestor: Option<Hash>,
}

/// The result of an operator unblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unblocked {
    /// The peer to unblock in the swarm.
    pub peer: PeerId,
    /// It is a bootnode: dial it now (its backoff was reset).
    pub redial_now: bool,
}

/// A ban of an IP address: until when, and which peer's ban it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AddressBan {
    until: Instant,
    peer: PeerId,
}

/// Everything the node knows about other peers. See the module docs.
#[derive(Debug)]
pub(crate) struct PeerBook {
    local: PeerId,
    max_peers: usize,
    max_inbound_per_ip: usize,
    max_inbound_per_loopback: usize,
    /// Whether bans cover loopback addresses too.
    ban_loopback: bool,
    /// IP addresses covered by misbehaviour bans (bounded by [`MAX_ADDRESS_BANS`]).
    address_bans: HashMap<IpAddr, AddressBan>,
    bootnodes: HashMap<PeerId, Multiaddr>,
    peers: HashMap<PeerId, PeerState>,
    /// Peers that connected or were discovered since start, oldest first (bounded by
    /// [`MAX_SEEN_PEERS`]); `seen_set` mirrors it for lookups.
    seen: VecDeque<PeerId>,
    seen_set: HashSet<PeerId>,
    /// Bans: until when, `None` for operator blocks.
    bans: HashMap<PeerId, Option<Instant>>,
    misbehaviour: HashMap<PeerId, Points>,
    redials: HashMap<PeerId, Redial>,
}

impl PeerBook {
    /// A book for the local peer `local`, at most `max_peers` connected peers (bootnodes
    /// excepted) and the given bootnodes (full multiaddrs, `/p2p/<id>` included).
    pub(crate) fn new(
        local: PeerId,
        max_peers: u32,
        bootnodes: HashMap<PeerId, Multiaddr>,
    ) -> Self {
        PeerBook {
            local,
            max_peers: usize::try_from(max_peers).unwrap_or(usize::MAX),
            max_inbound_per_ip: MAX_INBOUND_PER_IP as usize,
            max_inbound_per_loopback: MAX_INBOUND_PER_LOOPBACK as usize,
            ban_loopback: false,
            address_bans: HashMap::new(),
            bootnodes,
            peers: HashMap::new(),
            seen: VecDeque::new(),
            seen_set: HashSet::new(),
            bans: HashMap::new(),
            misbehaviour: HashMap::new(),
            redials: HashMap::new(),
        }
    }

    /// Makes misbehaviour bans cover loopback addresses too.
    pub(crate) fn with_loopback_bans(mut self, on: bool) -> Self {
        self.ban_loopback = on;
        self
    }

    /// Sets the per-IP bounds on inbound peers (public addresses, loopback addresses).
    pub(crate) fn with_ip_limits(mut self, per_ip: u32, per_loopback: u32) -> Self {
        self.max_inbound_per_ip = per_ip as usize;
        self.max_inbound_per_loopback = per_loopback as usize;
        self
    }

    // ----- connections ----------------------------------------------------------------

    /// Records a peer found by discovery (Kademlia, mDNS): it becomes known to operator blocks.
    pub(crate) fn note_seen(&mut self, peer: PeerId) {
        if peer == self.local || !self.seen_set.insert(peer) {
            return;
        }
        if self.seen.len() >= MAX_SEEN_PEERS
            && let Some(old) = self.seen.pop_front()
        {
            self.seen_set.remove(&old);
        }
        self.seen.push_back(peer);
    }

    /// A first connection to `peer` was established. `since_ms` is the wall-clock time for
    /// the API.
    pub(crate) fn admit(
        &mut self,
        peer: PeerId,
        address: Multiaddr,
        outbound: bool,
        now: Instant,
        since_ms: u64,
    ) -> Admission {
        self.note_seen(peer);
        if self.bans.contains_key(&peer) {
            return Admission::Banned;
        }
        let bootnode = self.bootnodes.contains_key(&peer);
        let ip = ip_of(&address);
        if !outbound
            && !bootnode
            && let Some(ip) = ip
        {
            if self.is_address_banned(&ip, now) {
                return Admission::AddressBanned;
            }
            let limit = if ip.is_loopback() {
                self.max_inbound_per_loopback
            } else {
                self.max_inbound_per_ip
            };
            let from_ip = self
                .peers
                .iter()
                .filter(|(p, s)| !s.outbound && s.ip == Some(ip) && !self.bootnodes.contains_key(p))
                .count();
            if from_ip >= limit {
                return Admission::PerIpLimit;
            }
        }
        if !bootnode && self.peers.len() >= self.max_peers {
            return Admission::Full;
        }
        self.peers.insert(
            peer,
            PeerState {
                address,
                ip,
                outbound,
                since_ms,
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
        Admission::Accepted
    }

    /// The last connection to `peer` closed. Returns whether it had completed the handshake
    /// (then the node is told it disconnected).
    pub(crate) fn remove(&mut self, peer: &PeerId) -> bool {
        self.peers.remove(peer).is_some_and(|s| s.handshaked)
    }

    /// Connected (admitted) peers.
    pub(crate) fn connected_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether `peer` is worth dialling: not us, not banned, and we are below `max_peers`.
    /// (The service also checks that the swarm is not connected to it already.)
    pub(crate) fn wants_dial(&self, peer: &PeerId, now: Instant) -> bool {
        *peer != self.local && !self.is_banned(peer, now) && self.peers.len() < self.max_peers
    }

    /// Peers that connected more than [`HANDSHAKE_TIMEOUT`] ago without completing the status
    /// handshake: the service disconnects them.
    pub(crate) fn stale_handshakes(&self, now: Instant) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, s)| {
                !s.handshaked && now.saturating_duration_since(s.connected_at) > HANDSHAKE_TIMEOUT
            })
            .map(|(p, _)| *p)
            .collect()
    }

    /// Peers that completed the handshake, for the API, oldest connection first.
    pub(crate) fn summaries(&self) -> Vec<PeerSummary> {
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

    // ----- status handshake -----------------------------------------------------------

    /// Marks a status request to `peer` as outstanding; `false` when it is not connected or
    /// one is outstanding already (then nothing is sent).
    pub(crate) fn begin_status(&mut self, peer: &PeerId) -> bool {
        match self.peers.get_mut(peer) {
            Some(state) if !state.status_inflight => {
                state.status_inflight = true;
                true
            }
            _ => false,
        }
    }

    /// The outstanding status request to `peer` was answered or failed.
    pub(crate) fn end_status(&mut self, peer: &PeerId) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.status_inflight = false;
        }
    }

    /// Records a status from `peer` (the caller checked its genesis). `None` when the peer is
    /// not connected.
    pub(crate) fn on_status(&mut self, peer: &PeerId, status: Status) -> Option<StatusUpdate> {
        let state = self.peers.get_mut(peer)?;
        state.status = Some(status);
        state.best_height = Some(
            state
                .best_height
                .map_or(status.height, |b| b.max(status.height)),
        );
        let first = !state.handshaked;
        state.handshaked = true;
        let pending_ancestor = state.pending_ancestor.take();
        if first {
            // A bootnode counts as reached once it completed the handshake (a connection it
            // refuses at once must not reset the redial backoff).
            self.redials.remove(peer);
        }
        Some(StatusUpdate {
            first,
            pending_ancestor,
        })
    }

    /// Whether `peer` is connected and completed the handshake.
    pub(crate) fn is_handshaked(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|s| s.handshaked)
    }

    /// Peers that completed the handshake (their status is refreshed periodically).
    pub(crate) fn handshaked(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, s)| s.handshaked)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Raises the best height known of `peer` (e.g. from a gossip block).
    pub(crate) fn note_height(&mut self, peer: &PeerId, height: u64) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.best_height = Some(state.best_height.map_or(height, |b| b.max(height)));
        }
    }

    /// Remembers that `missing` should be fetched from `peer` once its status is refreshed.
    /// `false` when the peer is not connected.
    pub(crate) fn set_pending_ancestor(&mut self, peer: &PeerId, missing: Hash) -> bool {
        match self.peers.get_mut(peer) {
            Some(state) => {
                state.pending_ancestor = Some(missing);
                true
            }
            None => false,
        }
    }

    // ----- request budgets ------------------------------------------------------------

    /// Takes one token of `peer`'s inbound request budget; `false` when it is over the rate
    /// limit or not connected.
    pub(crate) fn take_request_token(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(state) = self.peers.get_mut(peer) else {
            return false;
        };
        state.refill(now);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes one single-block ancestor fetch from `peer`'s budget; `false` when exhausted or
    /// not connected.
    pub(crate) fn take_ancestor_token(&mut self, peer: &PeerId, now: Instant) -> bool {
        let Some(state) = self.peers.get_mut(peer) else {
            return false;
        };
        state.refill(now);
        if state.ancestor_tokens >= 1.0 {
            state.ancestor_tokens -= 1.0;
            true
        } else {
            false
        }
    }

    // ----- sync peer selection --------------------------------------------------------

    /// The handshaked peer claiming the most work above `floor`, skipping peers in a cooldown.
    pub(crate) fn best_sync_peer(&self, floor: U256, now: Instant) -> Option<(PeerId, Status)> {
        self.peers
            .iter()
            .filter(|(_, s)| s.handshaked && s.sync_cooldown_until.is_none_or(|t| t <= now))
            .filter_map(|(p, s)| s.status.map(|st| (*p, st)))
            .filter(|(_, st)| st.total_work > floor)
            .max_by_key(|(_, st)| st.total_work)
    }

    /// `peer` is not chosen for a sync round before `until`.
    pub(crate) fn set_sync_cooldown(&mut self, peer: &PeerId, until: Instant) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.sync_cooldown_until = Some(until);
        }
    }

    /// Lowers `peer`'s claimed work to what it served, until it announces more.
    pub(crate) fn lower_claim(&mut self, peer: &PeerId, served: U256) {
        if let Some(state) = self.peers.get_mut(peer)
            && let Some(status) = state.status.as_mut()
            && status.total_work > served
        {
            status.total_work = served;
        }
    }

    // ----- penalties and bans ---------------------------------------------------------

    /// Whether `peer` is banned or blocked at `now`.
    pub(crate) fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.bans
            .get(peer)
            .is_some_and(|until| until.is_none_or(|u| u > now))
    }

    /// Current (decayed) misbehaviour points of `peer`.
    #[cfg(test)]
    pub(crate) fn points(&self, peer: &PeerId, now: Instant) -> f64 {
        self.misbehaviour.get(peer).map_or(0.0, |p| p.decayed(now))
    }

    /// Adds misbehaviour points. At [`BAN_POINTS`] the peer is banned for [`BAN_DURATION`]
    /// and keeps half the threshold for next time. The local peer is never penalised.
    pub(crate) fn penalize(
        &mut self,
        peer: PeerId,
        pts: f64,
        reason: &str,
        now: Instant,
    ) -> Option<BanDecision> {
        if peer == self.local {
            return None;
        }
        if self.misbehaviour.len() >= MAX_PENALISED_PEERS && !self.misbehaviour.contains_key(&peer)
        {
            self.misbehaviour.retain(|_, p| p.decayed(now) > 0.0);
            if self.misbehaviour.len() >= MAX_PENALISED_PEERS {
                // Still full: forget the peer with the fewest points.
                let least = self
                    .misbehaviour
                    .iter()
                    .map(|(p, pts)| (*p, pts.decayed(now)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(p, _)| p);
                if let Some(least) = least {
                    self.misbehaviour.remove(&least);
                }
            }
        }
        let entry = self.misbehaviour.entry(peer).or_insert(Points {
            points: 0.0,
            at: now,
        });
        let total = entry.decayed(now) + pts;
        entry.points = total;
        entry.at = now;
        tracing::info!(%peer, points = format!("{total:.1}"), reason, "peer penalised");
        if total >= BAN_POINTS && !self.bans.contains_key(&peer) {
            // Keep half: a peer that misbehaves again right after its ban is banned sooner.
            entry.points = BAN_POINTS / 2.0;
            return self.misbehaviour_ban(peer, reason, now);
        }
        None
    }

    /// A timed ban for misbehaviour: it covers the peer's IP address too.
    fn misbehaviour_ban(
        &mut self,
        peer: PeerId,
        reason: &str,
        now: Instant,
    ) -> Option<BanDecision> {
        let mut decision = self.ban(peer, Some(BAN_DURATION), reason, now)?;
        decision.address = self.cover_address(peer, now + BAN_DURATION);
        Some(decision)
    }

    /// Bans the IP address `peer` is connected from until `until` (new inbound connections
    /// from it are refused). Returns the address, if the peer is connected (and the address
    /// is not loopback, unless loopback bans are on).
    fn cover_address(&mut self, peer: PeerId, until: Instant) -> Option<IpAddr> {
        let ip = self.peers.get(&peer).and_then(|s| s.ip)?;
        if ip.is_loopback() && !self.ban_loopback {
            return None;
        }
        if self.address_bans.len() >= MAX_ADDRESS_BANS && !self.address_bans.contains_key(&ip) {
            let first = self
                .address_bans
                .iter()
                .min_by_key(|(_, b)| b.until)
                .map(|(ip, _)| *ip);
            if let Some(old) = first {
                self.address_bans.remove(&old);
            }
        }
        let entry = self
            .address_bans
            .entry(ip)
            .or_insert(AddressBan { until, peer });
        if until >= entry.until {
            *entry = AddressBan { until, peer };
        }
        Some(ip)
    }

    /// Whether a ban covers the IP address `ip` at `now`.
    pub(crate) fn is_address_banned(&self, ip: &IpAddr, now: Instant) -> bool {
        self.address_bans.get(ip).is_some_and(|b| b.until > now)
    }

    /// Bans `peer` for `duration`, or until unblocked (`None`, operator blocks). A timed ban
    /// never shortens an operator block. Cancels a pending redial. The local peer is never
    /// banned.
    pub(crate) fn ban(
        &mut self,
        peer: PeerId,
        duration: Option<Duration>,
        reason: &str,
        now: Instant,
    ) -> Option<BanDecision> {
        if peer == self.local {
            return None;
        }
        let mut evicted = None;
        if self.bans.len() >= MAX_BANS && !self.bans.contains_key(&peer) {
            // Forget the timed ban that would end first (operator blocks are kept).
            let first = self
                .bans
                .iter()
                .filter_map(|(p, until)| until.map(|u| (u, *p)))
                .min();
            if let Some((_, old)) = first {
                self.bans.remove(&old);
                evicted = Some(old);
            }
        }
        // An operator block stays until unblocked; any other ban is (re)set.
        if !matches!(self.bans.get(&peer), Some(None)) {
            self.bans.insert(peer, duration.map(|d| now + d));
        }
        if let Some(r) = self.redials.get_mut(&peer) {
            r.due = None;
        }
        Some(BanDecision {
            peer,
            address: None,
            duration,
            reason: reason.to_owned(),
            evicted,
        })
    }

    /// Bans every connected peer whose gossip `score` is below [`BAN_SCORE`].
    pub(crate) fn ban_low_scores(
        &mut self,
        score: impl Fn(&PeerId) -> Option<f64>,
        now: Instant,
    ) -> Vec<BanDecision> {
        let bad: Vec<(PeerId, f64)> = self
            .peers
            .keys()
            .filter_map(|p| score(p).map(|s| (*p, s)))
            .filter(|(_, s)| *s < BAN_SCORE)
            .collect();
        bad.into_iter()
            .filter_map(|(peer, score)| {
                let reason = format!("gossip score {score:.0} below {BAN_SCORE}");
                self.misbehaviour_ban(peer, &reason, now)
            })
            .collect()
    }

    /// Banned and blocked peers with the time left on each ban (`None`: an operator block),
    /// at most `limit`, ordered by peer id.
    pub(crate) fn banned(&self, now: Instant, limit: usize) -> Vec<(PeerId, Option<Duration>)> {
        let mut out: Vec<(PeerId, Option<Duration>)> = self
            .bans
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| u > now))
            .map(|(p, until)| (*p, until.map(|u| u.saturating_duration_since(now))))
            .collect();
        out.sort_by_key(|(p, _)| p.to_bytes());
        out.truncate(limit);
        out
    }

    /// Removes the timed bans over at `now` and returns their peers (the service unblocks
    /// them and schedules redials).
    pub(crate) fn expire_bans(&mut self, now: Instant) -> Vec<PeerId> {
        let expired: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| until.is_some_and(|u| u <= now))
            .map(|(p, _)| *p)
            .collect();
        for peer in &expired {
            self.bans.remove(peer);
        }
        self.address_bans.retain(|_, b| b.until > now);
        expired
    }

    /// Parses a peer id given by the operator; refuses malformed ids and the local peer.
    pub(crate) fn parse_remote(&self, text: &str) -> Result<PeerId, NetworkError> {
        let peer = text
            .parse::<PeerId>()
            .map_err(|e| NetworkError::BadPeerId {
                peer: text.to_owned(),
                detail: e.to_string(),
            })?;
        if peer == self.local {
            return Err(NetworkError::LocalPeer {
                peer: text.to_owned(),
            });
        }
        Ok(peer)
    }

    /// Parses an address the operator asked to dial; refuses the local peer and banned or
    /// blocked peers when the address names one (`/p2p/<id>`).
    pub(crate) fn check_dial(&self, addr: &str, now: Instant) -> Result<Multiaddr, NetworkError> {
        let ma: Multiaddr =
            addr.parse()
                .map_err(|e: libp2p::multiaddr::Error| NetworkError::BadAddress {
                    addr: addr.to_owned(),
                    detail: e.to_string(),
                })?;
        if let Some(peer) = peer_of(&ma) {
            if peer == self.local {
                return Err(NetworkError::LocalPeer {
                    peer: peer.to_string(),
                });
            }
            if self.is_banned(&peer, now) {
                return Err(NetworkError::Dial {
                    addr: addr.to_owned(),
                    detail: format!("peer {peer} is blocked"),
                });
            }
        }
        Ok(ma)
    }

    /// Whether the node knows `peer`: connected now, seen since start (connected or
    /// discovered), banned, or a bootnode.
    pub(crate) fn knows(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
            || self.seen_set.contains(peer)
            || self.bans.contains_key(peer)
            || self.bootnodes.contains_key(peer)
    }

    /// An operator block of `text`, until [`PeerBook::operator_unblock`]. Fails on a malformed
    /// id, the local peer, or a peer this node does not know (see [`PeerBook::knows`]).
    pub(crate) fn operator_block(
        &mut self,
        text: &str,
        now: Instant,
    ) -> Result<BanDecision, NetworkError> {
        let peer = self.parse_remote(text)?;
        if !self.knows(&peer) {
            return Err(NetworkError::UnknownPeer {
                peer: text.to_owned(),
            });
        }
        self.ban(peer, None, "blocked by the operator", now)
            .ok_or_else(|| NetworkError::LocalPeer {
                peer: text.to_owned(),
            })
    }

    /// Lifts an operator block or a timed ban of `text` and clears its points. Fails on a
    /// malformed id, the local peer, or a peer that is neither blocked nor banned.
    pub(crate) fn operator_unblock(&mut self, text: &str) -> Result<Unblocked, NetworkError> {
        let peer = self.parse_remote(text)?;
        if self.bans.remove(&peer).is_none() {
            return Err(NetworkError::NotBlocked {
                peer: text.to_owned(),
            });
        }
        self.misbehaviour.remove(&peer);
        self.address_bans.retain(|_, b| b.peer != peer);
        let redial_now = self.bootnodes.contains_key(&peer);
        if redial_now {
            self.redials.remove(&peer);
        }
        Ok(Unblocked { peer, redial_now })
    }

    // ----- bootnodes and redials ------------------------------------------------------

    /// Bootnodes with their full multiaddrs.
    pub(crate) fn bootnodes(&self) -> Vec<(PeerId, Multiaddr)> {
        self.bootnodes
            .iter()
            .map(|(p, a)| (*p, a.clone()))
            .collect()
    }

    /// The address to dial `peer` at, when it is a bootnode that is not banned.
    pub(crate) fn bootnode_to_dial(&self, peer: &PeerId, now: Instant) -> Option<Multiaddr> {
        if self.is_banned(peer, now) {
            return None;
        }
        self.bootnodes.get(peer).map(without_p2p)
    }

    /// Schedules a redial of a bootnode that is not banned: 0.5 s, 1 s, 2 s, ... up to
    /// [`REDIAL_MAX`]. Returns the delay, or `None` when nothing was scheduled (not a
    /// bootnode, banned, or a redial is pending already).
    pub(crate) fn schedule_redial(&mut self, peer: PeerId, now: Instant) -> Option<Duration> {
        if !self.bootnodes.contains_key(&peer) || self.bans.contains_key(&peer) {
            return None;
        }
        let r = self.redials.entry(peer).or_default();
        if r.due.is_some() {
            return None;
        }
        let factor = 1u32.checked_shl(r.attempts.min(16)).unwrap_or(u32::MAX);
        let delay = REDIAL_MIN.saturating_mul(factor).min(REDIAL_MAX);
        r.attempts = r.attempts.saturating_add(1);
        r.due = Some(now + delay);
        Some(delay)
    }

    /// The bootnodes whose redial is due at `now` (each returned once).
    pub(crate) fn due_redials(&mut self, now: Instant) -> Vec<PeerId> {
        self.redials
            .iter_mut()
            .filter(|(_, r)| r.due.is_some_and(|d| d <= now))
            .map(|(p, r)| {
                r.due = None;
                *p
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::points;
    use crate::test_support::peer;
    use libp2p::identity::Keypair;

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}")
            .parse()
            .expect("valid multiaddr")
    }

    fn status(work: u64) -> Status {
        Status {
            genesis: Hash([1; 32]),
            tip: Hash([2; 32]),
            height: work,
            total_work: U256::from(work),
        }
    }

    /// A book for peer 0 with peer 9 as a bootnode.
    fn book(max_peers: u32) -> PeerBook {
        let boot = addr(9).with(Protocol::P2p(peer(9)));
        PeerBook::new(peer(0), max_peers, HashMap::from([(peer(9), boot)]))
    }

    fn addr_at(ip: &str, port: u16) -> Multiaddr {
        format!("/ip4/{ip}/tcp/{port}")
            .parse()
            .expect("valid multiaddr")
    }

    /// Distinct peer ids beyond the small fixed ones.
    fn many(i: usize) -> PeerId {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 7_000).to_le_bytes());
        Keypair::ed25519_from_bytes(seed)
            .expect("valid key")
            .public()
            .to_peer_id()
    }

    /// Defect 3 (sybils): identities are free, so one address gets a bounded number of
    /// inbound slots; loopback has its own (larger) bound so local testnets work.
    #[test]
    fn inbound_peers_are_bounded_per_ip_address() {
        let now = Instant::now();
        let mut b = book(50).with_ip_limits(3, 5);
        let public = "203.0.113.7";
        for i in 0..3 {
            assert_eq!(
                b.admit(many(i), addr_at(public, 1000 + i as u16), false, now, 0),
                Admission::Accepted
            );
        }
        assert_eq!(
            b.admit(many(3), addr_at(public, 1003), false, now, 0),
            Admission::PerIpLimit
        );
        // Another address, an outbound connection (we chose to dial it) and a bootnode are
        // not limited by it.
        assert_eq!(
            b.admit(many(4), addr_at("203.0.113.8", 1), false, now, 0),
            Admission::Accepted
        );
        assert_eq!(
            b.admit(many(5), addr_at(public, 2000), true, now, 0),
            Admission::Accepted
        );
        assert_eq!(
            b.admit(peer(9), addr_at(public, 9), false, now, 0),
            Admission::Accepted
        );
        // A slot frees when one of them leaves.
        b.remove(&many(0));
        assert_eq!(
            b.admit(many(3), addr_at(public, 1003), false, now, 0),
            Admission::Accepted
        );
        // Loopback has its own bound.
        let accepted = (10..20)
            .filter(|i| {
                b.admit(many(*i), addr_at("127.0.0.1", *i as u16), false, now, 0)
                    == Admission::Accepted
            })
            .count();
        assert_eq!(accepted, 5);
        // The defaults let a 33-node local testnet connect to one node, and still keep
        // sybils on loopback below max_peers.
        let mut d = book(50);
        let accepted = (0..40)
            .filter(|i| {
                d.admit(many(*i), addr_at("127.0.0.1", *i as u16), false, now, 0)
                    == Admission::Accepted
            })
            .count();
        assert_eq!(accepted, MAX_INBOUND_PER_LOOPBACK as usize);
        assert!((32..50).contains(&accepted));
        assert!(ip_of(&addr(1)).is_some_and(|ip| ip.is_loopback()));
    }

    /// Defect 3: a ban covers the banned peer's address for its duration; a fresh identity
    /// from that address is refused, peers we dial and bootnodes are not, and the ban ends
    /// with the peer's ban (or when the operator unblocks that peer).
    #[test]
    fn loopback_addresses_are_covered_only_when_asked() {
        let t0 = Instant::now();
        for (on, covered) in [
            (false, None),
            (true, Some("127.0.0.1".parse().expect("ip"))),
        ] {
            let mut b = book(50).with_loopback_bans(on);
            let bad = many(1);
            b.admit(bad, addr_at("127.0.0.1", 4000), false, t0, 0);
            let mut ban = None;
            for _ in 0..3 {
                ban = ban.or(b.penalize(bad, points::PENALIZE, "bad block", t0));
            }
            assert_eq!(ban.expect("banned").address, covered, "loopback bans {on}");
            b.remove(&bad);
            let fresh = b.admit(many(2), addr_at("127.0.0.1", 4001), false, t0, 0);
            let expected = if on {
                Admission::AddressBanned
            } else {
                Admission::Accepted
            };
            assert_eq!(fresh, expected, "loopback bans {on}");
        }
    }

    #[test]
    fn misbehaviour_bans_cover_the_address_for_their_duration() {
        let t0 = Instant::now();
        let mut b = book(50);
        let bad = many(1);
        b.admit(bad, addr_at("198.51.100.1", 4000), false, t0, 0);
        let mut ban = None;
        for _ in 0..3 {
            ban = ban.or(b.penalize(bad, points::PENALIZE, "bad block", t0));
        }
        let ban = ban.expect("banned");
        let ip: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(ban.address, Some(ip));
        assert!(b.is_address_banned(&ip, t0));
        b.remove(&bad);
        let fresh = many(2);
        assert_eq!(
            b.admit(fresh, addr_at("198.51.100.1", 4001), false, t0, 0),
            Admission::AddressBanned
        );
        assert_eq!(
            b.admit(many(3), addr_at("198.51.100.2", 1), false, t0, 0),
            Admission::Accepted,
            "another address"
        );
        assert_eq!(
            b.admit(many(4), addr_at("198.51.100.1", 5000), true, t0, 0),
            Admission::Accepted,
            "we dialled it"
        );
        assert_eq!(
            b.admit(peer(9), addr_at("198.51.100.1", 9), false, t0, 0),
            Admission::Accepted,
            "bootnode"
        );
        // Over with the peer's ban.
        let end = t0 + BAN_DURATION;
        assert!(b.is_address_banned(&ip, end - Duration::from_millis(1)));
        b.expire_bans(end);
        assert!(!b.is_address_banned(&ip, end));
        assert_eq!(
            b.admit(fresh, addr_at("198.51.100.1", 4001), false, end, 0),
            Admission::Accepted
        );

        // Gossip-score bans cover the address too; operator blocks and network mismatches
        // do not; unblocking the peer lifts its address ban.
        let mut b = book(50);
        b.admit(many(5), addr_at("192.0.2.5", 1), false, t0, 0);
        b.admit(many(6), addr_at("192.0.2.6", 1), false, t0, 0);
        b.admit(many(7), addr_at("192.0.2.7", 1), false, t0, 0);
        let scores = HashMap::from([(many(5), BAN_SCORE - 1.0)]);
        let bans = b.ban_low_scores(|p| scores.get(p).copied(), t0);
        assert_eq!(bans[0].address, Some("192.0.2.5".parse().expect("ip")));
        b.operator_block(&many(6).to_string(), t0).expect("known");
        b.ban(many(7), Some(BAN_DURATION), "other network", t0);
        assert!(!b.is_address_banned(&"192.0.2.6".parse().expect("ip"), t0));
        assert!(!b.is_address_banned(&"192.0.2.7".parse().expect("ip"), t0));
        b.operator_unblock(&many(5).to_string()).expect("banned");
        assert!(!b.is_address_banned(&"192.0.2.5".parse().expect("ip"), t0));
    }

    #[test]
    fn address_bans_are_bounded() {
        let t0 = Instant::now();
        let mut b = book(u32::MAX);
        for i in 0..MAX_ADDRESS_BANS + 3 {
            let p = many(100 + i);
            let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + i as u32);
            b.admit(p, addr_at(&ip.to_string(), 1), true, t0, 0);
            b.ban(p, Some(BAN_DURATION), "x", t0);
            b.cover_address(p, t0 + Duration::from_secs(i as u64 + 1));
            b.remove(&p);
        }
        assert_eq!(b.address_bans.len(), MAX_ADDRESS_BANS);
    }

    #[test]
    fn multiaddr_helpers() {
        let full = addr(1).with(Protocol::P2p(peer(1)));
        assert_eq!(peer_of(&full), Some(peer(1)));
        assert_eq!(peer_of(&addr(1)), None);
        assert_eq!(without_p2p(&full), addr(1));
    }

    #[test]
    fn admission_respects_bans_and_the_peer_limit() {
        let now = Instant::now();
        let mut b = book(1);
        assert_eq!(b.admit(peer(1), addr(1), true, now, 5), Admission::Accepted);
        assert_eq!(b.admit(peer(2), addr(2), false, now, 5), Admission::Full);
        // Bootnodes are exempt from the limit.
        assert_eq!(b.admit(peer(9), addr(9), true, now, 5), Admission::Accepted);
        b.ban(peer(3), Some(BAN_DURATION), "test", now);
        assert_eq!(b.admit(peer(3), addr(3), true, now, 5), Admission::Banned);
        assert_eq!(b.connected_count(), 2);
        assert!(!b.wants_dial(&peer(4), now), "full");
        assert!(!b.remove(&peer(1)), "never handshaked");
        assert!(!b.wants_dial(&peer(4), now), "the bootnode still counts");
        b.remove(&peer(9));
        assert!(b.wants_dial(&peer(4), now));
        assert!(!b.wants_dial(&peer(0), now), "local");
        assert!(!b.wants_dial(&peer(3), now), "banned");
    }

    #[test]
    fn banned_lists_bans_with_their_time_left_and_blocks_without_and_is_bounded() {
        let t0 = Instant::now();
        let mut b = book(5);
        b.ban(peer(3), Some(Duration::from_secs(60)), "test", t0);
        b.ban(peer(4), None, "blocked by the operator", t0);
        b.ban(peer(5), Some(Duration::from_secs(1)), "test", t0);
        let later = t0 + Duration::from_secs(10);
        let mut got = b.banned(later, 10);
        got.sort_by_key(|(p, _)| p.to_string());
        let mut want = vec![(peer(3), Some(Duration::from_secs(50))), (peer(4), None)];
        want.sort_by_key(|(p, _)| p.to_string());
        assert_eq!(got, want, "peer 5's ban is over");
        assert_eq!(b.banned(later, 1).len(), 1);
    }

    #[test]
    fn handshake_completes_once_and_shows_in_summaries() {
        let now = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, now, 20);
        b.admit(peer(2), addr(2), false, now, 10);
        assert!(b.summaries().is_empty(), "no handshake yet");
        assert!(b.begin_status(&peer(1)));
        assert!(
            !b.begin_status(&peer(1)),
            "one outstanding status at a time"
        );
        assert!(!b.begin_status(&peer(5)), "not connected");
        b.end_status(&peer(1));
        assert!(b.begin_status(&peer(1)));
        assert!(b.set_pending_ancestor(&peer(1), Hash([7; 32])));
        let first = b.on_status(&peer(1), status(10)).expect("connected");
        assert_eq!(
            first,
            StatusUpdate {
                first: true,
                pending_ancestor: Some(Hash([7; 32]))
            }
        );
        let again = b.on_status(&peer(1), status(4)).expect("connected");
        assert_eq!(
            again,
            StatusUpdate {
                first: false,
                pending_ancestor: None
            }
        );
        b.note_height(&peer(1), 3);
        assert_eq!(b.on_status(&peer(5), status(1)), None);
        b.on_status(&peer(2), status(1));
        let s = b.summaries();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].peer_id, peer(2).to_string(), "oldest first");
        assert_eq!(s[0].direction, "inbound");
        assert_eq!(s[1].best_height, Some(10), "the best height is kept");
        assert!(b.is_handshaked(&peer(1)));
        assert_eq!(b.handshaked().len(), 2);
        assert!(b.remove(&peer(1)), "had handshaked");
        assert!(!b.is_handshaked(&peer(1)));
    }

    #[test]
    fn handshake_timeout() {
        let t0 = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, t0, 0);
        b.admit(peer(2), addr(2), true, t0, 0);
        b.on_status(&peer(2), status(1));
        assert!(b.stale_handshakes(t0 + HANDSHAKE_TIMEOUT).is_empty());
        let later = t0 + HANDSHAKE_TIMEOUT + Duration::from_millis(1);
        assert_eq!(b.stale_handshakes(later), vec![peer(1)]);
    }

    #[test]
    fn request_budgets_refill_with_time() {
        let t0 = Instant::now();
        let mut b = book(10);
        assert!(!b.take_request_token(&peer(1), t0), "unknown peer");
        b.admit(peer(1), addr(1), true, t0, 0);
        let burst = REQUEST_BURST as usize;
        for _ in 0..burst {
            assert!(b.take_request_token(&peer(1), t0));
        }
        assert!(!b.take_request_token(&peer(1), t0), "burst spent");
        // 32 per second: 100 ms later, three more.
        let t1 = t0 + Duration::from_millis(100);
        let granted = (0..10)
            .filter(|_| b.take_request_token(&peer(1), t1))
            .count();
        assert_eq!(granted, 3);

        let budget = ANCESTOR_BUDGET as usize;
        for _ in 0..budget {
            assert!(b.take_ancestor_token(&peer(1), t1));
        }
        assert!(!b.take_ancestor_token(&peer(1), t1));
        assert!(b.take_ancestor_token(&peer(1), t1 + Duration::from_secs(1)));
    }

    #[test]
    fn sync_peer_is_the_heaviest_outside_its_cooldown() {
        let now = Instant::now();
        let mut b = book(10);
        for n in 1..=3 {
            b.admit(peer(n), addr(n.into()), true, now, 0);
        }
        b.on_status(&peer(1), status(10));
        b.on_status(&peer(2), status(30));
        // Peer 3 has no handshake: not a candidate.
        assert_eq!(
            b.best_sync_peer(U256::from(5), now).map(|c| c.0),
            Some(peer(2))
        );
        assert_eq!(
            b.best_sync_peer(U256::from(30), now),
            None,
            "not above the floor"
        );
        b.set_sync_cooldown(&peer(2), now + Duration::from_secs(2));
        assert_eq!(
            b.best_sync_peer(U256::from(5), now).map(|c| c.0),
            Some(peer(1))
        );
        let later = now + Duration::from_secs(2);
        assert_eq!(
            b.best_sync_peer(U256::from(5), later).map(|c| c.0),
            Some(peer(2)),
            "the cooldown is over"
        );
        b.lower_claim(&peer(2), U256::from(7));
        assert_eq!(
            b.best_sync_peer(U256::from(5), later).map(|c| c.0),
            Some(peer(1))
        );
        b.lower_claim(&peer(1), U256::from(99));
        assert_eq!(
            b.best_sync_peer(U256::from(5), later)
                .map(|c| c.1.total_work),
            Some(U256::from(10)),
            "a claim is never raised"
        );
    }

    #[test]
    fn penalties_decay_and_ban_at_the_threshold() {
        let t0 = Instant::now();
        let mut b = book(10);
        let p = peer(1);
        assert_eq!(b.penalize(p, points::PENALIZE, "bad block", t0), None);
        assert_eq!(b.penalize(p, points::PENALIZE, "bad block", t0), None);
        let ban = b
            .penalize(p, points::PENALIZE, "bad block", t0)
            .expect("third strike bans");
        assert_eq!(ban.peer, p);
        assert_eq!(ban.duration, Some(BAN_DURATION));
        assert_eq!(ban.reason, "bad block");
        assert!(b.is_banned(&p, t0));
        assert_eq!(b.points(&p, t0), BAN_POINTS / 2.0, "half is kept");
        // No second decision while banned.
        assert_eq!(b.penalize(p, points::PENALIZE, "bad block", t0), None);

        // Points decay by 100 per hour.
        let q = peer(2);
        b.penalize(q, points::INVALID_SYNC_DATA, "junk", t0);
        let half_hour = t0 + Duration::from_secs(1800);
        assert!((b.points(&q, half_hour) - 0.0).abs() < 1e-9);
        assert_eq!(
            b.penalize(q, points::INVALID_SYNC_DATA, "junk", half_hour),
            None,
            "decayed points do not add up"
        );
        // The local peer is never penalised.
        assert_eq!(b.penalize(peer(0), 1000.0, "self", t0), None);
        assert!(!b.is_banned(&peer(0), t0));
    }

    #[test]
    fn timed_bans_expire_and_schedule_redials() {
        let t0 = Instant::now();
        let mut b = book(10);
        let boot = peer(9);
        b.ban(boot, Some(BAN_DURATION), "score", t0);
        assert_eq!(b.schedule_redial(boot, t0), None, "banned: no redial");
        assert_eq!(b.bootnode_to_dial(&boot, t0), None);
        assert!(
            b.expire_bans(t0 + BAN_DURATION - Duration::from_millis(1))
                .is_empty()
        );
        let end = t0 + BAN_DURATION;
        assert!(!b.is_banned(&boot, end), "over at its end");
        assert_eq!(b.expire_bans(end), vec![boot]);
        assert_eq!(b.expire_bans(end), vec![], "reported once");
        assert_eq!(b.bootnode_to_dial(&boot, end), Some(addr(9)));
        assert_eq!(b.schedule_redial(boot, end), Some(REDIAL_MIN));
    }

    #[test]
    fn operator_blocks_outlive_timed_bans() {
        let t0 = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, t0, 0);
        let d = b.operator_block(&peer(1).to_string(), t0).expect("known");
        assert_eq!(d.duration, None);
        // A later timed ban (e.g. a network mismatch) does not shorten it.
        b.ban(peer(1), Some(BAN_DURATION), "other network", t0);
        let much_later = t0 + BAN_DURATION * 10;
        assert!(b.expire_bans(much_later).is_empty());
        assert!(b.is_banned(&peer(1), much_later));
    }

    #[test]
    fn redial_backoff_doubles_up_to_the_cap_and_resets_on_handshake() {
        let mut now = Instant::now();
        let mut b = book(10);
        let boot = peer(9);
        assert_eq!(b.schedule_redial(peer(1), now), None, "not a bootnode");
        let mut delays = Vec::new();
        for _ in 0..10 {
            let d = b.schedule_redial(boot, now).expect("scheduled");
            assert_eq!(b.schedule_redial(boot, now), None, "one pending redial");
            assert!(b.due_redials(now + d - Duration::from_millis(1)).is_empty());
            now += d;
            assert_eq!(b.due_redials(now), vec![boot]);
            delays.push(d.as_millis());
        }
        assert_eq!(
            delays,
            vec![
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
        );
        // Connected but refused at once: the backoff continues.
        b.admit(boot, addr(9), true, now, 0);
        b.remove(&boot);
        assert_eq!(b.schedule_redial(boot, now), Some(REDIAL_MAX));
        // A completed handshake resets it.
        b.admit(boot, addr(9), true, now, 0);
        b.on_status(&boot, status(1));
        b.remove(&boot);
        assert_eq!(b.schedule_redial(boot, now), Some(REDIAL_MIN));
        // A ban cancels the pending redial.
        b.ban(boot, Some(BAN_DURATION), "test", now);
        assert!(b.due_redials(now + REDIAL_MAX).is_empty());
    }

    #[test]
    fn low_gossip_scores_are_banned() {
        let now = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, now, 0);
        b.admit(peer(2), addr(2), true, now, 0);
        b.admit(peer(3), addr(3), true, now, 0);
        let scores = HashMap::from([(peer(1), BAN_SCORE - 1.0), (peer(2), BAN_SCORE)]);
        let bans = b.ban_low_scores(|p| scores.get(p).copied(), now);
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].peer, peer(1));
        assert!(bans[0].reason.contains("-301"), "{}", bans[0].reason);
        assert!(b.is_banned(&peer(1), now));
        assert!(!b.is_banned(&peer(2), now));
    }

    #[test]
    fn ban_table_is_bounded_and_keeps_operator_blocks() {
        let t0 = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, t0, 0);
        b.operator_block(&peer(1).to_string(), t0).expect("known");
        // Fill the table with timed bans of distinct random-looking ids.
        let ids: Vec<PeerId> = (0..MAX_BANS)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(i as u64 + 1000).to_le_bytes());
                Keypair::ed25519_from_bytes(seed)
                    .expect("valid key")
                    .public()
                    .to_peer_id()
            })
            .collect();
        let mut evicted = Vec::new();
        for (i, p) in ids.iter().enumerate() {
            let d = b
                .ban(*p, Some(Duration::from_secs(i as u64 + 1)), "flood", t0)
                .expect("decision");
            evicted.extend(d.evicted);
        }
        // One slot was taken by the operator block: the shortest timed ban went.
        assert_eq!(evicted, vec![ids[0]]);
        assert!(b.is_banned(&peer(1), t0), "the operator block stays");
        assert!(!b.is_banned(&ids[0], t0));
        assert!(b.is_banned(&ids[1], t0));
    }

    #[test]
    fn penalty_table_is_bounded() {
        let t0 = Instant::now();
        let mut b = book(10);
        for i in 0..MAX_PENALISED_PEERS + 5 {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 50_000).to_le_bytes());
            let p = Keypair::ed25519_from_bytes(seed)
                .expect("valid key")
                .public()
                .to_peer_id();
            b.penalize(p, 1.0 + (i % 7) as f64, "spam", t0);
        }
        assert!(b.misbehaviour.len() <= MAX_PENALISED_PEERS);
    }

    #[test]
    fn seen_peers_are_bounded() {
        let mut b = book(10);
        b.note_seen(peer(0));
        assert!(!b.knows(&peer(0)), "the local peer is not recorded");
        for i in 0..MAX_SEEN_PEERS + 3 {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 90_000).to_le_bytes());
            let p = Keypair::ed25519_from_bytes(seed)
                .expect("valid key")
                .public()
                .to_peer_id();
            b.note_seen(p);
        }
        assert_eq!(b.seen.len(), MAX_SEEN_PEERS);
        assert_eq!(b.seen_set.len(), MAX_SEEN_PEERS);
    }

    #[test]
    fn dial_addresses_are_checked() {
        let now = Instant::now();
        let mut b = book(10);
        assert_eq!(
            b.check_dial("/ip4/127.0.0.1/tcp/5", now).expect("valid"),
            addr(5)
        );
        let full = addr(5).with(Protocol::P2p(peer(1)));
        assert_eq!(b.check_dial(&full.to_string(), now).expect("valid"), full);
        let err = b.check_dial("/ip4/nonsense", now).expect_err("bad");
        assert!(
            matches!(&err, NetworkError::BadAddress { addr, .. } if addr == "/ip4/nonsense"),
            "{err:?}"
        );
        let me = addr(5).with(Protocol::P2p(peer(0)));
        assert!(matches!(
            b.check_dial(&me.to_string(), now),
            Err(NetworkError::LocalPeer { .. })
        ));
        b.ban(peer(1), Some(BAN_DURATION), "test", now);
        let err = b.check_dial(&full.to_string(), now).expect_err("banned");
        assert!(
            matches!(&err, NetworkError::Dial { detail, .. } if detail.contains(&peer(1).to_string())),
            "{err:?}"
        );
    }

    // ----- operator block / unblock ---------------------------------------------------

    #[test]
    fn block_of_an_unknown_peer_fails_with_its_id() {
        let now = Instant::now();
        let mut b = book(10);
        let stranger = peer(42).to_string();
        let err = b.operator_block(&stranger, now).expect_err("unknown");
        assert!(
            matches!(&err, NetworkError::UnknownPeer { peer } if *peer == stranger),
            "{err:?}"
        );
        assert!(err.to_string().contains(&stranger), "{err}");
        assert!(!b.is_banned(&peer(42), now), "nothing recorded");
    }

    #[test]
    fn block_accepts_every_kind_of_known_peer() {
        let now = Instant::now();
        let mut b = book(10);
        // Connected now.
        b.admit(peer(1), addr(1), true, now, 0);
        // Seen since start (connected, then gone).
        b.admit(peer(2), addr(2), true, now, 0);
        b.remove(&peer(2));
        // Refused at the peer limit still counts as seen.
        let mut small = book(0);
        assert_eq!(small.admit(peer(3), addr(3), true, now, 0), Admission::Full);
        assert!(small.operator_block(&peer(3).to_string(), now).is_ok());
        // Discovered.
        b.note_seen(peer(4));
        // Banned.
        b.ban(peer(5), Some(BAN_DURATION), "test", now);
        // Bootnode (never connected).
        for n in [1, 2, 4, 5, 9] {
            let d = b
                .operator_block(&peer(n).to_string(), now)
                .unwrap_or_else(|e| panic!("peer {n}: {e}"));
            assert_eq!(d.peer, peer(n));
            assert_eq!(d.duration, None);
            assert!(b.is_banned(&peer(n), now + BAN_DURATION * 100));
        }
        // Blocking twice is fine.
        assert!(b.operator_block(&peer(1).to_string(), now).is_ok());
    }

    #[test]
    fn block_refuses_bad_ids_and_the_local_peer() {
        let now = Instant::now();
        let mut b = book(10);
        let err = b.operator_block("not-a-peer-id", now).expect_err("bad id");
        assert!(
            matches!(&err, NetworkError::BadPeerId { peer, .. } if peer == "not-a-peer-id"),
            "{err:?}"
        );
        let me = peer(0).to_string();
        let err = b.operator_block(&me, now).expect_err("self");
        assert!(
            matches!(&err, NetworkError::LocalPeer { peer } if *peer == me),
            "{err:?}"
        );
        let err = b.operator_unblock("not-a-peer-id").expect_err("bad id");
        assert!(matches!(err, NetworkError::BadPeerId { .. }), "{err:?}");
        let err = b.operator_unblock(&me).expect_err("self");
        assert!(matches!(err, NetworkError::LocalPeer { .. }), "{err:?}");
    }

    #[test]
    fn unblock_of_a_peer_not_blocked_fails_with_its_id() {
        let now = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, now, 0);
        let id = peer(1).to_string();
        let err = b.operator_unblock(&id).expect_err("connected, not blocked");
        assert!(
            matches!(&err, NetworkError::NotBlocked { peer } if *peer == id),
            "{err:?}"
        );
        assert!(err.to_string().contains(&id), "{err}");
        // A stranger is not blocked either.
        let err = b
            .operator_unblock(&peer(42).to_string())
            .expect_err("unknown");
        assert!(matches!(err, NetworkError::NotBlocked { .. }), "{err:?}");
        // Nor is a peer whose ban expired.
        b.ban(peer(1), Some(BAN_DURATION), "test", now);
        b.expire_bans(now + BAN_DURATION);
        assert!(matches!(
            b.operator_unblock(&id),
            Err(NetworkError::NotBlocked { .. })
        ));
    }

    #[test]
    fn unblock_lifts_blocks_and_bans_and_clears_points() {
        let now = Instant::now();
        let mut b = book(10);
        b.admit(peer(1), addr(1), true, now, 0);
        b.operator_block(&peer(1).to_string(), now).expect("block");
        let u = b.operator_unblock(&peer(1).to_string()).expect("unblock");
        assert_eq!(
            u,
            Unblocked {
                peer: peer(1),
                redial_now: false
            }
        );
        assert!(!b.is_banned(&peer(1), now));
        assert!(
            matches!(
                b.operator_unblock(&peer(1).to_string()),
                Err(NetworkError::NotBlocked { .. })
            ),
            "a second unblock fails"
        );

        // A penalty ban of a bootnode: unblocking clears its points and redials at once.
        let boot = peer(9);
        for _ in 0..3 {
            b.penalize(boot, points::PENALIZE, "bad block", now);
        }
        assert!(b.is_banned(&boot, now));
        let u = b.operator_unblock(&boot.to_string()).expect("unblock");
        assert!(u.redial_now);
        assert_eq!(b.points(&boot, now), 0.0);
        assert_eq!(
            b.schedule_redial(boot, now),
            Some(REDIAL_MIN),
            "backoff reset"
        );
    }
}
