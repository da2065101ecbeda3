//! The fleet: what several tiercache nodes share through Redis. Fleet-wide counters and top
//! sets (buffered in process, flushed in batches) and a fleet-wide single-flight lock with a
//! lease, so one node, not every node, fetches a missing entry from the origin.
//!
//! Redis is an optimisation here, never a dependency: connecting happens in the background,
//! every operation is bounded by `op_timeout`, counters never touch the network on the
//! request path, and a lock that cannot be taken because Redis is down means "go alone".

mod config;
mod conn;
mod counters;
mod error;
mod health;
mod lock;
mod sets;
mod stream;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::{Cmd, FromRedisValue};
use tokio::sync::watch;
use tokio::time::Instant;

pub use config::RedisConfig;
pub use error::FleetError;
pub use health::{FleetHealth, FleetStatus};
pub use lock::{FleetLock, LockAttempt, WaitOutcome};
pub use stream::{STREAM_MAX_LEN, StreamEntry};

use conn::Conn;
use counters::CounterBuffer;
use health::HealthTracker;

/// The first reconnect delay after a failed connection attempt.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest delay between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Bound on one attempt to establish a connection (at least the op timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the fleet's shared Redis state; clones share one connection and one buffer.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RedisConfig,
    /// `None` until the first connection is made; it reconnects by itself afterwards.
    conn: watch::Sender<Option<Conn>>,
    health: HealthTracker,
    buffer: CounterBuffer,
    /// One flush at a time, so `flush_now` returns only after an in-flight flush landed.
    flushing: tokio::sync::Mutex<()>,
}

impl Fleet {
    /// A handle that connects in the background (retrying with backoff) and starts flushing
    /// counters; it never fails and never waits on the network. Call within a tokio runtime.
    pub fn connect(cfg: &RedisConfig) -> Fleet {
        let (conn, _) = watch::channel(None);
        let inner = Arc::new(Inner {
            cfg: cfg.clone(),
            conn,
            health: HealthTracker::new(),
            buffer: CounterBuffer::new(cfg.max_buffered),
            flushing: tokio::sync::Mutex::new(()),
        });
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(connect_loop(Arc::downgrade(&inner)));
                rt.spawn(flush_loop(Arc::downgrade(&inner), cfg.flush_interval));
            }
            Err(_) => {
                tracing::error!(
                    "Fleet::connect called outside a tokio runtime; the fleet stays offline"
                );
                inner.health.failed("not started inside a tokio runtime");
            }
        }
        Fleet { inner }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.cfg
    }

    /// Whether Redis is usable now, for health endpoints.
    pub fn health(&self) -> FleetHealth {
        let b = &self.inner.buffer;
        self.inner.health.snapshot(b.len(), b.dropped())
    }

    /// Adds `n` to fleet-wide counter `field`; cheap and local (flushed in the background).
    pub fn count(&self, field: &str, n: u64) {
        self.inner.buffer.count(field, n);
    }

    /// Adds `by` to `member`'s score in fleet-wide top set `set`; cheap and local.
    pub fn zincr(&self, set: &str, member: &str, by: f64) {
        self.inner.buffer.zincr(set, member, by);
    }

    /// Writes buffered counters to Redis now (tests, shutdown); on failure they stay buffered.
    pub async fn flush_now(&self) -> Result<(), FleetError> {
        let _one = self.inner.flushing.lock().await;
        let conn = self
            .conn(false, Instant::now() + self.inner.cfg.op_timeout)
            .await?;
        let pending = self.inner.buffer.take();
        if pending.is_empty() {
            return Ok(());
        }
        let cfg = &self.inner.cfg;
        let result = counters::flush(
            &conn,
            &cfg.key_prefix,
            pending,
            cfg.op_timeout,
            &self.inner.buffer,
        )
        .await;
        self.record(&result);
        result
    }

    /// The fleet-wide counters as Redis holds them (without this node's unflushed updates).
    pub async fn counters(&self) -> Result<BTreeMap<String, u64>, FleetError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(format!(
            "{}{}",
            self.inner.cfg.key_prefix,
            counters::STATS_KEY
        ));
        self.query(&cmd, false).await
    }

    /// The `n` highest-scored members of top set `set`, highest first.
    pub async fn top(&self, set: &str, n: usize) -> Result<Vec<(String, f64)>, FleetError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZREVRANGE");
        cmd.arg(format!(
            "{}{}{set}",
            self.inner.cfg.key_prefix,
            counters::TOP_KEY
        ))
        .arg(0)
        .arg(i64::try_from(n - 1).unwrap_or(i64::MAX))
        .arg("WITHSCORES");
        self.query(&cmd, false).await
    }

    /// The connection, if there is one. While the first connection attempt is in flight this
    /// waits for it, until `deadline`; with `fail_fast`, a Redis that failed moments ago is
    /// not asked again.
    async fn conn(&self, fail_fast: bool, deadline: Instant) -> Result<Conn, FleetError> {
        if fail_fast && self.inner.health.fail_fast() {
            return Err(FleetError::RecentlyFailed);
        }
        let mut rx = self.inner.conn.subscribe();
        if let Some(conn) = rx.borrow_and_update().clone() {
            return Ok(conn);
        }
        if self.inner.health.connect_failed_before() {
            return Err(FleetError::NotConnected);
        }
        let waited = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await;
        let conn = match waited {
            Ok(Ok(got)) => got.clone(),
            _ => None,
        };
        conn.ok_or(FleetError::NotConnected)
    }

    /// Runs one command within the op timeout (waiting for a first connection included) and
    /// records the outcome in the health state.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd, fail_fast: bool) -> Result<T, FleetError> {
        let limit = self.inner.cfg.op_timeout;
        let deadline = Instant::now() + limit;
        let mut conn = self.conn(fail_fast, deadline).await?;
        let result = match tokio::time::timeout_at(deadline, cmd.query_async::<T>(&mut conn)).await
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(FleetError::Redis(e)),
            Err(_) => Err(FleetError::Timeout(limit)),
        };
        self.record(&result);
        result
    }

    fn record<T>(&self, result: &Result<T, FleetError>) {
        match result {
            Ok(_) => self.inner.health.succeeded(),
            Err(e) => self.inner.health.failed(&e.to_string()),
        }
    }

    /// One background tick: flush what is buffered or, with nothing to flush, PING, so
    /// health follows Redis (down and back up) even on an idle node.
    async fn tick(&self) {
        if self.inner.conn.borrow().is_none() {
            return;
        }
        if self.inner.buffer.len() > 0 {
            if let Err(e) = self.flush_now().await {
                tracing::debug!(error = %e, "flushing fleet counters failed; kept for later");
            }
        } else {
            let _ = self.query::<String>(&redis::cmd("PING"), false).await;
        }
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("config", &self.inner.cfg)
            .field("status", &self.health().status)
            .finish()
    }
}

impl Drop for Inner {
    /// The last handle is gone: one best-effort flush of what is still buffered.
    fn drop(&mut self) {
        let pending = self.buffer.take();
        let conn = self.conn.borrow().clone();
        let (Some(conn), false, Ok(rt)) = (
            conn,
            pending.is_empty(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let prefix = self.cfg.key_prefix.clone();
        let limit = self.cfg.op_timeout;
        rt.spawn(async move {
            let scratch = CounterBuffer::new(0);
            if let Err(e) = counters::flush(&conn, &prefix, pending, limit, &scratch).await {
                tracing::debug!(error = %e, "final flush of fleet counters failed; dropped");
            }
        });
    }
}

/// Establishes the first connection, retrying with backoff (1 s doubling to 30 s) until it
/// succeeds or every handle is gone. Afterwards the connection reconnects by itself.
async fn connect_loop(inner: Weak<Inner>) {
    let mut delay = BACKOFF_MIN;
    loop {
        let Some(cfg) = inner.upgrade().map(|i| i.cfg.clone()) else {
            return;
        };
        let limit = CONNECT_TIMEOUT.max(cfg.op_timeout);
        let attempt = tokio::time::timeout(limit, Conn::open(&cfg)).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let error = match attempt {
            Ok(Ok(conn)) => {
                inner.conn.send_replace(Some(conn));
                inner.health.succeeded();
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("connecting timed out after {limit:?}"),
        };
        tracing::warn!(
            url = %config::redact(&cfg.url),
            error,
            retry_in = ?delay,
            "cannot reach the fleet's redis; retrying"
        );
        inner.health.failed(&error);
        drop(inner);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

/// Flushes counters every `every` until every handle is gone.
async fn flush_loop(inner: Weak<Inner>, every: Duration) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        Fleet { inner }.tick().await;
    }
}
