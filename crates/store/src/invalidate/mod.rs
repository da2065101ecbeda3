//! Invalidation: entries leave the cache because an operator or an event says so (by key,
//! prefix, tag, scope, kind, or a kind's names), or because the version epoch they were
//! written under was bumped. One call removes them from every tier this node reaches;
//! with a fleet, events also travel through Redis Streams to every other node (`feed`).

pub mod epochs;
pub mod event;
pub mod feed;

use std::sync::Arc;

use serde::Serialize;
use tiercache_core::{CacheKey, EntryMeta, Selector};
use tracing::warn;

use crate::error::StoreError;
use crate::tier::object::SpareRef;
use crate::tiered::TieredStore;
use epochs::{EpochError, EpochOf};
use event::{Envelope, Invalidation, MAX_STEPS};

/// What publishing an invalidation did.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Removed here (L1, L2) and from the shared L3.
    pub removed: Removed,
    /// Its id on the fleet's stream (`None` without a fleet, or in a dry run).
    pub stream_id: Option<String>,
}

/// Why an invalidation could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("an invalidation carries at most {MAX_STEPS} selectors and epochs")]
    TooLarge,
    #[error(transparent)]
    Epoch(#[from] EpochError),
    #[error("applied on this node and in L3, but not sent to the fleet (retry it): {0}")]
    Fleet(String),
}

/// How many entries an invalidation removed (or, in a dry run, would remove), per tier.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub l1: u64,
    pub l2: u64,
    pub l3: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, o: Removed) {
        self.l1 += o.l1;
        self.l2 += o.l2;
        self.l3 += o.l3;
    }
}

/// Which tiers an invalidation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// This node's L1 and L2 (an event another node already applied to L3).
    Local,
    /// L1, L2 and the shared L3 (where the event starts).
    Everywhere,
}

/// A predicate sparing some selected entries (an epoch GC spares current ones).
type Spare = Arc<dyn Fn(&CacheKey, &EntryMeta) -> bool + Send + Sync>;

impl TieredStore {
    /// Removes (unless `dry_run`) every entry the selectors select, from the tiers `reach`
    /// names; answers how many each tier had.
    pub async fn invalidate(
        &self,
        selectors: &[Selector],
        reach: Reach,
        dry_run: bool,
    ) -> Result<Removed, StoreError> {
        let mut total = Removed::default();
        for s in selectors {
            total += self.remove_selected(s, None, reach, dry_run).await?;
        }
        Ok(total)
    }

    async fn remove_selected(
        &self,
        selector: &Selector,
        spare: Option<Spare>,
        reach: Reach,
        dry_run: bool,
    ) -> Result<Removed, StoreError> {
        let keep = |k: &CacheKey, m: &EntryMeta| spare.as_ref().is_some_and(|f| f(k, m));
        let l1 = self.l1().remove_matching(selector, keep, dry_run).await;
        let spare_l2 = spare.clone();
        let rows = self
            .l2()
            .select(selector.clone(), move |k, m| {
                spare_l2.as_ref().is_some_and(|f| f(k, m))
            })
            .await?;
        let l2 = if dry_run {
            rows.len() as u64
        } else {
            self.l2()
                .remove_many(rows.into_iter().map(|(k, _)| k).collect())
                .await?
        };
        let l3 = if reach == Reach::Everywhere {
            self.remove_from_l3(selector, spare.as_deref(), dry_run)
                .await
        } else {
            0
        };
        Ok(Removed { l1, l2, l3 })
    }

    /// Removes (or counts) the selected entries from the shared L3; failures are logged
    /// (L3 keeps those entries until its TTL).
    async fn remove_from_l3(
        &self,
        selector: &Selector,
        spare: Option<SpareRef<'_>>,
        dry_run: bool,
    ) -> u64 {
        let Some(tier) = self.l3() else {
            return 0;
        };
        let keys = match tier.select(selector, spare).await {
            Ok(keys) => keys,
            Err(e) => {
                warn!(error = %e, "invalidation: listing L3 failed; it keeps those entries until their TTL");
                return 0;
            }
        };
        if dry_run {
            return keys.len() as u64;
        }
        let mut removed = 0;
        for k in keys {
            match tier.delete(&k).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => warn!(key = %k, error = %e, "invalidation: L3 delete failed"),
            }
        }
        removed
    }

    /// Applies `event` to the tiers `reach` names: raises its epochs (retiring older
    /// entries), then removes what its selectors select.
    pub async fn apply(
        &self,
        event: &Invalidation,
        reach: Reach,
        dry_run: bool,
    ) -> Result<Removed, EpochError> {
        let mut total = Removed::default();
        for bump in &event.epochs {
            if dry_run {
                continue;
            }
            match self.raise_epoch(&bump.of, bump.epoch, reach).await {
                Ok(Some(removed)) => total += removed,
                Ok(None) => {}
                // Another event raised it further already: nothing to do here.
                Err(EpochError::Lower { .. }) if reach == Reach::Local => {}
                Err(e) => return Err(e),
            }
        }
        total += self
            .invalidate(&event.selectors, reach, dry_run)
            .await
            .map_err(EpochError::Save)?;
        Ok(total)
    }

    /// Starts an invalidation here: applied to every tier (L3 once, here), then appended to
    /// the fleet's stream for the other nodes. A dry run only counts, here.
    pub async fn publish(
        &self,
        event: Invalidation,
        dry_run: bool,
    ) -> Result<Published, PublishError> {
        if event.selectors.len() + event.epochs.len() > MAX_STEPS {
            return Err(PublishError::TooLarge);
        }
        for bump in &event.epochs {
            let current = self.epochs().snapshot();
            let now = match &bump.of {
                EpochOf::Kind(k) => current.kinds.get(k).copied().unwrap_or(0),
                EpochOf::Template(t) => current.templates.get(t).copied().unwrap_or(0),
            };
            if bump.epoch < now {
                return Err(PublishError::Epoch(EpochError::Lower {
                    of: bump.of.clone(),
                    current: now,
                    asked: bump.epoch,
                }));
            }
        }
        let removed = self.apply(&event, Reach::Everywhere, dry_run).await?;
        let mut stream_id = None;
        if !dry_run && let Some(fleet) = self.fleet() {
            let env = Envelope {
                origin: self.feed().node().to_owned(),
                event,
            };
            let payload =
                serde_json::to_string(&env).map_err(|e| PublishError::Fleet(e.to_string()))?;
            let id = fleet
                .stream_add(feed::STREAM, &payload)
                .await
                .map_err(|e| PublishError::Fleet(e.to_string()))?;
            stream_id = Some(id);
        }
        Ok(Published { removed, stream_id })
    }

    /// Whether `meta` was written under the epochs in force for `key`.
    pub(crate) fn current(&self, key: &CacheKey, meta: &EntryMeta) -> bool {
        meta.epoch == self.epochs().stamp(key)
    }

    /// Deletes a retired (old-epoch) entry from this node's disk in the background.
    pub(crate) fn retire(&self, key: &CacheKey) {
        let (l2, key) = (self.l2().clone(), key.clone());
        tokio::spawn(async move {
            if let Err(e) = l2.delete(&key).await {
                warn!(%key, error = %e, "deleting an entry of a retired epoch failed");
            }
        });
    }

    /// Raises an epoch (entries written under the old one are misses from now on) and
    /// deletes those entries from the tiers `reach` names; `Ok(None)` if it was already there.
    pub async fn raise_epoch(
        &self,
        of: &EpochOf,
        epoch: u32,
        reach: Reach,
    ) -> Result<Option<Removed>, EpochError> {
        if !self.epochs().raise(of, epoch)? {
            return Ok(None);
        }
        let selector = match of {
            EpochOf::Kind(k) => tiercache_core::Kind::new(k).map(Selector::Kind),
            EpochOf::Template(t) => tiercache_core::Scope::template(t).map(Selector::Scope),
        };
        let Ok(selector) = selector else {
            return Ok(Some(Removed::default()));
        };
        let epochs = self.epochs_handle();
        let spare: Spare = Arc::new(move |k: &CacheKey, m: &EntryMeta| m.epoch == epochs.stamp(k));
        // This node's tiers now (an index scan); the bucket in the background, since finding
        // old entries there reads each candidate's metadata. Until then they are misses anyway.
        let removed = self
            .remove_selected(&selector, Some(spare.clone()), Reach::Local, false)
            .await
            .map_err(EpochError::Save)?;
        if reach == Reach::Everywhere && self.l3().is_some() {
            let store = self.clone();
            tokio::spawn(async move {
                let n = store.remove_from_l3(&selector, Some(&*spare), false).await;
                tracing::info!(removed = n, "L3 entries of a retired epoch deleted");
            });
        }
        Ok(Some(removed))
    }
}
