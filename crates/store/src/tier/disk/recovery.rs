//! Start-up recovery: whatever a crash left behind, the store that opens is consistent.
//!
//! - temporary files (writes that never finished) are removed;
//! - index rows that point at missing or wrong-sized blob files are dropped;
//! - reference counts are recounted from the entries;
//! - blob files the index does not know (a crash between rename and commit) are removed.

use std::collections::HashMap;
use std::fs;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tiercache_core::{ContentHash, Ttl};
use tracing::warn;

use super::blobs::{BlobDir, TEMP_SUFFIX};
use super::index::{Record, Tables};
use crate::error::StoreError;

/// What recovery found and did.
#[derive(Debug, Default)]
pub(super) struct RecoveryReport {
    pub entries: u64,
    pub used_bytes: u64,
    pub temp_removed: u64,
    pub rows_dropped: u64,
    pub orphans_removed: u64,
}

pub(super) fn recover(
    db: &Database,
    dir: &BlobDir,
    ttl: Ttl,
) -> Result<RecoveryReport, StoreError> {
    let mut report = RecoveryReport::default();
    for item in fs::read_dir(dir.tmp_dir())? {
        let path = item?.path();
        if path.is_file() {
            fs::remove_file(&path)?;
            report.temp_removed += 1;
        }
    }

    let txn = db.begin_write()?;
    {
        let mut tables = Tables::open(&txn, ttl)?;
        // Which blobs exist, whole, on disk.
        let mut blob_ok: HashMap<ContentHash, (u64, bool)> = HashMap::new();
        for item in tables.blobs.iter()? {
            let (h, v) = item?;
            let hash = ContentHash::from(*h.value());
            let (size, _) = v.value();
            let ok = fs::metadata(dir.path(&hash)).is_ok_and(|m| m.len() == size);
            blob_ok.insert(hash, (size, ok));
        }
        // Entries: keep those whose blob is whole; count references.
        let mut refs: HashMap<ContentHash, u64> = HashMap::new();
        let mut drop_keys = Vec::new();
        for item in tables.entries.iter()? {
            let (k, v) = item?;
            match Record::decode(v.value()) {
                Ok(r) if blob_ok.get(&r.meta.hash).is_some_and(|(_, ok)| *ok) => {
                    *refs.entry(r.meta.hash).or_insert(0) += 1;
                }
                Ok(_) => drop_keys.push(k.value().to_owned()),
                Err(_) => drop_keys.push(k.value().to_owned()),
            }
        }
        for k in &drop_keys {
            if tables.remove(k).is_err() {
                // An undecodable record: remove its row directly; its order rows are
                // unreachable and harmless (eviction skips keys without an entry).
                tables.entries.remove(k.as_str())?;
            }
        }
        report.rows_dropped = drop_keys.len() as u64;
        // Blob rows: recount, and drop the unreferenced or broken ones (file too).
        for (hash, (size, ok)) in &blob_ok {
            let n = refs.get(hash).copied().unwrap_or(0);
            if n == 0 || !ok {
                tables.forget_blob(hash)?;
                let _ = dir.unlink(hash);
            } else {
                tables.blobs.insert(hash.as_bytes(), (*size, n))?;
                report.used_bytes += size;
            }
        }
        // Per-kind usage, recounted from the entries that survived.
        tables.kinds.retain(|_, _| false)?;
        let mut sizes = Vec::new();
        for item in tables.entries.iter()? {
            let (k, v) = item?;
            if let Ok(r) = Record::decode(v.value()) {
                sizes.push((k.value().to_owned(), r.meta.size));
            }
        }
        for (k, size) in sizes {
            tables.count_kind(&k, size, true)?;
        }
        report.entries = tables.entries.len()?;
    }
    txn.commit()?;

    // Files the index does not know: leftovers of a crash between rename and commit.
    let known = |hash: &ContentHash| -> Result<bool, StoreError> {
        let txn = db.begin_read()?;
        let t = txn.open_table(super::index::BLOBS)?;
        Ok(t.get(hash.as_bytes())?.is_some())
    };
    for shard in fs::read_dir(dir.blobs_dir())? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for item in fs::read_dir(&shard)? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let keep = match name.parse::<ContentHash>() {
                Ok(hash) => known(&hash)?,
                Err(_) => !name.ends_with(TEMP_SUFFIX),
            };
            if !keep {
                warn!(file = %path.display(), "removing a blob file the index does not know");
                fs::remove_file(&path)?;
                report.orphans_removed += 1;
            }
        }
    }
    Ok(report)
}
