//! L1: small entries in memory under a byte budget, each for at most the tier's TTL
//! (and never past its own expiry).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::future::Cache;
use moka::notification::RemovalCause;
use tiercache_core::{CacheKey, EntryMeta, L1Policy, Selector, Ttl};

use crate::clock::now_ms;
use crate::stats::{TierName, TierStats};

/// Bytes charged per entry on top of its body, for key and metadata.
const ENTRY_OVERHEAD: u64 = 256;

#[derive(Clone)]
struct Slot {
    meta: Arc<EntryMeta>,
    bytes: Bytes,
}

struct SlotExpiry {
    ttl: Ttl,
}

impl SlotExpiry {
    fn life(&self, key: &CacheKey, slot: &Slot) -> Duration {
        let ttl = self.ttl.of_kind(key.kind().as_str());
        match slot.meta.expires_ms {
            Some(e) => ttl.min(Duration::from_millis(e.saturating_sub(now_ms()))),
            None => ttl,
        }
    }
}

impl moka::Expiry<CacheKey, Slot> for SlotExpiry {
    fn expire_after_create(&self, key: &CacheKey, slot: &Slot, _: Instant) -> Option<Duration> {
        Some(self.life(key, slot))
    }
    fn expire_after_update(
        &self,
        key: &CacheKey,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.life(key, slot))
    }
}

/// The in-memory tier.
#[derive(Clone)]
pub struct MemoryTier {
    cache: Cache<CacheKey, Slot>,
    policy: L1Policy,
    stats: Arc<TierStats>,
}

impl MemoryTier {
    /// An empty tier spending at most `policy.budget_bytes`.
    pub fn new(policy: L1Policy) -> Self {
        let stats = Arc::new(TierStats::default());
        let on_evict = stats.clone();
        let cache = Cache::builder()
            .max_capacity(policy.budget_bytes)
            .weigher(|k: &CacheKey, s: &Slot| {
                let w = s.bytes.len() as u64 + k.name().as_str().len() as u64 + ENTRY_OVERHEAD;
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .expire_after(SlotExpiry { ttl: policy.ttls() })
            .eviction_listener(move |_k, _v, cause| match cause {
                RemovalCause::Size => on_evict.evicted(1),
                RemovalCause::Expired => on_evict.expired(1),
                _ => {}
            })
            .build();
        MemoryTier {
            cache,
            policy,
            stats,
        }
    }

    /// Whether a body of `size` bytes is kept in memory at all.
    pub fn admits(&self, size: u64) -> bool {
        self.policy.budget_bytes > 0 && size <= self.policy.max_entry_bytes
    }

    /// The largest body kept in memory.
    pub fn max_entry_bytes(&self) -> u64 {
        self.policy.max_entry_bytes
    }

    /// The entry under `key`, counted as a hit or a miss.
    pub async fn get(&self, key: &CacheKey) -> Option<(EntryMeta, Bytes)> {
        let t0 = Instant::now();
        match self.lookup(key).await {
            Some(slot) => {
                self.stats
                    .hit(TierName::L1, slot.bytes.len() as u64, t0.elapsed());
                Some(((*slot.meta).clone(), slot.bytes))
            }
            None => {
                self.stats.miss(TierName::L1, t0.elapsed());
                None
            }
        }
    }

    /// The entry's metadata, without counting.
    pub async fn head(&self, key: &CacheKey) -> Option<EntryMeta> {
        self.lookup(key).await.map(|s| (*s.meta).clone())
    }

    async fn lookup(&self, key: &CacheKey) -> Option<Slot> {
        let slot = self.cache.get(key).await?;
        if slot.meta.is_expired(now_ms()) {
            self.cache.invalidate(key).await;
            self.stats.expired(1);
            return None;
        }
        Some(slot)
    }

    /// Keeps `bytes` in memory if the policy admits them; returns whether it did.
    pub async fn insert(&self, key: &CacheKey, meta: &EntryMeta, bytes: Bytes) -> bool {
        if !self.admits(bytes.len() as u64) || meta.is_expired(now_ms()) {
            self.cache.invalidate(key).await;
            return false;
        }
        let t0 = Instant::now();
        let len = bytes.len() as u64;
        let slot = Slot {
            meta: Arc::new(meta.clone()),
            bytes,
        };
        self.cache.insert(key.clone(), slot).await;
        self.stats.wrote(TierName::L1, len, t0.elapsed());
        true
    }

    /// Drops the entry; returns whether it was there.
    pub async fn remove(&self, key: &CacheKey) -> bool {
        self.cache.remove(key).await.is_some()
    }

    /// Drops (unless `dry_run`) the entries `selector` selects, except those `spare` keeps;
    /// returns how many there were.
    pub async fn remove_matching(
        &self,
        selector: &Selector,
        spare: impl Fn(&CacheKey, &EntryMeta) -> bool,
        dry_run: bool,
    ) -> u64 {
        let keys: Vec<CacheKey> = self
            .cache
            .iter()
            .filter(|(k, slot)| selector.matches(k, &slot.meta) && !spare(k, &slot.meta))
            .map(|(k, _)| (*k).clone())
            .collect();
        if !dry_run {
            for k in &keys {
                self.cache.invalidate(k).await;
            }
        }
        keys.len() as u64
    }

    /// The tier's counters.
    pub fn stats(&self) -> &TierStats {
        &self.stats
    }

    /// Entries and weighted bytes held now (after pending maintenance).
    pub async fn usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks().await;
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// The byte budget.
    pub fn budget_bytes(&self) -> u64 {
        self.policy.budget_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiercache_core::{ContentHash, PutOptions};

    fn meta(bytes: &[u8]) -> EntryMeta {
        PutOptions::default().into_meta(bytes.len() as u64, ContentHash::of(bytes), now_ms())
    }

    fn key(i: usize) -> CacheKey {
        CacheKey::parse("global", "object", &format!("k{i}")).unwrap()
    }

    #[tokio::test]
    async fn budget_is_respected() {
        let tier = MemoryTier::new(L1Policy {
            budget_bytes: 100 * 1024,
            max_entry_bytes: 64 * 1024,
            ttl: Duration::from_secs(60),
            ..Default::default()
        });
        let body = Bytes::from(vec![7u8; 10 * 1024]);
        for i in 0..50 {
            assert!(tier.insert(&key(i), &meta(&body), body.clone()).await);
        }
        let (entries, bytes) = tier.usage().await;
        assert!(bytes <= 100 * 1024, "{bytes} bytes held");
        assert!((5..50).contains(&entries), "{entries} entries held");
        assert!(tier.stats().snapshot().evictions > 0);
    }

    #[tokio::test]
    async fn large_entries_skip_memory() {
        let tier = MemoryTier::new(L1Policy {
            max_entry_bytes: 1024,
            ..Default::default()
        });
        let big = Bytes::from(vec![1u8; 2048]);
        assert!(!tier.insert(&key(1), &meta(&big), big.clone()).await);
        assert!(tier.get(&key(1)).await.is_none());
    }

    #[tokio::test]
    async fn tier_ttl_expires_entries() {
        let tier = MemoryTier::new(L1Policy {
            ttl: Duration::from_millis(100),
            ..Default::default()
        });
        let b = Bytes::from_static(b"short-lived");
        tier.insert(&key(1), &meta(&b), b.clone()).await;
        assert!(tier.get(&key(1)).await.is_some());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(tier.get(&key(1)).await.is_none());
    }

    #[tokio::test]
    async fn entry_expiry_is_honoured() {
        let tier = MemoryTier::new(L1Policy::default());
        let b = Bytes::from_static(b"x");
        let opts = PutOptions {
            ttl: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        let m = opts.into_meta(1, ContentHash::of(&b), now_ms());
        tier.insert(&key(1), &m, b.clone()).await;
        assert!(tier.get(&key(1)).await.is_some());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(tier.get(&key(1)).await.is_none());
    }
}
