//! Builders for tests and benchmarks: a dev genesis and chains of blocks with valid transfers
//! between dev accounts. Proof of work is not solved here (the ledger does not check it);
//! consensus tests use an easy target and solve it themselves.
//!
//! Compiled only for this crate's unit tests and with the `testkit` feature, which other
//! crates enable in their `[dev-dependencies]` (directly or through `peerchain-testkit`): no
//! node build carries it.

use std::collections::BTreeMap;

use crate::crypto::Keypair;
use crate::genesis::Genesis;
use crate::merkle::merkle_root;
use crate::state::{Account, apply_block};
use crate::types::{Address, Block, BlockHeader, Hash, Transaction};

/// Applies a block's changes to an in-memory state (test replay).
pub fn apply_to_map(state: &mut BTreeMap<Address, Account>, genesis: &Genesis, block: &Block) {
    if let Ok(delta) = apply_block(state, genesis, block) {
        for c in delta.changes {
            if c.after.is_empty() {
                state.remove(&c.address);
            } else {
                state.insert(c.address, c.after);
            }
        }
    }
}

/// Builds a linear chain of valid blocks on top of a parent, tracking the state.
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    /// The network.
    pub genesis: Genesis,
    /// Dev keys that send transfers.
    pub keys: Vec<Keypair>,
    /// State after the last built block.
    pub state: BTreeMap<Address, Account>,
    /// The last built header.
    pub tip: BlockHeader,
    /// Spacing of timestamps.
    pub block_time_ms: u64,
}

impl ChainBuilder {
    /// A builder at genesis with `accounts` funded dev keys.
    pub fn new(genesis: Genesis, accounts: u32) -> Self {
        ChainBuilder {
            state: genesis.state(),
            tip: genesis.header(),
            block_time_ms: genesis.target_block_time_ms,
            keys: (0..accounts).map(Keypair::dev).collect(),
            genesis,
        }
    }

    /// A builder on top of `tip` whose senders' nonces come from `state`.
    pub fn at(
        genesis: Genesis,
        accounts: u32,
        tip: BlockHeader,
        state: BTreeMap<Address, Account>,
    ) -> Self {
        let mut b = Self::new(genesis, accounts);
        b.tip = tip;
        b.state = state;
        b
    }

    /// `n` valid transfers from the builder's keys against its current state
    /// (round-robin senders, consecutive nonces, fee 1 + i % 7).
    pub fn transfers(&self, n: usize, salt: u64) -> Vec<Transaction> {
        let mut nonces: BTreeMap<Address, u64> = BTreeMap::new();
        (0..n)
            .map(|i| {
                let k = &self.keys[i % self.keys.len()];
                let from = k.address();
                let nonce = nonces
                    .entry(from)
                    .or_insert_with(|| self.state.get(&from).map_or(0, |a| a.nonce));
                let to = self.keys[(i + 1 + salt as usize) % self.keys.len()].address();
                let tx = k.sign_transfer(
                    self.genesis.chain_id,
                    to,
                    1 + (salt + i as u64) % 100,
                    1 + (i as u64 % 7),
                    *nonce,
                );
                *nonce += 1;
                tx
            })
            .collect()
    }

    /// A header on top of `parent` for `txs` (target copied from the parent; nonce 0).
    pub fn header_for(
        parent: &BlockHeader,
        txs: &[Transaction],
        miner: Address,
        time_ms: u64,
    ) -> BlockHeader {
        let txids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
        BlockHeader {
            version: 1,
            height: parent.height + 1,
            prev_hash: parent.hash(),
            tx_root: merkle_root(&txids),
            timestamp_ms: parent.timestamp_ms + time_ms,
            target: parent.target,
            nonce: 0,
            miner,
        }
    }

    /// Builds the next block with `txs` and advances the builder.
    pub fn push(&mut self, txs: Vec<Transaction>, miner: Address) -> Block {
        let header = Self::header_for(&self.tip, &txs, miner, self.block_time_ms);
        let block = Block {
            header,
            transactions: txs,
        };
        apply_to_map(&mut self.state, &self.genesis, &block);
        self.tip = block.header.clone();
        block
    }

    /// Builds the next block with `n` generated transfers.
    pub fn push_transfers(&mut self, n: usize, salt: u64) -> Block {
        let txs = self.transfers(n, salt);
        let miner = Address([salt as u8; 20]);
        self.push(txs, miner)
    }
}

/// Extends `store`'s main chain by one block of `n` transfers between the first `accounts`
/// dev keys (their nonces read from the store), as the chain would: body, record, connect.
/// Returns the block, or the store error that stopped it. Panics if the built block is
/// invalid (a bug in the builder, not a store failure).
pub fn connect_transfer_block(
    store: &crate::store::Store,
    genesis: &Genesis,
    accounts: u32,
    n: usize,
    salt: u64,
) -> Result<Block, crate::error::StoreError> {
    use crate::state::AccountReader;
    use crate::store::{BlockRecord, BlockStatus};
    let tip = store.tip_record()?;
    let mut state = BTreeMap::new();
    for i in 0..accounts {
        let a = Keypair::dev(i).address();
        state.insert(a, store.account(&a)?);
    }
    let mut b = ChainBuilder::at(genesis.clone(), accounts, tip.header.clone(), state);
    let block = b.push_transfers(n, salt);
    #[allow(clippy::expect_used, reason = "test builder: its blocks are valid")]
    let delta = apply_block(store, genesis, &block).expect("the builder makes valid blocks");
    let record = BlockRecord {
        header: block.header.clone(),
        total_work: tip.total_work.saturating_add(block.header.target.work()),
        status: BlockStatus::Valid,
        seq: store.next_seq()?,
    };
    store.put_block(&block, &record)?;
    store.connect_block(&block, &delta)?;
    Ok(block)
}
