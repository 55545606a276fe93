//! The compact blocks whose gossip verdict waits for a fetch ([`CompactFetches`]), and what a
//! fetch of only the missing transactions asked for ([`Asked`], BIP 152's `getblocktxn`).
//!
//! It owns: the waiting messages, oldest first, at most `max` of them and each at most
//! [`FETCH_WAIT`]; for a message whose block's missing transactions were asked for, the
//! compact block and the positions asked, and the check that the answer fills exactly those
//! positions with the transactions the block names.
//!
//! It must never: read the clock (`now` is passed in); hold the transactions the mempool
//! already holds (they are looked up again when the answer comes, so a waiting block costs
//! its txids and positions, not a copy of its body); or build a block whose txids differ
//! from the compact block's.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use peerchain_ledger::{Block, Hash, Transaction};
use peerchain_network::{CompactBlock, MessageRef};

/// How long a gossip message waits for its fetched block. Gossipsub keeps a message about
/// 10 s (its `history_length`); after that a verdict forwards nothing.
pub(crate) const FETCH_WAIT: Duration = Duration::from_secs(10);

/// A compact block whose missing transactions were asked for: the block and the positions
/// (strictly increasing) the node lacked.
#[derive(Debug, Clone)]
pub(crate) struct Asked {
    /// The compact block.
    pub compact: CompactBlock,
    /// The positions asked for.
    pub missing: Vec<u32>,
}

/// Why an answer does not complete a compact block.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Incomplete {
    /// The peer sent a transaction the block does not name at that position: its fault.
    #[error("position {index} of block {block} is {expected}, the peer sent {got}")]
    WrongTransaction {
        /// The block.
        block: Hash,
        /// The position.
        index: u32,
        /// The txid the block names there.
        expected: Hash,
        /// The txid sent.
        got: Hash,
    },
    /// The peer sent another number of transactions than asked: its fault.
    #[error("asked for {asked} transactions of block {block}, the peer sent {sent}")]
    Count {
        /// The block.
        block: Hash,
        /// How many were asked for.
        asked: usize,
        /// How many came.
        sent: usize,
    },
    /// A transaction held when the block came has left the mempool since (mined or
    /// evicted): nobody's fault; the whole block is fetched instead.
    #[error("transaction {txid} of block {block} is no longer held")]
    NoLongerHeld {
        /// The block.
        block: Hash,
        /// The transaction.
        txid: Hash,
    },
}

impl Incomplete {
    /// Whether the peer that answered is at fault.
    pub(crate) fn is_peers_fault(&self) -> bool {
        !matches!(self, Incomplete::NoLongerHeld { .. })
    }
}

impl Asked {
    /// The positions of `compact`'s transactions that `held` lacks.
    pub(crate) fn missing_of(compact: &CompactBlock, held: impl Fn(&Hash) -> bool) -> Vec<u32> {
        compact
            .txids
            .iter()
            .enumerate()
            .filter(|(_, txid)| !held(txid))
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }

    /// The whole block: the `fetched` transactions at the positions asked for, in order, and
    /// the others from `held`. Each fetched transaction must be the one the block names.
    pub(crate) fn complete(
        self,
        fetched: Vec<Transaction>,
        mut held: impl FnMut(&Hash) -> Option<Transaction>,
    ) -> Result<Block, Incomplete> {
        let block = self.compact.hash();
        if fetched.len() != self.missing.len() {
            return Err(Incomplete::Count {
                block,
                asked: self.missing.len(),
                sent: fetched.len(),
            });
        }
        let mut fetched = self.missing.iter().copied().zip(fetched).peekable();
        let mut transactions = Vec::with_capacity(self.compact.txids.len());
        for (i, txid) in self.compact.txids.iter().enumerate() {
            let tx = match fetched.next_if(|(index, _)| *index as usize == i) {
                Some((index, tx)) => {
                    let got = tx.txid();
                    if got != *txid {
                        return Err(Incomplete::WrongTransaction {
                            block,
                            index,
                            expected: *txid,
                            got,
                        });
                    }
                    tx
                }
                None => held(txid).ok_or(Incomplete::NoLongerHeld { block, txid: *txid })?,
            };
            transactions.push(tx);
        }
        Ok(Block {
            header: self.compact.header,
            transactions,
        })
    }
}

/// One waiting message.
#[derive(Debug)]
struct Waiting<M> {
    hash: Hash,
    msg: M,
    since: Instant,
    asked: Option<Asked>,
}

/// Gossip messages of compact blocks whose block is being fetched, oldest first. Generic over
/// the message (`MessageRef` in the node) so that tests need no network.
#[derive(Debug)]
pub(crate) struct CompactFetches<M = MessageRef> {
    waiting: VecDeque<Waiting<M>>,
    max: usize,
}

impl<M> CompactFetches<M> {
    /// At most `max` messages wait at once.
    pub(crate) fn new(max: usize) -> Self {
        CompactFetches {
            waiting: VecDeque::new(),
            max,
        }
    }

    /// Whether the block `hash` is being fetched.
    pub(crate) fn is_waiting(&self, hash: &Hash) -> bool {
        self.waiting.iter().any(|w| w.hash == *hash)
    }

    /// `msg` waits for the block `hash` from `now` on (`asked`: only its missing
    /// transactions were asked for). Returns the messages that stop waiting to make room
    /// (expired ones, then the oldest at the bound), to be ignored.
    pub(crate) fn wait(
        &mut self,
        hash: Hash,
        msg: M,
        now: Instant,
        asked: Option<Asked>,
    ) -> Vec<M> {
        let mut dropped = self.expire(now);
        if self.max == 0 {
            dropped.push(msg);
            return dropped;
        }
        if self.waiting.len() >= self.max
            && let Some(oldest) = self.waiting.pop_front()
        {
            dropped.push(oldest.msg);
        }
        self.waiting.push_back(Waiting {
            hash,
            msg,
            since: now,
            asked,
        });
        dropped
    }

    /// What was asked for the block `hash`, taken (its message waits on for the block).
    pub(crate) fn take_asked(&mut self, hash: &Hash) -> Option<Asked> {
        self.waiting
            .iter_mut()
            .find(|w| w.hash == *hash)
            .and_then(|w| w.asked.take())
    }

    /// The message waiting for the block `hash`, which has now been judged.
    pub(crate) fn take(&mut self, hash: &Hash) -> Option<M> {
        let at = self.waiting.iter().position(|w| w.hash == *hash)?;
        self.waiting.remove(at).map(|w| w.msg)
    }

    /// The messages that waited [`FETCH_WAIT`] or longer at `now`, removed.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<M> {
        let mut out = Vec::new();
        while self
            .waiting
            .front()
            .is_some_and(|w| now.saturating_duration_since(w.since) >= FETCH_WAIT)
        {
            if let Some(w) = self.waiting.pop_front() {
                out.push(w.msg);
            }
        }
        out
    }

    /// How many messages wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerchain_ledger::crypto::Keypair;
    use peerchain_ledger::merkle::merkle_root;
    use peerchain_ledger::{Address, BlockHeader, Target, U256};
    use std::collections::HashMap;

    fn msg(n: u8) -> u8 {
        n
    }

    fn hash(n: u8) -> Hash {
        Hash([n; 32])
    }

    #[test]
    fn a_waiting_message_is_taken_once_its_block_is_judged() {
        let mut f = CompactFetches::new(4);
        let t = Instant::now();
        assert!(f.wait(hash(1), msg(1), t, None).is_empty());
        assert!(f.is_waiting(&hash(1)) && !f.is_waiting(&hash(2)));
        assert_eq!(f.take(&hash(2)), None);
        assert_eq!(f.take(&hash(1)), Some(msg(1)));
        assert_eq!(f.take(&hash(1)), None, "answered once");
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn waiting_messages_expire_and_are_bounded() {
        let mut f = CompactFetches::new(2);
        let t = Instant::now();
        assert!(f.wait(hash(1), msg(1), t, None).is_empty());
        let later = t + Duration::from_secs(1);
        assert!(f.wait(hash(2), msg(2), later, None).is_empty());
        // At the bound the oldest stops waiting.
        let t2 = t + Duration::from_secs(2);
        assert_eq!(f.wait(hash(3), msg(3), t2, None), vec![msg(1)]);
        assert_eq!(f.len(), 2);
        assert!(f.expire(t + FETCH_WAIT).is_empty(), "hash 2 waited 9 s");
        assert_eq!(
            f.expire(t + FETCH_WAIT + Duration::from_secs(2)),
            vec![msg(2), msg(3)]
        );
        assert_eq!(f.len(), 0);
        // A bound of 0 keeps nothing waiting.
        let mut none = CompactFetches::new(0);
        assert_eq!(none.wait(hash(1), msg(1), t, None), vec![msg(1)]);
        assert!(!none.is_waiting(&hash(1)));
    }

    fn transfers(n: u64) -> Vec<Transaction> {
        (0..n)
            .map(|i| Keypair::dev(1).sign_transfer(1, Address([2; 20]), 1, 1, i))
            .collect()
    }

    fn compact_of(txs: &[Transaction]) -> CompactBlock {
        let txids: Vec<Hash> = txs.iter().map(Transaction::txid).collect();
        let header = BlockHeader {
            version: 1,
            height: 1,
            prev_hash: hash(9),
            tx_root: merkle_root(&txids),
            timestamp_ms: 1,
            target: Target(U256::MAX),
            nonce: 0,
            miner: Address([3; 20]),
        };
        CompactBlock { header, txids }
    }

    #[test]
    fn the_asked_transactions_complete_the_block_in_order() {
        let txs = transfers(6);
        let compact = compact_of(&txs);
        let held: HashMap<Hash, Transaction> = [0, 2, 3, 5]
            .iter()
            .map(|&i| (txs[i].txid(), txs[i].clone()))
            .collect();
        let missing = Asked::missing_of(&compact, |t| held.contains_key(t));
        assert_eq!(missing, vec![1, 4]);
        let asked = Asked { compact, missing };
        let lookup = |t: &Hash| held.get(t).cloned();

        let block = asked
            .clone()
            .complete(vec![txs[1].clone(), txs[4].clone()], lookup)
            .expect("complete");
        assert_eq!(block.transactions, txs);

        let swapped = asked
            .clone()
            .complete(vec![txs[4].clone(), txs[1].clone()], lookup);
        assert!(
            matches!(swapped, Err(Incomplete::WrongTransaction { index: 1, .. })),
            "{swapped:?}"
        );
        let short = asked.clone().complete(vec![txs[1].clone()], lookup);
        assert!(matches!(
            short,
            Err(Incomplete::Count {
                asked: 2,
                sent: 1,
                ..
            })
        ));
        assert!(short.is_err_and(|e| e.is_peers_fault()));
        let gone = asked.complete(vec![txs[1].clone(), txs[4].clone()], |_| None);
        assert!(matches!(gone, Err(Incomplete::NoLongerHeld { .. })));
        assert!(
            gone.is_err_and(|e| !e.is_peers_fault()),
            "not the peer's fault"
        );
    }

    #[test]
    fn what_was_asked_is_taken_once_and_the_message_waits_on() {
        let txs = transfers(2);
        let compact = compact_of(&txs);
        let h = compact.hash();
        let mut f = CompactFetches::new(4);
        let asked = Asked {
            compact,
            missing: vec![1],
        };
        assert!(f.wait(h, msg(1), Instant::now(), Some(asked)).is_empty());
        assert!(f.take_asked(&h).is_some());
        assert!(f.take_asked(&h).is_none(), "taken once");
        assert!(f.is_waiting(&h), "the message waits for the block");
        assert_eq!(f.take(&h), Some(msg(1)));
    }
}
