//! Outstanding outbound sync requests and what their outcomes mean: [`RequestTable`].
//!
//! It owns: the table of requests in flight (request id → peer and [`Purpose`]) and the
//! translation of each response or failure into an [`Answer`] the service routes on (to the
//! peer book, the sync round, or a penalty). An id that is not in the table (a late answer to
//! an aborted round) yields nothing, so it is never penalised or applied twice.
//!
//! It must never: send requests, touch the swarm, the round or the peers (it only
//! classifies); or keep an entry after its response or failure (libp2p times every request
//! out after `SYNC_REQUEST_TIMEOUT`, so the table holds at most the requests in flight).

use std::collections::HashMap;
use std::hash::Hash as StdHash;

use libp2p::PeerId;
use libp2p::request_response::OutboundFailure;
use peerchain_ledger::{Block, BlockHeader, Hash};

use crate::codec::{Refusal, Status, SyncResponse};
use crate::config::points;

/// What an outstanding request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The status handshake or its refresh.
    Status,
    /// A round's `GetHeaders`.
    Headers,
    /// A round's `GetBlocks`.
    Blocks,
    /// A single-block ancestor fetch.
    Ancestor(Hash),
    /// The missing transactions of a compact block: `count` of them.
    BlockTxs {
        /// The block.
        block: Hash,
        /// How many were asked for.
        count: usize,
    },
}

impl Purpose {
    /// Whether the request belongs to a sync round.
    pub(crate) fn is_round(self) -> bool {
        matches!(self, Purpose::Headers | Purpose::Blocks)
    }
}

/// What a response or failure means.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The peer's status.
    Status(Status),
    /// Headers for the round.
    Headers(Vec<BlockHeader>),
    /// Blocks for the round.
    Blocks(Vec<Block>),
    /// The ancestor asked for.
    Ancestor(Block),
    /// The peer does not have the ancestor.
    AncestorMissing(Hash),
    /// The transactions of a `GetBlockTxs`, in its order (their txids not checked yet: the
    /// node knows which it expects).
    BlockTxs(Vec<peerchain_ledger::Transaction>),
    /// The peer does not have the block whose transactions were asked for.
    BlockTxsMissing,
    /// The peer refused (rate limit, busy, ...): a round request ends the round, unpenalised.
    Refused(Refusal),
    /// Bad data or a stall: penalise the peer (ending the round for a round request).
    Fault {
        /// Misbehaviour points.
        points: f64,
        /// What it did.
        reason: String,
    },
    /// The peer does not speak this network's sync protocol.
    OtherNetwork,
    /// The status request timed out: disconnect the peer unless it completed the handshake.
    StatusTimedOut,
    /// A failure that is not the peer's fault (connection closed, dial failure): a round
    /// request ends the round, unpenalised.
    Failed(String),
    /// Nothing to do.
    Nothing,
}

fn response_name(response: &SyncResponse) -> &'static str {
    match response {
        SyncResponse::Status(_) => "Status",
        SyncResponse::Headers(_) => "Headers",
        SyncResponse::Blocks(_) | SyncResponse::BlocksRaw(_) => "Blocks",
        SyncResponse::BlockTxs(_) => "BlockTxs",
        SyncResponse::Refused(_) => "Refused",
        SyncResponse::Malformed(_) => "Malformed",
    }
}

fn fault(points: f64, reason: String) -> Answer {
    Answer::Fault { points, reason }
}

/// What a response to a request for `purpose` means.
pub(crate) fn classify_response(purpose: Purpose, response: SyncResponse) -> Answer {
    match (purpose, response) {
        (_, SyncResponse::Malformed(reason)) => fault(
            points::INVALID_SYNC_DATA,
            format!("malformed response: {reason}"),
        ),
        (_, SyncResponse::Refused(refusal)) => Answer::Refused(refusal),
        (Purpose::Status, SyncResponse::Status(status)) => Answer::Status(status),
        (Purpose::Headers, SyncResponse::Headers(headers)) => Answer::Headers(headers),
        (Purpose::Blocks, SyncResponse::Blocks(blocks)) => Answer::Blocks(blocks),
        (Purpose::Ancestor(missing), SyncResponse::Blocks(blocks)) => {
            match blocks.into_iter().next() {
                Some(block) if block.hash() == missing => Answer::Ancestor(block),
                Some(block) => fault(
                    points::INVALID_SYNC_DATA,
                    format!("sent block {} for {missing}", block.hash()),
                ),
                None => Answer::AncestorMissing(missing),
            }
        }
        (Purpose::BlockTxs { count, .. }, SyncResponse::BlockTxs(txs)) => {
            if txs.is_empty() {
                Answer::BlockTxsMissing
            } else if txs.len() == count {
                Answer::BlockTxs(txs)
            } else {
                fault(
                    points::INVALID_SYNC_DATA,
                    format!("sent {} transactions for {count} asked", txs.len()),
                )
            }
        }
        (purpose, other) => fault(
            points::INVALID_SYNC_DATA,
            format!(
                "unexpected response {} to a {purpose:?} request",
                response_name(&other)
            ),
        ),
    }
}

/// What the failure of a request for `purpose` means.
pub(crate) fn classify_failure(purpose: Purpose, error: &OutboundFailure) -> Answer {
    match error {
        OutboundFailure::UnsupportedProtocols => Answer::OtherNetwork,
        OutboundFailure::Timeout => match purpose {
            Purpose::Headers | Purpose::Blocks => {
                fault(points::STALLED, "sync request timed out".to_owned())
            }
            Purpose::Status => Answer::StatusTimedOut,
            Purpose::Ancestor(_) | Purpose::BlockTxs { .. } => Answer::Nothing,
        },
        OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            fault(points::INVALID_SYNC_DATA, format!("invalid response: {e}"))
        }
        other => Answer::Failed(other.to_string()),
    }
}

/// The requests in flight, by id. See the module docs.
#[derive(Debug)]
pub(crate) struct RequestTable<R> {
    inflight: HashMap<R, (PeerId, Purpose)>,
}

impl<R: Eq + StdHash> RequestTable<R> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        RequestTable {
            inflight: HashMap::new(),
        }
    }

    /// Records a request sent to `peer`.
    pub(crate) fn insert(&mut self, id: R, peer: PeerId, purpose: Purpose) {
        self.inflight.insert(id, (peer, purpose));
    }

    /// Forgets a request whose answer no longer matters (its round was aborted).
    pub(crate) fn forget(&mut self, id: &R) {
        self.inflight.remove(id);
    }

    /// The response to `id`: its purpose and meaning, or `None` when it is not in flight.
    pub(crate) fn on_response(
        &mut self,
        id: &R,
        response: SyncResponse,
    ) -> Option<(Purpose, Answer)> {
        let (_, purpose) = self.inflight.remove(id)?;
        Some((purpose, classify_response(purpose, response)))
    }

    /// The failure of `id`: its purpose and meaning, or `None` when it is not in flight.
    pub(crate) fn on_failure(
        &mut self,
        id: &R,
        error: &OutboundFailure,
    ) -> Option<(Purpose, Answer)> {
        let (_, purpose) = self.inflight.remove(id)?;
        Some((purpose, classify_failure(purpose, error)))
    }

    /// Requests in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use peerchain_ledger::{Address, Target, U256};

    fn peer() -> PeerId {
        Keypair::ed25519_from_bytes([1; 32])
            .expect("valid key")
            .public()
            .to_peer_id()
    }

    fn block(nonce: u64) -> Block {
        Block {
            header: BlockHeader {
                version: 1,
                height: 1,
                prev_hash: Hash([0; 32]),
                tx_root: Hash([0; 32]),
                timestamp_ms: 0,
                target: Target(U256::MAX),
                nonce,
                miner: Address([0; 20]),
            },
            transactions: Vec::new(),
        }
    }

    fn status() -> Status {
        Status {
            genesis: Hash([1; 32]),
            tip: Hash([2; 32]),
            height: 3,
            total_work: U256::from(4u64),
        }
    }

    fn fault_points(answer: &Answer) -> Option<f64> {
        match answer {
            Answer::Fault { points, .. } => Some(*points),
            _ => None,
        }
    }

    #[test]
    fn answers_are_matched_to_their_purpose() {
        assert!(matches!(
            classify_response(Purpose::Status, SyncResponse::Status(status())),
            Answer::Status(s) if s == status()
        ));
        assert!(matches!(
            classify_response(Purpose::Headers, SyncResponse::Headers(vec![])),
            Answer::Headers(h) if h.is_empty()
        ));
        assert!(matches!(
            classify_response(Purpose::Blocks, SyncResponse::Blocks(vec![block(1)])),
            Answer::Blocks(b) if b.len() == 1
        ));
        // A response of the wrong kind is invalid data, naming both.
        let a = classify_response(Purpose::Headers, SyncResponse::Status(status()));
        assert_eq!(fault_points(&a), Some(points::INVALID_SYNC_DATA));
        let Answer::Fault { reason, .. } = a else {
            unreachable!()
        };
        assert!(
            reason.contains("Status") && reason.contains("Headers"),
            "{reason}"
        );
        let a = classify_response(Purpose::Status, SyncResponse::Malformed("short".into()));
        assert_eq!(fault_points(&a), Some(points::INVALID_SYNC_DATA));
        assert!(matches!(
            classify_response(Purpose::Blocks, SyncResponse::Refused(Refusal::Busy)),
            Answer::Refused(Refusal::Busy)
        ));
    }

    #[test]
    fn ancestor_answers() {
        let want = block(1);
        let missing = want.hash();
        assert!(matches!(
            classify_response(Purpose::Ancestor(missing), SyncResponse::Blocks(vec![want.clone()])),
            Answer::Ancestor(b) if b.hash() == missing
        ));
        assert!(matches!(
            classify_response(Purpose::Ancestor(missing), SyncResponse::Blocks(vec![])),
            Answer::AncestorMissing(h) if h == missing
        ));
        let a = classify_response(
            Purpose::Ancestor(missing),
            SyncResponse::Blocks(vec![block(2)]),
        );
        let Answer::Fault { points: p, reason } = a else {
            panic!("expected a fault, got {a:?}");
        };
        assert_eq!(p, points::INVALID_SYNC_DATA);
        assert!(reason.contains(&missing.to_string()), "{reason}");
    }

    #[test]
    fn block_tx_answers() {
        let purpose = Purpose::BlockTxs {
            block: block(1).hash(),
            count: 2,
        };
        let tx = |n| {
            peerchain_ledger::crypto::Keypair::dev(1).sign_transfer(1, Address([2; 20]), 1, 1, n)
        };
        let two = [tx(0), tx(1)];
        assert!(matches!(
            classify_response(purpose, SyncResponse::BlockTxs(two[..2].to_vec())),
            Answer::BlockTxs(t) if t.len() == 2
        ));
        assert!(matches!(
            classify_response(purpose, SyncResponse::BlockTxs(Vec::new())),
            Answer::BlockTxsMissing
        ));
        assert_eq!(
            fault_points(&classify_response(
                purpose,
                SyncResponse::BlockTxs(two[..1].to_vec())
            )),
            Some(points::INVALID_SYNC_DATA),
            "fewer than asked"
        );
        assert_eq!(
            fault_points(&classify_response(
                purpose,
                SyncResponse::Headers(Vec::new())
            )),
            Some(points::INVALID_SYNC_DATA),
            "another kind of response"
        );
        assert!(matches!(
            classify_failure(purpose, &OutboundFailure::Timeout),
            Answer::Nothing
        ));
    }

    #[test]
    fn failures_are_classified() {
        let timeout = OutboundFailure::Timeout;
        assert_eq!(
            fault_points(&classify_failure(Purpose::Headers, &timeout)),
            Some(points::STALLED)
        );
        assert!(matches!(
            classify_failure(Purpose::Status, &timeout),
            Answer::StatusTimedOut
        ));
        assert!(matches!(
            classify_failure(Purpose::Ancestor(Hash([0; 32])), &timeout),
            Answer::Nothing
        ));
        assert!(matches!(
            classify_failure(Purpose::Blocks, &OutboundFailure::UnsupportedProtocols),
            Answer::OtherNetwork
        ));
        let invalid = OutboundFailure::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "message exceeds the limit",
        ));
        assert_eq!(
            fault_points(&classify_failure(Purpose::Blocks, &invalid)),
            Some(points::INVALID_SYNC_DATA)
        );
        assert!(matches!(
            classify_failure(Purpose::Blocks, &OutboundFailure::ConnectionClosed),
            Answer::Failed(_)
        ));
    }

    #[test]
    fn the_table_answers_each_request_once() {
        let mut t: RequestTable<u32> = RequestTable::new();
        t.insert(1, peer(), Purpose::Status);
        t.insert(2, peer(), Purpose::Headers);
        t.insert(3, peer(), Purpose::Blocks);
        assert!(matches!(
            t.on_response(&1, SyncResponse::Status(status())),
            Some((Purpose::Status, Answer::Status(_)))
        ));
        assert!(t.on_response(&1, SyncResponse::Status(status())).is_none());
        t.forget(&2);
        assert!(
            t.on_response(&2, SyncResponse::Headers(vec![])).is_none(),
            "forgotten: a late answer is ignored"
        );
        assert!(matches!(
            t.on_failure(&3, &OutboundFailure::Timeout),
            Some((Purpose::Blocks, Answer::Fault { .. }))
        ));
        assert!(t.on_failure(&3, &OutboundFailure::Timeout).is_none());
        assert_eq!(t.len(), 0);
        assert!(Purpose::Headers.is_round() && Purpose::Blocks.is_round());
        assert!(!Purpose::Status.is_round() && !Purpose::Ancestor(Hash([0; 32])).is_round());
    }
}
