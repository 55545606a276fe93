//! When this node first saw each recent transaction, remembered after it leaves the mempool
//! (the explorer shows it for confirmed transactions). Bounded: the oldest entries are
//! forgotten first. The map is a persistent collection, so the chain thread can publish it in
//! every snapshot at O(1) cost.

use std::collections::VecDeque;

use peerchain_ledger::Hash;

/// The bounded first-seen memory.
#[derive(Debug)]
pub struct FirstSeen {
    map: imbl::HashMap<Hash, u64>,
    order: VecDeque<Hash>,
    max: usize,
}

impl FirstSeen {
    /// Remembers at most `max` transactions.
    pub fn new(max: usize) -> Self {
        FirstSeen {
            map: imbl::HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Records `txid` first seen at `ms` (a later sighting changes nothing).
    pub fn record(&mut self, txid: Hash, ms: u64) {
        if self.map.contains_key(&txid) {
            return;
        }
        while self.order.len() >= self.max {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(txid, ms);
        self.order.push_back(txid);
    }

    /// A snapshot of the map (O(1)).
    pub fn snapshot(&self) -> imbl::HashMap<Hash, u64> {
        self.map.clone()
    }

    /// Transactions remembered.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sighting_wins_and_the_oldest_are_forgotten() {
        let mut seen = FirstSeen::new(2);
        let (a, b, c) = (Hash([1; 32]), Hash([2; 32]), Hash([3; 32]));
        seen.record(a, 10);
        seen.record(a, 99);
        let before = seen.snapshot();
        seen.record(b, 20);
        seen.record(c, 30);
        let now = seen.snapshot();
        assert_eq!(now.get(&a), None, "oldest forgotten");
        assert_eq!(now.get(&b), Some(&20));
        assert_eq!(now.get(&c), Some(&30));
        assert_eq!(before.get(&a), Some(&10), "a snapshot does not change");
        assert_eq!(seen.len(), 2);
    }
}
