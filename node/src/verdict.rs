//! The node's decisions at its borders, as plain functions: what a chain verdict or a mempool
//! result means for the peer that sent the item (accept and relay, ignore, or reject with a
//! penalty), and what a chain failure means for an API caller. The chain service calls these;
//! the tests call the chain service. There is no other copy.

use peerchain_consensus::{ChainError, Verdict};
use peerchain_ledger::TxError;
use peerchain_ledger::mempool::{Admitted, MempoolError};
use peerchain_network::Acceptance;
use peerchain_rpc::node_api::NodeError;

/// How far ahead of a sender's next nonce a transaction (gossiped or submitted over HTTP) may
/// wait for its predecessors in the gap queue instead of being refused: the mempool's
/// default nonce window, so any transaction the pool could take once its predecessors
/// arrive may wait (the queue's own bounds and the funds check still apply).
pub const MAX_GAP: u64 = 1_000;

/// What to do with a gossiped transaction after the mempool judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxVerdict {
    /// New in the mempool: relay it (and admit any held successors).
    Accept,
    /// Ahead of a nonce gap by less than [`MAX_GAP`]: hold it until the gap closes; do not
    /// relay yet, no penalty (gossip does not preserve order).
    Hold,
    /// A difference of views (already pending, stale nonce, pool full, store failure): drop
    /// it, no penalty.
    Ignore,
    /// Provably invalid wherever it is checked: drop it and penalise the peer.
    Reject {
        /// The error code, for metrics and logs.
        code: &'static str,
    },
}

impl TxVerdict {
    /// The gossipsub validation result of this verdict.
    pub fn acceptance(&self) -> Acceptance {
        match self {
            TxVerdict::Accept => Acceptance::Accept,
            TxVerdict::Hold | TxVerdict::Ignore => Acceptance::Ignore,
            TxVerdict::Reject { .. } => Acceptance::Reject,
        }
    }
}

/// Whether a refused transaction shows that whoever relayed it misbehaved: it fails a check
/// that needs no state and holds on every node of the network (signature, chain id, the
/// genesis `min_fee`). Nonce, balance and pool-capacity refusals depend on this node's view
/// and are never a peer's fault; neither is a store failure here.
pub fn is_peer_fault(e: &MempoolError) -> bool {
    matches!(
        e,
        MempoolError::Invalid(
            TxError::BadSignature { .. } | TxError::WrongChain { .. } | TxError::FeeTooLow { .. }
        )
    )
}

/// The verdict on a gossiped transaction given the mempool's answer.
pub fn tx_verdict(result: &Result<Admitted, MempoolError>) -> TxVerdict {
    match result {
        Ok(Admitted::New { .. }) => TxVerdict::Accept,
        Ok(Admitted::AlreadyPending(_)) => TxVerdict::Ignore,
        Err(MempoolError::Invalid(TxError::NonceTooHigh { nonce, expected }))
            if nonce.saturating_sub(*expected) < MAX_GAP =>
        {
            TxVerdict::Hold
        }
        Err(e) if is_peer_fault(e) => TxVerdict::Reject { code: e.code() },
        Err(_) => TxVerdict::Ignore,
    }
}

/// What became of one transaction of a gossiped batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchItem {
    /// It entered the mempool.
    Admitted,
    /// The mempool holds it already.
    Known,
    /// It waits in the gap queue for its predecessors.
    Held,
    /// Not taken, through no fault of the relay (stale nonce, unpayable, pool or gap queue
    /// full, store failure).
    Dropped,
    /// Provably invalid wherever it is checked (see [`is_peer_fault`]).
    Invalid {
        /// The error code.
        code: &'static str,
    },
}

/// The verdict on a gossiped batch (one message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Forward the message: every transaction in it is in the mempool.
    Forward,
    /// Judge it when its held transactions leave the gap queue: `Accept` if every one of them
    /// enters the mempool, `Ignore` as soon as one does not (`gap::WaitingMessages`).
    Wait,
    /// Drop it without penalty.
    Ignore,
    /// Drop it and penalise its relays.
    Reject {
        /// The error code of the first invalid transaction.
        code: &'static str,
    },
}

/// The verdict on a gossiped batch given what became of each of its transactions: `Reject` if
/// any is invalid; `Ignore` if any was dropped; `Wait` if any is held; `Forward` if any was
/// admitted; else (all known) `Ignore`. So a node forwards a message only when its mempool
/// holds every transaction in it, as it did when a message carried one transaction: an honest
/// relay never passes on what it has not checked, and is never penalised for it.
pub fn batch_verdict(items: &[BatchItem]) -> BatchVerdict {
    if let Some(code) = items.iter().find_map(|i| match i {
        BatchItem::Invalid { code } => Some(*code),
        _ => None,
    }) {
        return BatchVerdict::Reject { code };
    }
    if items.contains(&BatchItem::Dropped) {
        BatchVerdict::Ignore
    } else if items.contains(&BatchItem::Held) {
        BatchVerdict::Wait
    } else if items.contains(&BatchItem::Admitted) {
        BatchVerdict::Forward
    } else {
        BatchVerdict::Ignore
    }
}

/// The gossipsub validation result of a block verdict: accept (relay) only what was stored;
/// reject what is invalid; ignore duplicates, orphans, blocks from the future and blocks of
/// lighter branches (their sender is not provably at fault).
pub fn block_acceptance(verdict: &Verdict) -> Acceptance {
    match verdict {
        Verdict::Accepted { .. } => Acceptance::Accept,
        Verdict::Invalid(_) => Acceptance::Reject,
        Verdict::Duplicate
        | Verdict::Future { .. }
        | Verdict::Orphan { .. }
        | Verdict::Lighter { .. } => Acceptance::Ignore,
    }
}

/// What a failed chain operation (invalidate, reconsider, mine) means for the caller.
pub fn node_error(e: ChainError) -> NodeError {
    match e {
        ChainError::UnknownBlock(hash) => NodeError::UnknownBlock(hash),
        ChainError::Genesis => NodeError::Genesis,
        ChainError::Store(e) => NodeError::Store(e),
    }
}

/// What a failed network command means for the caller.
pub fn network_error(e: peerchain_network::NetworkError) -> NodeError {
    use peerchain_network::NetworkError as N;
    match e {
        N::UnknownPeer { peer } => NodeError::UnknownPeer { peer },
        N::NotBlocked { peer } => NodeError::NotBlocked { peer },
        N::BadPeerId { peer, detail } => NodeError::BadPeerId { peer, detail },
        N::LocalPeer { peer } => NodeError::LocalPeer { peer },
        N::BadAddress { addr, detail } | N::Dial { addr, detail } => {
            NodeError::BadAddress { addr, detail }
        }
        N::BootnodeWithoutPeerId { addr } => NodeError::BadAddress {
            addr,
            detail: "no /p2p/<peer id> component".into(),
        },
        N::Store(e) => NodeError::Store(e),
        e @ N::BadLinkFault { .. } => NodeError::BadLinkFault(e.to_string()),
        N::TooManyLinkFaults { max } => NodeError::TooManyLinkFaults { max },
        N::Stopped
        | N::DataDir { .. }
        | N::KeyFile { .. }
        | N::KeyDecode { .. }
        | N::KeySeedFile { .. }
        | N::Listen { .. }
        | N::Setup { .. } => NodeError::Stopped("the network service"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_consensus::ConsensusError;
    use peerchain_ledger::{Address, Hash, StoreError};

    fn refused(e: TxError) -> Result<Admitted, MempoolError> {
        Err(MempoolError::Invalid(e))
    }

    #[test]
    fn a_batch_is_forwarded_only_when_the_mempool_holds_all_of_it() {
        use BatchItem::{Admitted, Dropped, Held, Known};
        let invalid = BatchItem::Invalid {
            code: "bad_signature",
        };
        assert_eq!(
            batch_verdict(&[Admitted, invalid, Held]),
            BatchVerdict::Reject {
                code: "bad_signature"
            }
        );
        assert_eq!(batch_verdict(&[Admitted, Known]), BatchVerdict::Forward);
        assert_eq!(batch_verdict(&[Admitted, Held, Known]), BatchVerdict::Wait);
        assert_eq!(
            batch_verdict(&[Admitted, Held, Dropped]),
            BatchVerdict::Ignore
        );
        assert_eq!(batch_verdict(&[Admitted, Dropped]), BatchVerdict::Ignore);
        assert_eq!(batch_verdict(&[Known, Known]), BatchVerdict::Ignore);
        assert_eq!(batch_verdict(&[]), BatchVerdict::Ignore);
    }

    #[test]
    fn stateless_failures_are_the_peers_fault_and_views_are_not() {
        let txid = Hash([1; 32]);
        let bad_sig = TxError::BadSignature {
            txid,
            from: "ab".into(),
        };
        assert_eq!(
            tx_verdict(&refused(bad_sig)),
            TxVerdict::Reject {
                code: "bad_signature"
            }
        );
        let wrong_chain = TxError::WrongChain {
            got: 1,
            expected: 2,
        };
        assert_eq!(
            tx_verdict(&refused(wrong_chain)).acceptance(),
            Acceptance::Reject
        );
        // min_fee is a genesis parameter: a cheaper transaction is invalid on every node.
        let cheap = TxError::FeeTooLow { fee: 0, min_fee: 1 };
        assert_eq!(
            tx_verdict(&refused(cheap)),
            TxVerdict::Reject {
                code: "fee_too_low"
            }
        );
        let stale = TxError::NonceTooLow {
            nonce: 1,
            expected: 3,
        };
        assert_eq!(tx_verdict(&refused(stale)), TxVerdict::Ignore);
        let broke = TxError::InsufficientFunds {
            address: Address([3; 20]),
            balance: 1,
            needed: 2,
        };
        assert_eq!(tx_verdict(&refused(broke)), TxVerdict::Ignore);
        let full = MempoolError::Full {
            count: 1,
            bytes: 1,
            fee: 1,
        };
        assert_eq!(tx_verdict(&Err(full)), TxVerdict::Ignore);
        let disk = MempoolError::Store(StoreError::Db("no space left on device".into()));
        assert_eq!(
            tx_verdict(&Err(disk)),
            TxVerdict::Ignore,
            "I/O is no verdict"
        );
    }

    #[test]
    fn small_nonce_gaps_are_held_and_large_ones_dropped() {
        let gap = |nonce| {
            tx_verdict(&refused(TxError::NonceTooHigh {
                nonce,
                expected: 10,
            }))
        };
        assert_eq!(gap(11), TxVerdict::Hold);
        assert_eq!(gap(10 + MAX_GAP - 1), TxVerdict::Hold);
        assert_eq!(gap(10 + MAX_GAP), TxVerdict::Ignore);
        assert_eq!(TxVerdict::Hold.acceptance(), Acceptance::Ignore);
        let new = Ok(Admitted::New {
            txid: Hash([2; 32]),
            evicted: Vec::new(),
        });
        assert_eq!(tx_verdict(&new).acceptance(), Acceptance::Accept);
        let dup = Ok(Admitted::AlreadyPending(Hash([2; 32])));
        assert_eq!(tx_verdict(&dup).acceptance(), Acceptance::Ignore);
    }

    #[test]
    fn blocks_are_relayed_only_when_stored() {
        assert_eq!(
            block_acceptance(&Verdict::Accepted { on_main: false }),
            Acceptance::Accept
        );
        assert_eq!(block_acceptance(&Verdict::Duplicate), Acceptance::Ignore);
        assert_eq!(
            block_acceptance(&Verdict::Orphan {
                missing: Hash([5; 32])
            }),
            Acceptance::Ignore
        );
        assert_eq!(
            block_acceptance(&Verdict::Future { timestamp_ms: 9 }),
            Acceptance::Ignore
        );
        let invalid = Verdict::Invalid(ConsensusError::UnknownParent {
            parent: Hash([6; 32]),
        });
        assert_eq!(block_acceptance(&invalid), Acceptance::Reject);
    }

    #[test]
    fn chain_failures_keep_their_types() {
        let h = Hash([7; 32]);
        assert_eq!(
            node_error(ChainError::UnknownBlock(h)),
            NodeError::UnknownBlock(h)
        );
        assert_eq!(node_error(ChainError::Genesis), NodeError::Genesis);
        let io = StoreError::Db("disk".into());
        assert_eq!(
            node_error(ChainError::Store(io.clone())),
            NodeError::Store(io)
        );
    }
}
