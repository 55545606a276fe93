//! Signatures verified once per node: the [`VerifiedSignatures`] set.
//!
//! A txid is `SHA-256(signing message ‖ signature)` (SPEC section 2), so it commits to every
//! byte the signature check reads: a transaction whose txid is in the set carries exactly the
//! bytes that passed `crypto::verify_transaction` before, and skipping the check accepts
//! exactly the same set of transactions. Mempool admission fills it; block validation
//! consults it and adds what it verified itself, so a block whose transactions a node already
//! holds costs no signature check, and neither does a block connected again after a reorg.
//!
//! It must never: hold a txid whose signature did not verify; or hold more than its capacity
//! (the oldest entry is dropped first; capacity 0 keeps nothing, the behaviour before it
//! existed).

use std::collections::{HashSet, VecDeque};

use crate::types::Hash;

/// See the module docs.
#[derive(Debug, Clone, Default)]
pub struct VerifiedSignatures {
    set: HashSet<Hash>,
    order: VecDeque<Hash>,
    capacity: usize,
}

impl VerifiedSignatures {
    /// An empty set holding at most `capacity` txids.
    pub fn new(capacity: usize) -> Self {
        VerifiedSignatures {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Whether the signature of the transaction `txid` verified here before.
    pub fn contains(&self, txid: &Hash) -> bool {
        self.set.contains(txid)
    }

    /// Records that the signature of `txid` verified (call only after it did).
    pub fn insert(&mut self, txid: Hash) {
        if self.capacity == 0 || !self.set.insert(txid) {
            return;
        }
        self.order.push_back(txid);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// Txids held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

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
    fn capacity_zero_keeps_nothing() {
        let mut v = VerifiedSignatures::new(0);
        v.insert(h(1));
        assert!(v.is_empty() && !v.contains(&h(1)));
    }
}
