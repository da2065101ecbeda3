//! Fleet-wide counters and top sets: updates land in an in-process buffer (no network on the
//! request path) that is flushed to Redis in one pipelined batch; a batch Redis did not take
//! is merged back, so a Redis outage delays stats instead of losing them.
//!
//! Delivery is at least once: a batch that Redis applied but whose reply was lost (a timeout
//! at the wrong moment) is sent again and counted twice. Stats tolerate that; losing them
//! on every blip would be worse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::{RedisResult, Value};

use super::conn::Conn;
use super::error::FleetError;

/// The hash of counters, under the key prefix.
pub(crate) const STATS_KEY: &str = "stats";
/// The prefix of top sets' keys, under the key prefix.
pub(crate) const TOP_KEY: &str = "top:";

/// Counter updates not yet in Redis.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    fields: HashMap<String, u64>,
    sets: HashMap<String, HashMap<String, f64>>,
    /// Distinct fields plus distinct members over all sets: what the bound counts.
    entries: usize,
}

impl Pending {
    /// Whether there is nothing to flush.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Adds `n` to `field`; false if it is a new field and the buffer already holds `cap`.
    fn add_count(&mut self, field: &str, n: u64, cap: usize) -> bool {
        // HINCRBY takes a signed 64-bit increment.
        const MAX: u64 = i64::MAX as u64;
        if let Some(v) = self.fields.get_mut(field) {
            *v = v.saturating_add(n).min(MAX);
            return true;
        }
        if self.entries >= cap {
            return false;
        }
        self.fields.insert(field.to_owned(), n.min(MAX));
        self.entries += 1;
        true
    }

    /// Adds `by` to `member` of `set`; false if it is new and the buffer already holds `cap`.
    fn add_score(&mut self, set: &str, member: &str, by: f64, cap: usize) -> bool {
        if let Some(v) = self.sets.get_mut(set).and_then(|m| m.get_mut(member)) {
            let sum = *v + by;
            // Two huge opposite sums could make NaN, which ZINCRBY rejects: keep the old value.
            if sum.is_finite() {
                *v = sum;
            }
            return true;
        }
        if self.entries >= cap {
            return false;
        }
        self.sets
            .entry(set.to_owned())
            .or_default()
            .insert(member.to_owned(), by);
        self.entries += 1;
        true
    }

    /// The updates grouped by the Redis key they change, each as its commands.
    fn into_groups(self, prefix: &str) -> Vec<Group> {
        let mut groups = Vec::with_capacity(1 + self.sets.len());
        if !self.fields.is_empty() {
            groups.push(Group {
                key: format!("{prefix}{STATS_KEY}"),
                updates: self
                    .fields
                    .into_iter()
                    .map(|(field, n)| Update::Count { field, n })
                    .collect(),
            });
        }
        for (set, members) in self.sets {
            groups.push(Group {
                key: format!("{prefix}{TOP_KEY}{set}"),
                updates: members
                    .into_iter()
                    .map(|(member, by)| Update::Score {
                        set: set.clone(),
                        member,
                        by,
                    })
                    .collect(),
            });
        }
        groups
    }
}

/// One buffered update, kept with its command so a failed one can be put back.
#[derive(Debug)]
enum Update {
    Count {
        field: String,
        n: u64,
    },
    Score {
        set: String,
        member: String,
        by: f64,
    },
}

/// The updates to one Redis key (one cluster slot).
#[derive(Debug)]
struct Group {
    key: String,
    updates: Vec<Update>,
}

/// The bounded buffer every `count` and `zincr` lands in.
#[derive(Debug)]
pub(crate) struct CounterBuffer {
    pending: Mutex<Pending>,
    cap: usize,
    dropped: AtomicU64,
}

impl CounterBuffer {
    /// A buffer of at most `cap` distinct fields and members.
    pub(crate) fn new(cap: usize) -> Self {
        CounterBuffer {
            pending: Mutex::new(Pending::default()),
            cap,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Sums only: a panic elsewhere cannot leave them half-updated in a harmful way.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `n` to counter `field`.
    pub(crate) fn count(&self, field: &str, n: u64) {
        if n == 0 {
            return;
        }
        if !self.lock().add_count(field, n, self.cap) {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Adds `by` to `member`'s score in top set `set`.
    pub(crate) fn zincr(&self, set: &str, member: &str, by: f64) {
        if by == 0.0 || !by.is_finite() {
            return;
        }
        if !self.lock().add_score(set, member, by, self.cap) {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Everything buffered, leaving the buffer empty.
    pub(crate) fn take(&self) -> Pending {
        std::mem::take(&mut *self.lock())
    }

    /// Merges updates that did not reach Redis back in (bounded like new ones).
    pub(crate) fn put_back(&self, back: Pending) {
        if back.is_empty() {
            return;
        }
        let mut dropped = 0;
        {
            let mut p = self.lock();
            for (field, n) in back.fields {
                if !p.add_count(&field, n, self.cap) {
                    dropped += 1;
                }
            }
            for (set, members) in back.sets {
                for (member, by) in members {
                    if !p.add_score(&set, &member, by, self.cap) {
                        dropped += 1;
                    }
                }
            }
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Relaxed);
        }
    }

    /// Distinct fields and members waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries
    }

    /// Updates dropped so far because the buffer was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Counts updates Redis rejected outright (they would fail again if retried).
    fn rejected(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }
}

/// Most commands in one pipeline: each pipeline is bounded by the op timeout on its own, so a
/// large backlog is not one request that always times out (and, applied but unanswered, is
/// sent again and again).
const CHUNK: usize = 1000;

/// Writes `pending` to Redis in pipelines of at most [`CHUNK`] commands, each bounded by
/// `op_timeout`: one lane of pipelines on a single node, one lane per key on a cluster (a
/// pipeline cannot span slots), lanes concurrently. A lane stops at its first failed pipeline
/// and merges it and everything after it back into `buffer`; updates Redis rejected one by
/// one (say, a key of the wrong type) are dropped and counted. Returns the first failure.
pub(crate) async fn flush(
    conn: &Conn,
    prefix: &str,
    pending: Pending,
    op_timeout: Duration,
    buffer: &CounterBuffer,
) -> Result<(), FleetError> {
    let groups = pending.into_groups(prefix);
    let lanes: Vec<Vec<Group>> = if conn.is_cluster() {
        groups.into_iter().map(|g| vec![g]).collect()
    } else {
        vec![groups]
    };
    let results = futures::future::join_all(
        lanes
            .into_iter()
            .map(|lane| send_lane(conn.clone(), lane, op_timeout)),
    )
    .await;
    let mut first_error = None;
    let mut back = Pending::default();
    let mut rejected = 0;
    for lane in results {
        rejected += lane.rejected;
        for (_, update) in lane.unsent {
            match update {
                Update::Count { field, n } => back.add_count(&field, n, usize::MAX),
                Update::Score { set, member, by } => back.add_score(&set, &member, by, usize::MAX),
            };
        }
        if let Some(e) = lane.error {
            first_error.get_or_insert(e);
        }
    }
    buffer.rejected(rejected);
    buffer.put_back(back);
    first_error.map_or(Ok(()), Err)
}

/// How one lane's pipelines went.
struct LaneResult {
    /// Updates Redis rejected one by one.
    rejected: u64,
    /// Updates not applied (a pipeline failed), with their keys.
    unsent: Vec<(String, Update)>,
    /// Why a pipeline failed.
    error: Option<FleetError>,
}

/// Sends one lane's updates pipeline by pipeline, stopping at the first failure.
async fn send_lane(mut conn: Conn, lane: Vec<Group>, op_timeout: Duration) -> LaneResult {
    let mut updates = lane
        .into_iter()
        .flat_map(|g| {
            let key = g.key;
            g.updates.into_iter().map(move |u| (key.clone(), u))
        })
        .peekable();
    let mut out = LaneResult {
        rejected: 0,
        unsent: Vec::new(),
        error: None,
    };
    while updates.peek().is_some() {
        let chunk: Vec<(String, Update)> = updates.by_ref().take(CHUNK).collect();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (key, update) in &chunk {
            match update {
                Update::Count { field, n } => pipe.cmd("HINCRBY").arg(key).arg(field).arg(*n),
                Update::Score { member, by, .. } => {
                    pipe.cmd("ZINCRBY").arg(key).arg(*by).arg(member)
                }
            };
        }
        let sent = tokio::time::timeout(
            op_timeout,
            pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn),
        )
        .await;
        let error = match sent {
            Ok(Ok(replies)) => {
                for ((_, update), reply) in chunk.iter().zip(replies) {
                    if let Err(e) = reply {
                        out.rejected += 1;
                        tracing::warn!(?update, error = %e, "redis rejected a fleet counter update; dropped");
                    }
                }
                continue;
            }
            Ok(Err(e)) => FleetError::Redis(e),
            Err(_) => FleetError::Timeout(op_timeout),
        };
        out.error = Some(error);
        out.unsent = chunk;
        out.unsent.extend(updates);
        break;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_bounds() {
        let b = CounterBuffer::new(3);
        b.count("a", 1);
        b.count("a", 2);
        b.zincr("top", "x", 1.5);
        b.zincr("top", "x", 1.0);
        b.count("b", 1);
        assert_eq!(b.len(), 3);
        // Full: a new field is dropped, an existing one still adds up.
        b.count("c", 1);
        b.zincr("top", "y", 1.0);
        b.count("a", 4);
        assert_eq!(b.dropped(), 2);
        let p = b.take();
        assert_eq!(p.fields["a"], 7);
        assert_eq!(p.sets["top"]["x"], 2.5);
        assert_eq!(b.len(), 0);
        // Put back merges with what arrived meanwhile.
        b.count("a", 1);
        b.put_back(p);
        let p = b.take();
        assert_eq!(p.fields["a"], 8);
        assert_eq!(p.fields["b"], 1);
        assert_eq!(p.entries, 3);
    }

    #[test]
    fn ignores_noops_and_non_finite() {
        let b = CounterBuffer::new(10);
        b.count("a", 0);
        b.zincr("s", "m", 0.0);
        b.zincr("s", "m", f64::NAN);
        b.zincr("s", "m", f64::INFINITY);
        assert!(b.take().is_empty());
        b.count("big", u64::MAX);
        assert_eq!(b.take().fields["big"], i64::MAX as u64);
    }

    #[test]
    fn groups_by_key() {
        let b = CounterBuffer::new(10);
        b.count("hits", 2);
        b.count("misses", 1);
        b.zincr("pkgs", "react", 3.0);
        b.zincr("other", "x", 1.0);
        let mut groups = b.take().into_groups("p:");
        groups.sort_by(|a, b| a.key.cmp(&b.key));
        let keys: Vec<_> = groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["p:stats", "p:top:other", "p:top:pkgs"]);
        assert_eq!(groups[0].updates.len(), 2);
    }
}
