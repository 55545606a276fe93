//! Deliberately dishonest behaviours of a network instance, for testing the defences of
//! honest nodes: [`Adversary`]. This is the only code of the crate that misbehaves on purpose.
//!
//! It owns: the adversary modes and their parsing (the node will expose them as
//! `peerchain node --adversary MODE`), the state each mode needs (requests held unanswered,
//! requests relayed back to their sender, the targets of the slow reader, the tasks of the
//! sybil identities), and the few hooks the service and the codec call when
//! `NetworkConfig::adversary` is set.
//!
//! It must never: run unless `NetworkConfig::adversary` is `Some` (the default is `None`, and
//! every hook is a no-op then); start without a loud `tracing::warn!`; or grow without bound
//! (held requests, relays and targets are capped).
//!
//! Modes:
//! - [`Adversary::StallSync`]: claims an enormous chain in its status handshake, then answers
//!   every `GetHeaders` with headers the requester already holds (it asks the requester itself
//!   for the header after the requester's second locator entry: the requester's own tip) and
//!   never answers `GetBlocks`. An unprotected requester loops on its own tip forever.
//! - [`Adversary::StallSilent`]: claims an enormous chain and never answers a sync request
//!   (other than the status handshake); requests are held until they time out.
//! - [`Adversary::SlowReader`]: asks every peer, again and again, for blocks (one hash 128
//!   times, or 128 distinct hashes) and never reads the answers: its codec stalls on every
//!   `Blocks` response, so the responder's answer waits in its send path.
//! - [`Adversary::Sybil`]: besides itself, opens connections to every bootnode with
//!   `identities` fresh identities from this host's address; each completes the status
//!   handshake, holds its slot and redials every second when refused or dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, ping, tcp, yamux};
use peerchain_ledger::{Hash, U256};
use tokio::task::JoinHandle;

use crate::behaviour::{Behaviour, Names, sync_behaviour};
use crate::codec::{
    Refusal, Status, SyncCodec, SyncRequest, SyncResponse, TAG_BLOCKS, decode_response,
    read_limited,
};
use crate::config::{
    IDLE_CONNECTION_TIMEOUT, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, NetworkConfig, PING_INTERVAL,
    PING_TIMEOUT, SYNC_REQUEST_TIMEOUT, SYNC_STREAMS_PER_CONNECTION,
};
use crate::identity::NodeKeySeed;

/// A deliberately dishonest behaviour (see the module docs of `adversary.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// Claims an enormous chain; answers `GetHeaders` with headers the requester already
    /// holds and never answers `GetBlocks`.
    StallSync,
    /// Claims an enormous chain and never answers a sync request.
    StallSilent,
    /// Asks for big blocks again and again and never reads the answers.
    SlowReader,
    /// Connects to every bootnode with this many extra fresh identities from this address.
    Sybil {
        /// Extra identities (at most [`MAX_SYBIL_IDENTITIES`]).
        identities: u32,
    },
}

/// Most identities of [`Adversary::Sybil`].
pub const MAX_SYBIL_IDENTITIES: u32 = 1000;

impl Adversary {
    /// The mode's name as `peerchain node --adversary` will take it.
    pub fn name(&self) -> String {
        match self {
            Adversary::StallSync => "stall-sync".to_owned(),
            Adversary::StallSilent => "stall-silent".to_owned(),
            Adversary::SlowReader => "slow-reader".to_owned(),
            Adversary::Sybil { identities } => format!("sybil:{identities}"),
        }
    }

    /// Whether the instance runs honest sync rounds of its own (the stalling and reading
    /// modes do not: they only attack).
    pub(crate) fn syncs(&self) -> bool {
        matches!(self, Adversary::Sybil { .. })
    }
}

impl fmt::Display for Adversary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Adversary {
    type Err = String;

    /// `stall-sync`, `stall-silent`, `slow-reader` or `sybil:N`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "stall-sync" => Ok(Adversary::StallSync),
            "stall-silent" => Ok(Adversary::StallSilent),
            "slow-reader" => Ok(Adversary::SlowReader),
            other => {
                let n = other
                    .strip_prefix("sybil:")
                    .ok_or_else(|| {
                        format!(
                            "unknown adversary mode {other:?}; known: stall-sync, stall-silent, \
                             slow-reader, sybil:N"
                        )
                    })?
                    .parse::<u32>()
                    .map_err(|e| format!("{other:?}: sybil:N needs a number: {e}"))?;
                if n == 0 || n > MAX_SYBIL_IDENTITIES {
                    return Err(format!(
                        "{other:?}: between 1 and {MAX_SYBIL_IDENTITIES} identities"
                    ));
                }
                Ok(Adversary::Sybil { identities: n })
            }
        }
    }
}

/// Requests held unanswered at most (the oldest are dropped beyond this).
const MAX_HELD: usize = 1024;
/// The slow reader holds each stalled `Blocks` stream this long (longer than the honest
/// responder's request timeout, so the responder's send never completes).
const SLOW_READER_HOLD: Duration = Duration::from_secs(25);
/// The slow reader's own request timeout (its stalled reads must not be cut short).
const SLOW_READER_TIMEOUT: Duration = Duration::from_secs(60);
/// Block requests the slow reader keeps outstanding per peer (under the stream limit).
const SLOW_READER_OUTSTANDING: usize = SYNC_STREAMS_PER_CONNECTION - 8;
/// Least time between two block requests of the slow reader to one peer (16 per second,
/// under the honest responder's rate limit: it is never refused for its rate).
const SLOW_READER_GAP: Duration = Duration::from_millis(62);
/// Peers the slow reader attacks at once.
const SLOW_READER_TARGETS: usize = 64;

/// The codec settings of a mode: stall `Blocks` reads for this long, and the request timeout.
pub(crate) fn sync_settings(mode: Option<&Adversary>) -> (Option<Duration>, Option<Duration>) {
    match mode {
        Some(Adversary::SlowReader) => (Some(SLOW_READER_HOLD), Some(SLOW_READER_TIMEOUT)),
        Some(Adversary::StallSync | Adversary::StallSilent) => {
            // Held requests must outlive the requester's timeout.
            (None, Some(SYNC_REQUEST_TIMEOUT * 3))
        }
        _ => (None, None),
    }
}

/// The slow reader's codec hook: reads the response's tag; a `Blocks` response is never
/// read (the stream is held, then dropped with an error); any other is read and decoded.
pub(crate) async fn read_response_slowly<T>(
    codec: &SyncCodec,
    io: &mut T,
    hold: Duration,
) -> io::Result<SyncResponse>
where
    T: AsyncRead + Unpin + Send,
{
    let mut tag = [0u8; 1];
    io.read_exact(&mut tag).await?;
    if tag[0] == TAG_BLOCKS {
        tokio::time::sleep(hold).await;
        return Err(io::Error::other("adversary: blocks response never read"));
    }
    let rest = read_limited(io, codec.response_limit.saturating_sub(1)).await?;
    let mut bytes = Vec::with_capacity(rest.len() + 1);
    bytes.push(tag[0]);
    bytes.extend_from_slice(&rest);
    Ok(decode_response(&bytes, codec.max_block_txs).unwrap_or_else(SyncResponse::Malformed))
}

/// What the slow reader knows of one target.
#[derive(Debug, Default)]
struct Target {
    /// Block hashes learned from its headers.
    hashes: Vec<Hash>,
    /// Its `GetHeaders` is outstanding.
    asking_headers: Option<OutboundRequestId>,
    /// Block requests outstanding.
    outstanding: HashSet<OutboundRequestId>,
    /// Most block requests kept outstanding: lowered to what the target accepts when it
    /// refuses one (a careful attacker avoids the penalty for asking beyond the queue).
    cap: usize,
    /// Requests sent so far (picks the next hash and the request shape).
    sent: usize,
    last_sent: Option<Instant>,
}

/// The state of the running mode; the service holds it when `NetworkConfig::adversary` is
/// set. Dropping it stops the sybil identities.
#[derive(Debug)]
pub(crate) struct AdversaryState {
    mode: Adversary,
    genesis: Hash,
    /// StallSync: our `GetHeaders` to a requester, and the request of its we answer with it.
    relays: HashMap<OutboundRequestId, ResponseChannel<SyncResponse>>,
    /// Requests never answered (they time out at the requester).
    held: VecDeque<ResponseChannel<SyncResponse>>,
    /// SlowReader: the peers it attacks.
    targets: HashMap<PeerId, Target>,
    /// Sybil: the identities' tasks.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for AdversaryState {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the adversary did with an inbound request.
pub(crate) enum Handled {
    /// Taken care of (held, relayed, or answered).
    Yes,
    /// Not its business: serve it honestly.
    No(SyncRequest, ResponseChannel<SyncResponse>),
}

impl AdversaryState {
    /// Starts `mode`, warning loudly. Sybil identities are spawned on the current runtime.
    pub(crate) fn start(
        mode: Adversary,
        config: &NetworkConfig,
        names: &Names,
        status: Status,
        bootnodes: &HashMap<PeerId, Multiaddr>,
    ) -> Self {
        tracing::warn!(
            mode = %mode,
            "ADVERSARY MODE: this network instance misbehaves on purpose (for testing \
             defences only; never run it on a network you care about)"
        );
        let mut tasks = Vec::new();
        if let Adversary::Sybil { identities } = &mode {
            let boot: Vec<(PeerId, Multiaddr)> = bootnodes
                .iter()
                .map(|(p, a)| (*p, crate::peers::without_p2p(a)))
                .collect();
            for i in 0..(*identities).min(MAX_SYBIL_IDENTITIES) {
                let key = sybil_key(config.fault_seed, i);
                match sybil_swarm(key, config, names) {
                    Ok(swarm) => tasks.push(tokio::spawn(run_sybil(swarm, status, boot.clone()))),
                    Err(e) => tracing::warn!(error = %e, "adversary: a sybil identity failed"),
                }
            }
            tracing::warn!(
                identities = tasks.len(),
                bootnodes = boot.len(),
                "ADVERSARY MODE: sybil identities started"
            );
        }
        AdversaryState {
            mode,
            genesis: config.genesis_hash,
            relays: HashMap::new(),
            held: VecDeque::new(),
            targets: HashMap::new(),
            tasks,
        }
    }

    /// The mode.
    pub(crate) fn mode(&self) -> &Adversary {
        &self.mode
    }

    /// The status the instance announces: the stalling modes claim an enormous chain.
    pub(crate) fn claimed_status(&self, honest: Status) -> Status {
        match self.mode {
            Adversary::StallSync | Adversary::StallSilent => Status {
                height: honest.height.saturating_add(1_000_000),
                total_work: U256::MAX >> 8,
                ..honest
            },
            _ => honest,
        }
    }

    fn hold(&mut self, channel: ResponseChannel<SyncResponse>) {
        if self.held.len() >= MAX_HELD {
            self.held.pop_front();
        }
        self.held.push_back(channel);
    }

    /// An inbound request from `peer`.
    pub(crate) fn on_request(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) -> Handled {
        match (&self.mode, request) {
            (_, request @ SyncRequest::Status(_)) => Handled::No(request, channel),
            (Adversary::StallSync, SyncRequest::GetHeaders { locator, .. }) => {
                // The requester's own headers: ask it for the header after the first locator
                // entry below its newest one (that is its tip, which it holds already).
                let first = locator.first().copied();
                let older: Vec<Hash> = locator
                    .into_iter()
                    .skip_while(|h| Some(*h) == first)
                    .collect();
                if older.is_empty() || self.relays.len() >= MAX_HELD {
                    self.hold(channel);
                } else {
                    let request = SyncRequest::GetHeaders {
                        locator: older,
                        max: 1,
                    };
                    let id = swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.relays.insert(id, channel);
                }
                Handled::Yes
            }
            (Adversary::StallSync | Adversary::StallSilent, _) => {
                self.hold(channel);
                Handled::Yes
            }
            (_, request) => Handled::No(request, channel),
        }
    }

    /// A response to one of our requests: `None` when it was the adversary's own request
    /// (then it is consumed), otherwise given back.
    pub(crate) fn on_response(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        id: &OutboundRequestId,
        response: SyncResponse,
    ) -> Option<SyncResponse> {
        if let Some(channel) = self.relays.remove(id) {
            match response {
                SyncResponse::Headers(headers) if !headers.is_empty() => {
                    let answer = SyncResponse::Headers(headers);
                    if swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, answer)
                        .is_err()
                    {
                        tracing::debug!(%peer, "adversary: relayed headers came too late");
                    }
                }
                _ => self.hold(channel),
            }
            return None;
        }
        let target = self.targets.get_mut(&peer)?;
        if target.asking_headers == Some(*id) {
            target.asking_headers = None;
            if let SyncResponse::Headers(headers) = response {
                target.hashes = headers.iter().map(|h| h.hash()).collect();
                tracing::warn!(%peer, blocks = target.hashes.len(), "adversary: slow reader has its targets");
            }
            return None;
        }
        if target.outstanding.remove(id) {
            if matches!(response, SyncResponse::Refused(_)) {
                target.cap = target.outstanding.len().max(1);
            }
            return None;
        }
        Some(response)
    }

    /// One of our requests failed: whether it was the adversary's own.
    pub(crate) fn on_failure(&mut self, peer: PeerId, id: &OutboundRequestId) -> bool {
        if let Some(channel) = self.relays.remove(id) {
            self.hold(channel);
            return true;
        }
        let Some(target) = self.targets.get_mut(&peer) else {
            return false;
        };
        if target.asking_headers == Some(*id) {
            target.asking_headers = None;
            return true;
        }
        target.outstanding.remove(id)
    }

    /// A peer disconnected.
    pub(crate) fn on_disconnected(&mut self, peer: &PeerId) {
        self.targets.remove(peer);
    }

    /// The slow reader's work at each tick: learn block hashes from each handshaked peer,
    /// then keep asking for blocks it will never read.
    pub(crate) fn on_tick(&mut self, swarm: &mut Swarm<Behaviour>, peers: &[PeerId], now: Instant) {
        if self.mode != Adversary::SlowReader {
            return;
        }
        for peer in peers {
            if self.targets.len() >= SLOW_READER_TARGETS && !self.targets.contains_key(peer) {
                continue;
            }
            let target = self.targets.entry(*peer).or_insert_with(|| Target {
                cap: SLOW_READER_OUTSTANDING,
                ..Target::default()
            });
            if target.hashes.is_empty() {
                if target.asking_headers.is_none() {
                    let request = SyncRequest::GetHeaders {
                        locator: vec![self.genesis],
                        max: MAX_HEADERS as u32,
                    };
                    target.asking_headers =
                        Some(swarm.behaviour_mut().sync.send_request(peer, request));
                }
                continue;
            }
            let due = target
                .last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= SLOW_READER_GAP);
            if !due || target.outstanding.len() >= target.cap {
                continue;
            }
            let n = target.hashes.len();
            let i = target.sent % n;
            let hashes = if target.sent.is_multiple_of(2) {
                // One (hopefully big) block, 128 times.
                vec![target.hashes[i]; MAX_BLOCKS_PER_REQUEST]
            } else {
                target
                    .hashes
                    .iter()
                    .cycle()
                    .skip(i)
                    .take(MAX_BLOCKS_PER_REQUEST.min(n))
                    .copied()
                    .collect()
            };
            let id = swarm
                .behaviour_mut()
                .sync
                .send_request(peer, SyncRequest::GetBlocks(hashes));
            target.outstanding.insert(id);
            target.sent = target.sent.wrapping_add(1);
            target.last_sent = Some(now);
        }
    }
}

/// The behaviour of a sybil identity: just enough to hold a slot (the status handshake, and
/// ping, without which an honest node closes the connection).
#[derive(NetworkBehaviour)]
struct SybilBehaviour {
    sync: request_response::Behaviour<SyncCodec>,
    ping: ping::Behaviour,
}

/// Sybil identity `i`: derived from `seed` as a testnet's node keys are from their shared
/// secret ([`NodeKeySeed::derive`], the secret here being a label and the seed), so every
/// run with that seed has the same identities; fresh without a seed.
fn sybil_key(seed: Option<u64>, i: u32) -> Keypair {
    let Some(seed) = seed else {
        return Keypair::generate_ed25519();
    };
    let secret = [b"sybil identity ".as_slice(), &seed.to_le_bytes()].concat();
    NodeKeySeed::derive(&secret, i).keypair()
}

fn sybil_swarm(
    key: Keypair,
    config: &NetworkConfig,
    names: &Names,
) -> Result<Swarm<SybilBehaviour>, String> {
    let behaviour = SybilBehaviour {
        sync: sync_behaviour(config, names),
        ping: ping::Behaviour::new(
            ping::Config::new()
                .with_interval(PING_INTERVAL)
                .with_timeout(PING_TIMEOUT),
        ),
    };
    Ok(SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_behaviour(|_| behaviour)
        .map_err(|e| format!("{e:?}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build())
}

/// One sybil identity: dials every bootnode (again every second while not connected),
/// completes the status handshake and answers status requests; refuses anything else.
async fn run_sybil(
    mut swarm: Swarm<SybilBehaviour>,
    status: Status,
    bootnodes: Vec<(PeerId, Multiaddr)>,
) {
    let mut redial = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. }
                    if num_established.get() == 1 =>
                {
                    swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer_id, SyncRequest::Status(status));
                }
                SwarmEvent::Behaviour(SybilBehaviourEvent::Sync(
                    request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    },
                )) => {
                    let answer = match request {
                        SyncRequest::Status(_) => SyncResponse::Status(status),
                        _ => SyncResponse::Refused(Refusal::Busy),
                    };
                    let _ = swarm.behaviour_mut().sync.send_response(channel, answer);
                }
                _ => {}
            },
            _ = redial.tick() => {
                for (peer, addr) in &bootnodes {
                    if swarm.is_connected(peer) {
                        continue;
                    }
                    let opts = DialOpts::peer_id(*peer)
                        .addresses(vec![addr.clone()])
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build();
                    let _ = swarm.dial(opts);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sybil_identities_follow_the_fault_seed_and_are_fresh_without_one() {
        let id = |seed, i| sybil_key(seed, i).public().to_peer_id();
        assert_eq!(
            id(Some(7), 0),
            id(Some(7), 0),
            "one seed, the same identities"
        );
        assert_ne!(id(Some(7), 0), id(Some(7), 1), "one per index");
        assert_ne!(id(Some(7), 0), id(Some(8), 0), "another seed, others");
        assert_ne!(id(None, 0), id(None, 0), "no seed: fresh each time");
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in [
            Adversary::StallSync,
            Adversary::StallSilent,
            Adversary::SlowReader,
            Adversary::Sybil { identities: 40 },
        ] {
            assert_eq!(mode.name().parse::<Adversary>(), Ok(mode.clone()));
        }
        assert!("sybil:0".parse::<Adversary>().is_err());
        assert!("sybil:x".parse::<Adversary>().is_err());
        let err = "nice".parse::<Adversary>().expect_err("unknown");
        assert!(err.contains("stall-sync"), "{err}");
        assert!(!Adversary::StallSync.syncs());
        assert!(Adversary::Sybil { identities: 1 }.syncs());
    }

    #[test]
    fn only_the_slow_reader_stalls_its_reads() {
        assert_eq!(sync_settings(None), (None, None));
        assert!(sync_settings(Some(&Adversary::SlowReader)).0.is_some());
        assert!(sync_settings(Some(&Adversary::StallSync)).0.is_none());
        assert!(SLOW_READER_HOLD > SYNC_REQUEST_TIMEOUT);
        assert!(SLOW_READER_TIMEOUT > SLOW_READER_HOLD);
    }
}
