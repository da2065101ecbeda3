//! Whether the fleet's Redis is usable right now, as `/healthz` reports it and as the lock
//! path uses it to fail fast instead of waiting on a Redis that just failed.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::now_ms;

/// After a failure, lock operations skip Redis this long (answering "unavailable" at once);
/// the background flusher keeps probing meanwhile.
const FAIL_FAST_FOR: Duration = Duration::from_secs(1);

/// The fleet connection's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetStatus {
    /// The last operation succeeded.
    Ok,
    /// The last operation failed or timed out; nodes carry on alone until Redis answers again.
    Degraded,
    /// No connection has been established yet; attempts go on in the background.
    Connecting,
}

/// A point-in-time report of the fleet connection, for health endpoints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FleetHealth {
    /// Usable, failing, or not connected yet.
    pub status: FleetStatus,
    /// The most recent error (kept after recovery, to explain a past degradation).
    pub last_error: Option<String>,
    /// When `status` last changed, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Distinct counter fields and top-set members waiting to be flushed.
    pub buffered: usize,
    /// Counter updates dropped because the buffer was full while Redis was unreachable.
    pub dropped: u64,
}

struct State {
    status: FleetStatus,
    last_error: Option<String>,
    since_ms: u64,
    last_failure: Option<Instant>,
}

/// The shared, mutable health state behind [`FleetHealth`].
pub(crate) struct HealthTracker {
    state: Mutex<State>,
}

impl HealthTracker {
    pub(crate) fn new() -> Self {
        HealthTracker {
            state: Mutex::new(State {
                status: FleetStatus::Connecting,
                last_error: None,
                since_ms: now_ms(),
                last_failure: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Health is plain data: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An operation (or the first connection) succeeded.
    pub(crate) fn succeeded(&self) {
        let mut s = self.lock();
        if s.status != FleetStatus::Ok {
            if s.status == FleetStatus::Degraded {
                tracing::info!("fleet redis is reachable again");
            } else {
                tracing::info!("fleet redis connected");
            }
            s.status = FleetStatus::Ok;
            s.since_ms = now_ms();
        }
    }

    /// An operation failed: degraded, unless no connection was ever made.
    pub(crate) fn failed(&self, error: &str) {
        let mut s = self.lock();
        s.last_error = Some(error.to_owned());
        s.last_failure = Some(Instant::now());
        if s.status == FleetStatus::Ok {
            tracing::warn!(error, "fleet redis failed; nodes carry on without it");
            s.status = FleetStatus::Degraded;
            s.since_ms = now_ms();
        }
    }

    /// Whether a connection attempt has failed while still connecting (no reason to wait).
    pub(crate) fn connect_failed_before(&self) -> bool {
        let s = self.lock();
        s.status == FleetStatus::Connecting && s.last_error.is_some()
    }

    /// Whether lock operations should answer "unavailable" without asking Redis.
    pub(crate) fn fail_fast(&self) -> bool {
        let s = self.lock();
        s.status == FleetStatus::Degraded
            && s.last_failure.is_some_and(|t| t.elapsed() < FAIL_FAST_FOR)
    }

    /// The report, with the counter buffer's numbers filled in by the caller.
    pub(crate) fn snapshot(&self, buffered: usize, dropped: u64) -> FleetHealth {
        let s = self.lock();
        FleetHealth {
            status: s.status,
            last_error: s.last_error.clone(),
            since_ms: s.since_ms,
            buffered,
            dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let h = HealthTracker::new();
        assert_eq!(h.snapshot(0, 0).status, FleetStatus::Connecting);
        assert!(!h.connect_failed_before());
        h.failed("refused");
        // A failed first connection stays "connecting", with its error.
        let s = h.snapshot(0, 0);
        assert_eq!(s.status, FleetStatus::Connecting);
        assert_eq!(s.last_error.as_deref(), Some("refused"));
        assert!(h.connect_failed_before());
        assert!(!h.fail_fast());
        h.succeeded();
        assert_eq!(h.snapshot(0, 0).status, FleetStatus::Ok);
        h.failed("timeout");
        assert_eq!(h.snapshot(0, 0).status, FleetStatus::Degraded);
        assert!(h.fail_fast());
        h.succeeded();
        let s = h.snapshot(3, 1);
        assert_eq!(s.status, FleetStatus::Ok);
        assert_eq!(s.last_error.as_deref(), Some("timeout"));
        assert_eq!((s.buffered, s.dropped), (3, 1));
    }
}
