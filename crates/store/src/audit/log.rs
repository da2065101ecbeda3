//! The writer: a bounded channel in front of one background task that appends, syncs and
//! rotates. See the module documentation for the guarantees.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tiercache_core::{CacheKey, Decision, Principal};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::query::{list_rotated, read_dir};
use super::record::{Action, AuditRecord, audited};
use super::{AuditError, AuditFilter, CHANNEL_CAPACITY, CURRENT, SEND_TIMEOUT};
use crate::clock::now_ms;

/// Unsynced records are synced at the latest after this long...
const SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// ...or once this many have been written.
const SYNC_EVERY: usize = 256;
/// Most messages the writer takes from the channel per batch.
const BATCH: usize = 512;
/// A warning about dropped records at most this often.
const WARN_EVERY_MS: u64 = 10_000;

/// What the log has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Records appended to the file.
    pub written: u64,
    /// Records lost: the channel stayed full, the log was closed, or a write failed.
    pub dropped: u64,
}

#[derive(Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    last_warn_ms: AtomicU64,
}

impl Shared {
    fn drop_records(&self, n: u64, why: &str) {
        if n == 0 {
            return;
        }
        let total = self.dropped.fetch_add(n, Relaxed) + n;
        metrics::counter!("tiercache_audit_dropped_total").increment(n);
        let now = now_ms();
        let last = self.last_warn_ms.load(Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_MS
            && self
                .last_warn_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            warn!(dropped = n, total, why, "audit records dropped");
        } else {
            debug!(dropped = n, total, why, "audit records dropped");
        }
    }
}

pub(crate) enum Msg {
    Record(AuditRecord),
    /// Write and sync everything sent before, then answer.
    Flush(oneshot::Sender<Result<(), String>>),
    /// Like flush, then stop taking records and end the writer.
    Close(oneshot::Sender<Result<(), String>>),
}

/// The audit log of one data directory. Cheap to share behind an `Arc`.
pub struct AuditLog {
    dir: PathBuf,
    /// `None`: a disabled log that keeps nothing.
    tx: Option<mpsc::Sender<Msg>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.dir)
            .field("enabled", &self.tx.is_some())
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating it if needed) the log in `dir`: cuts a torn last line left by a crash,
    /// and starts the writer task. `current.jsonl` is rotated when it would grow past
    /// `max_file_bytes`; at most `max_files` rotated files are kept. Needs a Tokio runtime.
    pub async fn open(
        dir: impl Into<PathBuf>,
        max_file_bytes: u64,
        max_files: usize,
    ) -> Result<AuditLog, AuditError> {
        if max_file_bytes == 0 {
            return Err(AuditError::Invalid(
                "the audit log's file size limit must be larger than zero".into(),
            ));
        }
        let dir = dir.into();
        let writer = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || Writer::open(dir, max_file_bytes, max_files))
                .await??
        };
        // Both series exist on /metrics from the start, at zero.
        metrics::counter!("tiercache_audit_records_total").increment(0);
        metrics::counter!("tiercache_audit_dropped_total").increment(0);
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared::default());
        tokio::spawn(run(writer, rx, shared.clone()));
        Ok(AuditLog {
            dir,
            tx: Some(tx),
            shared,
        })
    }

    /// Opens the log of the store configured by `config` (`<data_dir>/audit`).
    pub async fn open_for(config: &crate::StoreConfig) -> Result<AuditLog, AuditError> {
        AuditLog::open(
            super::audit_dir(&config.data_dir),
            config.audit_max_file_bytes,
            config.audit_max_files,
        )
        .await
    }

    /// A log that keeps nothing (for tests and tools without a data directory).
    pub fn disabled() -> AuditLog {
        AuditLog {
            dir: PathBuf::new(),
            tx: None,
            shared: Arc::new(Shared::default()),
        }
    }

    /// A log whose records go to `tx` (tests stand in for the writer).
    #[cfg(test)]
    pub(crate) fn with_sender(tx: mpsc::Sender<Msg>) -> AuditLog {
        AuditLog {
            dir: PathBuf::new(),
            tx: Some(tx),
            shared: Arc::new(Shared::default()),
        }
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether records are kept at all.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Appends `rec` in the background. Returns at once unless the channel is full; then
    /// waits up to [`SEND_TIMEOUT`] for room and otherwise drops the record (counted in
    /// `tiercache_audit_dropped_total`, with a warning). Never fails the caller.
    pub async fn record(&self, rec: AuditRecord) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Msg::Record(rec)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                if tx.send_timeout(msg, SEND_TIMEOUT).await.is_err() {
                    self.shared
                        .drop_records(1, "the audit channel stayed full (writer too slow)");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.drop_records(1, "the audit log is closed");
            }
        }
    }

    /// Like [`AuditLog::record`] but never waits: false (and counted as dropped) if the
    /// channel is full or the log closed. For callers outside async code.
    pub fn try_record(&self, rec: AuditRecord) -> bool {
        let Some(tx) = &self.tx else { return true };
        match tx.try_send(Msg::Record(rec)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.drop_records(1, "the audit channel is full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.shared.drop_records(1, "the audit log is closed");
                false
            }
        }
    }

    /// Records `who` doing `action` to `key` with `decision`, if `key`'s scope is audited
    /// (any scope but global): the one call a request path needs.
    pub async fn access(
        &self,
        who: &Principal,
        key: &CacheKey,
        action: Action,
        decision: &Decision,
    ) {
        if self.tx.is_some() && audited(key.scope()) {
            self.record(AuditRecord::new(who, key, action, decision))
                .await;
        }
    }

    /// Waits until every record sent before is written and synced to disk.
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.control(Msg::Flush).await
    }

    /// Writes and syncs everything sent before, then stops the writer: later records are
    /// dropped (and counted). For shutdown; the files stay for the next open.
    pub async fn close(&self) -> Result<(), AuditError> {
        self.control(Msg::Close).await
    }

    async fn control(
        &self,
        msg: fn(oneshot::Sender<Result<(), String>>) -> Msg,
    ) -> Result<(), AuditError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        let (reply, answer) = oneshot::channel();
        tx.send(msg(reply)).await.map_err(|_| AuditError::Closed)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AuditError::io("syncing", io::Error::other(e))),
            Err(_) => Err(AuditError::Closed),
        }
    }

    /// The records matching `filter`, oldest first (the newest `filter.limit` of them), after
    /// writing out everything recorded so far.
    pub async fn query(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        if self.tx.is_none() {
            return Ok(Vec::new());
        }
        if let Err(e) = self.flush().await {
            debug!(error = %e, "audit query without a flush");
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || read_dir(&dir, &filter)).await?
    }

    /// Records written and dropped so far.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            written: self.shared.written.load(Relaxed),
            dropped: self.shared.dropped.load(Relaxed),
        }
    }
}

/// The background task: takes records in batches, has them appended off the runtime's
/// threads, syncs at most every [`SYNC_INTERVAL`] (or [`SYNC_EVERY`] records), and syncs at
/// once when asked to flush or close.
async fn run(writer: Writer, mut rx: mpsc::Receiver<Msg>, shared: Arc<Shared>) {
    let mut writer = Some(writer);
    let mut unsynced: usize = 0;
    let mut unsynced_since: Option<Instant> = None;
    let mut closers: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
    loop {
        let first = match unsynced_since {
            Some(since) => {
                let deadline = tokio::time::Instant::from_std(since + SYNC_INTERVAL);
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        // The interval passed with nothing new: sync what is written.
                        let (w, res) = blocking(writer.take(), Vec::new(), true).await;
                        writer = w;
                        if let Err(e) = res {
                            error!(error = %e, "syncing the audit log failed");
                        }
                        unsynced = 0;
                        unsynced_since = None;
                        continue;
                    }
                }
            }
            None => rx.recv().await,
        };
        let Some(first) = first else { break };
        let mut records = Vec::new();
        let mut waiters = Vec::new();
        let mut msg = Some(first);
        while let Some(m) = msg.take() {
            match m {
                Msg::Record(r) => records.push(r),
                Msg::Flush(reply) => waiters.push(reply),
                Msg::Close(reply) => {
                    rx.close();
                    closers.push(reply);
                }
            }
            if records.len() + waiters.len() < BATCH {
                msg = rx.try_recv().ok();
            }
        }
        let n = records.len();
        let sync = !waiters.is_empty()
            || unsynced + n >= SYNC_EVERY
            || unsynced_since.is_some_and(|s| s.elapsed() >= SYNC_INTERVAL);
        let (w, res) = blocking(writer.take(), records, sync).await;
        writer = w;
        match res {
            Ok(written) => {
                shared.written.fetch_add(written as u64, Relaxed);
                metrics::counter!("tiercache_audit_records_total").increment(written as u64);
                if written < n {
                    shared.drop_records((n - written) as u64, "encoding failed");
                }
                if sync {
                    unsynced = 0;
                    unsynced_since = None;
                } else if n > 0 {
                    unsynced += n;
                    unsynced_since.get_or_insert_with(Instant::now);
                }
                for w in waiters {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => {
                error!(error = %e, records = n, "writing the audit log failed");
                shared.drop_records(n as u64, "writing the audit log failed");
                for w in waiters {
                    let _ = w.send(Err(e.to_string()));
                }
            }
        }
    }
    // Every sender is gone or the log was closed: make what was written durable.
    let res = match writer.take() {
        Some(w) => tokio::task::spawn_blocking(move || w.sync())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string())),
        None => Err("the audit writer failed".to_string()),
    };
    if let Err(e) = &res {
        error!(error = %e, "syncing the audit log at close failed");
    }
    for c in closers {
        let _ = c.send(res.clone());
    }
    debug!("audit writer stopped");
}

/// Runs one batch on the blocking pool; hands the writer back (unless it panicked).
async fn blocking(
    writer: Option<Writer>,
    records: Vec<AuditRecord>,
    sync: bool,
) -> (Option<Writer>, Result<usize, AuditError>) {
    let Some(mut w) = writer else {
        return (None, Err(AuditError::Closed));
    };
    match tokio::task::spawn_blocking(move || {
        let res = w.append(records, sync);
        (w, res)
    })
    .await
    {
        Ok((w, res)) => (Some(w), res),
        Err(e) => (None, Err(AuditError::from(e))),
    }
}

/// The files on disk; used only from the blocking pool.
struct Writer {
    dir: PathBuf,
    file: File,
    /// Bytes in `current.jsonl`.
    size: u64,
    /// Time of the first record in `current.jsonl`, for the rotated file's name.
    first_time_ms: Option<u64>,
    next_seq: u64,
    max_file_bytes: u64,
    max_files: usize,
}

impl Writer {
    fn open(dir: PathBuf, max_file_bytes: u64, max_files: usize) -> Result<Writer, AuditError> {
        let created = !dir.exists();
        fs::create_dir_all(&dir)
            .map_err(|e| AuditError::io(format!("creating {}", dir.display()), e))?;
        if created && let Some(parent) = dir.parent() {
            sync_dir(parent).map_err(|e| AuditError::io("syncing the data directory", e))?;
        }
        let path = dir.join(CURRENT);
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| AuditError::io(format!("opening {}", path.display()), e))?;
        if !existed {
            sync_dir(&dir).map_err(|e| AuditError::io("syncing the audit directory", e))?;
        }
        let size = cut_torn_tail(&mut file)
            .map_err(|e| AuditError::io(format!("checking {}", path.display()), e))?;
        let first_time_ms = first_time(&file);
        let rotated = list_rotated(&dir)
            .map_err(|e| AuditError::io(format!("listing {}", dir.display()), e))?;
        let next_seq = rotated.iter().map(|r| r.seq).max().map_or(1, |s| s + 1);
        info!(dir = %dir.display(), bytes = size, rotated = rotated.len(), "audit log open");
        let w = Writer {
            dir,
            file,
            size,
            first_time_ms,
            next_seq,
            max_file_bytes,
            max_files,
        };
        w.prune()
            .map_err(|e| AuditError::io("deleting old audit files", e))?;
        Ok(w)
    }

    /// Appends the records (rotating as needed); returns how many were written.
    fn append(&mut self, records: Vec<AuditRecord>, sync: bool) -> Result<usize, AuditError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut written = 0;
        for rec in records {
            let line = match rec.to_line() {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "audit record skipped");
                    continue;
                }
            };
            let pending = self.size + buf.len() as u64;
            if pending > 0 && pending + line.len() as u64 > self.max_file_bytes {
                self.write(&buf)?;
                buf.clear();
                self.rotate()?;
            }
            if self.first_time_ms.is_none() {
                self.first_time_ms = Some(rec.time_ms);
            }
            buf.extend_from_slice(&line);
            written += 1;
        }
        self.write(&buf)?;
        if sync {
            self.sync()
                .map_err(|e| AuditError::io("syncing current.jsonl", e))?;
        }
        Ok(written)
    }

    /// Appends whole lines; on failure cuts the file back so no torn line stays behind.
    fn write(&mut self, buf: &[u8]) -> Result<(), AuditError> {
        if buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(buf) {
            if let Err(cut) = self.file.set_len(self.size) {
                error!(error = %cut, "cutting a failed audit write back failed");
            }
            return Err(AuditError::io("appending to current.jsonl", e));
        }
        self.size += buf.len() as u64;
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Renames the full current file to `audit-<first_time_ms>-<seq>.jsonl` and starts a
    /// new one; then deletes the oldest rotated files beyond the limit.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |e| AuditError::io(what, e)
        };
        self.sync().map_err(io("syncing current.jsonl"))?;
        let first = self.first_time_ms.unwrap_or_else(now_ms);
        let name = format!("audit-{first}-{}.jsonl", self.next_seq);
        let current = self.dir.join(CURRENT);
        fs::rename(&current, self.dir.join(&name)).map_err(io("rotating current.jsonl"))?;
        self.next_seq += 1;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&current)
            .map_err(io("creating current.jsonl"))?;
        self.size = 0;
        self.first_time_ms = None;
        sync_dir(&self.dir).map_err(io("syncing the audit directory"))?;
        debug!(file = %name, "audit log rotated");
        self.prune().map_err(io("deleting old audit files"))
    }

    fn prune(&self) -> io::Result<()> {
        let rotated = list_rotated(&self.dir)?;
        if rotated.len() <= self.max_files {
            return Ok(());
        }
        let excess = rotated.len() - self.max_files;
        for old in rotated.iter().take(excess) {
            match fs::remove_file(&old.path) {
                Ok(()) => debug!(file = %old.path.display(), "old audit file deleted"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        sync_dir(&self.dir)
    }
}

/// Cuts anything after the last newline (a line torn by a crash mid-write); returns the
/// file's length afterwards.
fn cut_torn_tail(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    let keep = loop {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    if keep < len {
        warn!(
            torn_bytes = len - keep,
            "audit log: cutting a torn last line (a crash mid-write); earlier records are intact"
        );
        file.set_len(keep)?;
        file.sync_data()?;
    }
    Ok(keep)
}

/// The time of the file's first record, if it has a readable one.
fn first_time(file: &File) -> Option<u64> {
    let mut reader = BufReader::new(file.try_clone().ok()?);
    reader.seek(SeekFrom::Start(0)).ok()?;
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).ok()?;
    serde_json::from_slice::<AuditRecord>(&line)
        .ok()
        .map(|r| r.time_ms)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
