//! The npm/pnpm registry caching proxy under `/npm/`: public packages are fetched from the
//! origin once and served to everyone from the tiered store.
//!
//! Per package the store holds (kind, global scope): `npm-index` (a small JSON
//! [`packument::PackageIndex`]: freshness, validators, tarball URLs and integrity),
//! `npm-full` and `npm-corgi` (ready-to-serve documents), and `npm-tgz` (tarballs, keyed by
//! the basename in `dist.tarball`).

pub mod breaker;
pub mod config;
pub mod error;
pub mod integrity;
pub mod name;
pub mod packument;
pub mod realm;
pub mod routes;
pub mod stats;
pub mod upstream;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use tiercache_core::{CacheKey, ContentHash, PutOptions};
use tiercache_store::FleetTurn;
use tiercache_store::single_flight::{Outcome as FlightOutcome, Role, SingleFlight};
use tiercache_store::{Body, Fill, Hit, LoadError, TieredStore};

pub use config::NpmConfig;
pub use error::NpmError;
use name::PackageName;
use packument::{PackageIndex, now_ms};
pub use realm::Realm;
use stats::{NpmStats, Outcome};
use upstream::{Fetched, Upstream};

/// A package's index (what the proxy knows of it); events name it to invalidate a package.
pub const KIND_INDEX: &str = "npm-index";
/// A package's full packument, as served.
pub const KIND_FULL: &str = "npm-full";
/// A package's abbreviated (corgi) packument, as served.
pub const KIND_CORGI: &str = "npm-corgi";
const KIND_TARBALL: &str = "npm-tgz";

/// A tarball as the front-end has it.
pub enum Tarball {
    /// Stored: verified bytes with their metadata.
    Cached(Hit, Outcome),
    /// Arriving from the origin for this caller (with the origin's length, if it said);
    /// the stream ends in an error instead of completing if the bytes fail verification.
    Fetching(tiercache_store::BodyStream, Option<u64>),
}

/// The npm front-end: its origin client, its settings and its counters.
pub struct NpmFrontend {
    store: TieredStore,
    upstream: Upstream,
    config: NpmConfig,
    refreshes: SingleFlight,
    stats: NpmStats,
    /// Documents rendered for a base URL, keyed by (stored content hash, base): the tiers
    /// hold one canonical copy; this holds what each host is actually served, so a hot
    /// packument costs neither a disk read nor a rewrite per request.
    views: moka::future::Cache<(String, String), Bytes>,
    /// Package indexes parsed from the store, keyed by the stored entry's content hash.
    indexes: moka::future::Cache<ContentHash, Arc<PackageIndex>>,
}

/// Tarball references of parsed indexes kept in memory (about 300 bytes each).
const INDEX_BUDGET: u64 = 64 * 1024 * 1024;

/// Bytes of rendered documents kept in memory.
const VIEW_BUDGET: u64 = 128 * 1024 * 1024;

impl NpmFrontend {
    /// A front-end over `store`, fetching from `config.upstream`.
    pub fn new(store: TieredStore, config: NpmConfig) -> Result<Arc<Self>, NpmError> {
        let upstream = Upstream::new(&config).map_err(|e| NpmError::Internal(e.to_string()))?;
        Ok(Arc::new(NpmFrontend {
            stats: NpmStats::new(store.fleet().cloned()),
            store,
            upstream,
            config,
            refreshes: SingleFlight::default(),
            views: moka::future::Cache::builder()
                .max_capacity(VIEW_BUDGET)
                .weigher(|k: &(String, String), v: &Bytes| {
                    u32::try_from(v.len() + k.0.len() + k.1.len()).unwrap_or(u32::MAX)
                })
                .time_to_idle(std::time::Duration::from_secs(3600))
                .build(),
            indexes: moka::future::Cache::builder()
                .max_capacity(INDEX_BUDGET)
                .weigher(|_, idx: &Arc<PackageIndex>| {
                    u32::try_from(512 + idx.tarballs.len() * 300).unwrap_or(u32::MAX)
                })
                .build(),
        }))
    }

    /// The settings in force.
    pub fn config(&self) -> &NpmConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &NpmStats {
        &self.stats
    }

    /// Whether `name` belongs to a private scope (never cached in a shared scope).
    pub fn is_private(&self, name: &PackageName) -> bool {
        self.config.upstream_for(name.scope()).1
    }

    /// The key a private request is audited under: the package's index, or the tarball.
    pub fn audit_key(
        &self,
        realm: &Realm,
        name: &PackageName,
        tarball: Option<&str>,
    ) -> Result<CacheKey, NpmError> {
        match tarball {
            Some(basename) => Self::key(realm, name, KIND_TARBALL, Some(basename)),
            None => Self::key(realm, name, KIND_INDEX, None),
        }
    }

    /// Whether the origin's breaker is open.
    pub fn origin_down(&self) -> bool {
        self.upstream.is_open()
    }

    fn key(
        realm: &Realm,
        name: &PackageName,
        kind: &str,
        suffix: Option<&str>,
    ) -> Result<CacheKey, NpmError> {
        name.key(&realm.scope, kind, suffix)
            .map_err(|e| NpmError::BadRequest(e.to_string()))
    }

    /// The package's index, parsed once per stored version (keyed by its content hash, so a
    /// changed or removed entry is never answered from memory).
    async fn read_index(
        &self,
        realm: &Realm,
        name: &PackageName,
    ) -> Result<Option<Arc<PackageIndex>>, NpmError> {
        let key = Self::key(realm, name, KIND_INDEX, None)?;
        let Some(meta) = self.store.head(&key).await? else {
            return Ok(None);
        };
        if let Some(idx) = self.indexes.get(&meta.hash).await {
            return Ok(Some(idx));
        }
        let Some(hit) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let hash = hit.meta.hash;
        let bytes = hit
            .body
            .collect()
            .await
            .map_err(|e| NpmError::Internal(e.to_string()))?;
        // An unreadable index is a miss: the next fetch replaces it.
        let Ok(idx) = serde_json::from_slice::<PackageIndex>(&bytes) else {
            return Ok(None);
        };
        let idx = Arc::new(idx);
        self.indexes.insert(hash, idx.clone()).await;
        Ok(Some(idx))
    }

    async fn write_index(
        &self,
        realm: &Realm,
        name: &PackageName,
        idx: PackageIndex,
        share_now: bool,
    ) -> Result<Arc<PackageIndex>, NpmError> {
        let key = Self::key(realm, name, KIND_INDEX, None)?;
        let bytes = serde_json::to_vec(&idx).map_err(|e| NpmError::Internal(e.to_string()))?;
        let opts = PutOptions {
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let meta = self
            .store
            .put_shared(&key, opts, Body::from(bytes), share_now)
            .await?;
        let idx = Arc::new(idx);
        self.indexes.insert(meta.hash, idx.clone()).await;
        Ok(idx)
    }

    /// The package's index, fresh if the origin can be asked, else stale; at most one
    /// origin request per package at a time, however many clients ask. `force` revalidates
    /// even a fresh copy (a version or tarball the copy does not list was asked for).
    pub async fn packument(
        &self,
        realm: &Realm,
        name: &PackageName,
        force: bool,
    ) -> Result<(Arc<PackageIndex>, Outcome), NpmError> {
        let current = self.read_index(realm, name).await?;
        if let Some(idx) = &current
            && !force
            && idx.is_fresh(now_ms(), self.config.fresh_for)
        {
            return Ok((idx.clone(), Outcome::Hit));
        }
        let flight_key = Self::key(realm, name, KIND_INDEX, None)?;
        match self.refreshes.join(&flight_key) {
            Role::Leader(leader) => {
                let result = match current {
                    Some(current) => self.refresh(realm, name, Some(current), false).await,
                    None => self.refresh_cold(realm, name).await,
                };
                leader.finish(match &result {
                    Ok(_) => FlightOutcome::Stored,
                    Err(NpmError::NotFound) => FlightOutcome::NotFound,
                    Err(e) => FlightOutcome::Failed(Arc::new(e.clone())),
                });
                result
            }
            Role::Follower(follower) => {
                let outcome = follower.wait().await;
                match (outcome, self.read_index(realm, name).await?) {
                    (Some(FlightOutcome::NotFound), _) => Err(NpmError::NotFound),
                    (Some(FlightOutcome::Failed(e)), None) => Err(NpmError::from_load(&e)),
                    (Some(FlightOutcome::Failed(_)), Some(idx)) => Ok((idx, Outcome::Stale)),
                    (_, Some(idx)) => Ok((idx, Outcome::Hit)),
                    (_, None) => Err(NpmError::Unavailable(
                        "the packument could not be fetched; try again".into(),
                    )),
                }
            }
        }
    }

    /// A package this node has never seen: with a fleet, one node fetches it from the
    /// origin and shares it through L3 before the others, waiting, read it from there.
    async fn refresh_cold(
        &self,
        realm: &Realm,
        name: &PackageName,
    ) -> Result<(Arc<PackageIndex>, Outcome), NpmError> {
        let key = Self::key(realm, name, KIND_INDEX, None)?;
        match self.store.fleet_turn(&key).await {
            FleetTurn::Reread => match self.read_index(realm, name).await? {
                Some(idx) => Ok((idx, Outcome::Hit)),
                None => self.refresh(realm, name, None, false).await,
            },
            FleetTurn::Fetch(guard) => {
                let result = self.refresh(realm, name, None, guard.holds()).await;
                guard.release().await;
                result
            }
        }
    }

    /// Asks the origin (conditionally, if there is a copy) and stores what changed; with
    /// `share_now`, the stored entries reach L3 before this returns.
    async fn refresh(
        &self,
        realm: &Realm,
        name: &PackageName,
        current: Option<Arc<PackageIndex>>,
        share_now: bool,
    ) -> Result<(Arc<PackageIndex>, Outcome), NpmError> {
        let (base, _) = self.config.upstream_for(name.scope());
        let url = format!("{base}{}", name.escaped());
        let etag = current.as_ref().and_then(|i| i.upstream_etag.as_deref());
        match self
            .upstream
            .packument(&url, etag, realm.auth.as_ref())
            .await
        {
            Ok(Fetched::NotModified) => match current {
                Some(current) => {
                    let mut idx = (*current).clone();
                    idx.fetched_ms = now_ms();
                    Ok((
                        self.write_index(realm, name, idx, share_now).await?,
                        Outcome::Revalidated,
                    ))
                }
                // A 304 to an unconditional request: the origin is confused; treat as down.
                None => Err(NpmError::Unavailable(format!("{url} answered 304 unasked"))),
            },
            Ok(Fetched::NotFound) => Err(NpmError::NotFound),
            Ok(Fetched::Found(body)) => {
                let idx = self.store_packument(realm, name, body, share_now).await?;
                Ok((idx, Outcome::Miss))
            }
            Err(e) => match current {
                Some(idx) => {
                    tracing::warn!(package = %name, error = %e, "serving a stale packument");
                    Ok((idx, Outcome::Stale))
                }
                None => Err(e.into()),
            },
        }
    }

    /// Derives and stores the served forms and the index of a fetched packument.
    async fn store_packument(
        &self,
        realm: &Realm,
        name: &PackageName,
        body: upstream::PackumentBody,
        share_now: bool,
    ) -> Result<Arc<PackageIndex>, NpmError> {
        let n = name.clone();
        let bytes = body.bytes;
        let derived = tokio::task::spawn_blocking(move || packument::derive(&n, &bytes))
            .await
            .map_err(|e| NpmError::Internal(e.to_string()))?
            .map_err(|e| NpmError::Unavailable(e.to_string()))?;
        let json = || PutOptions {
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let full = self
            .store
            .put_shared(
                &Self::key(realm, name, KIND_FULL, None)?,
                json(),
                Body::Bytes(derived.full),
                share_now,
            )
            .await?;
        let corgi = self
            .store
            .put_shared(
                &Self::key(realm, name, KIND_CORGI, None)?,
                json(),
                Body::Bytes(derived.corgi),
                share_now,
            )
            .await?;
        let idx = PackageIndex {
            name: name.to_string(),
            fetched_ms: now_ms(),
            upstream_etag: body.etag,
            upstream_last_modified: body.last_modified,
            modified: derived.modified,
            full_hash: full.hash.to_hex(),
            corgi_hash: corgi.hash.to_hex(),
            tarballs: derived.tarballs,
        };
        self.write_index(realm, name, idx, share_now).await
    }

    /// The document (full or abbreviated) of a package whose index is `idx`, rendered for
    /// `base`, with the content hash of the stored copy; `None` if the stored copy is gone
    /// (evicted), so the caller refreshes.
    pub async fn view(
        &self,
        realm: &Realm,
        name: &PackageName,
        idx: &PackageIndex,
        corgi: bool,
        base: &str,
    ) -> Result<Option<(Bytes, String)>, NpmError> {
        let hash = if corgi {
            &idx.corgi_hash
        } else {
            &idx.full_hash
        };
        if let Some(bytes) = self.views.get(&(hash.clone(), base.to_owned())).await {
            return Ok(Some((bytes, hash.clone())));
        }
        let kind = if corgi { KIND_CORGI } else { KIND_FULL };
        let Some(hit) = self.store.get(&Self::key(realm, name, kind, None)?).await? else {
            return Ok(None);
        };
        let stored_hash = hit.meta.hash.to_hex();
        let stored = hit
            .body
            .collect()
            .await
            .map_err(|e| NpmError::Internal(e.to_string()))?;
        let rendered = packument::render(&stored, base);
        self.views
            .insert((stored_hash.clone(), base.to_owned()), rendered.clone())
            .await;
        Ok(Some((rendered, stored_hash)))
    }

    /// The tarball `basename` of `name`: from the cache, or — for the one caller that fetches
    /// it — streaming from the origin while it is verified and stored.
    pub async fn tarball(
        &self,
        realm: &Realm,
        name: &PackageName,
        basename: &str,
    ) -> Result<Tarball, NpmError> {
        let key = Self::key(realm, name, KIND_TARBALL, Some(basename))?;
        let mut length = None;
        let filled = self
            .store
            .get_or_fill(&key, || {
                self.load_tarball(realm, name, basename, &mut length)
            })
            .await;
        match filled {
            Ok(Some(Fill::Hit(hit))) => Ok(Tarball::Cached(hit, Outcome::Hit)),
            Ok(Some(Fill::Filling(body))) => Ok(Tarball::Fetching(body, length)),
            Ok(None) => Err(NpmError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs only on a miss: finds the tarball's origin URL and integrity in the package index
    /// (asking the origin again if the copy does not list it), then fetches it.
    async fn load_tarball(
        &self,
        realm: &Realm,
        name: &PackageName,
        basename: &str,
        length: &mut Option<u64>,
    ) -> Result<Option<(PutOptions, Body)>, LoadError> {
        let index = async {
            let (mut idx, _) = self.packument(realm, name, false).await?;
            if !idx.tarballs.contains_key(basename) {
                // Maybe published since our copy: ask the origin before saying 404.
                idx = self.packument(realm, name, true).await?.0;
            }
            Ok::<_, NpmError>(idx.tarballs.get(basename).cloned())
        };
        match index.await {
            Ok(Some(tref)) => self.fetch_tarball(realm, name, tref, length).await,
            Ok(None) | Err(NpmError::NotFound) => Ok(None),
            Err(e) => Err(Arc::new(e)),
        }
    }

    async fn fetch_tarball(
        &self,
        realm: &Realm,
        name: &PackageName,
        tref: packument::TarballRef,
        length: &mut Option<u64>,
    ) -> Result<Option<(PutOptions, Body)>, LoadError> {
        // The credential goes to the package's own registry only, never to another host a
        // packument names.
        let (base, _) = self.config.upstream_for(name.scope());
        let auth = realm.auth.as_ref().filter(|_| tref.url.starts_with(&base));
        let resp = match self.upstream.tarball(&tref.url, auth).await {
            Ok(Fetched::Found(r)) => r,
            Ok(Fetched::NotFound) => return Ok(None),
            Ok(Fetched::NotModified) => {
                return Err(Arc::new(NpmError::Unavailable(
                    "the origin answered 304 to an unconditional tarball request".into(),
                )));
            }
            Err(e) => return Err(Arc::new(NpmError::from(e))),
        };
        *length = resp.content_length();
        let stream = resp.bytes_stream().map_err(std::io::Error::other);
        let body: tiercache_store::BodyStream = match integrity::expected(&tref) {
            Some(sri) => Box::pin(integrity::verify(stream, sri, tref.url.clone())),
            None => {
                tracing::warn!(url = %tref.url, "tarball has no integrity in its packument; stored unverified");
                Box::pin(stream)
            }
        };
        let opts = PutOptions {
            content_type: Some("application/octet-stream".into()),
            ..Default::default()
        };
        Ok(Some((opts, Body::Stream(body))))
    }
}
