//! Proof of work: block work and a fast header hasher for mining.
//!
//! The 144-byte header spans three SHA-256 blocks; the first 64 bytes (version, height,
//! prev_hash and the start of tx_root) do not depend on the nonce, so [`HeaderHasher`] hashes
//! them once and each attempt only compresses the remaining 80 bytes plus padding.

use peerchain_ledger::types::HEADER_LEN;
use peerchain_ledger::{BlockHeader, Hash, Target, U256};
use sha2::{Digest, Sha256};

/// Length of the nonce-independent prefix hashed once per header.
const PREFIX_LEN: usize = 64;
/// Offset of the nonce (u64, little-endian) in the header encoding.
const NONCE_OFFSET: usize = 116;
/// Offset of the nonce inside the tail that follows the prefix.
const TAIL_NONCE: usize = NONCE_OFFSET - PREFIX_LEN;

/// Work of a block with `target`: `floor(2^256 / (target + 1))` (SPEC section 3).
pub fn block_work(target: &Target) -> U256 {
    target.work()
}

/// Hashes one header template with many nonces, reusing the SHA-256 state of its first 64 bytes.
#[derive(Clone, Debug)]
pub struct HeaderHasher {
    prefix: Sha256,
    tail: [u8; HEADER_LEN - PREFIX_LEN],
    target: Target,
}

impl HeaderHasher {
    /// Precomputes the hash state of `header`'s first 64 bytes; its nonce is ignored.
    pub fn new(header: &BlockHeader) -> Self {
        let bytes = header.encode();
        let mut prefix = Sha256::new();
        prefix.update(&bytes[..PREFIX_LEN]);
        let mut tail = [0u8; HEADER_LEN - PREFIX_LEN];
        tail.copy_from_slice(&bytes[PREFIX_LEN..]);
        HeaderHasher {
            prefix,
            tail,
            target: header.target,
        }
    }

    /// The block hash of the template with `nonce`: equal to `header.hash()` with that nonce.
    pub fn hash_with_nonce(&self, nonce: u64) -> Hash {
        let mut tail = self.tail;
        tail[TAIL_NONCE..TAIL_NONCE + 8].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.prefix.clone();
        state.update(tail);
        Hash(state.finalize().into())
    }

    /// Whether the template with `nonce` meets its own target.
    pub fn meets_target(&self, nonce: u64) -> bool {
        self.target.is_met_by(&self.hash_with_nonce(nonce))
    }
}

/// The first nonce in `start .. start + count` (stopping at `u64::MAX`) whose header hash meets
/// `header.target`, or `None` when none does.
pub fn mine_range(header: &BlockHeader, start: u64, count: u64) -> Option<u64> {
    let hasher = HeaderHasher::new(header);
    (0..count)
        .map_while(|i| start.checked_add(i))
        .find(|&nonce| hasher.meets_target(nonce))
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
    use peerchain_ledger::{Address, Genesis};
    use proptest::prelude::*;

    fn template(target: Target) -> BlockHeader {
        BlockHeader {
            version: 1,
            height: 42,
            prev_hash: Hash([7u8; 32]),
            tx_root: Hash([9u8; 32]),
            timestamp_ms: 1_767_225_600_123,
            target,
            nonce: 0xdead_beef,
            miner: Address([3u8; 20]),
        }
    }

    #[test]
    fn work_matches_spec_vector() {
        let g = Genesis::dev(1, 1, 2000);
        assert_eq!(block_work(&g.initial_target), U256::from(1_048_576u64));
        assert_eq!(block_work(&Target(U256::MAX)), U256::one());
    }

    #[test]
    fn hasher_equals_header_hash() {
        let mut header = template(Target(U256::MAX >> 20));
        let hasher = HeaderHasher::new(&header);
        let nonces = (0..2000u64).chain([u64::MAX, u64::MAX - 1, 1 << 63, 0x0102_0304_0506_0708]);
        for nonce in nonces {
            header.nonce = nonce;
            assert_eq!(
                hasher.hash_with_nonce(nonce),
                header.hash(),
                "nonce {nonce}"
            );
        }
    }

    #[test]
    fn mine_range_finds_first_valid_nonce() {
        let mut header = template(Target(U256::MAX >> 6));
        let found = mine_range(&header, 0, 100_000).expect("1 in 64 hashes qualifies");
        for nonce in 0..found {
            header.nonce = nonce;
            assert!(
                !header.target.is_met_by(&header.hash()),
                "{nonce} was earlier"
            );
        }
        header.nonce = found;
        assert!(header.target.is_met_by(&header.hash()));
        assert_eq!(mine_range(&header, found, 1), Some(found));
        assert_eq!(mine_range(&header, found + 1, 0), None);
        // Target 0 cannot be met (except by the all-zero hash); the range ends at u64::MAX.
        let impossible = template(Target(U256::zero()));
        assert_eq!(mine_range(&impossible, 0, 500), None);
        assert_eq!(mine_range(&impossible, u64::MAX - 2, 1000), None);
    }

    proptest! {
        #[test]
        fn hasher_matches_for_any_header(
            height in any::<u64>(),
            ts in any::<u64>(),
            nonce in any::<u64>(),
            seed in any::<u8>(),
            words in proptest::array::uniform4(any::<u64>()),
        ) {
            let mut header = template(Target(U256(words)));
            header.height = height;
            header.timestamp_ms = ts;
            header.tx_root = Hash([seed; 32]);
            let hasher = HeaderHasher::new(&header);
            header.nonce = nonce;
            prop_assert_eq!(hasher.hash_with_nonce(nonce), header.hash());
        }
    }
}
