//! The block validity rules of SPEC section 3 as pure functions: no clock (the caller passes
//! `now_ms`), no store, no I/O.
//!
//! [`check_header`] covers rules 1-4 and [`check_body`] rule 5 plus the signature part of the
//! transaction rule; applying the transactions to the parent state (rules 6-7) belongs to the
//! ledger and surfaces here as [`ConsensusError::InvalidTransactions`].

use peerchain_ledger::fast_hash::FastMap;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::sigcache::VerifiedSignatures;
use peerchain_ledger::{ApplyError, Block, BlockHeader, Genesis, Hash, Target};

/// The only block version of SPEC version 1.
pub const BLOCK_VERSION: u32 = 1;

/// Why a block is not (or not yet) acceptable. Every variant names the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// Rule 1: the version is not 1.
    #[error("block version {got} is not {BLOCK_VERSION}")]
    BadVersion {
        /// Version in the header.
        got: u32,
    },
    /// Rule 1: the height is not the parent's height + 1.
    #[error("block height {got} is not the parent height + 1 = {expected}")]
    BadHeight {
        /// Parent height + 1.
        expected: u64,
        /// Height in the header.
        got: u64,
    },
    /// Rule 1: prev_hash does not name a known valid block.
    #[error("parent block {parent} is not known")]
    UnknownParent {
        /// The header's prev_hash.
        parent: Hash,
    },
    /// Rule 1: prev_hash differs from the hash of the parent it was checked against.
    #[error("prev_hash {got} is not the parent hash {expected}")]
    BadPrevHash {
        /// Hash of the parent given.
        expected: Hash,
        /// prev_hash in the header.
        got: Hash,
    },
    /// Rule 2: the target differs from the difficulty rule.
    #[error("target {got} is not the required target {expected}")]
    BadTarget {
        /// Target of the difficulty rule.
        expected: Target,
        /// Target in the header.
        got: Target,
    },
    /// Rule 2: the block hash is above the target.
    #[error("block hash {hash} is above its target {target}")]
    InsufficientWork {
        /// The block hash.
        hash: Hash,
        /// The header's target.
        target: Target,
    },
    /// Rule 3: the timestamp is not after the median time past.
    #[error("timestamp {timestamp} ms is not after the median time past {median} ms")]
    TimestampNotAfterMedian {
        /// The header's timestamp.
        timestamp: u64,
        /// Median of the last 11 timestamps ending with the parent.
        median: u64,
    },
    /// Rule 4: the timestamp is too far ahead of the local clock. Not invalid: retry later.
    #[error(
        "timestamp {timestamp} ms is after the allowed {max_allowed} ms (local clock + max_future_ms)"
    )]
    TimestampInFuture {
        /// The header's timestamp.
        timestamp: u64,
        /// Local clock + max_future_ms.
        max_allowed: u64,
    },
    /// Rule 5: more transactions than max_block_txs.
    #[error("block has {count} transactions, at most {max} allowed")]
    TooManyTransactions {
        /// Transactions in the block.
        count: usize,
        /// Genesis max_block_txs.
        max: usize,
    },
    /// Rule 5: a txid appears twice.
    #[error("transaction {txid} appears twice, at index {first} and {second}")]
    DuplicateTransaction {
        /// The repeated txid.
        txid: Hash,
        /// Index of its first occurrence.
        first: usize,
        /// Index of the repeat.
        second: usize,
    },
    /// Rule 5: tx_root is not the Merkle root of the txids.
    #[error("tx_root {got} is not the Merkle root of the txids {expected}")]
    BadTxRoot {
        /// Merkle root of the block's txids.
        expected: Hash,
        /// tx_root in the header.
        got: Hash,
    },
    /// Rule 6: a transaction's signature does not verify.
    #[error("transaction {index} ({txid}) has an invalid signature")]
    BadSignature {
        /// Position in the block.
        index: usize,
        /// Its txid.
        txid: Hash,
    },
    /// Rules 6-7: the transactions do not apply to the parent state.
    #[error("invalid transactions: {0}")]
    InvalidTransactions(#[from] ApplyError),
    /// The block is already known to be invalid.
    #[error("block {hash} is already known to be invalid")]
    KnownInvalid {
        /// The block.
        hash: Hash,
    },
    /// An ancestor of the block is invalid.
    #[error("ancestor {ancestor} of the block is invalid")]
    InvalidAncestor {
        /// The invalid ancestor.
        ancestor: Hash,
    },
    /// The block store failed while checking (not a verdict on the block).
    #[error("store error while validating: {0}")]
    Store(#[from] peerchain_ledger::StoreError),
}

impl ConsensusError {
    /// Whether the block may become acceptable later without changing (rule 4 only): it is
    /// not invalid and its sender must not be punished.
    pub fn is_temporary(&self) -> bool {
        matches!(self, ConsensusError::TimestampInFuture { .. })
    }

    /// Whether the error was found applying the transactions to the parent's state (rules
    /// 6-7: balances and nonces), the one check a node skips before relaying a block early
    /// (`Chain::relayable`). An honest peer may relay such a block, so it is not penalised.
    pub fn needs_state(&self) -> bool {
        matches!(self, ConsensusError::InvalidTransactions(_))
    }
}

/// Rules 1-4 for `header` on top of `parent`, given the target the difficulty rule requires,
/// the parent's median time past and the local clock. The future-time rule is checked last,
/// so an error for which [`ConsensusError::is_temporary`] holds means every other rule passed.
pub fn check_header(
    header: &BlockHeader,
    parent: &BlockHeader,
    expected_target: Target,
    median_time_past: u64,
    now_ms: u64,
    genesis: &Genesis,
) -> Result<(), ConsensusError> {
    check_linkage(header, parent)?;
    check_pow(header, expected_target)?;
    if header.timestamp_ms <= median_time_past {
        return Err(ConsensusError::TimestampNotAfterMedian {
            timestamp: header.timestamp_ms,
            median: median_time_past,
        });
    }
    let max_allowed = now_ms.saturating_add(genesis.max_future_ms);
    if header.timestamp_ms > max_allowed {
        return Err(ConsensusError::TimestampInFuture {
            timestamp: header.timestamp_ms,
            max_allowed,
        });
    }
    Ok(())
}

/// Rule 1: version, height and prev_hash.
fn check_linkage(header: &BlockHeader, parent: &BlockHeader) -> Result<(), ConsensusError> {
    if header.version != BLOCK_VERSION {
        return Err(ConsensusError::BadVersion {
            got: header.version,
        });
    }
    let expected = parent.height.saturating_add(1);
    if header.height != expected || parent.height == u64::MAX {
        return Err(ConsensusError::BadHeight {
            expected,
            got: header.height,
        });
    }
    let parent_hash = parent.hash();
    if header.prev_hash != parent_hash {
        return Err(ConsensusError::BadPrevHash {
            expected: parent_hash,
            got: header.prev_hash,
        });
    }
    Ok(())
}

/// Rule 2: the target is the required one and the hash meets it.
fn check_pow(header: &BlockHeader, expected_target: Target) -> Result<(), ConsensusError> {
    if header.target != expected_target {
        return Err(ConsensusError::BadTarget {
            expected: expected_target,
            got: header.target,
        });
    }
    let hash = header.hash();
    if !header.target.is_met_by(&hash) {
        return Err(ConsensusError::InsufficientWork {
            hash,
            target: header.target,
        });
    }
    Ok(())
}

/// Rule 5 (count, unique txids, tx_root) and every signature, cheapest checks first. Returns
/// the txids in block order.
pub fn check_body(block: &Block, genesis: &Genesis) -> Result<Vec<Hash>, ConsensusError> {
    check_body_with(block, genesis, &VerifiedSignatures::new(0))
}

/// [`check_body`], skipping the signatures of the transactions `verified` holds (they
/// verified on this node before, byte for byte; `peerchain_ledger::sigcache`).
pub fn check_body_with(
    block: &Block,
    genesis: &Genesis,
    verified: &VerifiedSignatures,
) -> Result<Vec<Hash>, ConsensusError> {
    check_count(block, genesis)?;
    check_body_txids(block, block.txids(), genesis, verified)
}

/// [`check_body_with`] for a block whose `txids` this node computed itself, one per
/// transaction in block order (`peerchain_ledger::RebuiltBlock`): they are not computed again.
pub(crate) fn check_body_txids(
    block: &Block,
    txids: Vec<Hash>,
    genesis: &Genesis,
    verified: &VerifiedSignatures,
) -> Result<Vec<Hash>, ConsensusError> {
    check_count(block, genesis)?;
    // Never one txid too few or too many: computed here instead.
    let txids = if txids.len() == block.transactions.len() {
        txids
    } else {
        block.txids()
    };
    check_unique(&txids)?;
    let expected = merkle_root(&txids);
    if block.header.tx_root != expected {
        return Err(ConsensusError::BadTxRoot {
            expected,
            got: block.header.tx_root,
        });
    }
    if let Some(index) = peerchain_ledger::crypto::first_invalid_signature_except(
        &block.transactions,
        &txids,
        verified,
    ) {
        let txid = txids.get(index).copied().unwrap_or(Hash::ZERO);
        return Err(ConsensusError::BadSignature { index, txid });
    }
    Ok(txids)
}

/// Rule 5's bound on the number of transactions.
fn check_count(block: &Block, genesis: &Genesis) -> Result<(), ConsensusError> {
    let count = block.transactions.len();
    let max = genesis.max_block_txs();
    if count > max {
        return Err(ConsensusError::TooManyTransactions { count, max });
    }
    Ok(())
}

/// No txid twice; reports the first repeat in block order.
fn check_unique(txids: &[Hash]) -> Result<(), ConsensusError> {
    let mut seen: FastMap<Hash, usize> =
        FastMap::with_capacity_and_hasher(txids.len(), Default::default());
    for (second, txid) in txids.iter().enumerate() {
        if let Some(&first) = seen.get(txid) {
            return Err(ConsensusError::DuplicateTransaction {
                txid: *txid,
                first,
                second,
            });
        }
        seen.insert(*txid, second);
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::difficulty::{median_time_past, next_target};
    use crate::pow::mine_range;
    use peerchain_ledger::crypto::Keypair;
    use peerchain_ledger::{Address, Transaction, TxError, U256};

    const NOW: u64 = 1_767_225_700_000;

    /// A dev genesis where half of all hashes meet the target, so tests mine instantly.
    fn easy_genesis() -> Genesis {
        let mut g = Genesis::dev(2, 1_000_000, 2000);
        g.initial_target = Target(U256::MAX >> 1);
        g.pow_limit = Target(U256::MAX >> 1);
        g.max_block_txs = 3;
        g.validate().expect("valid genesis");
        g
    }

    fn transfers(g: &Genesis, n: u64) -> Vec<Transaction> {
        let to = Keypair::dev(1).address();
        (0..n)
            .map(|nonce| Keypair::dev(0).sign_transfer(g.chain_id, to, 10, 1, nonce))
            .collect()
    }

    /// Block 1 on top of genesis with `txs`, a correct tx_root and a nonce that meets the target.
    fn block_one(g: &Genesis, txs: Vec<Transaction>) -> Block {
        let parent = g.header();
        let txids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
        let mut header = BlockHeader {
            version: 1,
            height: 1,
            prev_hash: parent.hash(),
            tx_root: merkle_root(&txids),
            timestamp_ms: parent.timestamp_ms + 2000,
            target: next_target(&parent, None, g),
            nonce: 0,
            miner: Address([5u8; 20]),
        };
        remine(&mut header);
        Block {
            header,
            transactions: txs,
        }
    }

    fn remine(header: &mut BlockHeader) {
        header.nonce = mine_range(header, 0, 1000).expect("easy target");
    }

    /// Checks `header` as block 1 on the genesis of `g`.
    fn check(header: &BlockHeader, g: &Genesis) -> Result<(), ConsensusError> {
        let parent = g.header();
        let mtp = median_time_past(&[parent.timestamp_ms]);
        check_header(header, &parent, next_target(&parent, None, g), mtp, NOW, g)
    }

    /// Applies `edit` to a valid block-1 header, re-mines it and checks it.
    fn check_edited(edit: impl FnOnce(&mut BlockHeader)) -> Result<(), ConsensusError> {
        let g = easy_genesis();
        let mut header = block_one(&g, Vec::new()).header;
        edit(&mut header);
        remine(&mut header);
        check(&header, &g)
    }

    #[test]
    fn valid_block_passes() {
        let g = easy_genesis();
        let block = block_one(&g, transfers(&g, 3));
        assert_eq!(check(&block.header, &g), Ok(()));
        assert_eq!(check_body(&block, &g), Ok(block.txids()));
        let empty = block_one(&g, Vec::new());
        assert_eq!(check_body(&empty, &g), Ok(Vec::new()));
    }

    #[test]
    fn bad_version() {
        let err = check_edited(|h| h.version = 2).expect_err("version 2");
        assert_eq!(err, ConsensusError::BadVersion { got: 2 });
        assert_eq!(err.to_string(), "block version 2 is not 1");
    }

    #[test]
    fn bad_height() {
        let err = check_edited(|h| h.height = 2).expect_err("height 2");
        assert_eq!(
            err,
            ConsensusError::BadHeight {
                expected: 1,
                got: 2
            }
        );
        assert!(err.to_string().contains("height 2") && err.to_string().contains("= 1"));
        // A parent at u64::MAX has no valid child.
        let g = easy_genesis();
        let mut parent = g.header();
        parent.height = u64::MAX;
        let mut header = block_one(&g, Vec::new()).header;
        header.height = u64::MAX;
        header.prev_hash = parent.hash();
        remine(&mut header);
        let err = check_header(&header, &parent, g.initial_target, 0, NOW, &g);
        assert!(
            matches!(err, Err(ConsensusError::BadHeight { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn bad_prev_hash() {
        let err = check_edited(|h| h.prev_hash = Hash([1u8; 32])).expect_err("prev_hash");
        let g = easy_genesis();
        let expected = ConsensusError::BadPrevHash {
            expected: g.hash(),
            got: Hash([1u8; 32]),
        };
        assert_eq!(err, expected);
        assert!(err.to_string().contains(&g.hash().to_hex()));
    }

    #[test]
    fn bad_target() {
        let easier = Target(U256::MAX);
        let err = check_edited(|h| h.target = easier).expect_err("target");
        let expected = ConsensusError::BadTarget {
            expected: easy_genesis().initial_target,
            got: easier,
        };
        assert_eq!(err, expected);
        assert!(err.to_string().contains(&easier.to_string()));
    }

    #[test]
    fn insufficient_work() {
        let g = easy_genesis();
        let mut header = block_one(&g, Vec::new()).header;
        let failing = (0..1000)
            .find(|&n| {
                header.nonce = n;
                !g.initial_target.is_met_by(&header.hash())
            })
            .expect("half of all hashes fail");
        header.nonce = failing;
        let err = check(&header, &g).expect_err("hash above target");
        assert_eq!(
            err,
            ConsensusError::InsufficientWork {
                hash: header.hash(),
                target: g.initial_target,
            }
        );
        assert!(!err.is_temporary());
    }

    #[test]
    fn timestamp_not_after_median() {
        let g = easy_genesis();
        let err = check_edited(|h| h.timestamp_ms = g.timestamp_ms).expect_err("equal to MTP");
        assert_eq!(
            err,
            ConsensusError::TimestampNotAfterMedian {
                timestamp: g.timestamp_ms,
                median: g.timestamp_ms,
            }
        );
        assert!(!err.is_temporary());
        assert!(check_edited(|h| h.timestamp_ms = g.timestamp_ms + 1).is_ok());
    }

    #[test]
    fn timestamp_in_future_is_temporary() {
        let g = easy_genesis();
        let max_allowed = NOW + g.max_future_ms;
        assert!(check_edited(|h| h.timestamp_ms = max_allowed).is_ok());
        let err = check_edited(|h| h.timestamp_ms = max_allowed + 1).expect_err("future");
        assert_eq!(
            err,
            ConsensusError::TimestampInFuture {
                timestamp: max_allowed + 1,
                max_allowed,
            }
        );
        assert!(err.is_temporary());
        // A block that also breaks another rule is reported by that rule: invalid, not temporary.
        let err = check_edited(|h| {
            h.timestamp_ms = u64::MAX;
            h.version = 0;
        })
        .expect_err("two failures");
        assert_eq!(err, ConsensusError::BadVersion { got: 0 });
        assert!(!err.is_temporary());
        // The clock bound saturates instead of overflowing.
        let mut header = block_one(&g, Vec::new()).header;
        header.timestamp_ms = u64::MAX;
        remine(&mut header);
        let parent = g.header();
        assert_eq!(
            check_header(&header, &parent, g.initial_target, 0, u64::MAX, &g),
            Ok(())
        );
    }

    #[test]
    fn too_many_transactions() {
        let g = easy_genesis();
        let block = block_one(&g, transfers(&g, 4));
        let err = check_body(&block, &g).expect_err("4 > 3");
        assert_eq!(
            err,
            ConsensusError::TooManyTransactions { count: 4, max: 3 }
        );
        assert_eq!(
            err.to_string(),
            "block has 4 transactions, at most 3 allowed"
        );
    }

    #[test]
    fn duplicate_transaction() {
        let g = easy_genesis();
        let txs = transfers(&g, 2);
        let block = block_one(&g, vec![txs[0].clone(), txs[1].clone(), txs[0].clone()]);
        let err = check_body(&block, &g).expect_err("duplicate");
        assert_eq!(
            err,
            ConsensusError::DuplicateTransaction {
                txid: txs[0].txid(),
                first: 0,
                second: 2,
            }
        );
    }

    #[test]
    fn bad_tx_root() {
        let g = easy_genesis();
        let txs = transfers(&g, 2);
        let mut block = block_one(&g, txs.clone());
        // Reordering keeps the txids but changes the root.
        block.transactions.reverse();
        let err = check_body(&block, &g).expect_err("root");
        assert_eq!(
            err,
            ConsensusError::BadTxRoot {
                expected: merkle_root(&[txs[1].txid(), txs[0].txid()]),
                got: block.header.tx_root,
            }
        );
    }

    #[test]
    fn bad_signature() {
        let g = easy_genesis();
        let mut txs = transfers(&g, 3);
        txs[1].signature.0[0] ^= 1;
        let block = block_one(&g, txs.clone());
        let err = check_body(&block, &g).expect_err("tampered signature");
        assert_eq!(
            err,
            ConsensusError::BadSignature {
                index: 1,
                txid: txs[1].txid(),
            }
        );
        assert!(err.to_string().contains(&txs[1].txid().to_hex()));
    }

    #[test]
    fn errors_from_other_layers() {
        let apply = ApplyError::Transaction {
            index: 0,
            txid: Hash([2u8; 32]),
            source: TxError::FeeTooLow { fee: 0, min_fee: 1 },
        };
        let err = ConsensusError::from(apply.clone());
        assert_eq!(err, ConsensusError::InvalidTransactions(apply));
        assert!(err.to_string().contains("fee 0 is below the minimum fee 1"));
        let unknown = ConsensusError::UnknownParent {
            parent: Hash([4u8; 32]),
        };
        assert!(unknown.to_string().contains(&Hash([4u8; 32]).to_hex()));
        let store = ConsensusError::Store(peerchain_ledger::StoreError::Db("disk full".into()));
        assert!(store.to_string().contains("disk full"));
        assert!(!(unknown.is_temporary() || store.is_temporary() || err.is_temporary()));
    }
}
