//! Listing what the bucket holds, for background scans (the leakage scan): the keys of the
//! entries under one scope type, and the ids of the scopes that hold entries. Never on a
//! request's path.

use futures::TryStreamExt;
use object_store::path::Path;
use tiercache_core::CacheKey;

use super::ObjectTier;
use super::error::L3Error;
use crate::body::Hit;

impl ObjectTier {
    /// The keys of every entry document under `scope` (`global`, `template` or `user`), in
    /// one listing (expired ones included: reading one answers a miss).
    pub async fn list_keys(&self, scope: &str) -> Result<Vec<CacheKey>, L3Error> {
        self.inner.health.admit()?;
        let prefix = self.scope_root(scope)?;
        let listed: Vec<object_store::ObjectMeta> = self
            .inner
            .s3(None, self.inner.store.list(Some(&prefix)).try_collect())
            .await?;
        let layout = &self.inner.layout;
        Ok(listed
            .iter()
            .filter_map(|m| layout.entry_key(&m.location))
            .collect())
    }

    /// The ids of the `scope` scopes (`user`, `template`) that hold entry documents.
    pub async fn scope_ids(&self, scope: &str) -> Result<Vec<String>, L3Error> {
        self.inner.health.admit()?;
        let prefix = self.scope_root(scope)?;
        let listed = self
            .inner
            .s3(None, self.inner.store.list_with_delimiter(Some(&prefix)))
            .await?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// The entry and its verified body like [`ObjectTier::get`], without counting a hit or
    /// a miss: for background scans, which are no use of the entry.
    pub async fn get_quiet(&self, key: &CacheKey) -> Result<Option<Hit>, L3Error> {
        self.inner.read(key).await
    }

    fn scope_root(&self, scope: &str) -> Result<Path, L3Error> {
        let root = self.inner.layout.entries_root();
        Path::parse(format!("{}/{scope}", root.as_ref()))
            .map_err(|e| L3Error::Config(format!("bad scope {scope:?}: {e}")))
    }
}
