//! Background flushing of new blobs (`[l2] fsync = "background"`): a write is answered once
//! its bytes are written and its index row is committed, and this thread then fsyncs the
//! blob and its directory. A crash of the process loses nothing (the bytes are in the page
//! cache, the index commit is durable); a power loss can take only what is still queued
//! here, and such a blob then fails its hash on the next read: dropped, counted, never
//! served. At most `[l2] flush_backlog` bytes wait; beyond that a writer waits for the disk,
//! so the sustained write rate stays the disk's and what a power loss can take stays bounded.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::error;

use super::blobs::sync_dir;

/// A blob file to flush, holding its share of the backlog until it is flushed.
struct Job {
    path: PathBuf,
    _room: OwnedSemaphorePermit,
}

/// The queue and the thread that drains it.
pub(super) struct Flusher {
    tx: mpsc::Sender<Job>,
    /// The backlog's room, in KiB.
    room: Arc<Semaphore>,
    capacity_kib: u32,
}

impl Flusher {
    /// Starts the flushing thread, with room for `backlog_bytes` waiting; it ends when the
    /// flusher is dropped and its queue is done.
    pub(super) fn start(backlog_bytes: u64) -> std::io::Result<Flusher> {
        let most = u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX);
        let capacity_kib = u32::try_from(backlog_bytes / 1024)
            .unwrap_or(u32::MAX)
            .clamp(1, most);
        let (tx, rx) = mpsc::channel::<Job>();
        let room = Arc::new(Semaphore::new(capacity_kib as usize));
        report(&room, capacity_kib);
        metrics::counter!("tiercache_l2_flush_failures_total").increment(0);
        // The thread holds the room (to report it), never a sender: it ends with the queue.
        let theirs = room.clone();
        std::thread::Builder::new()
            .name("tiercache-l2-flush".into())
            .spawn(move || run(&rx, &theirs, capacity_kib))?;
        Ok(Flusher {
            tx,
            room,
            capacity_kib,
        })
    }

    /// Room for a blob of `size` bytes in the backlog, waited for while it is full. Taken
    /// before the blob's index commit, so a write cancelled while waiting has committed
    /// nothing, and a committed one is always queued.
    pub(super) async fn reserve(&self, size: u64) -> Option<Reservation> {
        // A blob larger than the whole backlog waits for all of it.
        let kib = u32::try_from(size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.capacity_kib);
        let room = self
            .room
            .clone()
            .acquire_many_owned(kib)
            .await
            // Never closed.
            .ok()?;
        report(&self.room, self.capacity_kib);
        Some(Reservation {
            tx: self.tx.clone(),
            room,
        })
    }

    /// Waits until everything queued so far is flushed.
    pub(super) async fn drain(&self) {
        if let Ok(all) = self.room.acquire_many(self.capacity_kib).await {
            drop(all);
        }
    }
}

/// A blob's place in the backlog; released unused if the write ends up linking no new file.
pub(super) struct Reservation {
    tx: mpsc::Sender<Job>,
    room: OwnedSemaphorePermit,
}

impl Reservation {
    /// Queues the blob file at `path` for flushing.
    pub(super) fn queue(self, path: PathBuf) {
        // The thread only stops once every sender is gone.
        let _ = self.tx.send(Job {
            path,
            _room: self.room,
        });
    }
}

/// Publishes the backlog (`tiercache_l2_flush_backlog_bytes`): about what a power loss could
/// take now.
fn report(room: &Semaphore, capacity_kib: u32) {
    let free = room.available_permits().min(capacity_kib as usize);
    let used = (capacity_kib as usize - free) as f64;
    metrics::gauge!("tiercache_l2_flush_backlog_bytes").set(used * 1024.0);
}

/// Flushes queued blobs in batches: every file of a batch, then each of their directories
/// once, then their room is released.
fn run(rx: &mpsc::Receiver<Job>, room: &Semaphore, capacity_kib: u32) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let mut dirs = BTreeSet::new();
        for job in &batch {
            // Gone already (evicted or replaced): nothing to flush.
            let Ok(file) = File::open(&job.path) else {
                continue;
            };
            if let Err(e) = file.sync_all() {
                metrics::counter!("tiercache_l2_flush_failures_total").increment(1);
                error!(path = %job.path.display(), error = %e, "flushing an L2 blob failed; a read will verify it");
            }
            if let Some(dir) = job.path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        for dir in dirs {
            if let Err(e) = sync_dir(&dir) {
                metrics::counter!("tiercache_l2_flush_failures_total").increment(1);
                error!(dir = %dir.display(), error = %e, "flushing an L2 blob directory failed");
            }
        }
        drop(batch);
        report(room, capacity_kib);
    }
}
