//! Sensitive-content detection: finds credentials and sensitive files in bytes, files,
//! directories and tar/tgz/zstd archives, so that nothing carrying a secret reaches a
//! shared (template or global) cache scope.
//!
//! Precise rather than broad: keywords are only a prefilter; findings come from formats with
//! distinctive prefixes, private-key PEM blocks with a real body, signed JWTs, secret-named
//! variables holding random-looking values, and sensitive paths. Placeholders, vendors'
//! published examples, lockfile integrity hashes, data: URIs, source maps and test fixtures
//! are allowlisted (see [`allow`]). A [`Finding`] never contains the secret.
//!
//! Synchronous and CPU-bound: async callers use `spawn_blocking`.
//!
//! ```
//! let scanner = tiercache_scan::Scanner::new()?;
//! let findings = scanner.scan_bytes("config.json", br#"{"port": 8080}"#);
//! assert!(findings.is_empty());
//! # Ok::<(), tiercache_scan::ScanError>(())
//! ```

#![warn(missing_docs)]

pub mod allow;
pub mod archive;
pub mod entropy;
pub mod finding;
pub mod leak;
mod lines;
pub mod paths;
pub mod rules;
pub mod shapes;
mod text;

use std::io::Read;
use std::path::Path;

pub use archive::ArchiveKind;
pub use finding::Finding;
pub use leak::LeakageRules;

/// Why a scan could not complete; a caller must treat the content as not cleared.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Reading a file or stream failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or stream.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An archive is corrupt or truncated (bad gzip/zstd data, bad tar header).
    #[error("{path}: unreadable archive: {reason}")]
    Archive {
        /// The archive (or entry) that could not be read.
        path: String,
        /// What the decoder said.
        reason: String,
    },
    /// The input is over a [`Limits`] bound: the rest was not scanned.
    #[error("{path}: more than {limit} {what}: scan stopped")]
    TooLarge {
        /// Where the limit was crossed.
        path: String,
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
    },
    /// A rule in the table does not compile (a bug in this crate).
    #[error("rule {rule}: {reason}")]
    Rule {
        /// The rule's id.
        rule: &'static str,
        /// The compiler's message.
        reason: String,
    },
}

/// A file or entry that was not scanned, and why: part of the report so that nothing is
/// passed silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file or archive entry.
    pub path: String,
    /// Why it was not scanned (size limit, nesting depth, unreadable nested archive, I/O).
    pub reason: String,
}

/// The outcome of scanning a file, a directory or an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Every finding, in walk order (files sorted by name within a directory).
    pub findings: Vec<Finding>,
    /// Files or entries that were not scanned.
    pub skipped: Vec<Skipped>,
    /// Files (and archive entries) scanned.
    pub files: u64,
    /// Bytes scanned (uncompressed).
    pub bytes: u64,
}

impl ScanReport {
    /// Whether the content may go to a shared scope: no finding and nothing skipped.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.skipped.is_empty()
    }
}

/// Bounds on what one scan reads, so that a hostile archive costs bounded memory and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file or archive entry scanned (it is held in memory); larger ones are
    /// reported as skipped.
    pub max_file_bytes: u64,
    /// Uncompressed bytes one scan reads in total before it stops with [`ScanError::TooLarge`].
    pub max_total_bytes: u64,
    /// Archive entries one scan reads before it stops.
    pub max_entries: u64,
    /// How deep archives inside archives are walked.
    pub max_depth: u32,
}

impl Default for Limits {
    /// 64 MiB per file, 4 GiB in total, a million entries, archives nested 3 deep.
    fn default() -> Self {
        Self {
            max_file_bytes: 64 << 20,
            max_total_bytes: 4 << 30,
            max_entries: 1_000_000,
            max_depth: 3,
        }
    }
}

/// The detector: the rule table compiled once; cheap to share (`&Scanner` across threads).
#[derive(Debug)]
pub struct Scanner {
    compiled: text::Compiled,
    limits: Limits,
    /// The opt-in leakage rules (emails, user ids); `None` for secrets only.
    leakage: Option<leak::Compiled>,
}

impl Scanner {
    /// Compiles the rules with the default [`Limits`].
    pub fn new() -> Result<Self, ScanError> {
        Self::with_limits(Limits::default())
    }

    /// Compiles the rules with the given limits.
    pub fn with_limits(limits: Limits) -> Result<Self, ScanError> {
        Ok(Self {
            compiled: text::Compiled::new()?,
            limits,
            leakage: None,
        })
    }

    /// The same scanner, also reporting personal data by the leakage `rules` (see [`leak`]):
    /// for scanning what already sits in a shared scope. Screening on write does not use them.
    pub fn with_leakage(mut self, rules: &LeakageRules) -> Result<Self, ScanError> {
        self.leakage = Some(leak::Compiled::new(rules)?);
        Ok(self)
    }

    /// The limits this scanner applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Scans one file's contents (not unpacking archives); `path` drives the path rules and
    /// appears in the findings.
    pub fn scan_bytes(&self, path: &str, bytes: &[u8]) -> Vec<Finding> {
        let mut findings = text::scan(&self.compiled, path, path, bytes);
        if let Some(leakage) = &self.leakage
            && !text::is_binary(bytes)
        {
            findings.extend(leak::scan(leakage, path, path, bytes));
        }
        findings
    }

    /// Scans a stream: an archive (detected by magic bytes, then name) is walked entry by
    /// entry, anything else is read up to the per-file limit and scanned as one file.
    pub fn scan_reader(&self, path: &str, reader: impl Read) -> Result<ScanReport, ScanError> {
        let mut walk = archive::Walk::new(&self.compiled, &self.limits, self.leakage.as_ref());
        walk.reader(path, reader, 0)?;
        Ok(walk.report)
    }

    /// Walks an archive of a known kind from a stream; entries are reported as
    /// `name!entry/path`.
    pub fn scan_archive(
        &self,
        name: &str,
        reader: impl Read,
        kind: ArchiveKind,
    ) -> Result<ScanReport, ScanError> {
        let mut walk = archive::Walk::new(&self.compiled, &self.limits, self.leakage.as_ref());
        walk.archive(name, reader, kind, 0)?;
        Ok(walk.report)
    }

    /// Scans a file (archive or not) or a directory tree (symlinks are not followed; files
    /// in sorted order). A file that cannot be read is reported as skipped; a missing `path`
    /// is an error.
    pub fn scan_path(&self, path: &Path) -> Result<ScanReport, ScanError> {
        let mut walk = archive::Walk::new(&self.compiled, &self.limits, self.leakage.as_ref());
        let meta = std::fs::symlink_metadata(path).map_err(|source| ScanError::Io {
            path: path.display().to_string(),
            source,
        })?;
        // Rules judge paths below the root: `/tmp/test/app/.env` is `.env` under `/tmp/test/app`.
        let base = if meta.is_dir() {
            Some(path)
        } else {
            path.parent()
        };
        walk.rel_offset = base
            .map(|b| b.display().to_string())
            .filter(|b| !b.is_empty())
            .map_or(0, |b| b.trim_end_matches('/').len() + 1);
        if !meta.is_dir() {
            self.scan_file(&mut walk, path)?;
            return Ok(walk.report);
        }
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_file() => self.scan_file(&mut walk, e.path())?,
                Ok(_) => {}
                Err(e) => walk.report.skipped.push(Skipped {
                    path: e
                        .path()
                        .map_or_else(|| path.display().to_string(), |p| p.display().to_string()),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(walk.report)
    }

    fn scan_file(&self, walk: &mut archive::Walk<'_>, path: &Path) -> Result<(), ScanError> {
        let shown = path.display().to_string();
        match std::fs::File::open(path) {
            Ok(file) => match walk.reader(&shown, std::io::BufReader::new(file), 0) {
                Err(ScanError::Io { source, .. }) => {
                    walk.report.skipped.push(Skipped {
                        path: shown,
                        reason: source.to_string(),
                    });
                    Ok(())
                }
                Err(ScanError::Archive { path, reason }) => {
                    walk.report.skipped.push(Skipped {
                        path,
                        reason: format!("unreadable archive: {reason}"),
                    });
                    Ok(())
                }
                other => other,
            },
            Err(e) => {
                walk.report.skipped.push(Skipped {
                    path: shown,
                    reason: e.to_string(),
                });
                Ok(())
            }
        }
    }
}
