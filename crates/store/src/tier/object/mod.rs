//! L3: the tier shared by every node, on S3-compatible object storage.
//!
//! Bodies are content-addressed blobs, entries are small JSON documents pointing at them
//! (see [`layout`]). Every read is verified against the entry's size and BLAKE3 hash before
//! (small bodies) or while (large ones) it is served. S3 trouble never fails or stalls a
//! client for long: short timeouts and retries, and after a failure a circuit answers
//! [`L3Error::Unavailable`] at once until a background probe sees S3 again (see [`health`]).
//! Writes normally go through the background [`UploadQueue`]; expired entries and
//! unreferenced blobs are removed by the sweeper, never on the read path.

pub mod config;
pub mod error;
pub mod health;
pub mod layout;
mod list;
pub mod queue;
mod read;
mod select;
pub use select::SpareRef;
pub mod sweep;
mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, ObjectStoreExt, RetryConfig,
};
use tiercache_core::{CacheKey, EntryMeta};

use crate::body::{Body, Hit};
use crate::stats::{TierName, TierStats};

pub use config::{L3Config, L3Credentials};
pub use error::L3Error;
pub use health::{L3Health, L3Status};
pub use layout::Layout;
pub use queue::{QueueStats, UploadQueue, UploadSource};
pub use sweep::{SweepReport, SweeperHandle};
pub use write::PutOutcome;

/// The L3 tier: a cheap, cloneable handle on one bucket and prefix.
#[derive(Clone)]
pub struct ObjectTier {
    inner: Arc<Inner>,
}

/// What every clone shares.
struct Inner {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    ttl: tiercache_core::Ttl,
    inline_read_bytes: u64,
    part_size: usize,
    sweep_grace: Duration,
    first_byte_timeout: Duration,
    stats: TierStats,
    health: health::Health,
}

impl std::fmt::Debug for ObjectTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectTier")
            .field("store", &self.inner.store.to_string())
            .field("layout", &self.inner.layout)
            .field("health", &self.inner.health.snapshot())
            .finish()
    }
}

impl ObjectTier {
    /// Builds the S3 client from `cfg` (credentials from the config or the environment);
    /// makes no request, so it succeeds while S3 is down.
    pub fn open(cfg: &L3Config) -> Result<Self, L3Error> {
        cfg.validate()?;
        let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_millis(500),
                    base: 2.0,
                },
                max_retries: cfg.max_retries,
                retry_timeout: cfg.retry_timeout,
            })
            .with_config(
                client_key(ClientConfigKey::ConnectTimeout),
                ms(cfg.connect_timeout),
            )
            .with_config(
                client_key(ClientConfigKey::ReadTimeout),
                ms(cfg.idle_timeout),
            )
            .with_config(
                client_key(ClientConfigKey::Timeout),
                ms(cfg.request_timeout),
            );
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(c) = &cfg.credentials {
            builder = builder
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(&c.secret_access_key);
            if let Some(token) = &c.session_token {
                builder = builder.with_token(token);
            }
        }
        let store = builder
            .build()
            .map_err(|e| L3Error::Config(format!("cannot build the S3 client: {e}")))?;
        Self::with_store(cfg, Arc::new(store))
    }

    /// The tier over any object_store backend (e.g. `InMemory` in unit tests); the S3
    /// connection settings of `cfg` are ignored.
    pub fn with_store(cfg: &L3Config, store: Arc<dyn ObjectStore>) -> Result<Self, L3Error> {
        cfg.validate()?;
        Ok(ObjectTier {
            inner: Arc::new(Inner {
                store,
                layout: Layout::new(&cfg.prefix)?,
                ttl: tiercache_core::Ttl::with_kinds(cfg.ttl, cfg.kind_ttl.clone()),
                inline_read_bytes: cfg.inline_read_bytes,
                part_size: cfg.part_size,
                sweep_grace: cfg.sweep_grace,
                first_byte_timeout: cfg.first_byte_timeout,
                stats: TierStats::default(),
                health: health::Health::new(cfg.circuit_initial_backoff, cfg.circuit_max_backoff),
            }),
        })
    }

    /// The entry and its verified body, or `None` if absent, expired, or failing verification.
    ///
    /// While the tier is degraded this answers `Err(L3Error::Unavailable)` at once; any
    /// error is meant to be treated as a miss. A large body is a stream that ends in an
    /// `InvalidData` error instead of its last chunk if the bytes do not match.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Hit>, L3Error> {
        let started = Instant::now();
        let result = self.inner.read(key).await;
        match &result {
            Ok(Some(hit)) => self
                .inner
                .stats
                .hit(TierName::L3, hit.meta.size, started.elapsed()),
            Ok(None) | Err(L3Error::Unavailable { .. }) => {
                self.inner.stats.miss(TierName::L3, started.elapsed())
            }
            Err(_) => self.inner.stats.error(),
        }
        result
    }

    /// The entry's metadata without its body (expiry honoured, blob not checked).
    pub async fn head(&self, key: &CacheKey) -> Result<Option<EntryMeta>, L3Error> {
        self.inner.health.admit()?;
        let result = self.inner.read_entry(key).await;
        if result.is_err() {
            self.inner.stats.error();
        }
        result
    }

    /// Stores `body` as the entry `key`: its blob first (skipped if already there), then its
    /// metadata. The body must match `meta.size` and `meta.hash`, or nothing is stored.
    /// An immutable entry that already holds another write keeps it ([`PutOutcome::Kept`]).
    pub async fn put(
        &self,
        key: &CacheKey,
        meta: &EntryMeta,
        body: Body,
    ) -> Result<PutOutcome, L3Error> {
        let started = Instant::now();
        let result = self.inner.write(key, meta, body).await;
        match &result {
            Ok(_) => self
                .inner
                .stats
                .wrote(TierName::L3, meta.size, started.elapsed()),
            Err(_) => self.inner.stats.error(),
        }
        result
    }

    /// Removes the entry `key` (its blob may be shared; the sweeper collects it); true if
    /// it existed.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, L3Error> {
        self.inner.health.admit()?;
        let path = self.inner.layout.entry(key);
        let timeout = Some(self.inner.first_byte_timeout);
        match self.inner.s3(timeout, self.inner.store.head(&path)).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
        self.inner.s3(None, self.inner.store.delete(&path)).await?;
        Ok(true)
    }

    /// Asks S3 whether it answers (one HEAD), so an idle node notices an outage too: a
    /// failure degrades the tier as a failed request would. Does nothing while degraded
    /// (the prober is asking already).
    pub async fn check(&self) {
        if self.inner.health.admit().is_err() {
            return;
        }
        if let Err(e) = self.inner.probe().await {
            self.inner.observe(e);
        }
    }

    /// Counters of this tier (hits, misses, bytes, writes, corrupt reads, errors).
    pub fn stats(&self) -> &TierStats {
        &self.inner.stats
    }

    /// Whether S3 is in use (`ok`) or being avoided after a failure (`degraded`).
    pub fn health(&self) -> L3Health {
        self.inner.health.snapshot()
    }

    /// Where blobs and entries live in the bucket (for tools and tests).
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }
}

impl Inner {
    /// Runs one S3 request (bounded by `timeout` if given); an S3 failure degrades the tier.
    /// "Not found", "already exists" and failed preconditions are answers, not failures.
    async fn s3<T>(
        self: &Arc<Self>,
        timeout: Option<Duration>,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, L3Error> {
        let result = match timeout {
            Some(limit) => match tokio::time::timeout(limit, request).await {
                Ok(r) => r.map_err(L3Error::from),
                Err(_) => Err(L3Error::Timeout(limit)),
            },
            None => request.await.map_err(L3Error::from),
        };
        result.map_err(|e| self.observe(e))
    }

    /// Degrades the tier if `e` says S3 failed (and starts the prober); returns `e`.
    fn observe(self: &Arc<Self>, e: L3Error) -> L3Error {
        let s3_failed = match &e {
            L3Error::Timeout(_) => true,
            L3Error::Store(inner) => !matches!(
                inner,
                object_store::Error::NotFound { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotModified { .. }
            ),
            _ => false,
        };
        if s3_failed && self.health.failed(&e) {
            health::spawn_prober(self);
        }
        e
    }

    /// One cheap request proving S3 answers: HEAD of a path that is never written.
    async fn probe(&self) -> Result<(), L3Error> {
        let request = self
            .store
            .get_opts(self.layout.probe(), GetOptions::new().with_head(true));
        match tokio::time::timeout(self.first_byte_timeout, request).await {
            Err(_) => Err(L3Error::Timeout(self.first_byte_timeout)),
            Ok(Ok(_)) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
        }
    }
}

/// Whether S3 answered that the object does not exist.
fn is_not_found(e: &L3Error) -> bool {
    matches!(e, L3Error::Store(object_store::Error::NotFound { .. }))
}

fn client_key(key: ClientConfigKey) -> AmazonS3ConfigKey {
    AmazonS3ConfigKey::Client(key)
}
