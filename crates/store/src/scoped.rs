//! A principal's view of the store: the sharing rules of `tiercache_core::access` enforced on
//! every read, write and delete, in this one place, whatever front-end asks.
//!
//! Anything a non-admin (a warmer) writes to a template or global scope is screened for
//! secrets first (`screen`): refused there, with a reason naming the rule and file but never
//! the secret. Admins are the operator (and every caller in single-user mode): trusted.
//!
//! No existence oracle: a key in a scope the principal may not read is, to it, absent — a
//! read is a miss and a delete finds nothing, whether or not the entry exists. A write it may
//! not make is refused the same way whether or not the key exists.

use tiercache_core::{CacheKey, Decision, EntryMeta, Kind, Name, Principal, PutOptions, Scope};

use crate::audit::{Action, AuditLog};
use crate::body::{Body, Hit};
use crate::error::StoreError;
use crate::screen;
use crate::tiered::TieredStore;

/// The store as one principal may use it.
pub struct Scoped<'a> {
    store: &'a TieredStore,
    who: &'a Principal,
    audit: Option<&'a AuditLog>,
}

impl TieredStore {
    /// The store as `who` may use it.
    pub fn scoped<'a>(&'a self, who: &'a Principal) -> Scoped<'a> {
        Scoped {
            store: self,
            who,
            audit: None,
        }
    }
}

impl<'a> Scoped<'a> {
    /// The same view, recording every decision on a non-global scope in `log`.
    pub fn audited(self, log: &'a AuditLog) -> Self {
        Scoped {
            audit: Some(log),
            ..self
        }
    }

    /// The principal this view acts for.
    pub fn principal(&self) -> &Principal {
        self.who
    }

    async fn record(&self, key: &CacheKey, action: Action, decision: &Decision) {
        if let Some(log) = self.audit {
            log.access(self.who, key, action, decision).await;
        }
    }

    /// Whether the principal may read `key`'s scope; recorded.
    async fn readable(&self, key: &CacheKey, action: Action) -> bool {
        let decision = self.who.may_read(key.scope());
        self.record(key, action, &decision).await;
        decision.allowed()
    }

    /// The entry, if `key`'s scope is readable to the principal and the entry exists.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        if !self.readable(key, Action::Read).await {
            return Ok(None);
        }
        self.store.get(key).await
    }

    /// The entry's metadata, on the same terms as [`Scoped::get`].
    pub async fn head(&self, key: &CacheKey) -> Result<Option<EntryMeta>, StoreError> {
        if !self.readable(key, Action::Head).await {
            return Ok(None);
        }
        self.store.head(key).await
    }

    /// Whether [`Scoped::put`] to `key` will be refused outright (so a front-end can read
    /// the client's body before answering, instead of resetting the connection).
    pub fn refuses_write(&self, key: &CacheKey) -> bool {
        !self.who.may_write(key.scope()).allowed()
    }

    /// Stores the entry if the principal may write `key`'s scope.
    pub async fn put(
        &self,
        key: &CacheKey,
        opts: PutOptions,
        body: Body,
    ) -> Result<EntryMeta, StoreError> {
        let decision = self.who.may_write(key.scope());
        self.record(key, Action::Write, &decision).await;
        if let Decision::Deny(why) = decision {
            return Err(StoreError::Forbidden(why));
        }
        // An admin (the operator; every request in single-user mode) is trusted; anything
        // else headed for a shared scope is screened for secrets first.
        if matches!(key.scope(), Scope::User(_)) || self.who.is_admin() {
            let shareable = opts.shareable;
            let meta = self.store.put(key, opts, body).await?;
            if shareable {
                self.store
                    .consider_promotion(self.who, key, &meta, self.audit)
                    .await;
            }
            return Ok(meta);
        }
        let stored = match screen::screen_body(key.name().as_str(), body).await {
            Ok(body) => self
                .store
                .put(key, opts, body)
                .await
                .map_err(screen::sensitive),
            Err(e) => Err(e),
        };
        if matches!(stored, Err(StoreError::Sensitive(_))) {
            self.record(key, Action::Write, &Decision::Deny("sensitive content"))
                .await;
        }
        stored
    }

    /// Removes the entry; a key the principal may not even read is absent to it.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, StoreError> {
        if !self.who.may_read(key.scope()).allowed() {
            self.record(key, Action::Delete, &self.who.may_read(key.scope()))
                .await;
            return Ok(false);
        }
        let decision = self.who.may_write(key.scope());
        self.record(key, Action::Delete, &decision).await;
        if let Decision::Deny(why) = decision {
            return Err(StoreError::Forbidden(why));
        }
        self.store.delete(key).await
    }

    /// The first entry named `kind`/`name` in the principal's read order: its own scope,
    /// then its templates, then global.
    pub async fn resolve(&self, kind: &Kind, name: &Name) -> Result<Option<Hit>, StoreError> {
        for scope in self.who.read_order() {
            let key = CacheKey::new(scope, kind.clone(), name.clone());
            if let Some(hit) = self.store.get(&key).await? {
                self.record(&key, Action::Read, &Decision::Allow).await;
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    /// The metadata of the first entry named `kind`/`name` in the principal's read order.
    pub async fn resolve_head(
        &self,
        kind: &Kind,
        name: &Name,
    ) -> Result<Option<EntryMeta>, StoreError> {
        for scope in self.who.read_order() {
            let key = CacheKey::new(scope, kind.clone(), name.clone());
            if let Some(meta) = self.store.head(&key).await? {
                self.record(&key, Action::Head, &Decision::Allow).await;
                return Ok(Some(meta));
            }
        }
        Ok(None)
    }

    /// The principal's own scope, where its private writes go.
    pub fn own_scope(&self) -> Option<Scope> {
        self.who.own_scope()
    }
}
