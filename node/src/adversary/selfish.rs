//! `selfish[:DEPTH]`: selfish mining (Eyal and Sirer, "Majority is not enough", 2014). The
//! node mines on its own private branch and withholds what it finds; when the honest network
//! finds a block it releases just enough of the private branch to orphan it:
//! - lead 1 when an honest block arrives: release it (a race of equal branches);
//! - lead 2: release everything (the private branch wins by one block);
//! - lead above 2: release the private blocks up to the honest block's height;
//! - a block found while racing is released at once (the race is won).
//!
//! `DEPTH` bounds the withheld branch: at that many blocks everything is released.
//!
//! The private branch is this node's main chain (its miner builds on it), but the network
//! announces the last released block as the local tip, so honest peers see no reason to sync
//! it. A withheld block can still be fetched by a peer that asks for it by hash or syncs from
//! this node while behind: a measurement mode, not a hidden one.
//!
//! It must never: publish a block the node did not mine or that left its main chain; hold
//! more than `DEPTH` blocks.

use std::collections::VecDeque;

use peerchain_consensus::Chain;
use peerchain_ledger::{Block, Hash};
use peerchain_network::LocalTip;

/// Default withhold depth of `selfish`.
pub const DEFAULT_DEPTH: u32 = 8;

/// The selfish miner's state. See the module docs.
#[derive(Debug)]
pub(super) struct Selfish {
    depth: usize,
    /// Mined here and withheld, lowest first.
    private: VecDeque<Block>,
    /// Height of the best block the honest network is known to have.
    public_height: u64,
    /// A released branch is racing an honest one of equal length.
    racing: bool,
    /// The tip announced to peers while blocks are withheld.
    announced: Option<LocalTip>,
}

impl Selfish {
    pub(super) fn new(depth: u32, chain: &Chain) -> Self {
        Selfish {
            depth: usize::try_from(depth.max(1)).unwrap_or(usize::MAX),
            private: VecDeque::new(),
            public_height: chain.tip_header().height,
            racing: false,
            announced: None,
        }
    }

    /// The tip to announce, while blocks are withheld.
    pub(super) fn announced(&self) -> Option<LocalTip> {
        self.announced.filter(|_| !self.private.is_empty())
    }

    /// Blocks withheld now.
    #[cfg(test)]
    fn withheld(&self) -> usize {
        self.private.len()
    }

    /// A block mined here joined the main chain: withhold it, or return what to publish.
    pub(super) fn on_mined(&mut self, block: Block, chain: &Chain) -> Vec<Block> {
        self.forget_orphaned(chain);
        if self.private.is_empty() {
            // Peers keep seeing the tip this block was mined on, the best they know of.
            self.public_height = block.header.height.saturating_sub(1);
            self.announce(chain, block.header.prev_hash);
        }
        self.private.push_back(block);
        if self.racing || self.private.len() >= self.depth {
            self.racing = false;
            return self.release_up_to(u64::MAX, chain);
        }
        tracing::warn!(
            withheld = self.private.len(),
            public_height = self.public_height,
            "adversary: selfish miner withholds a block"
        );
        Vec::new()
    }

    /// A block of height `height` from the honest network was seen (stored or not). Returns
    /// the withheld blocks to publish in answer.
    pub(super) fn on_public_block(&mut self, height: u64, chain: &Chain) -> Vec<Block> {
        self.forget_orphaned(chain);
        if height <= self.public_height {
            return Vec::new();
        }
        self.public_height = height;
        let Some(private_tip) = self.private.back().map(|b| b.header.height) else {
            self.racing = false;
            return Vec::new();
        };
        if private_tip < height {
            // The honest chain overtook the private branch: it is lost.
            self.private.clear();
            self.racing = false;
            return Vec::new();
        }
        match private_tip - height {
            // Lead was 1: release it and race.
            0 => {
                self.racing = true;
                self.release_up_to(u64::MAX, chain)
            }
            // Lead was 2: release everything, the private branch wins.
            1 => self.release_up_to(u64::MAX, chain),
            // Further ahead: match the honest block.
            _ => self.release_up_to(height, chain),
        }
    }

    /// Takes the withheld blocks up to `height` (inclusive) for publishing.
    fn release_up_to(&mut self, height: u64, chain: &Chain) -> Vec<Block> {
        let mut out = Vec::new();
        while self
            .private
            .front()
            .is_some_and(|b| b.header.height <= height)
        {
            if let Some(b) = self.private.pop_front() {
                out.push(b);
            }
        }
        if let Some(last) = out.last() {
            self.public_height = self.public_height.max(last.header.height);
            self.announce(chain, last.hash());
            tracing::warn!(
                released = out.len(),
                withheld = self.private.len(),
                height = last.header.height,
                "adversary: selfish miner releases blocks"
            );
        }
        out
    }

    /// Announces the block `hash` as the local tip.
    fn announce(&mut self, chain: &Chain, hash: Hash) {
        if let Some((header, total_work, _)) = chain.block_info(&hash) {
            self.announced = Some(LocalTip {
                hash,
                height: header.height,
                total_work,
            });
        }
    }

    /// Drops withheld blocks that left the main chain (the honest chain won).
    fn forget_orphaned(&mut self, chain: &Chain) {
        if self.private.iter().any(|b| !chain.is_on_main(&b.hash())) {
            self.private.clear();
            self.racing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_consensus::{ChainConfig, build_template, solve};
    use peerchain_ledger::{Address, Genesis, Store, Target, U256};

    fn chain() -> Chain {
        let mut g = Genesis::dev(2, 1_000_000, 2000);
        g.initial_target = Target(U256::MAX >> 4);
        g.pow_limit = Target(U256::MAX >> 1);
        let store = Store::temporary(&g).expect("store");
        Chain::open(store, g, ChainConfig::default()).expect("chain")
    }

    /// Mines one block on `chain`'s tip and imports it.
    fn mine(chain: &mut Chain, now: &mut u64) -> Block {
        *now += 1000;
        let block = solve(build_template(chain, Address([5; 20]), *now).expect("t")).expect("s");
        chain.import(block.clone(), None, *now).expect("import");
        block
    }

    fn heights(blocks: &[Block]) -> Vec<u64> {
        blocks.iter().map(|b| b.header.height).collect()
    }

    #[test]
    fn withholds_then_releases_by_the_lead() {
        let mut c = chain();
        let mut now = c.genesis().timestamp_ms;
        let mut s = Selfish::new(8, &c);
        // Lead 2 then an honest block at height 1: release both (win).
        for _ in 0..2 {
            let b = mine(&mut c, &mut now);
            assert!(s.on_mined(b, &c).is_empty(), "withheld");
        }
        assert_eq!(s.withheld(), 2);
        assert_eq!(
            s.announced().map(|t| t.height),
            Some(0),
            "the public tip is announced"
        );
        assert_eq!(heights(&s.on_public_block(1, &c)), vec![1, 2]);
        assert_eq!(s.withheld(), 0);
        assert_eq!(s.announced(), None);
        // Lead 4 (heights 3 to 6) then honest height 3: match it.
        for _ in 0..4 {
            let b = mine(&mut c, &mut now);
            assert!(s.on_mined(b, &c).is_empty());
        }
        assert_eq!(heights(&s.on_public_block(3, &c)), vec![3]);
        assert_eq!(s.announced().map(|t| t.height), Some(3));
        // Lead 3 before honest height 4: match again.
        assert_eq!(heights(&s.on_public_block(4, &c)), vec![4]);
        // Lead 2 before honest height 5: release the rest, the branch wins.
        assert_eq!(heights(&s.on_public_block(5, &c)), vec![5, 6]);
        // Lead 1 then an honest block at the same height: release and race; the next block
        // found is released at once.
        let b = mine(&mut c, &mut now);
        assert!(s.on_mined(b, &c).is_empty());
        assert_eq!(heights(&s.on_public_block(7, &c)), vec![7]);
        let b = mine(&mut c, &mut now);
        assert_eq!(
            heights(&s.on_mined(b, &c)),
            vec![8],
            "racing: published at once"
        );
        // Old honest heights change nothing.
        assert!(s.on_public_block(5, &c).is_empty());
    }

    #[test]
    fn the_withhold_depth_bounds_the_private_branch() {
        let mut c = chain();
        let mut now = c.genesis().timestamp_ms;
        let mut s = Selfish::new(3, &c);
        let mut released = Vec::new();
        for _ in 0..7 {
            let b = mine(&mut c, &mut now);
            released.extend(s.on_mined(b, &c));
            assert!(s.withheld() < 3);
        }
        assert_eq!(heights(&released), vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(s.withheld(), 1);
    }

    #[test]
    fn an_overtaken_private_branch_is_dropped() {
        let mut c = chain();
        let mut now = c.genesis().timestamp_ms;
        let mut s = Selfish::new(8, &c);
        let b = mine(&mut c, &mut now);
        assert!(s.on_mined(b, &c).is_empty());
        // The honest network is at height 2 already.
        assert!(s.on_public_block(2, &c).is_empty());
        assert_eq!(s.withheld(), 0);
        assert_eq!(s.announced(), None);
    }
}
