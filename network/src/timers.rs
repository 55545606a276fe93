//! The service's periodic duties: [`Timers`] says, for a given `now`, which are due.
//!
//! It owns the last time each duty ran: polling gossip scores, the once-a-second slow tick
//! (ban expiry, handshake timeouts), status refreshes and Kademlia bootstraps (eagerly after
//! new addresses were learned, at most once per [`BOOTSTRAP_MIN_INTERVAL`], and every
//! [`KAD_BOOTSTRAP_INTERVAL`] while below `max_peers`).
//!
//! It must never read the clock or perform a duty itself: the service passes `now` in and
//! acts on the returned [`Due`].

use std::time::Instant;

use crate::config::{
    BOOTSTRAP_MIN_INTERVAL, KAD_BOOTSTRAP_INTERVAL, SCORE_POLL, SLOW_TICK, STATUS_REFRESH,
};

/// The duties due at one tick.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    /// Poll gossip scores and ban peers below the threshold.
    pub score_poll: bool,
    /// Expire bans, disconnect peers without a handshake in time.
    pub slow_tick: bool,
    /// Send our status to every handshaked peer.
    pub status_refresh: bool,
    /// Bootstrap Kademlia.
    pub bootstrap: bool,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Timers {
    bootstrap_wanted: bool,
    last_bootstrap: Option<Instant>,
    last_score_poll: Instant,
    last_status_refresh: Instant,
    last_slow_tick: Instant,
}

impl Timers {
    /// Timers started at `now` (no bootstrap yet).
    pub(crate) fn new(now: Instant) -> Self {
        Timers {
            bootstrap_wanted: false,
            last_bootstrap: None,
            last_score_poll: now,
            last_status_refresh: now,
            last_slow_tick: now,
        }
    }

    /// New addresses were learned: bootstrap soon.
    pub(crate) fn want_bootstrap(&mut self) {
        self.bootstrap_wanted = true;
    }

    /// The duties due at `now`; each is reset as it is returned. `below_max_peers` enables the
    /// periodic bootstrap.
    pub(crate) fn due(&mut self, now: Instant, below_max_peers: bool) -> Due {
        let since = |t: Instant| now.saturating_duration_since(t);
        let mut due = Due::default();
        if self.bootstrap_wanted
            && self
                .last_bootstrap
                .is_none_or(|t| since(t) >= BOOTSTRAP_MIN_INTERVAL)
        {
            self.bootstrap_wanted = false;
            due.bootstrap = true;
        }
        if since(self.last_score_poll) >= SCORE_POLL {
            self.last_score_poll = now;
            due.score_poll = true;
        }
        if since(self.last_slow_tick) >= SLOW_TICK {
            self.last_slow_tick = now;
            due.slow_tick = true;
            if since(self.last_status_refresh) >= STATUS_REFRESH {
                self.last_status_refresh = now;
                due.status_refresh = true;
            }
            if below_max_peers
                && self
                    .last_bootstrap
                    .is_none_or(|t| since(t) >= KAD_BOOTSTRAP_INTERVAL)
            {
                due.bootstrap = true;
            }
        }
        if due.bootstrap {
            self.last_bootstrap = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nothing_is_due_at_start_but_the_first_bootstrap_comes_with_the_slow_tick() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        assert_eq!(t.due(t0, true), Due::default());
        let due = t.due(t0 + SLOW_TICK, true);
        assert!(due.slow_tick && due.score_poll && due.bootstrap);
        assert!(!due.status_refresh);
        // Not again before the interval.
        let due = t.due(t0 + SLOW_TICK * 2, true);
        assert!(due.slow_tick && !due.bootstrap);
        let due = t.due(t0 + SLOW_TICK + KAD_BOOTSTRAP_INTERVAL, true);
        assert!(due.bootstrap);
    }

    #[test]
    fn periodic_bootstrap_only_below_max_peers() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        assert!(!t.due(t0 + KAD_BOOTSTRAP_INTERVAL, false).bootstrap);
        assert!(
            t.due(t0 + KAD_BOOTSTRAP_INTERVAL + SLOW_TICK, true)
                .bootstrap
        );
    }

    #[test]
    fn wanted_bootstraps_are_throttled() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        t.want_bootstrap();
        assert!(t.due(t0, false).bootstrap, "at once the first time");
        t.want_bootstrap();
        let soon = t0 + BOOTSTRAP_MIN_INTERVAL - Duration::from_millis(1);
        assert!(!t.due(soon, false).bootstrap, "throttled");
        assert!(t.due(t0 + BOOTSTRAP_MIN_INTERVAL, false).bootstrap, "kept");
        assert!(
            !t.due(t0 + BOOTSTRAP_MIN_INTERVAL * 3, false).bootstrap,
            "once"
        );
    }

    #[test]
    fn status_refresh_and_score_poll_intervals() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let mut refreshes = 0;
        let mut polls = 0;
        let mut now = t0;
        while now < t0 + STATUS_REFRESH * 3 {
            now += Duration::from_millis(50);
            let due = t.due(now, false);
            refreshes += usize::from(due.status_refresh);
            polls += usize::from(due.score_poll);
        }
        assert_eq!(refreshes, 3);
        let expected = (STATUS_REFRESH * 3).as_millis() / SCORE_POLL.as_millis();
        assert_eq!(polls as u128, expected);
    }
}
