//! Block assembly: a block template from the mempool, and [`solve`] for "mine now" (tests and
//! the admin API). Pure functions of the chain: no threads, no clock; the caller passes the
//! time. The background mining threads live in the node (`peerchain::miner`).

use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{Address, Block, BlockHeader, Transaction};

use crate::chain::{Chain, ChainError};
use crate::pow::HeaderHasher;

/// A block to be solved: header with nonce 0, and its transactions.
#[derive(Debug, Clone)]
pub struct Template {
    /// Header (nonce to be found).
    pub header: BlockHeader,
    /// Transactions in block order.
    pub transactions: Vec<Transaction>,
}

impl Template {
    /// The block with `nonce`.
    pub fn into_block(self, nonce: u64) -> Block {
        let mut header = self.header;
        header.nonce = nonce;
        Block {
            header,
            transactions: self.transactions,
        }
    }
}

/// Builds the template of the next block on the tip: mempool transactions by fee with nonces in
/// order (at most `max_block_txs`), the required target, and a timestamp after the median
/// time past.
pub fn build_template(chain: &Chain, miner: Address, now_ms: u64) -> Result<Template, ChainError> {
    let tip = chain.tip();
    let parent = chain.tip_header().clone();
    let transactions = chain.select_transactions()?;
    let txids: Vec<_> = transactions.iter().map(Transaction::txid).collect();
    let target = chain
        .next_target_after(&tip)
        .ok_or(ChainError::UnknownBlock(tip))?;
    let timestamp_ms = now_ms.max(chain.median_time_past(&tip).saturating_add(1));
    Ok(Template {
        header: BlockHeader {
            version: 1,
            // Saturates like rule 1's `expected` height: a tip at u64::MAX has no valid child.
            height: parent.height.saturating_add(1),
            prev_hash: tip,
            tx_root: merkle_root(&txids),
            timestamp_ms,
            target,
            nonce: 0,
            miner,
        },
        transactions,
    })
}

/// Solves a template on the calling thread, without a cap. Returns `None` only if every nonce
/// fails (practically never for real targets).
pub fn solve(template: Template) -> Option<Block> {
    let hasher = HeaderHasher::new(&template.header);
    let nonce = (0..=u64::MAX).find(|n| hasher.meets_target(*n))?;
    Some(template.into_block(nonce))
}
