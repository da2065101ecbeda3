//! Build-cache counters: uploads, hits and misses, the events turbo reports, the time its
//! hits saved, and hits per artifact (node-local, since start; with a fleet, the totals are
//! also added up fleet-wide in Redis).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tiercache_store::Fleet;

/// The counters.
#[derive(Default)]
pub struct BuildStats {
    uploads: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Milliseconds of task time that remote hits saved (from artifacts' durations).
    time_saved_ms: AtomicU64,
    /// Events turbo reported: (source, event) → count.
    events: Mutex<HashMap<(String, String), u64>>,
    per_artifact: Mutex<HashMap<String, u64>>,
    fleet: Option<Fleet>,
}

/// A copy of the counters.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildReport {
    pub uploads: u64,
    pub hits: u64,
    pub misses: u64,
    pub time_saved_ms: u64,
    pub events: HashMap<String, u64>,
}

impl BuildStats {
    /// Counters that also count fleet-wide when a fleet is given.
    pub fn new(fleet: Option<Fleet>) -> Self {
        BuildStats {
            fleet,
            ..BuildStats::default()
        }
    }

    fn fleet_count(&self, field: &str, n: u64) {
        if let Some(f) = &self.fleet {
            f.count(field, n);
        }
    }

    /// An artifact stored.
    pub fn upload(&self) {
        self.uploads.fetch_add(1, Relaxed);
        self.fleet_count("build:uploads", 1);
    }

    /// An artifact served; `duration_ms` is the task time it saves.
    pub fn hit(&self, artifact: &str, duration_ms: u64) {
        self.hits.fetch_add(1, Relaxed);
        self.time_saved_ms.fetch_add(duration_ms, Relaxed);
        self.fleet_count("build:hits", 1);
        self.fleet_count("build:time_saved_ms", duration_ms);
        if let Ok(mut m) = self.per_artifact.lock() {
            *m.entry(artifact.to_owned()).or_insert(0) += 1;
        }
    }

    /// An artifact asked for and absent.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
        self.fleet_count("build:misses", 1);
    }

    /// An event turbo reported (`LOCAL`/`REMOTE`, `HIT`/`MISS`).
    pub fn event(&self, source: &str, event: &str) {
        if let Ok(mut m) = self.events.lock() {
            *m.entry((source.to_owned(), event.to_owned())).or_insert(0) += 1;
        }
    }

    /// How many times `artifact` was served since start.
    pub fn hits_of(&self, artifact: &str) -> u64 {
        self.per_artifact
            .lock()
            .map(|m| m.get(artifact).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The counters now.
    pub fn report(&self) -> BuildReport {
        let events = self
            .events
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((s, e), n)| (format!("{s}_{e}").to_ascii_lowercase(), *n))
                    .collect()
            })
            .unwrap_or_default();
        BuildReport {
            uploads: self.uploads.load(Relaxed),
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            time_saved_ms: self.time_saved_ms.load(Relaxed),
            events,
        }
    }
}
