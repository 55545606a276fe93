//! [`StoreReader::verify_consistency`]: every index and the accounts checked against a
//! replay of the main chain from genesis ([`Inconsistency`] names what disagrees). It must
//! never repair anything.

use crate::error::StoreError;
use crate::genesis::Genesis;
use crate::history;
use crate::state::{Account, StateDigest};
use crate::types::{Address, Block, Hash};

use super::StoreReader;

/// Why [`StoreReader::verify_consistency`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// Reading the store failed: the check could not finish (no verdict on the data).
    #[error("the consistency check could not read the store: {0}")]
    Store(#[from] StoreError),
    /// The store disagrees with a replay of the main chain.
    #[error("the store is inconsistent: {0}")]
    Disagreement(String),
}

impl StoreReader {
    /// Checks that the history rows of main-chain block `block` (`hash`, its `txids`) are
    /// stored as the block says; returns how many there are.
    fn check_history_rows(
        &self,
        block: &Block,
        txids: &[Hash],
        hash: &Hash,
    ) -> Result<usize, Inconsistency> {
        let height = block.header.height;
        let rows = history::block_rows(block, txids);
        for (address, row) in &rows {
            let stored = self
                .trees()?
                .history
                .get(history::row_key(address, height))
                .map_err(StoreError::from)?;
            if stored.as_deref() != Some(row.as_slice()) {
                return Err(Inconsistency::Disagreement(format!(
                    "history row of {address} at height {height} disagrees with block {hash}"
                )));
            }
        }
        Ok(rows.len())
    }

    /// Checks that the tip, the main index, the transaction and history indexes, the accounts
    /// and the state digest agree with a replay of the main chain from genesis. Returns the
    /// first disagreement, or the store error that stopped the check (an I/O failure is not
    /// an inconsistency).
    pub fn verify_consistency(&self, genesis: &Genesis) -> Result<(), Inconsistency> {
        let tip = self.tip()?;
        let tip_record = self
            .record(&tip)?
            .ok_or_else(|| Inconsistency::Disagreement(format!("tip {tip} has no index record")))?;
        let height = tip_record.header.height;
        let mut state = genesis.state();
        let mut expected_prev = Hash::ZERO;
        let mut expected_history = 0usize;
        let mut expected_txs = 0usize;
        for h in 0..=height {
            let hash = self.main_hash(h)?.ok_or_else(|| {
                Inconsistency::Disagreement(format!(
                    "main index has no block at height {h} (tip {height})"
                ))
            })?;
            let block = self.block(&hash)?.ok_or_else(|| {
                Inconsistency::Disagreement(format!("main block {hash} at {h} has no body"))
            })?;
            if block.header.prev_hash != expected_prev || block.header.height != h {
                return Err(Inconsistency::Disagreement(format!(
                    "main block {hash} at {h} does not link to {expected_prev}"
                )));
            }
            if h > 0 {
                let delta =
                    crate::state::apply_block(&state, genesis, &block).map_err(|e| match e {
                        crate::error::ApplyError::Store(e) => Inconsistency::Store(e),
                        e => Inconsistency::Disagreement(format!(
                            "replaying block {hash} at {h}: {e}"
                        )),
                    })?;
                for c in &delta.changes {
                    if c.after.is_empty() {
                        state.remove(&c.address);
                    } else {
                        state.insert(c.address, c.after);
                    }
                }
                let txids = block.txids();
                for (i, txid) in txids.iter().enumerate() {
                    let loc = self.tx_location(txid)?;
                    if loc.map(|l| (l.block_hash, l.index)) != Some((hash, i as u32)) {
                        return Err(Inconsistency::Disagreement(format!(
                            "txindex disagrees for {txid} in block {hash}"
                        )));
                    }
                    expected_txs = expected_txs.checked_add(1).ok_or_else(|| {
                        Inconsistency::Disagreement("transaction count overflows".into())
                    })?;
                }
                let rows = self.check_history_rows(&block, &txids, &hash)?;
                expected_history = expected_history.checked_add(rows).ok_or_else(|| {
                    Inconsistency::Disagreement("history row count overflows".into())
                })?;
            }
            let digest = self.digest_of(&hash)?;
            if digest != Some(StateDigest::of(&state)) {
                return Err(Inconsistency::Disagreement(format!(
                    "state digest of block {hash} at {h} disagrees with replay"
                )));
            }
            expected_prev = hash;
        }
        // Nothing can sit above height u64::MAX.
        let above = match height.checked_add(1) {
            Some(h) => self.main_hash(h)?,
            None => None,
        };
        if above.is_some() {
            return Err(Inconsistency::Disagreement(format!(
                "main index has a block above the tip height {height}"
            )));
        }
        if expected_prev != tip {
            return Err(Inconsistency::Disagreement(
                "tip is not the last main block".into(),
            ));
        }
        let mut stored = std::collections::BTreeMap::new();
        for item in self.trees()?.accounts.iter() {
            let (k, v) = item.map_err(StoreError::from)?;
            let address = Address::from_slice(&k).map_err(StoreError::from)?;
            stored.insert(address, Account::decode(&v).map_err(StoreError::from)?);
        }
        if stored != state {
            return Err(Inconsistency::Disagreement(format!(
                "accounts tree ({} accounts) disagrees with replay ({} accounts)",
                stored.len(),
                state.len()
            )));
        }
        let t = self.trees()?;
        if t.txindex.len().saturating_add(t.pending_txindex.len()) != expected_txs {
            return Err(Inconsistency::Disagreement(
                "txindex holds entries of blocks off the main chain".into(),
            ));
        }
        if self.trees()?.history.len() != expected_history {
            return Err(Inconsistency::Disagreement(format!(
                "history index has {} rows, replay expects {expected_history}",
                self.trees()?.history.len()
            )));
        }
        Ok(())
    }
}
