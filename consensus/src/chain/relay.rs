//! Checks before a block is relayed ahead of its state application (BIP 152's high-bandwidth
//! mode): it extends the tip, its header and body hold and every signature checks. It must
//! never store or connect anything.

use peerchain_ledger::{Block, Hash, RebuiltBlock};

use super::{Chain, RelayableBlock};

impl Chain {
    /// Whether `block` may be relayed before its transactions are applied (BIP 152's
    /// high-bandwidth relay, docs/NETWORK.md section 3): it extends the active tip (whose
    /// state is applied and valid, as Bitcoin Core asks), its header passes rules 1-4 on it at
    /// `now_ms`, and its body passes rule 5 and every signature check. Signatures in the
    /// verified set are not checked again, and those checked here join it, so the import
    /// checks none twice. Only the state part of rules 6-7 is left to the import, so a block
    /// relayed early and found invalid there still cost its sender a block's proof of work
    /// at the right difficulty.
    pub fn relayable(&self, block: &Block, now_ms: u64) -> bool {
        self.relay_checks(block, None, now_ms).is_some()
    }

    /// [`Chain::relayable`], keeping the proof with the block for
    /// [`Chain::import_relayable`]; the block back when it is not relayable.
    // Both variants hold the same block, moved, not copied: boxing it would only allocate.
    #[allow(clippy::result_large_err)]
    pub fn prepare_relay(&self, block: Block, now_ms: u64) -> Result<RelayableBlock, Block> {
        match self.relay_checks(&block, None, now_ms) {
            Some(txids) => Ok(RelayableBlock { block, txids }),
            None => Err(block),
        }
    }

    /// [`Chain::prepare_relay`] for a block rebuilt from this node's mempool: its txids, as
    /// the mempool computed them on admission, are not computed again (about 1.3 ms of a
    /// 5,000-transfer block's 3.4 ms of checks).
    #[allow(clippy::result_large_err)]
    pub fn prepare_relay_rebuilt(
        &self,
        rebuilt: RebuiltBlock,
        now_ms: u64,
    ) -> Result<RelayableBlock, Block> {
        let (block, txids) = rebuilt.into_parts();
        match self.relay_checks(&block, Some(txids), now_ms) {
            Some(txids) => Ok(RelayableBlock { block, txids }),
            None => Err(block),
        }
    }

    /// The block's txids when [`Chain::relayable`] passes.
    fn relay_checks(
        &self,
        block: &Block,
        known_txids: Option<Vec<Hash>>,
        now_ms: u64,
    ) -> Option<Vec<Hash>> {
        let parent_hash = &block.header.prev_hash;
        if *parent_hash != self.tip {
            return None;
        }
        let parent = self.nodes.get(parent_hash)?;
        let expected = self.next_target_after(parent_hash)?;
        self.check_without_state(block, known_txids, &parent.header, expected, now_ms)
            .ok()
    }
}
