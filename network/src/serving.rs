//! The responder side of block sync: which inbound `GetHeaders` / `GetBlocks` are read from
//! the store now, which wait, and how many bytes of responses each peer holds: [`ServeQueue`].
//!
//! It owns: the queue of requests waiting to be served, the number of store reads in
//! progress (at most [`MAX_SERVING`]), and a byte budget of responses in flight, per peer
//! ([`SERVE_PEER_BYTES`]) and in total ([`SERVE_TOTAL_BYTES`]). A request is granted a number
//! of bytes before its store read starts (the read stops there, after at least one block);
//! the grant shrinks to the real size once read, and is released only when libp2p reports
//! the response sent or failed (`ResponseSent` / `InboundFailure`). So a peer that does not
//! read its responses holds at most its own budget, whatever it asks for, and everyone else
//! is served from the rest. A response that timed out long after it was handed over was not
//! read: the service penalises and disconnects that peer ([`Released::unread`]).
//!
//! It must never: touch the swarm, the store or the clock (the service passes `now` and the
//! request's payload `T` in, and applies what comes out); refuse an honest requester (one
//! with at most `SYNC_INFLIGHT_REQUESTS` requests to us waits, it is not refused); or hold
//! more than [`SERVE_QUEUE_PER_PEER`] waiting requests of one peer and [`SERVE_QUEUE_TOTAL`]
//! in all.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash as StdHash;
use std::time::Instant;

use libp2p::PeerId;
use peerchain_ledger::Hash;

use crate::config::{
    MAX_SERVING, SERVE_HOLD_MAX, SERVE_PEER_BYTES, SERVE_QUEUE_PER_PEER, SERVE_QUEUE_TOTAL,
    SERVE_TOTAL_BYTES, SLOW_READ_GRACE,
};

/// The requested hashes without repeats, first occurrence kept (a request naming one big
/// block 128 times gets it once).
pub(crate) fn dedup_hashes(hashes: Vec<Hash>) -> Vec<Hash> {
    let mut seen = std::collections::HashSet::with_capacity(hashes.len());
    hashes.into_iter().filter(|h| seen.insert(*h)).collect()
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueFull {
    /// The peer has [`SERVE_QUEUE_PER_PEER`] requests waiting already: it asks faster than it
    /// reads. Refuse and penalise.
    Peer,
    /// The queue holds [`SERVE_QUEUE_TOTAL`] requests: refuse (busy), no penalty.
    Total,
}

/// A request whose store read may start now, with at most `bytes` of response.
#[derive(Debug)]
pub(crate) struct Grant<K, T> {
    /// The inbound request.
    pub key: K,
    /// Its payload (the response channel and the request).
    pub item: T,
    /// Bytes the response may use (it always carries at least one block).
    pub bytes: usize,
}

/// A request that left the budget (its response was sent, or it failed, or was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Released {
    /// Who asked.
    pub peer: PeerId,
    /// Bytes it held.
    pub bytes: usize,
    /// When its response was handed to libp2p (`None`: it was still waiting or reading).
    pub handed: Option<Instant>,
}

impl Released {
    /// Whether a timeout of this request means the peer did not read our response: it was
    /// handed over at least [`SLOW_READ_GRACE`] before `now` (a response we produced late is
    /// our slowness, not the peer's).
    pub(crate) fn unread(&self, now: Instant) -> bool {
        self.handed
            .is_some_and(|t| now.saturating_duration_since(t) >= SLOW_READ_GRACE)
    }
}

#[derive(Debug)]
struct Waiting<K, T> {
    key: K,
    peer: PeerId,
    want: usize,
    min: usize,
    item: T,
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    peer: PeerId,
    bytes: usize,
    since: Instant,
    handed: Option<Instant>,
}

/// See the module docs. `K` identifies an inbound request (libp2p's `InboundRequestId`), `T`
/// is what the service needs to serve it.
#[derive(Debug)]
pub(crate) struct ServeQueue<K, T> {
    queue: VecDeque<Waiting<K, T>>,
    queued: HashMap<PeerId, usize>,
    reading: usize,
    held: HashMap<K, Hold>,
    per_peer: HashMap<PeerId, usize>,
    total: usize,
}

impl<K: Copy + Eq + StdHash, T> ServeQueue<K, T> {
    /// Nothing queued or held.
    pub(crate) fn new() -> Self {
        ServeQueue {
            queue: VecDeque::new(),
            queued: HashMap::new(),
            reading: 0,
            held: HashMap::new(),
            per_peer: HashMap::new(),
            total: 0,
        }
    }

    /// Queues request `key` of `peer`: its response may use up to `want` bytes and needs at
    /// least `min` (one maximal block) to be useful.
    pub(crate) fn enqueue(
        &mut self,
        key: K,
        peer: PeerId,
        want: usize,
        min: usize,
        item: T,
    ) -> Result<(), (QueueFull, T)> {
        let queued = self.queued.get(&peer).copied().unwrap_or(0);
        if queued >= SERVE_QUEUE_PER_PEER {
            return Err((QueueFull::Peer, item));
        }
        if self.queue.len() >= SERVE_QUEUE_TOTAL {
            return Err((QueueFull::Total, item));
        }
        self.queued.insert(peer, queued + 1);
        self.queue.push_back(Waiting {
            key,
            peer,
            want,
            // A single block larger than the whole per-peer budget is still served (alone).
            min: min.min(want).min(SERVE_PEER_BYTES),
            item,
        });
        Ok(())
    }

    fn room(&self, peer: &PeerId) -> usize {
        let used = self.per_peer.get(peer).copied().unwrap_or(0);
        SERVE_PEER_BYTES
            .saturating_sub(used)
            .min(SERVE_TOTAL_BYTES.saturating_sub(self.total))
    }

    /// The next request to read from the store, if a read slot is free and some waiting
    /// request's peer has budget room (oldest first). Its grant is reserved at once.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Grant<K, T>> {
        if self.reading >= MAX_SERVING {
            return None;
        }
        let index = self
            .queue
            .iter()
            .position(|w| self.room(&w.peer) >= w.min)?;
        let w = self.queue.remove(index)?;
        self.unqueue(&w.peer);
        let bytes = w.want.min(self.room(&w.peer));
        self.reserve(w.peer, bytes);
        self.held.insert(
            w.key,
            Hold {
                peer: w.peer,
                bytes,
                since: now,
                handed: None,
            },
        );
        self.reading += 1;
        Some(Grant {
            key: w.key,
            item: w.item,
            bytes,
        })
    }

    /// The store read of `key` produced `actual` bytes and the response is handed to libp2p
    /// now. Returns `false` when the request already ended (its response must be dropped).
    pub(crate) fn read_done(&mut self, key: &K, actual: usize, now: Instant) -> bool {
        self.reading = self.reading.saturating_sub(1);
        let Some(hold) = self.held.get_mut(key) else {
            return false;
        };
        let (peer, before) = (hold.peer, hold.bytes);
        hold.bytes = actual;
        hold.handed = Some(now);
        self.release_bytes(peer, before);
        self.reserve(peer, actual);
        true
    }

    /// Request `key` ended (response sent, failure, or the response could not be handed
    /// over). Releases its bytes or its queue place; `None` when it is not known (already
    /// ended).
    pub(crate) fn finished(&mut self, key: &K) -> Option<Released> {
        if let Some(hold) = self.held.remove(key) {
            self.release_bytes(hold.peer, hold.bytes);
            return Some(Released {
                peer: hold.peer,
                bytes: hold.bytes,
                handed: hold.handed,
            });
        }
        let index = self.queue.iter().position(|w| w.key == *key)?;
        let w = self.queue.remove(index)?;
        self.unqueue(&w.peer);
        Some(Released {
            peer: w.peer,
            bytes: 0,
            handed: None,
        })
    }

    /// Releases budget entries older than [`SERVE_HOLD_MAX`] (libp2p ends every request
    /// within the request timeout; this only guards against a missed event).
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<(K, Released)> {
        let old: Vec<K> = self
            .held
            .iter()
            .filter(|(_, h)| now.saturating_duration_since(h.since) >= SERVE_HOLD_MAX)
            .map(|(k, _)| *k)
            .collect();
        old.into_iter()
            .filter_map(|k| self.finished(&k).map(|r| (k, r)))
            .collect()
    }

    /// Bytes `peer` holds.
    #[cfg(test)]
    pub(crate) fn peer_bytes(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).copied().unwrap_or(0)
    }

    /// Bytes held by all peers.
    #[cfg(test)]
    pub(crate) fn total_bytes(&self) -> usize {
        self.total
    }

    /// Requests waiting.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    fn unqueue(&mut self, peer: &PeerId) {
        if let Some(n) = self.queued.get_mut(peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.queued.remove(peer);
            }
        }
    }

    fn reserve(&mut self, peer: PeerId, bytes: usize) {
        let used = self.per_peer.entry(peer).or_insert(0);
        *used = used.saturating_add(bytes);
        self.total = self.total.saturating_add(bytes);
    }

    fn release_bytes(&mut self, peer: PeerId, bytes: usize) {
        if let Some(used) = self.per_peer.get_mut(&peer) {
            *used = used.saturating_sub(bytes);
            if *used == 0 {
                self.per_peer.remove(&peer);
            }
        }
        self.total = self.total.saturating_sub(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::peer;
    use std::time::Duration;

    const MIB: usize = 1024 * 1024;
    const BLOCK: usize = 3 * MIB;

    #[test]
    fn duplicate_hashes_are_served_once() {
        let (a, b) = (Hash([1; 32]), Hash([2; 32]));
        assert_eq!(dedup_hashes(vec![a; 128]), vec![a]);
        assert_eq!(dedup_hashes(vec![b, a, b, a, a]), vec![b, a]);
    }

    /// Defect 2 (serving amplifies memory): a peer that never reads holds at most its own
    /// budget, its further requests wait, and other peers are still served.
    #[test]
    fn a_peer_that_does_not_read_holds_at_most_its_budget() {
        let t0 = Instant::now();
        let mut q: ServeQueue<u32, ()> = ServeQueue::new();
        let slow = peer(1);
        for key in 0..10 {
            q.enqueue(key, slow, 8 * MIB, BLOCK, ()).expect("queued");
        }
        // Grants until the peer's budget is spent; the reads produce full 8 MiB answers that
        // are never sent (the peer does not read).
        let mut granted = Vec::new();
        while let Some(g) = q.next(t0) {
            assert!(q.read_done(&g.key, g.bytes, t0));
            granted.push(g);
        }
        let held: usize = granted.iter().map(|g| g.bytes).sum();
        assert!(held <= SERVE_PEER_BYTES, "{held}");
        assert_eq!(q.peer_bytes(&slow), held);
        assert_eq!(granted.len(), 2, "two 8 MiB answers fill 16 MiB");
        assert_eq!(q.waiting(), 8);
        // Another peer is served at once.
        let other = peer(2);
        q.enqueue(100, other, 8 * MIB, BLOCK, ()).expect("queued");
        let g = q.next(t0).expect("served");
        assert_eq!(g.key, 100);
        assert!(q.read_done(&g.key, 1000, t0));
        assert_eq!(q.total_bytes(), held + 1000);
        // The slow peer's queue is bounded, and its overflow is reported as its fault.
        for key in 10..(10 + SERVE_QUEUE_PER_PEER as u32 - 8) {
            q.enqueue(key, slow, 8 * MIB, BLOCK, ()).expect("queued");
        }
        assert!(matches!(
            q.enqueue(999, slow, 8 * MIB, BLOCK, ()),
            Err((QueueFull::Peer, ()))
        ));
        // A sent response frees its bytes and the next request of that peer is granted.
        let r = q.finished(&granted[0].key).expect("held");
        assert_eq!(r.bytes, 8 * MIB);
        assert!(q.next(t0).is_some());
    }

    #[test]
    fn grants_shrink_to_the_real_size_and_small_answers_are_not_held_back() {
        let t0 = Instant::now();
        let mut q: ServeQueue<u32, ()> = ServeQueue::new();
        let p = peer(1);
        // An honest requester with four block requests of small blocks and one for headers.
        for key in 0..5 {
            q.enqueue(key, p, 8 * MIB, BLOCK, ()).expect("queued");
        }
        let mut served = 0;
        while let Some(g) = q.next(t0) {
            assert!(q.read_done(&g.key, 20_000, t0), "still wanted");
            served += 1;
        }
        assert_eq!(served, 5, "none waits: each shrank to 20 kB once read");
        assert_eq!(q.peer_bytes(&p), 100_000);
        for key in 0..5 {
            q.finished(&key).expect("held");
        }
        assert_eq!(q.total_bytes(), 0);
        assert!(q.finished(&0).is_none(), "released once");
    }

    #[test]
    fn the_total_budget_and_the_read_slots_are_shared() {
        let t0 = Instant::now();
        let mut q: ServeQueue<u32, ()> = ServeQueue::new();
        // Eight peers each hold 8 MiB unread: the total budget is spent.
        for n in 0..8u8 {
            q.enqueue(u32::from(n), peer(n + 1), 8 * MIB, BLOCK, ())
                .expect("queued");
            let g = q.next(t0).expect("granted");
            q.read_done(&g.key, 8 * MIB, t0);
        }
        assert_eq!(q.total_bytes(), SERVE_TOTAL_BYTES);
        q.enqueue(50, peer(20), 8 * MIB, BLOCK, ()).expect("queued");
        assert!(q.next(t0).is_none(), "no room in total");
        q.finished(&3).expect("held");
        assert_eq!(q.next(t0).map(|g| g.key), Some(50));

        // Reads in progress are bounded whatever the budget.
        let mut q: ServeQueue<u32, ()> = ServeQueue::new();
        for key in 0..(MAX_SERVING as u32 + 3) {
            q.enqueue(key, peer(key as u8 % 200 + 1), 1000, 1000, ())
                .expect("queued");
        }
        let mut reading = Vec::new();
        while let Some(g) = q.next(t0) {
            reading.push(g.key);
        }
        assert_eq!(reading.len(), MAX_SERVING);
        q.read_done(&reading[0], 10, t0);
        assert!(q.next(t0).is_some());
    }

    #[test]
    fn ended_requests_release_once_and_unread_responses_are_recognised() {
        let t0 = Instant::now();
        let mut q: ServeQueue<u32, ()> = ServeQueue::new();
        let p = peer(1);
        q.enqueue(1, p, 8 * MIB, BLOCK, ()).expect("queued");
        q.enqueue(2, p, 8 * MIB, BLOCK, ()).expect("queued");
        q.enqueue(3, p, 8 * MIB, BLOCK, ()).expect("queued");
        let g1 = q.next(t0).expect("granted");
        let g2 = q.next(t0).expect("granted");
        // Request 2 fails while being read: the late read result is dropped.
        let r = q.finished(&g2.key).expect("held");
        assert_eq!(r.handed, None);
        assert!(!r.unread(t0 + Duration::from_secs(60)), "never handed over");
        assert!(!q.read_done(&g2.key, 8 * MIB, t0));
        // Request 3 is still waiting: its failure releases its queue place.
        let r = q.finished(&3).expect("queued");
        assert_eq!(r.bytes, 0);
        // Request 1 is handed over and times out: unread only past the grace.
        q.read_done(&g1.key, 8 * MIB, t0);
        let late = q.finished(&g1.key).expect("held");
        assert!(!late.unread(t0 + SLOW_READ_GRACE - Duration::from_millis(1)));
        assert!(late.unread(t0 + SLOW_READ_GRACE));
        assert_eq!(q.total_bytes(), 0);
        assert_eq!(q.peer_bytes(&p), 0);
    }

    #[test]
    fn forgotten_entries_are_swept() {
        let t0 = Instant::now();
        let mut q: ServeQueue<u32, ()> = ServeQueue::new();
        q.enqueue(1, peer(1), 1000, 1000, ()).expect("queued");
        let g = q.next(t0).expect("granted");
        q.read_done(&g.key, 1000, t0);
        assert!(q.sweep(t0 + SERVE_HOLD_MAX / 2).is_empty());
        let swept = q.sweep(t0 + SERVE_HOLD_MAX);
        assert_eq!(swept.len(), 1);
        assert_eq!(q.total_bytes(), 0);
    }
}
