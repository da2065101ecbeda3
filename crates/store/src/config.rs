//! How the store is built: where it lives and what each tier may spend.

use std::path::PathBuf;

use tiercache_core::policy::MIB;
use tiercache_core::{L1Policy, L2Policy};

use crate::fleet::RedisConfig;
use crate::invalidate::epochs::EpochTable;
use crate::tier::object::L3Config;

/// Everything the tiered store needs to open.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Directory of the disk tier (blobs, index, temporary files).
    pub data_dir: PathBuf,
    /// The memory tier's policy.
    pub l1: L1Policy,
    /// The disk tier's policy.
    pub l2: L2Policy,
    /// Largest entry accepted at all.
    pub max_entry_bytes: u64,
    /// Disk reads up to this size are verified whole in memory; larger ones stream twice
    /// (a verification pass, then the served pass, which verifies again).
    pub inline_read_bytes: u64,
    /// How often expired entries are swept from disk.
    pub sweep_interval: std::time::Duration,
    /// The shared tier in an S3-compatible bucket; `None` = this node alone.
    pub l3: Option<L3Config>,
    /// The fleet's Redis (shared counters, fleet-wide single-flight); `None` = node-local.
    pub redis: Option<RedisConfig>,
    /// Longest a node waits for another node's fetch of the same key before it fetches itself.
    pub fleet_wait: std::time::Duration,
    /// Uploads to L3 that may wait in the background queue; more are dropped (and counted).
    pub l3_queue: usize,
    /// How often expired L3 entries and unreferenced blobs are deleted (listing a bucket is
    /// not free, so far less often than on disk).
    pub l3_sweep_interval: std::time::Duration,
    /// The audit log (`<data_dir>/audit/`) rotates `current.jsonl` at this size.
    pub audit_max_file_bytes: u64,
    /// Rotated audit files kept; the oldest beyond this are deleted.
    pub audit_max_files: usize,
    /// Distinct users of a template whose byte-identical uploads of one artifact promote it
    /// to the template's scope; 0 = never.
    pub promote_after: u32,
    /// Configured version epochs (the floor; the admin API raises them).
    pub epochs: EpochTable,
    /// How long a fleet node that has not caught up on invalidation events answers from L3
    /// and the origin only, before it serves its own tiers again regardless.
    pub event_grace: std::time::Duration,
}

impl StoreConfig {
    /// Defaults for a store under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            l1: L1Policy::default(),
            l2: L2Policy::default(),
            max_entry_bytes: 2 * 1024 * MIB,
            inline_read_bytes: 4 * MIB,
            sweep_interval: std::time::Duration::from_secs(60),
            l3: None,
            redis: None,
            fleet_wait: std::time::Duration::from_secs(60),
            l3_queue: 1024,
            l3_sweep_interval: std::time::Duration::from_secs(3600),
            audit_max_file_bytes: crate::audit::DEFAULT_MAX_FILE_BYTES,
            audit_max_files: crate::audit::DEFAULT_MAX_FILES,
            promote_after: 2,
            epochs: EpochTable::default(),
            event_grace: std::time::Duration::from_secs(30),
        }
    }
}
