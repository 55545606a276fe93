//! Gossiped transactions that arrived ahead of a nonce gap (gossip does not preserve order:
//! nonce n+1 may arrive before n). The mempool holds no gaps, so they wait here, bounded in
//! count and time, and are offered to the mempool again when their sender moves on.

use std::collections::{BTreeMap, HashMap};

use peerchain_ledger::{Address, Transaction};

/// The held transactions.
#[derive(Debug)]
pub struct GapQueue {
    by_sender: HashMap<Address, BTreeMap<u64, (Transaction, u64)>>,
    count: usize,
    max: usize,
    ttl_ms: u64,
}

impl GapQueue {
    /// A queue of at most `max` transactions, each kept at most `ttl_ms`.
    pub fn new(max: usize, ttl_ms: u64) -> Self {
        GapQueue {
            by_sender: HashMap::new(),
            count: 0,
            max,
            ttl_ms,
        }
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Holds `tx` (replacing one of the same sender and nonce); false when full.
    pub fn hold(&mut self, tx: Transaction, now_ms: u64) -> bool {
        let sender = tx.sender();
        let exists = self
            .by_sender
            .get(&sender)
            .is_some_and(|m| m.contains_key(&tx.nonce));
        if !exists && self.count >= self.max {
            return false;
        }
        if !exists {
            self.count += 1;
        }
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(tx.nonce, (tx, now_ms));
        true
    }

    /// Senders with held transactions.
    pub fn senders(&self) -> Vec<Address> {
        self.by_sender.keys().copied().collect()
    }

    /// The lowest held nonce of `sender`.
    pub fn first_nonce(&self, sender: &Address) -> Option<u64> {
        self.by_sender.get(sender)?.keys().next().copied()
    }

    /// Removes and returns every held transaction of `sender` with the time it was first
    /// held, in nonce order (hold them again with that time to keep the time limit honest).
    pub fn take(&mut self, sender: &Address) -> Vec<(Transaction, u64)> {
        let held = self.by_sender.remove(sender).unwrap_or_default();
        self.count -= held.len();
        held.into_values().collect()
    }

    /// Drops transactions held longer than the time limit.
    pub fn expire(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.ttl_ms);
        let mut dropped = 0;
        self.by_sender.retain(|_, m| {
            let before = m.len();
            m.retain(|_, (_, at)| *at >= cutoff);
            dropped += before - m.len();
            !m.is_empty()
        });
        self.count -= dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::crypto::Keypair;

    #[test]
    fn holds_in_nonce_order_bounded_and_expiring() {
        let k = Keypair::dev(0);
        let tx = |n| k.sign_transfer(1, Address::ZERO, 1, 1, n);
        let mut q = GapQueue::new(2, 1000);
        assert!(q.hold(tx(5), 0));
        assert!(q.hold(tx(3), 10));
        assert!(
            q.hold(tx(3), 20),
            "same nonce replaces, no extra room needed"
        );
        assert!(!q.hold(tx(7), 30), "full");
        assert_eq!(q.len(), 2);
        assert_eq!(q.first_nonce(&k.address()), Some(3));
        let nonces: Vec<u64> = q.take(&k.address()).iter().map(|(t, _)| t.nonce).collect();
        assert_eq!(nonces, vec![3, 5]);
        assert!(q.is_empty());
        q.hold(tx(1), 0);
        q.hold(tx(2), 2000);
        q.expire(2500);
        assert_eq!(q.len(), 1);
    }
}
