//! Where quarantined entries are kept: `<data_dir>/quarantine/<id>/{body,meta.json}`, outside
//! every tier, so no scope can address them; only the admin endpoints read them. A put is
//! atomic: both files are written and synced in `.tmp-<random>/`, which is then renamed to
//! `<id>/` (and the directory synced), so an item is whole or absent after a crash.

use std::io;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tiercache_core::{ContentHash, ContentHasher};
use tokio::io::AsyncWriteExt;

use crate::body::Body;
use crate::error::StoreError;

/// The body's file name inside an item's directory.
const BODY: &str = "body";
/// The metadata's file name inside an item's directory.
const META: &str = "meta.json";
/// Bodies up to this size are answered from memory; larger ones stream from the file.
const INLINE: u64 = 4 * 1024 * 1024;

/// One rule's finding in a quarantined entry: where and which rule, never the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingView {
    /// The rule's id, e.g. `aws-access-key-id`, `email-address`, `user-id-reference`.
    pub rule: String,
    /// The file: the entry's name, or `name!path/in/archive`.
    pub path: String,
    /// 1-based line; 0 when the whole file is the finding.
    pub line: u32,
    /// `rule at path:line`: safe to log and audit.
    pub reason: String,
}

impl From<&tiercache_scan::Finding> for FindingView {
    fn from(f: &tiercache_scan::Finding) -> Self {
        FindingView {
            rule: f.rule.to_owned(),
            path: f.path.clone(),
            line: f.line,
            reason: f.reason(),
        }
    }
}

/// What is kept about a quarantined entry (its `meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineItem {
    /// The item's id: `<time_ms>-<8 hex>`.
    pub id: String,
    /// The entry's key as it was: `<scope>/<kind>/<name>`.
    pub key: String,
    /// The entry's scope (`global`, `template/<id>`).
    pub scope: String,
    /// BLAKE3 of the body (hex).
    pub hash: String,
    /// Body length in bytes.
    pub size: u64,
    /// The entry's media type, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// When it was quarantined, in milliseconds since the Unix epoch.
    pub quarantined_ms: u64,
    /// Who ran the scan (an admin's id, or `leakage-scan` for the periodic job).
    pub by: String,
    /// The tier the scanned copy came from (`l2`, `l3`).
    pub tier: String,
    /// Why: every finding.
    pub findings: Vec<FindingView>,
}

/// The quarantine directory.
#[derive(Debug, Clone)]
pub(crate) struct QuarantineDir {
    root: PathBuf,
}

/// Whether `id` is one of ours (`<digits>-<hex>`), so it can never name another path.
pub fn valid_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((t, r)) => {
            (1..=20).contains(&t.len())
                && t.bytes().all(|b| b.is_ascii_digit())
                && (1..=32).contains(&r.len())
                && r.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        None => false,
    }
}

/// A fresh item id for a quarantine at `time_ms`.
pub(crate) fn new_id(time_ms: u64) -> String {
    format!("{time_ms}-{:08x}", rand::random::<u32>())
}

fn io_ctx(what: String) -> impl FnOnce(io::Error) -> StoreError {
    move |e| StoreError::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
}

impl QuarantineDir {
    /// The quarantine under `root` (created on first use).
    pub fn new(root: PathBuf) -> Self {
        QuarantineDir { root }
    }

    /// Keeps `body` as `item`; the bytes must hash to `expected` (the scanned content), or
    /// nothing is kept and `Ok(false)` says the entry changed meanwhile.
    pub async fn put(
        &self,
        item: &QuarantineItem,
        body: Body,
        expected: ContentHash,
    ) -> Result<bool, StoreError> {
        if !valid_id(&item.id) {
            return Err(StoreError::Config(format!(
                "bad quarantine id {:?}",
                item.id
            )));
        }
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(io_ctx(format!("creating {}", self.root.display())))?;
        let tmp = self
            .root
            .join(format!(".tmp-{:016x}", rand::random::<u64>()));
        let result = self.write(&tmp, item, body, expected).await;
        if !matches!(result, Ok(true)) {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
        }
        result
    }

    async fn write(
        &self,
        tmp: &Path,
        item: &QuarantineItem,
        body: Body,
        expected: ContentHash,
    ) -> Result<bool, StoreError> {
        tokio::fs::create_dir(tmp)
            .await
            .map_err(io_ctx(format!("creating {}", tmp.display())))?;
        let mut file = tokio::fs::File::create(tmp.join(BODY)).await?;
        let mut hasher = ContentHasher::new();
        let mut stream = body.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(StoreError::Body)?;
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if hasher.finish() != expected {
            return Ok(false);
        }
        file.sync_all().await?;
        drop(file);
        let meta = serde_json::to_vec_pretty(item)?;
        let mut file = tokio::fs::File::create(tmp.join(META)).await?;
        file.write_all(&meta).await?;
        file.sync_all().await?;
        drop(file);
        let (tmp, dest, root) = (tmp.to_owned(), self.root.join(&item.id), self.root.clone());
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            sync_dir(&tmp)?;
            std::fs::rename(&tmp, &dest)?;
            sync_dir(&root)
        })
        .await?
        .map_err(io_ctx("committing a quarantined entry".into()))?;
        Ok(true)
    }

    /// Every item, oldest first; unreadable or half-written directories are skipped.
    pub async fn list(&self) -> Result<Vec<QuarantineItem>, StoreError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(io_ctx(format!("listing {}", root.display()))(e)),
            };
            let mut items = Vec::new();
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let Some(id) = name.to_str().filter(|n| valid_id(n)) else {
                    continue;
                };
                if let Some(item) = read_meta(&root, id) {
                    items.push(item);
                }
            }
            items.sort_by(|a, b| (a.quarantined_ms, &a.id).cmp(&(b.quarantined_ms, &b.id)));
            Ok(items)
        })
        .await?
    }

    /// The item `id` and its body, if it exists.
    pub async fn get(&self, id: &str) -> Result<Option<(QuarantineItem, Body)>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let (root, id_owned) = (self.root.clone(), id.to_owned());
        let Some(item) = tokio::task::spawn_blocking(move || read_meta(&root, &id_owned)).await?
        else {
            return Ok(None);
        };
        let path = self.root.join(id).join(BODY);
        let body = if item.size <= INLINE {
            Body::Bytes(tokio::fs::read(&path).await?.into())
        } else {
            let file = tokio::fs::File::open(&path).await?;
            Body::Stream(Box::pin(tokio_util::io::ReaderStream::new(file)))
        };
        Ok(Some((item, body)))
    }
}

fn read_meta(root: &Path, id: &str) -> Option<QuarantineItem> {
    let bytes = std::fs::read(root.join(id).join(META)).ok()?;
    serde_json::from_slice::<QuarantineItem>(&bytes)
        .ok()
        .filter(|item| item.id == id)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_digits_dash_hex_only() {
        assert!(valid_id(&new_id(1_700_000_000_000)));
        for bad in [
            "", "..", "1-", "-ab", "1-../x", "1-AB", "x-ab", "1/2-ab", "1-ab/c",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
