//! What only the node benchmarks need (a module, not a bench target): a valid chain written
//! straight into a node's store. The shared helpers (sizes, figures, genesis, signing, the
//! random generator) are in `peerchain-testkit`.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use peerchain_consensus::difficulty::next_target;
use peerchain_consensus::pow::mine_range;
use peerchain_ledger::state::apply_block;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{
    Address, Block, BlockHeader, BlockRecord, BlockStatus, Genesis, Hash, Store, StoreConfig,
    Transaction,
};
use peerchain_testkit::{Transfers, fmt_duration};

/// What [`build_chain`] wrote.
#[derive(Debug)]
pub(crate) struct BuiltChain {
    /// The tip header.
    pub(crate) tip: BlockHeader,
    /// Blocks written.
    pub(crate) blocks: usize,
    /// Transactions written.
    pub(crate) txs: usize,
    /// Every txid written, in chain order.
    pub(crate) txids: Vec<Hash>,
    /// Time spent signing.
    pub(crate) signing: Duration,
    /// Time spent applying and committing (`apply_block`, `put_block`, `connect_block`).
    pub(crate) commit: Duration,
    /// Wall time of the whole build.
    pub(crate) total: Duration,
    /// Size of the store on disk.
    pub(crate) disk_bytes: u64,
}

/// Writes `blocks` valid blocks of `txs_per_block` transfers on top of genesis straight into a
/// new store at `path` (what the node opens as `<data dir>/chain`): every block has the target
/// the difficulty rule requires (timestamps exactly one block time apart), a solved proof of
/// work and valid signatures, so a node syncing from it validates it like any other chain.
/// The store is flushed and closed before returning.
pub(crate) fn build_chain(
    path: &Path,
    genesis: &Genesis,
    transfers: &mut Transfers,
    blocks: usize,
    txs_per_block: usize,
    progress_every: usize,
) -> anyhow::Result<BuiltChain> {
    let started = Instant::now();
    let config = StoreConfig {
        path: path.to_owned(),
        cache_mb: 64,
        sync_every_block: false,
    };
    let store = Store::open(&config, genesis)?;
    let mut parent = genesis.header();
    let mut grandparent: Option<BlockHeader> = None;
    let mut txids = Vec::with_capacity(blocks * txs_per_block);
    let (mut signing, mut commit) = (Duration::ZERO, Duration::ZERO);
    for b in 0..blocks {
        let t = Instant::now();
        let txs = transfers.sign_all(txs_per_block);
        signing += t.elapsed();
        let t = Instant::now();
        let miner = Address([0xB0 + (b % 16) as u8; 20]);
        let mut header =
            ChainBuilder::header_for(&parent, &txs, miner, genesis.target_block_time_ms);
        header.target = next_target(&parent, grandparent.as_ref(), genesis);
        header.nonce = mine_range(&header, 0, u64::MAX)
            .ok_or_else(|| anyhow::anyhow!("no nonce solves block {}", header.height))?;
        let block = Block {
            header,
            transactions: txs,
        };
        let delta = apply_block(&store, genesis, &block)?;
        let tip = store.tip_record()?;
        let record = BlockRecord {
            header: block.header.clone(),
            total_work: tip.total_work.saturating_add(block.header.target.work()),
            status: BlockStatus::Valid,
            seq: store.next_seq()?,
        };
        store.put_block(&block, &record)?;
        store.connect_block(&block, &delta)?;
        commit += t.elapsed();
        txids.extend(block.transactions.iter().map(Transaction::txid));
        grandparent = Some(std::mem::replace(&mut parent, block.header));
        if progress_every > 0 && (b + 1) % progress_every == 0 {
            println!(
                "  built {} / {blocks} blocks ({} transactions) in {}",
                b + 1,
                txids.len(),
                fmt_duration(started.elapsed())
            );
        }
    }
    store.flush()?;
    let disk_bytes = store.size_on_disk()?;
    drop(store);
    Ok(BuiltChain {
        tip: parent,
        blocks,
        txs: txids.len(),
        txids,
        signing,
        commit,
        total: started.elapsed(),
        disk_bytes,
    })
}
