//! The L3 read path: the entry document, then its blob, verified before anything is served.
//!
//! Bodies up to `inline_read_bytes` are read whole and checked against the entry's size and
//! BLAKE3 hash. Larger ones stream, hashed as they pass; the chunk that completes the body
//! is only released once the whole body matched, so a wrong object ends in an error and
//! never reaches a client as a complete response. A blob failing verification is deleted
//! (a later put uploads it again) and counted as corrupt.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStoreExt};
use tiercache_core::{CacheKey, ContentHash, ContentHasher, EntryMeta};
use tracing::{debug, warn};

use super::error::L3Error;
use super::layout::EntryDoc;
use super::{Inner, is_not_found};
use crate::body::{Body, Hit};
use crate::clock::now_ms;
use crate::stats::TierName;

/// Entry documents are a few hundred bytes; anything this large is not one of ours.
const MAX_ENTRY_DOC: u64 = 256 * 1024;

impl Inner {
    /// The live entry of `key`: `None` if absent, expired or unreadable (counted corrupt).
    pub(super) async fn read_entry(
        self: &Arc<Self>,
        key: &CacheKey,
    ) -> Result<Option<EntryMeta>, L3Error> {
        let path = self.layout.entry(key);
        let doc = match self.fetch_doc(&path).await {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok(None),
            Err(L3Error::BadEntry { path, reason }) => {
                self.stats.corrupt();
                warn!(%path, %reason, "unreadable L3 entry document: treated as a miss");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if doc.key != key.to_string() {
            self.stats.corrupt();
            warn!(%path, stored = %doc.key, "L3 entry document names another key: ignored");
            return Ok(None);
        }
        Ok((!self.is_expired(&doc.key, &doc.meta, now_ms())).then_some(doc.meta))
    }

    /// Whether the entry under `key` (text) may no longer be served: its own expiry, or the
    /// tier's TTL for its kind.
    pub(super) fn is_expired(&self, key: &str, meta: &EntryMeta, now_ms: u64) -> bool {
        let ttl_ms = u64::try_from(self.ttl.of_key(key).as_millis()).unwrap_or(u64::MAX);
        meta.is_expired(now_ms) || now_ms >= meta.created_ms.saturating_add(ttl_ms)
    }

    /// Fetches and parses the entry document at `path` (`None` if there is none).
    pub(super) async fn fetch_doc(
        self: &Arc<Self>,
        path: &Path,
    ) -> Result<Option<EntryDoc>, L3Error> {
        let timeout = Some(self.first_byte_timeout);
        let got = match self
            .s3(timeout, self.store.get_opts(path, GetOptions::default()))
            .await
        {
            Ok(got) => got,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |reason: String| L3Error::BadEntry {
            path: path.to_string(),
            reason,
        };
        if got.meta.size > MAX_ENTRY_DOC {
            return Err(bad(format!("{} bytes long", got.meta.size)));
        }
        let raw = self.s3(timeout, got.bytes()).await?;
        serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| bad(e.to_string()))
    }

    /// The entry of `key` with its verified body.
    pub(super) async fn read(self: &Arc<Self>, key: &CacheKey) -> Result<Option<Hit>, L3Error> {
        self.health.admit()?;
        let Some(meta) = self.read_entry(key).await? else {
            return Ok(None);
        };
        let path = self.layout.blob(&meta.hash);
        let timeout = Some(self.first_byte_timeout);
        let got = match self
            .s3(timeout, self.store.get_opts(&path, GetOptions::default()))
            .await
        {
            Ok(got) => got,
            Err(e) if is_not_found(&e) => {
                debug!(%key, hash = %meta.hash, "L3 entry without its blob: a miss");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if got.meta.size != meta.size {
            self.corrupt(&path, "wrong size");
            return Ok(None);
        }
        let body = if meta.size <= self.inline_read_bytes {
            let bytes = self.s3(None, got.bytes()).await?;
            if bytes.len() as u64 != meta.size || ContentHash::of(&bytes) != meta.hash {
                self.corrupt(&path, "bytes do not match the entry's hash");
                return Ok(None);
            }
            Body::Bytes(bytes)
        } else {
            self.verified_stream(got.into_stream(), &meta, path)
        };
        Ok(Some(Hit {
            meta,
            body,
            tier: TierName::L3,
        }))
    }

    /// Counts a blob that failed verification and deletes it in the background, so the
    /// next put of those bytes uploads them again instead of trusting the bad copy.
    fn corrupt(self: &Arc<Self>, path: &Path, why: &str) {
        self.stats.corrupt();
        warn!(%path, why, "L3 blob failed verification: deleted, treated as a miss");
        let (inner, path) = (self.clone(), path.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = inner.s3(None, inner.store.delete(&path)).await {
                    warn!(%path, error = %e, "deleting a corrupt L3 blob failed");
                }
            });
        }
    }

    /// Streams a large blob, hashing as it goes; the chunk that completes it is only
    /// released if the whole body matched.
    fn verified_stream(
        self: &Arc<Self>,
        source: BoxStream<'static, object_store::Result<Bytes>>,
        meta: &EntryMeta,
        path: Path,
    ) -> Body {
        let state = Verify {
            source,
            hasher: ContentHasher::new(),
            size: meta.size,
            hash: meta.hash,
            inner: self.clone(),
            path,
            finished: false,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            if st.finished {
                return None;
            }
            let item = match st.source.next().await {
                Some(Ok(chunk)) => {
                    st.hasher.update(&chunk);
                    if st.hasher.len() >= st.size && !st.intact() {
                        Err(st.fail())
                    } else {
                        Ok(chunk)
                    }
                }
                Some(Err(e)) => {
                    st.finished = true;
                    let e = st.inner.observe(e.into());
                    Err(io::Error::other(e))
                }
                None if st.hasher.len() == st.size => return None,
                None => Err(st.fail()),
            };
            Some((item, st))
        });
        Body::Stream(Box::pin(stream))
    }
}

/// A large blob being served.
struct Verify {
    source: BoxStream<'static, object_store::Result<Bytes>>,
    hasher: ContentHasher,
    size: u64,
    hash: ContentHash,
    inner: Arc<Inner>,
    path: Path,
    finished: bool,
}

impl Verify {
    fn intact(&self) -> bool {
        self.hasher.len() == self.size && self.hasher.finish() == self.hash
    }

    fn fail(&mut self) -> io::Error {
        self.finished = true;
        self.inner
            .corrupt(&self.path, "streamed bytes do not match the entry's hash");
        io::Error::new(
            io::ErrorKind::InvalidData,
            "L3 blob does not match its entry's hash",
        )
    }
}
