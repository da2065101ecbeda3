//! Archives, streamed: tar, gzip (tar.gz/tgz or one compressed file) and zstd (tar.zst or one
//! file), entry by entry from any `Read`, never extracted to disk. Each regular entry is read
//! into memory up to the per-file limit and scanned; nested archives are walked too, up to a
//! depth. Oversized or nested-too-deep entries are reported as skipped, never silently passed.

use std::io::{self, Cursor, Read};

use crate::leak;
use crate::text;
use crate::{Limits, ScanError, ScanReport, Skipped};

/// The outer layer of an archive, as detected from its first bytes (and its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// A plain (ustar/GNU/pax) tar stream.
    Tar,
    /// gzip: a `.tar.gz`/`.tgz` when the decompressed bytes are a tar, else one file.
    Gzip,
    /// zstd: a `.tar.zst`/`.tzst` when the decompressed bytes are a tar, else one file.
    Zstd,
}

impl ArchiveKind {
    /// Detects an archive by magic bytes (`head` = the first 512 bytes or fewer), falling back
    /// to a `.tar` name for old tars without the ustar magic.
    pub fn detect(name: &str, head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else if is_tar(head) || (name.to_ascii_lowercase().ends_with(".tar") && head.len() >= 512)
        {
            Some(Self::Tar)
        } else {
            None
        }
    }
}

/// Whether `head` starts with a ustar/GNU tar header.
fn is_tar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// Reads up to `n` bytes (fewer only at end of stream).
pub(crate) fn read_head(reader: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// One walk over a file or archive tree, accumulating findings, skips and counts.
pub(crate) struct Walk<'a> {
    pub compiled: &'a text::Compiled,
    pub limits: &'a Limits,
    /// The opt-in leakage rules, run on every text file after the secret rules.
    pub leakage: Option<&'a leak::Compiled>,
    pub report: ScanReport,
    /// Bytes of each path's start that are above the scanned root (not judged by the rules).
    pub rel_offset: usize,
    /// Uncompressed bytes seen so far (archive entries and files), against `max_total_bytes`.
    total: u64,
    entries: u64,
}

impl<'a> Walk<'a> {
    pub fn new(
        compiled: &'a text::Compiled,
        limits: &'a Limits,
        leakage: Option<&'a leak::Compiled>,
    ) -> Self {
        Self {
            compiled,
            limits,
            leakage,
            report: ScanReport::default(),
            rel_offset: 0,
            total: 0,
            entries: 0,
        }
    }

    /// Scans a stream that may or may not be an archive.
    pub fn reader(
        &mut self,
        path: &str,
        mut reader: impl Read,
        depth: u32,
    ) -> Result<(), ScanError> {
        let head = read_head(&mut reader, 512).map_err(|e| io_err(path, e))?;
        match ArchiveKind::detect(path, &head) {
            Some(kind) => self.archive(path, Cursor::new(head).chain(reader), kind, depth),
            None => {
                let bytes = self.read_limited(path, Cursor::new(head).chain(reader))?;
                if let Some(bytes) = bytes {
                    self.file(path, &bytes, depth)?;
                }
                Ok(())
            }
        }
    }

    /// Walks an archive of a known kind.
    pub fn archive(
        &mut self,
        path: &str,
        reader: impl Read,
        kind: ArchiveKind,
        depth: u32,
    ) -> Result<(), ScanError> {
        match kind {
            ArchiveKind::Tar => self.tar(path, reader, depth),
            ArchiveKind::Gzip => {
                self.decompressed(path, flate2::read::MultiGzDecoder::new(reader), depth)
            }
            ArchiveKind::Zstd => {
                let decoder =
                    zstd::stream::read::Decoder::new(reader).map_err(|e| io_err(path, e))?;
                self.decompressed(path, decoder, depth)
            }
        }
    }

    /// A decompressed stream: a tar, or a single compressed file.
    fn decompressed(
        &mut self,
        path: &str,
        mut reader: impl Read,
        depth: u32,
    ) -> Result<(), ScanError> {
        let head = read_head(&mut reader, 512).map_err(|e| archive_err(path, &e))?;
        if is_tar(&head) {
            return self.tar(path, Cursor::new(head).chain(reader), depth);
        }
        let inner = strip_compression_suffix(path);
        let bytes = self
            .read_limited(&inner, Cursor::new(head).chain(reader))
            .map_err(|e| match e {
                ScanError::Io { path, source } => ScanError::Archive {
                    path,
                    reason: source.to_string(),
                },
                other => other,
            })?;
        if let Some(bytes) = bytes {
            self.file(&inner, &bytes, depth)?;
        }
        Ok(())
    }

    fn tar(&mut self, path: &str, reader: impl Read, depth: u32) -> Result<(), ScanError> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(|e| archive_err(path, &e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| archive_err(path, &e))?;
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(ScanError::TooLarge {
                    path: path.to_string(),
                    what: "archive entries",
                    limit: self.limits.max_entries,
                });
            }
            if !entry.header().entry_type().is_file() {
                continue; // directories, links, devices: no content of their own
            }
            let entry_path = format!("{path}!{}", String::from_utf8_lossy(&entry.path_bytes()));
            let size = entry.size();
            self.count(&entry_path, size)?;
            if size > self.limits.max_file_bytes {
                self.report.skipped.push(Skipped {
                    path: entry_path,
                    reason: format!(
                        "{size} bytes, over the {} byte per-file limit: not scanned",
                        self.limits.max_file_bytes
                    ),
                });
                continue;
            }
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| archive_err(&entry_path, &e))?;
            self.file(&entry_path, &bytes, depth)?;
        }
        Ok(())
    }

    /// Scans one file's bytes, or walks them if they are a nested archive.
    pub fn file(&mut self, path: &str, bytes: &[u8], depth: u32) -> Result<(), ScanError> {
        if let Some(kind) = ArchiveKind::detect(path, &bytes[..bytes.len().min(512)]) {
            if depth >= self.limits.max_depth {
                self.report.skipped.push(Skipped {
                    path: path.to_string(),
                    reason: format!(
                        "archive nested more than {} levels deep: not scanned",
                        self.limits.max_depth
                    ),
                });
                return Ok(());
            }
            return match self.archive(path, Cursor::new(bytes), kind, depth + 1) {
                Err(e @ ScanError::TooLarge { .. }) => Err(e),
                Err(e) => {
                    self.report.skipped.push(Skipped {
                        path: path.to_string(),
                        reason: format!("unreadable nested archive: {e}"),
                    });
                    Ok(())
                }
                Ok(()) => Ok(()),
            };
        }
        let rel = path.get(self.rel_offset..).unwrap_or(path);
        self.report.files += 1;
        self.report.bytes += bytes.len() as u64;
        self.report
            .findings
            .extend(text::scan(self.compiled, path, rel, bytes));
        if let Some(leakage) = self.leakage
            && !text::is_binary(bytes)
        {
            self.report
                .findings
                .extend(leak::scan(leakage, path, rel, bytes));
        }
        Ok(())
    }

    /// Reads a whole non-archive stream, or records it as skipped when it is over the
    /// per-file limit (`Ok(None)`).
    fn read_limited(
        &mut self,
        path: &str,
        reader: impl Read,
    ) -> Result<Option<Vec<u8>>, ScanError> {
        let max = self.limits.max_file_bytes;
        let mut bytes = Vec::new();
        reader
            .take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| io_err(path, e))?;
        self.count(path, bytes.len() as u64)?;
        if bytes.len() as u64 > max {
            self.report.skipped.push(Skipped {
                path: path.to_string(),
                reason: format!("over the {max} byte per-file limit: not scanned"),
            });
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Adds `size` to the total, failing the whole scan past `max_total_bytes` (a
    /// decompression bomb, or simply more than the caller wants to pay for).
    fn count(&mut self, path: &str, size: u64) -> Result<(), ScanError> {
        self.total = self.total.saturating_add(size);
        if self.total > self.limits.max_total_bytes {
            return Err(ScanError::TooLarge {
                path: path.to_string(),
                what: "bytes in total",
                limit: self.limits.max_total_bytes,
            });
        }
        Ok(())
    }
}

/// `x.json.gz` → `x.json`; `x.zst` → `x`; anything else gets `!` to name the content.
fn strip_compression_suffix(path: &str) -> String {
    for suffix in [".gz", ".gzip", ".zst", ".zstd"] {
        if let Some(stem) = path.strip_suffix(suffix) {
            return stem.to_string();
        }
    }
    format!("{path}!")
}

fn io_err(path: &str, source: io::Error) -> ScanError {
    ScanError::Io {
        path: path.to_string(),
        source,
    }
}

fn archive_err(path: &str, e: &io::Error) -> ScanError {
    ScanError::Archive {
        path: path.to_string(),
        reason: e.to_string(),
    }
}
