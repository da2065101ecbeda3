//! Listing entries by key prefix, for operators (`build ls`) and background scans — never
//! on a request's hot path.

use redb::ReadableDatabase;
use tiercache_core::EntryMeta;

use super::Inner;
use super::index::{ENTRIES, Record};
use crate::clock::now_ms;
use crate::error::StoreError;

impl Inner {
    /// Up to `limit` live entries whose key text starts with `prefix`, in key order.
    pub(super) fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, EntryMeta)>, StoreError> {
        self.list_after(prefix, None, limit)
    }

    /// Up to `limit` live entries whose key text starts with `prefix` and sorts after
    /// `after` (exclusive), in key order: one page of a scan that resumes where it stopped.
    pub(super) fn list_after(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, EntryMeta)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let now = now_ms();
        let start = after.filter(|a| *a >= prefix).unwrap_or(prefix);
        let mut out = Vec::new();
        for item in table.range(start..)? {
            let (k, v) = item?;
            let key = k.value();
            if Some(key) == after {
                continue;
            }
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let record = Record::decode(v.value())?;
            if !record.is_expired(self.ttl.of_key(key), now) {
                out.push((key.to_owned(), record.meta));
            }
        }
        Ok(out)
    }

    /// The distinct ids of the scopes of one type (`prefix` = `user/` or `template/`) that
    /// hold at least one entry; skips from one id's keys to the next id's without reading them.
    pub(super) fn scope_ids(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let mut ids = Vec::new();
        let mut start = prefix.to_owned();
        loop {
            let Some(item) = table.range(start.as_str()..)?.next() else {
                break;
            };
            let (k, _) = item?;
            let key = k.value();
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            let Some((id, _)) = rest.split_once('/') else {
                break;
            };
            ids.push(id.to_owned());
            // '0' sorts right after '/': the first key of the next id.
            start = format!("{prefix}{id}0");
        }
        Ok(ids)
    }
}
