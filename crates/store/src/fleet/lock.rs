//! The fleet-wide single-flight lock: of all nodes about to fetch the same thing from the
//! origin, one holds the lock and fetches; the others wait for it (or give up waiting).
//!
//! A lock is a Redis key holding a random token, set with a lease. Its holder renews the lease
//! every third of it while it lives, and deletes the key when done, both only if the token is
//! still its own. A holder that dies stops renewing, so the lease runs out and another node
//! takes over. When Redis is unreachable every node proceeds alone (fail open): the lock saves
//! origin traffic, it never guards correctness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::Fleet;
use super::error::FleetError;

/// Renews the lease only if the key still holds our token.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('pexpire', KEYS[1], ARGV[2]) \
                     else return 0 end";
/// Deletes the key only if it still holds our token.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                         return redis.call('del', KEYS[1]) \
                       else return 0 end";

/// What `try_lock` got.
#[derive(Debug)]
pub enum LockAttempt {
    /// This node holds the lock: fetch, then release it.
    Acquired(FleetLock),
    /// Another node holds it: wait for it (see `Fleet::wait_unlocked`), then read its result.
    Held,
    /// Redis is down or slow: proceed alone, as if there were no fleet.
    Unavailable,
}

/// How `wait_unlocked` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The lock is free: its holder released it or its lease expired.
    Released,
    /// Still held after the longest wait: proceed alone.
    TimedOut,
    /// Redis is down or slow: proceed alone.
    Unavailable,
}

/// A held fleet lock; its lease is renewed in the background until it is released or dropped.
#[derive(Debug)]
pub struct FleetLock {
    fleet: Fleet,
    name: String,
    key: String,
    token: String,
    lost: Arc<AtomicBool>,
    /// The renewal task; `None` once released or abandoned.
    renewal: Option<JoinHandle<()>>,
}

impl FleetLock {
    /// Starts renewing a lock just acquired with `token`.
    pub(crate) fn start(fleet: Fleet, name: &str, key: String, token: String) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew(
            fleet.clone(),
            key.clone(),
            token.clone(),
            lost.clone(),
        ));
        FleetLock {
            fleet,
            name: name.to_owned(),
            key,
            token,
            lost,
            renewal: Some(renewal),
        }
    }

    /// The name it was taken under, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether renewal found the lock gone or taken over (its lease ran out while Redis was
    /// unreachable): another node may be fetching too, which is harmless but worth logging.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Relaxed)
    }

    /// Stops renewing and frees the lock so waiters go on at once; `Ok(false)` if it was no
    /// longer ours (lease expired).
    pub async fn release(mut self) -> Result<bool, FleetError> {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
        self.fleet.release_token(&self.key, &self.token).await
    }

    /// Stops renewing without releasing, as a crashed holder would: the lock stays held until
    /// its lease runs out. For fault tests.
    pub fn abandon(mut self) {
        if let Some(task) = self.renewal.take() {
            task.abort();
        }
    }
}

impl Drop for FleetLock {
    /// A lock dropped unreleased (an error path, a cancelled request) is released in the
    /// background, best effort; if that fails too, the lease expires.
    fn drop(&mut self) {
        let Some(task) = self.renewal.take() else {
            return;
        };
        task.abort();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let fleet = self.fleet.clone();
            let key = std::mem::take(&mut self.key);
            let token = std::mem::take(&mut self.token);
            rt.spawn(async move {
                if let Err(e) = fleet.release_token(&key, &token).await {
                    tracing::debug!(%key, error = %e, "releasing a dropped fleet lock failed; its lease will expire");
                }
            });
        }
    }
}

/// Renews the lease every third of it until the lock is found lost (or the task is aborted).
/// A failed renewal is retried at the next tick: the lease may well still be running.
async fn renew(fleet: Fleet, key: String, token: String, lost: Arc<AtomicBool>) {
    let every = (fleet.config().lock_lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        match fleet.renew_token(&key, &token).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Relaxed);
                tracing::warn!(%key, "fleet lock lost: its lease ran out before renewal");
                return;
            }
            Err(e) => tracing::debug!(%key, error = %e, "renewing a fleet lock failed; retrying"),
        }
    }
}

impl Fleet {
    /// Tries to become the one node that fetches `name`; never waits longer than the op
    /// timeout, and answers `Unavailable` at once while Redis is known to be failing.
    pub async fn try_lock(&self, name: &str) -> LockAttempt {
        let key = self.lock_key(name);
        let token = format!("{:032x}", rand::random::<u128>());
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(lease_ms(self.config().lock_lease));
        match self.query::<redis::Value>(&cmd, true).await {
            Ok(redis::Value::Nil) => LockAttempt::Held,
            Ok(redis::Value::Okay | redis::Value::SimpleString(_)) => {
                LockAttempt::Acquired(FleetLock::start(self.clone(), name, key, token))
            }
            Ok(other) => {
                tracing::warn!(%key, reply = ?other, "unexpected reply to a fleet lock SET");
                LockAttempt::Unavailable
            }
            Err(FleetError::NotConnected | FleetError::RecentlyFailed) => LockAttempt::Unavailable,
            Err(e) => {
                tracing::debug!(%key, error = %e, "fleet lock unavailable; proceeding alone");
                // The SET may have been applied with its reply lost: undo it, or others would
                // wait a whole lease for a holder that never knew it held the lock.
                let fleet = self.clone();
                tokio::spawn(async move {
                    let _ = fleet.release_token(&key, &token).await;
                });
                LockAttempt::Unavailable
            }
        }
    }

    /// Whether some node holds lock `name`; `None` when Redis cannot tell (proceed alone).
    pub async fn lock_holder_alive(&self, name: &str) -> Option<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.lock_key(name));
        self.query::<i64>(&cmd, true).await.ok().map(|n| n > 0)
    }

    /// Waits, polling every `poll`, until lock `name` is free, for at most about `max_wait`.
    pub async fn wait_unlocked(
        &self,
        name: &str,
        poll: Duration,
        max_wait: Duration,
    ) -> WaitOutcome {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            match self.lock_holder_alive(name).await {
                None => return WaitOutcome::Unavailable,
                Some(false) => return WaitOutcome::Released,
                Some(true) => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return WaitOutcome::TimedOut;
            }
            tokio::time::sleep(poll.min(deadline - now)).await;
        }
    }

    fn lock_key(&self, name: &str) -> String {
        format!("{}lock:{name}", self.config().key_prefix)
    }

    /// Extends the lease of `key` if it still holds `token`; false if it does not.
    async fn renew_token(&self, key: &str, token: &str) -> Result<bool, FleetError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RENEW)
            .arg(1)
            .arg(key)
            .arg(token)
            .arg(lease_ms(self.config().lock_lease));
        Ok(self.query::<i64>(&cmd, false).await? == 1)
    }

    /// Deletes `key` if it still holds `token`; false if it does not.
    async fn release_token(&self, key: &str, token: &str) -> Result<bool, FleetError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE).arg(1).arg(key).arg(token);
        Ok(self.query::<i64>(&cmd, false).await? == 1)
    }
}

/// The lease in whole milliseconds, at least one (PX 0 is an error).
fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}
