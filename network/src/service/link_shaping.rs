//! The service's use of the [`LinkShaper`] (`link_faults.rs`): operator commands that set a
//! peer's link fault, the sizes of received messages, and handing held messages back to the
//! behaviour routing when they are due.
//!
//! It must never: decide a message's fate (the shaper's policy); shape anything but gossip
//! messages and sync requests and responses from a faulted peer (connection events, pings
//! and identify pass, so a faulted peer stays connected); or leave a dropped gossip message
//! unreported (gossipsub would keep it pending).

use std::time::Instant;

use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{self, Message};
use peerchain_ledger::types::{HEADER_LEN, TX_ENCODED_LEN};

use super::Service;
use crate::behaviour::BehaviourEvent;
use crate::codec::{SyncRequest, SyncResponse};
use crate::error::NetworkError;
use crate::link_faults::{Kind, LinkFault, PeerLinkFault, Shaped};
use crate::types::MessageRef;

/// Wire size assumed for a sync message with no payload to speak of.
const SMALL_MESSAGE: usize = 128;

impl Service {
    /// Passes `event` through the link faults: `Some` to handle it now, `None` when it was
    /// held (handled later by [`Service::release_held`]) or dropped.
    pub(super) fn shape(&mut self, event: BehaviourEvent) -> Option<BehaviourEvent> {
        if !self.links.is_active() {
            return Some(event);
        }
        let (peer, kind, bytes, drop_report) = match &event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => (
                *propagation_source,
                Kind::Gossip,
                message.data.len(),
                Some(MessageRef {
                    id: message_id.clone(),
                    source: *propagation_source,
                }),
            ),
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                (*peer, Kind::Sync, sync_bytes(message), None)
            }
            _ => return Some(event),
        };
        match self
            .links
            .receive(&peer, kind, bytes, event, Instant::now())
        {
            Shaped::Pass(event) => Some(event),
            Shaped::Held => None,
            Shaped::Dropped => {
                if let Some(msg) = drop_report {
                    self.report(&msg, MessageAcceptance::Ignore);
                }
                tracing::trace!(%peer, bytes, "message dropped by a link fault");
                None
            }
        }
    }

    /// Handles the held messages that are due.
    pub(super) fn release_held(&mut self) {
        for event in self.links.release(Instant::now()) {
            self.on_behaviour(event);
        }
    }

    /// Sets (or clears) the fault of the link from `peer`; returns every faulted link.
    pub(super) fn set_link_fault(
        &mut self,
        peer: &str,
        fault: LinkFault,
    ) -> Result<Vec<PeerLinkFault>, NetworkError> {
        let id = self.peers.parse_remote(peer)?;
        self.links.set(id, fault, Instant::now())?;
        tracing::info!(%peer, ?fault, "link fault set");
        Ok(self.links.list())
    }
}

/// Approximate wire size of a sync message (payload only; framing is small).
fn sync_bytes(message: &Message<SyncRequest, SyncResponse>) -> usize {
    match message {
        Message::Request { request, .. } => match request {
            SyncRequest::GetHeaders { locator, .. } => SMALL_MESSAGE + 32 * locator.len(),
            SyncRequest::GetBlocks(hashes) => SMALL_MESSAGE + 32 * hashes.len(),
            SyncRequest::Status(_) => SMALL_MESSAGE,
            SyncRequest::GetBlockTxs { indexes, .. } => SMALL_MESSAGE + 4 * indexes.len(),
        },
        Message::Response { response, .. } => match response {
            SyncResponse::Headers(h) => SMALL_MESSAGE + HEADER_LEN * h.len(),
            SyncResponse::Blocks(b) => {
                SMALL_MESSAGE + b.iter().map(|b| b.encoded_len()).sum::<usize>()
            }
            SyncResponse::BlocksRaw(b) => SMALL_MESSAGE + b.iter().map(Vec::len).sum::<usize>(),
            SyncResponse::BlockTxs(txs) => SMALL_MESSAGE + TX_ENCODED_LEN * txs.len(),
            SyncResponse::Status(_) | SyncResponse::Refused(_) | SyncResponse::Malformed(_) => {
                SMALL_MESSAGE
            }
        },
    }
}
