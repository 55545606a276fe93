//! A bounded map that forgets its oldest entries half its capacity at a time:
//! [`Generations`]. The node's caches of recent txids use it (the verified-signature set,
//! `sigcache`, and the HTTP API's first-seen times).
//!
//! Entries go into the current generation; once it holds half the capacity (rounded up) it
//! becomes the previous one, and the old previous one is forgotten whole. So the newest half
//! of the capacity or more is held, never more than the capacity, and the oldest go first. A
//! queue of keys beside the map, for exact oldest-first eviction, took as much memory as the
//! map itself (docs/BENCHMARKS.md section 15).
//!
//! It must never: hold more than its capacity (capacity 0 holds nothing), or change the value
//! of a key it holds.

use std::hash::Hash;

use crate::fast_hash::FastMap;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Generations<K, V> {
    current: FastMap<K, V>,
    previous: FastMap<K, V>,
    capacity: usize,
}

impl<K, V> Default for Generations<K, V> {
    /// Capacity 0: holds nothing.
    fn default() -> Self {
        Generations {
            current: FastMap::default(),
            previous: FastMap::default(),
            capacity: 0,
        }
    }
}

impl<K: Hash + Eq, V> Generations<K, V> {
    /// An empty map holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Generations {
            current: FastMap::default(),
            previous: FastMap::default(),
            capacity,
        }
    }

    /// The value of `key`, if held.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Holds `key` with `value` unless it is held already (its value then stays).
    pub fn insert_new(&mut self, key: K, value: V) {
        if self.capacity == 0 || self.contains(&key) {
            return;
        }
        let generation_len = self.capacity.div_ceil(2);
        if self.current.len() >= generation_len {
            // Sized once, so a new generation never grows (and copies) as it fills.
            let fresh = FastMap::with_capacity_and_hasher(generation_len, Default::default());
            self.previous = std::mem::replace(&mut self.current, fresh);
        }
        if self.len() >= self.capacity {
            self.previous.clear();
        }
        self.current.insert(key, value);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.current.len().saturating_add(self.previous.len())
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn a_held_key_keeps_its_first_value() {
        let mut g = Generations::new(4);
        g.insert_new(1, "a");
        g.insert_new(2, "b");
        g.insert_new(3, "c"); // 1 and 2 are now the previous generation
        g.insert_new(1, "z");
        assert_eq!(g.get(&1), Some(&"a"));
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn at_most_the_capacity_is_held_and_the_newest_half_or_more_stays() {
        for capacity in [0usize, 1, 2, 3, 7, 100, 1_001] {
            let mut g = Generations::new(capacity);
            for n in 0..5_000usize {
                g.insert_new(n, n);
                assert!(g.len() <= capacity, "{} held of {capacity}", g.len());
                let newest = capacity / 2;
                let from = (n + 1).saturating_sub(newest);
                assert!(
                    (from..=n).all(|m| g.get(&m) == Some(&m)),
                    "capacity {capacity}: one of the newest {newest} dropped at {n}"
                );
            }
            assert!(!g.contains(&0));
            assert_eq!(g.contains(&4_999), capacity > 0);
        }
    }
}
