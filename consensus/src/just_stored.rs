//! Blocks an import has just checked and stored, kept in memory with their txids until fork
//! choice connects them, so that connecting one neither reads and decodes it back from the
//! store nor hashes its transactions again (for a 5,000-transfer block: a 740 KB read and
//! decode, and two passes of 5,000 txids).
//!
//! It owns that short-lived memory only; it must never be the only copy of a block (each is
//! stored before it is kept here) or hold more than [`MAX_JUST_STORED`] blocks. The chain
//! forgets every kept block when an import ends, however it ends, and when it reopens the
//! store. Fork choice falls back to the store for any block not found here.

use std::collections::VecDeque;

use peerchain_ledger::{Block, Hash};

/// Blocks kept at most; the oldest goes first. One import stores one block and the orphans
/// it unlocks, and the chain forgets them all when the import ends.
pub(crate) const MAX_JUST_STORED: usize = 8;

/// A checked block and its txids (`txids[i]` is `block.transactions[i].txid()`).
#[derive(Debug)]
pub(crate) struct StoredBlock {
    pub(crate) block: Block,
    pub(crate) txids: Vec<Hash>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct JustStored {
    blocks: VecDeque<(Hash, StoredBlock)>,
}

impl JustStored {
    /// Keeps `stored` under `hash`, letting the oldest go past [`MAX_JUST_STORED`].
    pub(crate) fn keep(&mut self, hash: Hash, stored: StoredBlock) {
        if self.blocks.len() >= MAX_JUST_STORED {
            self.blocks.pop_front();
        }
        self.blocks.push_back((hash, stored));
    }

    /// The block `hash`, if kept (it is kept no longer).
    pub(crate) fn take(&mut self, hash: &Hash) -> Option<StoredBlock> {
        let at = self.blocks.iter().position(|(h, _)| h == hash)?;
        self.blocks.remove(at).map(|(_, stored)| stored)
    }

    /// Forgets every block.
    pub(crate) fn clear(&mut self) {
        self.blocks.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use peerchain_ledger::{Address, BlockHeader, Target, U256};

    fn block(height: u64) -> (Hash, StoredBlock) {
        let header = BlockHeader {
            version: 1,
            height,
            prev_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            timestamp_ms: 0,
            target: Target(U256::one()),
            nonce: 0,
            miner: Address::ZERO,
        };
        let block = Block {
            header,
            transactions: Vec::new(),
        };
        (
            block.hash(),
            StoredBlock {
                block,
                txids: Vec::new(),
            },
        )
    }

    #[test]
    fn a_kept_block_is_taken_once() {
        let mut kept = JustStored::default();
        let (hash, stored) = block(1);
        kept.keep(hash, stored);
        assert_eq!(kept.take(&hash).unwrap().block.header.height, 1);
        assert!(kept.take(&hash).is_none());
    }

    #[test]
    fn the_oldest_goes_past_the_bound() {
        let mut kept = JustStored::default();
        let hashes: Vec<Hash> = (0..=MAX_JUST_STORED as u64)
            .map(|h| {
                let (hash, stored) = block(h);
                kept.keep(hash, stored);
                hash
            })
            .collect();
        assert!(kept.take(&hashes[0]).is_none(), "the oldest was let go");
        for hash in &hashes[1..] {
            assert!(kept.take(hash).is_some());
        }
        kept.keep(hashes[0], block(0).1);
        kept.clear();
        assert!(kept.take(&hashes[0]).is_none());
    }
}
