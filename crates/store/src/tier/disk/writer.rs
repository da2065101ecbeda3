//! Writing a streamed body to its temporary file on a blocking thread of its own, while the
//! async side receives and hashes the next chunks (no per-chunk `tokio::fs` round trip or
//! copy). When the answer waits for the fsync (`[l2] fsync = "always"`), writeback of what
//! is written starts every [`WRITEBACK_STEP`], so the disk works while the body still arrives
//! and the final fsync waits on little. Otherwise it is not started here: it would hold the
//! write to the disk's pace (the request queue fills), which the background flush avoids.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::blobs::TempFile;
use crate::error::StoreError;

/// Chunks waiting for the writer thread.
const DEPTH: usize = 32;
/// Bytes written between two writeback starts.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// A body being written to a temporary file.
pub(super) struct BlobWriter {
    tx: Option<mpsc::Sender<Bytes>>,
    task: Option<JoinHandle<io::Result<TempFile>>>,
    /// Set when the write is abandoned, so the thread skips its fsync.
    abandoned: Arc<AtomicBool>,
}

impl BlobWriter {
    /// Starts the writer thread on `temp` (synced to stable storage at the end if `sync`).
    pub(super) fn start(mut temp: TempFile, sync: bool) -> io::Result<Self> {
        let mut file = temp.take_file()?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(DEPTH);
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut written, mut started) = (0u64, 0u64);
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                if sync && written - started >= WRITEBACK_STEP {
                    start_writeback(&file, started, written - started);
                    started = written;
                }
            }
            if sync && !stop.load(Ordering::Relaxed) {
                file.sync_all()?;
            }
            temp.restore(file);
            Ok(temp)
        });
        Ok(BlobWriter {
            tx: Some(tx),
            task: Some(task),
            abandoned,
        })
    }

    /// Hands `chunk` to the writer; waits only while [`DEPTH`] chunks are queued.
    pub(super) async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: its error says why.
        self.tx = None;
        match self.join().await {
            Err(e) => Err(e),
            Ok(_) => Err(StoreError::Task("the blob writer stopped early".into())),
        }
    }

    /// Waits until everything is written (and synced): the temporary file, ready to commit.
    pub(super) async fn finish(mut self) -> Result<TempFile, StoreError> {
        self.tx = None;
        self.join().await
    }

    async fn join(&mut self) -> Result<TempFile, StoreError> {
        let task = self
            .task
            .take()
            .ok_or_else(|| StoreError::Task("the blob writer was already joined".into()))?;
        Ok(task.await??)
    }
}

impl Drop for BlobWriter {
    /// Abandoned (the body failed or the request went away): no fsync for bytes that will be
    /// deleted; the thread drops the temporary file, which removes it.
    fn drop(&mut self) {
        if self.task.is_some() {
            self.abandoned.store(true, Ordering::Relaxed);
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` back to disk, without waiting.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the call's duration (borrowed from `file`), and
    // sync_file_range only reads its integer arguments. Failure is harmless: the final
    // fsync writes whatever this did not start.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}
