//! Whether S3 answers, and the circuit that keeps a failing S3 off the request path.
//!
//! After a failed request the tier is `degraded`: every operation answers
//! [`L3Error::Unavailable`] at once, without a request, and one background prober HEADs a
//! path that is never written (a 404 proves S3 answers) after 1 s, then 2 s, 4 s … up to
//! 30 s (configurable). The first probe that gets an answer makes the tier `ok` again.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tracing::{info, warn};

use super::Inner;
use super::error::L3Error;
use crate::clock::now_ms;

/// The tier's state as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct L3Health {
    /// `ok` or `degraded`.
    pub status: L3Status,
    /// The error that degraded the tier (or the latest failed probe's); null when ok.
    pub last_error: Option<String>,
    /// When the tier became degraded, in ms since the Unix epoch; null when ok.
    pub since_ms: Option<u64>,
}

/// Whether S3 is in use or being avoided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L3Status {
    /// Requests go to S3.
    Ok,
    /// S3 failed; requests are answered as misses until a probe succeeds.
    Degraded,
}

enum State {
    Up,
    Down {
        since_ms: u64,
        last_error: String,
        backoff: Duration,
    },
}

/// The health state shared by every clone of a tier.
pub(super) struct Health {
    state: Mutex<State>,
    initial: Duration,
    max: Duration,
}

impl Health {
    pub(super) fn new(initial: Duration, max: Duration) -> Self {
        metrics::gauge!("tiercache_l3_up").set(1.0);
        Health {
            state: Mutex::new(State::Up),
            initial,
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ok` if requests may go to S3, else the open circuit's immediate answer.
    pub(super) fn admit(&self) -> Result<(), L3Error> {
        match &*self.lock() {
            State::Up => Ok(()),
            State::Down { since_ms, .. } => Err(L3Error::Unavailable {
                since_ms: *since_ms,
            }),
        }
    }

    /// Records a failed request; true if it just degraded the tier (start a prober then).
    pub(super) fn failed(&self, error: &L3Error) -> bool {
        let mut state = self.lock();
        match &mut *state {
            State::Up => {
                warn!(%error, "L3 degraded: S3 requests are skipped until a probe succeeds");
                metrics::gauge!("tiercache_l3_up").set(0.0);
                *state = State::Down {
                    since_ms: now_ms(),
                    last_error: error.to_string(),
                    backoff: self.initial,
                };
                true
            }
            State::Down { last_error, .. } => {
                *last_error = error.to_string();
                false
            }
        }
    }

    /// How long the prober waits before its next probe (None once the tier is up).
    fn next_probe(&self) -> Option<Duration> {
        match &*self.lock() {
            State::Up => None,
            State::Down { backoff, .. } => Some(*backoff),
        }
    }

    /// A probe failed: keep the circuit open and wait twice as long next time.
    fn probe_failed(&self, error: &L3Error) {
        if let State::Down {
            last_error,
            backoff,
            ..
        } = &mut *self.lock()
        {
            *last_error = error.to_string();
            *backoff = (*backoff * 2).min(self.max);
        }
    }

    /// A probe got an answer: requests go to S3 again.
    fn recovered(&self) {
        let mut state = self.lock();
        if let State::Down { since_ms, .. } = &*state {
            info!(
                down_ms = now_ms().saturating_sub(*since_ms),
                "L3 recovered: S3 answers again"
            );
        }
        *state = State::Up;
        metrics::gauge!("tiercache_l3_up").set(1.0);
    }

    /// The state as `/healthz` shows it.
    pub(super) fn snapshot(&self) -> L3Health {
        match &*self.lock() {
            State::Up => L3Health {
                status: L3Status::Ok,
                last_error: None,
                since_ms: None,
            },
            State::Down {
                since_ms,
                last_error,
                ..
            } => L3Health {
                status: L3Status::Degraded,
                last_error: Some(last_error.clone()),
                since_ms: Some(*since_ms),
            },
        }
    }
}

/// Probes S3 in the background until it answers; holds the tier weakly, so a dropped tier
/// stops it. Outside a Tokio runtime nothing is spawned and the tier stays degraded.
pub(super) fn spawn_prober(inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        warn!("no Tokio runtime: the L3 health prober cannot start");
        return;
    };
    runtime.spawn(async move {
        loop {
            let wait = match weak.upgrade().and_then(|i| i.health.next_probe()) {
                Some(wait) => wait,
                None => return,
            };
            tokio::time::sleep(wait).await;
            let Some(inner) = weak.upgrade() else { return };
            match inner.probe().await {
                Ok(()) => {
                    inner.health.recovered();
                    return;
                }
                Err(e) => inner.health.probe_failed(&e),
            }
        }
    });
}
