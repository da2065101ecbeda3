//! The lifetime and size policies of the local tiers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One MiB.
pub const MIB: u64 = 1024 * 1024;
/// One day.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// A tier's lifetime for entries: one for every kind, and the kinds that differ (hashed
/// site assets live a year; a tier may keep packuments shorter than tarballs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ttl {
    /// For every kind not listed.
    pub default: Duration,
    /// By kind.
    pub kinds: Arc<BTreeMap<String, Duration>>,
}

impl Ttl {
    /// One lifetime for every kind.
    pub fn new(default: Duration) -> Self {
        Ttl {
            default,
            kinds: Arc::new(BTreeMap::new()),
        }
    }

    /// The same, with `kinds` differing.
    pub fn with_kinds(default: Duration, kinds: BTreeMap<String, Duration>) -> Self {
        Ttl {
            default,
            kinds: Arc::new(kinds),
        }
    }

    /// The lifetime of entries of `kind`.
    pub fn of_kind(&self, kind: &str) -> Duration {
        self.kinds.get(kind).copied().unwrap_or(self.default)
    }

    /// The lifetime of the entry whose key text is `key` (`<scope>/<kind>/<name>`).
    pub fn of_key(&self, key: &str) -> Duration {
        let mut parts = key.splitn(4, '/');
        let kind = match parts.next() {
            Some("global") => parts.next(),
            Some(_) => parts.nth(1),
            None => None,
        };
        kind.map_or(self.default, |k| self.of_kind(k))
    }

    /// Whether any lifetime is zero (a configuration mistake).
    pub fn has_zero(&self) -> bool {
        self.default.is_zero() || self.kinds.values().any(Duration::is_zero)
    }
}

/// The lifetimes the seed gives site assets in the long-lived tiers: a deploy's files,
/// manifest and pointer stay as long as a hashed asset may be cached (a year).
pub fn asset_kind_ttls() -> BTreeMap<String, Duration> {
    ["asset-blob", "asset-deploy", "asset-current"]
        .into_iter()
        .map(|k| (k.to_owned(), 365 * DAY))
        .collect()
}

/// How the in-memory tier spends its byte budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L1Policy {
    /// Total bytes of bodies (plus per-entry overhead) held in memory.
    pub budget_bytes: u64,
    /// Bodies larger than this skip memory and are served from disk.
    pub max_entry_bytes: u64,
    /// How long an entry stays in memory after it was put there.
    pub ttl: Duration,
    /// Kinds that stay a different time.
    pub kind_ttl: BTreeMap<String, Duration>,
}

impl Default for L1Policy {
    fn default() -> Self {
        L1Policy {
            budget_bytes: 256 * MIB,
            max_entry_bytes: 4 * MIB,
            ttl: Duration::from_secs(3600),
            kind_ttl: BTreeMap::new(),
        }
    }
}

/// How the disk tier spends its byte budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Policy {
    /// Bytes of blobs kept on disk before least-recently-used entries are evicted.
    pub budget_bytes: u64,
    /// Eviction frees space down to this fraction of the budget (in percent), so it runs in bursts.
    pub low_watermark_percent: u8,
    /// How long an entry is served after it was written to disk.
    pub ttl: Duration,
    /// Kinds served a different time (site assets: a year).
    pub kind_ttl: BTreeMap<String, Duration>,
    /// When a written blob reaches stable storage, relative to the write's answer.
    pub fsync: DiskSync,
    /// In background mode, most bytes answered but not yet flushed (what a power loss can
    /// take); writers wait beyond it.
    pub flush_backlog_bytes: u64,
}

/// When a disk write is flushed to stable storage. Every mode survives a crash of the
/// process (the index commit is always durable and the bytes are in the page cache); they
/// differ in what a power loss can take, which is never served wrong either way (every read
/// verifies its bytes, so a lost blob is a counted miss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskSync {
    /// Flushed before the write is answered: a power loss takes nothing answered, and every
    /// write costs the disk's fsync bandwidth.
    Always,
    /// Answered once written and indexed, flushed by a background thread right after: a
    /// power loss can take only the last moments' writes, and the answer does not wait on
    /// the disk (a bounded backlog keeps the sustained rate at the disk's).
    #[default]
    Background,
    /// Left to the kernel's writeback (for throwaway stores: tmpfs, tests).
    Never,
}

impl DiskSync {
    /// Reads `always`, `background` or `never` (and `true`/`false` for always/never).
    pub fn parse(s: &str) -> Option<DiskSync> {
        match s {
            "always" | "true" => Some(DiskSync::Always),
            "background" => Some(DiskSync::Background),
            "never" | "false" => Some(DiskSync::Never),
            _ => None,
        }
    }
}

impl Default for L2Policy {
    fn default() -> Self {
        L2Policy {
            budget_bytes: 50_000_000_000,
            low_watermark_percent: 90,
            ttl: 7 * DAY,
            kind_ttl: asset_kind_ttls(),
            fsync: DiskSync::default(),
            flush_backlog_bytes: 512 * 1024 * 1024,
        }
    }
}

impl L1Policy {
    /// The lifetimes, by kind.
    pub fn ttls(&self) -> Ttl {
        Ttl::with_kinds(self.ttl, self.kind_ttl.clone())
    }
}

impl L2Policy {
    /// The lifetimes, by kind.
    pub fn ttls(&self) -> Ttl {
        Ttl::with_kinds(self.ttl, self.kind_ttl.clone())
    }

    /// The usage eviction stops at.
    pub fn low_watermark_bytes(&self) -> u64 {
        self.budget_bytes / 100 * u64::from(self.low_watermark_percent.min(100))
    }

    /// The budget lowered, if need be, to what the disk can hold: `used` bytes are ours
    /// already and `available` more are free; a tenth of the free space is left to others.
    pub fn fit_to_disk(&self, used: u64, available: u64) -> u64 {
        self.budget_bytes
            .min(used.saturating_add(available - available / 10))
    }
}

/// Whether an entry stored at `stored_ms` with a tier `ttl` has expired at `now_ms`.
pub fn tier_expired(stored_ms: u64, ttl: Duration, now_ms: u64) -> bool {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    now_ms >= stored_ms.saturating_add(ttl_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fits_disk() {
        let p = L2Policy {
            budget_bytes: 1000,
            ..Default::default()
        };
        assert_eq!(p.fit_to_disk(0, 10_000), 1000);
        assert_eq!(p.fit_to_disk(100, 500), 550);
        assert_eq!(p.low_watermark_bytes(), 900);
    }

    #[test]
    fn tier_ttl() {
        assert!(!tier_expired(1000, Duration::from_millis(10), 1009));
        assert!(tier_expired(1000, Duration::from_millis(10), 1010));
        assert!(!tier_expired(1000, Duration::MAX, u64::MAX - 1));
    }
}
