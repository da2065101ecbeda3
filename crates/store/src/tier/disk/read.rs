//! The L2 read path: look up, lease the blob, verify its bytes, and only then answer.
//!
//! Small blobs are read whole and verified in memory. Large ones are verified in a first
//! streaming pass (skipped if the file is unchanged since it was last verified or written)
//! and then served in a pass that hashes again and ends the stream in an error if the bytes
//! changed, so corrupt bytes never reach a client as a complete response.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use redb::ReadableDatabase;
use tiercache_core::{ContentHash, ContentHasher};
use tracing::warn;

use super::Inner;
use super::blobs::{Lease, Stamp};
use super::index::{ENTRIES, Record};
use crate::body::{Body, Hit};
use crate::clock::now_ms;
use crate::error::StoreError;
use crate::stats::TierName;

/// Chunk size of streamed reads.
const CHUNK: usize = 1024 * 1024;

impl Inner {
    pub(super) fn read(self: &Arc<Self>, key: &str) -> Result<Option<Hit>, StoreError> {
        self.read_as(key, true)
    }

    /// Like [`Inner::read`]; with `touch` false the read leaves the LRU order alone (a
    /// background scan is no use of the entry).
    pub(super) fn read_as(
        self: &Arc<Self>,
        key: &str,
        touch: bool,
    ) -> Result<Option<Hit>, StoreError> {
        let Some(record) = self.lookup(key)? else {
            return Ok(None);
        };
        if record.is_expired(self.ttl.of_key(key), now_ms()) {
            self.stats.expired(1);
            self.remove_keys(&[key.to_owned()])?;
            return Ok(None);
        }
        let hash = record.meta.hash;
        let lease = self.dir.lease(hash);
        let mut file = match File::open(self.dir.path(&hash)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                warn!(key, %hash, "index points at a missing blob: entry dropped");
                self.remove_keys(&[key.to_owned()])?;
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let size = record.meta.size;
        let body = if size <= self.inline_read_bytes {
            let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            file.read_to_end(&mut buf)?;
            if buf.len() as u64 != size || ContentHash::of(&buf) != hash {
                self.quarantine(key, &hash)?;
                return Ok(None);
            }
            Body::Bytes(Bytes::from(buf))
        } else {
            // A blob verified since it last changed is not read twice; the served pass
            // below still verifies every byte.
            let stamp = Stamp::of(&file.metadata()?);
            if !self.dir.was_verified(&hash, &stamp) {
                if !verify_file(&mut file, size, &hash)? {
                    self.quarantine(key, &hash)?;
                    return Ok(None);
                }
                self.dir.mark_verified(hash, stamp);
                file.seek(SeekFrom::Start(0))?;
            }
            self.verified_stream(key, file, record.meta.size, hash, lease)
        };
        if touch {
            self.touch(key);
        }
        Ok(Some(Hit {
            meta: record.meta,
            body,
            tier: TierName::L2,
        }))
    }

    fn lookup(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = match txn.open_table(ENTRIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match table.get(key)? {
            Some(raw) => Ok(Some(Record::decode(raw.value())?)),
            None => Ok(None),
        }
    }

    /// Streams `file`, hashing every byte again as it goes; if the bytes do not match, the
    /// stream ends in an error instead of its last chunk and the blob is removed. Each chunk
    /// is read and hashed on a blocking thread while the one before is being sent, so disk,
    /// hash and socket overlap.
    fn verified_stream(
        self: &Arc<Self>,
        key: &str,
        file: File,
        size: u64,
        hash: ContentHash,
        lease: Lease,
    ) -> Body {
        let state = ServeState {
            next: Some(read_next(Reader {
                file,
                hasher: ContentHasher::new(),
            })),
            held: None,
            inner: self.clone(),
            key: key.to_owned(),
            size,
            hash,
            _lease: lease,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            loop {
                let next = st.next.take()?;
                let (reader, read) = match next.await {
                    Ok(step) => step,
                    Err(e) => return Some((Err(io::Error::other(e)), st)),
                };
                match read {
                    Err(e) => return Some((Err(e), st)),
                    Ok(Some(chunk)) => {
                        if reader.hasher.len() > st.size {
                            return Some((Err(st.fail().await), st));
                        }
                        st.next = Some(read_next(reader));
                        // One chunk is always held back, so the last is sent only once
                        // every byte has been verified.
                        if let Some(ready) = st.held.replace(chunk) {
                            return Some((Ok(ready), st));
                        }
                    }
                    Ok(None) => {
                        let intact =
                            reader.hasher.len() == st.size && reader.hasher.finish() == st.hash;
                        if !intact {
                            return Some((Err(st.fail().await), st));
                        }
                        return st.held.take().map(|last| (Ok(last), st));
                    }
                }
            }
        });
        Body::Stream(Box::pin(stream))
    }
}

/// The file being served and the hash of what was read so far.
struct Reader {
    file: File,
    hasher: ContentHasher,
}

/// What one blocking read gives back: the reader, and the next chunk (`None` at the end).
type Step = (Reader, io::Result<Option<Bytes>>);

/// Reads and hashes the next chunk on a blocking thread.
fn read_next(mut reader: Reader) -> tokio::task::JoinHandle<Step> {
    tokio::task::spawn_blocking(move || {
        // Fill the chunk (a short read is not the end of the file), into spare capacity:
        // nothing is zeroed first.
        let mut buf = Vec::with_capacity(CHUNK);
        if let Err(e) = (&mut reader.file).take(CHUNK as u64).read_to_end(&mut buf) {
            return (reader, Err(e));
        }
        if buf.is_empty() {
            return (reader, Ok(None));
        }
        reader.hasher.update(&buf);
        (reader, Ok(Some(Bytes::from(buf))))
    })
}

/// The served pass over a large blob.
struct ServeState {
    next: Option<tokio::task::JoinHandle<Step>>,
    held: Option<Bytes>,
    inner: Arc<Inner>,
    key: String,
    size: u64,
    hash: ContentHash,
    _lease: Lease,
}

impl ServeState {
    async fn fail(&mut self) -> io::Error {
        self.next = None;
        self.held = None;
        let (inner, key, hash) = (self.inner.clone(), self.key.clone(), self.hash);
        let _ = tokio::task::spawn_blocking(move || inner.quarantine(&key, &hash)).await;
        io::Error::new(
            io::ErrorKind::InvalidData,
            "blob changed on disk while being served",
        )
    }
}

/// Hashes the whole file without buffering it; true if it is `size` bytes hashing to `hash`.
fn verify_file(file: &mut File, size: u64, hash: &ContentHash) -> io::Result<bool> {
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if hasher.len() > size {
            return Ok(false);
        }
    }
    Ok(hasher.len() == size && hasher.finish() == *hash)
}
