//! A block's transactions chosen from the pool ([`Selection`]): all at once by fee
//! ([`Mempool::select`]), then kept in step with the pool by appending what was admitted since
//! ([`Mempool::extend_selection`]), so a miner's template follows a busy pool without choosing
//! everything again.
//!
//! Every transaction chosen is valid against the state it was chosen on, applied in the
//! selection's order: a sender's nonces in order with no gap, each paid from the sender's
//! balance after the transfers before it. Credits from earlier transfers count for a sender
//! only once its account is read, never before, so a selection can leave out a transfer that
//! would be valid, never take one that is not.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::{Mempool, PoolEntry};
use crate::error::StoreError;
use crate::state::{Account, AccountReader, check_stateless, debit};
use crate::types::{Address, Hash, Transaction};

/// Transactions chosen for a block, in block order, with the accounts as they stand after
/// them. Valid only against the state it was started on (the caller starts a new one when its
/// tip changes).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    transactions: Vec<Transaction>,
    txids: Vec<Hash>,
    /// Accounts read so far, after the chosen transactions.
    accounts: HashMap<Address, Account>,
    /// Paid by chosen transactions to accounts not read yet; added when they are read.
    credits: HashMap<Address, u64>,
}

impl Selection {
    /// The chosen transactions, in block order.
    pub fn transactions(&self) -> &[Transaction] {
        &self.transactions
    }

    /// Their txids, in the same order.
    pub fn txids(&self) -> &[Hash] {
        &self.txids
    }

    /// How many were chosen.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// The transactions, without the bookkeeping.
    pub fn into_transactions(self) -> Vec<Transaction> {
        self.transactions
    }

    /// `sender`'s account after the chosen transactions, read from `state` the first time.
    fn account(
        &mut self,
        sender: Address,
        state: &impl AccountReader,
    ) -> Result<Account, StoreError> {
        if let Some(a) = self.accounts.get(&sender) {
            return Ok(*a);
        }
        let mut account = state.account(&sender)?;
        if let Some(credit) = self.credits.remove(&sender) {
            account.balance = account.balance.saturating_add(credit);
        }
        self.accounts.insert(sender, account);
        Ok(account)
    }

    /// Takes the pool's `entry` when it is valid next for its sender; whether it was.
    fn take(
        &mut self,
        entry: &PoolEntry,
        mempool: &Mempool,
        state: &impl AccountReader,
    ) -> Result<bool, StoreError> {
        let (tx, sender) = (&entry.tx, entry.sender);
        let account = self.account(sender, state)?;
        if tx.nonce != account.nonce || check_stateless(tx, &mempool.genesis).is_err() {
            return Ok(false);
        }
        let Ok(paid) = debit(tx, &account) else {
            return Ok(false);
        };
        self.accounts.insert(sender, paid);
        if tx.to != sender {
            match self.accounts.get_mut(&tx.to) {
                Some(r) => r.balance = r.balance.saturating_add(tx.amount),
                None => {
                    let c = self.credits.entry(tx.to).or_default();
                    *c = c.saturating_add(tx.amount);
                }
            }
        }
        self.transactions.push(tx.clone());
        self.txids.push(entry.txid);
        Ok(true)
    }
}

impl Mempool {
    /// Selects a block's transactions: highest fee first, each sender's nonces in order,
    /// every one valid against `state` applied in that order, at most `max_txs`.
    pub fn select(
        &self,
        max_txs: usize,
        state: &impl AccountReader,
    ) -> Result<Vec<Transaction>, StoreError> {
        Ok(self.start_selection(max_txs, state)?.into_transactions())
    }

    /// [`Mempool::select`], keeping what [`Mempool::extend_selection`] needs to append to it.
    pub fn start_selection(
        &self,
        max_txs: usize,
        state: &impl AccountReader,
    ) -> Result<Selection, StoreError> {
        let mut selection = Selection {
            transactions: Vec::with_capacity(max_txs.min(self.entries.len())),
            txids: Vec::with_capacity(max_txs.min(self.entries.len())),
            ..Selection::default()
        };
        // Heap of each sender's next candidate: (fee, Reverse(seq)) so ties go to first seen.
        let mut heap: BinaryHeap<(u64, Reverse<u64>, Address, u64)> = BinaryHeap::new();
        for (sender, m) in self.by_sender.iter() {
            let account = selection.account(*sender, state)?;
            if let Some(e) = m.get(&account.nonce).and_then(|id| self.get(id)) {
                heap.push((e.tx.fee, Reverse(e.seq), *sender, account.nonce));
            }
        }
        while let Some((_, _, sender, nonce)) = heap.pop() {
            if selection.len() >= max_txs {
                break;
            }
            let Some(e) = self.pending(&sender, nonce) else {
                continue;
            };
            if !selection.take(e, self, state)? {
                continue; // this sender stops here
            }
            if let Some(next) = nonce.checked_add(1).and_then(|n| self.pending(&sender, n)) {
                heap.push((next.tx.fee, Reverse(next.seq), sender, next.tx.nonce));
            }
        }
        Ok(selection)
    }

    /// Appends to `selection` the transactions of `admitted` (txids admitted since it was
    /// made or last extended) that are now valid next for their sender, each followed by
    /// that sender's later pending nonces, up to `max_txs` in all; returns how many were
    /// appended. Appended transactions come after the rest whatever their fee (the next
    /// [`Mempool::start_selection`] orders by fee again). `state` must be the one the
    /// selection was started on. A transaction of `admitted` no longer pending, or not next
    /// for its sender, is passed over: its predecessor's admission brings it in.
    pub fn extend_selection<'a>(
        &self,
        selection: &mut Selection,
        admitted: impl IntoIterator<Item = &'a Hash>,
        max_txs: usize,
        state: &impl AccountReader,
    ) -> Result<usize, StoreError> {
        let before = selection.len();
        for txid in admitted {
            let Some(mut e) = self.get(txid) else {
                continue;
            };
            while selection.len() < max_txs && selection.take(e, self, state)? {
                match e
                    .tx
                    .nonce
                    .checked_add(1)
                    .and_then(|n| self.pending(&e.sender, n))
                {
                    Some(next) => e = next,
                    None => break,
                }
            }
        }
        Ok(selection.len().saturating_sub(before))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::crypto::Keypair;
    use crate::genesis::Genesis;
    use crate::mempool::{Admitted, MempoolConfig};
    use crate::state::apply_block;
    use crate::testkit::ChainBuilder;
    use crate::types::TX_ENCODED_LEN;

    fn setup() -> (Genesis, BTreeMap<Address, Account>, Vec<Keypair>, Mempool) {
        let g = Genesis::dev(6, 1_000_000, 2000);
        let pool = Mempool::new(
            MempoolConfig {
                max_count: 30,
                max_bytes: 30 * TX_ENCODED_LEN,
                nonce_window: 16,
                expiry_ms: 1000,
                verified_signatures: 1000,
            },
            &g,
        );
        (
            g.clone(),
            g.state(),
            (0..6).map(Keypair::dev).collect(),
            pool,
        )
    }

    /// Whether `selection`'s transactions make a block valid on `state`.
    fn applies(g: &Genesis, state: &BTreeMap<Address, Account>, selection: &Selection) -> bool {
        let block =
            ChainBuilder::new(g.clone(), 6).push(selection.transactions.clone(), Address::ZERO);
        apply_block(state, g, &block).is_ok()
    }

    #[test]
    fn admitted_transactions_are_appended_each_followed_by_its_senders_next_nonces() {
        let (g, state, k, mut pool) = setup();
        let transfer =
            |who: usize, nonce| k[who].sign_transfer(g.chain_id, k[5].address(), 10, 1, nonce);
        pool.add(transfer(0, 0), &state, 0).expect("a0");
        let mut selection = pool.start_selection(100, &state).expect("start");
        assert_eq!(selection.len(), 1);
        let (a1, a2, b0) = (transfer(0, 1), transfer(0, 2), transfer(1, 0));
        for tx in [&a1, &a2, &b0] {
            pool.add(tx.clone(), &state, 0).expect("admitted");
        }
        // Passed in another order than admitted: a2 waits for a1, which brings it in.
        let admitted = [b0.txid(), a2.txid(), a1.txid()];
        let appended = pool
            .extend_selection(&mut selection, &admitted, 100, &state)
            .expect("extend");
        assert_eq!(appended, 3);
        assert_eq!(selection.txids()[1..], [b0.txid(), a1.txid(), a2.txid()]);
        assert!(applies(&g, &state, &selection));
        // Nothing new: nothing appended, and nothing taken twice.
        let again = pool.extend_selection(&mut selection, &admitted, 100, &state);
        assert_eq!(again.expect("extend"), 0);
        assert_eq!(selection.len(), 4);
    }

    #[test]
    fn an_extended_selection_stops_at_the_block_limit() {
        let (g, state, k, mut pool) = setup();
        let mut selection = pool.start_selection(3, &state).expect("start");
        let txs: Vec<_> = (0..5)
            .map(|n| k[0].sign_transfer(g.chain_id, k[1].address(), 1, 1, n))
            .collect();
        for tx in &txs {
            pool.add(tx.clone(), &state, 0).expect("admitted");
        }
        let ids: Vec<_> = txs.iter().map(Transaction::txid).collect();
        let appended = pool.extend_selection(&mut selection, &ids, 3, &state);
        assert_eq!(appended.expect("extend"), 3);
        assert_eq!(selection.txids(), &ids[..3]);
    }

    proptest! {
        /// Whatever was pending at the start and admitted since, in whatever order the
        /// admissions are passed, an extended selection is a valid block within its limit.
        #[test]
        fn an_extended_selection_is_always_a_valid_block(
            ops in proptest::collection::vec((0usize..6, 0u64..4, 0u64..300_000, 1u64..20), 2..60),
            split in 0usize..60,
            max in 1usize..40,
            reverse in any::<bool>(),
        ) {
            let (g, state, k, mut pool) = setup();
            let mut next = [0u64; 6];
            let mut selection = None;
            let mut admitted = Vec::new();
            for (i, (who, skew, amount, fee)) in ops.into_iter().enumerate() {
                if i == split {
                    selection = Some(pool.start_selection(max, &state).expect("start"));
                }
                // Mostly the right nonce, sometimes a replacement or a gap.
                let nonce = next[who].saturating_sub(skew % 2) + skew / 3;
                let tx = k[who].sign_transfer(g.chain_id, k[(who + 1) % 6].address(), amount, fee, nonce);
                let txid = tx.txid();
                if let Ok(Admitted::New { .. }) = pool.add(tx, &state, 0) {
                    next[who] = pool.next_nonce(&k[who].address(), 0);
                    admitted.push(txid);
                }
            }
            let mut selection = match selection {
                Some(s) => s,
                None => pool.start_selection(max, &state).expect("start"),
            };
            if reverse {
                admitted.reverse();
            }
            let before = selection.len();
            let appended = pool.extend_selection(&mut selection, &admitted, max, &state).expect("extend");
            prop_assert_eq!(selection.len(), before + appended);
            prop_assert!(selection.len() <= max);
            prop_assert_eq!(selection.transactions.iter().map(Transaction::txid).collect::<Vec<_>>(), selection.txids.clone());
            prop_assert!(applies(&g, &state, &selection));
        }
    }
}
