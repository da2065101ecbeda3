//! L2: entries on local disk, blobs stored once by content hash, an index in redb,
//! a byte budget with LRU eviction and a TTL, both enforced in the background.
//!
//! Invariants:
//! - a blob file is whole or absent (temp file, rename; fsync of file and directory before
//!   the answer or, by default, in the background right after it), and the index points at
//!   it only after the rename (index commit last, always durable);
//! - every read verifies the bytes against their hash; a blob that fails is removed and
//!   counted, and the read is a miss;
//! - a blob that a reader holds a [`blobs::Lease`] on is not deleted until it is released.

mod blobs;
mod flusher;
mod index;
mod list;
mod maintenance;
mod read;
mod recovery;
mod select;
mod writer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use redb::{Database, ReadableDatabase};
use tiercache_core::{CacheKey, ContentHash, ContentHasher, EntryMeta, PutOptions, Ttl};
use tracing::{info, warn};

use crate::body::{BodyStream, Hit};
use crate::clock::now_ms;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::stats::{TierName, TierStats};
use blobs::{BlobDir, TempFile};
use flusher::Reservation;
use index::{ENTRIES, Record, Tables, Unreferenced};
use writer::BlobWriter;

pub use blobs::Lease;

/// The disk tier. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct DiskTier {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    dir: Arc<BlobDir>,
    ttl: Ttl,
    budget: u64,
    low_watermark: u64,
    inline_read_bytes: u64,
    max_entry_bytes: u64,
    /// Serialises every change that links or unlinks blob files with its index commit.
    write_lock: Mutex<()>,
    /// One maintenance pass at a time, so no pass picks victims from an LRU order another
    /// pass is still writing recent reads into.
    maintaining: Mutex<()>,
    used: AtomicU64,
    entries: AtomicU64,
    /// Reads not yet written to the LRU order (key → time), flushed in batches.
    touches: Mutex<HashMap<String, u64>>,
    /// Blobs without references that a reader still held when they lost their last one.
    deferred: Mutex<HashSet<ContentHash>>,
    stats: TierStats,
    wake: Arc<tokio::sync::Notify>,
}

/// One kind's share of the disk tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindUsage {
    pub entries: u64,
    pub bytes: u64,
}

/// How the disk tier is doing, for `/healthz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DiskUsage {
    pub entries: u64,
    pub bytes: u64,
    pub budget_bytes: u64,
}

impl DiskTier {
    /// Opens (or creates) the tier under `config.data_dir/l2`, recovering from any crash first,
    /// and starts its background maintenance. Must be called inside a Tokio runtime.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let cfg = config.clone();
        let inner = tokio::task::spawn_blocking(move || Inner::open(&cfg)).await??;
        let inner = Arc::new(inner);
        maintenance::spawn(
            Arc::downgrade(&inner),
            inner.wake.clone(),
            config.sweep_interval,
        );
        Ok(DiskTier { inner })
    }

    /// The entry under `key`, verified, or `None` (absent, expired or corrupt).
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        let t0 = Instant::now();
        let inner = self.inner.clone();
        let k = key.to_string();
        let found = tokio::task::spawn_blocking(move || Inner::read(&inner, &k)).await?;
        let found = found.inspect_err(|_| self.inner.stats.error())?;
        match found {
            Some(hit) => {
                self.inner
                    .stats
                    .hit(TierName::L2, hit.meta.size, t0.elapsed());
                Ok(Some(hit))
            }
            None => {
                self.inner.stats.miss(TierName::L2, t0.elapsed());
                Ok(None)
            }
        }
    }

    /// The entry's metadata if it is present and its blob file exists; bytes are not read.
    pub async fn head(&self, key: &CacheKey) -> Result<Option<EntryMeta>, StoreError> {
        let inner = self.inner.clone();
        let k = key.to_string();
        tokio::task::spawn_blocking(move || inner.head(&k)).await?
    }

    /// Stores a body already in memory under `key` with `meta` (whose hash is checked).
    pub async fn put_bytes(
        &self,
        key: &CacheKey,
        meta: EntryMeta,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let t0 = Instant::now();
        let actual = ContentHash::of(&bytes);
        if actual != meta.hash || bytes.len() as u64 != meta.size {
            return Err(StoreError::HashMismatch {
                expected: meta.hash,
                actual,
            });
        }
        self.check_size(meta.size)?;
        let inner = self.inner.clone();
        let k = key.to_string();
        let size = meta.size;
        let slot = self.inner.dir.reserve_flush(size).await;
        tokio::task::spawn_blocking(move || {
            let mut temp = inner.dir.temp()?;
            temp.write_all(&bytes, inner.dir.syncs_before_answer())?;
            inner.commit(&k, meta, temp, slot)
        })
        .await?
        .inspect_err(|_| self.inner.stats.error())?;
        self.inner.stats.wrote(TierName::L2, size, t0.elapsed());
        self.inner.wake_if_over_budget();
        Ok(())
    }

    /// Streams a body of unknown size and hash to disk under `key`. Returns its metadata,
    /// and the whole body too if it is at most `keep_bytes` long (for the tier above).
    pub async fn put_stream(
        &self,
        key: &CacheKey,
        opts: PutOptions,
        body: BodyStream,
        keep_bytes: u64,
    ) -> Result<(EntryMeta, Option<Bytes>), StoreError> {
        opts.validate()?;
        self.write_stream(key, body, keep_bytes, |size, hash| {
            if let Some(expected) = opts.expected_hash
                && expected != hash
            {
                return Err(StoreError::HashMismatch {
                    expected,
                    actual: hash,
                });
            }
            Ok(opts.into_meta(size, hash, now_ms()))
        })
        .await
    }

    /// Streams a body whose metadata is known (promoted from a tier below) to disk; stored
    /// only if its bytes are exactly the ones `meta` names.
    pub async fn put_stream_as(
        &self,
        key: &CacheKey,
        meta: EntryMeta,
        body: BodyStream,
        keep_bytes: u64,
    ) -> Result<(EntryMeta, Option<Bytes>), StoreError> {
        self.write_stream(key, body, keep_bytes, |size, hash| {
            if hash != meta.hash || size != meta.size {
                return Err(StoreError::HashMismatch {
                    expected: meta.hash,
                    actual: hash,
                });
            }
            Ok(meta)
        })
        .await
    }

    async fn write_stream(
        &self,
        key: &CacheKey,
        mut body: BodyStream,
        keep_bytes: u64,
        meta_for: impl FnOnce(u64, ContentHash) -> Result<EntryMeta, StoreError>,
    ) -> Result<(EntryMeta, Option<Bytes>), StoreError> {
        let t0 = Instant::now();
        let temp = self.inner.dir.temp()?;
        let mut writer = BlobWriter::start(temp, self.inner.dir.syncs_before_answer())?;
        let mut hasher = ContentHasher::new();
        let mut kept: Option<Vec<u8>> = Some(Vec::new());
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StoreError::Body)?;
            // Hashed here while the writer thread writes the previous chunks.
            hasher.update(&chunk);
            self.check_size(hasher.len())?;
            if hasher.len() > keep_bytes {
                kept = None;
            } else if let Some(k) = kept.as_mut() {
                k.extend_from_slice(&chunk);
            }
            writer.write(chunk).await?;
        }
        let temp = writer.finish().await?;
        let meta = meta_for(hasher.len(), hasher.finish())?;
        let inner = self.inner.clone();
        let k = key.to_string();
        let m = meta.clone();
        let slot = self.inner.dir.reserve_flush(meta.size).await;
        tokio::task::spawn_blocking(move || inner.commit(&k, m, temp, slot))
            .await?
            .inspect_err(|_| self.inner.stats.error())?;
        self.inner
            .stats
            .wrote(TierName::L2, meta.size, t0.elapsed());
        self.inner.wake_if_over_budget();
        Ok((meta, kept.map(Bytes::from)))
    }

    /// Removes the entry; returns whether it was there.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let inner = self.inner.clone();
        let k = key.to_string();
        let n = tokio::task::spawn_blocking(move || inner.remove_keys(&[k])).await??;
        Ok(n > 0)
    }

    /// Writes pending LRU updates durably and waits for the background flusher (at shutdown).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.dir.drain().await;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush_touches(redb::Durability::Immediate))
            .await?
    }

    /// Runs one maintenance pass now (eviction, expiry sweep, deferred deletions).
    pub async fn maintain(&self) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.maintain(true)).await?
    }

    /// Entries, bytes and budget now.
    pub fn usage(&self) -> DiskUsage {
        DiskUsage {
            entries: self.inner.entries.load(Relaxed),
            bytes: self.inner.used.load(Relaxed),
            budget_bytes: self.inner.budget,
        }
    }

    /// The tier's counters.
    pub fn stats(&self) -> &TierStats {
        &self.inner.stats
    }

    /// Up to `limit` live entries whose key text starts with `prefix`, in key order.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, EntryMeta)>, StoreError> {
        let inner = self.inner.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || inner.list(&prefix, limit)).await?
    }

    /// One page of the live entries under `prefix` after the key `after`, in key order (for
    /// background scans that resume where they stopped).
    pub async fn list_after(
        &self,
        prefix: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, EntryMeta)>, StoreError> {
        let inner = self.inner.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || inner.list_after(&prefix, after.as_deref(), limit))
            .await?
    }

    /// The ids of the scopes under `prefix` (`user/`, `template/`) that hold entries here.
    pub async fn scope_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let inner = self.inner.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || inner.scope_ids(&prefix)).await?
    }

    /// The entry under `key`, verified like [`DiskTier::get`], but neither counted as a hit
    /// nor moved up the LRU order: for background scans, which are no use of the entry.
    pub async fn get_quiet(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        let inner = self.inner.clone();
        let k = key.to_string();
        tokio::task::spawn_blocking(move || Inner::read_as(&inner, &k, false)).await?
    }

    /// Entries and bytes per kind (bytes of bodies, before dedup).
    pub async fn usage_by_kind(&self) -> Result<BTreeMap<String, KindUsage>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let txn = inner.db.begin_read()?;
            let table = txn.open_table(index::KINDS)?;
            let mut out = BTreeMap::new();
            for item in redb::ReadableTable::iter(&table)? {
                let (k, v) = item?;
                let (entries, bytes) = v.value();
                out.insert(k.value().to_owned(), KindUsage { entries, bytes });
            }
            Ok(out)
        })
        .await?
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        let limit = self.inner.max_entry_bytes.min(self.inner.budget);
        if size > limit {
            return Err(StoreError::TooLarge { limit });
        }
        Ok(())
    }
}

impl Inner {
    fn open(config: &StoreConfig) -> Result<Inner, StoreError> {
        let root = config.data_dir.join("l2");
        std::fs::create_dir_all(&root)?;
        let dir = Arc::new(BlobDir::open(
            &root,
            config.l2.fsync,
            config.l2.flush_backlog_bytes,
        )?);
        let db = Database::create(root.join("index.redb"))?;
        let report = recovery::recover(&db, &dir, config.l2.ttls())?;
        let available = fs4::available_space(&root).unwrap_or(u64::MAX);
        let budget = config.l2.fit_to_disk(report.used_bytes, available);
        if budget < config.l2.budget_bytes {
            warn!(
                configured = config.l2.budget_bytes,
                budget,
                available,
                "the disk cannot hold the configured L2 budget; lowered to what it can hold"
            );
        }
        info!(
            entries = report.entries,
            bytes = report.used_bytes,
            budget,
            temp_removed = report.temp_removed,
            rows_dropped = report.rows_dropped,
            orphans_removed = report.orphans_removed,
            "L2 disk tier open at {}",
            root.display()
        );
        let low_watermark = budget / 100 * u64::from(config.l2.low_watermark_percent.min(100));
        let inner = Inner {
            db,
            dir,
            ttl: config.l2.ttls(),
            budget,
            low_watermark,
            inline_read_bytes: config.inline_read_bytes,
            max_entry_bytes: config.max_entry_bytes,
            write_lock: Mutex::new(()),
            used: AtomicU64::new(report.used_bytes),
            entries: AtomicU64::new(report.entries),
            touches: Mutex::new(HashMap::new()),
            maintaining: Mutex::new(()),
            deferred: Mutex::new(HashSet::new()),
            stats: TierStats::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        // Shrink at once if the budget was lowered below what is stored.
        inner.maintain(false)?;
        Ok(inner)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.write_lock
            .lock()
            .map_err(|_| StoreError::Task("the L2 write lock was poisoned".into()))
    }

    fn wake_if_over_budget(&self) {
        if self.used.load(Relaxed) > self.budget {
            self.wake.notify_one();
        }
    }

    fn head(&self, key: &str) -> Result<Option<EntryMeta>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(ENTRIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(raw) = redb::ReadableTable::get(&table, key)? else {
            return Ok(None);
        };
        let record = Record::decode(raw.value())?;
        if record.is_expired(self.ttl.of_key(key), now_ms())
            || !self.dir.path(&record.meta.hash).exists()
        {
            return Ok(None);
        }
        Ok(Some(record.meta))
    }

    /// Links `temp` as the blob of `meta` (unless that blob exists already) and points `key`
    /// at it, in one index commit; a new blob file takes `slot` in the flusher's backlog.
    fn commit(
        &self,
        key: &str,
        meta: EntryMeta,
        temp: TempFile,
        slot: Option<Reservation>,
    ) -> Result<(), StoreError> {
        let _guard = self.lock()?;
        let now = now_ms();
        let record = Record {
            meta,
            stored_ms: now,
            access_ms: now,
        };
        let hash = record.meta.hash;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        let (linked, unlinked, existed) = {
            let mut tables = Tables::open(&txn, self.ttl.clone())?;
            let have_file = tables.blob(&hash)?.is_some() && self.dir.path(&hash).exists();
            let linked = if have_file {
                drop(temp);
                false
            } else {
                self.dir.link(temp, &hash)?;
                true
            };
            let existed = tables.record(key)?.is_some();
            let (new_row, gone) = match tables.insert(key, &record) {
                Ok(v) => v,
                Err(e) => {
                    if linked {
                        let _ = self.dir.unlink(&hash);
                    }
                    return Err(e);
                }
            };
            if new_row {
                self.used.fetch_add(record.meta.size, Relaxed);
            }
            let unlinked = self.settle(&mut tables, gone.into_iter())?;
            (linked, unlinked, existed)
        };
        if let Err(e) = txn.commit() {
            if linked {
                let _ = self.dir.unlink(&hash);
            }
            return Err(e.into());
        }
        if !existed {
            self.entries.fetch_add(1, Relaxed);
        }
        self.unlink_all(&unlinked);
        if linked {
            self.dir.flush_later(slot, &hash);
        }
        Ok(())
    }

    /// Removes `keys`; returns how many were there.
    fn remove_keys(&self, keys: &[String]) -> Result<u64, StoreError> {
        let _guard = self.lock()?;
        let txn = self.db.begin_write()?;
        let (removed, unlinked) = {
            let mut tables = Tables::open(&txn, self.ttl.clone())?;
            let mut removed = 0;
            let mut gone = Vec::new();
            for k in keys {
                if let Some((_, g)) = tables.remove(k)? {
                    removed += 1;
                    gone.extend(g);
                }
            }
            (removed, self.settle(&mut tables, gone.into_iter())?)
        };
        txn.commit()?;
        self.entries.fetch_sub(removed, Relaxed);
        self.unlink_all(&unlinked);
        if let Ok(mut t) = self.touches.lock() {
            for k in keys {
                t.remove(k);
            }
        }
        Ok(removed)
    }

    /// Decides the fate of blobs that lost their last reference in this transaction: a blob a
    /// reader holds is kept for later; any other loses its row now and its file after commit.
    fn settle(
        &self,
        tables: &mut Tables<'_>,
        gone: impl Iterator<Item = Unreferenced>,
    ) -> Result<Vec<Unreferenced>, StoreError> {
        let mut unlink = Vec::new();
        for blob in gone {
            if self.dir.is_pinned(&blob.hash) {
                if let Ok(mut d) = self.deferred.lock() {
                    d.insert(blob.hash);
                }
            } else {
                tables.forget_blob(&blob.hash)?;
                unlink.push(blob);
            }
        }
        Ok(unlink)
    }

    /// Unlinks committed-away blobs (under the write lock, so no writer re-links them meanwhile).
    fn unlink_all(&self, blobs: &[Unreferenced]) {
        for b in blobs {
            self.used.fetch_sub(b.size, Relaxed);
            if let Err(e) = self.dir.unlink(&b.hash) {
                warn!(hash = %b.hash, error = %e, "could not delete blob file; reclaimed at restart");
            }
        }
    }

    /// Removes a blob whose bytes failed verification, so it is never served again.
    fn quarantine(&self, key: &str, hash: &ContentHash) -> Result<(), StoreError> {
        self.stats.corrupt();
        warn!(key, %hash, "blob failed verification: removed, treated as a miss");
        let _guard = self.lock()?;
        let txn = self.db.begin_write()?;
        let (size, removed) = {
            let mut tables = Tables::open(&txn, self.ttl.clone())?;
            let size = tables.blob(hash)?.map(|(s, _)| s);
            tables.forget_blob(hash)?;
            (size, tables.remove(key)?.is_some())
        };
        txn.commit()?;
        if let Some(size) = size {
            self.used.fetch_sub(size, Relaxed);
        }
        if removed {
            self.entries.fetch_sub(1, Relaxed);
        }
        self.dir.unlink(hash)?;
        Ok(())
    }

    fn touch(&self, key: &str) {
        if let Ok(mut t) = self.touches.lock() {
            t.insert(key.to_owned(), now_ms());
        }
    }
}

#[cfg(test)]
mod tests;
