//! The sweeper: removes expired entries, then blobs no live entry points at.
//!
//! One pass reads every entry document (8 at a time), deletes expired and unreadable ones,
//! then lists the blobs and deletes those no live entry references and that are older than
//! the grace period (a put writes its blob before its entry, so a young unreferenced blob
//! may be about to gain one). At most `batch` objects are deleted per pass; the report
//! says whether more remain. Known race, harmless in a cache: a put that found its blob
//! already present while a pass was deciding to collect it leaves an entry whose blob is
//! gone; that entry reads as a miss until the key is put again.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::path::Path;
use tiercache_core::ContentHash;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::error::L3Error;
use super::{Inner, ObjectTier};
use crate::clock::now_ms;

/// Entry documents read at once during a pass.
const READ_CONCURRENCY: usize = 8;

/// What one sweep pass saw and removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Entry documents listed.
    pub entries: u64,
    /// Expired entries deleted.
    pub expired: u64,
    /// Unreadable entry documents deleted.
    pub invalid: u64,
    /// Blobs listed.
    pub blobs: u64,
    /// Unreferenced blobs deleted.
    pub orphans: u64,
    /// Whether the batch limit left something to delete for the next pass.
    pub more: bool,
}

/// The background sweeper; dropping it (or the last tier handle) stops it.
pub struct SweeperHandle {
    task: JoinHandle<()>,
}

impl Drop for SweeperHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ObjectTier {
    /// One sweep pass deleting at most `batch` objects (entries and blobs together).
    pub async fn sweep(&self, batch: usize) -> Result<SweepReport, L3Error> {
        self.inner.sweep(batch).await
    }

    /// Sweeps every `interval` in the background (needs a Tokio runtime); holds the tier
    /// weakly, so it ends when the tier is dropped.
    pub fn spawn_sweeper(&self, interval: Duration, batch: usize) -> SweeperHandle {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                match inner.sweep(batch).await {
                    Ok(r) if r.expired + r.invalid + r.orphans > 0 => info!(?r, "L3 swept"),
                    Ok(r) => debug!(?r, "L3 swept"),
                    Err(e) if e.is_unavailable() => debug!("L3 sweep skipped: degraded"),
                    Err(e) => warn!(error = %e, "L3 sweep failed"),
                }
            }
        });
        SweeperHandle { task }
    }
}

impl Inner {
    async fn sweep(self: &Arc<Self>, batch: usize) -> Result<SweepReport, L3Error> {
        self.health.admit()?;
        let now = now_ms();
        let grace_ms = u64::try_from(self.sweep_grace.as_millis()).unwrap_or(u64::MAX);
        let old = |m: &ObjectMeta| {
            u64::try_from(m.last_modified.timestamp_millis()).unwrap_or(0)
                <= now.saturating_sub(grace_ms)
        };
        let mut report = SweepReport::default();

        // Entries: which blobs are live, which documents go.
        let listed = self.list(self.layout.entries_root()).await?;
        report.entries = listed.len() as u64;
        let mut docs = stream::iter(listed)
            .map(|m| async move {
                let doc = self.fetch_doc(&m.location).await;
                (m, doc)
            })
            .buffer_unordered(READ_CONCURRENCY);
        let mut live: HashSet<ContentHash> = HashSet::new();
        let (mut expired, mut invalid) = (Vec::new(), Vec::new());
        while let Some((m, doc)) = docs.next().await {
            match doc {
                Ok(Some(doc)) => {
                    let key_ok = self.layout.entry_key(&m.location).map(|k| k.to_string())
                        == Some(doc.key.clone());
                    if !key_ok {
                        if old(&m) {
                            invalid.push(m.location);
                        }
                    } else if self.is_expired(&doc.key, &doc.meta, now) {
                        expired.push(m.location);
                    } else {
                        live.insert(doc.meta.hash);
                    }
                }
                Ok(None) => {} // deleted since it was listed
                Err(L3Error::BadEntry { .. }) if old(&m) => invalid.push(m.location),
                Err(L3Error::BadEntry { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        drop(docs);

        let mut budget = batch;
        report.expired = self.delete_some(&mut expired, &mut budget).await?;
        report.invalid = self.delete_some(&mut invalid, &mut budget).await?;
        self.stats.expired(report.expired);

        // Blobs no live entry references, old enough not to belong to a put in progress.
        let mut orphans = Vec::new();
        for m in self.list(self.layout.blobs_root()).await? {
            report.blobs += 1;
            if let Some(hash) = self.layout.blob_hash(&m.location)
                && !live.contains(&hash)
                && old(&m)
            {
                orphans.push(m.location);
            }
        }
        report.orphans = self.delete_some(&mut orphans, &mut budget).await?;
        report.more = !(expired.is_empty() && invalid.is_empty() && orphans.is_empty());
        Ok(report)
    }

    /// Every object under `prefix`.
    async fn list(self: &Arc<Self>, prefix: &Path) -> Result<Vec<ObjectMeta>, L3Error> {
        self.s3(None, self.store.list(Some(prefix)).try_collect())
            .await
    }

    /// Deletes up to `budget` of `paths` (taken from its end); counts what was deleted.
    async fn delete_some(
        self: &Arc<Self>,
        paths: &mut Vec<Path>,
        budget: &mut usize,
    ) -> Result<u64, L3Error> {
        let n = paths.len().min(*budget);
        if n == 0 {
            return Ok(0);
        }
        let chosen: Vec<Path> = paths.split_off(paths.len() - n);
        *budget -= n;
        let locations = stream::iter(chosen.into_iter().map(Ok)).boxed();
        let mut results = self.store.delete_stream(locations);
        let mut deleted = 0;
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.observe(e.into())),
            }
        }
        Ok(deleted)
    }
}
