//! Signatures verified once per node: the [`VerifiedSignatures`] set.
//!
//! A txid is `SHA-256(signing message ‖ signature)` (SPEC section 2), so it commits to every
//! byte the signature check reads: a transaction whose txid is in the set carries exactly the
//! bytes that passed `crypto::verify_transaction` before, and skipping the check accepts
//! exactly the same set of transactions. Mempool admission fills it; block validation
//! consults it and adds what it verified itself, so a block whose transactions a node already
//! holds costs no signature check, and neither does a block connected again after a reorg.
//!
//! A [`SignatureChecker`] is a handle on the same set for another thread: the node checks the
//! signatures of a gossiped batch with it on all cores before its chain thread admits the batch,
//! and the mempool then finds them verified.
//!
//! It must never: hold a txid whose signature did not verify; or hold more than its capacity
//! (the oldest entries are dropped first, half the capacity at a time; capacity 0 keeps
//! nothing, the behaviour before it existed).

use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;

use crate::crypto;
use crate::generations::Generations;
use crate::types::{Hash, Transaction};

/// See the module docs. Bounded by [`Generations`]: the newest half of the capacity or more
/// is held, never more than the capacity (resident memory for 180,000 txids: 14 MiB with a
/// queue of txids for eviction, 8 MiB now).
#[derive(Debug, Clone, Default)]
pub struct VerifiedSignatures {
    txids: Generations<Hash, ()>,
}

impl VerifiedSignatures {
    /// An empty set holding at most `capacity` txids.
    pub fn new(capacity: usize) -> Self {
        VerifiedSignatures {
            txids: Generations::new(capacity),
        }
    }

    /// Whether the signature of the transaction `txid` verified here before.
    pub fn contains(&self, txid: &Hash) -> bool {
        self.txids.contains(txid)
    }

    /// Records that the signature of `txid` verified (call only after it did).
    pub fn insert(&mut self, txid: Hash) {
        self.txids.insert_new(txid, ());
    }

    /// Txids held.
    pub fn len(&self) -> usize {
        self.txids.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.txids.is_empty()
    }
}

/// A handle on a shared [`VerifiedSignatures`] set (the mempool's), for checking signatures
/// away from the thread that owns the mempool.
#[derive(Debug, Clone)]
pub struct SignatureChecker {
    verified: Arc<Mutex<VerifiedSignatures>>,
}

impl SignatureChecker {
    /// A checker filling `verified`.
    pub fn new(verified: Arc<Mutex<VerifiedSignatures>>) -> Self {
        SignatureChecker { verified }
    }

    fn set(&self) -> MutexGuard<'_, VerifiedSignatures> {
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks the signatures of `txs` not verified before, on all cores and without holding
    /// the set's lock meanwhile, and records those that verify. Returns the index of the
    /// first transaction whose signature is invalid, if any (the checks after it may be
    /// skipped). The same rule as `crypto::verify_transaction`, which it calls.
    pub fn check(&self, txs: &[Transaction]) -> Option<usize> {
        let txids: Vec<Hash> = txs
            .par_iter()
            .with_min_len(128)
            .map(Transaction::txid)
            .collect();
        let unchecked: Vec<usize> = {
            let set = self.set();
            (0..txids.len())
                .filter(|&i| txids.get(i).is_some_and(|id| !set.contains(id)))
                .collect()
        };
        let first_bad = unchecked
            .par_iter()
            .with_min_len(32)
            .position_first(|&i| txs.get(i).is_none_or(|tx| !crypto::verify_transaction(tx)))
            .and_then(|k| unchecked.get(k).copied());
        let mut set = self.set();
        for &i in &unchecked {
            if first_bad.is_some_and(|bad| i >= bad) {
                break;
            }
            if let Some(id) = txids.get(i) {
                set.insert(*id);
            }
        }
        first_bad
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::types::Address;

    fn signed(n: u64) -> Transaction {
        Keypair::dev(1).sign_transfer(7, Address([2; 20]), 5, 1, n)
    }

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn holds_at_most_its_capacity_dropping_the_oldest() {
        let mut v = VerifiedSignatures::new(3);
        for n in 0..5 {
            v.insert(h(n));
        }
        assert_eq!(v.len(), 3);
        assert!(!v.contains(&h(0)) && !v.contains(&h(1)));
        assert!(v.contains(&h(2)) && v.contains(&h(4)));
        v.insert(h(4)); // a repeat takes no second slot
        assert_eq!(v.len(), 3);
        assert!(v.contains(&h(2)));
    }

    #[test]
    fn a_large_set_keeps_the_newest_half_of_its_capacity_or_more() {
        let big = |n: u32| {
            let mut b = [0; 32];
            b[..4].copy_from_slice(&n.to_le_bytes());
            Hash(b)
        };
        for capacity in [1, 2, 7, 100, 1_001] {
            let mut v = VerifiedSignatures::new(capacity);
            for n in 0..10_000 {
                v.insert(big(n));
                assert!(v.len() <= capacity, "{} held of {capacity}", v.len());
                let newest = (capacity / 2).max(1) as u32;
                let from = (n + 1).saturating_sub(newest);
                assert!(
                    (from..=n).all(|m| v.contains(&big(m))),
                    "capacity {capacity}: one of the newest {newest} dropped at {n}"
                );
            }
            assert!(!v.contains(&big(0)));
        }
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut v = VerifiedSignatures::new(0);
        v.insert(h(1));
        assert!(v.is_empty() && !v.contains(&h(1)));
    }

    #[test]
    fn the_checker_records_what_verified_and_finds_the_first_bad_signature() {
        let set = Arc::new(Mutex::new(VerifiedSignatures::new(100)));
        let checker = SignatureChecker::new(Arc::clone(&set));
        let good: Vec<Transaction> = (0..4).map(signed).collect();
        assert_eq!(checker.check(&good), None);
        let lock = checker.set();
        assert!(good.iter().all(|tx| lock.contains(&tx.txid())));
        drop(lock);

        let mut forged = signed(9);
        forged.amount += 1; // the signature no longer covers the bytes
        let mixed = vec![signed(5), forged.clone(), signed(6)];
        assert_eq!(checker.check(&mixed), Some(1));
        let lock = checker.set();
        assert!(lock.contains(&mixed[0].txid()));
        assert!(
            !lock.contains(&forged.txid()),
            "a bad signature is never recorded"
        );
    }

    #[test]
    fn the_checker_skips_signatures_verified_before() {
        let checker = SignatureChecker::new(Arc::new(Mutex::new(VerifiedSignatures::new(100))));
        let txs: Vec<Transaction> = (0..3).map(signed).collect();
        assert_eq!(checker.check(&txs), None);
        let before = crypto::tx_verifications();
        assert_eq!(checker.check(&txs), None);
        // Other tests of this binary may verify meanwhile: the counter is global. This
        // thread's three repeats must not have added three checks of their own.
        let again = crypto::tx_verifications() - before;
        assert!(
            !(3..=1_000).contains(&again),
            "{again} checks for verified signatures"
        );
    }
}
