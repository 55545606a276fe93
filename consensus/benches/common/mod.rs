//! What only the consensus benchmarks need (a module, not a bench target): sealed blocks with
//! valid transfers. The shared helpers (sizes, tables, genesis, signing) are in
//! `peerchain-testkit`.

use peerchain_consensus::pow::mine_range;
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{Address, Block};
use peerchain_testkit::transfers_par;

/// The next sealed block of `b` with `txs` transfers paying `miner`; advances the builder.
pub(crate) fn sealed_child(b: &mut ChainBuilder, txs: usize, salt: u64, miner: Address) -> Block {
    let batch = transfers_par(b, txs, salt);
    let mut block = b.push(batch, miner);
    block.header.nonce = mine_range(&block.header, 0, u64::MAX).expect("easy target");
    b.tip = block.header.clone();
    block
}
