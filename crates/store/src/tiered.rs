//! The tiered store: reads go L1 → L2 → L3 (→ the loader), a hit below is promoted above,
//! puts write through L1 and L2 and reach L3 in the background, and `get_or_load` loads each
//! missing key once per node — and, with a fleet, once per fleet.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use tiercache_core::{CacheKey, ContentHash, EntryMeta, Kind, PutOptions, Scope};

use crate::body::{Body, BodyStream, Hit};
use crate::clock::now_ms;
use crate::config::StoreConfig;
use crate::error::{LoadError, StoreError};
use crate::fleet::{Fleet, FleetLock};
use crate::invalidate::epochs::Epochs;
use crate::invalidate::feed::FeedState;
use crate::promotion::Promotion;
use crate::shared::{FleetTurn, Shared, release};
use crate::single_flight::{Leader, Outcome, Role, SingleFlight};
use crate::stats::{TierName, TierStats};
use crate::tier::disk::DiskTier;
use crate::tier::memory::MemoryTier;
use crate::tier::object::{ObjectTier, QueueStats};

/// The one store every front-end uses.
#[derive(Clone)]
pub struct TieredStore {
    l1: MemoryTier,
    l2: DiskTier,
    shared: Shared,
    flights: Arc<SingleFlight>,
    origin: Arc<TierStats>,
    max_entry_bytes: u64,
    promotion: Promotion,
    epochs: Arc<Epochs>,
    invalidation: Arc<FeedState>,
}

/// What a loader returns: the entry's options and body, or `None` if the origin has no such entry.
pub type Loaded = Option<(PutOptions, Body)>;

/// Chunks buffered between the loader and each of its two readers (caller and store).
const TEE_DEPTH: usize = 16;
/// Longest a failed load's caller waits for the store side to end the flight.
const FLIGHT_END_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What [`TieredStore::get_or_fill`] answers.
pub enum Fill {
    /// A stored entry (found, or stored by the caller that loaded it).
    Hit(Hit),
    /// This caller loaded it: the bytes as they arrive from the origin, while they are stored.
    Filling(BodyStream),
}

enum Turn {
    Done(Option<Hit>),
    Lead(Lead),
}

/// A caller that loaded an entry and must store it, then tell the others.
struct Lead {
    leader: Leader,
    lock: Option<FleetLock>,
    opts: PutOptions,
    body: Body,
    t0: Instant,
}

/// Copies the loader's stream to the store and to the caller. A caller that goes away does
/// not stop the store's copy; an error ends both copies, so the store keeps nothing.
async fn tee(
    mut source: BodyStream,
    to_store: mpsc::Sender<io::Result<Bytes>>,
    to_caller: mpsc::Sender<io::Result<Bytes>>,
    stored: oneshot::Receiver<()>,
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
                drop(to_store);
                // The caller hears of the failure only once the flight has ended, so a request
                // it makes next starts a new fetch instead of joining the failed one.
                let _ = tokio::time::timeout(FLIGHT_END_WAIT, stored).await;
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
        let l1 = MemoryTier::new(config.l1.clone());
        let l2 = DiskTier::open(&config).await?;
        let shared = Shared::open(&config, &l1, &l2)?;
        let promotion =
            Promotion::open(config.promote_after, &config.data_dir, shared.fleet()).await?;
        let epochs = Arc::new(Epochs::open(&config.data_dir, config.epochs.clone())?);
        let invalidation = Arc::new(FeedState::new(config.event_grace));
        Ok(TieredStore {
            epochs,
            invalidation,
            shared,
            l1,
            l2,
            flights: Arc::new(SingleFlight::default()),
            origin: Arc::new(TierStats::default()),
            max_entry_bytes: config.max_entry_bytes,
            promotion,
        })
    }

    /// The entry under `key` from the highest tier that has it, promoted to the tiers above.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        let hit = self.lookup(key).await?;
        self.shared.count_lookup(key, hit.as_ref().map(|h| h.tier));
        Ok(hit)
    }

    async fn lookup(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        if let Some(hit) = self.lookup_local(key).await? {
            return Ok(Some(hit));
        }
        let Some(hit) = self.shared_get(key).await else {
            return Ok(None);
        };
        self.promote(key, hit).await
    }

    /// L1, then L2 (promoted to L1): what this node has, if its events are current.
    async fn lookup_local(&self, key: &CacheKey) -> Result<Option<Hit>, StoreError> {
        if self.invalidation.bypass_local() {
            return Ok(None);
        }
        if let Some((meta, bytes)) = self.l1.get(key).await {
            if self.current(key, &meta) {
                return Ok(Some(Hit {
                    meta,
                    body: Body::Bytes(bytes),
                    tier: TierName::L1,
                }));
            }
            self.l1.remove(key).await;
        }
        let hit = match self.l2.get(key).await? {
            Some(hit) if !self.current(key, &hit.meta) => {
                self.retire(key);
                None
            }
            hit => hit,
        };
        if let Some(Hit {
            meta,
            body: Body::Bytes(bytes),
            ..
        }) = &hit
        {
            self.l1.insert(key, meta, bytes.clone()).await;
        }
        Ok(hit)
    }

    /// Copies an L3 hit into L2 and L1. A small body was verified whole already (it is
    /// answered at once and written to disk in the background); a large one is verified on
    /// its way to disk and served from there, so bytes that fail are never kept or served.
    async fn promote(&self, key: &CacheKey, hit: Hit) -> Result<Option<Hit>, StoreError> {
        let Hit { meta, body, tier } = hit;
        match body {
            Body::Bytes(bytes) => {
                self.l1.insert(key, &meta, bytes.clone()).await;
                // Verified already: the disk copy (and its fsync) need not delay the answer.
                let (l2, k, m, b) = (self.l2.clone(), key.clone(), meta.clone(), bytes.clone());
                tokio::spawn(async move {
                    if let Err(e) = l2.put_bytes(&k, m, b).await {
                        warn!(key = %k, error = %e, "promoting an L3 hit to disk failed");
                    }
                });
                Ok(Some(Hit {
                    meta,
                    body: Body::Bytes(bytes),
                    tier,
                }))
            }
            Body::Stream(stream) => {
                let keep = self.l1_keep();
                match self.l2.put_stream_as(key, meta, stream, keep).await {
                    Ok((meta, kept)) => {
                        if let Some(bytes) = kept {
                            self.l1.insert(key, &meta, bytes).await;
                        }
                    }
                    Err(e) => {
                        warn!(%key, error = %e, "an L3 hit failed on its way to disk: a miss");
                        return Ok(None);
                    }
                }
                Ok(self.l2.get(key).await?.map(|h| Hit { tier, ..h }))
            }
        }
    }

    /// The most bytes of a streamed body worth keeping for L1.
    fn l1_keep(&self) -> u64 {
        if self.l1.admits(0) {
            self.l1.max_entry_bytes()
        } else {
            0
        }
    }

    /// The entry's metadata, without reading (or counting) its bytes.
    pub async fn head(&self, key: &CacheKey) -> Result<Option<EntryMeta>, StoreError> {
        if !self.invalidation.bypass_local() {
            if let Some(meta) = self.l1.head(key).await
                && self.current(key, &meta)
            {
                return Ok(Some(meta));
            }
            if let Some(meta) = self.l2.head(key).await?
                && self.current(key, &meta)
            {
                return Ok(Some(meta));
            }
        }
        Ok(self
            .shared
            .head(key)
            .await
            .filter(|meta| self.current(key, meta)))
    }

    /// An L3 hit, if it was written under the epochs in force.
    async fn shared_get(&self, key: &CacheKey) -> Option<Hit> {
        self.shared
            .get(key)
            .await
            .filter(|hit| self.current(key, &hit.meta))
    }

    /// Stores `body` under `key` in every tier that takes it: L1 and L2 now, L3 in the
    /// background.
    pub async fn put(
        &self,
        key: &CacheKey,
        opts: PutOptions,
        body: Body,
    ) -> Result<EntryMeta, StoreError> {
        let (meta, small) = self.put_local(key, opts, body).await?;
        self.shared.replicate(key, &meta, small);
        Ok(meta)
    }

    /// Like [`TieredStore::put`]; with `now`, the entry also reaches L3 before this returns
    /// (a fleet lock holder's writes, which other nodes are waiting to read).
    pub async fn put_shared(
        &self,
        key: &CacheKey,
        opts: PutOptions,
        body: Body,
        now: bool,
    ) -> Result<EntryMeta, StoreError> {
        if !now {
            return self.put(key, opts, body).await;
        }
        let (meta, small) = self.put_local(key, opts, body).await?;
        self.replicate_now(key, &meta, small).await;
        Ok(meta)
    }

    /// Uploads a just-stored entry to L3 now (its body from memory, or re-read from L2).
    async fn replicate_now(&self, key: &CacheKey, meta: &EntryMeta, small: Option<Bytes>) {
        let body = match small {
            Some(bytes) => Some(Body::Bytes(bytes)),
            None => self.l2.get(key).await.ok().flatten().map(|h| h.body),
        };
        if let Some(body) = body {
            self.shared.replicate_now(key, meta, body).await;
        }
    }

    /// Who in the fleet fetches `key` from the origin now: this node (holding the fleet's
    /// lock, if there is a fleet), or another node that just did (read it again).
    pub async fn fleet_turn(&self, key: &CacheKey) -> FleetTurn {
        self.shared.fleet_turn(key).await
    }

    /// Writes L1 and L2; returns the metadata and the body if it is small enough to keep.
    async fn put_local(
        &self,
        key: &CacheKey,
        opts: PutOptions,
        body: Body,
    ) -> Result<(EntryMeta, Option<Bytes>), StoreError> {
        opts.validate()?;
        let mut opts = opts;
        opts.epoch = self.epochs.stamp(key);
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
                self.l1.insert(key, &meta, bytes.clone()).await;
                Ok((meta, Some(bytes)))
            }
            Body::Stream(stream) => {
                self.l1.remove(key).await;
                let keep = self.l1_keep();
                let (meta, kept) = self.l2.put_stream(key, opts, stream, keep).await?;
                if let Some(bytes) = &kept {
                    self.l1.insert(key, &meta, bytes.clone()).await;
                }
                Ok((meta, kept))
            }
        }
    }

    /// Removes the entry from every tier; returns whether any had it.
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, StoreError> {
        let in_l1 = self.l1.remove(key).await;
        let in_l2 = self.l2.delete(key).await?;
        let in_l3 = self.shared.delete(key).await;
        Ok(in_l1 || in_l2 || in_l3)
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
            Turn::Lead(lead) => {
                self.store_for(lead, key).await?;
                // Read back what was stored: followers do the same, and large bodies
                // stream from disk.
                self.get(key).await
            }
        }
    }

    /// Stores what a leader loaded and tells its followers how that went. A fleet lock
    /// holder uploads to L3 before it lets go, so the nodes waiting on it find the entry there.
    async fn store_for(&self, lead: Lead, key: &CacheKey) -> Result<(), StoreError> {
        let Lead {
            leader,
            lock,
            opts,
            body,
            t0,
        } = lead;
        match self.put_local(key, opts, body).await {
            Ok((meta, small)) => {
                self.origin.hit(TierName::Origin, meta.size, t0.elapsed());
                self.shared.count_origin(key, meta.size);
                leader.finish(Outcome::Stored);
                match lock {
                    Some(lock) => {
                        self.replicate_now(key, &meta, small).await;
                        release(lock).await;
                    }
                    None => self.shared.replicate(key, &meta, small),
                }
                Ok(())
            }
            Err(e) => {
                if let Some(lock) = lock {
                    release(lock).await;
                }
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
        let mut lead = match self.take_turn(key, loader).await? {
            Turn::Done(hit) => return Ok(hit.map(Fill::Hit)),
            Turn::Lead(lead) => lead,
        };
        let source = match std::mem::replace(&mut lead.body, Body::Bytes(Bytes::new())) {
            Body::Stream(source) => source,
            whole => {
                // Already whole: store it, then serve it like any hit.
                lead.body = whole;
                self.store_for(lead, key).await?;
                return Ok(self.get(key).await?.map(Fill::Hit));
            }
        };
        let (to_store, store_rx) = mpsc::channel(TEE_DEPTH);
        let (to_caller, caller_rx) = mpsc::channel(TEE_DEPTH);
        let store = self.clone();
        let k = key.clone();
        let (stored_tx, stored_rx) = oneshot::channel();
        tokio::spawn(async move {
            lead.body = Body::Stream(receiver_stream(store_rx));
            // Followers learn the outcome through the leader; the caller, from its stream.
            let _ = store.store_for(lead, &k).await;
            let _ = stored_tx.send(());
        });
        tokio::spawn(tee(source, to_store, to_caller, stored_rx));
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
            // Another caller on this node may have finished between our miss and our lead.
            if let Some(hit) = self.lookup_local(key).await? {
                leader.finish(Outcome::Stored);
                return Ok(Turn::Done(Some(hit)));
            }
            let lock = match self.shared.fleet_turn(key).await {
                FleetTurn::Fetch(guard) => match guard.into_lock() {
                    // Another node may have finished just before we took the lock.
                    Some(lock) => match self.shared_get(key).await {
                        Some(hit) => {
                            release(lock).await;
                            let hit = self.promote(key, hit).await?;
                            leader.finish(Outcome::Stored);
                            return Ok(Turn::Done(hit));
                        }
                        None => Some(lock),
                    },
                    None => None,
                },
                FleetTurn::Reread => {
                    // Another node fetched it; it is in L3 now (or that node found nothing).
                    if let Some(hit) = self.get(key).await? {
                        leader.finish(Outcome::Stored);
                        return Ok(Turn::Done(Some(hit)));
                    }
                    drop(leader);
                    continue;
                }
            };
            let Some(load) = loader.take() else {
                return Err(StoreError::Task("loader already used".into()));
            };
            let t0 = Instant::now();
            let outcome = load().await;
            match outcome {
                Ok(Some((opts, body))) => {
                    return Ok(Turn::Lead(Lead {
                        leader,
                        lock,
                        opts,
                        body,
                        t0,
                    }));
                }
                Ok(None) => {
                    self.origin.miss(TierName::Origin, t0.elapsed());
                    leader.finish(Outcome::NotFound);
                    if let Some(lock) = lock {
                        release(lock).await;
                    }
                    return Ok(Turn::Done(None));
                }
                Err(e) => {
                    self.origin.error();
                    leader.finish(Outcome::Failed(e.clone()));
                    if let Some(lock) = lock {
                        release(lock).await;
                    }
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

    /// Like [`TieredStore::list`], in every scope this node holds entries of: global, then
    /// each template, then each user (an operator's view; never a user's).
    pub async fn list_all_scopes(
        &self,
        kind: &Kind,
        name_prefix: &str,
        limit: usize,
    ) -> Result<Vec<(CacheKey, EntryMeta)>, StoreError> {
        let mut scopes = vec![Scope::Global];
        for id in self.l2.scope_ids("template/").await? {
            scopes.extend(Scope::template(&id).ok());
        }
        for id in self.l2.scope_ids("user/").await? {
            scopes.extend(Scope::user(&id).ok());
        }
        let mut out = Vec::new();
        for scope in scopes {
            let left = limit.saturating_sub(out.len());
            if left == 0 {
                break;
            }
            out.extend(self.list(&scope, kind, name_prefix, left).await?);
        }
        Ok(out)
    }

    /// The memory tier (for health and metrics).
    pub fn l1(&self) -> &MemoryTier {
        &self.l1
    }

    /// The disk tier (for health and metrics).
    pub fn l2(&self) -> &DiskTier {
        &self.l2
    }

    /// The shared tier, if configured (for health and metrics).
    pub fn l3(&self) -> Option<&ObjectTier> {
        self.shared.l3()
    }

    /// The L3 upload queue's counters, if L3 is configured.
    pub fn l3_queue(&self) -> Option<QueueStats> {
        self.shared.queue()
    }

    /// The fleet's Redis, if configured: fleet-wide counters and rankings for reports.
    pub fn fleet(&self) -> Option<&Fleet> {
        self.shared.fleet()
    }

    /// The version epochs in force.
    pub fn epochs(&self) -> &Epochs {
        &self.epochs
    }

    pub(crate) fn epochs_handle(&self) -> Arc<Epochs> {
        self.epochs.clone()
    }

    /// Whether this node has seen its fleet's invalidation events.
    pub fn feed(&self) -> &FeedState {
        &self.invalidation
    }

    /// The rule promoting identical user uploads to their template.
    pub fn promotion(&self) -> &Promotion {
        &self.promotion
    }

    /// Counters of loads from the origin.
    pub fn origin_stats(&self) -> &TierStats {
        &self.origin
    }

    /// Writes state that is kept lazily (LRU order, fleet counters) and gives queued L3
    /// uploads up to `wait` to finish, before shutdown.
    pub async fn flush(&self, wait: std::time::Duration) -> Result<(), StoreError> {
        self.shared.flush(wait).await;
        self.l2.flush().await
    }
}
