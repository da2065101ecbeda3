//! Finding and removing the entries an invalidation selects, in bounded batches, so a purge
//! of a whole kind never holds the index's write lock for long.

use redb::ReadableDatabase;
use tiercache_core::{CacheKey, EntryMeta, Selector};

use super::index::{ENTRIES, Record};
use super::{DiskTier, Inner};
use crate::error::StoreError;

/// Keys removed per index transaction.
const REMOVE_BATCH: usize = 512;

impl Inner {
    /// Every entry (expired ones too: they are removed just the same) that `selector`
    /// selects and `keep` does not spare.
    fn select(
        &self,
        selector: &Selector,
        spare: &(dyn Fn(&CacheKey, &EntryMeta) -> bool + Send + Sync),
    ) -> Result<Vec<(String, EntryMeta)>, StoreError> {
        let prefix = selector.key_prefix();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for item in table.range(prefix.as_str()..)? {
            let (k, v) = item?;
            let text = k.value();
            if !text.starts_with(prefix.as_str()) {
                break;
            }
            let Ok(key) = CacheKey::parse_path(text) else {
                continue;
            };
            let record = Record::decode(v.value())?;
            if selector.matches(&key, &record.meta) && !spare(&key, &record.meta) {
                out.push((text.to_owned(), record.meta));
            }
        }
        Ok(out)
    }
}

impl DiskTier {
    /// The keys (text) and metadata of the entries `selector` selects, except those `spare`
    /// keeps (an epoch GC spares current entries).
    pub async fn select(
        &self,
        selector: Selector,
        spare: impl Fn(&CacheKey, &EntryMeta) -> bool + Send + Sync + 'static,
    ) -> Result<Vec<(String, EntryMeta)>, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.select(&selector, &spare)).await?
    }

    /// Removes `keys`, a batch per index transaction; returns how many were there.
    pub async fn remove_many(&self, keys: Vec<String>) -> Result<u64, StoreError> {
        let mut removed = 0;
        for batch in keys.chunks(REMOVE_BATCH) {
            let inner = self.inner.clone();
            let batch = batch.to_vec();
            removed += tokio::task::spawn_blocking(move || inner.remove_keys(&batch)).await??;
        }
        Ok(removed)
    }
}
