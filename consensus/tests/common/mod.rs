//! Shared helpers for consensus tests: an easy-PoW genesis and sealed blocks on any parent.

#![allow(dead_code)]

use std::collections::BTreeMap;

use peerchain_consensus::pow::mine_range;
use peerchain_consensus::{Chain, ChainConfig};
use peerchain_ledger::testkit::ChainBuilder;
use peerchain_ledger::{
    Account, AccountReader, Address, Block, Genesis, Hash, Store, Target, Transaction, U256,
};

pub(crate) const ACCOUNTS: u32 = 6;

/// A dev genesis whose proof of work takes about two hashes.
pub(crate) fn easy_genesis() -> Genesis {
    let mut g = Genesis::dev(ACCOUNTS, 1_000_000_000, 2000);
    g.initial_target = Target(U256::MAX >> 1);
    g.pow_limit = Target(U256::MAX >> 1);
    g
}

/// A clock far enough ahead that no test block is from the future.
pub(crate) fn now(g: &Genesis) -> u64 {
    g.timestamp_ms + 1_000_000_000
}

pub(crate) fn new_chain(g: &Genesis) -> Chain {
    let store = Store::temporary(g).expect("store");
    Chain::open(store, g.clone(), ChainConfig::default()).expect("chain")
}

/// Solves the block's proof of work and makes it the builder's tip.
pub(crate) fn seal(b: &mut ChainBuilder, mut block: Block) -> Block {
    let nonce = mine_range(&block.header, 0, u64::MAX).expect("easy target");
    block.header.nonce = nonce;
    b.tip = block.header.clone();
    block
}

/// Tracks the state of every built block so children with valid transfers can be built on
/// any of them.
#[derive(Debug)]
pub(crate) struct Forest {
    pub genesis: Genesis,
    pub states: BTreeMap<Hash, ChainBuilder>,
}

impl Forest {
    pub(crate) fn new(g: &Genesis) -> Self {
        let b = ChainBuilder::new(g.clone(), ACCOUNTS);
        let mut states = BTreeMap::new();
        states.insert(g.hash(), b);
        Forest {
            genesis: g.clone(),
            states,
        }
    }

    /// A sealed child of `parent` with `txs` valid transfers; `salt` varies the content.
    pub(crate) fn child(&mut self, parent: &Hash, txs: usize, salt: u64) -> Block {
        let mut b = self.states.get(parent).expect("known parent").clone();
        let block = b.push_transfers(txs, salt);
        let block = seal(&mut b, block);
        self.states.insert(block.hash(), b);
        block
    }

    /// A sealed child of `parent` carrying exactly `txs` (valid or not).
    pub(crate) fn child_with(
        &mut self,
        parent: &Hash,
        txs: Vec<Transaction>,
        miner: Address,
    ) -> Block {
        let mut b = self.states.get(parent).expect("known parent").clone();
        let block = b.push(txs, miner);
        let block = seal(&mut b, block);
        self.states.insert(block.hash(), b);
        block
    }

    /// A chain of `n` children starting at `parent`.
    pub(crate) fn branch(&mut self, parent: &Hash, n: usize, txs: usize, salt: u64) -> Vec<Block> {
        let mut out: Vec<Block> = Vec::new();
        let mut p = *parent;
        for i in 0..n {
            let block = self.child(&p, txs, salt * 1000 + i as u64);
            p = block.hash();
            out.push(block);
        }
        out
    }

    pub(crate) fn state_of(&self, hash: &Hash) -> &BTreeMap<Address, Account> {
        &self.states.get(hash).expect("known").state
    }
}

/// The chain's accounts are those the forest computed for its tip, and the store agrees with
/// a replay of its main chain.
pub(crate) fn assert_state_matches(chain: &Chain, forest: &Forest) {
    let tip = chain.tip();
    for (address, account) in forest.state_of(&tip) {
        assert_eq!(
            chain.store().account(address).expect("read"),
            *account,
            "account {address}"
        );
    }
    chain
        .store()
        .verify_consistency(chain.genesis())
        .expect("store agrees with a replay of the main chain");
}
