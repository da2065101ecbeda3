//! Per-tier counters: cheap atomics on the hot path, read by `/healthz` and `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Which tier a number belongs to; its label in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierName {
    /// In-memory, per process.
    L1,
    /// Local disk, per node.
    L2,
    /// Shared object storage (S3-compatible), across nodes.
    L3,
    /// The origin a loader fetches from.
    Origin,
}

impl TierName {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TierName::L1 => "l1",
            TierName::L2 => "l2",
            TierName::L3 => "l3",
            TierName::Origin => "origin",
        }
    }
}

/// Counters of one tier.
#[derive(Debug, Default)]
pub struct TierStats {
    hits: AtomicU64,
    misses: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    writes: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    corrupt: AtomicU64,
    errors: AtomicU64,
}

/// A point-in-time copy of a tier's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub writes: u64,
    pub evictions: u64,
    pub expired: u64,
    pub corrupt: u64,
    pub errors: u64,
}

impl TierStats {
    /// Counts a hit that served `bytes`, and how long the lookup took.
    pub fn hit(&self, tier: TierName, bytes: u64, took: Duration) {
        self.hits.fetch_add(1, Relaxed);
        self.bytes_read.fetch_add(bytes, Relaxed);
        observe(tier, "get", took);
    }

    /// Counts a miss, and how long it took to find out.
    pub fn miss(&self, tier: TierName, took: Duration) {
        self.misses.fetch_add(1, Relaxed);
        observe(tier, "get", took);
    }

    /// Counts a stored entry of `bytes`.
    pub fn wrote(&self, tier: TierName, bytes: u64, took: Duration) {
        self.writes.fetch_add(1, Relaxed);
        self.bytes_written.fetch_add(bytes, Relaxed);
        observe(tier, "put", took);
    }

    /// Counts `n` entries evicted for space.
    pub fn evicted(&self, n: u64) {
        self.evictions.fetch_add(n, Relaxed);
    }

    /// Counts `n` entries dropped because they expired.
    pub fn expired(&self, n: u64) {
        self.expired.fetch_add(n, Relaxed);
    }

    /// Counts a read whose bytes failed verification.
    pub fn corrupt(&self) {
        self.corrupt.fetch_add(1, Relaxed);
    }

    /// Counts a failed operation.
    pub fn error(&self) {
        self.errors.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            writes: self.writes.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expired: self.expired.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

fn observe(tier: TierName, op: &'static str, took: Duration) {
    metrics::histogram!("tiercache_tier_latency_seconds", "tier" => tier.as_str(), "op" => op)
        .record(took.as_secs_f64());
}
