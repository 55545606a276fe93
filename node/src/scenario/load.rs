//! The scenario's load: real signed transfers between dev accounts, submitted in batches
//! (`POST /v1/transactions/batch`) at the `[load]` rate and pattern, with every transfer's
//! submit time and answer recorded.
//!
//! It owns: the senders' keys and nonces, the schedule ([`due`]), the seeded choices
//! (recipients and amounts), and the record of each transfer. Sender `s` always submits
//! through node `nodes[s % len]`, so its nonces follow one another on one node; after any
//! refusal, `queued` answer or failed request it re-reads its nonce (the highest
//! `next_nonce` any node reports) before it sends again.
//! It must never: retry a transfer (a refused or failed one is recorded as such), or send
//! more than [`MAX_TRANSFERS`](super::spec::MAX_TRANSFERS) transfers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use peerchain_ledger::crypto::Keypair;
use peerchain_ledger::{Address, Transaction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::http::{Api, BatchItem, MAX_BATCH};
use super::spec::{Load, Pattern};
use super::timeline::Clock;

/// How often a steady load sends what is due.
pub const TICK_MS: u64 = 100;

/// One transfer the load tried to send.
#[derive(Debug, Clone, Serialize)]
pub struct TransferRecord {
    /// Transaction id (`None` when it was never signed: its sender's nonce was unknown).
    pub txid: Option<String>,
    /// Dev account index of the sender.
    pub sender: u32,
    /// Node it was sent to.
    pub node: usize,
    /// When it was submitted, ms on the run's clock.
    pub submit_ms: u64,
    /// The node's answer.
    pub answer: Answer,
    /// Height in the final main chain, once matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// When its block was first seen on a node's main chain, ms on the run's clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_ms: Option<u64>,
    /// Per node: when it first admitted the transfer to its mempool (its `tx` event), ms on
    /// the run's clock; empty when never signed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seen_ms: Vec<Option<u64>>,
}

impl TransferRecord {
    /// A transfer node 0 accepted as `pending`, submitted at `submit_ms` and not matched with
    /// a chain yet: for the tests of the parts that read transfers.
    #[cfg(test)]
    pub fn test_pending(txid: &str, submit_ms: u64) -> Self {
        TransferRecord {
            txid: Some(txid.into()),
            sender: 0,
            node: 0,
            submit_ms,
            answer: Answer::Accepted {
                status: "pending".into(),
            },
            height: None,
            confirmed_ms: None,
            seen_ms: Vec::new(),
        }
    }

    /// Whether a node admitted it (`pending`, or already `confirmed`): the runner promises
    /// these reach the final chain (`no_transfer_lost`).
    pub fn accepted(&self) -> bool {
        matches!(&self.answer, Answer::Accepted { .. })
    }
}

/// A node's answer to one transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Answer {
    /// `pending` or `confirmed`.
    Accepted {
        /// The status answered.
        status: String,
    },
    /// `queued`: held for a missing predecessor, not promised.
    Queued,
    /// Refused with an error code.
    Refused {
        /// Error code.
        code: String,
        /// Error message.
        message: String,
    },
    /// Not answered (node down, timeout) or never sent.
    Failed {
        /// Why.
        error: String,
    },
}

/// Transfers due `elapsed_ms` after the load started (capped at the total).
pub fn due(load: &Load, elapsed_ms: u64) -> u64 {
    let elapsed = elapsed_ms.min(load.duration_ms);
    let tps = u64::from(load.tps);
    let n = match load.pattern {
        Pattern::Steady => tps * elapsed / 1000,
        Pattern::Bursts { period_ms } => {
            let per_burst = (tps * period_ms / 1000).max(1);
            (elapsed / period_ms + 1) * per_burst
        }
    };
    n.min(load.total())
}

/// Starts the load on its own thread; its records come back when it is joined.
pub fn spawn(
    load: Load,
    chain_id: u64,
    urls: Vec<String>,
    seed: u64,
    clock: Clock,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<Vec<TransferRecord>>> {
    let api = Api::new(Duration::from_secs(10))?;
    let generator = Generator::new(load, chain_id, urls, seed, api);
    std::thread::Builder::new()
        .name("scenario-load".into())
        .spawn(move || generator.run(&clock, &stop))
        .context("cannot start the load thread")
}

struct Sender {
    key: Keypair,
    address: String,
    node: usize,
    nonce: u64,
    resync: bool,
}

struct Generator {
    load: Load,
    chain_id: u64,
    urls: Vec<String>,
    api: Api,
    rng: StdRng,
    senders: Vec<Sender>,
    recipients: Vec<Address>,
    records: Vec<TransferRecord>,
}

impl Generator {
    fn new(load: Load, chain_id: u64, urls: Vec<String>, seed: u64, api: Api) -> Self {
        let senders = (0..load.accounts)
            .map(|s| {
                let key = Keypair::dev(s);
                let node = load.nodes[s as usize % load.nodes.len()];
                Sender {
                    address: key.address().to_string(),
                    key,
                    node,
                    nonce: 0,
                    resync: false,
                }
            })
            .collect::<Vec<_>>();
        let recipients = senders.iter().map(|s| s.key.address()).collect();
        let capacity = usize::try_from(load.total()).unwrap_or(0);
        Generator {
            load,
            chain_id,
            urls,
            api,
            rng: StdRng::seed_from_u64(seed),
            senders,
            recipients,
            records: Vec::with_capacity(capacity),
        }
    }

    fn run(mut self, clock: &Clock, stop: &AtomicBool) -> Vec<TransferRecord> {
        let (start, end) = (self.load.start_ms, self.load.end_ms());
        let mut sent = 0;
        for tick in 0.. {
            let at = (start + tick * TICK_MS).min(end);
            if !clock.sleep_until(at, stop) {
                break;
            }
            let target = due(&self.load, clock.now_ms().saturating_sub(start));
            if target > sent {
                self.send(sent, target, clock);
                sent = target;
            }
            if at >= end {
                break;
            }
        }
        self.records
    }

    /// Signs transfers `from..to` of the sequence and submits them, one batch per node.
    fn send(&mut self, from: u64, to: u64, clock: &Clock) {
        let mut batches: BTreeMap<usize, Vec<(usize, Transaction)>> = BTreeMap::new();
        let now = clock.now_ms();
        for n in from..to {
            let s = usize::try_from(n % u64::from(self.load.accounts)).unwrap_or(0);
            let record = self.records.len();
            match self.sign(s) {
                Ok(tx) => {
                    self.records
                        .push(self.record(s, Some(tx.txid().to_hex()), now));
                    batches
                        .entry(self.senders[s].node)
                        .or_default()
                        .push((record, tx));
                }
                Err(e) => {
                    let mut r = self.record(s, None, now);
                    r.answer = Answer::Failed {
                        error: format!("{e:#}"),
                    };
                    self.records.push(r);
                }
            }
        }
        for (node, batch) in batches {
            for chunk in batch.chunks(MAX_BATCH) {
                self.submit(node, chunk, clock);
            }
        }
    }

    fn record(&self, s: usize, txid: Option<String>, now: u64) -> TransferRecord {
        TransferRecord {
            txid,
            sender: u32::try_from(s).unwrap_or(u32::MAX),
            node: self.senders[s].node,
            submit_ms: now,
            answer: Answer::Failed {
                error: "not submitted".into(),
            },
            height: None,
            confirmed_ms: None,
            seen_ms: Vec::new(),
        }
    }

    fn sign(&mut self, s: usize) -> anyhow::Result<Transaction> {
        if self.senders[s].resync {
            self.senders[s].nonce = self.resync_nonce(s)?;
            self.senders[s].resync = false;
        }
        let r = if self.recipients.len() > 1 {
            let pick = self.rng.gen_range(0..self.recipients.len() - 1);
            if pick >= s { pick + 1 } else { pick }
        } else {
            0
        };
        let amount = self.rng.gen_range(1..=1000);
        let sender = &mut self.senders[s];
        let tx = sender.key.sign_transfer(
            self.chain_id,
            self.recipients[r],
            amount,
            self.load.fee,
            sender.nonce,
        );
        sender.nonce += 1;
        Ok(tx)
    }

    /// The highest `next_nonce` any node reports for sender `s`.
    fn resync_nonce(&self, s: usize) -> anyhow::Result<u64> {
        let address = &self.senders[s].address;
        self.urls
            .iter()
            .filter_map(|rpc| self.api.next_nonce(rpc, address).ok())
            .max()
            .with_context(|| format!("no node answered the nonce of dev account {s} ({address})"))
    }

    fn submit(&mut self, node: usize, chunk: &[(usize, Transaction)], clock: &Clock) {
        let txs: Vec<Transaction> = chunk.iter().map(|(_, tx)| tx.clone()).collect();
        let submitted = clock.now_ms();
        let answers = self.api.submit_batch(&self.urls[node], &txs);
        for (k, (record, _)) in chunk.iter().enumerate() {
            let answer = match &answers {
                Ok(items) => answer_of(items.get(k)),
                Err(e) => Answer::Failed {
                    error: format!("{e:#}"),
                },
            };
            let r = &mut self.records[*record];
            r.submit_ms = submitted;
            if !matches!(answer, Answer::Accepted { .. }) {
                let s = r.sender as usize;
                if let Some(sender) = self.senders.get_mut(s) {
                    sender.resync = true;
                }
            }
            r.answer = answer;
        }
    }
}

fn answer_of(item: Option<&BatchItem>) -> Answer {
    match item {
        Some(BatchItem::Known { status, .. }) if status == "queued" => Answer::Queued,
        Some(BatchItem::Known { status, .. }) => Answer::Accepted {
            status: status.clone(),
        },
        Some(BatchItem::Refused { error }) => Answer::Refused {
            code: error.code.clone(),
            message: error.message.clone(),
        },
        None => Answer::Failed {
            error: "no answer for this item".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(tps: u32, duration_ms: u64, pattern: Pattern) -> Load {
        Load {
            tps,
            start_ms: 0,
            duration_ms,
            accounts: 4,
            pattern,
            nodes: vec![0, 1],
            fee: 1,
            confirm_timeout_ms: 0,
        }
    }

    #[test]
    fn steady_load_is_due_evenly_and_ends_at_the_total() {
        let l = load(20, 10_000, Pattern::Steady);
        assert_eq!(due(&l, 0), 0);
        assert_eq!(due(&l, 100), 2);
        assert_eq!(due(&l, 5_000), 100);
        assert_eq!(due(&l, 10_000), 200);
        assert_eq!(due(&l, 99_000), 200, "never more than the total");
    }

    #[test]
    fn bursts_send_a_period_at_its_start() {
        let l = load(10, 10_000, Pattern::Bursts { period_ms: 5_000 });
        assert_eq!(due(&l, 0), 50);
        assert_eq!(due(&l, 4_999), 50);
        assert_eq!(due(&l, 5_000), 100);
        assert_eq!(due(&l, 10_000), 100);
    }

    #[test]
    fn answers_map_to_records() {
        let ok = BatchItem::Known {
            txid: "a".into(),
            status: "pending".into(),
        };
        assert!(matches!(answer_of(Some(&ok)), Answer::Accepted { .. }));
        let queued = BatchItem::Known {
            txid: "a".into(),
            status: "queued".into(),
        };
        assert_eq!(answer_of(Some(&queued)), Answer::Queued);
        assert!(matches!(answer_of(None), Answer::Failed { .. }));
    }

    #[test]
    fn the_seed_fixes_recipients_and_amounts_and_nobody_pays_itself() {
        let make = |seed| {
            let api = Api::new(Duration::from_secs(1)).expect("client");
            let mut g = Generator::new(load(10, 1000, Pattern::Steady), 7710, vec![], seed, api);
            (0..40)
                .map(|n| {
                    let tx = g.sign(n % 4).expect("sign");
                    assert_ne!(tx.to, g.senders[n % 4].key.address(), "no self-transfer");
                    (tx.to, tx.amount, tx.nonce)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(make(1), make(1));
        assert_ne!(make(1), make(2));
        let first = make(3);
        assert_eq!(first[4].2, 1, "sender 0's second transfer has nonce 1");
    }
}
