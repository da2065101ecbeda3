//! Listing entries by key prefix, for operators (`build ls`) — never on a request's hot path.

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
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENTRIES)?;
        let now = now_ms();
        let mut out = Vec::new();
        for item in table.range(prefix..)? {
            let (k, v) = item?;
            let key = k.value();
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            let record = Record::decode(v.value())?;
            if !record.is_expired(self.ttl, now) {
                out.push((key.to_owned(), record.meta));
            }
        }
        Ok(out)
    }
}
