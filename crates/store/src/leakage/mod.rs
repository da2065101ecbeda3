//! Leakage scanning with quarantine: what already sits in the shared scopes (template and
//! global) is scanned for secrets, email addresses and references to this server's user ids
//! (`tiercache_scan::leak`), and whatever is found is quarantined: removed from every tier of
//! its scope, kept for admins outside every scope (`<data_dir>/quarantine/`), and audited
//! (`Action::Quarantine`).
//!
//! - [`run`]: one pass over this node's L2 and, when configured, L3 (entries only there are
//!   covered too), in pages, one body at a time on a blocking thread;
//! - [`scanned`]: clean verdicts remembered per (key, hash, rules), so a periodic run reads
//!   only what changed;
//! - [`quarantine`]: the kept entries;
//! - [`job`]: the periodic run `serve` starts (`[leakage] interval`).

mod job;
pub mod quarantine;
mod run;
mod scan;
mod scanned;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tiercache_core::Role;
use tokio::sync::Mutex;

use crate::audit::AuditLog;
use crate::body::Body;
use crate::error::StoreError;
use crate::tiered::TieredStore;

pub use job::JobHandle;
pub use quarantine::{FindingView, QuarantineItem, valid_id};

/// The directory of the scan's own state inside a data directory.
pub const DIR: &str = "leakage";
/// The quarantine's directory inside a data directory.
pub const QUARANTINE_DIR: &str = "quarantine";
/// The principal the periodic run is audited as.
pub const PERIODIC: &str = "leakage-scan";

/// How a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Report only: remove nothing, quarantine nothing, remember nothing.
    pub dry_run: bool,
    /// Who asked (audited as the quarantine's principal).
    pub by: String,
    /// Their role (an admin, or the server itself for the periodic run).
    pub role: Role,
}

impl RunOptions {
    /// The periodic run's options.
    pub fn periodic() -> Self {
        RunOptions {
            dry_run: false,
            by: PERIODIC.to_owned(),
            role: Role::Admin,
        }
    }
}

/// One entry with findings.
#[derive(Debug, Clone, Serialize)]
pub struct EntryFindings {
    /// `<scope>/<kind>/<name>`.
    pub key: String,
    /// Where the scanned copy came from (`l2`, `l3`).
    pub tier: String,
    /// BLAKE3 of the scanned body (hex).
    pub hash: String,
    /// Body length.
    pub size: u64,
    /// The quarantine item it became (`None` in a dry run, or if quarantining failed).
    pub quarantine_id: Option<String>,
    /// Why quarantining failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was found (rule and place, never the text).
    pub findings: Vec<FindingView>,
}

/// An entry that could not be scanned (too large, corrupt archive, read failure): neither
/// cleared nor quarantined; looked at again next run.
#[derive(Debug, Clone, Serialize)]
pub struct Unscannable {
    /// `<scope>/<kind>/<name>`.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeakageReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Entries read and scanned.
    pub scanned: u64,
    /// Entries skipped: scanned clean before, unchanged, under the same rules.
    pub skipped: u64,
    /// Entries quarantined.
    pub quarantined: u64,
    /// User ids looked for.
    pub user_ids: usize,
    /// Whether L3 was listed too.
    pub l3: bool,
    /// Entries with findings.
    pub entries: Vec<EntryFindings>,
    /// Entries that could not be scanned.
    pub unscannable: Vec<Unscannable>,
    /// Listing or read failures (the run went on without that part).
    pub errors: Vec<String>,
    /// How long the run took, in milliseconds.
    pub elapsed_ms: u64,
}

/// The scan and its quarantine for one store; one run at a time.
pub struct Leakage {
    store: TieredStore,
    audit: Arc<AuditLog>,
    scanned: Arc<scanned::Scanned>,
    quarantine: quarantine::QuarantineDir,
    running: Mutex<()>,
}

impl Leakage {
    /// Opens the scan's state under `data_dir` (`leakage/`, `quarantine/`); quarantines are
    /// audited in `audit`.
    pub async fn open(
        store: TieredStore,
        audit: Arc<AuditLog>,
        data_dir: &Path,
    ) -> Result<Self, StoreError> {
        let db = data_dir.join(DIR).join("scanned.redb");
        let scanned = tokio::task::spawn_blocking(move || scanned::Scanned::open(&db)).await??;
        Ok(Leakage {
            store,
            audit,
            scanned: Arc::new(scanned),
            quarantine: quarantine::QuarantineDir::new(data_dir.join(QUARANTINE_DIR)),
            running: Mutex::new(()),
        })
    }

    /// Scans the shared scopes now (after any run in progress) and quarantines findings
    /// unless `opts.dry_run`.
    pub async fn run(&self, opts: RunOptions) -> LeakageReport {
        let _one_at_a_time = self.running.lock().await;
        run::Run::new(self, opts).go().await
    }

    /// Every quarantined entry, oldest first.
    pub async fn list(&self) -> Result<Vec<QuarantineItem>, StoreError> {
        self.quarantine.list().await
    }

    /// One quarantined entry and its body.
    pub async fn get(&self, id: &str) -> Result<Option<(QuarantineItem, Body)>, StoreError> {
        self.quarantine.get(id).await
    }
}
