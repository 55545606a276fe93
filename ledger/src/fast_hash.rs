//! The hasher of the node's hot in-memory maps and sets, keyed by txids and addresses.
//!
//! std's default hasher, SipHash-1-3, took about a tenth of a receiving node's chain thread
//! per 5,000-transfer block in a profile of ten node processes (the mempool's lookups and
//! rebuild, the block's duplicate check, the verified-signature set; docs/BENCHMARKS.md
//! section 16). foldhash's quality hasher is several times faster on 20- and 32-byte keys
//! and, like std's, takes a random seed per process, so keys that collide in one process do
//! not collide in the next. foldhash does not claim SipHash's resistance to an attacker who
//! can observe the hasher's behaviour and adapt (HashDoS): txids are SHA-256 outputs that a
//! peer cannot choose cheaply, but addresses can be chosen freely, so the maps keyed by them
//! rely on the pool's bounds (`MempoolConfig`) as much as on the hasher.
//!
//! It must never hash anything that is stored or sent: its output differs from one process to
//! the next.

/// The random-seeded hasher builder of [`FastMap`], [`FastSet`] and [`PersistentMap`].
pub type FastState = foldhash::quality::RandomState;

/// A `HashMap` with [`FastState`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;

/// A `HashSet` with [`FastState`].
pub type FastSet<T> = std::collections::HashSet<T, FastState>;

/// A persistent (`imbl`) hash map with [`FastState`]: a clone is O(1) and shares structure.
pub type PersistentMap<K, V> =
    imbl::GenericHashMap<K, V, FastState, imbl::shared_ptr::DefaultSharedPtr>;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn each_map_gets_its_own_seed_and_keys_hash_consistently_within_one() {
        let key = [7u8; 32];
        let (a, b) = (FastState::default(), FastState::default());
        assert_eq!(a.hash_one(key), a.hash_one(key));
        // Per-instance seeds differ (a collision of two 64-bit hashes is not expected).
        assert_ne!(a.hash_one(key), b.hash_one(key));
        let mut map: FastMap<[u8; 32], u32> = FastMap::default();
        map.insert(key, 1);
        assert_eq!(map.get(&key), Some(&1));
        let mut persistent: PersistentMap<[u8; 32], u32> = PersistentMap::default();
        persistent.insert(key, 2);
        let snapshot = persistent.clone();
        persistent.remove(&key);
        assert_eq!(snapshot.get(&key), Some(&2), "a clone keeps its own view");
        assert!(persistent.is_empty());
    }
}
