//! Header-first sync rounds, as a state machine: [`SyncState`].
//!
//! It owns: the current round (which peer, the work it claimed, the outstanding `GetHeaders`
//! and `GetBlocks` and what each asked for, the checked headers whose bodies are still to
//! fetch, the blocks received out of order), the requester-side pacing, the buffer of
//! downloaded blocks released in order and waiting for the event channel, the work the local
//! tip is expected to reach once they are imported, whether `Syncing(true)` was reported, and
//! the ancestor hashes fetched recently. Inputs are the peer's answers and the clock (`now`);
//! outputs are requests sent through [`RoundIo`] and, when a round ends, a [`RoundEnd`] the
//! service acts on (penalties, cooldowns, dropping stale request ids).
//!
//! Every round ends: it has an overall deadline ([`SYNC_ROUND_DEADLINE`]), every `Headers`
//! answer must bring new headers or more work than the previous one (a peer that answers
//! with headers we already hold, again and again, is cut off at the second such answer), and
//! the time spent waiting on the peer without anything new is bounded
//! ([`SYNC_PROGRESS_TIMEOUT`]). A round that waits for buffer room with nothing in flight
//! (the node stopped importing) ends after [`SYNC_IDLE_TIMEOUT`]. A round that ends through
//! the peer's fault without having delivered anything new also checks its claim: a peer that
//! claimed more work than it served is reported as a liar whichever way the round ended.
//!
//! It must never: touch the swarm, the store or the clock directly (all through [`RoundIo`]
//! and `now` arguments); choose the peer itself (the [`crate::peers::PeerBook`] does); judge
//! consensus validity beyond [`check_headers`]; or hold more than [`SYNC_BUFFER_BLOCKS`] /
//! [`SYNC_BUFFER_BYTES`] of downloaded blocks (round downloads and ancestor fetches
//! together) before pausing its requests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash as StdHash;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use peerchain_ledger::{Block, BlockHeader, Hash, U256};

use crate::codec::SyncRequest;
use crate::config::{
    EXPECTED_WORK_GRACE, MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, RECENT_ANCESTORS,
    REQUEST_BURST, REQUEST_RATE_PER_SEC, SYNC_BUFFER_BLOCKS, SYNC_BUFFER_BYTES, SYNC_COOLDOWN,
    SYNC_IDLE_TIMEOUT, SYNC_INFLIGHT_REQUESTS, SYNC_PROGRESS_TIMEOUT, SYNC_RETRY_COOLDOWN,
    SYNC_ROUND_DEADLINE, points,
};
use crate::sync::{Anchor, check_headers};

/// What a round needs from the outside world: the store and the swarm.
pub(crate) trait RoundIo<R> {
    /// A locator of our main chain: hash, height and cumulative work, newest first.
    fn locator(&mut self) -> Result<Vec<(Hash, u64, U256)>, String>;
    /// Whether the block is stored already (a read error counts as not stored).
    fn has_block(&mut self, hash: &Hash) -> bool;
    /// Sends a request to `peer` and returns its id.
    fn send(&mut self, peer: PeerId, request: SyncRequest) -> R;
}

/// One round with one peer.
#[derive(Debug)]
struct SyncRound<R> {
    peer: PeerId,
    /// The work it claimed.
    claimed: U256,
    /// Outstanding `GetHeaders`, with the anchors a first header may link to.
    headers_req: Option<(R, HashMap<Hash, Anchor>)>,
    /// Last checked header (the continuation point of the next `GetHeaders`).
    last: Option<Anchor>,
    /// The work of our store's tip when the round read its locator. It may be ahead of
    /// `SyncState::local_work` (the chain thread connected blocks and has not announced the
    /// new tip yet); a peer that serves nothing past it served that much.
    stored_work: U256,
    /// The peer answered with no headers: everything is known.
    headers_done: bool,
    /// Checked headers whose bodies are not requested yet; the front has position `next_pos`.
    to_fetch: VecDeque<Hash>,
    /// Position (index in the round's header stream) of `to_fetch`'s front.
    next_pos: u64,
    /// Outstanding `GetBlocks`: first position and the hashes asked for.
    inflight: HashMap<R, (u64, Vec<Hash>)>,
    /// Blocks received ahead of an earlier outstanding batch, by position.
    received: BTreeMap<u64, Block>,
    /// Position of the next block to release in order.
    release_pos: u64,
    /// Blocks released by this round.
    released: u64,
    started: Instant,
    /// The round received new headers or blocks at least once.
    progressed: bool,
    /// Time spent with a request in flight since the last new headers or blocks.
    stalled_for: Duration,
    /// Time spent with nothing in flight (waiting for buffer room or pacing).
    idle_for: Duration,
    /// When `stalled_for` / `idle_for` were last brought up to date.
    clock_at: Instant,
}

impl<R> SyncRound<R> {
    /// Blocks requested but not yet released.
    fn buffered(&self) -> usize {
        let inflight: usize = self.inflight.values().map(|(_, h)| h.len()).sum();
        inflight + self.received.len()
    }

    /// Whether a request of the round is outstanding.
    fn in_flight(&self) -> bool {
        self.headers_req.is_some() || !self.inflight.is_empty()
    }

    /// Charges the time since the last call to the peer (a request was in flight) or to
    /// waiting (nothing was). Called first by every entry point, before the state changes.
    fn account(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.clock_at);
        self.clock_at = self.clock_at.max(now);
        if self.in_flight() {
            self.stalled_for = self.stalled_for.saturating_add(dt);
            self.idle_for = Duration::ZERO;
        } else {
            self.idle_for = self.idle_for.saturating_add(dt);
        }
    }

    /// New headers or blocks arrived.
    fn progress(&mut self) {
        self.progressed = true;
        self.stalled_for = Duration::ZERO;
    }

    /// Whether the round has nothing left to do.
    fn is_complete(&self) -> bool {
        self.headers_done
            && self.headers_req.is_none()
            && self.to_fetch.is_empty()
            && self.inflight.is_empty()
            && self.received.is_empty()
    }
}

/// Requester-side pacing, slightly under the server's rate limit so an honest server never
/// refuses us.
#[derive(Debug)]
struct Pacer {
    tokens: f64,
    at: Instant,
}

impl Pacer {
    fn new(now: Instant) -> Self {
        Pacer {
            tokens: REQUEST_BURST / 2.0,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
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

/// Work we expect the local tip to reach once downloaded blocks are imported.
#[derive(Debug)]
struct ExpectedWork {
    work: U256,
    deadline: Option<Instant>,
}

/// A round ended; the service applies the consequences.
#[derive(Debug)]
pub(crate) enum RoundEnd<R> {
    /// The peer had nothing more to send.
    Finished(Finished),
    /// The round failed.
    Aborted(Aborted<R>),
}

/// A round that ran to its end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    /// The peer.
    pub peer: PeerId,
    /// Blocks it released.
    pub released: u64,
    /// How long the round took.
    pub elapsed: Duration,
    /// Work of the chain it served (our tip's work when it served nothing): its claim is
    /// lowered to this.
    pub served: U256,
    /// It claimed more work than it served: penalise it, for this reason.
    pub lied: Option<String>,
    /// It served nothing new though its chain outweighs ours (we hold that chain and did not
    /// adopt it): do not choose it again before this.
    pub cooldown_until: Option<Instant>,
}

/// A round that failed.
#[derive(Debug, PartialEq)]
pub(crate) struct Aborted<R> {
    /// The peer.
    pub peer: PeerId,
    /// Why.
    pub reason: String,
    /// Misbehaviour points when the peer is at fault.
    pub penalty: Option<f64>,
    /// Do not choose the peer again before this.
    pub cooldown_until: Instant,
    /// The round's outstanding requests: answers to them must be ignored.
    pub stale: Vec<R>,
    /// The peer was at fault without delivering anything new, and had claimed more work than
    /// it served: penalise it for that too, for this reason.
    pub lied: Option<String>,
    /// The peer was at fault without delivering anything new: lower its claim to this (the
    /// work of the chain it served, or our tip's work), until it announces more.
    pub served: Option<U256>,
}

/// What the periodic tick found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Housekeeping {
    /// Syncing is over: report `Syncing(false)`.
    pub syncing_done: bool,
    /// Downloaded blocks did not raise the tip in time: try other peers.
    pub retry: bool,
}

/// "claimed more than it served", when it did.
fn lie(claimed: U256, served: U256) -> Option<String> {
    (claimed > served)
        .then(|| format!("claimed total work {claimed} but served a chain of work {served}"))
}

/// The requester side of block sync. See the module docs.
#[derive(Debug)]
pub(crate) struct SyncState<R> {
    round: Option<SyncRound<R>>,
    pacer: Pacer,
    local_work: U256,
    /// Downloaded blocks, in order, waiting for room in the event channel.
    ready: VecDeque<(Block, PeerId)>,
    ready_bytes: usize,
    reported: bool,
    expected: Option<ExpectedWork>,
    recent_ancestors: VecDeque<Hash>,
    /// Single-block ancestor fetches in flight (they count against the download buffer).
    ancestors_inflight: usize,
}

impl<R: Copy + Eq + StdHash + Debug> SyncState<R> {
    /// No round yet; the local tip has `local_work`.
    pub(crate) fn new(local_work: U256, now: Instant) -> Self {
        SyncState {
            round: None,
            pacer: Pacer::new(now),
            local_work,
            ready: VecDeque::new(),
            ready_bytes: 0,
            reported: false,
            expected: None,
            recent_ancestors: VecDeque::new(),
            ancestors_inflight: 0,
        }
    }

    /// Whether no round is running.
    pub(crate) fn is_idle(&self) -> bool {
        self.round.is_none()
    }

    /// The peer of the running round.
    pub(crate) fn round_peer(&self) -> Option<PeerId> {
        self.round.as_ref().map(|r| r.peer)
    }

    /// The local tip moved.
    pub(crate) fn set_local_work(&mut self, work: U256) {
        self.local_work = work;
        if self.expected.as_ref().is_some_and(|e| work >= e.work) {
            self.expected = None;
        }
    }

    /// A peer must claim more than this for a round to start: the larger of our tip's work
    /// and the work of chains downloaded but not yet imported.
    pub(crate) fn work_floor(&self) -> U256 {
        self.expected
            .as_ref()
            .map_or(self.local_work, |e| e.work.max(self.local_work))
    }

    /// Starts a round with `peer`, which claimed `claimed`. Returns whether `Syncing(true)`
    /// must be reported. Does nothing (and returns `false`) while a round runs.
    pub(crate) fn start(&mut self, peer: PeerId, claimed: U256, now: Instant) -> bool {
        if self.round.is_some() {
            return false;
        }
        self.round = Some(SyncRound {
            peer,
            claimed,
            headers_req: None,
            last: None,
            stored_work: self.local_work,
            headers_done: false,
            to_fetch: VecDeque::new(),
            next_pos: 0,
            inflight: HashMap::new(),
            received: BTreeMap::new(),
            release_pos: 0,
            released: 0,
            started: now,
            progressed: false,
            stalled_for: Duration::ZERO,
            idle_for: Duration::ZERO,
            clock_at: now,
        });
        !std::mem::replace(&mut self.reported, true)
    }

    /// Sends the requests the round can make now (pacing and buffer room permitting) and
    /// reports its end.
    pub(crate) fn pump(&mut self, now: Instant, io: &mut impl RoundIo<R>) -> Option<RoundEnd<R>> {
        let mut round = self.round.take()?;
        round.account(now);
        let peer = round.peer;
        if round.headers_req.is_none()
            && !round.headers_done
            && round.to_fetch.len() < MAX_BLOCKS_PER_REQUEST
            && self.pacer.take(now)
        {
            let entries = match io.locator() {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the block locator");
                    self.round = Some(round);
                    return self
                        .abort("store read failed", None, now)
                        .map(RoundEnd::Aborted);
                }
            };
            let mut anchors = HashMap::new();
            let mut locator = Vec::with_capacity(MAX_LOCATOR);
            if let Some(last) = round.last {
                anchors.insert(last.hash, last);
                locator.push(last.hash);
            }
            if let Some((_, _, work)) = entries.first() {
                round.stored_work = round.stored_work.max(*work);
            }
            for (hash, height, work) in entries {
                if locator.len() >= MAX_LOCATOR {
                    break;
                }
                anchors.entry(hash).or_insert(Anchor { hash, height, work });
                locator.push(hash);
            }
            let max = u32::try_from(MAX_HEADERS).unwrap_or(u32::MAX);
            let id = io.send(peer, SyncRequest::GetHeaders { locator, max });
            round.headers_req = Some((id, anchors));
        }
        while round.inflight.len() < SYNC_INFLIGHT_REQUESTS
            && !round.to_fetch.is_empty()
            && round.buffered() + self.ready.len() + self.ancestors_inflight < SYNC_BUFFER_BLOCKS
            && self.ready_bytes < SYNC_BUFFER_BYTES
            && self.pacer.take(now)
        {
            let n = round.to_fetch.len().min(MAX_BLOCKS_PER_REQUEST);
            let hashes: Vec<Hash> = round.to_fetch.drain(..n).collect();
            let pos = round.next_pos;
            round.next_pos += n as u64;
            let id = io.send(peer, SyncRequest::GetBlocks(hashes.clone()));
            round.inflight.insert(id, (pos, hashes));
        }
        if round.is_complete() {
            Some(RoundEnd::Finished(self.finish(round, now)))
        } else {
            self.round = Some(round);
            None
        }
    }

    /// A `Headers` answer to request `id` from `peer`. Answers that are not the round's
    /// outstanding `GetHeaders` are ignored.
    pub(crate) fn on_headers(
        &mut self,
        peer: PeerId,
        id: R,
        headers: Vec<BlockHeader>,
        now: Instant,
        io: &mut impl RoundIo<R>,
    ) -> Option<RoundEnd<R>> {
        let round = self.round.as_mut()?;
        round.account(now);
        if round.peer != peer || !matches!(&round.headers_req, Some((req, _)) if *req == id) {
            return None;
        }
        let (_, anchors) = round.headers_req.take()?;
        let Some(first) = headers.first() else {
            round.headers_done = true;
            return self.pump(now, io);
        };
        let Some(anchor) = anchors.get(&first.prev_hash).copied() else {
            let reason = format!(
                "first header {} does not follow any locator hash",
                first.hash()
            );
            return self.abort_at_fault(&reason, points::INVALID_SYNC_DATA, now);
        };
        match check_headers(anchor, &headers) {
            Ok((hashes, last)) => {
                // The locator only approximates the fork point: skip the blocks we already
                // store (a stored block's ancestors are all stored, so order is kept).
                let known = hashes.iter().take_while(|h| io.has_block(h)).count();
                tracing::debug!(%peer, count = hashes.len(), known, height = last.height, "headers checked");
                // Progress: a header we do not hold, or a chain heavier than the one the
                // previous answer reached. Anything else (e.g. our own tip again) loops.
                let fresh = known < hashes.len();
                let heavier = round.last.is_none_or(|prev| last.work > prev.work);
                if !fresh && !heavier {
                    let reason = format!(
                        "no progress: {} headers we already hold, reaching work {} again",
                        hashes.len(),
                        last.work
                    );
                    return self.abort_at_fault(&reason, points::NO_PROGRESS, now);
                }
                if fresh {
                    round.progress();
                }
                round.last = Some(last);
                round.to_fetch.extend(hashes.into_iter().skip(known));
                self.pump(now, io)
            }
            Err(reason) => self.abort_at_fault(&reason, points::INVALID_SYNC_DATA, now),
        }
    }

    /// A `Blocks` answer to the round's request `id`. Answers to other requests are ignored.
    pub(crate) fn on_blocks(
        &mut self,
        id: R,
        blocks: Vec<Block>,
        now: Instant,
        io: &mut impl RoundIo<R>,
    ) -> Option<RoundEnd<R>> {
        let round = self.round.as_mut()?;
        round.account(now);
        let (pos, hashes) = round.inflight.remove(&id)?;
        let peer = round.peer;
        if blocks.is_empty() {
            return self.abort_at_fault(
                "peer did not serve blocks whose headers it sent",
                points::STALLED,
                now,
            );
        }
        if blocks.len() > hashes.len() {
            let reason = format!("{} blocks for a request of {}", blocks.len(), hashes.len());
            return self.abort_at_fault(&reason, points::INVALID_SYNC_DATA, now);
        }
        if let Some((got, want)) = blocks
            .iter()
            .map(Block::hash)
            .zip(&hashes)
            .find(|(got, want)| got != *want)
        {
            let reason = format!("sent block {got} for {want}");
            return self.abort_at_fault(&reason, points::INVALID_SYNC_DATA, now);
        }
        let n = blocks.len();
        round.progress();
        for (i, block) in blocks.into_iter().enumerate() {
            round.received.insert(pos + i as u64, block);
        }
        if let Some(rest) = hashes.get(n..).filter(|rest| !rest.is_empty()) {
            // A partial answer (size bound): ask for the rest at once.
            let rest = rest.to_vec();
            let rid = io.send(peer, SyncRequest::GetBlocks(rest.clone()));
            round.inflight.insert(rid, (pos + n as u64, rest));
        }
        let mut released = Vec::new();
        while let Some(block) = round.received.remove(&round.release_pos) {
            round.release_pos += 1;
            round.released += 1;
            released.push(block);
        }
        for block in released {
            self.push_ready(block, peer);
        }
        self.pump(now, io)
    }

    /// Drops the current round. With `penalty` the peer was at fault and gets the long
    /// cooldown, and its claim is checked against what it served; otherwise (disconnect,
    /// refusal, ban) the short one. Blocks already released stay queued for delivery.
    pub(crate) fn abort(
        &mut self,
        reason: &str,
        penalty: Option<f64>,
        now: Instant,
    ) -> Option<Aborted<R>> {
        let cooldown = if penalty.is_some() {
            SYNC_COOLDOWN
        } else {
            SYNC_RETRY_COOLDOWN
        };
        self.abort_with(reason, penalty, now + cooldown)
    }

    fn abort_with(
        &mut self,
        reason: &str,
        penalty: Option<f64>,
        cooldown_until: Instant,
    ) -> Option<Aborted<R>> {
        let round = self.round.take()?;
        let mut stale: Vec<R> = round.inflight.keys().copied().collect();
        if let Some((id, _)) = round.headers_req {
            stale.push(id);
        }
        // A peer at fault that never delivered anything new: its claim was a lie too. (One
        // that did deliver and then stalled is only slow; its claim stays.)
        let (lied, served) = if penalty.is_some() && !round.progressed {
            let served = round.last.map_or(self.local_work, |a| a.work);
            (
                lie(round.claimed, served.max(round.stored_work)),
                Some(served),
            )
        } else {
            (None, None)
        };
        Some(Aborted {
            peer: round.peer,
            reason: reason.to_owned(),
            penalty,
            cooldown_until,
            stale,
            lied,
            served,
        })
    }

    /// Ends a round that ran out of time: past [`SYNC_ROUND_DEADLINE`] (without penalty when
    /// it delivered something: the next round continues from the new tip at once), stalled
    /// for [`SYNC_PROGRESS_TIMEOUT`] (the peer's fault), or idle for [`SYNC_IDLE_TIMEOUT`]
    /// because the node does not take the downloaded blocks (nobody's fault). Called on every
    /// tick.
    pub(crate) fn check_deadlines(&mut self, now: Instant) -> Option<RoundEnd<R>> {
        let round = self.round.as_mut()?;
        round.account(now);
        let age = now.saturating_duration_since(round.started);
        let aborted = if round.stalled_for >= SYNC_PROGRESS_TIMEOUT {
            let reason = format!(
                "no new headers or blocks for {:?} of waiting",
                round.stalled_for
            );
            // It served before and got slow, or it never served anything at all.
            let pts = if round.progressed {
                points::STALLED
            } else {
                points::NO_PROGRESS
            };
            self.abort(&reason, Some(pts), now)
        } else if age >= SYNC_ROUND_DEADLINE {
            let reason = format!("round deadline of {SYNC_ROUND_DEADLINE:?} reached");
            if round.progressed {
                self.abort_with(&reason, None, now)
            } else {
                self.abort(&reason, Some(points::NO_PROGRESS), now)
            }
        } else if round.idle_for >= SYNC_IDLE_TIMEOUT {
            let reason = format!(
                "nothing in flight for {:?}: the download buffer does not drain",
                round.idle_for
            );
            self.abort(&reason, None, now)
        } else {
            None
        };
        aborted.map(RoundEnd::Aborted)
    }

    fn abort_at_fault(&mut self, reason: &str, pts: f64, now: Instant) -> Option<RoundEnd<R>> {
        self.abort(reason, Some(pts), now).map(RoundEnd::Aborted)
    }

    fn finish(&mut self, round: SyncRound<R>, now: Instant) -> Finished {
        let local = self.local_work;
        let served = round.last.map_or(local, |a| a.work);
        let lied = lie(round.claimed, served.max(round.stored_work));
        let mut cooldown_until = None;
        if round.released == 0 && served > local {
            cooldown_until = Some(now + SYNC_COOLDOWN);
        } else if served > local {
            let work = self
                .expected
                .as_ref()
                .map_or(served, |e| e.work.max(served));
            self.expected = Some(ExpectedWork {
                work,
                deadline: None,
            });
        }
        Finished {
            peer: round.peer,
            released: round.released,
            elapsed: now.saturating_duration_since(round.started),
            served,
            lied,
            cooldown_until,
        }
    }

    /// Periodic checks: whether syncing is over, and whether downloaded blocks failed to
    /// raise the tip within [`EXPECTED_WORK_GRACE`] after the last was delivered.
    pub(crate) fn housekeeping(&mut self, now: Instant) -> Housekeeping {
        let mut out = Housekeeping::default();
        if self.reported && self.round.is_none() && self.ready.is_empty() {
            self.reported = false;
            out.syncing_done = true;
        }
        let Some(e) = self.expected.as_mut() else {
            return out;
        };
        if self.local_work >= e.work {
            self.expected = None;
        } else if self.ready.is_empty() {
            match e.deadline {
                None => e.deadline = Some(now + EXPECTED_WORK_GRACE),
                Some(d) if d <= now => {
                    tracing::debug!("downloaded blocks did not raise the tip; trying other peers");
                    self.expected = None;
                    out.retry = true;
                }
                Some(_) => {}
            }
        }
        out
    }

    // ----- the download buffer --------------------------------------------------------

    /// Queues a downloaded block for delivery.
    pub(crate) fn push_ready(&mut self, block: Block, peer: PeerId) {
        self.ready_bytes = self.ready_bytes.saturating_add(block.encoded_len());
        self.ready.push_back((block, peer));
    }

    /// The next downloaded block to deliver.
    pub(crate) fn pop_ready(&mut self) -> Option<(Block, PeerId)> {
        let (block, peer) = self.ready.pop_front()?;
        self.ready_bytes = self.ready_bytes.saturating_sub(block.encoded_len());
        Some((block, peer))
    }

    /// Whether downloaded blocks wait for delivery.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Drops every downloaded block (the event channel is closed).
    pub(crate) fn clear_ready(&mut self) {
        self.ready.clear();
        self.ready_bytes = 0;
    }

    // ----- single-block ancestor fetches ----------------------------------------------

    /// Whether `missing` should be fetched on its own: no round is running (it would fetch
    /// it) and it was not requested recently.
    pub(crate) fn ancestor_wanted(&self, missing: &Hash) -> bool {
        self.round.is_none() && !self.recent_ancestors.contains(missing)
    }

    /// Whether the download buffer has room for one more single-block fetch (the blocks
    /// waiting for delivery and the fetches in flight count against its bound).
    pub(crate) fn ancestor_room(&self) -> bool {
        let in_round = self.round.as_ref().map_or(0, SyncRound::buffered);
        self.ready.len() + self.ancestors_inflight + in_round < SYNC_BUFFER_BLOCKS
            && self.ready_bytes < SYNC_BUFFER_BYTES
    }

    /// Remembers that `missing` was requested (the last [`RECENT_ANCESTORS`] are kept) and
    /// counts the fetch as in flight until [`SyncState::ancestor_done`].
    pub(crate) fn note_ancestor(&mut self, missing: Hash) {
        if self.recent_ancestors.len() >= RECENT_ANCESTORS {
            self.recent_ancestors.pop_front();
        }
        self.recent_ancestors.push_back(missing);
        self.ancestors_inflight += 1;
    }

    /// A single-block fetch was answered or failed.
    pub(crate) fn ancestor_done(&mut self) {
        self.ancestors_inflight = self.ancestors_inflight.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::peer;
    use peerchain_ledger::{Address, Target};
    use std::collections::HashSet;

    /// A chain of `n` headers after a genesis-like anchor, each meeting its (trivial) target:
    /// work 1 per header.
    fn headers_after(anchor: Anchor, n: u64) -> Vec<BlockHeader> {
        let mut out = Vec::new();
        let mut prev = anchor.hash;
        for i in 1..=n {
            let header = BlockHeader {
                version: 1,
                height: anchor.height + i,
                prev_hash: prev,
                tx_root: Hash([0; 32]),
                timestamp_ms: 1000 + i,
                target: Target(U256::MAX),
                nonce: i,
                miner: Address([1; 20]),
            };
            prev = header.hash();
            out.push(header);
        }
        out
    }

    fn block(header: &BlockHeader) -> Block {
        Block {
            header: header.clone(),
            transactions: Vec::new(),
        }
    }

    fn genesis() -> Anchor {
        Anchor {
            hash: Hash([9; 32]),
            height: 0,
            work: U256::from(100u64),
        }
    }

    /// Records requests; ids count up from 1.
    #[derive(Default)]
    struct FakeIo {
        sent: Vec<(u32, PeerId, SyncRequest)>,
        stored: HashSet<Hash>,
        store_broken: bool,
        /// A tip the store holds above genesis (the locator starts with it).
        store_tip: Option<Anchor>,
    }

    impl RoundIo<u32> for FakeIo {
        fn locator(&mut self) -> Result<Vec<(Hash, u64, U256)>, String> {
            if self.store_broken {
                return Err("disk on fire".to_owned());
            }
            let g = genesis();
            let tip = self.store_tip.map(|t| (t.hash, t.height, t.work));
            Ok(tip
                .into_iter()
                .chain([(g.hash, g.height, g.work)])
                .collect())
        }
        fn has_block(&mut self, hash: &Hash) -> bool {
            self.stored.contains(hash)
        }
        fn send(&mut self, peer: PeerId, request: SyncRequest) -> u32 {
            let id = self.sent.len() as u32 + 1;
            self.sent.push((id, peer, request));
            id
        }
    }

    impl FakeIo {
        fn last(&self) -> (u32, SyncRequest) {
            let (id, _, req) = self.sent.last().expect("a request was sent");
            (*id, req.clone())
        }
        /// The id of the latest `GetHeaders`.
        fn headers_id(&self) -> u32 {
            self.sent
                .iter()
                .rev()
                .find_map(|(id, _, r)| matches!(r, SyncRequest::GetHeaders { .. }).then_some(*id))
                .expect("a GetHeaders was sent")
        }
        fn block_requests(&self) -> Vec<(u32, Vec<Hash>)> {
            self.sent
                .iter()
                .filter_map(|(id, _, r)| match r {
                    SyncRequest::GetBlocks(h) => Some((*id, h.clone())),
                    _ => None,
                })
                .collect()
        }
    }

    fn started(now: Instant, claimed: u64) -> (SyncState<u32>, FakeIo) {
        let mut s = SyncState::new(U256::from(100u64), now);
        assert!(
            s.start(peer(1), U256::from(claimed), now),
            "first start reports"
        );
        let mut io = FakeIo::default();
        assert!(s.pump(now, &mut io).is_none());
        (s, io)
    }

    #[test]
    fn a_round_downloads_headers_then_blocks_in_order() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 103);
        assert_eq!(s.round_peer(), Some(peer(1)));
        let (hid, req) = io.last();
        let SyncRequest::GetHeaders { locator, max } = req else {
            panic!("expected GetHeaders, got {req:?}");
        };
        assert_eq!(locator, vec![genesis().hash]);
        assert_eq!(max, MAX_HEADERS as u32);

        let headers = headers_after(genesis(), 3);
        // A stale id or another peer is ignored.
        assert!(
            s.on_headers(peer(2), hid, headers.clone(), t0, &mut io)
                .is_none()
        );
        assert!(
            s.on_headers(peer(1), hid + 7, headers.clone(), t0, &mut io)
                .is_none()
        );
        assert!(
            s.on_headers(peer(1), hid, headers.clone(), t0, &mut io)
                .is_none()
        );
        // The bodies are asked for, and the next headers continue from the last one.
        let blocks_req = io.block_requests();
        assert_eq!(blocks_req.len(), 1);
        let (bid, hashes) = blocks_req[0].clone();
        assert_eq!(hashes, headers.iter().map(|h| h.hash()).collect::<Vec<_>>());
        let next_headers = io
            .sent
            .iter()
            .rev()
            .find_map(|(id, _, r)| match r {
                SyncRequest::GetHeaders { locator, .. } => Some((*id, locator.clone())),
                _ => None,
            })
            .expect("continued");
        assert_ne!(next_headers.0, hid);
        assert_eq!(next_headers.1[0], headers[2].hash(), "last header first");

        // Blocks come back partially: the rest is asked for at once, the prefix released.
        let blocks: Vec<Block> = headers.iter().map(block).collect();
        assert!(
            s.on_blocks(bid, blocks[..2].to_vec(), t0, &mut io)
                .is_none()
        );
        let (rid, rest) = io.block_requests().last().cloned().expect("rest");
        assert_eq!(rest, vec![headers[2].hash()]);
        assert!(s.has_ready());
        assert_eq!(s.pop_ready().map(|b| b.0.hash()), Some(headers[0].hash()));
        assert_eq!(s.pop_ready().map(|b| b.0.hash()), Some(headers[1].hash()));
        assert!(s.pop_ready().is_none());
        assert!(
            s.on_blocks(rid, blocks[2..].to_vec(), t0, &mut io)
                .is_none()
        );
        // The peer has nothing more: the round finishes.
        let end = s
            .on_headers(peer(1), next_headers.0, Vec::new(), t0, &mut io)
            .expect("finished");
        let RoundEnd::Finished(f) = end else {
            panic!("expected Finished, got {end:?}");
        };
        assert_eq!(f.peer, peer(1));
        assert_eq!(f.released, 3);
        assert_eq!(f.served, U256::from(103u64));
        assert_eq!(f.lied, None);
        assert_eq!(f.cooldown_until, None);
        assert!(s.is_idle());
        // The downloaded work raises the floor until the tip reaches it.
        assert_eq!(s.work_floor(), U256::from(103u64));
        s.set_local_work(U256::from(103u64));
        assert_eq!(s.work_floor(), U256::from(103u64));
        s.set_local_work(U256::from(101u64));
        assert_eq!(s.work_floor(), U256::from(101u64), "expectation cleared");
    }

    #[test]
    fn out_of_order_batches_are_released_in_order() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 100 + 300);
        let (hid, _) = io.last();
        let headers = headers_after(genesis(), 300);
        s.on_headers(peer(1), hid, headers.clone(), t0, &mut io);
        let reqs = io.block_requests();
        assert_eq!(reqs.len(), 3, "128 + 128 + 44");
        let blocks: Vec<Block> = headers.iter().map(block).collect();
        // The second batch first: held back.
        s.on_blocks(reqs[1].0, blocks[128..256].to_vec(), t0, &mut io);
        assert!(!s.has_ready());
        s.on_blocks(reqs[0].0, blocks[..128].to_vec(), t0, &mut io);
        let mut got = Vec::new();
        while let Some((b, p)) = s.pop_ready() {
            assert_eq!(p, peer(1));
            got.push(b.header.height);
        }
        assert_eq!(got, (1..=256).collect::<Vec<u64>>());
    }

    #[test]
    fn known_blocks_are_skipped() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 105);
        let (hid, _) = io.last();
        let headers = headers_after(genesis(), 5);
        io.stored.insert(headers[0].hash());
        io.stored.insert(headers[1].hash());
        // Only a stored prefix counts.
        io.stored.insert(headers[3].hash());
        s.on_headers(peer(1), hid, headers.clone(), t0, &mut io);
        let (_, hashes) = io.block_requests()[0].clone();
        assert_eq!(
            hashes,
            headers[2..].iter().map(|h| h.hash()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_headers_abort_with_a_penalty_and_stale_ids() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 110);
        let (hid, _) = io.last();
        let unlinked = headers_after(
            Anchor {
                hash: Hash([5; 32]),
                ..genesis()
            },
            2,
        );
        let end = s
            .on_headers(peer(1), hid, unlinked, t0, &mut io)
            .expect("aborted");
        let RoundEnd::Aborted(a) = end else {
            panic!("expected Aborted, got {end:?}");
        };
        assert_eq!(a.peer, peer(1));
        assert_eq!(a.penalty, Some(points::INVALID_SYNC_DATA));
        assert!(a.reason.contains("does not follow"), "{}", a.reason);
        assert_eq!(a.cooldown_until, t0 + SYNC_COOLDOWN);
        assert!(s.is_idle());

        // A gap inside the run.
        let (mut s, mut io) = started(t0, 110);
        let (hid, _) = io.last();
        let mut headers = headers_after(genesis(), 3);
        headers.remove(1);
        let Some(RoundEnd::Aborted(a)) = s.on_headers(peer(1), hid, headers, t0, &mut io) else {
            panic!("expected an abort");
        };
        assert!(a.reason.contains("does not link"), "{}", a.reason);
    }

    #[test]
    fn wrong_or_missing_blocks_abort() {
        let t0 = Instant::now();
        let headers = headers_after(genesis(), 4);
        let blocks: Vec<Block> = headers.iter().map(block).collect();
        let setup = || {
            let (mut s, mut io) = started(t0, 104);
            let (hid, _) = io.last();
            s.on_headers(peer(1), hid, headers.clone(), t0, &mut io);
            let (bid, _) = io.block_requests()[0].clone();
            (s, io, bid)
        };

        let (mut s, mut io, bid) = setup();
        let Some(RoundEnd::Aborted(a)) = s.on_blocks(bid, Vec::new(), t0, &mut io) else {
            panic!("expected an abort");
        };
        assert_eq!(a.penalty, Some(points::STALLED));
        // Both the outstanding GetHeaders (continuation) and nothing else are stale now.
        assert_eq!(a.stale.len(), 1);

        let (mut s, mut io, bid) = setup();
        let swapped = vec![blocks[1].clone(), blocks[0].clone()];
        let Some(RoundEnd::Aborted(a)) = s.on_blocks(bid, swapped, t0, &mut io) else {
            panic!("expected an abort");
        };
        assert_eq!(a.penalty, Some(points::INVALID_SYNC_DATA));
        assert!(
            a.reason.contains(&headers[1].hash().to_string()),
            "{}",
            a.reason
        );

        let (mut s, mut io, bid) = setup();
        let mut too_many = blocks.clone();
        too_many.push(blocks[0].clone());
        let Some(RoundEnd::Aborted(a)) = s.on_blocks(bid, too_many, t0, &mut io) else {
            panic!("expected an abort");
        };
        assert!(
            a.reason.contains("5 blocks for a request of 4"),
            "{}",
            a.reason
        );

        // An unknown id is ignored.
        let (mut s, mut io, _) = setup();
        assert!(s.on_blocks(999, blocks, t0, &mut io).is_none());
        assert!(!s.is_idle());
    }

    #[test]
    fn external_aborts_use_the_short_cooldown_and_list_outstanding_requests() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 104);
        let (hid, _) = io.last();
        s.on_headers(peer(1), hid, headers_after(genesis(), 4), t0, &mut io);
        let mut ids: Vec<u32> = io.sent.iter().map(|(id, _, _)| *id).collect();
        ids.retain(|id| *id != hid);
        let mut a = s
            .abort("sync peer disconnected", None, t0)
            .expect("running");
        a.stale.sort_unstable();
        assert_eq!(
            a.stale, ids,
            "the GetBlocks and the continuation GetHeaders"
        );
        assert_eq!(a.cooldown_until, t0 + SYNC_RETRY_COOLDOWN);
        assert_eq!(a.penalty, None);
        assert!(s.abort("again", None, t0).is_none());
    }

    #[test]
    fn a_store_failure_aborts_without_penalty() {
        let t0 = Instant::now();
        let mut s: SyncState<u32> = SyncState::new(U256::from(100u64), t0);
        s.start(peer(1), U256::from(200u64), t0);
        let mut io = FakeIo {
            store_broken: true,
            ..FakeIo::default()
        };
        let Some(RoundEnd::Aborted(a)) = s.pump(t0, &mut io) else {
            panic!("expected an abort");
        };
        assert_eq!(a.penalty, None);
        assert_eq!(a.reason, "store read failed");
        assert!(io.sent.is_empty());
    }

    #[test]
    fn a_peer_that_serves_less_than_it_claimed_lied() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 500);
        let (hid, _) = io.last();
        let Some(RoundEnd::Finished(f)) = s.on_headers(peer(1), hid, Vec::new(), t0, &mut io)
        else {
            panic!("expected the round to finish");
        };
        assert_eq!(
            f.served,
            U256::from(100u64),
            "our own work: it served nothing"
        );
        let lied = f.lied.expect("lied");
        assert!(lied.contains("500") && lied.contains("100"), "{lied}");
        assert_eq!(
            f.cooldown_until, None,
            "nothing heavier than ours was served"
        );
    }

    /// The store may hold a tip that the round's local work does not show yet (the chain
    /// thread connected blocks and has not announced the new tip): the locator then starts
    /// there, and an honest peer at that same tip answers with no headers. That is no lie.
    #[test]
    fn an_empty_answer_to_a_locator_ahead_of_the_announced_tip_is_no_lie() {
        let t0 = Instant::now();
        let mut s = SyncState::new(U256::from(100u64), t0);
        assert!(s.start(peer(1), U256::from(300u64), t0));
        let mut io = FakeIo {
            store_tip: Some(Anchor {
                hash: Hash([3; 32]),
                height: 2,
                work: U256::from(300u64),
            }),
            ..FakeIo::default()
        };
        assert!(s.pump(t0, &mut io).is_none());
        let (hid, _) = io.last();
        let Some(RoundEnd::Finished(f)) = s.on_headers(peer(1), hid, Vec::new(), t0, &mut io)
        else {
            panic!("expected the round to finish");
        };
        assert_eq!(f.lied, None, "it holds what our store holds");
        // A peer that claimed more than our stored tip and served nothing still lied.
        let mut s = SyncState::new(U256::from(100u64), t0);
        assert!(s.start(peer(2), U256::from(301u64), t0));
        assert!(s.pump(t0, &mut io).is_none());
        let (hid, _) = io.last();
        let Some(RoundEnd::Finished(f)) = s.on_headers(peer(2), hid, Vec::new(), t0, &mut io)
        else {
            panic!("expected the round to finish");
        };
        assert!(f.lied.is_some());
    }

    #[test]
    fn a_heavier_chain_served_again_without_new_blocks_gets_a_cooldown() {
        // The peer serves a chain we already store entirely (we did not adopt it).
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 102);
        let (hid, _) = io.last();
        let headers = headers_after(genesis(), 2);
        for h in &headers {
            io.stored.insert(h.hash());
        }
        s.on_headers(peer(1), hid, headers, t0, &mut io);
        let hid2 = io.headers_id();
        let Some(RoundEnd::Finished(f)) = s.on_headers(peer(1), hid2, Vec::new(), t0, &mut io)
        else {
            panic!("expected the round to finish");
        };
        assert_eq!(f.released, 0);
        assert_eq!(f.served, U256::from(102u64));
        assert_eq!(f.cooldown_until, Some(t0 + SYNC_COOLDOWN));
        assert_eq!(s.work_floor(), U256::from(100u64), "no expectation");
    }

    #[test]
    fn requests_are_paced() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 100_000);
        let (hid, _) = io.last();
        // Enough headers for many batches; the buffer allows 4 in flight.
        s.on_headers(peer(1), hid, headers_after(genesis(), 512), t0, &mut io);
        let spent = io.sent.len();
        assert!(spent <= SYNC_INFLIGHT_REQUESTS + 2, "{spent}");
        // Drain the pacer with fresh rounds against nothing: tokens run out at 32 in total.
        let mut s2: SyncState<u32> = SyncState::new(U256::zero(), t0);
        let mut granted = 0;
        for _ in 0..100 {
            if s2.pacer.take(t0) {
                granted += 1;
            }
        }
        assert_eq!(granted, (REQUEST_BURST / 2.0) as usize);
        assert!(!s2.pacer.take(t0 + Duration::from_millis(30)));
        assert!(
            s2.pacer.take(t0 + Duration::from_millis(40)),
            "28.8 per second"
        );
    }

    #[test]
    fn the_download_buffer_pauses_requests() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 100_000);
        let (hid, _) = io.last();
        let headers = headers_after(genesis(), 2 * SYNC_BUFFER_BLOCKS as u64);
        let blocks: Vec<Block> = headers.iter().map(block).collect();
        let (first_half, second_half) = headers.split_at(SYNC_BUFFER_BLOCKS);
        s.on_headers(peer(1), hid, first_half.to_vec(), t0, &mut io);
        // Answer every batch without draining the download buffer.
        for (id, hashes) in io.block_requests() {
            let first = headers
                .iter()
                .position(|h| h.hash() == hashes[0])
                .expect("requested hash");
            let batch = blocks[first..first + hashes.len()].to_vec();
            assert!(s.on_blocks(id, batch, t0, &mut io).is_none());
        }
        assert_eq!(s.ready.len(), SYNC_BUFFER_BLOCKS);
        // More headers arrive, but the full buffer holds their bodies back.
        let hid2 = io.headers_id();
        assert_ne!(hid2, hid);
        assert!(
            s.on_headers(peer(1), hid2, second_half.to_vec(), t0, &mut io)
                .is_none()
        );
        let requested: usize = io.block_requests().iter().map(|(_, h)| h.len()).sum();
        assert_eq!(requested, SYNC_BUFFER_BLOCKS, "paused at the buffer bound");
        // Draining makes room again.
        while s.pop_ready().is_some() {}
        assert!(s.pump(t0, &mut io).is_none());
        let requested: usize = io.block_requests().iter().map(|(_, h)| h.len()).sum();
        assert_eq!(requested, 2 * SYNC_BUFFER_BLOCKS);
    }

    #[test]
    fn syncing_is_reported_once_and_ends_when_the_buffer_drains() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 101);
        assert!(!s.start(peer(2), U256::from(999u64), t0), "a round runs");
        let (hid, _) = io.last();
        let headers = headers_after(genesis(), 1);
        s.on_headers(peer(1), hid, headers.clone(), t0, &mut io);
        let (bid, _) = io.block_requests()[0].clone();
        s.on_blocks(bid, vec![block(&headers[0])], t0, &mut io);
        let hid2 = io.headers_id();
        assert!(matches!(
            s.on_headers(peer(1), hid2, Vec::new(), t0, &mut io),
            Some(RoundEnd::Finished(_))
        ));
        assert_eq!(s.housekeeping(t0), Housekeeping::default(), "a block waits");
        s.pop_ready();
        let h = s.housekeeping(t0);
        assert!(h.syncing_done);
        assert!(!s.housekeeping(t0).syncing_done, "once");
        // A new round reports again.
        assert!(s.start(peer(2), U256::from(999u64), t0));
    }

    #[test]
    fn downloaded_work_that_never_lands_is_given_up_after_the_grace() {
        let t0 = Instant::now();
        let (mut s, mut io) = started(t0, 101);
        let (hid, _) = io.last();
        let headers = headers_after(genesis(), 1);
        s.on_headers(peer(1), hid, headers.clone(), t0, &mut io);
        let (bid, _) = io.block_requests()[0].clone();
        s.on_blocks(bid, vec![block(&headers[0])], t0, &mut io);
        let hid2 = io.headers_id();
        s.on_headers(peer(1), hid2, Vec::new(), t0, &mut io);
        s.pop_ready();
        assert_eq!(s.work_floor(), U256::from(101u64));
        // The grace starts once the buffer is empty.
        assert!(!s.housekeeping(t0).retry);
        assert!(!s.housekeeping(t0 + EXPECTED_WORK_GRACE / 2).retry);
        assert!(s.housekeeping(t0 + EXPECTED_WORK_GRACE).retry);
        assert_eq!(s.work_floor(), U256::from(100u64));
    }

    /// Defect 1 (a round never ends): a peer claiming the most work that answers every
    /// `GetHeaders` with our own tip. The second such answer brings nothing new and no more
    /// work: the round ends at the peer's fault, and its claim is checked (it lied).
    #[test]
    fn a_peer_that_answers_with_our_own_tip_again_is_cut_off() {
        let t0 = Instant::now();
        // We hold a chain of 3 (work 103); the staller claims a million.
        let ours = headers_after(genesis(), 3);
        let (mut s, mut io) = started(t0, 1_000_000);
        s.set_local_work(U256::from(103u64));
        for h in &ours {
            io.stored.insert(h.hash());
        }
        let tip = vec![ours[2].clone()];
        let anchor_of_tip = Anchor {
            hash: ours[1].hash(),
            height: 2,
            work: U256::from(102u64),
        };
        // Make the locator contain the tip's parent, as a real locator would.
        let (hid, _) = io.last();
        let anchors = &mut s
            .round
            .as_mut()
            .expect("round")
            .headers_req
            .as_mut()
            .expect("req")
            .1;
        anchors.insert(anchor_of_tip.hash, anchor_of_tip);
        // First answer: our tip (known, but more work than nothing so far): tolerated.
        assert!(
            s.on_headers(peer(1), hid, tip.clone(), t0, &mut io)
                .is_none()
        );
        let hid2 = io.headers_id();
        assert_ne!(hid2, hid, "asked again from the tip");
        let anchors = &mut s
            .round
            .as_mut()
            .expect("round")
            .headers_req
            .as_mut()
            .expect("req")
            .1;
        anchors.insert(anchor_of_tip.hash, anchor_of_tip);
        let later = t0 + Duration::from_millis(50);
        let Some(RoundEnd::Aborted(a)) = s.on_headers(peer(1), hid2, tip, later, &mut io) else {
            panic!("the loop must end the round");
        };
        assert_eq!(a.peer, peer(1));
        assert_eq!(a.penalty, Some(points::NO_PROGRESS));
        assert!(a.reason.contains("no progress"), "{}", a.reason);
        assert_eq!(
            a.cooldown_until,
            later + SYNC_COOLDOWN,
            "another peer gets the next round"
        );
        assert_eq!(a.served, Some(U256::from(103u64)));
        let lied = a.lied.expect("it claimed far more than it served");
        assert!(lied.contains("1000000"), "{lied}");
        assert!(s.is_idle());
    }

    /// Defect 1: a peer that answers with one known header at a time (each a little heavier,
    /// so each answer alone looks like progress), or never answers at all, is cut off once it
    /// kept us waiting for `SYNC_PROGRESS_TIMEOUT` without anything new.
    #[test]
    fn a_peer_that_brings_nothing_new_is_cut_off_after_the_progress_timeout() {
        let t0 = Instant::now();
        let ours = headers_after(genesis(), 40);
        let (mut s, mut io) = started(t0, 1_000_000);
        for h in &ours {
            io.stored.insert(h.hash());
        }
        let mut now = t0;
        let step = Duration::from_millis(900);
        let mut ended = None;
        for (i, header) in ours.iter().enumerate() {
            now += step;
            if let Some(end) = s.check_deadlines(now) {
                ended = Some((i, end));
                break;
            }
            let hid = io.headers_id();
            // The drip: the next known header, linking to the previous answer.
            let prev = if i == 0 {
                genesis()
            } else {
                Anchor {
                    hash: ours[i - 1].hash(),
                    height: i as u64,
                    work: U256::from(100 + i as u64),
                }
            };
            let anchors = &mut s
                .round
                .as_mut()
                .expect("round")
                .headers_req
                .as_mut()
                .expect("req")
                .1;
            anchors.insert(prev.hash, prev);
            assert!(
                s.on_headers(peer(1), hid, vec![header.clone()], now, &mut io)
                    .is_none()
            );
        }
        let (i, end) = ended.expect("cut off");
        assert_eq!(
            i as u128,
            SYNC_PROGRESS_TIMEOUT.as_millis() / 900,
            "after 20 s of it"
        );
        let RoundEnd::Aborted(a) = end else {
            panic!("expected an abort, got {end:?}");
        };
        assert_eq!(a.penalty, Some(points::NO_PROGRESS));
        assert!(a.lied.is_some());

        // Silence: nothing ever comes back.
        let (mut s, _io) = started(t0, 1_000_000);
        assert!(s.check_deadlines(t0 + SYNC_PROGRESS_TIMEOUT / 2).is_none());
        let Some(RoundEnd::Aborted(a)) = s.check_deadlines(t0 + SYNC_PROGRESS_TIMEOUT) else {
            panic!("a silent peer must lose the round");
        };
        assert_eq!(a.penalty, Some(points::NO_PROGRESS));
        assert_eq!(a.stale.len(), 1, "its GetHeaders is forgotten");
        assert_eq!(
            a.served,
            Some(U256::from(100u64)),
            "nothing served: our own work"
        );
    }

    /// New headers and blocks reset the progress clock: an honest peer that keeps
    /// delivering is never cut off by it.
    #[test]
    fn steady_delivery_is_progress() {
        let t0 = Instant::now();
        let headers = headers_after(genesis(), 200);
        let blocks: Vec<Block> = headers.iter().map(block).collect();
        let (mut s, mut io) = started(t0, 300);
        let hid = io.headers_id();
        let mut now = t0 + SYNC_PROGRESS_TIMEOUT - Duration::from_secs(1);
        assert!(s.check_deadlines(now).is_none());
        s.on_headers(peer(1), hid, headers.clone(), now, &mut io);
        for (id, hashes) in io.block_requests() {
            now += SYNC_PROGRESS_TIMEOUT - Duration::from_secs(1);
            assert!(s.check_deadlines(now).is_none(), "blocks keep coming");
            let first = headers
                .iter()
                .position(|h| h.hash() == hashes[0])
                .expect("requested");
            s.on_blocks(
                id,
                blocks[first..first + hashes.len()].to_vec(),
                now,
                &mut io,
            );
        }
        assert!(!s.is_idle());
        // Then it goes quiet (its continuation GetHeaders is never answered): a peer that
        // served and got slow loses the round with the small penalty, and no lie is assumed.
        while s.pop_ready().is_some() {}
        let quiet = now + SYNC_PROGRESS_TIMEOUT;
        let Some(RoundEnd::Aborted(a)) = s.check_deadlines(quiet) else {
            panic!("a stall ends the round");
        };
        assert_eq!(a.penalty, Some(points::STALLED));
        assert_eq!(a.lied, None);
        assert_eq!(a.served, None);
    }

    /// Defect 1: the overall deadline. A round that delivered blocks ends without penalty (the
    /// next continues from the new tip at once); one that delivered nothing is the peer's
    /// fault.
    #[test]
    fn rounds_end_at_their_deadline() {
        let t0 = Instant::now();
        let headers = headers_after(genesis(), 2);
        let (mut s, mut io) = started(t0, 10_000);
        let hid = io.headers_id();
        let mut now = t0;
        s.on_headers(peer(1), hid, headers.clone(), now, &mut io);
        let (bid, _) = io.block_requests()[0].clone();
        s.on_blocks(bid, headers.iter().map(block).collect(), now, &mut io);
        // The peer keeps delivering, one new header and its block, in time.
        let mut last = Anchor {
            hash: headers[1].hash(),
            height: 2,
            work: U256::from(102u64),
        };
        let mut bodies: HashMap<Hash, Block> = HashMap::new();
        let mut answered = HashSet::new();
        let mut end = None;
        while end.is_none() {
            now += SYNC_PROGRESS_TIMEOUT / 2;
            end = s.check_deadlines(now);
            if end.is_some() {
                break;
            }
            let hid = io.headers_id();
            let more = headers_after(last, 1);
            last = Anchor {
                hash: more[0].hash(),
                height: last.height + 1,
                work: last.work + U256::one(),
            };
            bodies.insert(more[0].hash(), block(&more[0]));
            s.on_headers(peer(1), hid, more, now, &mut io);
            for (id, hashes) in io.block_requests() {
                if answered.insert(id) && id != bid {
                    let answer = hashes.iter().map(|h| bodies[h].clone()).collect();
                    s.on_blocks(id, answer, now, &mut io);
                }
            }
            while s.pop_ready().is_some() {}
        }
        let Some(RoundEnd::Aborted(a)) = end else {
            panic!("expected the deadline");
        };
        assert!(now >= t0 + SYNC_ROUND_DEADLINE);
        assert!(a.reason.contains("deadline"), "{}", a.reason);
        assert_eq!(a.penalty, None, "it delivered blocks");
        assert_eq!(a.cooldown_until, now, "no cooldown: continue at once");
        assert_eq!(a.lied, None);

        // Without any delivery the deadline is the peer's fault (the progress timeout would
        // normally come first; here the peer answers with heavier known headers only).
        let (mut s, mut io) = started(t0, 10_000);
        let known = headers_after(genesis(), 400);
        for h in &known {
            io.stored.insert(h.hash());
        }
        let mut now = t0;
        let mut prev = genesis();
        let mut end = None;
        for h in &known {
            now += Duration::from_millis(300);
            if let Some(e) = s.check_deadlines(now) {
                end = Some(e);
                break;
            }
            let hid = io.headers_id();
            let anchors = &mut s
                .round
                .as_mut()
                .expect("round")
                .headers_req
                .as_mut()
                .expect("req")
                .1;
            anchors.insert(prev.hash, prev);
            s.on_headers(peer(1), hid, vec![h.clone()], now, &mut io);
            prev = Anchor {
                hash: h.hash(),
                height: h.height,
                work: prev.work + U256::one(),
            };
        }
        let Some(RoundEnd::Aborted(a)) = end else {
            panic!("expected an end");
        };
        assert_eq!(a.penalty, Some(points::NO_PROGRESS));
    }

    /// Defect 1: the importer stops taking blocks. The round waits for buffer room with
    /// nothing in flight; that time is not charged to the peer, and after
    /// `SYNC_IDLE_TIMEOUT` the round ends without penalty instead of hanging forever.
    #[test]
    fn a_round_waiting_on_a_stuck_importer_ends_without_penalty() {
        let t0 = Instant::now();
        let headers = headers_after(genesis(), SYNC_BUFFER_BLOCKS as u64 + 10);
        let blocks: Vec<Block> = headers.iter().map(block).collect();
        let (mut s, mut io) = started(t0, 100_000);
        let hid = io.headers_id();
        s.on_headers(peer(1), hid, headers.clone(), t0, &mut io);
        for (id, hashes) in io.block_requests() {
            let first = headers
                .iter()
                .position(|h| h.hash() == hashes[0])
                .expect("requested");
            s.on_blocks(
                id,
                blocks[first..first + hashes.len()].to_vec(),
                t0,
                &mut io,
            );
        }
        // The continuation GetHeaders is answered with nothing new to fetch... the peer has
        // no more: answer it empty? No: leave the remaining bodies unrequested (buffer full)
        // and answer the headers request with an empty list.
        let hid2 = io.headers_id();
        assert!(
            s.on_headers(peer(1), hid2, Vec::new(), t0, &mut io)
                .is_none()
        );
        assert!(
            !s.round.as_ref().expect("round").in_flight(),
            "paused, nothing in flight"
        );
        // Nobody drains the buffer.
        let mut now = t0;
        let mut end = None;
        while now < t0 + SYNC_IDLE_TIMEOUT * 2 {
            now += Duration::from_secs(1);
            if let Some(e) = s.check_deadlines(now) {
                end = Some(e);
                break;
            }
        }
        let Some(RoundEnd::Aborted(a)) = end else {
            panic!("the round must not hang");
        };
        assert_eq!(now, t0 + SYNC_IDLE_TIMEOUT);
        assert_eq!(a.penalty, None, "not the peer's fault");
        assert!(a.reason.contains("does not drain"), "{}", a.reason);
        assert_eq!(
            s.ready.len(),
            SYNC_BUFFER_BLOCKS,
            "released blocks stay queued"
        );
    }

    /// Defect 1: single-block ancestor fetches respect the download buffer bound.
    #[test]
    fn ancestor_fetches_respect_the_download_buffer() {
        let t0 = Instant::now();
        let mut s: SyncState<u32> = SyncState::new(U256::zero(), t0);
        let headers = headers_after(genesis(), SYNC_BUFFER_BLOCKS as u64);
        for h in &headers[..SYNC_BUFFER_BLOCKS - 2] {
            s.push_ready(block(h), peer(1));
        }
        assert!(s.ancestor_room());
        s.note_ancestor(headers[SYNC_BUFFER_BLOCKS - 2].hash());
        assert!(s.ancestor_room());
        s.note_ancestor(headers[SYNC_BUFFER_BLOCKS - 1].hash());
        assert!(!s.ancestor_room(), "the fetches in flight count");
        s.ancestor_done();
        assert!(s.ancestor_room());
        s.pop_ready();
        s.ancestor_done();
        s.ancestor_done();
        assert!(s.ancestor_room());
    }

    #[test]
    fn ancestors_are_fetched_once_and_not_during_a_round() {
        let t0 = Instant::now();
        let mut s: SyncState<u32> = SyncState::new(U256::zero(), t0);
        let h = Hash([3; 32]);
        assert!(s.ancestor_wanted(&h));
        s.note_ancestor(h);
        assert!(!s.ancestor_wanted(&h));
        for i in 0..RECENT_ANCESTORS {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            bytes[31] = 1;
            s.note_ancestor(Hash(bytes));
        }
        assert_eq!(s.recent_ancestors.len(), RECENT_ANCESTORS);
        assert!(s.ancestor_wanted(&h), "forgotten beyond the bound");
        s.start(peer(1), U256::one(), t0);
        assert!(!s.ancestor_wanted(&Hash([4; 32])), "the round fetches it");
    }
}
