//! Entry bodies: small ones whole in memory, large ones as a stream that is never buffered.

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tiercache_core::EntryMeta;

use crate::stats::TierName;

/// A body arriving or leaving in chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The bytes of an entry: whole (small entries, verified already) or streaming (large ones).
pub enum Body {
    /// The whole body, already in memory.
    Bytes(Bytes),
    /// A body read in chunks; a stream from disk ends in an error if the bytes fail verification.
    Stream(BodyStream),
}

impl Body {
    /// The body as a chunk stream, whatever its form.
    pub fn into_stream(self) -> BodyStream {
        match self {
            Body::Bytes(b) => Box::pin(futures::stream::once(async move { Ok(b) })),
            Body::Stream(s) => s,
        }
    }

    /// Collects the whole body (for tests and small bodies only).
    pub async fn collect(self) -> io::Result<Bytes> {
        match self {
            Body::Bytes(b) => Ok(b),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk?);
                }
                Ok(Bytes::from(out))
            }
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::Bytes(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Bytes(Bytes::from(v))
    }
}

/// A found entry, and the tier that answered.
pub struct Hit {
    /// What is known of the entry.
    pub meta: EntryMeta,
    /// Its bytes.
    pub body: Body,
    /// Which tier answered.
    pub tier: TierName,
}
