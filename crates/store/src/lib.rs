//! The tiered store: one API (get / head / put / delete / get_or_load) over an
//! in-memory tier (L1) and a local disk tier (L2), with read-through promotion,
//! write-through puts, single-flight loads and per-tier counters.
//!
//! Front-ends talk only to [`TieredStore`]; the tiers know nothing of npm or turbo.

pub mod audit;
pub mod body;
pub mod clock;
pub mod config;
pub mod error;
pub mod fleet;
pub mod invalidate;
pub mod leakage;
pub mod promotion;
pub mod scoped;
pub mod screen;
mod shared;
pub mod single_flight;
pub mod stats;
pub mod tier;
pub mod tiered;

pub use audit::{Action, AuditError, AuditFilter, AuditLog, AuditRecord, Verdict};
pub use body::{Body, BodyStream, Hit};
pub use config::StoreConfig;
pub use error::{LoadError, StoreError};
pub use fleet::{
    Fleet, FleetError, FleetHealth, FleetLock, FleetStatus, LockAttempt, RedisConfig, WaitOutcome,
};
pub use invalidate::epochs::{EpochError, EpochOf, EpochTable, Epochs};
pub use invalidate::event::{EpochBump, Invalidation};
pub use invalidate::feed::FeedHandle;
pub use invalidate::{PublishError, Published, Reach, Removed};
pub use scoped::Scoped;
pub use shared::{FleetGuard, FleetTurn};
pub use stats::{StatsSnapshot, TierName, TierStats};
pub use tier::disk::{DiskTier, KindUsage};
pub use tier::memory::MemoryTier;
pub use tier::object::{
    L3Config, L3Credentials, L3Error, L3Health, L3Status, ObjectTier, QueueStats, SweepReport,
    SweeperHandle, UploadQueue, UploadSource,
};
pub use tiered::{Fill, Loaded, TieredStore};
