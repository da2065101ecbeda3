//! The L2 index in redb: key → record, LRU order, expiry order, and blob reference counts.
//!
//! Every change that links keys to blobs happens in one write transaction here, so the
//! index is never half-updated; blob files themselves are created and unlinked by the caller.

use std::time::Duration;

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use tiercache_core::policy::tier_expired;
use tiercache_core::{ContentHash, EntryMeta, Ttl};

use crate::error::StoreError;

/// Key text → JSON [`Record`].
pub(super) const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
/// (last access ms, key) — ascending order is least recently used first.
pub(super) const ACCESS: TableDefinition<(u64, &str), ()> = TableDefinition::new("access");
/// (expiry ms, key) — ascending order is soonest to expire first.
pub(super) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// Kind → (entries, bytes of their bodies), for per-front-end usage without a scan.
pub(super) const KINDS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("kinds");
/// Blob hash → (size, number of entries referring to it).
pub(super) const BLOBS: TableDefinition<&[u8; 32], (u64, u64)> = TableDefinition::new("blobs");

/// What the index keeps per key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Record {
    pub meta: EntryMeta,
    /// When it was written to this tier.
    pub stored_ms: u64,
    /// When it was last read (approximate: flushed in batches).
    pub access_ms: u64,
}

impl Record {
    /// The moment this record stops being served under a tier TTL of `ttl`.
    pub fn expires_at(&self, ttl: Duration) -> u64 {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let tier_end = self.stored_ms.saturating_add(ttl_ms);
        self.meta.expires_ms.map_or(tier_end, |e| e.min(tier_end))
    }

    /// Whether it is expired at `now_ms`.
    pub fn is_expired(&self, ttl: Duration, now_ms: u64) -> bool {
        self.meta.is_expired(now_ms) || tier_expired(self.stored_ms, ttl, now_ms)
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        Ok(serde_json::to_vec(self)?)
    }
}

/// A blob whose last reference went away in a transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unreferenced {
    pub hash: ContentHash,
    pub size: u64,
}

/// The four tables, open in one write transaction.
pub(super) struct Tables<'t> {
    pub entries: Table<'t, &'static str, &'static [u8]>,
    pub access: Table<'t, (u64, &'static str), ()>,
    pub expiry: Table<'t, (u64, &'static str), ()>,
    pub blobs: Table<'t, &'static [u8; 32], (u64, u64)>,
    pub kinds: Table<'t, &'static str, (u64, u64)>,
    ttl: Ttl,
}

/// The kind part of a key's text (`global/<kind>/…`, `user/<id>/<kind>/…`).
pub(super) fn kind_of(key: &str) -> &str {
    let mut parts = key.split('/');
    let kind = match parts.next() {
        Some("global") => parts.next(),
        _ => parts.nth(1),
    };
    kind.unwrap_or("")
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t WriteTransaction, ttl: Ttl) -> Result<Self, StoreError> {
        Ok(Tables {
            entries: txn.open_table(ENTRIES)?,
            access: txn.open_table(ACCESS)?,
            expiry: txn.open_table(EXPIRY)?,
            blobs: txn.open_table(BLOBS)?,
            kinds: txn.open_table(KINDS)?,
            ttl,
        })
    }

    pub fn record(&self, key: &str) -> Result<Option<Record>, StoreError> {
        match self.entries.get(key)? {
            Some(v) => Ok(Some(Record::decode(v.value())?)),
            None => Ok(None),
        }
    }

    pub fn blob(&self, hash: &ContentHash) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self.blobs.get(hash.as_bytes())?.map(|v| v.value()))
    }

    /// Points `key` at `record`'s blob, replacing what it pointed at. Returns whether the
    /// blob row is new, and the previous blob if that lost its last reference.
    pub fn insert(
        &mut self,
        key: &str,
        record: &Record,
    ) -> Result<(bool, Option<Unreferenced>), StoreError> {
        // Take the new reference first, so replacing an entry by the same bytes never
        // drops the blob to zero references in between.
        let new_blob = self.add_ref(&record.meta.hash, record.meta.size)?;
        let previous = self.remove(key)?;
        self.entries.insert(key, record.encode()?.as_slice())?;
        self.access.insert((record.access_ms, key), ())?;
        self.expiry
            .insert((record.expires_at(self.ttl.of_key(key)), key), ())?;
        self.count_kind(key, record.meta.size, true)?;
        Ok((new_blob, previous.and_then(|(_, gone)| gone)))
    }

    /// Removes `key`; returns its record, and its blob if that lost its last reference.
    pub fn remove(
        &mut self,
        key: &str,
    ) -> Result<Option<(Record, Option<Unreferenced>)>, StoreError> {
        let Some(record) = self.entries.remove(key)?.map(|v| Record::decode(v.value())) else {
            return Ok(None);
        };
        let record = record?;
        self.access.remove((record.access_ms, key))?;
        self.expiry
            .remove((record.expires_at(self.ttl.of_key(key)), key))?;
        self.count_kind(key, record.meta.size, false)?;
        let gone = self.drop_ref(&record.meta.hash)?;
        Ok(Some((record, gone)))
    }

    /// Moves `key` to the most-recently-used end.
    pub fn touch(&mut self, key: &str, at_ms: u64) -> Result<(), StoreError> {
        let Some(mut record) = self.record(key)? else {
            return Ok(());
        };
        if at_ms <= record.access_ms {
            return Ok(());
        }
        self.access.remove((record.access_ms, key))?;
        record.access_ms = at_ms;
        self.access.insert((at_ms, key), ())?;
        self.entries.insert(key, record.encode()?.as_slice())?;
        Ok(())
    }

    /// Adds (or takes away) one entry of `size` bytes to its kind's usage.
    pub fn count_kind(&mut self, key: &str, size: u64, add: bool) -> Result<(), StoreError> {
        let kind = kind_of(key);
        let (n, bytes) = self.kinds.get(kind)?.map_or((0, 0), |v| v.value());
        let next = if add {
            (n + 1, bytes + size)
        } else {
            (n.saturating_sub(1), bytes.saturating_sub(size))
        };
        if next.0 == 0 {
            self.kinds.remove(kind)?;
        } else {
            self.kinds.insert(kind, next)?;
        }
        Ok(())
    }

    fn add_ref(&mut self, hash: &ContentHash, size: u64) -> Result<bool, StoreError> {
        let current = self.blob(hash)?;
        let refs = current.map_or(0, |(_, r)| r);
        self.blobs.insert(hash.as_bytes(), (size, refs + 1))?;
        Ok(current.is_none())
    }

    fn drop_ref(&mut self, hash: &ContentHash) -> Result<Option<Unreferenced>, StoreError> {
        let Some((size, refs)) = self.blob(hash)? else {
            return Ok(None);
        };
        let refs = refs.saturating_sub(1);
        self.blobs.insert(hash.as_bytes(), (size, refs))?;
        Ok((refs == 0).then_some(Unreferenced { hash: *hash, size }))
    }

    /// Removes the row of a blob nobody refers to.
    pub fn forget_blob(&mut self, hash: &ContentHash) -> Result<(), StoreError> {
        self.blobs.remove(hash.as_bytes())?;
        Ok(())
    }
}
