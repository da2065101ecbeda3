//! What a deploy is: the client's manifest (path → content hash, size, precompressed
//! variants), checked into the stored [`Manifest`] (with content types and modification
//! times the server decides), and the site's [`Pointer`] to its current deploy.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tiercache_core::ContentHash;
use tiercache_core::assets::{SitePath, content_type};

/// Most files in one deploy.
pub const MAX_FILES: usize = 100_000;
/// Largest manifest request body, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;
/// Most earlier deploys a site remembers for rollback.
pub const MAX_HISTORY: usize = 50;

/// A precompressed form of a file, negotiated by `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Brotli (stored if a client uploads it; `tiercache deploy` does not make it).
    Br,
    /// Zstandard.
    Zstd,
    /// gzip.
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
        }
    }

    /// Every encoding, most preferred first (when a client likes several equally).
    pub const PREFERENCE: [Encoding; 3] = [Encoding::Br, Encoding::Zstd, Encoding::Gzip];
}

/// Bytes stored once by content: a hash and a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// BLAKE3 of the bytes (the blob's name).
    pub hash: ContentHash,
    /// Their length.
    pub size: u64,
}

/// One file as the client describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpload {
    /// The file's bytes.
    pub hash: ContentHash,
    /// Their length.
    pub size: u64,
    /// Precompressed forms.
    #[serde(default)]
    pub variants: BTreeMap<Encoding, BlobRef>,
}

/// `POST /assets-api/{site}/deploys`: the files of a new deploy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Path in the site (`assets/app.js`) → what it holds.
    pub files: BTreeMap<String, FileUpload>,
}

/// One file of a stored deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The identity bytes.
    pub hash: ContentHash,
    /// Their length.
    pub size: u64,
    /// The media type, from the path's extension.
    pub content_type: String,
    /// When these bytes first appeared at this path (kept across deploys that do not
    /// change them, so `If-Modified-Since` survives a redeploy), ms since the epoch.
    pub modified_ms: u64,
    /// Precompressed forms.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<Encoding, BlobRef>,
}

/// A deploy as stored (`global/asset-deploy/<site>~<n>`): immutable once written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The site.
    pub site: String,
    /// Its number, from 1.
    pub deploy: u64,
    /// When it was created, ms since the epoch.
    pub created_ms: u64,
    /// Path → file.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// Every blob the deploy needs (files and variants), each once.
    pub fn blobs(&self) -> BTreeMap<ContentHash, u64> {
        let mut out = BTreeMap::new();
        for f in self.files.values() {
            out.insert(f.hash, f.size);
            for v in f.variants.values() {
                out.insert(v.hash, v.size);
            }
        }
        out
    }

    /// Bytes of the identity files.
    pub fn bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }
}

/// A site's state (`global/asset-current/<site>`): written last by an activation, so the
/// switch to a new deploy is one write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The deploy being served, if any.
    pub current: Option<u64>,
    /// Earlier current deploys, oldest first: what rollback returns to.
    #[serde(default)]
    pub previous: Vec<u64>,
    /// The number the next deploy gets.
    pub next: u64,
    /// When `current` was set, ms since the epoch.
    #[serde(default)]
    pub activated_ms: u64,
}

/// Why a manifest was refused (answered 400 with the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("a deploy needs at least one file")]
    Empty,
    #[error("a deploy has at most {MAX_FILES} files")]
    TooManyFiles,
    #[error("file {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    #[error("file {path:?}: {size} bytes is over the limit of {limit}")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("file {path:?}: a {encoding} variant of an empty file")]
    EmptyVariant {
        path: String,
        encoding: &'static str,
    },
}

/// Error messages echo at most this much of a client's path.
fn shorten(s: &str) -> String {
    s.chars().take(120).collect()
}

impl DeployRequest {
    /// Checks every path, size and count, and makes the stored manifest of deploy `deploy`.
    /// A file whose bytes are unchanged from `previous` keeps its modification time.
    pub fn into_manifest(
        self,
        site: &str,
        deploy: u64,
        now_ms: u64,
        max_size: u64,
        previous: Option<&Manifest>,
    ) -> Result<Manifest, ManifestError> {
        if self.files.is_empty() {
            return Err(ManifestError::Empty);
        }
        if self.files.len() > MAX_FILES {
            return Err(ManifestError::TooManyFiles);
        }
        let mut files = BTreeMap::new();
        for (path, f) in self.files {
            let checked = SitePath::parse(&path).map_err(|e| ManifestError::BadPath {
                path: shorten(&path),
                reason: e.to_string(),
            })?;
            let sizes = std::iter::once(f.size).chain(f.variants.values().map(|v| v.size));
            if let Some(size) = sizes.into_iter().find(|s| *s > max_size) {
                return Err(ManifestError::TooLarge {
                    path: shorten(&path),
                    size,
                    limit: max_size,
                });
            }
            if f.size == 0
                && let Some(e) = f.variants.keys().next()
            {
                return Err(ManifestError::EmptyVariant {
                    path: shorten(&path),
                    encoding: e.as_str(),
                });
            }
            let modified_ms = previous
                .and_then(|m| m.files.get(&path))
                .filter(|old| old.hash == f.hash)
                .map_or(now_ms, |old| old.modified_ms);
            let entry = FileEntry {
                hash: f.hash,
                size: f.size,
                content_type: content_type::for_name(checked.file_name()).to_owned(),
                modified_ms,
                variants: f.variants,
            };
            files.insert(path, entry);
        }
        Ok(Manifest {
            site: site.to_owned(),
            deploy,
            created_ms: now_ms,
            files,
        })
    }
}

/// The paths whose response changes from `old` to `new`: added, removed, or other bytes.
pub fn changed_paths(old: Option<&Manifest>, new: &Manifest) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let empty = BTreeMap::new();
    let old_files = old.map_or(&empty, |m| &m.files);
    for (path, f) in &new.files {
        if old_files.get(path).is_none_or(|o| o.hash != f.hash) {
            out.insert(path.clone());
        }
    }
    for path in old_files.keys() {
        if !new.files.contains_key(path) {
            out.insert(path.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(files: &[(&str, &[u8])]) -> DeployRequest {
        DeployRequest {
            files: files
                .iter()
                .map(|(p, b)| {
                    (
                        (*p).to_owned(),
                        FileUpload {
                            hash: ContentHash::of(b),
                            size: b.len() as u64,
                            variants: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn manifests_get_types_and_keep_modification_times() {
        let m1 = request(&[("index.html", b"a"), ("app.js", b"b")])
            .into_manifest("s", 1, 1000, 100, None)
            .unwrap();
        assert_eq!(
            m1.files["index.html"].content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(m1.files["app.js"].modified_ms, 1000);
        let m2 = request(&[("index.html", b"A"), ("app.js", b"b")])
            .into_manifest("s", 2, 5000, 100, Some(&m1))
            .unwrap();
        assert_eq!(m2.files["app.js"].modified_ms, 1000);
        assert_eq!(m2.files["index.html"].modified_ms, 5000);
    }

    #[test]
    fn bad_manifests_are_refused() {
        assert_eq!(
            request(&[]).into_manifest("s", 1, 0, 100, None),
            Err(ManifestError::Empty)
        );
        for bad in ["../x", "/abs", "a\\b", "a//b", "a\0"] {
            assert!(matches!(
                request(&[(bad, b"x")]).into_manifest("s", 1, 0, 100, None),
                Err(ManifestError::BadPath { .. })
            ));
        }
        assert!(matches!(
            request(&[("big", &[0u8; 101])]).into_manifest("s", 1, 0, 100, None),
            Err(ManifestError::TooLarge { .. })
        ));
    }

    #[test]
    fn changed_paths_are_added_removed_and_modified() {
        let m1 = request(&[("a", b"1"), ("b", b"2"), ("c", b"3")])
            .into_manifest("s", 1, 0, 100, None)
            .unwrap();
        let m2 = request(&[("a", b"1"), ("b", b"x"), ("d", b"4")])
            .into_manifest("s", 2, 0, 100, Some(&m1))
            .unwrap();
        let changed: Vec<_> = changed_paths(Some(&m1), &m2).into_iter().collect();
        assert_eq!(changed, ["b", "c", "d"]);
        assert_eq!(changed_paths(None, &m1).len(), 3);
    }
}
