//! Peers worth dialling again after a restart: the [`AddressBook`].
//!
//! It owns the listen addresses the node learned from peers of its network (identify
//! answers carrying our network's protocol version, so only peers of the same genesis), when
//! each is due for a dial, and their saved form. The service saves the book as
//! [`PEERS_FILE`] in the data directory (one `/ip4/../tcp/../p2p/<id>` multiaddr per line,
//! most recently learned first) and loads it at start, so a restarted node finds its peers
//! again even when every bootnode is down (as Bitcoin Core's `peers.dat`).
//!
//! While the node has fewer than the target number of peers it dials the known peers that
//! are due; a peer whose dial fails waits [`REDIAL_MIN`], then twice as long after each further
//! failure, up to [`KNOWN_PEER_REDIAL_MAX`]; a connection resets the wait. A banned peer is
//! forgotten.
//!
//! It must never: touch a file or the swarm (it returns the text to save and the peers to
//! dial; the service does the I/O and the dialling); read the clock (`now` is passed in); or
//! hold more than its capacity (`NetworkConfig::max_known_peers`) of peers or more than
//! [`MAX_ADDRS_PER_PEER`] addresses for one.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::config::{KNOWN_PEER_REDIAL_MAX, PEERS_SAVE_INTERVAL, REDIAL_MIN};
use crate::peers::{peer_of, without_p2p};

/// File of the saved book in the data directory.
pub(crate) const PEERS_FILE: &str = "peers.txt";
/// Most addresses remembered for one peer (the first ones it announced).
pub(crate) const MAX_ADDRS_PER_PEER: usize = 4;

/// What the book remembers of one peer.
#[derive(Debug)]
struct Entry {
    /// Dialable addresses, without `/p2p`.
    addrs: Vec<Multiaddr>,
    /// Recency: a higher stamp was learned later.
    stamp: u64,
    /// Dials that failed since the last connection.
    failures: u32,
    /// Not dialled before this instant (`None`: due now).
    next_dial: Option<Instant>,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct AddressBook {
    local: PeerId,
    capacity: usize,
    entries: HashMap<PeerId, Entry>,
    next_stamp: u64,
    /// Changed since the last [`AddressBook::take_save`].
    dirty: bool,
    last_save: Option<Instant>,
}

/// An address worth remembering: TCP on a concrete IP address (not `0.0.0.0` or `::`).
fn dialable(addr: &Multiaddr) -> bool {
    let mut ip = false;
    let mut tcp = false;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = !a.is_unspecified(),
            Protocol::Ip6(a) => ip = !a.is_unspecified(),
            Protocol::Tcp(port) => tcp = port != 0,
            _ => {}
        }
    }
    ip && tcp
}

impl AddressBook {
    /// An empty book for the local peer `local` holding at most `capacity` peers.
    pub(crate) fn new(local: PeerId, capacity: usize) -> Self {
        AddressBook {
            local,
            capacity,
            entries: HashMap::new(),
            next_stamp: 0,
            dirty: false,
            last_save: None,
        }
    }

    /// A book loaded from the text [`AddressBook::encode`] wrote; every peer is due for a
    /// dial. Returns it with the number of lines that were skipped (malformed, without a
    /// peer id, not dialable, or beyond the bounds).
    pub(crate) fn decode(local: PeerId, capacity: usize, text: &str) -> (Self, usize) {
        let mut book = AddressBook::new(local, capacity);
        let mut skipped = 0;
        // Each peer's lines in file order, peers in order of their first line.
        let mut peers: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        let mut index: HashMap<PeerId, usize> = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parsed = line.parse::<Multiaddr>().ok();
            let Some((peer, addr)) = parsed.and_then(|a| Some((peer_of(&a)?, without_p2p(&a))))
            else {
                skipped += 1;
                continue;
            };
            match index.get(&peer) {
                Some(&i) => peers[i].1.push(addr),
                None => {
                    index.insert(peer, peers.len());
                    peers.push((peer, vec![addr]));
                }
            }
        }
        // The file lists the most recent first; learn in reverse so stamps keep that order.
        for (peer, addrs) in peers.into_iter().rev() {
            if !book.learn(peer, addrs) {
                skipped += 1;
            }
        }
        book.dirty = false;
        (book, skipped)
    }

    /// The book as text: one full multiaddr per line, most recently learned peer first.
    pub(crate) fn encode(&self) -> String {
        let mut peers: Vec<(&PeerId, &Entry)> = self.entries.iter().collect();
        peers.sort_by_key(|(_, e)| std::cmp::Reverse(e.stamp));
        let mut out = String::new();
        for (peer, entry) in peers {
            for addr in &entry.addrs {
                out.push_str(&addr.clone().with(Protocol::P2p(*peer)).to_string());
                out.push('\n');
            }
        }
        out
    }

    /// Peers remembered.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remembers the dialable ones of `addrs` for `peer` (a peer of our network), making it
    /// the most recent; when the book is full the least recent peer is forgotten. Returns
    /// whether anything was remembered.
    pub(crate) fn learn(
        &mut self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) -> bool {
        if peer == self.local || self.capacity == 0 {
            return false;
        }
        let mut fresh: Vec<Multiaddr> = Vec::new();
        for addr in addrs {
            let addr = without_p2p(&addr);
            if dialable(&addr) && !fresh.contains(&addr) && fresh.len() < MAX_ADDRS_PER_PEER {
                fresh.push(addr);
            }
        }
        if fresh.is_empty() {
            return false;
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(entry) = self.entries.get_mut(&peer) {
            let changed = entry.addrs != fresh;
            entry.addrs = fresh;
            entry.stamp = stamp;
            self.dirty |= changed;
            return true;
        }
        if self.entries.len() >= self.capacity {
            self.forget_least_recent();
        }
        self.entries.insert(
            peer,
            Entry {
                addrs: fresh,
                stamp,
                failures: 0,
                next_dial: None,
            },
        );
        self.dirty = true;
        true
    }

    fn forget_least_recent(&mut self) {
        if let Some(oldest) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.stamp)
            .map(|(p, _)| *p)
        {
            self.entries.remove(&oldest);
        }
    }

    /// Forgets `peer` (it was banned).
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.dirty |= self.entries.remove(peer).is_some();
    }

    /// `peer` completed the status handshake: its dial wait starts over. (Not on a bare
    /// connection: a full peer accepts and closes at once, and must not be redialled every
    /// second.)
    pub(crate) fn connected(&mut self, peer: &PeerId) {
        if let Some(entry) = self.entries.get_mut(peer) {
            entry.failures = 0;
            entry.next_dial = None;
        }
    }

    /// Up to `max` known peers due for a dial at `now` that `skip` does not exclude
    /// (connected, banned), most recent first, with their addresses. Each returned peer
    /// waits before it is returned again: [`REDIAL_MIN`], doubling per dial up to
    /// [`KNOWN_PEER_REDIAL_MAX`], until [`AddressBook::connected`] resets it.
    pub(crate) fn due_dials(
        &mut self,
        now: Instant,
        max: usize,
        skip: impl Fn(&PeerId) -> bool,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut due: Vec<(&PeerId, &mut Entry)> = self
            .entries
            .iter_mut()
            .filter(|(p, e)| e.next_dial.is_none_or(|t| t <= now) && !skip(p))
            .collect();
        due.sort_by_key(|(_, e)| std::cmp::Reverse(e.stamp));
        due.into_iter()
            .take(max)
            .map(|(peer, entry)| {
                let factor = 1u32.checked_shl(entry.failures.min(16)).unwrap_or(u32::MAX);
                let wait = REDIAL_MIN.saturating_mul(factor).min(KNOWN_PEER_REDIAL_MAX);
                entry.failures = entry.failures.saturating_add(1);
                entry.next_dial = Some(now + wait);
                (*peer, entry.addrs.clone())
            })
            .collect()
    }

    /// The text to save when the book changed and the last save is at least
    /// [`PEERS_SAVE_INTERVAL`] old (or `force`, at shutdown).
    pub(crate) fn take_save(&mut self, now: Instant, force: bool) -> Option<String> {
        let waited = self
            .last_save
            .is_none_or(|t| now.saturating_duration_since(t) >= PEERS_SAVE_INTERVAL);
        if !self.dirty || !(waited || force) {
            return None;
        }
        self.dirty = false;
        self.last_save = Some(now);
        Some(self.encode())
    }

    /// The last save failed: save again at the next chance.
    pub(crate) fn mark_unsaved(&mut self) {
        self.dirty = true;
    }

    /// How long `peer` waits before its next dial at `now` (tests and logs).
    #[cfg(test)]
    fn wait_of(&self, peer: &PeerId, now: Instant) -> Option<std::time::Duration> {
        let entry = self.entries.get(peer)?;
        Some(entry.next_dial.map_or(std::time::Duration::ZERO, |t| {
            t.saturating_duration_since(now)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::peer;
    use std::time::Duration;

    fn addr(text: &str) -> Multiaddr {
        text.parse().expect("valid multiaddr")
    }

    fn tcp(port: u16) -> Multiaddr {
        addr(&format!("/ip4/10.0.0.1/tcp/{port}"))
    }

    #[test]
    fn only_dialable_addresses_of_remote_peers_are_learned_and_bounded() {
        let mut book = AddressBook::new(peer(0), 8);
        assert!(!book.learn(peer(0), [tcp(1)]), "never the local peer");
        assert!(!book.learn(peer(1), [addr("/ip4/0.0.0.0/tcp/7710")]));
        assert!(!book.learn(peer(1), [addr("/ip4/10.0.0.1/udp/7710")]));
        assert!(!book.learn(peer(1), [addr("/ip4/10.0.0.1/tcp/0")]));
        assert_eq!(book.len(), 0);
        assert!(book.learn(peer(1), (1..=9).map(tcp)));
        let dials = book.due_dials(Instant::now(), 10, |_| false);
        assert_eq!(dials, vec![(peer(1), (1..=4).map(tcp).collect())]);
    }

    #[test]
    fn a_full_book_forgets_the_least_recently_learned_peer() {
        let mut book = AddressBook::new(peer(0), 2);
        book.learn(peer(1), [tcp(1)]);
        book.learn(peer(2), [tcp(2)]);
        book.learn(peer(1), [tcp(1)]); // learned again: now the most recent
        book.learn(peer(3), [tcp(3)]);
        assert_eq!(book.len(), 2);
        let dialled: Vec<PeerId> = book
            .due_dials(Instant::now(), 10, |_| false)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(dialled, vec![peer(3), peer(1)], "peer 2 was forgotten");
    }

    #[test]
    fn the_book_survives_encoding_in_order_and_skips_garbage() {
        let mut book = AddressBook::new(peer(0), 8);
        book.learn(peer(1), [tcp(1), tcp(11)]);
        book.learn(peer(2), [tcp(2)]);
        let text = book.encode();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .next()
                .is_some_and(|l| l.ends_with(&peer(2).to_string()))
        );
        let garbage = format!(
            "{text}not an address\n/ip4/10.0.0.9/tcp/9\n{}\n",
            tcp(5).with(Protocol::P2p(peer(0)))
        );
        let (mut loaded, skipped) = AddressBook::decode(peer(0), 8, &garbage);
        assert_eq!(skipped, 3, "garbage, no peer id, the local peer");
        assert_eq!(loaded.encode(), text);
        assert_eq!(
            loaded.take_save(Instant::now(), false),
            None,
            "nothing changed"
        );
    }

    #[test]
    fn failed_dials_back_off_and_a_connection_resets_the_wait() {
        let mut book = AddressBook::new(peer(0), 8);
        book.learn(peer(1), [tcp(1)]);
        let t0 = Instant::now();
        assert_eq!(book.due_dials(t0, 10, |_| false).len(), 1);
        assert!(
            book.due_dials(t0, 10, |_| false).is_empty(),
            "not due again at once"
        );
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let wait = book.wait_of(&peer(1), now).expect("known");
            waits.push(wait);
            now += wait;
            assert_eq!(book.due_dials(now, 10, |_| false).len(), 1);
        }
        assert_eq!(waits[0], REDIAL_MIN);
        assert_eq!(waits[1], REDIAL_MIN * 2);
        assert_eq!(waits.last().copied(), Some(KNOWN_PEER_REDIAL_MAX));
        book.connected(&peer(1));
        assert_eq!(
            book.due_dials(now, 10, |_| false).len(),
            1,
            "due at once after a connection"
        );
    }

    #[test]
    fn skipped_and_forgotten_peers_are_not_dialled() {
        let mut book = AddressBook::new(peer(0), 8);
        book.learn(peer(1), [tcp(1)]);
        book.learn(peer(2), [tcp(2)]);
        book.forget(&peer(2));
        let now = Instant::now();
        assert!(book.due_dials(now, 10, |p| *p == peer(1)).is_empty());
        assert_eq!(book.due_dials(now, 10, |_| false).len(), 1);
        assert!(!book.encode().contains(&peer(2).to_string()));
    }

    #[test]
    fn saves_are_spaced_unless_forced() {
        let mut book = AddressBook::new(peer(0), 8);
        let t0 = Instant::now();
        assert_eq!(book.take_save(t0, false), None, "nothing to save");
        book.learn(peer(1), [tcp(1)]);
        assert!(book.take_save(t0, false).is_some());
        book.learn(peer(2), [tcp(2)]);
        assert_eq!(book.take_save(t0 + Duration::from_millis(10), false), None);
        assert!(book.take_save(t0 + PEERS_SAVE_INTERVAL, false).is_some());
        book.learn(peer(3), [tcp(3)]);
        assert!(
            book.take_save(t0 + PEERS_SAVE_INTERVAL, true).is_some(),
            "forced"
        );
    }
}
