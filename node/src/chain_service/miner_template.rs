//! When the miner's template is renewed, and how: rebuilt (every transaction chosen again by
//! fee) on a new tip, when none is held, or every [`REBUILD_INTERVAL`] for a fresh timestamp
//! and fee order; in between extended with the transactions admitted since
//! (`peerchain_consensus::TemplateBuilder::extend`), at most every [`TEMPLATE_REFRESH`].
//!
//! A transfer waits for the next template, then for a block found on it: with 1 s blocks the
//! refresh interval adds about half of itself to the median confirmation. Choosing every
//! transaction again took a full pass over the mempool each time; an extension looks only at
//! what was admitted, so it can run four times as often.
//!
//! It owns: the template builder and the txids admitted since it last changed (at most a
//! block's worth: beyond that the next renewal is a rebuild). It must never: decide anything
//! about transactions or blocks (that is the consensus crate's builder); it reads no clock
//! (the caller passes `now`).

use std::time::{Duration, Instant};

use peerchain_consensus::TemplateBuilder;
use peerchain_ledger::Hash;

/// Least time between two renewals when only the mempool changed.
pub(super) const TEMPLATE_REFRESH: Duration = Duration::from_millis(50);

/// Longest a template is only extended before it is rebuilt (timestamp, fee order).
pub(super) const REBUILD_INTERVAL: Duration = Duration::from_secs(5);

/// What the miner's template needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Renewal {
    /// Nothing.
    None,
    /// Append the transactions admitted since.
    Extend,
    /// Choose every transaction again.
    Rebuild,
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct MinerTemplate {
    builder: Option<TemplateBuilder>,
    admitted: Vec<Hash>,
    max_admitted: usize,
    /// Set when `admitted` overflowed: the next renewal rebuilds.
    overflowed: bool,
    built: Instant,
    renewed: Instant,
    /// When the last rebuild failed: the next waits [`TEMPLATE_REFRESH`].
    failed: Option<Instant>,
}

impl MinerTemplate {
    /// No template yet; at most `max_admitted` txids are kept between renewals (a block's
    /// worth: an extension cannot take more).
    pub(super) fn new(max_admitted: usize, now: Instant) -> Self {
        MinerTemplate {
            builder: None,
            admitted: Vec::new(),
            max_admitted,
            overflowed: false,
            built: now,
            renewed: now,
            failed: None,
        }
    }

    /// Notes a transaction admitted to the mempool.
    pub(super) fn admitted(&mut self, txid: Hash) {
        if self.admitted.len() < self.max_admitted {
            self.admitted.push(txid);
        } else {
            self.overflowed = true;
        }
    }

    /// What the template needs at `now`, with the chain's tip `tip`; `forced` asks for a
    /// rebuild (a new tip, a miner without a job). A rebuild that failed is not tried again
    /// within [`TEMPLATE_REFRESH`].
    pub(super) fn renewal(&self, tip: Hash, now: Instant, forced: bool) -> Renewal {
        if self
            .failed
            .is_some_and(|at| now.duration_since(at) < TEMPLATE_REFRESH)
        {
            return Renewal::None;
        }
        let stale = match &self.builder {
            None => true,
            Some(b) => b.parent() != tip,
        };
        if forced || stale || self.overflowed || now.duration_since(self.built) >= REBUILD_INTERVAL
        {
            Renewal::Rebuild
        } else if !self.admitted.is_empty() && now.duration_since(self.renewed) >= TEMPLATE_REFRESH
        {
            Renewal::Extend
        } else {
            Renewal::None
        }
    }

    /// How long the chain thread may wait for messages before an extension is due; `None`
    /// when none is waiting.
    pub(super) fn due_in(&self, now: Instant) -> Option<Duration> {
        (self.builder.is_some() && !self.admitted.is_empty())
            .then(|| TEMPLATE_REFRESH.saturating_sub(now.duration_since(self.renewed)))
    }

    /// Holds `builder`, just built at `now`; what was admitted before is in it.
    pub(super) fn rebuilt(&mut self, builder: TemplateBuilder, now: Instant) {
        self.builder = Some(builder);
        self.admitted.clear();
        self.overflowed = false;
        self.built = now;
        self.renewed = now;
        self.failed = None;
    }

    /// A rebuild failed at `now`: no template until the next one succeeds.
    pub(super) fn rebuild_failed(&mut self, now: Instant) {
        self.clear();
        self.failed = Some(now);
    }

    /// The builder and the txids admitted since it last changed, for an extension at `now`.
    pub(super) fn extension(&mut self, now: Instant) -> Option<(&mut TemplateBuilder, Vec<Hash>)> {
        self.renewed = now;
        let admitted = std::mem::take(&mut self.admitted);
        self.builder.as_mut().map(|b| (b, admitted))
    }

    /// Forgets the template (mining stopped): the next renewal rebuilds.
    pub(super) fn clear(&mut self) {
        self.builder = None;
        self.admitted.clear();
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use peerchain_consensus::{Chain, ChainConfig};
    use peerchain_ledger::crypto::Keypair;
    use peerchain_ledger::{Address, Genesis, Store};

    use super::*;

    fn chain() -> (Genesis, Chain) {
        let g = Genesis::dev(2, 1_000_000, 2000);
        let store = Store::temporary(&g).expect("store");
        let chain = Chain::open(store, g.clone(), ChainConfig::default()).expect("chain");
        (g, chain)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rebuilt_when_missing_or_on_another_tip_or_after_the_rebuild_interval() {
        let (g, chain) = chain();
        let t0 = Instant::now();
        let mut t = MinerTemplate::new(10, t0);
        assert_eq!(
            t.renewal(chain.tip(), t0, false),
            Renewal::Rebuild,
            "none yet"
        );
        let builder = TemplateBuilder::new(&chain, Address([1; 20]), g.timestamp_ms + 1);
        t.rebuilt(builder.expect("template"), t0);
        assert_eq!(t.renewal(chain.tip(), t0 + ms(10), false), Renewal::None);
        assert_eq!(
            t.renewal(Hash([7; 32]), t0 + ms(10), false),
            Renewal::Rebuild,
            "new tip"
        );
        assert_eq!(
            t.renewal(chain.tip(), t0 + REBUILD_INTERVAL, false),
            Renewal::Rebuild
        );
        t.clear();
        assert_eq!(
            t.renewal(chain.tip(), t0 + ms(10), false),
            Renewal::Rebuild,
            "cleared"
        );
    }

    #[test]
    fn admissions_extend_at_most_every_refresh_and_an_overflow_rebuilds() {
        let (g, mut chain) = chain();
        let t0 = Instant::now();
        let mut t = MinerTemplate::new(2, t0);
        let now_ms = g.timestamp_ms + 1;
        let builder = TemplateBuilder::new(&chain, Address([1; 20]), now_ms).expect("template");
        t.rebuilt(builder, t0);
        let tx = Keypair::dev(0).sign_transfer(g.chain_id, Address([9; 20]), 5, 1, 0);
        chain.submit(tx.clone(), now_ms).expect("admitted");
        t.admitted(tx.txid());
        assert_eq!(
            t.renewal(chain.tip(), t0 + ms(10), false),
            Renewal::None,
            "too soon"
        );
        assert_eq!(
            t.renewal(chain.tip(), t0 + TEMPLATE_REFRESH, false),
            Renewal::Extend
        );
        let (builder, admitted) = t.extension(t0 + TEMPLATE_REFRESH).expect("held");
        assert_eq!(
            builder.extend(&chain, &admitted, now_ms).expect("extend"),
            1
        );
        assert_eq!(builder.template().transactions, vec![tx]);
        assert_eq!(t.due_in(t0 + TEMPLATE_REFRESH), None, "nothing waits");
        assert_eq!(
            t.renewal(chain.tip(), t0 + TEMPLATE_REFRESH * 3, false),
            Renewal::None,
            "nothing admitted since"
        );
        for n in 0..3 {
            t.admitted(Hash([n; 32]));
        }
        assert_eq!(
            t.renewal(chain.tip(), t0 + TEMPLATE_REFRESH + ms(1), false),
            Renewal::Rebuild,
            "more admitted than it keeps"
        );
    }
}
