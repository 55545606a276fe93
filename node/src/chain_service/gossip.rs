//! What peers send: blocks (gossip or sync) and gossiped transactions, judged by the chain and
//! answered through the verdict functions of [`crate::verdict`].

use std::collections::{HashMap, HashSet};

use peerchain_consensus::{ChainError, Imported, RelayableBlock, Verdict};
use peerchain_ledger::mempool::Admitted;
use peerchain_ledger::state::check_stateless;
use peerchain_ledger::{AccountReader, Address, Block, Hash, Transaction};
use peerchain_network::{Acceptance, BlockOrigin, MessageRef};

use super::{ChainService, GossipBatch, clock_ms};
use crate::gap::{EXPIRED_PER_PENALTY, Held};
use crate::outbox::NetCommand;
use crate::verdict::{
    BatchItem, BatchVerdict, TxVerdict, batch_verdict, block_acceptance, tx_verdict,
};

/// Lighter-branch blocks from one peer per penalty.
const LIGHTER_PER_PENALTY: u32 = 16;
/// Peers whose lighter-branch blocks are counted at once.
const MAX_LIGHTER_PEERS: usize = 4096;

/// What became of a gossiped transaction offered to the gap queue.
enum Hold {
    /// Held; `replaced_own`: in place of one of the same sender and nonce from the same
    /// message (whose verdict is not registered yet, so the replaced one reports nothing).
    Held { replaced_own: bool },
    /// Not held (the queue's bounds or the sender's funds).
    Refused,
}

/// How a block from a peer arrived, which decides how its verdict is answered.
pub(super) enum Arrival {
    /// A gossip message not forwarded yet: it gets the block's verdict.
    Gossip(MessageRef),
    /// A gossip message already forwarded (`Chain::relayable` held before the import): nothing
    /// is left to report, and a block whose only fault is in the state costs its peer nothing,
    /// since honest peers relay such a block too.
    RelayedEarly,
    /// Sync or an ancestor download: an invalid block costs its peer a penalty, unless it was
    /// fetched for a compact block and fails on state alone (the sender may have relayed it
    /// early).
    Sync,
}

impl From<BlockOrigin> for Arrival {
    fn from(origin: BlockOrigin) -> Self {
        match origin {
            BlockOrigin::Gossip(msg) => Arrival::Gossip(msg),
            BlockOrigin::Sync => Arrival::Sync,
        }
    }
}

/// The metric label of a gossip verdict.
fn acceptance_label(a: Acceptance) -> &'static str {
    match a {
        Acceptance::Accept => "accept",
        Acceptance::Reject => "reject",
        Acceptance::Ignore => "ignore",
    }
}

impl ChainService {
    pub(super) fn import_from_peer(&mut self, block: Block, peer: String, origin: Arrival) {
        if self.disk_full().is_some() {
            // Not stored, not judged: gossip is ignored without a penalty, sync asks again
            // once the tip moves (after space returns).
            if let Arrival::Gossip(msg) = origin {
                self.report_block(msg, Acceptance::Ignore);
            }
            return;
        }
        let hash = block.hash();
        let height = block.header.height;
        let imported = match origin {
            // Unrequested: a block that keeps its branch lighter than the tip is dropped.
            Arrival::Gossip(_) | Arrival::RelayedEarly => self.chain.import_unrequested(
                block,
                Some(peer.clone()),
                clock_ms(self.clock_offset_ms),
            ),
            Arrival::Sync => {
                self.chain
                    .import(block, Some(peer.clone()), clock_ms(self.clock_offset_ms))
            }
        };
        self.judge_import(hash, height, peer, origin, imported);
    }

    /// A block that `Chain::prepare_relay` passed and that was forwarded already: imported
    /// with only its state left to check ([`Arrival::RelayedEarly`]).
    pub(super) fn import_relayed_early(&mut self, checked: RelayableBlock, peer: String) {
        if self.disk_full().is_some() {
            return;
        }
        let hash = checked.block().hash();
        let height = checked.block().header.height;
        let imported = self.chain.import_relayable(
            checked,
            Some(peer.clone()),
            clock_ms(self.clock_offset_ms),
        );
        self.judge_import(hash, height, peer, Arrival::RelayedEarly, imported);
    }

    /// What follows the import of block `hash` from `peer`: verdicts answered, penalties,
    /// ancestor requests, a store failure handled.
    fn judge_import(
        &mut self,
        hash: Hash,
        height: u64,
        peer: String,
        origin: Arrival,
        imported: Result<Vec<Imported>, ChainError>,
    ) {
        let reports = match imported {
            Ok(r) => r,
            Err(e) => {
                // Not a verdict: the gossip validation times out (no penalty) and sync retries.
                tracing::error!(error = %e, %hash, "store failure while importing");
                self.store_write_failed(&e);
                return;
            }
        };
        self.tips_dirty = true;
        for r in &reports {
            // A block fetched for its compact form (completed or whole): that message's verdict.
            let for_compact = self.answer_compact_fetch(&r.hash, &r.verdict);
            if r.hash == hash {
                if matches!(r.verdict, Verdict::Lighter { .. }) {
                    self.count_lighter(&peer);
                }
                // A block seen from a peer (stored, lighter, or building on one we did not
                // store) tells a selfish miner how far the honest network got.
                if matches!(
                    r.verdict,
                    Verdict::Accepted { .. } | Verdict::Lighter { .. } | Verdict::Orphan { .. }
                ) && let Some(a) = self.adversary.as_mut()
                {
                    let release = a.on_public_block(height, &self.chain);
                    self.publish_blocks(release);
                }
                self.answer_origin(&origin, &peer, height, &r.verdict, for_compact);
            } else {
                self.penalize_if_invalid(r);
            }
        }
    }

    /// Answers the peer a block came from: its gossip verdict, or a penalty for an invalid
    /// block (`for_compact`: the block was fetched for a compact block's message).
    fn answer_origin(
        &self,
        origin: &Arrival,
        peer: &str,
        height: u64,
        verdict: &Verdict,
        for_compact: bool,
    ) {
        let out = &self.links.outbox;
        match origin {
            Arrival::Gossip(msg) => self.report_block(msg.clone(), block_acceptance(verdict)),
            Arrival::RelayedEarly => self.count_relayed_early(peer, verdict),
            Arrival::Sync => {
                if let Verdict::Invalid(e) = verdict
                    && !(for_compact && e.needs_state())
                {
                    out.send(NetCommand::Penalize {
                        peer: peer.to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        if let Verdict::Orphan { missing } = verdict {
            // Fetch the ancestors of an unrequested orphan only when it is above our tip and
            // so may bring more work; a lower one is most likely a cheap side branch (sync
            // still finds any heavier chain from the peers' announced work).
            let above_tip = height > self.chain.tip_header().height;
            if matches!(origin, Arrival::Sync) || above_tip {
                out.send(NetCommand::RequestAncestors {
                    peer: peer.to_owned(),
                    missing: *missing,
                });
            }
        }
        if let Verdict::Invalid(e) = verdict {
            tracing::warn!(%peer, error = %e, "invalid block from peer");
        }
    }

    /// What the import found of a block forwarded before it: counted, and an invalid one
    /// logged (its sender is not penalised: see [`Arrival::RelayedEarly`]).
    fn count_relayed_early(&self, peer: &str, verdict: &Verdict) {
        match verdict {
            Verdict::Invalid(e) => {
                self.links.metrics.relayed_early("invalid_state");
                tracing::warn!(%peer, error = %e, "a block relayed before its import is invalid");
            }
            _ => self.links.metrics.relayed_early("applied"),
        }
    }

    /// Counts a block of a lighter branch from `peer`; every [`LIGHTER_PER_PENALTY`]th costs
    /// the peer a penalty (an honest peer sends one now and then, in a race).
    pub(super) fn count_lighter(&mut self, peer: &str) {
        if self.lighter_from.len() >= MAX_LIGHTER_PEERS && !self.lighter_from.contains_key(peer) {
            self.lighter_from.clear();
        }
        let n = self.lighter_from.entry(peer.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        if (*n).is_multiple_of(LIGHTER_PER_PENALTY) {
            self.links.outbox.send(NetCommand::Penalize {
                peer: peer.to_owned(),
                reason: format!("{n} unrequested blocks of branches lighter than our tip"),
            });
        }
    }

    /// Penalises the peer a block came from when it is invalid, unless it fails on state
    /// alone: an honest peer may have relayed it before its state was applied (an orphan or
    /// a future block judged later, after a peer relayed it early).
    pub(super) fn penalize_if_invalid(&self, r: &Imported) {
        if let (Verdict::Invalid(e), Some(peer)) = (&r.verdict, &r.source)
            && !e.needs_state()
        {
            self.links.outbox.send(NetCommand::Penalize {
                peer: peer.clone(),
                reason: e.to_string(),
            });
        }
    }

    /// A gossiped batch (one message), its signatures already checked on all cores by the
    /// event forwarder (`bad_signature`: the index of the first that failed). A batch with a
    /// provably invalid transaction is rejected whole before anything of it is admitted;
    /// otherwise its transactions are admitted in order, those ahead of a nonce gap wait in
    /// the gap queue, and the message gets one verdict ([`batch_verdict`]): it is forwarded
    /// only when the mempool holds all of it. Transactions admitted from a message that is not
    /// forwarded are published as this node's own: at once when it is ignored, and when its
    /// verdict waits, only if it ends ignored ([`crate::gap::WaitingMessages`]).
    pub(super) fn gossiped_txs(&mut self, batch: GossipBatch) {
        let GossipBatch {
            txs,
            peer,
            msg,
            bad_signature,
        } = batch;
        if self.disk_full().is_some() {
            self.report_tx(msg, Acceptance::Ignore);
            return;
        }
        if let Some(code) = self.invalid_in_batch(&txs, bad_signature) {
            tracing::debug!(%peer, code, txs = txs.len(), "gossiped batch with an invalid transaction rejected");
            self.links.metrics.tx_rejected(code);
            self.report_tx(msg, Acceptance::Reject);
            return;
        }
        let results = self
            .chain
            .submit_batch(txs.clone(), clock_ms(self.clock_offset_ms));
        let mut items = Vec::with_capacity(txs.len());
        let mut admitted = Vec::new();
        // Where each held (sender, nonce) of this batch sits in `items`.
        let mut held_here: HashMap<(Address, u64), usize> = HashMap::new();
        for (tx, result) in txs.into_iter().zip(&results) {
            let item = match (tx_verdict(result), result) {
                (TxVerdict::Accept, _) => {
                    self.links.metrics.tx_accepted();
                    admitted.push(tx);
                    BatchItem::Admitted
                }
                (TxVerdict::Hold, _) => {
                    let key = (tx.sender(), tx.nonce);
                    match self.hold_gossiped(tx, &peer, &msg) {
                        Hold::Held { replaced_own } => {
                            // A later transaction of this batch took an earlier one's place:
                            // the mempool can never hold all of the message.
                            if replaced_own && let Some(&i) = held_here.get(&key) {
                                items[i] = BatchItem::Dropped;
                            }
                            held_here.insert(key, items.len());
                            BatchItem::Held
                        }
                        Hold::Refused => BatchItem::Dropped,
                    }
                }
                (TxVerdict::Reject { code }, _) => BatchItem::Invalid { code },
                (TxVerdict::Ignore, Ok(_)) => BatchItem::Known,
                (TxVerdict::Ignore, Err(e)) => {
                    self.links.metrics.tx_rejected(e.code());
                    BatchItem::Dropped
                }
            };
            items.push(item);
        }
        let verdict = batch_verdict(&items);
        let senders: HashSet<Address> = admitted.iter().map(Transaction::sender).collect();
        match verdict {
            BatchVerdict::Forward => self.report_tx(msg.clone(), Acceptance::Accept),
            BatchVerdict::Wait => {
                let held = items.iter().filter(|i| **i == BatchItem::Held).count();
                // Kept with the message: published as ours only if it ends ignored.
                let now_ms = clock_ms(self.clock_offset_ms);
                let now = self.waiting.wait(msg.clone(), held, admitted, now_ms);
                self.publish_own(now);
                self.links.metrics.gossip("transactions", "held");
            }
            BatchVerdict::Ignore => {
                self.publish_own(admitted);
                self.report_tx(msg.clone(), Acceptance::Ignore);
            }
            BatchVerdict::Reject { .. } => {
                self.publish_own(admitted);
                self.report_tx(msg.clone(), Acceptance::Reject);
            }
        }
        for sender in &senders {
            self.admit_held(sender);
        }
    }

    /// The error code of the first transaction of a gossiped batch that is invalid wherever it
    /// is checked: a bad signature (found by the event forwarder), another chain id, a fee
    /// under the genesis minimum.
    fn invalid_in_batch(
        &self,
        txs: &[Transaction],
        bad_signature: Option<usize>,
    ) -> Option<&'static str> {
        let genesis = self.chain.genesis();
        let stateless = txs
            .iter()
            .enumerate()
            .find_map(|(i, tx)| check_stateless(tx, genesis).err().map(|e| (i, e.code())));
        match (bad_signature, stateless) {
            (Some(b), Some((s, code))) if s < b => Some(code),
            (Some(_), _) => Some("bad_signature"),
            (None, found) => found.map(|(_, code)| code),
        }
    }

    /// Holds a gossiped transaction ahead of a nonce gap if its sender can pay for it; its
    /// message `msg` may wait for it.
    fn hold_gossiped(&mut self, tx: Transaction, peer: &str, msg: &MessageRef) -> Hold {
        let sender = tx.sender();
        let held = Held {
            tx,
            since_ms: clock_ms(self.clock_offset_ms),
            peer: Some(peer.to_owned()),
            msg: Some(msg.clone()),
        };
        let available = self.spendable(&sender);
        match self.gap.hold(held, available) {
            Ok(Some(old)) if old.msg.as_ref() == Some(msg) => Hold::Held { replaced_own: true },
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.held_left(old, false);
                }
                Hold::Held {
                    replaced_own: false,
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "gossiped transaction not held");
                self.links.metrics.tx_rejected("gap_refused");
                Hold::Refused
            }
        }
    }

    /// A held transaction left the gap queue, into the mempool (`admitted`) or not: its
    /// message, if it waits, may be decided now. An admitted transaction is published as
    /// this node's own unless its waiting message will carry it; so are the admitted
    /// transactions of a message that ends ignored.
    pub(super) fn held_left(&mut self, held: Held, admitted: bool) {
        let Held { tx, msg, .. } = held;
        let publish = match msg {
            None => admitted.then_some(tx).into_iter().collect(),
            Some(msg) => {
                let decision = self.waiting.left(&msg, admitted.then_some(tx));
                if let Some(acceptance) = decision.verdict {
                    self.report_tx(msg, acceptance);
                }
                decision.publish
            }
        };
        self.publish_own(publish);
    }

    /// Publishes the admitted transactions of messages that have waited too long for their
    /// verdict ([`crate::gap::PUBLISH_WAITING_AFTER_MS`]).
    pub(super) fn publish_overdue_waiting(&mut self) {
        let overdue = self.waiting.overdue(clock_ms(self.clock_offset_ms));
        self.publish_own(overdue);
    }

    /// Publishes admitted transactions as this node's own (the outbox gathers publications
    /// queued back to back into few messages).
    fn publish_own(&self, txs: Vec<Transaction>) {
        if !txs.is_empty() {
            self.links.outbox.send(NetCommand::PublishTxs(txs));
        }
    }

    /// Drops held transactions past their time limit; a relay many of whose held
    /// transactions never became valid is penalised (`gap::ExpiredByRelay`).
    pub(super) fn expire_held(&mut self) {
        let now_ms = clock_ms(self.clock_offset_ms);
        let expired = self.gap.expire(now_ms);
        if expired.is_empty() {
            return;
        }
        tracing::debug!(count = expired.len(), "held transactions expired");
        for peer in self.expired_by_relay.count(&expired, now_ms) {
            self.links.outbox.send(NetCommand::Penalize {
                peer,
                reason: format!(
                    "{EXPIRED_PER_PENALTY} relayed transactions held for a nonce gap never became valid"
                ),
            });
        }
        for held in expired {
            self.held_left(held, false);
        }
    }

    /// What `sender` can still spend: its balance minus the cost of its pending transactions.
    pub(super) fn spendable(&self, sender: &Address) -> u128 {
        let balance = self.chain.store().account(sender).map_or(0, |a| a.balance);
        let pending = self.chain.mempool().pending_cost(sender, None);
        u128::from(balance).saturating_sub(pending)
    }

    /// Offers `sender`'s held transactions to the mempool once the gap before them has
    /// closed, in nonce order, and relays those admitted (`held_left`); the rest wait on
    /// (keeping the time they were first held). Costs nothing while the gap is open.
    pub(super) fn admit_held(&mut self, sender: &Address) {
        let account_nonce = self.chain.store().account(sender).map_or(0, |a| a.nonce);
        let mut next = self.chain.mempool().next_nonce(sender, account_nonce);
        if self
            .gap
            .first_nonce(sender)
            .is_none_or(|first| first > next)
        {
            return;
        }
        for held in self.gap.take(sender) {
            if held.tx.nonce > next {
                let available = self.spendable(sender);
                let kept = held.clone();
                match self.gap.hold(held, available) {
                    Ok(replaced) => {
                        if let Some(old) = replaced {
                            self.held_left(old, false);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "held transaction dropped");
                        self.held_left(kept, false);
                    }
                }
                continue;
            }
            let admitted = match self
                .chain
                .submit(held.tx.clone(), clock_ms(self.clock_offset_ms))
            {
                Ok(Admitted::New { .. }) => {
                    self.links.metrics.tx_accepted();
                    next += 1;
                    true
                }
                Ok(Admitted::AlreadyPending(_)) => false,
                Err(e) => {
                    self.links.metrics.tx_rejected(e.code());
                    false
                }
            };
            self.held_left(held, admitted);
        }
    }

    /// Reports the validation of a gossiped transaction's message (and counts it).
    fn report_tx(&self, msg: MessageRef, acceptance: Acceptance) {
        self.report_gossip("transactions", msg, acceptance);
    }

    /// Reports the validation of a block's message, whole or compact (and counts it).
    pub(super) fn report_block(&self, msg: MessageRef, acceptance: Acceptance) {
        self.report_gossip("blocks", msg, acceptance);
    }

    fn report_gossip(&self, topic: &str, msg: MessageRef, acceptance: Acceptance) {
        self.links
            .metrics
            .gossip(topic, acceptance_label(acceptance));
        self.links.outbox.send(NetCommand::Report(msg, acceptance));
    }
}
