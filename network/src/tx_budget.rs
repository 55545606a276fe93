//! Per-peer transaction budgets: [`TxBudgets`].
//!
//! A gossiped transaction costs its relay nothing when it is merely unpayable (a difference of
//! views is never a peer's fault), so the number of transactions a peer may hand to the node
//! is bounded instead, by a token bucket whose rate follows the peer's gossipsub score: a
//! peer that has delivered valid messages first (positive score, up to
//! [`TX_TRUSTED_SCORE`]) may relay up to [`TX_RATE_MAX_PER_SEC`]; a new or useless peer
//! (score 0) [`TX_RATE_MIN_PER_SEC`]; a peer whose score is negative less, down to nothing at
//! [`BAN_SCORE`]. A transaction over budget is ignored (not judged, not relayed, no penalty).
//! Transactions come in batches (one gossip message of up to [`MAX_TX_BATCH`]): a batch is
//! taken whole while the bucket holds at least one token, and may leave it in debt by at most
//! one batch, which the refill pays back before the next one passes; so the long-run rate is
//! the same, and a peer at the minimum rate can still relay a full batch.
//!
//! It must never: read the clock (callers pass `now`), touch the swarm, or remember a peer
//! that is not connected (the service calls [`TxBudgets::remove`] on disconnect, and the
//! table is capped at [`MAX_TX_BUDGETS`] entries).

use std::collections::HashMap;
use std::time::Instant;

use libp2p::PeerId;

use crate::config::{
    BAN_SCORE, MAX_TX_BATCH, MAX_TX_BUDGETS, TX_RATE_MAX_PER_SEC, TX_RATE_MIN_PER_SEC,
    TX_TRUSTED_SCORE,
};

/// Transactions per second a peer with gossipsub `score` may relay (`None`: scoring is off,
/// treated as 0). The bucket holds one second's worth.
pub(crate) fn tx_rate(score: Option<f64>) -> f64 {
    let score = score.unwrap_or(0.0);
    if score >= 0.0 {
        let trust = (score / TX_TRUSTED_SCORE).min(1.0);
        TX_RATE_MIN_PER_SEC + (TX_RATE_MAX_PER_SEC - TX_RATE_MIN_PER_SEC) * trust
    } else {
        TX_RATE_MIN_PER_SEC * (1.0 - score / BAN_SCORE).max(0.0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct TxBudgets {
    buckets: HashMap<PeerId, Bucket>,
}

impl TxBudgets {
    /// Takes a batch of `n` transactions (at most [`MAX_TX_BATCH`] count) from `peer`'s
    /// budget at its current `score`; `false` when the budget is spent. A peer seen for the
    /// first time starts with a full bucket at the minimum rate (trust is earned, not
    /// assumed).
    pub(crate) fn take(
        &mut self,
        peer: PeerId,
        score: Option<f64>,
        n: usize,
        now: Instant,
    ) -> bool {
        let rate = tx_rate(score);
        if self.buckets.len() >= MAX_TX_BUDGETS && !self.buckets.contains_key(&peer) {
            // Only reached if disconnects were missed. Starting over gives no peer more than
            // a new peer gets (one second at the minimum rate).
            self.buckets.clear();
        }
        let bucket = self.buckets.entry(peer).or_insert(Bucket {
            tokens: TX_RATE_MIN_PER_SEC,
            at: now,
        });
        let dt = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + dt * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            // n is at most MAX_TX_BATCH (512), exact in an f64.
            bucket.tokens -= n.min(MAX_TX_BATCH) as f64;
            true
        } else {
            false
        }
    }

    /// `peer` disconnected.
    pub(crate) fn remove(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }

    /// Peers tracked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::peer;
    use std::time::Duration;

    fn taken(b: &mut TxBudgets, p: PeerId, score: Option<f64>, n: usize, now: Instant) -> usize {
        (0..n).filter(|_| b.take(p, score, 1, now)).count()
    }

    #[test]
    fn the_rate_follows_the_score() {
        assert_eq!(tx_rate(None), TX_RATE_MIN_PER_SEC);
        assert_eq!(tx_rate(Some(0.0)), TX_RATE_MIN_PER_SEC);
        assert_eq!(tx_rate(Some(TX_TRUSTED_SCORE)), TX_RATE_MAX_PER_SEC);
        assert_eq!(tx_rate(Some(TX_TRUSTED_SCORE * 10.0)), TX_RATE_MAX_PER_SEC);
        let half = tx_rate(Some(TX_TRUSTED_SCORE / 2.0));
        assert!(half > TX_RATE_MIN_PER_SEC && half < TX_RATE_MAX_PER_SEC);
        let bad = tx_rate(Some(BAN_SCORE / 2.0));
        assert!((bad - TX_RATE_MIN_PER_SEC / 2.0).abs() < 1e-9, "{bad}");
        assert_eq!(tx_rate(Some(BAN_SCORE)), 0.0);
        assert_eq!(tx_rate(Some(BAN_SCORE * 2.0)), 0.0);
    }

    #[test]
    fn a_new_peer_gets_the_minimum_burst_then_its_rate() {
        let mut b = TxBudgets::default();
        let t0 = Instant::now();
        let burst = TX_RATE_MIN_PER_SEC as usize;
        assert_eq!(taken(&mut b, peer(1), Some(0.0), burst * 3, t0), burst);
        // A tenth of a second later, a tenth of the rate.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(taken(&mut b, peer(1), Some(0.0), burst, t1), burst / 10);
        // Another peer has its own budget.
        assert_eq!(taken(&mut b, peer(2), None, burst * 2, t1), burst);
    }

    #[test]
    fn a_trusted_peer_relays_more_and_a_penalised_one_less() {
        let mut b = TxBudgets::default();
        let t0 = Instant::now();
        let (good, bad) = (peer(1), peer(2));
        b.take(good, Some(TX_TRUSTED_SCORE), 1, t0);
        b.take(bad, Some(BAN_SCORE / 2.0), 1, t0);
        let t1 = t0 + Duration::from_secs(1);
        let max = TX_RATE_MAX_PER_SEC as usize;
        let good_n = taken(&mut b, good, Some(TX_TRUSTED_SCORE), max * 2, t1);
        assert_eq!(good_n, max);
        let bad_n = taken(&mut b, bad, Some(BAN_SCORE / 2.0), max, t1);
        assert!(bad_n <= TX_RATE_MIN_PER_SEC as usize / 2, "{bad_n}");
        // At the ban score nothing refills.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(taken(&mut b, bad, Some(BAN_SCORE), 10, t2), 0);
    }

    #[test]
    fn a_batch_passes_whole_and_its_debt_is_paid_back_before_the_next() {
        let mut b = TxBudgets::default();
        let t0 = Instant::now();
        let min = TX_RATE_MIN_PER_SEC;
        // A new peer (500 tokens) may relay one full batch of 512, leaving a debt of 12.
        assert!(b.take(peer(1), Some(0.0), MAX_TX_BATCH, t0));
        assert!(!b.take(peer(1), Some(0.0), 1, t0));
        // The debt and one token take (12 + 1) / 500 s to refill; not before.
        let debt = MAX_TX_BATCH as f64 - min;
        let almost = Duration::from_secs_f64(debt / min);
        assert!(!b.take(peer(1), Some(0.0), 1, t0 + almost));
        let enough = Duration::from_secs_f64((debt + 1.0) / min + 0.001);
        assert!(b.take(peer(1), Some(0.0), 1, t0 + enough));
        // Over ten seconds a minimum-rate peer relays about ten seconds' worth in batches.
        let mut relayed = MAX_TX_BATCH + 1;
        for ms in (0..10_000u64).step_by(10) {
            let at = t0 + enough + Duration::from_millis(ms);
            if b.take(peer(1), Some(0.0), 100, at) {
                relayed += 100;
            }
        }
        assert!(relayed <= (min * 11.0) as usize + MAX_TX_BATCH, "{relayed}");
        assert!(relayed >= (min * 9.0) as usize, "{relayed}");
    }

    #[test]
    fn budgets_are_forgotten_on_disconnect_and_bounded() {
        let mut b = TxBudgets::default();
        let t0 = Instant::now();
        b.take(peer(1), None, 1, t0);
        b.remove(&peer(1));
        assert_eq!(b.len(), 0);
        for _ in 0..=MAX_TX_BUDGETS {
            b.take(PeerId::random(), None, 1, t0);
        }
        assert!(b.len() <= MAX_TX_BUDGETS);
    }
}
