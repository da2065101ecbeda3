//! The L3 write path: the blob (once per content), then the entry document.
//!
//! A blob already in the bucket is not uploaded again. Bodies up to one part are buffered,
//! verified and written with create-if-absent (losing that race is success: the winner
//! wrote the same bytes). Larger ones stream as a multipart upload, hashed as they pass,
//! with at most one part in flight and one filling; if the bytes do not match the entry's
//! size and hash the upload is aborted, so nothing is stored. (Completing a multipart
//! upload cannot be create-if-absent everywhere; racing writers write identical bytes.)
//!
//! An immutable entry (first write wins) is not written over: if its document exists, the
//! put keeps it and says so; otherwise the document is written create-if-absent. Where the
//! store ignores conditional writes, the caller makes the decision safe by holding the
//! fleet's lock around the put.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    ObjectStoreExt, PutMode, PutOptions as ObjectPutOptions, PutPayload, WriteMultipart,
};
use tiercache_core::{CacheKey, ContentHash, ContentHasher, EntryMeta};
use tracing::{debug, warn};

use super::error::L3Error;
use super::layout::EntryDoc;
use super::{Inner, is_not_found};
use crate::body::{Body, BodyStream};

/// What a put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The entry is stored as given.
    Stored,
    /// The key is immutable and already held this (other) write, which was kept.
    Kept(EntryMeta),
}

impl Inner {
    /// Stores the blob (unless present) and then the entry document of `key`.
    pub(super) async fn write(
        self: &Arc<Self>,
        key: &CacheKey,
        meta: &EntryMeta,
        body: Body,
    ) -> Result<PutOutcome, L3Error> {
        self.health.admit()?;
        if meta.immutable
            && let Some(existing) = self.read_entry(key).await?
        {
            return Ok(PutOutcome::Kept(existing));
        }
        let blob = self.layout.blob(&meta.hash);
        let timeout = Some(self.first_byte_timeout);
        let mode = match self.s3(timeout, self.store.head(&blob)).await {
            Ok(existing) if existing.size == meta.size => {
                debug!(%key, hash = %meta.hash, "blob already in L3: not uploaded");
                None
            }
            // A blob of the wrong size is corrupt: replace it.
            Ok(_) => Some(PutMode::Overwrite),
            Err(e) if is_not_found(&e) => Some(PutMode::Create),
            Err(e) => return Err(e),
        };
        if let Some(mode) = mode {
            if meta.size <= self.part_size as u64 {
                self.put_small(&blob, meta, body, mode).await?;
            } else {
                self.put_large(&blob, meta, body.into_stream()).await?;
            }
        }
        let doc = EntryDoc {
            key: key.to_string(),
            meta: meta.clone(),
        };
        let path = self.layout.entry(key);
        let json = serde_json::to_vec(&doc).map_err(|e| L3Error::BadEntry {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let mode = if meta.immutable {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let request =
            self.store
                .put_opts(&path, PutPayload::from(json), ObjectPutOptions::from(mode));
        match self.s3(None, request).await {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(L3Error::Store(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            )) => match self.read_entry(key).await? {
                Some(existing) => Ok(PutOutcome::Kept(existing)),
                // Written and gone again (expired, deleted) in between: ours is as good.
                None => Ok(PutOutcome::Stored),
            },
            Err(e) => Err(e),
        }
    }

    /// Buffers, verifies and uploads a body of at most one part.
    async fn put_small(
        self: &Arc<Self>,
        blob: &Path,
        meta: &EntryMeta,
        body: Body,
        mode: PutMode,
    ) -> Result<(), L3Error> {
        let bytes = match body {
            Body::Bytes(b) => b,
            Body::Stream(s) => collect_bounded(s, meta.size).await?,
        };
        check(meta, bytes.len() as u64, ContentHash::of(&bytes))?;
        let request =
            self.store
                .put_opts(blob, PutPayload::from(bytes), ObjectPutOptions::from(mode));
        match self.s3(None, request).await {
            // Another writer stored the same content first.
            Err(L3Error::Store(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            )) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Streams a large body as a multipart upload, aborting it unless every byte matched.
    async fn put_large(
        self: &Arc<Self>,
        blob: &Path,
        meta: &EntryMeta,
        mut body: BodyStream,
    ) -> Result<(), L3Error> {
        let upload = self
            .s3(
                None,
                self.store.put_multipart_opts(blob, Default::default()),
            )
            .await?;
        let mut guard = AbortOnDrop(Some(WriteMultipart::new_with_chunk_size(
            upload,
            self.part_size,
        )));
        let mut hasher = ContentHasher::new();
        let streamed: Result<(), L3Error> = async {
            let Some(writer) = guard.0.as_mut() else {
                return Ok(());
            };
            while let Some(chunk) = body.next().await {
                let mut chunk = chunk.map_err(L3Error::Body)?;
                hasher.update(&chunk);
                if hasher.len() > meta.size {
                    return Err(L3Error::SizeMismatch {
                        expected: meta.size,
                        actual: hasher.len(),
                    });
                }
                while !chunk.is_empty() {
                    let piece = chunk.split_to(chunk.len().min(self.part_size));
                    // At most one part uploading while the next one fills.
                    writer
                        .wait_for_capacity(1)
                        .await
                        .map_err(|e| self.observe(e.into()))?;
                    writer.put(piece);
                }
            }
            check(meta, hasher.len(), hasher.finish())
        }
        .await;
        let Some(writer) = guard.0.take() else {
            return streamed;
        };
        match streamed {
            Ok(()) => {
                // `finish` aborts the upload itself if completing it fails.
                self.s3(None, writer.finish()).await?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    warn!(%blob, error = %abort, "aborting an L3 multipart upload failed");
                }
                Err(e)
            }
        }
    }
}

/// Checks a body's length and hash against its metadata.
fn check(meta: &EntryMeta, size: u64, hash: ContentHash) -> Result<(), L3Error> {
    if size != meta.size {
        return Err(L3Error::SizeMismatch {
            expected: meta.size,
            actual: size,
        });
    }
    if hash != meta.hash {
        return Err(L3Error::HashMismatch {
            expected: meta.hash,
            actual: hash,
        });
    }
    Ok(())
}

/// Collects a stream expected to hold `size` bytes, refusing more.
async fn collect_bounded(mut stream: BodyStream, size: u64) -> Result<Bytes, L3Error> {
    let mut buf = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(L3Error::Body)?;
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > size {
            return Err(L3Error::SizeMismatch {
                expected: size,
                actual: buf.len() as u64,
            });
        }
    }
    Ok(buf.freeze())
}

/// Aborts a multipart upload whose writer is dropped (a cancelled put) in the background,
/// so S3 does not keep its parts.
struct AbortOnDrop(Option<WriteMultipart>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(writer) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = writer.abort().await {
                    debug!(error = %e, "aborting a cancelled L3 multipart upload failed");
                }
            });
        }
    }
}
