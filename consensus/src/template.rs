//! Block assembly: a block template from the mempool ([`build_template`], or a
//! [`TemplateBuilder`] that follows the mempool while the tip stays), and [`solve`] for "mine
//! now" (tests and the admin API). Pure functions of the chain: no threads, no clock; the caller passes the
//! time. The background mining threads live in the node (`peerchain::miner`).

use peerchain_ledger::mempool::Selection;
use peerchain_ledger::merkle::MerkleBuilder;
use peerchain_ledger::{Address, Block, BlockHeader, Hash, Transaction};

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
    Ok(TemplateBuilder::new(chain, miner, now_ms)?.into_template())
}

/// A template kept in step with a busy mempool while the tip stays: [`TemplateBuilder::extend`]
/// appends the transactions admitted since, instead of choosing every transaction again
/// (`Mempool::extend_selection`). A new tip needs a new builder.
#[derive(Debug, Clone)]
pub struct TemplateBuilder {
    header: BlockHeader,
    selection: Selection,
    /// The selection's Merkle tree, grown with it.
    tree: MerkleBuilder,
    /// The earliest valid timestamp: one past the parent's median time past.
    earliest_ms: u64,
}

impl TemplateBuilder {
    /// What [`build_template`] builds, ready to be extended.
    pub fn new(chain: &Chain, miner: Address, now_ms: u64) -> Result<Self, ChainError> {
        let tip = chain.tip();
        let parent = chain.tip_header().clone();
        let selection = chain.start_selection()?;
        let tree = MerkleBuilder::from_leaves(selection.txids());
        let target = chain
            .next_target_after(&tip)
            .ok_or(ChainError::UnknownBlock(tip))?;
        let earliest_ms = chain.median_time_past(&tip).saturating_add(1);
        let timestamp_ms = now_ms.max(earliest_ms);
        Ok(TemplateBuilder {
            header: BlockHeader {
                version: 1,
                // Saturates like rule 1's `expected` height: a tip at u64::MAX has no valid child.
                height: parent.height.saturating_add(1),
                prev_hash: tip,
                tx_root: tree.root(),
                timestamp_ms,
                target,
                nonce: 0,
                miner,
            },
            selection,
            tree,
            earliest_ms,
        })
    }

    /// The block this template extends.
    pub fn parent(&self) -> Hash {
        self.header.prev_hash
    }

    /// Transactions in the template.
    pub fn len(&self) -> usize {
        self.selection.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.selection.is_empty()
    }

    /// Appends the transactions of `admitted` (admitted to the mempool since the template was
    /// built or last extended) that are valid next for their sender, with their sender's later
    /// nonces, within `max_block_txs`; returns how many. When it appends any, the timestamp
    /// moves to `now_ms` (never below the earliest valid one). While `chain`'s tip is not
    /// [`TemplateBuilder::parent`] it appends nothing: the template needs rebuilding.
    pub fn extend<'a>(
        &mut self,
        chain: &Chain,
        admitted: impl IntoIterator<Item = &'a Hash>,
        now_ms: u64,
    ) -> Result<usize, ChainError> {
        if chain.tip() != self.parent() {
            return Ok(0);
        }
        let before = self.selection.len();
        let appended = chain.extend_selection(&mut self.selection, admitted)?;
        if appended > 0 {
            let new = self.selection.txids().get(before..).unwrap_or_default();
            self.tree.extend(new);
            self.header.tx_root = self.tree.root();
            self.header.timestamp_ms = now_ms.max(self.earliest_ms);
        }
        Ok(appended)
    }

    /// The template as it stands, without giving up the builder.
    pub fn template(&self) -> Template {
        Template {
            header: self.header.clone(),
            transactions: self.selection.transactions().to_vec(),
        }
    }

    /// The template, the builder given up (no copy of the transactions).
    pub fn into_template(self) -> Template {
        Template {
            header: self.header,
            transactions: self.selection.into_transactions(),
        }
    }
}

/// Solves a template on the calling thread, without a cap. Returns `None` only if every nonce
/// fails (practically never for real targets).
pub fn solve(template: Template) -> Option<Block> {
    let hasher = HeaderHasher::new(&template.header);
    let nonce = (0..=u64::MAX).find(|n| hasher.meets_target(*n))?;
    Some(template.into_block(nonce))
}
