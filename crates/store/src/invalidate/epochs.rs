//! Version epochs: each kind and each template has a number; an entry records the numbers
//! it was written under, and is served only while they are still current. Bumping an epoch
//! retires every older entry at once, with no scan on the request path (the comparison is
//! part of every lookup); a background pass deletes them later.
//!
//! Epochs only go up. The effective epoch is the larger of the configured one and the one
//! set at run time (persisted in `<data_dir>/epochs.json`, written atomically).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use tiercache_core::{CacheKey, Scope};

use crate::error::StoreError;

/// Epochs by kind and by template; absent = 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochTable {
    #[serde(default)]
    pub kinds: BTreeMap<String, u32>,
    #[serde(default)]
    pub templates: BTreeMap<String, u32>,
}

/// What an epoch applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochOf {
    /// Every entry of a kind, in every scope.
    Kind(String),
    /// Every entry of a template's scope.
    Template(String),
}

impl EpochTable {
    fn get(&self, of: &EpochOf) -> u32 {
        match of {
            EpochOf::Kind(k) => self.kinds.get(k).copied().unwrap_or(0),
            EpochOf::Template(t) => self.templates.get(t).copied().unwrap_or(0),
        }
    }

    /// The stamp of an entry under `key` written now: kind epoch in the high half, template
    /// epoch (template scopes only) in the low half.
    pub fn stamp(&self, key: &CacheKey) -> u64 {
        // On every lookup: map reads by borrowed text, no allocation.
        let kind = self.kinds.get(key.kind().as_str()).copied().unwrap_or(0);
        let template = match key.scope() {
            Scope::Template(t) => self.templates.get(t.as_str()).copied().unwrap_or(0),
            _ => 0,
        };
        (u64::from(kind) << 32) | u64::from(template)
    }

    /// The larger of both tables, entry by entry.
    fn max(&self, other: &EpochTable) -> EpochTable {
        let mut out = self.clone();
        for (k, v) in &other.kinds {
            let e = out.kinds.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
        for (k, v) in &other.templates {
            let e = out.templates.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
        out
    }
}

/// The node's epochs: the configured floor, raised at run time.
pub struct Epochs {
    path: PathBuf,
    floor: EpochTable,
    /// Raised ones (persisted), already merged with the floor.
    current: RwLock<EpochTable>,
}

/// Why an epoch could not be set.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("epochs only go up: {of:?} is at {current}, asked for {asked}")]
    Lower {
        of: EpochOf,
        current: u32,
        asked: u32,
    },
    #[error("saving the epochs failed: {0}")]
    Save(#[from] StoreError),
}

impl Epochs {
    /// The epochs of the store in `data_dir`, at least `floor` (the configuration).
    pub fn open(data_dir: &Path, floor: EpochTable) -> Result<Epochs, StoreError> {
        let path = data_dir.join("epochs.json");
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StoreError::Config(format!("{} is not an epoch table: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => EpochTable::default(),
            Err(e) => return Err(e.into()),
        };
        let current = floor.max(&saved);
        Ok(Epochs {
            path,
            floor,
            current: RwLock::new(current),
        })
    }

    /// The epochs in force.
    pub fn snapshot(&self) -> EpochTable {
        self.current.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// The stamp an entry under `key` gets if written now, and must carry to be served.
    pub fn stamp(&self, key: &CacheKey) -> u64 {
        self.current.read().map(|t| t.stamp(key)).unwrap_or(0)
    }

    /// Raises `of` to `epoch` (persisted); `Ok(false)` if it already was there. Lowering is
    /// refused: entries retired by a bump must never come back.
    pub fn raise(&self, of: &EpochOf, epoch: u32) -> Result<bool, EpochError> {
        let mut table = self
            .current
            .write()
            .map_err(|_| StoreError::Task("the epoch table lock is poisoned".into()))?;
        let current = table.get(of);
        if epoch < current {
            return Err(EpochError::Lower {
                of: of.clone(),
                current,
                asked: epoch,
            });
        }
        if epoch == current {
            return Ok(false);
        }
        let mut next = table.clone();
        match of {
            EpochOf::Kind(k) => next.kinds.insert(k.clone(), epoch),
            EpochOf::Template(t) => next.templates.insert(t.clone(), epoch),
        };
        self.save(&next)?;
        *table = next;
        Ok(true)
    }

    /// The configured floor (for reporting).
    pub fn floor(&self) -> &EpochTable {
        &self.floor
    }

    fn save(&self, table: &EpochTable) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec_pretty(table).map_err(|e| StoreError::Index(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_kind_and_template_epochs_which_only_go_up_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut floor = EpochTable::default();
        floor.kinds.insert("npm-full".into(), 2);
        let e = Epochs::open(dir.path(), floor.clone()).unwrap();
        let npm = CacheKey::parse_path("global/npm-full/react").unwrap();
        let tpl = CacheKey::parse_path("template/vite/turbo/x").unwrap();
        assert_eq!(e.stamp(&npm), 2 << 32);
        assert_eq!(e.stamp(&tpl), 0);
        assert!(e.raise(&EpochOf::Template("vite".into()), 3).unwrap());
        assert!(!e.raise(&EpochOf::Template("vite".into()), 3).unwrap());
        assert!(e.raise(&EpochOf::Template("vite".into()), 1).is_err());
        assert_eq!(e.stamp(&tpl), 3);
        drop(e);
        let again = Epochs::open(dir.path(), floor).unwrap();
        assert_eq!(again.stamp(&tpl), 3);
        assert_eq!(again.stamp(&npm), 2 << 32);
    }
}
