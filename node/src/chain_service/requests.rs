//! What the HTTP API asks of the chain thread: submissions, mining, invalidate and reconsider.
//! Reads never come here (they are served from the snapshot), nor do peer requests (the
//! network serves them; see [`crate::dispatch`]).

use peerchain_ledger::mempool::{Admitted, MempoolError};
use peerchain_ledger::{Address, Hash, Transaction, TxError};
use peerchain_rpc::node_api::{NodeError, Reply, Submitted};

use super::mining::MineJob;
use super::{ChainService, clock_ms};
use crate::adversary::{Adversary, AdversaryMode};
use crate::gap::Held;
use crate::outbox::NetCommand;
use crate::verdict::{MAX_GAP, node_error};

/// The requests the chain thread serves.
#[derive(Debug)]
pub enum ChainRequest {
    /// Admit transactions (signatures checked on all cores).
    Submit(
        Vec<Transaction>,
        Reply<Result<Vec<Result<Submitted, MempoolError>>, NodeError>>,
    ),
    /// Mine `blocks` blocks now.
    Mine {
        /// Blocks to mine.
        blocks: u32,
        /// Reward address (else the node's).
        miner: Option<Address>,
        /// Reply with the new block hashes.
        reply: Reply<Result<Vec<Hash>, NodeError>>,
    },
    /// Start or stop continuous mining.
    SetMining {
        /// Continuous mining on or off.
        enabled: bool,
        /// New hash-rate cap (`Some(0)`: none); `None` leaves it.
        hashrate: Option<u64>,
        /// The cap after the call.
        reply: Reply<Result<Option<u64>, NodeError>>,
    },
    /// Treat a block and its descendants as invalid.
    Invalidate(Hash, Reply<Result<(), NodeError>>),
    /// Undo `Invalidate`.
    Reconsider(Hash, Reply<Result<(), NodeError>>),
    /// Switch an adversary mode on (by name) or off.
    SetAdversary(Option<String>, Reply<Result<(), NodeError>>),
}

impl ChainService {
    /// Publishes events and the snapshot at once: a caller that reads right after its reply
    /// must see what its request changed (read-your-writes).
    pub(super) fn publish_now(&mut self) {
        self.publish_events();
        self.publish_snapshot();
    }

    /// Serves one request; the snapshot is published before the reply is sent. A request
    /// whose caller has already gone is skipped.
    pub(super) fn request(&mut self, req: ChainRequest) {
        match req {
            ChainRequest::Submit(txs, reply) => {
                if reply.is_closed() {
                    tracing::debug!(txs = txs.len(), "submission abandoned by its caller");
                    return;
                }
                if let Err(e) = self.refuse_if_disk_full() {
                    let _ = reply.send(Err(e));
                    return;
                }
                let results = self.submit(txs);
                self.publish_now();
                // A store write failed on the way (the arrival sequence is persisted): the
                // disk is full or failing. When nothing of the request was taken, the whole
                // request gets the clear answer; otherwise each item says what became of it.
                let failed = results.iter().find_map(|r| match r {
                    Err(MempoolError::Store(e)) if e.is_io() => Some(e.clone()),
                    _ => None,
                });
                if let Some(error) = failed {
                    self.storage_write_failed(&error);
                    let none_taken = results.iter().all(Result::is_err);
                    if none_taken && let Err(e) = self.refuse_if_disk_full() {
                        let _ = reply.send(Err(e));
                        return;
                    }
                }
                let _ = reply.send(Ok(results));
            }
            ChainRequest::Mine {
                blocks,
                miner,
                reply,
            } => {
                // Mined one block per loop turn, so other requests are served meanwhile.
                self.mine_jobs.push_back(MineJob {
                    remaining: blocks,
                    miner,
                    done: Vec::new(),
                    reply,
                });
            }
            ChainRequest::SetMining {
                enabled,
                hashrate,
                reply,
            } => {
                if let Some(rate) = hashrate {
                    self.miner.set_hashrate_cap((rate > 0).then_some(rate));
                }
                self.mining = enabled;
                self.refresh_template(true);
                self.publish_now();
                let _ = reply.send(Ok(self.miner.hashrate_cap()));
            }
            ChainRequest::Invalidate(hash, reply) => {
                let r = self
                    .refuse_if_disk_full()
                    .and_then(|()| self.chain.invalidate(&hash).map_err(node_error));
                self.tips_dirty = true;
                self.publish_now();
                let _ = reply.send(r);
            }
            ChainRequest::SetAdversary(mode, reply) => {
                let _ = reply.send(self.set_adversary(mode.as_deref()));
            }
            ChainRequest::Reconsider(hash, reply) => {
                let r = self
                    .refuse_if_disk_full()
                    .and_then(|()| self.chain.reconsider(&hash).map_err(node_error));
                self.tips_dirty = true;
                self.publish_now();
                let _ = reply.send(r);
            }
        }
    }

    /// A submitted transaction the mempool refused: one ahead of its sender's next nonce (by
    /// less than [`MAX_GAP`]) waits in the gap queue, as a gossiped one would, when the queue's
    /// bounds and the sender's funds allow; anything else is refused.
    fn queue_or_refuse(
        &mut self,
        tx: Transaction,
        error: MempoolError,
    ) -> Result<Submitted, MempoolError> {
        let ahead = matches!(
            &error,
            MempoolError::Invalid(TxError::NonceTooHigh { nonce, expected })
                if nonce.saturating_sub(*expected) < MAX_GAP
        );
        if !ahead {
            self.links.metrics.tx_rejected(error.code());
            return Err(error);
        }
        let txid = tx.txid();
        if self.gap.contains(&tx) {
            return Ok(Submitted {
                txid,
                new: false,
                queued: true,
            });
        }
        let sender = tx.sender();
        let available = self.spendable(&sender);
        let held = Held {
            tx,
            since_ms: clock_ms(self.clock_offset_ms),
            peer: None,
            msg: None,
        };
        match self.gap.hold(held, available) {
            Ok(replaced) => {
                if let Some(old) = replaced {
                    self.held_left(old, false);
                }
                Ok(Submitted {
                    txid,
                    new: true,
                    queued: true,
                })
            }
            Err(refused) => {
                tracing::debug!(error = %refused, "submitted transaction not queued");
                self.links.metrics.tx_rejected(error.code());
                Err(error)
            }
        }
    }

    fn set_adversary(&mut self, mode: Option<&str>) -> Result<(), NodeError> {
        if !self.allow_adversary {
            return Err(NodeError::AdversaryNotAllowed);
        }
        self.adversary = match mode {
            None => {
                tracing::warn!("adversary mode off");
                None
            }
            Some(name) => {
                let mode: AdversaryMode =
                    name.parse().map_err(|_| NodeError::UnknownAdversary {
                        mode: name.to_owned(),
                        known: AdversaryMode::names().join(", "),
                    })?;
                if mode.network().is_some() {
                    return Err(NodeError::AdversaryAtStartOnly { mode: mode.name() });
                }
                Some(Adversary::new(mode))
            }
        };
        Ok(())
    }

    fn submit(&mut self, txs: Vec<Transaction>) -> Vec<Result<Submitted, MempoolError>> {
        let results = self
            .chain
            .submit_batch(txs.clone(), clock_ms(self.clock_offset_ms));
        let mut new = Vec::new();
        let out: Vec<_> = results
            .into_iter()
            .zip(txs)
            .map(|(r, tx)| match r {
                Ok(Admitted::New { txid, .. }) => {
                    self.links.metrics.tx_accepted();
                    new.push(tx);
                    Ok(Submitted {
                        txid,
                        new: true,
                        queued: false,
                    })
                }
                Ok(Admitted::AlreadyPending(txid)) => Ok(Submitted {
                    txid,
                    new: false,
                    queued: false,
                }),
                Err(e) => self.queue_or_refuse(tx, e),
            })
            .collect();
        // Transactions waiting for the ones just admitted follow them.
        let senders: std::collections::HashSet<Address> =
            new.iter().map(Transaction::sender).collect();
        for sender in senders {
            self.admit_held(&sender);
        }
        if !new.is_empty() {
            self.links.outbox.send(NetCommand::PublishTxs(new));
            self.publish_events();
            if matches!(self.dev, Some(d) if d.block_time_ms == 0)
                && let Err(e) = self.mine_now(1, None)
            {
                tracing::error!(error = %e, "instant dev block failed");
            }
        }
        out
    }
}
