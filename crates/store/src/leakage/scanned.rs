//! What the leakage scan found clean: entry key → (content hash, rules fingerprint), in a
//! small redb database (`<data_dir>/leakage/scanned.redb`), so a periodic run does not read
//! unchanged entries again. A changed body (new hash) or changed rules (new fingerprint, e.g.
//! a new user id to look for) make an entry due again. Only clean verdicts are kept: what was
//! quarantined or could not be scanned is looked at again next time.

use std::collections::HashSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tiercache_core::ContentHash;

use crate::error::StoreError;

/// Key text → 32 bytes of content hash, then 32 bytes of rules fingerprint.
const SCANNED: TableDefinition<&str, &[u8]> = TableDefinition::new("scanned");

/// The remembered verdicts; blocking (call from a blocking thread).
pub(crate) struct Scanned {
    db: Database,
}

fn row(hash: &ContentHash, rules: &[u8; 32]) -> [u8; 64] {
    let mut v = [0u8; 64];
    v[..32].copy_from_slice(hash.as_bytes());
    v[32..].copy_from_slice(rules);
    v
}

impl Scanned {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(SCANNED)?;
        txn.commit()?;
        Ok(Scanned { db })
    }

    /// Which of `items` were found clean before, at the same hash and under the same rules.
    pub fn clean(
        &self,
        items: &[(String, ContentHash)],
        rules: &[u8; 32],
    ) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SCANNED)?;
        items
            .iter()
            .map(|(key, hash)| {
                Ok(table
                    .get(key.as_str())?
                    .is_some_and(|v| v.value() == row(hash, rules).as_slice()))
            })
            .collect()
    }

    /// Remembers `items` as clean under `rules`, in one transaction.
    pub fn remember(
        &self,
        items: &[(String, ContentHash)],
        rules: &[u8; 32],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(SCANNED)?;
            for (key, hash) in items {
                table.insert(key.as_str(), row(hash, rules).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Forgets every key not in `seen` (entries gone since), after a complete run.
    pub fn prune(&self, seen: &HashSet<String>) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let removed;
        {
            let mut table = txn.open_table(SCANNED)?;
            let mut gone = Vec::new();
            for item in table.iter()? {
                let (k, _) = item?;
                if !seen.contains(k.value()) {
                    gone.push(k.value().to_owned());
                }
            }
            for k in &gone {
                table.remove(k.as_str())?;
            }
            removed = gone.len() as u64;
        }
        txn.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_hold_for_the_same_hash_and_rules_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = Scanned::open(&dir.path().join("l/scanned.redb")).unwrap();
        let (h1, h2) = (ContentHash::of(b"1"), ContentHash::of(b"2"));
        let (r1, r2) = ([1u8; 32], [2u8; 32]);
        s.remember(&[("global/object/a".into(), h1)], &r1).unwrap();
        let q = |k: &str, h| (k.to_owned(), h);
        assert_eq!(
            s.clean(
                &[
                    q("global/object/a", h1),
                    q("global/object/a", h2),
                    q("global/object/b", h1)
                ],
                &r1
            )
            .unwrap(),
            [true, false, false]
        );
        assert_eq!(s.clean(&[q("global/object/a", h1)], &r2).unwrap(), [false]);
        let seen = HashSet::from(["global/object/b".to_owned()]);
        assert_eq!(s.prune(&seen).unwrap(), 1);
        assert_eq!(s.clean(&[q("global/object/a", h1)], &r1).unwrap(), [false]);
    }
}
