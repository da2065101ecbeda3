//! What the nodes of a fleet share, as the tiered store sees it: the L3 tier (with its
//! background upload queue and sweeper) and the fleet's Redis (counters, fleet-wide locks).
//! Both are optional and both fail open: an error here is a miss or a skipped step, never a
//! failed request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tiercache_core::{CacheKey, EntryMeta};
use tracing::{debug, warn};

use crate::body::{Body, Hit};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::fleet::{Fleet, FleetLock, LockAttempt, WaitOutcome};
use crate::stats::TierName;
use crate::tier::disk::DiskTier;
use crate::tier::memory::MemoryTier;
use crate::tier::object::{
    ObjectTier, PutOutcome, QueueStats, SweeperHandle, UploadQueue, UploadSource,
};

mod local;
use local::Local;

/// Workers uploading to L3 at once.
const UPLOAD_WORKERS: usize = 2;
/// Most L3 entries one sweep pass deletes.
const SWEEP_BATCH: usize = 1000;
/// How often a node waiting on another node's fetch looks whether it is done.
pub(super) const LOCK_POLL: Duration = Duration::from_millis(50);

/// The shared tier and the fleet, when configured.
#[derive(Clone)]
pub(crate) struct Shared {
    l3: Option<L3>,
    fleet: Option<Fleet>,
    fleet_wait: Duration,
    local: Arc<Local>,
}

#[derive(Clone)]
struct L3 {
    tier: ObjectTier,
    queue: UploadQueue,
    _sweeper: Arc<SweeperHandle>,
    _watch: Arc<AbortOnDrop>,
}

/// How often an idle node asks S3 whether it still answers.
const L3_CHECK: Duration = Duration::from_secs(5);

/// A background task that ends with the last handle on it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a node does about a key it misses, fleet-wide.
pub enum FleetTurn {
    /// Fetch it from the origin (holding the fleet's lock, if there is a fleet).
    Fetch(FleetGuard),
    /// Another node fetched it meanwhile: read it again.
    Reread,
}

/// The fleet's lock on a key this node is fetching, if there is a fleet; let go of it with
/// [`FleetGuard::release`] once what was fetched is in L3 (dropped, it is released late).
pub struct FleetGuard(Option<FleetLock>);

impl FleetGuard {
    /// Whether this node holds the fleet's lock (so other nodes wait for its writes).
    pub fn holds(&self) -> bool {
        self.0.is_some()
    }

    /// Lets go of the lock; if Redis cannot be told, the lease runs out on its own.
    pub async fn release(self) {
        if let Some(lock) = self.0 {
            release(lock).await;
        }
    }

    pub(crate) fn into_lock(self) -> Option<FleetLock> {
        self.0
    }
}

/// Lets go of a fleet lock; if Redis cannot be told, the lease runs out on its own.
pub(crate) async fn release(lock: FleetLock) {
    if let Err(e) = lock.release().await {
        warn!(error = %e, "fleet lock not released: it expires with its lease");
    }
}

impl Shared {
    /// Opens L3 and connects to Redis as configured; neither touches the network yet.
    pub fn open(config: &StoreConfig, l1: &MemoryTier, l2: &DiskTier) -> Result<Self, StoreError> {
        let fleet = config.redis.as_ref().map(Fleet::connect);
        let local = Arc::new(Local {
            l1: l1.clone(),
            l2: l2.clone(),
            fleet: fleet.clone(),
            fleet_wait: config.fleet_wait,
        });
        let l3 = match &config.l3 {
            None => None,
            Some(cfg) => {
                let tier = ObjectTier::open(cfg).map_err(|e| StoreError::Config(e.to_string()))?;
                let source = local.clone() as Arc<dyn UploadSource>;
                let queue =
                    UploadQueue::start(tier.clone(), source, config.l3_queue, UPLOAD_WORKERS);
                let sweeper = Arc::new(tier.spawn_sweeper(config.l3_sweep_interval, SWEEP_BATCH));
                let watched = tier.clone();
                let watch = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(L3_CHECK).await;
                        watched.check().await;
                    }
                });
                Some(L3 {
                    tier,
                    queue,
                    _sweeper: sweeper,
                    _watch: Arc::new(AbortOnDrop(watch)),
                })
            }
        };
        Ok(Shared {
            l3,
            fleet,
            fleet_wait: config.fleet_wait,
            local,
        })
    }

    pub fn l3(&self) -> Option<&ObjectTier> {
        self.l3.as_ref().map(|l| &l.tier)
    }

    pub fn queue(&self) -> Option<QueueStats> {
        self.l3.as_ref().map(|l| l.queue.stats())
    }

    pub fn fleet(&self) -> Option<&Fleet> {
        self.fleet.as_ref()
    }

    /// The entry from L3, verified; any L3 failure is a miss.
    pub async fn get(&self, key: &CacheKey) -> Option<Hit> {
        let l3 = self.l3.as_ref()?;
        match l3.tier.get(key).await {
            Ok(hit) => hit,
            Err(e) => {
                debug!(%key, error = %e, "L3 read failed: treated as a miss");
                None
            }
        }
    }

    pub async fn head(&self, key: &CacheKey) -> Option<EntryMeta> {
        let l3 = self.l3.as_ref()?;
        l3.tier.head(key).await.ok().flatten()
    }

    /// Hands a stored entry to the background upload queue (small bodies travel with it).
    pub fn replicate(&self, key: &CacheKey, meta: &EntryMeta, small: Option<Bytes>) {
        if let Some(l3) = &self.l3
            && !l3.queue.enqueue(key.clone(), meta.clone(), small)
        {
            warn!(%key, "L3 upload queue full: entry not replicated");
        }
    }

    /// Uploads a stored entry now (a fleet lock holder does, so that the nodes waiting on it
    /// find it in L3); falls back to the queue if that fails.
    pub async fn replicate_now(&self, key: &CacheKey, meta: &EntryMeta, body: Body) {
        let Some(l3) = &self.l3 else { return };
        match l3.tier.put(key, meta, body).await {
            Ok(PutOutcome::Stored) => {}
            Ok(PutOutcome::Kept(theirs)) => {
                if theirs.hash != meta.hash {
                    self.local.superseded(key.clone(), theirs).await;
                }
            }
            Err(e) => {
                debug!(%key, error = %e, "L3 upload failed: queued for retry");
                self.replicate(key, meta, None);
            }
        }
    }

    pub async fn delete(&self, key: &CacheKey) -> bool {
        let Some(l3) = &self.l3 else { return false };
        match l3.tier.delete(key).await {
            Ok(found) => found,
            Err(e) => {
                warn!(%key, error = %e, "L3 delete failed");
                false
            }
        }
    }

    /// Counts a lookup of `key` answered by `tier` (`None`: a miss everywhere) fleet-wide.
    pub fn count_lookup(&self, key: &CacheKey, tier: Option<TierName>) {
        if let Some(fleet) = &self.fleet {
            let kind = key.kind().as_str();
            match tier {
                Some(t) => fleet.count(&format!("hits:{}:{kind}", t.as_str()), 1),
                None => fleet.count(&format!("misses:{kind}"), 1),
            }
        }
    }

    /// Counts an entry of `bytes` fetched from the origin, fleet-wide.
    pub fn count_origin(&self, key: &CacheKey, bytes: u64) {
        if let Some(fleet) = &self.fleet {
            let kind = key.kind().as_str();
            fleet.count(&format!("origin:{kind}"), 1);
            fleet.count(&format!("origin_bytes:{kind}"), bytes);
        }
    }

    /// Decides who in the fleet fetches `key`: this node (holding the lock, or alone when
    /// Redis cannot be asked or another node takes too long), or another node that did it
    /// meanwhile.
    pub async fn fleet_turn(&self, key: &CacheKey) -> FleetTurn {
        let Some(fleet) = &self.fleet else {
            return FleetTurn::Fetch(FleetGuard(None));
        };
        let name = key.to_string();
        match fleet.try_lock(&name).await {
            LockAttempt::Acquired(lock) => FleetTurn::Fetch(FleetGuard(Some(lock))),
            LockAttempt::Unavailable => FleetTurn::Fetch(FleetGuard(None)),
            LockAttempt::Held => match fleet.wait_unlocked(&name, LOCK_POLL, self.fleet_wait).await
            {
                WaitOutcome::Released => FleetTurn::Reread,
                WaitOutcome::TimedOut => {
                    warn!(%key, "another node's fetch is taking too long: fetching here too");
                    FleetTurn::Fetch(FleetGuard(None))
                }
                WaitOutcome::Unavailable => FleetTurn::Fetch(FleetGuard(None)),
            },
        }
    }

    /// Writes buffered counters and waits briefly for queued uploads (at shutdown).
    pub async fn flush(&self, wait: Duration) {
        if let Some(l3) = &self.l3
            && !l3.queue.wait_idle(wait).await
        {
            warn!(
                pending = l3.queue.stats().depth,
                "L3 uploads still queued at shutdown: not replicated"
            );
        }
        if let Some(fleet) = &self.fleet
            && let Err(e) = fleet.flush_now().await
        {
            warn!(error = %e, "fleet counters not flushed at shutdown");
        }
    }
}
