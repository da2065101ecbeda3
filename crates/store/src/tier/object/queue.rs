//! The background upload queue: puts reach L3 after the client was answered.
//!
//! A job is a key and its metadata, and the body itself when it is small; otherwise the
//! body is asked of an [`UploadSource`] (the tiered store reads it from L2) each time the
//! upload is tried. A job holds its slot from `enqueue` until it is done, including while
//! it waits to retry: a failing upload is retried with exponential backoff (1 s doubling
//! to 30 s) for as long as S3 is down, so queued uploads complete once it is back. When
//! every slot is taken, `enqueue` drops the job and counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tiercache_core::{CacheKey, EntryMeta};
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{ObjectTier, PutOutcome};
use crate::body::Body;

/// First wait before retrying a failed upload.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failed upload.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the queue gets the body of an upload whose bytes were not carried inline, and who
/// makes a first-write-wins upload exclusive and hears how it ended.
pub trait UploadSource: Send + Sync {
    /// The body of the entry `key` as `meta` describes it, or `None` if it is gone (the
    /// job is then dropped silently).
    fn open(&self, key: CacheKey, meta: EntryMeta) -> BoxFuture<'static, Option<Body>>;

    /// Something held while an immutable entry is uploaded, so that no other writer decides
    /// at the same time (the fleet's lock); `None` if there is nothing to hold.
    fn exclusive(&self, _key: CacheKey) -> BoxFuture<'static, Option<Box<dyn Send>>> {
        Box::pin(async { None })
    }

    /// An immutable entry's upload found another write kept in L3 (`theirs`).
    fn superseded(&self, _key: CacheKey, _theirs: EntryMeta) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// The queue's counters, for `/healthz` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Jobs waiting, uploading or waiting to retry.
    pub depth: usize,
    /// Most jobs held at once.
    pub capacity: usize,
    /// Uploads completed.
    pub uploaded: u64,
    /// Upload attempts that failed (a job failing three times counts three).
    pub failures: u64,
    /// Jobs refused because the queue was full.
    pub dropped: u64,
}

/// A cheap, cloneable handle on the upload queue; the workers stop when the last is dropped.
#[derive(Clone)]
pub struct UploadQueue {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for UploadQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UploadQueue").field(&self.stats()).finish()
    }
}

struct Handle {
    tx: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

struct Shared {
    rx: Mutex<mpsc::UnboundedReceiver<Job>>,
    capacity: usize,
    depth: AtomicUsize,
    uploaded: AtomicU64,
    failures: AtomicU64,
    dropped: AtomicU64,
    idle: Notify,
}

struct Job {
    key: CacheKey,
    meta: EntryMeta,
    small: Option<Bytes>,
}

impl UploadQueue {
    /// Starts `workers` upload tasks (at least one) holding at most `capacity` jobs; needs a
    /// Tokio runtime.
    pub fn start(
        tier: ObjectTier,
        source: Arc<dyn UploadSource>,
        capacity: usize,
        workers: usize,
    ) -> UploadQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            rx: Mutex::new(rx),
            capacity,
            depth: AtomicUsize::new(0),
            uploaded: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            idle: Notify::new(),
        });
        metrics::gauge!("tiercache_l3_queue_depth").set(0.0);
        let workers = (0..workers.max(1))
            .map(|_| tokio::spawn(work(tier.clone(), source.clone(), shared.clone())))
            .collect();
        UploadQueue {
            handle: Arc::new(Handle {
                tx,
                shared,
                workers,
            }),
        }
    }

    /// Queues the upload of `key`; `small` carries the body when it is at hand. False if
    /// the queue is full: the job is dropped and counted.
    pub fn enqueue(&self, key: CacheKey, meta: EntryMeta, small: Option<Bytes>) -> bool {
        let shared = &self.handle.shared;
        let taken = shared
            .depth
            .fetch_update(SeqCst, SeqCst, |d| (d < shared.capacity).then_some(d + 1));
        if taken.is_err() {
            shared.dropped.fetch_add(1, SeqCst);
            metrics::counter!("tiercache_l3_upload_dropped_total").increment(1);
            debug!(%key, "L3 upload queue full: upload dropped");
            return false;
        }
        shared.publish_depth();
        if self.handle.tx.send(Job { key, meta, small }).is_err() {
            // Unreachable while this handle exists; keep the count right anyway.
            shared.done();
            shared.dropped.fetch_add(1, SeqCst);
            return false;
        }
        true
    }

    /// Jobs waiting, uploading or waiting to retry.
    pub fn depth(&self) -> usize {
        self.handle.shared.depth.load(SeqCst)
    }

    /// The counters now.
    pub fn stats(&self) -> QueueStats {
        let s = &self.handle.shared;
        QueueStats {
            depth: s.depth.load(SeqCst),
            capacity: s.capacity,
            uploaded: s.uploaded.load(SeqCst),
            failures: s.failures.load(SeqCst),
            dropped: s.dropped.load(SeqCst),
        }
    }

    /// Waits until no job is queued or running (for tests and graceful shutdown); false if
    /// `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let shared = &self.handle.shared;
        let idle = async {
            loop {
                let notified = shared.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if shared.depth.load(SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, idle).await.is_ok()
    }
}

impl Shared {
    fn publish_depth(&self) {
        metrics::gauge!("tiercache_l3_queue_depth").set(self.depth.load(SeqCst) as f64);
    }

    /// A job left the queue (uploaded, gone, or given up).
    fn done(&self) {
        let before = self.depth.fetch_sub(1, SeqCst);
        self.publish_depth();
        if before == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// One worker: takes jobs until the queue is dropped.
async fn work(tier: ObjectTier, source: Arc<dyn UploadSource>, shared: Arc<Shared>) {
    loop {
        let job = shared.rx.lock().await.recv().await;
        let Some(job) = job else { return };
        upload(&tier, source.as_ref(), &shared, job).await;
        shared.done();
    }
}

/// Uploads one job, retrying while the failure is S3's; gives up on a bad body.
async fn upload(tier: &ObjectTier, source: &dyn UploadSource, shared: &Shared, job: Job) {
    let mut backoff = INITIAL_BACKOFF;
    loop {
        let body = match &job.small {
            Some(bytes) => Body::Bytes(bytes.clone()),
            None => match source.open(job.key.clone(), job.meta.clone()).await {
                Some(body) => body,
                None => {
                    debug!(key = %job.key, "entry gone before its L3 upload: dropped");
                    return;
                }
            },
        };
        let guard = if job.meta.immutable {
            source.exclusive(job.key.clone()).await
        } else {
            None
        };
        let result = tier.put(&job.key, &job.meta, body).await;
        drop(guard);
        match result {
            Ok(outcome) => {
                shared.uploaded.fetch_add(1, SeqCst);
                metrics::counter!("tiercache_l3_uploads_total").increment(1);
                if let PutOutcome::Kept(theirs) = outcome
                    && theirs.hash != job.meta.hash
                {
                    source.superseded(job.key.clone(), theirs).await;
                }
                return;
            }
            Err(e) => {
                shared.failures.fetch_add(1, SeqCst);
                metrics::counter!("tiercache_l3_upload_failures_total").increment(1);
                if !e.is_transient() {
                    warn!(key = %job.key, error = %e, "L3 upload failed for good: dropped");
                    return;
                }
                debug!(key = %job.key, error = %e, ?backoff, "L3 upload failed: will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
