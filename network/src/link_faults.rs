//! Operator-set link faults, for testing a network on one machine without root: per peer, a
//! fraction of that peer's gossip dropped, a delay, and a bandwidth cap on what this node
//! receives from it (set with [`crate::NetworkHandle::set_link_fault`]; none by default).
//!
//! The faults act where this node receives: a message from a faulted peer is dropped (gossip
//! only, with probability `loss`), or held until the modelled link would have delivered it
//! (one queue per peer at `bandwidth_kbps`, then `delay_ms`), then handled as if it had just
//! arrived. A fault on both ends of a connection shapes both directions. Sync requests and
//! responses are delayed but never dropped by `loss` (their loss would be a timeout, which the
//! sync protocol already answers). A gossip message that would wait past
//! [`MAX_LINK_BACKLOG`], and any message that does not fit the held bounds, is dropped as a
//! router's full queue would; a large sync response on a slow link is delivered late (and may
//! time out), as it would be.
//!
//! Everything here takes the clock as an argument and owns its random source, so the policy
//! is unit-tested without a network.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{
    MAX_LINK_BACKLOG, MAX_LINK_DELAY_MS, MAX_LINK_FAULTS, MAX_LINK_HELD, MAX_LINK_HELD_BYTES,
};
use crate::error::NetworkError;

/// The faults of the link from one peer to this node. All zero: no fault.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFault {
    /// Fraction of the peer's gossip messages dropped, 0 to 1.
    pub loss: f64,
    /// Added delay of every message, ms.
    pub delay_ms: u64,
    /// Bandwidth of the link in kilobits per second; 0: unlimited.
    pub bandwidth_kbps: u64,
}

impl LinkFault {
    /// Whether the fault changes nothing.
    pub fn is_none(&self) -> bool {
        self.loss == 0.0 && self.delay_ms == 0 && self.bandwidth_kbps == 0
    }

    fn check(&self) -> Result<(), NetworkError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(NetworkError::BadLinkFault {
                field: "loss",
                value: self.loss.to_string(),
                rule: "a fraction from 0 to 1",
            });
        }
        if self.delay_ms > MAX_LINK_DELAY_MS {
            return Err(NetworkError::BadLinkFault {
                field: "delay_ms",
                value: self.delay_ms.to_string(),
                rule: "at most the longest a message may wait (MAX_LINK_DELAY_MS, 10,000 ms)",
            });
        }
        Ok(())
    }

    /// Time to send `bytes` over the link (zero when unlimited).
    fn transmission(&self, bytes: usize) -> Duration {
        if self.bandwidth_kbps == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(bytes as f64 * 8.0 / (self.bandwidth_kbps as f64 * 1000.0))
    }
}

/// A peer and the fault of its link to this node.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerLinkFault {
    /// The peer (base58).
    pub peer_id: String,
    /// Its link's fault.
    pub fault: LinkFault,
}

/// What to do with a message from a peer.
#[derive(Debug, PartialEq)]
pub(crate) enum Shaped<E> {
    /// No fault on that link: handle it now.
    Pass(E),
    /// Held; [`LinkShaper::release`] returns it when due.
    Held,
    /// Dropped (lost, or the link's queue is full).
    Dropped,
}

/// Whether a message may be lost to the loss fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A gossip message: may be lost.
    Gossip,
    /// A sync request or response: only delayed.
    Sync,
}

#[derive(Debug)]
struct Link {
    fault: LinkFault,
    /// When the modelled link finishes sending what it holds.
    busy_until: Instant,
}

#[derive(Debug)]
struct HeldItem<E> {
    item: E,
    bytes: usize,
}

/// The faults by peer and the messages they hold. Bounded: [`MAX_LINK_FAULTS`] links,
/// [`MAX_LINK_HELD`] messages and [`MAX_LINK_HELD_BYTES`] bytes held.
#[derive(Debug)]
pub(crate) struct LinkShaper<E> {
    links: HashMap<PeerId, Link>,
    /// Held messages by due time, then arrival order (the sequence number).
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    held: HashMap<u64, HeldItem<E>>,
    held_bytes: usize,
    next_seq: u64,
    rng: StdRng,
    /// Messages dropped since start.
    dropped: u64,
}

impl<E> LinkShaper<E> {
    /// A shaper with no faults, its loss draws from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        LinkShaper {
            links: HashMap::new(),
            due: BinaryHeap::new(),
            held: HashMap::new(),
            held_bytes: 0,
            next_seq: 0,
            rng: StdRng::seed_from_u64(seed),
            dropped: 0,
        }
    }

    /// Sets (or, with a fault that changes nothing, clears) the fault of the link from `peer`.
    /// Messages already held keep their due time.
    pub(crate) fn set(
        &mut self,
        peer: PeerId,
        fault: LinkFault,
        now: Instant,
    ) -> Result<(), NetworkError> {
        fault.check()?;
        if fault.is_none() {
            self.links.remove(&peer);
            return Ok(());
        }
        if !self.links.contains_key(&peer) && self.links.len() >= MAX_LINK_FAULTS {
            return Err(NetworkError::TooManyLinkFaults {
                max: MAX_LINK_FAULTS,
            });
        }
        let busy_until = self.links.get(&peer).map_or(now, |l| l.busy_until);
        self.links.insert(peer, Link { fault, busy_until });
        Ok(())
    }

    /// The faulted links, by peer id.
    pub(crate) fn list(&self) -> Vec<PeerLinkFault> {
        let mut all: Vec<PeerLinkFault> = self
            .links
            .iter()
            .map(|(p, l)| PeerLinkFault {
                peer_id: p.to_string(),
                fault: l.fault,
            })
            .collect();
        all.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        all
    }

    /// Whether any link is faulted or any message held (the service skips the shaper when not).
    pub(crate) fn is_active(&self) -> bool {
        !self.links.is_empty() || !self.held.is_empty()
    }

    /// Messages dropped since start.
    #[cfg(test)]
    fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Decides the fate of `item`, `bytes` long, just received from `peer`.
    pub(crate) fn receive(
        &mut self,
        peer: &PeerId,
        kind: Kind,
        bytes: usize,
        item: E,
        now: Instant,
    ) -> Shaped<E> {
        let Some(link) = self.links.get_mut(peer) else {
            return Shaped::Pass(item);
        };
        let fault = link.fault;
        if kind == Kind::Gossip && fault.loss > 0.0 && self.rng.r#gen::<f64>() < fault.loss {
            self.dropped += 1;
            return Shaped::Dropped;
        }
        let sent = link.busy_until.max(now) + fault.transmission(bytes);
        let due = sent + Duration::from_millis(fault.delay_ms);
        let full = self.held.len() >= MAX_LINK_HELD
            || self.held_bytes.saturating_add(bytes) > MAX_LINK_HELD_BYTES;
        let backlogged =
            kind == Kind::Gossip && due.saturating_duration_since(now) > MAX_LINK_BACKLOG;
        if full || backlogged {
            self.dropped += 1;
            return Shaped::Dropped;
        }
        link.busy_until = sent;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.due.push(Reverse((due, seq)));
        self.held.insert(seq, HeldItem { item, bytes });
        self.held_bytes += bytes;
        Shaped::Held
    }

    /// When the next held message is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the held messages due at `now`, in due order.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<E> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.due.peek().copied() {
            if at > now {
                break;
            }
            self.due.pop();
            if let Some(h) = self.held.remove(&seq) {
                self.held_bytes -= h.bytes;
                out.push(h.item);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        PeerId::random()
    }

    fn fault(loss: f64, delay_ms: u64, bandwidth_kbps: u64) -> LinkFault {
        LinkFault {
            loss,
            delay_ms,
            bandwidth_kbps,
        }
    }

    #[test]
    fn a_peer_without_a_fault_passes_at_once() {
        let mut s = LinkShaper::new(1);
        let now = Instant::now();
        s.set(peer(), fault(1.0, 0, 0), now).expect("a valid fault");
        assert_eq!(
            s.receive(&peer(), Kind::Gossip, 10, 7, now),
            Shaped::Pass(7)
        );
    }

    #[test]
    fn delay_holds_each_message_until_due_in_order() {
        let (mut s, p, t0) = (LinkShaper::new(1), peer(), Instant::now());
        s.set(p, fault(0.0, 100, 0), t0).expect("a valid fault");
        assert_eq!(s.receive(&p, Kind::Gossip, 10, 1, t0), Shaped::Held);
        let t1 = t0 + Duration::from_millis(30);
        assert_eq!(s.receive(&p, Kind::Sync, 10, 2, t1), Shaped::Held);
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(100)));
        assert!(s.release(t0 + Duration::from_millis(99)).is_empty());
        assert_eq!(s.release(t0 + Duration::from_millis(100)), vec![1]);
        assert_eq!(s.release(t1 + Duration::from_millis(100)), vec![2]);
        assert_eq!((s.held.len(), s.held_bytes), (0, 0));
    }

    #[test]
    fn bandwidth_queues_messages_behind_each_other() {
        let (mut s, p, t0) = (LinkShaper::new(1), peer(), Instant::now());
        // 80 kbit/s: 1,000 bytes take 100 ms.
        s.set(p, fault(0.0, 0, 80), t0).expect("a valid fault");
        for i in 0..3 {
            assert_eq!(s.receive(&p, Kind::Gossip, 1000, i, t0), Shaped::Held);
        }
        assert_eq!(s.release(t0 + Duration::from_millis(99)), Vec::<i32>::new());
        assert_eq!(s.release(t0 + Duration::from_millis(100)), vec![0]);
        assert_eq!(s.release(t0 + Duration::from_millis(300)), vec![1, 2]);
        // An idle link sends the next message at once (plus its own transmission time).
        let later = t0 + Duration::from_secs(5);
        s.receive(&p, Kind::Gossip, 1000, 9, later);
        assert_eq!(s.next_due(), Some(later + Duration::from_millis(100)));
    }

    #[test]
    fn a_message_that_would_wait_past_the_backlog_is_dropped() {
        let (mut s, p, t0) = (LinkShaper::new(1), peer(), Instant::now());
        // 8 kbit/s: 10,000 bytes take 10 s, the whole backlog; the next gossip does not fit.
        s.set(p, fault(0.0, 0, 8), t0).expect("a valid fault");
        assert_eq!(s.receive(&p, Kind::Gossip, 10_000, 1, t0), Shaped::Held);
        assert_eq!(s.receive(&p, Kind::Gossip, 100, 2, t0), Shaped::Dropped);
        assert_eq!(s.dropped(), 1);
        // A sync message waits its turn however long (its request may time out).
        assert_eq!(s.receive(&p, Kind::Sync, 100, 3, t0), Shaped::Held);
        assert_eq!(s.release(t0 + Duration::from_secs(10)), vec![1]);
        assert_eq!(s.release(t0 + Duration::from_millis(10_100)), vec![3]);
    }

    #[test]
    fn loss_drops_about_its_fraction_of_gossip_and_no_sync_message() {
        let (mut s, p, t0) = (LinkShaper::new(42), peer(), Instant::now());
        s.set(p, fault(0.25, 0, 0), t0).expect("a valid fault");
        let mut dropped = 0;
        for i in 0..4000 {
            match s.receive(&p, Kind::Gossip, 1, i, t0) {
                Shaped::Dropped => dropped += 1,
                Shaped::Held => {}
                Shaped::Pass(_) => panic!("a faulted link passed a message"),
            }
        }
        assert!((900..1100).contains(&dropped), "dropped {dropped} of 4000");
        for i in 0..100 {
            assert_eq!(s.receive(&p, Kind::Sync, 1, i, t0), Shaped::Held);
        }
        // Zero delay: all held ones are due at once.
        assert_eq!(s.release(t0).len(), 4000 - dropped + 100);
    }

    #[test]
    fn clearing_a_fault_passes_new_messages_and_releases_held_ones_when_due() {
        let (mut s, p, t0) = (LinkShaper::new(1), peer(), Instant::now());
        s.set(p, fault(0.0, 50, 0), t0).expect("a valid fault");
        s.receive(&p, Kind::Gossip, 1, 1, t0);
        s.set(p, LinkFault::default(), t0).expect("a valid fault");
        assert!(s.list().is_empty());
        assert!(s.is_active(), "a held message keeps the shaper active");
        assert_eq!(s.receive(&p, Kind::Gossip, 1, 2, t0), Shaped::Pass(2));
        assert_eq!(s.release(t0 + Duration::from_millis(50)), vec![1]);
        assert!(!s.is_active());
    }

    #[test]
    fn bad_faults_and_too_many_links_are_refused() {
        let (mut s, t0) = (LinkShaper::<u8>::new(1), Instant::now());
        let err = s.set(peer(), fault(1.5, 0, 0), t0).expect_err("refused");
        assert!(err.to_string().contains("loss"), "{err}");
        let err = s
            .set(peer(), fault(0.0, 60_000, 0), t0)
            .expect_err("refused");
        assert!(err.to_string().contains("delay_ms"), "{err}");
        for _ in 0..MAX_LINK_FAULTS {
            s.set(peer(), fault(0.1, 0, 0), t0).expect("a valid fault");
        }
        let err = s.set(peer(), fault(0.1, 0, 0), t0).expect_err("refused");
        assert!(
            matches!(err, NetworkError::TooManyLinkFaults { .. }),
            "{err}"
        );
    }

    #[test]
    fn held_messages_are_bounded_by_count() {
        let (mut s, p, t0) = (LinkShaper::new(1), peer(), Instant::now());
        s.set(p, fault(0.0, 1000, 0), t0).expect("a valid fault");
        for i in 0..MAX_LINK_HELD {
            assert_eq!(s.receive(&p, Kind::Gossip, 1, i, t0), Shaped::Held);
        }
        assert_eq!(s.receive(&p, Kind::Gossip, 1, 0, t0), Shaped::Dropped);
    }
}
