//! When this node first saw recent transactions, remembered after they leave the mempool (the
//! explorer shows it for confirmed transactions): [`FirstSeenTimes`].
//!
//! One map shared by the chain thread, which records, and the HTTP handlers, which read; a
//! reader sees the newest times, not a snapshot (a first-seen time never changes once
//! recorded, so there is nothing for a snapshot to keep consistent).
//!
//! Bounded by `peerchain_ledger::generations::Generations`: at most the bound is remembered,
//! the newest half of it or more, and the oldest are forgotten first. 180,000 transactions
//! take about 16 MiB of resident memory here, where the persistent map with a queue of txids
//! it replaces took 35 MiB.
//!
//! It must never: change a time once recorded, or hold more than its bound.

use std::sync::Arc;

use parking_lot::RwLock;
use peerchain_ledger::Hash;
use peerchain_ledger::generations::Generations;

/// See the module docs. Cloning shares the map.
#[derive(Debug, Clone)]
pub struct FirstSeenTimes {
    inner: Arc<RwLock<Generations<Hash, u64>>>,
}

impl FirstSeenTimes {
    /// Remembers at most `max` transactions (0: none), and the newest half of that or more
    /// once that many were recorded.
    pub fn new(max: usize) -> Self {
        FirstSeenTimes {
            inner: Arc::new(RwLock::new(Generations::new(max))),
        }
    }

    /// Records `txid` first seen at `ms` (a later sighting changes nothing).
    pub fn record(&self, txid: Hash, ms: u64) {
        self.inner.write().insert_new(txid, ms);
    }

    /// When `txid` was first seen, if it is remembered.
    pub fn get(&self, txid: &Hash) -> Option<u64> {
        self.inner.read().get(txid).copied()
    }

    /// Transactions remembered.
    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(i: u32) -> Hash {
        let mut h = [0; 32];
        h[..4].copy_from_slice(&i.to_le_bytes());
        Hash(h)
    }

    #[test]
    fn the_first_sighting_wins_and_every_clone_sees_it() {
        let seen = FirstSeenTimes::new(10);
        let reader = seen.clone();
        seen.record(txid(1), 10);
        seen.record(txid(1), 99);
        assert_eq!(reader.get(&txid(1)), Some(10));
        assert_eq!(reader.get(&txid(2)), None);
        assert_eq!(reader.len(), 1);
    }

    #[test]
    fn at_most_the_bound_is_remembered_and_the_oldest_go_first() {
        let seen = FirstSeenTimes::new(100);
        for i in 0..1_000 {
            seen.record(txid(i), u64::from(i));
            assert!(seen.len() <= 100, "{} remembered after {i}", seen.len());
        }
        // The newest 50 to 100 are remembered, nothing older.
        assert!(seen.len() >= 50);
        for i in 950..1_000 {
            assert_eq!(seen.get(&txid(i)), Some(u64::from(i)));
        }
        for i in 0..900 {
            assert_eq!(seen.get(&txid(i)), None, "{i} should be forgotten");
        }
    }

    #[test]
    fn tiny_bounds_hold_too() {
        for max in [0, 1, 2, 3] {
            let seen = FirstSeenTimes::new(max);
            for i in 0..10 {
                seen.record(txid(i), u64::from(i));
                assert!(
                    seen.len() <= max,
                    "{} remembered with a bound of {max}",
                    seen.len()
                );
            }
            assert_eq!(
                seen.get(&txid(9)).is_some(),
                max > 0,
                "the newest, bound {max}"
            );
        }
    }

    #[test]
    fn a_time_in_the_previous_generation_is_not_recorded_again() {
        let seen = FirstSeenTimes::new(4);
        seen.record(txid(1), 1);
        seen.record(txid(2), 2);
        seen.record(txid(3), 3); // 1 and 2 are now the previous generation
        seen.record(txid(1), 50);
        assert_eq!(seen.get(&txid(1)), Some(1));
        assert_eq!(seen.len(), 3);
    }
}
