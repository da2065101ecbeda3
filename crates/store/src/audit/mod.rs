//! The audit log: every read, write, denial and promotion touching a non-global scope, one
//! JSON object per line, in an append-only, crash-safe log under `<data_dir>/audit/`.
//!
//! - **Cheap on the request path.** [`AuditLog::record`] puts the record on a bounded channel;
//!   a background task appends batches to `current.jsonl` and `fdatasync`s at most every
//!   100 ms (or every 256 records), and at once on [`AuditLog::flush`] / [`AuditLog::close`].
//!   When the channel is full, `record` waits up to [`SEND_TIMEOUT`] for room, then drops the
//!   record, counts it (`tiercache_audit_dropped_total`) and warns: an audit log must not be
//!   able to stall the cache, but a loss is never silent.
//! - **Crash-safe.** Records are only ever appended; a crash mid-write can leave a torn last
//!   line, which is cut away when the log is next opened (and skipped by readers meanwhile),
//!   so earlier records are never lost or corrupted.
//! - **Rotated by size.** When `current.jsonl` would exceed the size limit it is renamed to
//!   `audit-<first_time_ms>-<seq>.jsonl` (the directory fsynced) and a new file started; at
//!   most `max_files` rotated files are kept, the oldest deleted first.
//! - **Queryable offline.** [`read_dir`] reads a log directory without a running server
//!   (`tiercache audit`), [`AuditLog::query`] the log a server is writing.

mod log;
mod query;
mod record;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use log::{AuditLog, AuditStats};
pub use query::{AuditFilter, parse_since, read_dir, user_principals};
pub use record::{ANONYMOUS, Action, AuditRecord, Verdict, audited, principal_name};

/// The log's directory inside a data directory.
pub const DIR: &str = "audit";
/// The file being appended to.
pub const CURRENT: &str = "current.jsonl";
/// Default size at which the current file is rotated.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_MAX_FILES: usize = 16;
/// Records that may wait for the writer.
pub const CHANNEL_CAPACITY: usize = 8192;
/// How long [`AuditLog::record`] waits for room in a full channel before dropping the record.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(50);

/// Where the audit log of the store in `data_dir` lives.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// Why the audit log failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file or directory operation failed.
    #[error("audit log I/O failed ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("encoding an audit record failed: {0}")]
    Encode(String),
    /// A filter or option is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The writer has stopped (the log was closed or its task failed).
    #[error("the audit log is closed")]
    Closed,
    /// A background task failed.
    #[error("audit task failed: {0}")]
    Task(String),
}

impl AuditError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AuditError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<tokio::task::JoinError> for AuditError {
    fn from(e: tokio::task::JoinError) -> Self {
        AuditError::Task(e.to_string())
    }
}
