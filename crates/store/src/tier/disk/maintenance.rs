//! Background upkeep of the disk tier: LRU order updates, eviction down to the low
//! watermark, expiry sweeps and deferred deletions, each in bounded batches so requests
//! never wait long for the index.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redb::{Durability, ReadableDatabase, ReadableTable};
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::Inner;
use super::index::{ACCESS, ENTRIES, EXPIRY, Record, Tables};
use crate::clock::now_ms;
use crate::error::StoreError;

/// Entries removed per index transaction.
const BATCH: usize = 256;
/// How often pending LRU updates are written.
const TICK: Duration = Duration::from_secs(1);

/// Runs upkeep every tick (or when woken) until the tier is dropped.
pub(super) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>, sweep_interval: Duration) {
    tokio::spawn(async move {
        let mut last_sweep = Instant::now();
        loop {
            // Hold no strong reference while idle, so dropping the tier ends this task.
            let woken = tokio::select! {
                _ = wake.notified() => true,
                _ = tokio::time::sleep(TICK) => false,
            };
            let Some(work) = inner.upgrade() else { break };
            let sweep = last_sweep.elapsed() >= sweep_interval;
            if sweep {
                last_sweep = Instant::now();
            }
            let result = tokio::task::spawn_blocking(move || work.maintain(sweep)).await;
            match result {
                Ok(Err(e)) => warn!(error = %e, woken, "L2 maintenance failed"),
                Err(e) => warn!(error = %e, "L2 maintenance task failed"),
                Ok(Ok(())) => {}
            }
        }
    });
}

impl Inner {
    /// One pass: write LRU updates, evict if over budget, sweep expired entries if asked,
    /// and delete blobs that readers have since released.
    pub(super) fn maintain(self: &Inner, sweep: bool) -> Result<(), StoreError> {
        let _one = self
            .maintaining
            .lock()
            .map_err(|_| StoreError::Task("an L2 maintenance pass panicked".into()))?;
        self.flush_touches(Durability::None)?;
        if self.used.load(Relaxed) > self.budget {
            self.evict()?;
        }
        if sweep {
            self.sweep_expired()?;
        }
        self.release_deferred()
    }

    /// Writes pending access times into the LRU order.
    pub(super) fn flush_touches(&self, durability: Durability) -> Result<(), StoreError> {
        let pending = match self.touches.lock() {
            Ok(mut t) if !t.is_empty() || matches!(durability, Durability::Immediate) => {
                std::mem::take(&mut *t)
            }
            _ => return Ok(()),
        };
        let _guard = self.lock()?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        {
            let mut tables = Tables::open(&txn, self.ttl.clone())?;
            for (key, at) in &pending {
                tables.touch(key, *at)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes least-recently-used entries until usage is at the low watermark.
    fn evict(&self) -> Result<(), StoreError> {
        let mut evicted = 0u64;
        loop {
            let need = self.used.load(Relaxed).saturating_sub(self.low_watermark);
            if need == 0 {
                break;
            }
            let n = self.remove_first(true, u64::MAX, need)?;
            if n == 0 {
                break;
            }
            self.stats.evicted(n);
            evicted += n;
        }
        if evicted > 0 {
            debug!(evicted, used = self.used.load(Relaxed), "L2 eviction");
        }
        Ok(())
    }

    /// Removes every entry whose expiry has passed.
    fn sweep_expired(&self) -> Result<(), StoreError> {
        let now = now_ms();
        loop {
            let n = self.remove_first(false, now, u64::MAX)?;
            self.stats.expired(n);
            if n < BATCH as u64 {
                return Ok(());
            }
        }
    }

    /// Removes up to a batch of entries from the front of the LRU (`lru`) or expiry order,
    /// ordered at or before `until`, stopping once their sizes add up to `need` bytes.
    fn remove_first(&self, lru: bool, until: u64, need: u64) -> Result<u64, StoreError> {
        let keys = {
            // A read snapshot: selecting victims never blocks writers.
            let txn = self.db.begin_read()?;
            let order = txn.open_table(if lru { ACCESS } else { EXPIRY })?;
            let entries = txn.open_table(ENTRIES)?;
            let mut keys = Vec::new();
            let mut freed = 0u64;
            for item in order.iter()? {
                let (k, _) = item?;
                let (at, key) = k.value();
                if at > until || freed >= need || keys.len() >= BATCH {
                    break;
                }
                if let Some(raw) = entries.get(key)? {
                    freed += Record::decode(raw.value()).map_or(0, |r| r.meta.size);
                }
                keys.push(key.to_owned());
            }
            keys
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let removed = self.remove_keys(&keys)?;
        if removed == 0 {
            // Order rows without entries (left by an undecodable record): clear them.
            self.clear_order_rows(lru, &keys, until)?;
            return Ok(keys.len() as u64);
        }
        Ok(removed)
    }

    fn clear_order_rows(&self, lru: bool, keys: &[String], until: u64) -> Result<(), StoreError> {
        let _guard = self.lock()?;
        let txn = self.db.begin_write()?;
        {
            let mut tables = Tables::open(&txn, self.ttl.clone())?;
            let order = if lru {
                &mut tables.access
            } else {
                &mut tables.expiry
            };
            order.retain_in((0u64, "")..=(until, "\u{10FFFF}"), |(_, k), _| {
                !keys.iter().any(|x| x == k)
            })?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes blobs that lost their last reference while a reader held them, once released.
    fn release_deferred(&self) -> Result<(), StoreError> {
        let ready: Vec<_> = match self.deferred.lock() {
            Ok(mut d) => {
                let ready: Vec<_> = d
                    .iter()
                    .filter(|h| !self.dir.is_pinned(h))
                    .copied()
                    .collect();
                for h in &ready {
                    d.remove(h);
                }
                ready
            }
            Err(_) => return Ok(()),
        };
        if ready.is_empty() {
            return Ok(());
        }
        let _guard = self.lock()?;
        let txn = self.db.begin_write()?;
        let mut gone = Vec::new();
        {
            let mut tables = Tables::open(&txn, self.ttl.clone())?;
            for hash in ready {
                if let Some((size, 0)) = tables.blob(&hash)? {
                    if self.dir.is_pinned(&hash) {
                        if let Ok(mut d) = self.deferred.lock() {
                            d.insert(hash);
                        }
                        continue;
                    }
                    tables.forget_blob(&hash)?;
                    gone.push(super::index::Unreferenced { hash, size });
                }
            }
        }
        txn.commit()?;
        self.unlink_all(&gone);
        Ok(())
    }
}
