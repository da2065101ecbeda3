//! Blob files on disk, named by content hash: written to a temporary file, renamed into
//! place, and flushed to stable storage (file and directory) before the write is answered
//! or right after it, as `[l2] fsync` says; a blob file is whole or absent, and one a power
//! loss damaged fails its hash on the next read.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tiercache_core::{ContentHash, DiskSync};

use super::flusher::{Flusher, Reservation};

/// Suffix of files being written; any found at start-up are leftovers of a crash.
pub(super) const TEMP_SUFFIX: &str = ".part";

/// The blob directory tree: `blobs/<first two hex digits>/<hash>`, and `tmp/` beside it.
pub(super) struct BlobDir {
    blobs: PathBuf,
    tmp: PathBuf,
    pins: Mutex<HashMap<ContentHash, u32>>,
    /// When writes are flushed to stable storage.
    sync: DiskSync,
    /// The background flusher, in [`DiskSync::Background`] mode.
    flusher: Option<Flusher>,
    /// Blob files known to hold their hash's bytes, as of their file stamp.
    verified: Mutex<HashMap<ContentHash, Stamp>>,
}

/// Most blobs remembered as verified; the memo starts over when it is full.
const MAX_VERIFIED: usize = 65_536;

/// What identifies one version of a file: a rewrite or replacement changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    pub fn of(meta: &fs::Metadata) -> Stamp {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl BlobDir {
    /// Opens the tree; in background mode with room for `backlog_bytes` of unflushed blobs.
    pub fn open(root: &Path, sync: DiskSync, backlog_bytes: u64) -> io::Result<Self> {
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        fs::create_dir_all(&blobs)?;
        fs::create_dir_all(&tmp)?;
        sync_dir(root)?;
        Ok(BlobDir {
            blobs,
            tmp,
            pins: Mutex::new(HashMap::new()),
            sync,
            flusher: match sync {
                DiskSync::Background => Some(Flusher::start(backlog_bytes)?),
                DiskSync::Always | DiskSync::Never => None,
            },
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a write is flushed before it is answered.
    pub fn syncs_before_answer(&self) -> bool {
        self.sync == DiskSync::Always
    }

    /// Whether writes are flushed at all (before the answer or right after it).
    pub fn flushes(&self) -> bool {
        self.sync != DiskSync::Never
    }

    /// Room in the background flusher's backlog for a blob of `size` bytes (none without a
    /// flusher); waits while the backlog is full. Queued with [`BlobDir::flush_later`].
    pub async fn reserve_flush(&self, size: u64) -> Option<Reservation> {
        match &self.flusher {
            Some(f) => f.reserve(size).await,
            None => None,
        }
    }

    /// Queues the newly linked blob `hash` for the background flusher.
    pub fn flush_later(&self, slot: Option<Reservation>, hash: &ContentHash) {
        if let Some(slot) = slot {
            slot.queue(self.path(hash));
        }
    }

    /// Waits until every blob written so far is flushed (at shutdown).
    pub async fn drain(&self) {
        if let Some(f) = &self.flusher {
            f.drain().await;
        }
    }

    /// Remembers that the file `hash` names, as it is now, holds exactly those bytes.
    pub fn mark_verified(&self, hash: ContentHash, stamp: Stamp) {
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= MAX_VERIFIED {
                v.clear();
            }
            v.insert(hash, stamp);
        }
    }

    /// Whether the file `hash` names was verified and has not changed since.
    pub fn was_verified(&self, hash: &ContentHash, stamp: &Stamp) -> bool {
        self.verified
            .lock()
            .is_ok_and(|v| v.get(hash) == Some(stamp))
    }

    fn forget_verified(&self, hash: &ContentHash) {
        if let Ok(mut v) = self.verified.lock() {
            v.remove(hash);
        }
    }

    pub fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    /// A new temporary file, removed again unless it is linked.
    pub fn temp(&self) -> io::Result<TempFile> {
        let name = format!("{:032x}{TEMP_SUFFIX}", rand::random::<u128>());
        let path = self.tmp.join(name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(TempFile {
            path: Some(path),
            file: Some(file),
        })
    }

    /// Moves a finished temporary file into place as the blob `hash` (durably, in
    /// [`DiskSync::Always`] mode; else see [`BlobDir::flush_later`]).
    pub fn link(&self, temp: TempFile, hash: &ContentHash) -> io::Result<()> {
        let target = self.path(hash);
        let parent = target.parent().unwrap_or(&self.blobs);
        if !parent.exists() {
            fs::create_dir_all(parent)?;
            // One of at most 256 directories, made once: flushed now unless nothing is.
            if self.flushes() {
                sync_dir(&self.blobs)?;
            }
        }
        let from = temp.into_path();
        if let Err(e) = fs::rename(&from, &target) {
            let _ = fs::remove_file(&from);
            return Err(e);
        }
        // Its bytes were hashed on the way in.
        if let Ok(meta) = fs::metadata(&target) {
            self.mark_verified(*hash, Stamp::of(&meta));
        }
        if self.syncs_before_answer() {
            sync_dir(parent)
        } else {
            Ok(())
        }
    }

    /// Removes the blob file; a missing file is not an error.
    pub fn unlink(&self, hash: &ContentHash) -> io::Result<()> {
        self.forget_verified(hash);
        match fs::remove_file(self.path(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Keeps the blob from being deleted while the lease lives.
    pub fn lease(self: &Arc<Self>, hash: ContentHash) -> Lease {
        if let Ok(mut pins) = self.pins.lock() {
            *pins.entry(hash).or_insert(0) += 1;
        }
        Lease {
            dir: self.clone(),
            hash,
        }
    }

    pub fn is_pinned(&self, hash: &ContentHash) -> bool {
        self.pins
            .lock()
            .map(|p| p.contains_key(hash))
            .unwrap_or(true)
    }
}

/// Proof that a reader is using a blob; the blob is not deleted until every lease is dropped.
pub struct Lease {
    dir: Arc<BlobDir>,
    hash: ContentHash,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut pins) = self.dir.pins.lock()
            && let Some(n) = pins.get_mut(&self.hash)
        {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.hash);
            }
        }
    }
}

/// A file being written; deleted on drop unless it was linked, so a cancelled or failed
/// write leaves nothing behind.
pub(super) struct TempFile {
    path: Option<PathBuf>,
    file: Option<File>,
}

impl TempFile {
    pub fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("temporary file already closed"))
    }

    /// Takes the open file out, to write it asynchronously; it is put back by [`TempFile::restore`].
    pub fn take_file(&mut self) -> io::Result<File> {
        self.file
            .take()
            .ok_or_else(|| io::Error::other("temporary file already taken"))
    }

    pub fn restore(&mut self, file: File) {
        self.file = Some(file);
    }

    /// Writes everything, flushed to stable storage if `sync`.
    pub fn write_all(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        let f = self.file()?;
        f.write_all(bytes)?;
        if sync { f.sync_all() } else { Ok(()) }
    }

    fn into_path(mut self) -> PathBuf {
        self.file = None;
        self.path.take().unwrap_or_default()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
