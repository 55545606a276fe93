//! The service's use of the [`AddressBook`]: loading it from and saving it to `peers.txt` in
//! the data directory, learning peers' listen addresses from identify, and dialling known
//! peers while the node has few peers (at start, and after every bootnode went away).
//!
//! It must never: decide which peers to remember or when to dial them (the address book's
//! policy); fail the node over the file (an unreadable or unwritable `peers.txt` is logged
//! and the node runs without it); or write the file more often than `PEERS_SAVE_INTERVAL`
//! outside shutdown.

use std::path::Path;
use std::time::Instant;

use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use super::Service;
use crate::address_book::{AddressBook, PEERS_FILE};
use crate::config::KNOWN_PEERS_DIAL_TARGET;

/// The address book saved in `data_dir`, or an empty one (with a warning when the file exists
/// but cannot be read).
pub(crate) fn load(data_dir: &Path, local: PeerId, capacity: usize) -> AddressBook {
    let path = data_dir.join(PEERS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "known peers unreadable; starting without them");
            String::new()
        }
    };
    let (book, skipped) = AddressBook::decode(local, capacity, &text);
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "skipped unusable lines of the known peers");
    }
    if book.len() > 0 {
        tracing::info!(peers = book.len(), "known peers loaded");
    }
    book
}

/// Writes `text` to `peers.txt` through a temporary file (synced) and a rename, so a crash
/// or a power loss never leaves a truncated book.
fn save(data_dir: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(PEERS_FILE);
    let tmp = path.with_extension("txt.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

impl Service {
    /// A peer of our network announced its listen addresses.
    pub(super) fn learn_addresses(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        if !self.peers.is_banned(&peer, Instant::now()) {
            self.known.learn(peer, addrs.iter().cloned());
        }
    }

    /// Dials the known peers that are due while fewer than the target number are connected.
    pub(super) fn dial_known_peers(&mut self, now: Instant) {
        let target = KNOWN_PEERS_DIAL_TARGET.min(self.config.max_peers as usize);
        let connected = self.peers.connected_count();
        if connected >= target {
            return;
        }
        let swarm = &self.swarm;
        let peers = &self.peers;
        let due = self.known.due_dials(now, target - connected, |p| {
            swarm.is_connected(p) || !peers.wants_dial(p, now)
        });
        for (peer, addrs) in due {
            tracing::debug!(%peer, ?addrs, "dialling a known peer");
            for addr in &addrs {
                self.swarm.add_peer_address(peer, addr.clone());
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!(%peer, error = %e, "dial of a known peer failed at once");
            }
        }
    }

    /// Saves the address book when it changed (spaced out; `force` at shutdown).
    pub(super) fn save_known_peers(&mut self, now: Instant, force: bool) {
        let Some(text) = self.known.take_save(now, force) else {
            return;
        };
        if let Err(e) = save(&self.config.data_dir, &text) {
            tracing::warn!(error = %e, "saving the known peers failed; will retry");
            self.known.mark_unsaved();
        }
    }
}
