//! A circuit breaker for the origin: after enough consecutive failures it opens and
//! requests fail fast (served stale where possible); after a pause one probe is let
//! through (half-open); its success closes the breaker, its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// The breaker of one origin.
pub struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

/// Leave to send one request; report how it went. A permit dropped unreported counts
/// as a failure, so a cancelled probe cannot leave the breaker half-open forever.
pub struct Permit<'a> {
    breaker: &'a Breaker,
    reported: bool,
}

/// The breaker is open: the origin is considered down.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the origin is failing; requests to it are paused (circuit open)")]
pub struct Open;

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
        }
    }

    /// Leave to try a request, or `Open`.
    pub fn allow(&self) -> Result<Permit<'_>, Open> {
        let mut s = self.state.lock().map_err(|_| Open)?;
        match *s {
            State::Closed { .. } => {}
            State::Open { until } if Instant::now() >= until => *s = State::HalfOpen,
            State::Open { .. } | State::HalfOpen => return Err(Open),
        }
        Ok(Permit {
            breaker: self,
            reported: false,
        })
    }

    /// Whether requests are being refused now.
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .map(|s| !matches!(*s, State::Closed { .. }))
            .unwrap_or(true)
    }

    fn record(&self, ok: bool) {
        let Ok(mut s) = self.state.lock() else { return };
        *s = match (*s, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (_, false) => State::Open {
                until: Instant::now() + self.open_for,
            },
        };
    }
}

impl Permit<'_> {
    /// The origin answered (any status that is not its own failure).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(true);
    }

    /// The origin failed (5xx, timeout, refused connection).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(false);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.record(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let b = Breaker::new(2, Duration::from_millis(50));
        b.allow().unwrap().failure();
        assert!(!b.is_open());
        b.allow().unwrap().failure();
        assert!(b.is_open());
        assert!(b.allow().is_err());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.allow().unwrap();
        assert!(b.allow().is_err(), "a second request during the probe");
        probe.failure();
        assert!(b.allow().is_err(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(60));
        b.allow().unwrap().success();
        assert!(!b.is_open());
        assert!(b.allow().is_ok());
    }

    #[test]
    fn an_abandoned_probe_counts_as_failure() {
        let b = Breaker::new(1, Duration::from_millis(10));
        b.allow().unwrap().failure();
        std::thread::sleep(Duration::from_millis(20));
        drop(b.allow().unwrap());
        assert!(b.allow().is_err());
    }
}
