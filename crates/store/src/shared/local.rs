//! This node's side of replication: where the upload queue reads large bodies (the copy
//! just written to L2), how a first-write-wins upload is made exclusive (the fleet's lock),
//! and what happens to the local copy when another node's write was kept.

use std::time::Duration;

use futures::future::BoxFuture;
use tiercache_core::{CacheKey, EntryMeta};
use tracing::{debug, warn};

use super::LOCK_POLL;
use crate::body::Body;
use crate::fleet::{Fleet, LockAttempt};
use crate::tier::disk::DiskTier;
use crate::tier::memory::MemoryTier;
use crate::tier::object::UploadSource;

/// The queue's source of large bodies (the copy just written to L2), its exclusion for
/// first-write-wins uploads (the fleet's lock), and what to do when another write won.
pub(super) struct Local {
    pub l1: MemoryTier,
    pub l2: DiskTier,
    pub fleet: Option<Fleet>,
    pub fleet_wait: Duration,
}

impl UploadSource for Local {
    fn open(&self, key: CacheKey, meta: EntryMeta) -> BoxFuture<'static, Option<Body>> {
        let l2 = self.l2.clone();
        Box::pin(async move {
            match l2.get(&key).await {
                Ok(Some(hit)) if hit.meta.hash == meta.hash => Some(hit.body),
                _ => None,
            }
        })
    }

    fn exclusive(&self, key: CacheKey) -> BoxFuture<'static, Option<Box<dyn Send>>> {
        let (fleet, wait) = (self.fleet.clone(), self.fleet_wait);
        Box::pin(async move {
            let fleet = fleet?;
            let name = format!("put:{key}");
            match fleet.try_lock(&name).await {
                LockAttempt::Acquired(lock) => Some(Box::new(lock) as Box<dyn Send>),
                // Another node is writing it: once it is done, the put finds its write.
                LockAttempt::Held => {
                    fleet.wait_unlocked(&name, LOCK_POLL, wait).await;
                    None
                }
                LockAttempt::Unavailable => None,
            }
        })
    }

    fn superseded(&self, key: CacheKey, theirs: EntryMeta) -> BoxFuture<'static, ()> {
        let (l1, l2) = (self.l1.clone(), self.l2.clone());
        Box::pin(async move {
            // The fleet keeps the first write; this node's copy goes, so every node serves
            // the same bytes (the next read promotes the kept one from L3).
            let ours = l2.head(&key).await.ok().flatten();
            if ours.is_some_and(|m| m.hash != theirs.hash) {
                l1.remove(&key).await;
                if let Err(e) = l2.delete(&key).await {
                    warn!(%key, error = %e, "could not drop a superseded local copy");
                }
                debug!(%key, kept = %theirs.hash, "another node's first write kept: local copy dropped");
            }
        })
    }
}
