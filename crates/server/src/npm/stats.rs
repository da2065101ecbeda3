//! npm request counters and the most requested packages, for `/admin/stats` and `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;
use tiercache_store::Fleet;

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// From the cache, fresh.
    Hit,
    /// Fetched from the origin now.
    Miss,
    /// From the cache after the origin confirmed it (304).
    Revalidated,
    /// From the cache because the origin failed.
    Stale,
    /// 304 to the client.
    NotModified,
    NotFound,
    Error,
}

impl Outcome {
    const ALL: [Outcome; 7] = [
        Outcome::Hit,
        Outcome::Miss,
        Outcome::Revalidated,
        Outcome::Stale,
        Outcome::NotModified,
        Outcome::NotFound,
        Outcome::Error,
    ];

    /// The metric label and `X-Cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Revalidated => "revalidated",
            Outcome::Stale => "stale",
            Outcome::NotModified => "not_modified",
            Outcome::NotFound => "not_found",
            Outcome::Error => "error",
        }
    }

    fn served_from_cache(self) -> bool {
        matches!(
            self,
            Outcome::Hit | Outcome::Revalidated | Outcome::Stale | Outcome::NotModified
        )
    }
}

/// Which kind of npm request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Packument,
    Tarball,
}

impl Route {
    /// Its label in metrics and fleet counters.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Packument => "packument",
            Route::Tarball => "tarball",
        }
    }
}

/// The fleet-wide ranking of packages served from the cache.
pub const FLEET_TOP: &str = "npm";

/// Counters since start (node-local; with a fleet, package hits are also ranked fleet-wide).
#[derive(Default)]
pub struct NpmStats {
    counts: [[AtomicU64; 7]; 2],
    by_package: Mutex<HashMap<String, u64>>,
    fleet: Option<Fleet>,
}

/// The numbers `/admin/stats` reports for npm.
#[derive(Debug, Serialize)]
pub struct NpmReport {
    pub packuments: HashMap<&'static str, u64>,
    pub tarballs: HashMap<&'static str, u64>,
    /// Share of requests answered without the origin's bytes.
    pub hit_rate: f64,
    pub top_packages: Vec<TopPackage>,
}

/// One of the most requested packages.
#[derive(Debug, Serialize)]
pub struct TopPackage {
    pub name: String,
    pub hits: u64,
}

impl NpmStats {
    /// Counters that also rank packages fleet-wide when a fleet is given.
    pub fn new(fleet: Option<Fleet>) -> Self {
        NpmStats {
            fleet,
            ..NpmStats::default()
        }
    }

    /// Counts one answered request for `package`.
    pub fn record(&self, route: Route, outcome: Outcome, package: &str) {
        self.counts[route as usize][Self::slot(outcome)].fetch_add(1, Relaxed);
        if let Some(f) = &self.fleet {
            f.count(&format!("npm:{}:{}", route.as_str(), outcome.as_str()), 1);
        }
        if outcome.served_from_cache() {
            if let Ok(mut m) = self.by_package.lock() {
                *m.entry(package.to_owned()).or_insert(0) += 1;
            }
            if let Some(f) = &self.fleet {
                f.zincr(FLEET_TOP, package, 1.0);
            }
        }
    }

    fn slot(outcome: Outcome) -> usize {
        Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0)
    }

    /// `(route, outcome, count)` for every combination.
    pub fn counts(&self) -> Vec<(Route, Outcome, u64)> {
        let mut out = Vec::new();
        for route in [Route::Packument, Route::Tarball] {
            for o in Outcome::ALL {
                out.push((
                    route,
                    o,
                    self.counts[route as usize][Self::slot(o)].load(Relaxed),
                ));
            }
        }
        out
    }

    /// The report for `/admin/stats`.
    pub fn report(&self) -> NpmReport {
        let mut packuments = HashMap::new();
        let mut tarballs = HashMap::new();
        let (mut cached, mut total) = (0u64, 0u64);
        for (route, o, n) in self.counts() {
            match route {
                Route::Packument => packuments.insert(o.as_str(), n),
                Route::Tarball => tarballs.insert(o.as_str(), n),
            };
            if !matches!(o, Outcome::NotFound | Outcome::Error) {
                total += n;
                if o.served_from_cache() {
                    cached += n;
                }
            }
        }
        let mut top: Vec<TopPackage> = self
            .by_package
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(name, hits)| TopPackage {
                        name: name.clone(),
                        hits: *hits,
                    })
                    .collect()
            })
            .unwrap_or_default();
        top.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.name.cmp(&b.name)));
        top.truncate(10);
        NpmReport {
            packuments,
            tarballs,
            hit_rate: if total == 0 {
                0.0
            } else {
                cached as f64 / total as f64
            },
            top_packages: top,
        }
    }
}
