//! Where things live in the bucket, under the configured prefix:
//!
//! - `{prefix}/blobs/{hh}/{hash}`: bodies, named by the BLAKE3 hex of their bytes
//!   (`hh` = its first two digits), so identical bytes are stored once for every key;
//! - `{prefix}/entries/{scope}/{kind}/{name}`: one small JSON document per key
//!   (`{"key": …, "meta": …}`), pointing at its blob by hash;
//! - `{prefix}/probe`: never written; a HEAD of it tells whether S3 answers.
//!
//! Key parts are restricted to path-safe characters by `tiercache-core`, so a key's text
//! form is its path, unescaped.

use object_store::path::Path;
use tiercache_core::{CacheKey, ContentHash, EntryMeta};

use super::error::L3Error;

/// The paths of blobs and entries under one prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    blobs: Path,
    entries: Path,
    probe: Path,
}

/// The JSON document stored for each key.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct EntryDoc {
    /// The key's text form, checked on read so a misplaced document is never served.
    pub key: String,
    /// The entry's metadata, including the hash that names its blob.
    pub meta: EntryMeta,
}

impl Layout {
    /// The layout under `prefix` (leading and trailing `/` ignored; empty = bucket root).
    pub fn new(prefix: &str) -> Result<Self, L3Error> {
        let root = Path::parse(prefix.trim_matches('/'))
            .map_err(|e| L3Error::Config(format!("bad prefix {prefix:?}: {e}")))?;
        Ok(Layout {
            blobs: root.clone().push("blobs"),
            entries: root.clone().push("entries"),
            probe: root.push("probe"),
        })
    }

    /// Where the blob with this hash lives.
    pub fn blob(&self, hash: &ContentHash) -> Path {
        let hex = hash.to_hex();
        self.blobs.clone().push(&hex[..2]).push(&hex)
    }

    /// Where the entry document of `key` lives.
    pub fn entry(&self, key: &CacheKey) -> Path {
        // Valid keys only hold path-safe characters, so each part is kept as it is.
        let mut path = self.entries.clone();
        for part in key.to_string().split('/') {
            path = path.push(part);
        }
        path
    }

    /// The folder every blob is under.
    pub fn blobs_root(&self) -> &Path {
        &self.blobs
    }

    /// The folder every entry document is under.
    pub fn entries_root(&self) -> &Path {
        &self.entries
    }

    /// A path that is never written: its HEAD answering 404 proves S3 is up.
    pub fn probe(&self) -> &Path {
        &self.probe
    }

    /// The hash a blob path names, if it is one of ours.
    pub fn blob_hash(&self, path: &Path) -> Option<ContentHash> {
        let mut rest = path.prefix_match(&self.blobs)?;
        let shard = rest.next()?;
        let name = rest.next()?;
        if rest.next().is_some() {
            return None;
        }
        let hash: ContentHash = name.as_ref().parse().ok()?;
        (hash.to_hex()[..2] == *shard.as_ref()).then_some(hash)
    }

    /// The key an entry path stands for, if it is one of ours.
    pub fn entry_key(&self, path: &Path) -> Option<CacheKey> {
        let parts: Vec<String> = path
            .prefix_match(&self.entries)?
            .map(|p| p.as_ref().to_owned())
            .collect();
        CacheKey::parse_path(&parts.join("/")).ok()
    }
}

/// Extends paths without the percent-encoding of `Path::join` (which would turn a key's
/// `~` into `%7E`), so the bucket shows keys as they are.
trait Push {
    fn push(self, part: &str) -> Path;
}

impl Push for Path {
    fn push(self, part: &str) -> Path {
        let joined = if self.as_ref().is_empty() {
            part.to_owned()
        } else {
            format!("{}/{part}", self.as_ref())
        };
        // Parts come from validated keys, hex hashes and fixed names; parsing only fails
        // on `/`, `.`/`..` or control characters, none of which they hold.
        Path::parse(&joined).unwrap_or_else(|_| self.join(part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let l = Layout::new("/cache/x/").unwrap();
        let h = ContentHash::of(b"abc");
        let p = l.blob(&h);
        assert_eq!(
            p.as_ref(),
            format!("cache/x/blobs/{}/{h}", &h.to_hex()[..2])
        );
        assert_eq!(l.blob_hash(&p), Some(h));
        let key = CacheKey::parse_path("user/u-1/object/a.b_c-d+e@f=g~h,i").unwrap();
        let p = l.entry(&key);
        assert_eq!(
            p.as_ref(),
            "cache/x/entries/user/u-1/object/a.b_c-d+e@f=g~h,i"
        );
        assert_eq!(l.entry_key(&p), Some(key));
        let g = CacheKey::parse_path("global/npm/react").unwrap();
        assert_eq!(l.entry_key(&l.entry(&g)), Some(g));
        assert_eq!(
            l.blob_hash(&l.entry(&CacheKey::parse_path("global/a/b").unwrap())),
            None
        );
        assert_eq!(Layout::new("").unwrap().probe().as_ref(), "probe");
    }
}
