//! Who uploaded which bytes under which key, per template: the evidence a promotion needs.
//! Kept in Redis when the node is part of a fleet (so users of different nodes count
//! together), else in a small redb file beside the disk tier.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::error::StoreError;
use crate::fleet::{Fleet, FleetError};

/// Why witnesses could not be read or recorded (the promotion is skipped, never the write).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("local witnesses: {0}")]
    Local(#[from] StoreError),
    #[error("fleet witnesses: {0}")]
    Fleet(#[from] FleetError),
}

/// `<template>\0<kind>/<name>\0<content hash>` → the users who uploaded exactly those bytes.
const WITNESSES: TableDefinition<&str, &[u8]> = TableDefinition::new("witnesses");

/// Users remembered per record: a promotion needs `k` of them, never hundreds.
pub const MAX_USERS: usize = 64;

/// One record: the distinct users, and when the record was last added to.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    users: Vec<String>,
    updated_ms: u64,
}

/// Where witnesses are kept.
#[derive(Clone)]
pub enum Witnesses {
    /// This node alone: a redb file.
    Local(Arc<Database>),
    /// The fleet's Redis.
    Fleet(Fleet),
}

/// The name of one witness record.
pub fn record_name(template: &str, entry: &str, hash: &str) -> String {
    format!("{template}\0{entry}\0{hash}")
}

impl Witnesses {
    /// Local witnesses in `<dir>/witnesses.redb`.
    pub async fn open_local(dir: &Path) -> Result<Witnesses, StoreError> {
        let path = dir.join("witnesses.redb");
        let db = tokio::task::spawn_blocking(move || -> Result<Database, StoreError> {
            let db = Database::create(path)?;
            let txn = db.begin_write()?;
            txn.open_table(WITNESSES)?;
            txn.commit()?;
            Ok(db)
        })
        .await??;
        Ok(Witnesses::Local(Arc::new(db)))
    }

    /// Records that `user` uploaded the bytes of record `name`; answers the distinct users
    /// known for it (up to [`MAX_USERS`]). Records unchanged for `window` are forgotten.
    pub async fn add(
        &self,
        name: &str,
        user: &str,
        window: Duration,
    ) -> Result<Vec<String>, WitnessError> {
        match self {
            Witnesses::Fleet(fleet) => {
                let set = format!("promo:{}", name.replace('\0', ":"));
                Ok(fleet.set_add(&set, user, window, MAX_USERS).await?)
            }
            Witnesses::Local(db) => {
                let (db, name, user) = (db.clone(), name.to_owned(), user.to_owned());
                let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                let added =
                    tokio::task::spawn_blocking(move || add_local(&db, &name, &user, window_ms))
                        .await
                        .map_err(StoreError::from);
                Ok(added??)
            }
        }
    }

    /// Forgets local records unchanged for `window` (Redis expires its own).
    pub async fn sweep(&self, window: Duration) -> Result<usize, WitnessError> {
        let Witnesses::Local(db) = self else {
            return Ok(0);
        };
        let db = db.clone();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let swept = tokio::task::spawn_blocking(move || sweep_local(&db, window_ms))
            .await
            .map_err(StoreError::from);
        Ok(swept??)
    }
}

fn add_local(
    db: &Database,
    name: &str,
    user: &str,
    window_ms: u64,
) -> Result<Vec<String>, StoreError> {
    let now = now_ms();
    let txn = db.begin_write()?;
    let users = {
        let mut table = txn.open_table(WITNESSES)?;
        let mut record: Record = match table.get(name)? {
            Some(v) => serde_json::from_slice(v.value()).unwrap_or_default(),
            None => Record::default(),
        };
        if now.saturating_sub(record.updated_ms) > window_ms {
            record.users.clear();
        }
        if !record.users.iter().any(|u| u == user) && record.users.len() < MAX_USERS {
            record.users.push(user.to_owned());
        }
        record.updated_ms = now;
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Index(e.to_string()))?;
        table.insert(name, bytes.as_slice())?;
        record.users
    };
    txn.commit()?;
    Ok(users)
}

fn sweep_local(db: &Database, window_ms: u64) -> Result<usize, StoreError> {
    let now = now_ms();
    let stale: Vec<String> = {
        let txn = db.begin_read()?;
        let table = txn.open_table(WITNESSES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let updated = serde_json::from_slice::<Record>(v.value())
                .map(|r| r.updated_ms)
                .unwrap_or(0);
            if now.saturating_sub(updated) > window_ms {
                out.push(k.value().to_owned());
            }
        }
        out
    };
    if stale.is_empty() {
        return Ok(0);
    }
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(WITNESSES)?;
        for k in &stale {
            table.remove(k.as_str())?;
        }
    }
    txn.commit()?;
    Ok(stale.len())
}
