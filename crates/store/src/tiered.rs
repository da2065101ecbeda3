//! The tiered store: reads go L1 → L2 (→ the loader), a hit below is promoted above,
//! puts write through both tiers, and `get_or_load` loads each missing key once.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use tiercache_core::{CacheKey, ContentHash, EntryMeta, Kind, PutOptions, Scope};

use crate::body::{Body, BodyStream, Hit};
use crate::clock::now_ms;
use crate::config::StoreConfig;
use crate::error::{LoadError, StoreError};
use crate::single_flight::{Leader, Outcome, Role, SingleFlight};
use crate::stats::{TierName, TierStats};
use crate::tier::disk::DiskTier;
use crate::tier::memory::MemoryTier;

/// The one store every front-end uses.
#[derive(Clone)]
pub struct TieredStore {
    l1: MemoryTier,
    l2: DiskTier,
    flights: Arc<SingleFlight>,
    origin: Arc<TierStats>,
    max_entry_bytes: u64,
}

/// What a loader returns: the entry's options and body, or `None` if the origin has no such entry.
pub type Loaded = Option<(PutOptions, Body)>;

/// Chunks buffered between the loader and each of its two readers (caller and store).
const TEE_DEPTH: usize = 16;

/// What [`TieredStore::get_or_fill`] answers.
pub enum Fill {
    /// A stored entry (found, or stored by the caller that loaded it).
    Hit(Hit),
    /// This caller loaded it: the bytes as they arrive from the origin, while they are stored.
    Filling(BodyStream),
}

enum Turn {
    Done(Option<Hit>),
    Lead(Leader, PutOptions, Body, Instant),
}

/// Copies the loader's stream to the store and to the caller. A caller that goes away does
/// not stop the store's copy; an error ends both copies, so the store keeps nothing.
async fn tee(
    mut source: BodyStream,
    to_store: mpsc::Sender<io::Result<Bytes>>,
    to_caller: mpsc::Sender<io::Result<Bytes>>,
) {
    let (mut store_open, mut caller_open) = (true, true);
    while let Some(item) = source.next().await {
        match item {
            Ok(chunk) => {
                if store_open && to_store.send(Ok(chunk.clone())).await.is_err() {
                    store_open = false;
                }
                if caller_open && to_caller.send(Ok(chunk)).await.is_err() {
                    caller_open = false;
                }
                if !store_open && !caller_open {
                    return;
                }
            }
            Err(e) => {
                let shared = Arc::new(e);
                let copy = || io::Error::new(shared.kind(), SharedIoError(shared.clone()));
                let _ = to_store.send(Err(copy())).await;
                let _ = to_caller.send(Err(copy())).await;
                return;
            }
        }
    }
}

/// One loader error, handed to both readers of a tee; its source is the original.
#[derive(Debug)]
struct SharedIoError(Arc<io::Error>);

impl std::fmt::Display for SharedIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedIoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

fn receiver_stream(rx: mpsc::Receiver<io::Result<Bytes>>) -> BodyStream {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

impl TieredStore {
    /// Opens both tiers as configured.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        // Disk hits small enough for memory are read whole, so they can be promoted.
        let mut config = config.clone();
        if config.l1.budget_bytes > 0 {
            config.inline_read_bytes = config.inline_read_bytes.max(config.l1.max_entry_bytes);
        }
        Ok(TieredStore {
            l1: MemoryTier::new(config.l1.clone()),
            l2: DiskTier::open(&config).await?,
            flights: Arc::new(SingleFlight::default()),
            origin: Arc::new(TierStats::default()),
            max_entry_bytes: config.max_entry_bytes,
        })
    }

    /// The entry under `key` from the highest tier that has it, promoted to the tiers above.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        if let Some((meta, bytes)) = self.l1.get(key).await {
            return Ok(Some(Hit {
                meta,
                body: Body::Bytes(bytes),
                tier: TierName::L1,
            }));
        }
        let Some(hit) = self.l2.get(key).await? else {
            return Ok(None);
        };
        if let Body::Bytes(bytes) = &hit.body {
            self.l1.insert(key, &hit.meta, bytes.clone()).await;
        }
        Ok(Some(hit))
    }

    /// The entry's metadata, without reading (or counting) its bytes.
    pub async fn head(&self, key: &CacheKey) -> Result<Option<EntryMeta>, StoreError> {
        if let Some(meta) = self.l1.head(key).await {
            return Ok(Some(meta));
        }
        self.l2.head(key).await
    }

    /// Stores `body` under `key` in every tier that takes it (write-through).
    pub async fn put(
        &self,
        key: &CacheKey,
        opts: PutOptions,
        body: Body,
    ) -> Result<EntryMeta, StoreError> {
        opts.validate()?;
        match body {
            Body::Bytes(bytes) => {
                let size = bytes.len() as u64;
                if size > self.max_entry_bytes {
                    return Err(StoreError::TooLarge {
                        limit: self.max_entry_bytes,
                    });
                }
                let hash = ContentHash::of(&bytes);
                if let Some(expected) = opts.expected_hash
                    && expected != hash
                {
                    return Err(StoreError::HashMismatch {
                        expected,
                        actual: hash,
                    });
                }
                let meta = opts.into_meta(size, hash, now_ms());
                self.l1.remove(key).await;
                self.l2.put_bytes(key, meta.clone(), bytes.clone()).await?;
                self.l1.insert(key, &meta, bytes).await;
                Ok(meta)
            }
            Body::Stream(stream) => {
                self.l1.remove(key).await;
                let keep = if self.l1.admits(0) {
                    self.l1.max_entry_bytes()
                } else {
                    0
                };
                let (meta, kept) = self.l2.put_stream(key, opts, stream, keep).await?;
                if let Some(bytes) = kept {
                    self.l1.insert(key, &meta, bytes).await;
                }
                Ok(meta)
            }
        }
    }

    /// Removes the entry from every tier; returns whether any had it.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let in_l1 = self.l1.remove(key).await;
        let in_l2 = self.l2.delete(key).await?;
        Ok(in_l1 || in_l2)
    }

    /// The entry under `key`; on a miss, `loader` fetches it from the origin and it is stored
    /// in every tier. However many callers miss the same key at once, the loader runs once;
    /// the others wait and read what it stored (or share its failure).
    pub async fn get_or_load<F, Fut>(
        &self,
        key: &CacheKey,
        loader: F,
    ) -> Result<Option<Hit>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, LoadError>>,
    {
        match self.take_turn(key, loader).await? {
            Turn::Done(hit) => Ok(hit),
            Turn::Lead(leader, opts, body, t0) => {
                self.store_for(leader, key, opts, body, t0).await?;
                // Read back what was stored: followers do the same, and large bodies
                // stream from disk.
                self.get(key).await
            }
        }
    }

    /// Stores what a leader loaded and tells its followers how that went.
    async fn store_for(
        &self,
        leader: Leader,
        key: &CacheKey,
        opts: PutOptions,
        body: Body,
        t0: Instant,
    ) -> Result<(), StoreError> {
        match self.put(key, opts, body).await {
            Ok(meta) => {
                self.origin.hit(TierName::Origin, meta.size, t0.elapsed());
                leader.finish(Outcome::Stored);
                Ok(())
            }
            Err(e) => {
                let e: LoadError = Arc::new(e);
                leader.finish(Outcome::Failed(e.clone()));
                Err(StoreError::Load(e))
            }
        }
    }

    /// Like [`TieredStore::get_or_load`], but the caller whose loader runs does not wait for
    /// the store: it gets the loader's bytes as they arrive ([`Fill::Filling`]) while they are
    /// written to every tier. If the loader's stream ends in an error, the caller's stream
    /// ends in the same error and nothing is stored. Waiting callers read the stored entry.
    pub async fn get_or_fill<F, Fut>(
        &self,
        key: &CacheKey,
        loader: F,
    ) -> Result<Option<Fill>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, LoadError>>,
    {
        let (leader, opts, body, t0) = match self.take_turn(key, loader).await? {
            Turn::Done(hit) => return Ok(hit.map(Fill::Hit)),
            Turn::Lead(leader, opts, body, t0) => (leader, opts, body, t0),
        };
        let Body::Stream(source) = body else {
            // Already whole: store it, then serve it like any hit.
            self.store_for(leader, key, opts, body, t0).await?;
            return Ok(self.get(key).await?.map(Fill::Hit));
        };
        let (to_store, store_rx) = mpsc::channel(TEE_DEPTH);
        let (to_caller, caller_rx) = mpsc::channel(TEE_DEPTH);
        let store = self.clone();
        let k = key.clone();
        tokio::spawn(async move {
            let body = Body::Stream(receiver_stream(store_rx));
            // Followers learn the outcome through the leader; the caller, from its stream.
            let _ = store.store_for(leader, &k, opts, body, t0).await;
        });
        tokio::spawn(tee(source, to_store, to_caller));
        Ok(Some(Fill::Filling(receiver_stream(caller_rx))))
    }

    /// Shared by the loading calls: a hit, a wait on another caller's load, or the lead —
    /// with the loader already run and its body in hand.
    async fn take_turn<F, Fut>(&self, key: &CacheKey, loader: F) -> Result<Turn, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Loaded, LoadError>>,
    {
        let mut loader = Some(loader);
        loop {
            if let Some(hit) = self.get(key).await? {
                return Ok(Turn::Done(Some(hit)));
            }
            let leader = match self.flights.join(key) {
                Role::Leader(leader) => leader,
                Role::Follower(follower) => match follower.wait().await {
                    Some(Outcome::Stored) | None => continue,
                    Some(Outcome::NotFound) => return Ok(Turn::Done(None)),
                    Some(Outcome::Failed(e)) => return Err(StoreError::Load(e)),
                },
            };
            // Someone may have finished between our miss and our lead.
            if let Some(hit) = self.get(key).await? {
                leader.finish(Outcome::Stored);
                return Ok(Turn::Done(Some(hit)));
            }
            let Some(load) = loader.take() else {
                return Err(StoreError::Task("loader already used".into()));
            };
            let t0 = Instant::now();
            match load().await {
                Ok(Some((opts, body))) => return Ok(Turn::Lead(leader, opts, body, t0)),
                Ok(None) => {
                    self.origin.miss(TierName::Origin, t0.elapsed());
                    leader.finish(Outcome::NotFound);
                    return Ok(Turn::Done(None));
                }
                Err(e) => {
                    self.origin.error();
                    leader.finish(Outcome::Failed(e.clone()));
                    return Err(StoreError::Load(e));
                }
            }
        }
    }

    /// Up to `limit` entries of `kind` in `scope` whose names start with `name_prefix`, in
    /// name order (for operators' listings; it reads the disk tier's index).
    pub async fn list(
        &self,
        scope: &Scope,
        kind: &Kind,
        name_prefix: &str,
        limit: usize,
    ) -> Result<Vec<(CacheKey, EntryMeta)>, StoreError> {
        let prefix = format!("{scope}/{}/{name_prefix}", kind.as_str());
        let rows = self.l2.list(&prefix, limit).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, m)| CacheKey::parse_path(&k).ok().map(|k| (k, m)))
            .collect())
    }

    /// The memory tier (for health and metrics).
    pub fn l1(&self) -> &MemoryTier {
        &self.l1
    }

    /// The disk tier (for health and metrics).
    pub fn l2(&self) -> &DiskTier {
        &self.l2
    }

    /// Counters of loads from the origin.
    pub fn origin_stats(&self) -> &TierStats {
        &self.origin
    }

    /// Writes state that is kept lazily (LRU order) durably, before shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.l2.flush().await
    }
}
