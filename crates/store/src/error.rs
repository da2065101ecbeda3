//! The errors of the store, typed so the HTTP layer can answer each with the right status.

use std::sync::Arc;

use tiercache_core::ContentHash;
use tiercache_core::entry::OptionsError;

/// What a `get_or_load` loader may fail with; shared by every caller waiting on the same load.
pub type LoadError = Arc<dyn std::error::Error + Send + Sync>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("entry is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("body hashes to {actual}, expected {expected}")]
    HashMismatch {
        expected: ContentHash,
        actual: ContentHash,
    },
    #[error("invalid entry options: {0}")]
    Options(#[from] OptionsError),
    #[error("reading the request body failed: {0}")]
    Body(#[source] std::io::Error),
    #[error("disk I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("index failed: {0}")]
    Index(String),
    #[error("loading from the origin failed: {0}")]
    Load(#[source] LoadError),
    #[error("background task failed: {0}")]
    Task(String),
    #[error("invalid store configuration: {0}")]
    Config(String),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("refused for a shared scope: sensitive content ({0})")]
    Sensitive(String),
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        StoreError::Index(e.to_string())
    }
}

macro_rules! index_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Index(e.to_string())
            }
        }
    )*};
}
index_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Task(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Index(format!("bad index record: {e}"))
    }
}
