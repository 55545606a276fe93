//! `cheap-fork`: a side branch from an old main-chain block, mined and gossiped one block per
//! round, always lighter than the main chain (hostile peers, defect 2). When the next block
//! would bring the branch level with the tip, a new branch starts from a newer old block, so
//! the flood never stops and never becomes a majority attack.
//!
//! The branch lives in memory only (the last [`MEDIAN_TIME_SPAN`] headers, for the target and
//! the median time past); the node's own chain never sees it. Solving is capped per round, so
//! the chain thread is never held for long: on a hard network a round may publish nothing.

use std::collections::VecDeque;

use peerchain_consensus::Chain;
use peerchain_consensus::difficulty::{MEDIAN_TIME_SPAN, median_time_past, next_target};
use peerchain_consensus::pow::HeaderHasher;
use peerchain_ledger::merkle::merkle_root;
use peerchain_ledger::{Address, Block, BlockHeader, Hash, U256};

use crate::outbox::{NetCommand, NetOutbox};

/// How far below the tip a branch forks.
pub(super) const FORK_DEPTH: u64 = 6;
/// Nonces tried per round (a round is 200 ms apart).
const HASHES_PER_ROUND: u64 = 1 << 16;
/// The branch's miner address.
const MINER: Address = Address([0x42; 20]);

/// The branch being built. See the module docs.
#[derive(Debug, Default)]
pub(super) struct CheapFork {
    /// The last headers of the branch, the fork point's ancestry first (at most
    /// [`MEDIAN_TIME_SPAN`]).
    headers: VecDeque<BlockHeader>,
    /// Total work of the branch's last block.
    work: U256,
    /// Blocks of this branch so far.
    length: u64,
    /// The header being solved and the next nonce to try.
    solving: Option<(BlockHeader, u64)>,
}

impl CheapFork {
    /// One round: solves a little more of the next branch block and gossips it when found.
    /// Returns the block published, if any.
    pub(super) fn round(&mut self, chain: &Chain, outbox: &NetOutbox, now_ms: u64) -> Option<Hash> {
        if self.headers.is_empty() || self.solving.is_none() && !self.next_is_lighter(chain, now_ms)
        {
            self.restart(chain)?;
        }
        let (header, start) = match self.solving.take() {
            Some(s) => s,
            None => (self.next_header(chain, now_ms)?, 0),
        };
        let hasher = HeaderHasher::new(&header);
        let end = start.saturating_add(HASHES_PER_ROUND);
        let Some(nonce) = (start..end).find(|n| hasher.meets_target(*n)) else {
            self.solving = Some((header, end));
            return None;
        };
        let block = Block {
            header: BlockHeader { nonce, ..header },
            transactions: Vec::new(),
        };
        let hash = block.hash();
        self.work = self.work.saturating_add(block.header.target.work());
        self.length = self.length.saturating_add(1);
        self.push(block.header.clone());
        tracing::warn!(%hash, height = block.header.height, branch = self.length, "adversary: gossiping a cheap side-branch block");
        outbox.send(NetCommand::PublishBlock(Box::new(block)));
        Some(hash)
    }

    /// Starts a branch from the main-chain block [`FORK_DEPTH`] below the tip (genesis on a
    /// short chain), loading its ancestry.
    fn restart(&mut self, chain: &Chain) -> Option<()> {
        let tip_height = chain.tip_header().height;
        let fork_height = tip_height.saturating_sub(FORK_DEPTH);
        let fork = chain.store().main_hash(fork_height).ok().flatten()?;
        let (_, work, _) = chain.block_info(&fork)?;
        self.headers.clear();
        let mut cursor = Some(fork);
        while let Some(hash) = cursor
            && self.headers.len() < MEDIAN_TIME_SPAN
        {
            let (header, _, _) = chain.block_info(&hash)?;
            cursor = (header.height > 0).then_some(header.prev_hash);
            self.headers.push_front(header);
        }
        self.work = work;
        self.length = 0;
        self.solving = None;
        tracing::info!(fork_height, "adversary: a new cheap side branch");
        Some(())
    }

    /// Whether one more block keeps the branch lighter than the main chain.
    fn next_is_lighter(&self, chain: &Chain, now_ms: u64) -> bool {
        self.next_header(chain, now_ms)
            .is_some_and(|h| self.work.saturating_add(h.target.work()) < chain.tip_work())
    }

    /// The header of the next branch block (nonce 0).
    fn next_header(&self, chain: &Chain, now_ms: u64) -> Option<BlockHeader> {
        let parent = self.headers.back()?;
        let grandparent = self
            .headers
            .len()
            .checked_sub(2)
            .and_then(|i| self.headers.get(i));
        let genesis = chain.genesis();
        let stamps: Vec<u64> = self.headers.iter().map(|h| h.timestamp_ms).collect();
        Some(BlockHeader {
            version: 1,
            height: parent.height.checked_add(1)?,
            prev_hash: parent.hash(),
            tx_root: merkle_root(&[]),
            timestamp_ms: now_ms.max(median_time_past(&stamps).saturating_add(1)),
            target: next_target(parent, grandparent.filter(|_| parent.height > 0), genesis),
            nonce: 0,
            miner: MINER,
        })
    }

    fn push(&mut self, header: BlockHeader) {
        if self.headers.len() >= MEDIAN_TIME_SPAN {
            self.headers.pop_front();
        }
        self.headers.push_back(header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_consensus::{ChainConfig, Verdict, build_template, solve};
    use peerchain_ledger::{Genesis, Store, Target};

    fn easy_chain() -> Chain {
        let mut g = Genesis::dev(2, 1_000_000, 2000);
        g.initial_target = Target(U256::MAX >> 4);
        g.pow_limit = Target(U256::MAX >> 1);
        let store = Store::temporary(&g).expect("store");
        Chain::open(store, g, ChainConfig::default()).expect("chain")
    }

    #[test]
    fn branch_blocks_are_valid_lighter_and_never_overtake_the_tip() {
        let mut chain = easy_chain();
        let mut now = chain.genesis().timestamp_ms + 1_000;
        for _ in 0..10 {
            now += 1_000;
            let block =
                solve(build_template(&chain, Address([1; 20]), now).expect("t")).expect("s");
            chain.import(block, None, now).expect("import");
        }
        let tip = chain.tip();
        let (outbox, mut rx) = NetOutbox::new(1024);
        let mut fork = CheapFork::default();
        let mut published = Vec::new();
        for _ in 0..40 {
            now += 1_000;
            if let Some(hash) = fork.round(&chain, &outbox, now) {
                published.push(hash);
            }
        }
        assert!(published.len() >= 10, "a flood: {}", published.len());
        // Every block is valid: a node that requested it (sync) stores it on a side branch,
        // and the tip never moves.
        let mut stored = 0;
        while let Some(NetCommand::PublishBlock(block)) = rx.try_recv() {
            let hash = block.hash();
            let verdict = chain
                .import(*block, Some("adversary".into()), now)
                .expect("import");
            let verdict = &verdict.first().expect("a verdict").verdict;
            assert!(
                matches!(verdict, Verdict::Accepted { on_main: false }),
                "{hash}: {verdict:?}"
            );
            stored += 1;
        }
        assert_eq!(stored, published.len());
        assert_eq!(
            chain.tip(),
            tip,
            "a lighter branch never becomes the main chain"
        );
    }
}
