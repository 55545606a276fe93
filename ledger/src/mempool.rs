//! The mempool: pending transactions admitted against the tip state plus the sender's earlier
//! pending transactions.
//!
//! Invariants (checked by `debug_check` in tests):
//! - Each sender's pending nonces are contiguous, starting at the sender's account nonce in
//!   the state the pool was last revalidated against, and fewer than `nonce_window`.
//! - The sender's balance covers the sum of `amount + fee` of all its pending transactions.
//! - Count and bytes stay within `max_count` and `max_bytes`; eviction takes the lowest fee
//!   among senders' *last* pending transactions, so it never leaves a nonce gap.
//!
//! Its indexes are persistent collections (`imbl`): cloning a pool costs O(1) and shares
//! structure, so the chain thread publishes a clone after every step and readers (the HTTP API)
//! query that snapshot without ever waiting for the chain thread.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use rayon::prelude::*;

use crate::crypto;
use crate::error::{StoreError, TxError};
use crate::fast_hash::{FastSet, PersistentMap};
use crate::genesis::Genesis;
use crate::sigcache::{SignatureChecker, VerifiedSignatures};
use crate::state::{AccountReader, check_stateless};
use crate::types::{Address, Block, BlockHeader, Hash, TX_ENCODED_LEN, Transaction};

mod selection;
pub use selection::Selection;

/// Bounds and policy of the mempool.
#[derive(Clone, Debug)]
pub struct MempoolConfig {
    /// Most transactions held.
    pub max_count: usize,
    /// Most encoded bytes held.
    pub max_bytes: usize,
    /// Most pending transactions per sender (nonces `account nonce .. + window`).
    pub nonce_window: u64,
    /// Entries older than this are dropped by [`Mempool::expire`].
    pub expiry_ms: u64,
    /// Txids whose signatures verified, remembered so block validation skips them
    /// (`sigcache.rs`); 0 remembers none.
    pub verified_signatures: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_count: 100_000,
            max_bytes: 100_000 * TX_ENCODED_LEN,
            nonce_window: 1_000,
            expiry_ms: 3 * 60 * 60 * 1000,
            verified_signatures: 200_000,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Invalid against the state (codes of SPEC section 5).
    #[error(transparent)]
    Invalid(#[from] TxError),
    /// Same sender and nonce pending with a fee that the new one does not beat by 10%.
    #[error("replacement fee {fee} is below {required} (the pending fee {pending_fee} plus 10%)")]
    ReplacementUnderpriced {
        /// Offered fee.
        fee: u64,
        /// Pending transaction's fee.
        pending_fee: u64,
        /// Smallest fee accepted.
        required: u64,
    },
    /// Pool full and nothing cheaper to evict.
    #[error(
        "mempool is full ({count} transactions, {bytes} bytes) and holds nothing cheaper than fee {fee}"
    )]
    Full {
        /// Transactions held.
        count: usize,
        /// Bytes held.
        bytes: usize,
        /// Offered fee.
        fee: u64,
    },
    /// Reading the state failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl MempoolError {
    /// The snake_case code of SPEC section 5.
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Invalid(e) => e.code(),
            MempoolError::ReplacementUnderpriced { .. } => "replacement_underpriced",
            MempoolError::Full { .. } => "mempool_full",
            MempoolError::Store(_) => "store_unavailable",
        }
    }
}

/// Result of a successful admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// Newly added.
    New {
        /// Its id.
        txid: Hash,
        /// Transactions evicted (or replaced) to make room.
        evicted: Vec<Hash>,
    },
    /// Already pending; nothing changed.
    AlreadyPending(Hash),
}

/// A pending transaction with its metadata.
#[derive(Debug, Clone)]
pub struct PoolEntry {
    /// The transaction.
    pub tx: Transaction,
    /// Its id.
    pub txid: Hash,
    /// Its sender.
    pub sender: Address,
    /// When this node first saw it (ms since the Unix epoch).
    pub first_seen_ms: u64,
    seq: u64,
}

/// A block put together from pending transactions ([`Mempool::rebuild`]), with its txids.
/// Each txid is the one the pool computed for the transaction at the same position when it
/// admitted it (entries are held under their own txid), so block validation need not hash
/// the transactions again. Only the pool makes one.
#[derive(Debug, Clone)]
pub struct RebuiltBlock {
    block: Block,
    txids: Vec<Hash>,
}

impl RebuiltBlock {
    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block and its txids, in block order.
    pub fn into_parts(self) -> (Block, Vec<Hash>) {
        (self.block, self.txids)
    }
}

/// A position in the fee order of the pool (for paging). An entry that left the pool since the
/// cursor was issued does not disturb the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeCursor {
    /// Fee of the last entry shown.
    pub fee: u64,
    /// Its admission sequence number.
    pub seq: u64,
    /// Its id.
    pub txid: Hash,
}

impl FeeCursor {
    /// `fee.seq.txid`, for an opaque API cursor.
    pub fn to_text(&self) -> String {
        format!("{}.{}.{}", self.fee, self.seq, self.txid.to_hex())
    }

    /// Parses [`FeeCursor::to_text`]'s output.
    pub fn from_text(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let fee = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let txid = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(FeeCursor { fee, seq, txid })
    }
}

impl PoolEntry {
    /// The cursor just after this entry in the fee order.
    pub fn fee_cursor(&self) -> FeeCursor {
        FeeCursor {
            fee: self.tx.fee,
            seq: self.seq,
            txid: self.txid,
        }
    }
}

/// The pool. The chain service owns the one that changes; a clone (O(1)) is a consistent,
/// read-only snapshot.
#[derive(Debug, Clone)]
pub struct Mempool {
    config: MempoolConfig,
    chain_id: u64,
    min_fee: u64,
    entries: PersistentMap<Hash, Arc<PoolEntry>>,
    by_sender: PersistentMap<Address, imbl::OrdMap<u64, Hash>>,
    /// (fee, Reverse(seq), txid): iteration from the front gives the cheapest, newest first.
    by_fee: imbl::OrdSet<(u64, Reverse<u64>, Hash)>,
    /// Every address a pending transaction sends from or pays to: (Reverse(seq), txid), so
    /// iteration from the front gives the newest first.
    by_address: PersistentMap<Address, imbl::OrdSet<(Reverse<u64>, Hash)>>,
    /// Each sender's last pending transaction in fee order (the only ones eviction may take,
    /// so it never leaves a nonce gap), with the key each sender has there.
    tails: imbl::OrdSet<(u64, Reverse<u64>, Hash)>,
    tail_of: PersistentMap<Address, (u64, Reverse<u64>, Hash)>,
    /// Each sender's pending cost (`amount + fee` summed), kept with `by_sender` so a funds
    /// check costs O(1) however many transactions the sender has pending.
    cost_of: PersistentMap<Address, u128>,
    bytes: usize,
    next_seq: u64,
    genesis: Arc<Genesis>,
    /// Txids whose signatures verified (`sigcache.rs`). Shared by the clones the node
    /// publishes to readers (which never use it), so a clone stays O(1).
    verified: Arc<Mutex<VerifiedSignatures>>,
}

impl Mempool {
    /// An empty pool for the network of `genesis`.
    pub fn new(config: MempoolConfig, genesis: &Genesis) -> Self {
        let verified = VerifiedSignatures::new(config.verified_signatures);
        Mempool::empty(
            config,
            Arc::new(genesis.clone()),
            Arc::new(Mutex::new(verified)),
            0,
        )
    }

    /// An empty pool with the same configuration that keeps this pool's verified
    /// signatures (and so the [`SignatureChecker`]s handed out). Sequence numbers go on, so
    /// a fee cursor handed out before stays behind new entries.
    pub fn emptied(&self) -> Self {
        Mempool::empty(
            self.config.clone(),
            Arc::clone(&self.genesis),
            Arc::clone(&self.verified),
            self.next_seq,
        )
    }

    fn empty(
        config: MempoolConfig,
        genesis: Arc<Genesis>,
        verified: Arc<Mutex<VerifiedSignatures>>,
        next_seq: u64,
    ) -> Self {
        Mempool {
            config,
            chain_id: genesis.chain_id,
            min_fee: genesis.min_fee,
            entries: PersistentMap::default(),
            by_sender: PersistentMap::default(),
            by_fee: imbl::OrdSet::new(),
            by_address: PersistentMap::default(),
            tails: imbl::OrdSet::new(),
            tail_of: PersistentMap::default(),
            cost_of: PersistentMap::default(),
            bytes: 0,
            next_seq,
            genesis,
            verified,
        }
    }

    /// A handle that checks signatures into this pool's verified set from another thread.
    pub fn signature_checker(&self) -> SignatureChecker {
        SignatureChecker::new(Arc::clone(&self.verified))
    }

    /// The txids whose signatures verified here (mempool admission and block validation
    /// fill it; block validation skips them).
    pub fn verified_signatures(&self) -> MutexGuard<'_, VerifiedSignatures> {
        self.verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The pending entry `txid`.
    pub fn get(&self, txid: &Hash) -> Option<&PoolEntry> {
        self.entries.get(txid).map(|e| &**e)
    }

    /// The block with `header` and the pending transactions `txids`, in that order, or how
    /// many of them are not pending (BIP 152's reconstruction of a compact block). The
    /// block's txids come with it, as this pool computed them on admission.
    pub fn rebuild(&self, header: BlockHeader, txids: &[Hash]) -> Result<RebuiltBlock, usize> {
        let mut transactions = Vec::with_capacity(txids.len());
        let mut missing = 0usize;
        for txid in txids {
            match self.entries.get(txid) {
                Some(e) => transactions.push(e.tx.clone()),
                None => missing = missing.saturating_add(1),
            }
        }
        if missing > 0 {
            return Err(missing);
        }
        Ok(RebuiltBlock {
            block: Block {
                header,
                transactions,
            },
            txids: txids.to_vec(),
        })
    }

    /// The ids of every pending transaction, in no order.
    pub fn txids(&self) -> impl Iterator<Item = &Hash> {
        self.entries.keys()
    }

    /// Whether `txid` is pending.
    pub fn contains(&self, txid: &Hash) -> bool {
        self.entries.contains_key(txid)
    }

    /// Pending transactions of `sender`, in nonce order.
    pub fn pending_of(&self, sender: &Address) -> Vec<&PoolEntry> {
        self.by_sender
            .get(sender)
            .map(|m| m.values().filter_map(|h| self.get(h)).collect())
            .unwrap_or_default()
    }

    /// Pending transactions that send from or pay to `address`, newest first: O(log n) to
    /// find the address, then O(1) per entry.
    pub fn involving(&self, address: &Address) -> impl Iterator<Item = &PoolEntry> + '_ {
        self.by_address
            .get(address)
            .into_iter()
            .flat_map(|set| set.iter())
            .filter_map(|(_, h)| self.get(h))
    }

    /// How many pending transactions send from or pay to `address`.
    pub fn involving_count(&self, address: &Address) -> usize {
        self.by_address.get(address).map_or(0, |s| s.len())
    }

    /// The next nonce of `sender` counting its pending transactions, given its account nonce.
    // Cannot overflow: a pending nonce is below `window_end <= u64::MAX` (`add_verified`).
    #[allow(clippy::arithmetic_side_effects)]
    pub fn next_nonce(&self, sender: &Address, account_nonce: u64) -> u64 {
        self.by_sender
            .get(sender)
            .and_then(|m| m.get_max())
            .map_or(account_nonce, |(n, _)| n + 1)
    }

    /// Every entry, highest fee first (ties: first seen first).
    pub fn by_fee_desc(&self) -> impl Iterator<Item = &PoolEntry> + '_ {
        self.by_fee_desc_after(None)
    }

    /// The entries after `cursor` in [`Mempool::by_fee_desc`] order (all when `None`): a page
    /// costs O(log n + page), however deep it is.
    pub fn by_fee_desc_after(
        &self,
        cursor: Option<FeeCursor>,
    ) -> impl Iterator<Item = &PoolEntry> + '_ {
        let upper = match cursor {
            Some(c) => std::ops::Bound::Excluded((c.fee, Reverse(c.seq), c.txid)),
            None => std::ops::Bound::Unbounded,
        };
        self.by_fee
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .filter_map(|(_, _, h)| self.get(h))
    }

    /// Verifies the signature, then admits `tx` against `state`.
    pub fn add(
        &mut self,
        tx: Transaction,
        state: &impl AccountReader,
        now_ms: u64,
    ) -> Result<Admitted, MempoolError> {
        let txid = tx.txid();
        if self.entries.contains_key(&txid) {
            return Ok(Admitted::AlreadyPending(txid));
        }
        if !self.verified_signatures().contains(&txid) {
            if !crypto::verify_transaction(&tx) {
                return Err(TxError::BadSignature {
                    txid,
                    from: tx.from.to_hex(),
                }
                .into());
            }
            self.verified_signatures().insert(txid);
        }
        self.add_verified(tx, state, now_ms)
    }

    /// Admits many transactions: signatures checked on all cores, then admission in order.
    pub fn add_batch(
        &mut self,
        txs: Vec<Transaction>,
        state: &impl AccountReader,
        now_ms: u64,
    ) -> Vec<Result<Admitted, MempoolError>> {
        // Only signatures not verified before are checked (on all cores); pending
        // transactions are answered without one.
        let txids: Vec<Hash> = txs
            .par_iter()
            .with_min_len(256)
            .map(Transaction::txid)
            .collect();
        let valid: Vec<bool> = {
            let guard = self.verified_signatures();
            let verified: &VerifiedSignatures = &guard;
            let entries = &self.entries;
            txs.par_iter()
                .zip(txids.par_iter())
                .with_min_len(64)
                .map(|(tx, txid)| {
                    entries.contains_key(txid)
                        || verified.contains(txid)
                        || crypto::verify_transaction(tx)
                })
                .collect()
        };
        txs.into_iter()
            .zip(txids)
            .zip(valid)
            .map(|((tx, txid), ok)| {
                if self.entries.contains_key(&txid) {
                    Ok(Admitted::AlreadyPending(txid))
                } else if ok {
                    self.verified_signatures().insert(txid);
                    self.add_verified(tx, state, now_ms)
                } else {
                    Err(TxError::BadSignature {
                        txid,
                        from: tx.from.to_hex(),
                    }
                    .into())
                }
            })
            .collect()
    }

    /// Admits a transaction whose signature the caller has verified.
    pub fn add_verified(
        &mut self,
        tx: Transaction,
        state: &impl AccountReader,
        now_ms: u64,
    ) -> Result<Admitted, MempoolError> {
        let txid = tx.txid();
        if self.entries.contains_key(&txid) {
            return Ok(Admitted::AlreadyPending(txid));
        }
        check_stateless(&tx, &self.genesis)?;
        let sender = tx.sender();
        let account = state.account(&sender)?;
        if tx.nonce < account.nonce {
            return Err(TxError::NonceTooLow {
                nonce: tx.nonce,
                expected: account.nonce,
            }
            .into());
        }
        let next = self.next_nonce(&sender, account.nonce);
        let window_end = account.nonce.saturating_add(self.config.nonce_window);
        if tx.nonce > next || tx.nonce >= window_end {
            return Err(TxError::NonceTooHigh {
                nonce: tx.nonce,
                expected: next.min(window_end.saturating_sub(1)),
            }
            .into());
        }
        let replaced = self.replaced_entry(&sender, &tx)?;
        self.check_funds(&sender, &tx, account.balance, replaced)?;
        let mut evicted = Vec::new();
        if let Some(old) = replaced {
            self.remove_one(&old);
            evicted.push(old);
        }
        evicted.extend(self.make_room(&tx, &sender)?);
        self.insert(tx, txid, sender, now_ms);
        Ok(Admitted::New { txid, evicted })
    }

    fn replaced_entry(
        &self,
        sender: &Address,
        tx: &Transaction,
    ) -> Result<Option<Hash>, MempoolError> {
        let Some(old_id) = self.by_sender.get(sender).and_then(|m| m.get(&tx.nonce)) else {
            return Ok(None);
        };
        let Some(old) = self.get(old_id) else {
            return Ok(None);
        };
        let required = old.tx.fee.saturating_add(old.tx.fee.div_ceil(10));
        if tx.fee < required.max(old.tx.fee.saturating_add(1)) {
            return Err(MempoolError::ReplacementUnderpriced {
                fee: tx.fee,
                pending_fee: old.tx.fee,
                required: required.max(old.tx.fee.saturating_add(1)),
            });
        }
        Ok(Some(*old_id))
    }

    /// What `sender`'s pending transactions cost in all (`amount + fee` each), leaving out
    /// `except` (a transaction about to be replaced).
    pub fn pending_cost(&self, sender: &Address, except: Option<Hash>) -> u128 {
        let total = self.cost_of.get(sender).copied().unwrap_or(0);
        let left_out = except
            .and_then(|id| self.get(&id))
            .filter(|e| e.sender == *sender)
            .map_or(0, |e| e.tx.wide_cost());
        total.saturating_sub(left_out)
    }

    fn check_funds(
        &self,
        sender: &Address,
        tx: &Transaction,
        balance: u64,
        replaced: Option<Hash>,
    ) -> Result<(), MempoolError> {
        let pending = self.pending_cost(sender, replaced);
        // Saturating: a sum too large for u128 is above any u64 balance all the same.
        let needed = pending.saturating_add(tx.wide_cost());
        if needed > u128::from(balance) {
            return Err(TxError::InsufficientFunds {
                address: *sender,
                balance,
                needed,
            }
            .into());
        }
        Ok(())
    }

    /// Evicts the cheapest sender-tail transactions until `tx` fits; refuses when only
    /// transactions paying at least as much are left.
    fn make_room(&mut self, tx: &Transaction, sender: &Address) -> Result<Vec<Hash>, MempoolError> {
        let mut evicted = Vec::new();
        while self.entries.len() >= self.config.max_count
            || self.bytes.saturating_add(TX_ENCODED_LEN) > self.config.max_bytes
        {
            // O(log n): the cheapest tail, or the next one when the cheapest is the
            // sender's own (each sender has one tail, so at most two are looked at).
            let victim = self
                .tails
                .iter()
                .take_while(|(fee, _, _)| *fee < tx.fee)
                .map(|(_, _, h)| *h)
                .find(|h| self.entries.get(h).map(|e| &e.sender) != Some(sender));
            match victim {
                Some(h) => {
                    self.remove_one(&h);
                    evicted.push(h);
                }
                None => {
                    return Err(MempoolError::Full {
                        count: self.entries.len(),
                        bytes: self.bytes,
                        fee: tx.fee,
                    });
                }
            }
        }
        Ok(evicted)
    }

    /// Puts `sender`'s last pending transaction (if any) in the eviction index, replacing
    /// its previous one.
    fn refresh_tail(&mut self, sender: &Address) {
        if let Some(old) = self.tail_of.remove(sender) {
            self.tails.remove(&old);
        }
        let last = self
            .by_sender
            .get(sender)
            .and_then(|m| m.get_max())
            .and_then(|(_, h)| self.entries.get(h));
        if let Some(e) = last {
            let key = (e.tx.fee, Reverse(e.seq), e.txid);
            self.tails.insert(key);
            self.tail_of.insert(*sender, key);
        }
    }

    fn insert(&mut self, tx: Transaction, txid: Hash, sender: Address, now_ms: u64) {
        let seq = self.next_seq;
        // Cannot overflow: one per admission; 2^64 admissions cannot happen.
        #[allow(clippy::arithmetic_side_effects)]
        let next_seq = seq + 1;
        self.next_seq = next_seq;
        self.insert_entry(Arc::new(PoolEntry {
            tx,
            txid,
            sender,
            first_seen_ms: now_ms,
            seq,
        }));
    }

    /// Indexes `entry` (its `seq` already taken).
    fn insert_entry(&mut self, entry: Arc<PoolEntry>) {
        let (tx, txid, sender, seq) = (&entry.tx, entry.txid, entry.sender, entry.seq);
        self.by_sender
            .entry(sender)
            .or_default()
            .insert(tx.nonce, txid);
        let cost = self.cost_of.entry(sender).or_default();
        *cost = cost.saturating_add(tx.wide_cost());
        self.by_fee.insert((tx.fee, Reverse(seq), txid));
        for address in [sender, tx.to] {
            self.by_address
                .entry(address)
                .or_default()
                .insert((Reverse(seq), txid));
        }
        // Cannot overflow: `make_room` made `bytes + TX_ENCODED_LEN <= max_bytes` before.
        #[allow(clippy::arithmetic_side_effects)]
        let bytes = self.bytes + TX_ENCODED_LEN;
        self.bytes = bytes;
        self.entries.insert(txid, entry);
        self.refresh_tail(&sender);
    }

    /// Removes the `confirmed` transactions that are pending; returns them, in that order.
    /// When they are half the pool or more (a block that confirms what the pool held), the
    /// pool is built again from the rest: each removal updates six indexes, each insertion as
    /// many, so this does the fewer of the two (5,000 removals took about 10 ms).
    fn remove_confirmed(&mut self, confirmed: &[Hash]) -> Vec<Hash> {
        let present: Vec<Hash> = confirmed
            .iter()
            .filter(|id| self.entries.contains_key(*id))
            .copied()
            .collect();
        if present.len().saturating_mul(2) < self.entries.len() {
            for id in &present {
                self.remove_one(id);
            }
            return present;
        }
        let gone: FastSet<&Hash> = present.iter().collect();
        let mut pool = self.emptied();
        if gone.len() < self.entries.len() {
            let mut rest: Vec<Arc<PoolEntry>> = self
                .entries
                .values()
                .filter(|e| !gone.contains(&e.txid))
                .cloned()
                .collect();
            rest.sort_by_key(|e| e.seq);
            for entry in rest {
                pool.insert_entry(entry);
            }
        }
        // Else the block confirmed the whole pool: nothing to look through.
        *self = pool;
        present
    }

    /// Removes one entry (no successor handling).
    fn remove_one(&mut self, txid: &Hash) -> Option<Arc<PoolEntry>> {
        let e = self.entries.remove(txid)?;
        self.by_fee.remove(&(e.tx.fee, Reverse(e.seq), e.txid));
        if let Some(m) = self.by_sender.get_mut(&e.sender) {
            m.remove(&e.tx.nonce);
            if m.is_empty() {
                self.by_sender.remove(&e.sender);
                self.cost_of.remove(&e.sender);
            } else if let Some(cost) = self.cost_of.get_mut(&e.sender) {
                *cost = cost.saturating_sub(e.tx.wide_cost());
            }
        }
        for address in [e.sender, e.tx.to] {
            if let Some(set) = self.by_address.get_mut(&address) {
                set.remove(&(Reverse(e.seq), e.txid));
                if set.is_empty() {
                    self.by_address.remove(&address);
                }
            }
        }
        // Cannot overflow: `bytes` is TX_ENCODED_LEN per entry, and `e` was one.
        #[allow(clippy::arithmetic_side_effects)]
        let bytes = self.bytes - TX_ENCODED_LEN;
        self.bytes = bytes;
        self.refresh_tail(&e.sender);
        Some(e)
    }

    /// Removes `txid` and every later-nonce transaction of its sender (they would have a gap).
    pub fn remove_with_successors(&mut self, txid: &Hash) -> Vec<Hash> {
        let Some(e) = self.get(txid) else {
            return Vec::new();
        };
        let (sender, nonce) = (e.sender, e.tx.nonce);
        let ids: Vec<Hash> = self
            .by_sender
            .get(&sender)
            .map(|m| m.range(nonce..).map(|(_, h)| *h).collect())
            .unwrap_or_default();
        for id in &ids {
            self.remove_one(id);
        }
        ids
    }

    /// Drops entries first seen more than `expiry_ms` before `now_ms` (and their successors).
    pub fn expire(&mut self, now_ms: u64) -> Vec<Hash> {
        let cutoff = now_ms.saturating_sub(self.config.expiry_ms);
        let old: Vec<Hash> = self
            .entries
            .values()
            .filter(|e| e.first_seen_ms < cutoff)
            .map(|e| e.txid)
            .collect();
        let mut removed = Vec::new();
        for id in old {
            removed.extend(self.remove_with_successors(&id));
        }
        removed
    }

    /// After the tip changed: drops confirmed transactions (`confirmed`) and revalidates the
    /// pending transactions of `touched` senders against the new `state`, dropping those that
    /// no longer fit (stale nonce, gap, or unaffordable). Returns the dropped txids.
    pub fn revalidate(
        &mut self,
        confirmed: &[Hash],
        touched: impl IntoIterator<Item = Address>,
        state: &impl AccountReader,
    ) -> Result<Vec<Hash>, StoreError> {
        let mut dropped = self.remove_confirmed(confirmed);
        let senders: BTreeSet<Address> = touched.into_iter().collect();
        for sender in senders {
            let Some(m) = self.by_sender.get(&sender) else {
                continue;
            };
            let account = state.account(&sender)?;
            let mut expected = account.nonce;
            let mut budget = u128::from(account.balance);
            let mut keep = true;
            let mut to_drop = Vec::new();
            for (nonce, id) in m.iter() {
                let cost = self.get(id).map_or(0, |e| e.tx.wide_cost());
                if *nonce < account.nonce {
                    to_drop.push(*id);
                    continue;
                }
                let kept = (keep && *nonce == expected)
                    .then(|| Some((expected.checked_add(1)?, budget.checked_sub(cost)?)))
                    .flatten();
                if let Some((next, rest)) = kept {
                    expected = next;
                    budget = rest;
                } else {
                    keep = false;
                    to_drop.push(*id);
                }
            }
            for id in to_drop {
                self.remove_one(&id);
                dropped.push(id);
            }
        }
        Ok(dropped)
    }

    /// The pending transaction of `sender` with `nonce`.
    fn pending(&self, sender: &Address, nonce: u64) -> Option<&PoolEntry> {
        self.by_sender
            .get(sender)
            .and_then(|m| m.get(&nonce))
            .and_then(|id| self.get(id))
    }

    /// Every pending transaction in an order that re-admits cleanly (per sender by nonce).
    pub fn snapshot(&self) -> Vec<Transaction> {
        let mut v: Vec<&PoolEntry> = self.entries.values().map(|e| &**e).collect();
        v.sort_by_key(|e| (e.sender, e.tx.nonce));
        v.into_iter().map(|e| e.tx.clone()).collect()
    }

    /// The chain id this pool admits.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The minimum fee this pool admits.
    pub fn min_fee(&self) -> u64 {
        self.min_fee
    }

    /// Checks the invariants listed in the module docs against `state`.
    pub fn check_invariants(&self, state: &impl AccountReader) -> Result<(), String> {
        let mut count: usize = 0;
        for (sender, m) in self.by_sender.iter() {
            let account = state.account(sender).map_err(|e| e.to_string())?;
            let mut cost: u128 = 0;
            for (expected, (nonce, id)) in (account.nonce..).zip(m.iter()) {
                let e = self.get(id).ok_or("by_sender names a missing entry")?;
                if *nonce != expected || e.tx.nonce != *nonce {
                    return Err(format!(
                        "sender {sender}: nonce {nonce}, expected {expected}"
                    ));
                }
                cost = cost
                    .checked_add(e.tx.wide_cost())
                    .ok_or("pending cost overflows")?;
                count = count.checked_add(1).ok_or("entry count overflows")?;
            }
            if cost > u128::from(account.balance) {
                return Err(format!(
                    "sender {sender}: pending cost {cost} above balance"
                ));
            }
            let kept = self.cost_of.get(sender).copied();
            if kept != Some(cost) {
                return Err(format!(
                    "sender {sender}: pending cost {cost}, kept as {kept:?}"
                ));
            }
        }
        if self.cost_of.len() != self.by_sender.len() {
            return Err("pending costs kept for senders without pending transactions".into());
        }
        if count != self.entries.len() || self.by_fee.len() != count {
            return Err("index sizes disagree".into());
        }
        let self_transfers = self
            .entries
            .values()
            .filter(|e| e.sender == e.tx.to)
            .count();
        let address_refs: usize = self.by_address.values().map(|s| s.len()).sum();
        if Some(address_refs)
            != count
                .checked_mul(2)
                .and_then(|c| c.checked_sub(self_transfers))
        {
            return Err(format!(
                "address index holds {address_refs} references for {count} entries"
            ));
        }
        if Some(self.bytes) != count.checked_mul(TX_ENCODED_LEN) || count > self.config.max_count {
            return Err("byte or count bound broken".into());
        }
        Ok(())
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
    use super::*;
    use std::collections::BTreeMap;

    use crate::crypto::Keypair;
    use crate::state::Account;
    use crate::testkit::ChainBuilder;
    use proptest::prelude::*;

    fn setup() -> (Genesis, BTreeMap<Address, Account>, Vec<Keypair>) {
        let g = Genesis::dev(6, 1_000_000, 2000);
        let state = g.state();
        (g, state, (0..6).map(Keypair::dev).collect())
    }

    fn pool(g: &Genesis, max_count: usize) -> Mempool {
        Mempool::new(
            MempoolConfig {
                max_count,
                max_bytes: max_count * TX_ENCODED_LEN,
                nonce_window: 16,
                expiry_ms: 1000,
                verified_signatures: 1000,
            },
            g,
        )
    }

    fn code(r: Result<Admitted, MempoolError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    /// A compact block's reconstruction: the pending transactions in the order asked, with
    /// the txids they were admitted under (equal to their own), or how many are missing.
    #[test]
    fn a_block_is_rebuilt_from_pending_transactions_with_their_txids() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 100);
        let txs: Vec<Transaction> = (0..4)
            .map(|i| k[i].sign_transfer(g.chain_id, k[5].address(), 10, 1, 0))
            .collect();
        for tx in &txs {
            assert_eq!(code(p.add(tx.clone(), &state, 0)), "ok");
        }
        let order = [txs[2].txid(), txs[0].txid(), txs[3].txid()];
        let header = g.header();
        let rebuilt = p.rebuild(header.clone(), &order).expect("all pending");
        assert_eq!(rebuilt.block().header, header);
        let (block, txids) = rebuilt.into_parts();
        assert_eq!(
            block.transactions,
            vec![txs[2].clone(), txs[0].clone(), txs[3].clone()]
        );
        assert_eq!(
            txids,
            block.txids(),
            "the txids of the block's transactions"
        );
        let unknown = k[4].sign_transfer(g.chain_id, k[5].address(), 10, 1, 0);
        let partly = [txs[1].txid(), unknown.txid(), Hash::ZERO];
        assert_eq!(p.rebuild(header.clone(), &partly).map(|_| ()), Err(2));
        let empty = p.rebuild(header, &[]).expect("nothing needed");
        assert!(empty.block().transactions.is_empty());
    }

    #[test]
    fn admission_errors_have_their_codes() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 100);
        let to = k[1].address();
        let ok = k[0].sign_transfer(g.chain_id, to, 10, 1, 0);
        assert_eq!(code(p.add(ok.clone(), &state, 0)), "ok");
        assert!(matches!(
            p.add(ok, &state, 0),
            Ok(Admitted::AlreadyPending(_))
        ));
        let mut bad_sig = k[0].sign_transfer(g.chain_id, to, 10, 1, 1);
        bad_sig.amount = 11;
        assert_eq!(code(p.add(bad_sig, &state, 0)), "bad_signature");
        assert_eq!(
            code(p.add(k[0].sign_transfer(1, to, 1, 1, 1), &state, 0)),
            "wrong_chain"
        );
        assert_eq!(
            code(p.add(k[0].sign_transfer(g.chain_id, to, 1, 0, 1), &state, 0)),
            "fee_too_low"
        );
        assert_eq!(
            code(p.add(k[0].sign_transfer(g.chain_id, to, 1, 1, 5), &state, 0)),
            "nonce_too_high"
        );
        assert_eq!(
            code(p.add(
                k[0].sign_transfer(g.chain_id, to, 999_980, 10, 1),
                &state,
                0
            )),
            "insufficient_funds"
        );
        assert_eq!(
            code(p.add(k[0].sign_transfer(g.chain_id, to, 1, 1, 16), &state, 0)),
            "nonce_too_high"
        );
        let mut advanced = state.clone();
        advanced.insert(
            k[2].address(),
            Account {
                balance: 100,
                nonce: 3,
            },
        );
        assert_eq!(
            code(p.add(k[2].sign_transfer(g.chain_id, to, 1, 1, 2), &advanced, 0)),
            "nonce_too_low"
        );
        p.check_invariants(&state).expect("invariants");
    }

    #[test]
    fn address_index_lists_newest_first_and_clones_are_snapshots() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 100);
        let (a, b, c) = (k[0].address(), k[1].address(), k[2].address());
        let t0 = k[0].sign_transfer(g.chain_id, b, 1, 1, 0);
        let t1 = k[1].sign_transfer(g.chain_id, c, 1, 1, 0);
        let t2 = k[0].sign_transfer(g.chain_id, a, 1, 1, 1); // a self-transfer
        for tx in [&t0, &t1, &t2] {
            p.add(tx.clone(), &state, 0).expect("admitted");
        }
        let ids = |p: &Mempool, addr: &Address| -> Vec<Hash> {
            p.involving(addr).map(|e| e.txid).collect()
        };
        assert_eq!(ids(&p, &a), vec![t2.txid(), t0.txid()]);
        assert_eq!(ids(&p, &b), vec![t1.txid(), t0.txid()]);
        assert_eq!(ids(&p, &c), vec![t1.txid()]);
        assert_eq!(p.involving_count(&b), 2);
        p.check_invariants(&state).expect("invariants");

        let snapshot = p.clone();
        p.remove_with_successors(&t0.txid());
        assert_eq!(ids(&p, &a), Vec::<Hash>::new(), "t2 follows t0 out");
        assert_eq!(ids(&p, &b), vec![t1.txid()]);
        assert_eq!(
            ids(&snapshot, &a),
            vec![t2.txid(), t0.txid()],
            "the clone is unchanged"
        );
        assert_eq!(snapshot.len(), 3);
        p.check_invariants(&state)
            .expect("invariants after removal");
    }

    #[test]
    fn fee_pages_walk_the_whole_pool_once() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 100);
        let to = k[5].address();
        for (i, key) in k.iter().take(4).enumerate() {
            for nonce in 0..3u64 {
                let fee = 1 + (i as u64 * 7 + nonce * 3) % 5;
                p.add(key.sign_transfer(g.chain_id, to, 1, fee, nonce), &state, 0)
                    .expect("admitted");
            }
        }
        let all: Vec<Hash> = p.by_fee_desc().map(|e| e.txid).collect();
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page: Vec<&PoolEntry> = p.by_fee_desc_after(cursor).take(5).collect();
            let Some(last) = page.last() else { break };
            let text = last.fee_cursor().to_text();
            cursor = FeeCursor::from_text(&text);
            assert_eq!(cursor, Some(last.fee_cursor()));
            paged.extend(page.iter().map(|e| e.txid));
        }
        assert_eq!(paged, all);
        assert_eq!(all.len(), 12);
        assert_eq!(FeeCursor::from_text("1.2"), None);
        assert_eq!(FeeCursor::from_text("x.2.00"), None);
    }

    #[test]
    fn replacement_needs_ten_percent_more() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 100);
        let to = k[1].address();
        p.add(k[0].sign_transfer(g.chain_id, to, 10, 100, 0), &state, 0)
            .expect("first");
        let cheap = k[0].sign_transfer(g.chain_id, to, 11, 109, 0);
        match p.add(cheap, &state, 0) {
            Err(MempoolError::ReplacementUnderpriced { required, .. }) => assert_eq!(required, 110),
            other => panic!("expected underpriced, got {other:?}"),
        }
        let better = k[0].sign_transfer(g.chain_id, to, 12, 110, 0);
        let r = p.add(better.clone(), &state, 0).expect("replaced");
        assert!(matches!(r, Admitted::New { ref evicted, .. } if evicted.len() == 1));
        assert_eq!(p.len(), 1);
        assert!(p.contains(&better.txid()));
    }

    #[test]
    fn full_pool_evicts_lowest_fee_tail_without_gaps() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 4);
        let to = k[5].address();
        // Sender 0: nonces 0 (fee 1), 1 (fee 50). Sender 1: fee 5. Sender 2: fee 6.
        p.add(k[0].sign_transfer(g.chain_id, to, 1, 1, 0), &state, 0)
            .expect("a");
        p.add(k[0].sign_transfer(g.chain_id, to, 1, 50, 1), &state, 0)
            .expect("b");
        p.add(k[1].sign_transfer(g.chain_id, to, 1, 5, 0), &state, 0)
            .expect("c");
        p.add(k[2].sign_transfer(g.chain_id, to, 1, 6, 0), &state, 0)
            .expect("d");
        // Cheapest is sender 0's nonce 0, but evicting it would leave a gap: sender 1 goes.
        let r = p
            .add(k[3].sign_transfer(g.chain_id, to, 1, 7, 0), &state, 0)
            .expect("evicts");
        assert!(matches!(r, Admitted::New { ref evicted, .. } if evicted.len() == 1));
        assert!(p.pending_of(&k[1].address()).is_empty());
        assert_eq!(p.pending_of(&k[0].address()).len(), 2);
        assert_eq!(
            code(p.add(k[4].sign_transfer(g.chain_id, to, 1, 2, 0), &state, 0)),
            "mempool_full"
        );
        p.check_invariants(&state).expect("invariants");
    }

    #[test]
    fn expiry_and_revalidation_keep_nonces_contiguous() {
        let (g, state, k) = setup();
        let mut p = pool(&g, 100);
        let to = k[5].address();
        for n in 0..4 {
            p.add(
                k[0].sign_transfer(g.chain_id, to, 1000, 1, n),
                &state,
                10 * n,
            )
            .expect("add");
        }
        // Nonce 0 confirmed elsewhere and the balance dropped: only nonce 1 stays affordable.
        let mut after = state.clone();
        after.insert(
            k[0].address(),
            Account {
                balance: 1001,
                nonce: 1,
            },
        );
        let dropped = p
            .revalidate(&[], [k[0].address()], &after)
            .expect("revalidate");
        assert_eq!(dropped.len(), 3);
        assert_eq!(p.len(), 1);
        p.check_invariants(&after).expect("invariants");
        assert_eq!(p.expire(10_000).len(), 1);
        assert!(p.is_empty());
    }

    /// Every index of `p`, to compare two pools.
    #[allow(clippy::type_complexity)]
    fn indexes(
        p: &Mempool,
    ) -> (
        Vec<(Hash, u64, u64)>,
        Vec<(Address, Vec<(u64, Hash)>)>,
        Vec<(u64, Reverse<u64>, Hash)>,
        Vec<(Address, Vec<(Reverse<u64>, Hash)>)>,
        Vec<(u64, Reverse<u64>, Hash)>,
        Vec<(Address, (u64, Reverse<u64>, Hash))>,
        Vec<(Address, u128)>,
        (usize, u64),
    ) {
        let mut entries: Vec<_> = p
            .entries
            .values()
            .map(|e| (e.txid, e.seq, e.first_seen_ms))
            .collect();
        entries.sort();
        let mut by_sender: Vec<_> = p
            .by_sender
            .iter()
            .map(|(a, m)| (*a, m.iter().map(|(n, h)| (*n, *h)).collect()))
            .collect();
        by_sender.sort();
        let mut by_address: Vec<_> = p
            .by_address
            .iter()
            .map(|(a, s)| (*a, s.iter().copied().collect()))
            .collect();
        by_address.sort();
        let mut tail_of: Vec<_> = p.tail_of.iter().map(|(a, k)| (*a, *k)).collect();
        tail_of.sort();
        let mut cost_of: Vec<_> = p.cost_of.iter().map(|(a, c)| (*a, *c)).collect();
        cost_of.sort();
        (
            entries,
            by_sender,
            p.by_fee.iter().copied().collect(),
            by_address,
            p.tails.iter().copied().collect(),
            tail_of,
            cost_of,
            (p.bytes, p.next_seq),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Removing confirmed transactions by building the pool again (most of it confirmed)
        /// leaves exactly what removing them one by one leaves.
        #[test]
        fn confirmed_transactions_leave_the_same_pool_however_they_are_removed(
            ops in proptest::collection::vec((0usize..6, 0u64..4, 1u64..20), 1..60),
            pick in proptest::collection::vec(any::<bool>(), 60),
            unknown in 0usize..3,
        ) {
            let (g, state, k) = setup();
            let mut p = pool(&g, 40);
            let mut next = [0u64; 6];
            for (at, (who, skew, fee)) in (0u64..).zip(ops) {
                let nonce = next[who].saturating_sub(skew % 2) + skew / 3;
                let tx = k[who].sign_transfer(g.chain_id, k[(who + 1) % 6].address(), 5, fee, nonce);
                if let Ok(Admitted::New { .. }) = p.add(tx, &state, at) {
                    next[who] = p.next_nonce(&k[who].address(), 0);
                }
            }
            let mut confirmed: Vec<Hash> = p.entries.keys().zip(&pick).filter(|(_, take)| **take).map(|(h, _)| *h).collect();
            confirmed.extend((0..unknown).map(|i| Hash([i as u8 + 1; 32])));
            confirmed.reverse();
            let mut one_by_one = p.clone();
            let expected: Vec<Hash> = confirmed.iter().filter(|id| one_by_one.remove_one(id).is_some()).copied().collect();
            let mut removed = p.clone();
            prop_assert_eq!(removed.remove_confirmed(&confirmed), expected);
            prop_assert_eq!(indexes(&removed), indexes(&one_by_one));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever is admitted, `select` builds a block that applies cleanly.
        #[test]
        fn selection_is_always_a_valid_block(ops in proptest::collection::vec((0usize..6, 0u64..4, 0u64..300_000, 1u64..20), 1..60), max in 1usize..40) {
            let (g, state, k) = setup();
            let mut p = pool(&g, 30);
            let mut next = [0u64; 6];
            for (who, skew, amount, fee) in ops {
                // Mostly the right nonce, sometimes a replacement or a gap.
                let nonce = next[who].saturating_sub(skew % 2) + skew / 3;
                let tx = k[who].sign_transfer(g.chain_id, k[(who + 1) % 6].address(), amount, fee, nonce);
                if let Ok(Admitted::New { .. }) = p.add(tx, &state, 0) {
                    next[who] = p.next_nonce(&k[who].address(), 0);
                }
                p.check_invariants(&state).map_err(TestCaseError::fail)?;
            }
            let txs = p.select(max, &state).expect("select");
            prop_assert!(txs.len() <= max);
            let mut b = ChainBuilder::new(g.clone(), 6);
            let block = b.push(txs, Address::ZERO);
            prop_assert!(crate::state::apply_block(&state, &g, &block).is_ok());
            // Fees first: the first selected transaction has the highest fee among first nonces.
            if let Some(first) = block.transactions.first() {
                let best = p.by_sender.values().filter_map(|m| m.values().next()).filter_map(|h| p.get(h)).map(|e| e.tx.fee).max();
                prop_assert_eq!(Some(first.fee), best);
            }
        }
    }
}
