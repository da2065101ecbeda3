//! Why an L3 operation failed; the tiered store treats every one of them as a miss.

use std::io;
use std::time::Duration;

use tiercache_core::ContentHash;

/// Why an L3 operation failed.
#[derive(Debug, thiserror::Error)]
pub enum L3Error {
    /// The configuration cannot work; found before any request.
    #[error("invalid L3 configuration: {0}")]
    Config(String),
    /// S3 failed recently and the circuit is open: answered at once, without a request.
    #[error(
        "L3 is unavailable (degraded since {since_ms} ms after the epoch); S3 is not contacted until a probe succeeds"
    )]
    Unavailable {
        /// When the tier became degraded, in ms since the Unix epoch.
        since_ms: u64,
    },
    /// S3 did not answer in time.
    #[error("S3 did not answer within {0:?}")]
    Timeout(Duration),
    /// S3 (or the connection to it) failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// A body to store was not as long as its metadata says; nothing was stored.
    #[error("body is {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The size in the metadata.
        expected: u64,
        /// What the body held (at least).
        actual: u64,
    },
    /// A body to store did not hash to its metadata's hash; nothing was stored.
    #[error("body hashes to {actual}, expected {expected}")]
    HashMismatch {
        /// The hash in the metadata.
        expected: ContentHash,
        /// The hash of the bytes.
        actual: ContentHash,
    },
    /// Reading the body to store failed.
    #[error("reading the body failed: {0}")]
    Body(#[source] io::Error),
    /// An entry document could not be written or read.
    #[error("bad entry document at {path}: {reason}")]
    BadEntry {
        /// Where the document is.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl L3Error {
    /// Whether trying again later may succeed (S3 trouble), as opposed to a bad body or config.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            L3Error::Unavailable { .. } | L3Error::Timeout(_) | L3Error::Store(_)
        )
    }

    /// Whether this is the open circuit's immediate answer (no request was made).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, L3Error::Unavailable { .. })
    }
}
