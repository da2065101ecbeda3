//! Promotion: a build artifact uploaded under the same key with byte-identical content by at
//! least `k` distinct users of one template is copied into that template's scope. Identical
//! outputs from independent users are neither private nor forged, so sharing them is safe;
//! one user (or fewer than `k`) can never put bytes where another user's reads will find them.
//!
//! The copy is screened for secrets like any other write to a shared scope, written once
//! (first write wins), and audited either way. It never fails the upload that triggered it.

pub mod witnesses;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tiercache_core::{CacheKey, Decision, EntryMeta, Principal, PutOptions, Scope};
use tracing::{info, warn};

use crate::audit::{Action, AuditLog, AuditRecord};
use crate::error::StoreError;
use crate::fleet::Fleet;
use crate::screen;
use crate::tiered::TieredStore;
use witnesses::{Witnesses, record_name};

/// How long witnesses of one artifact are remembered after the last upload (the shared
/// tier's default lifetime: an artifact nobody re-uploads for this long is gone anyway).
pub const WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// Local adds between two sweeps of forgotten witnesses.
const SWEEP_EVERY: u64 = 4096;

/// The promotion rule and the witnesses it counts.
#[derive(Clone)]
pub struct Promotion {
    /// Distinct users needed; 0 = promotion off.
    after: usize,
    witnesses: Option<Witnesses>,
    adds: Arc<AtomicU64>,
}

impl Promotion {
    /// The rule with `after` users (0 = off): witnesses in the fleet's Redis if there is
    /// one, else in `<data_dir>/witnesses.redb`.
    pub async fn open(
        after: u32,
        data_dir: &std::path::Path,
        fleet: Option<&Fleet>,
    ) -> Result<Promotion, StoreError> {
        let after = usize::try_from(after).unwrap_or(usize::MAX);
        let witnesses = match (after, fleet) {
            (0, _) => None,
            (_, Some(fleet)) => Some(Witnesses::Fleet(fleet.clone())),
            (_, None) => {
                let local = Witnesses::open_local(data_dir).await?;
                if let Err(e) = local.sweep(WINDOW).await {
                    warn!(error = %e, "sweeping old promotion witnesses failed");
                }
                Some(local)
            }
        };
        Ok(Promotion {
            after,
            witnesses,
            adds: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Distinct users needed for a promotion (0 = off).
    pub fn after(&self) -> usize {
        self.after
    }
}

impl TieredStore {
    /// After `who` stored `meta` under `key` in its own scope: counts it as a witness for each
    /// of its templates, and promotes the entry to a template once `k` users agree.
    pub(crate) async fn consider_promotion(
        &self,
        who: &Principal,
        key: &CacheKey,
        meta: &EntryMeta,
        audit: Option<&AuditLog>,
    ) {
        let promotion = self.promotion();
        let Some(witnesses) = &promotion.witnesses else {
            return;
        };
        let Scope::User(owner) = key.scope() else {
            return;
        };
        if who.user.as_deref() != Some(owner.as_str()) {
            return;
        }
        let entry = format!("{}/{}", key.kind().as_str(), key.name().as_str());
        for template in &who.templates {
            let Ok(scope) = Scope::template(template) else {
                continue;
            };
            let target = CacheKey::new(scope, key.kind().clone(), key.name().clone());
            match self.head(&target).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    warn!(key = %target, error = %e, "promotion: checking the template failed");
                    continue;
                }
            }
            let record = record_name(template, &entry, &meta.hash.to_string());
            let users = match witnesses.add(&record, owner, WINDOW).await {
                Ok(users) => users,
                Err(e) => {
                    warn!(key = %target, error = %e, "promotion: recording the upload failed");
                    continue;
                }
            };
            if users.len() >= promotion.after {
                self.promote_to_template(who, key, &target, meta, users.len(), audit)
                    .await;
            }
        }
        if promotion.adds.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
            && let Err(e) = witnesses.sweep(WINDOW).await
        {
            warn!(error = %e, "sweeping old promotion witnesses failed");
        }
    }

    /// Copies the user's entry to `target` (screened, first write wins) and audits it.
    async fn promote_to_template(
        &self,
        who: &Principal,
        from: &CacheKey,
        target: &CacheKey,
        meta: &EntryMeta,
        users: usize,
        audit: Option<&AuditLog>,
    ) {
        // The user's copy as stored now; if it was replaced meanwhile, these are not the
        // bytes the witnesses agreed on.
        let hit = match self.get(from).await {
            Ok(Some(hit)) if hit.meta.hash == meta.hash => hit,
            Ok(_) => return,
            Err(e) => {
                warn!(key = %from, error = %e, "promotion: reading the upload failed");
                return;
            }
        };
        let opts = PutOptions {
            content_type: meta.content_type.clone(),
            ttl: None,
            tags: meta.tags.clone(),
            headers: meta.headers.clone(),
            epoch: meta.epoch,
            expected_hash: Some(meta.hash),
            immutable: true,
            shareable: false,
        };
        let stored = match screen::screen_body(target.name().as_str(), hit.body).await {
            Ok(body) => self
                .put(target, opts, body)
                .await
                .map_err(screen::sensitive),
            Err(e) => Err(e),
        };
        let (decision, reason) = match stored {
            Ok(_) => {
                info!(key = %target, users, "promoted identical uploads to the template");
                (
                    Decision::Allow,
                    format!("identical bytes uploaded by {users} users of the template"),
                )
            }
            Err(StoreError::Sensitive(reason)) => (
                Decision::Deny("sensitive content"),
                format!("sensitive content: {reason}"),
            ),
            Err(e) => {
                warn!(key = %target, error = %e, "promotion: storing the copy failed");
                return;
            }
        };
        if let Some(log) = audit {
            let mut rec = AuditRecord::new(who, target, Action::Promote, &decision);
            rec.reason = Some(reason);
            log.record(rec).await;
        }
    }
}
