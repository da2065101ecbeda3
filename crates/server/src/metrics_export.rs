//! `/metrics`: the store's counters, copied into the Prometheus recorder at each scrape.
//!
//! Names start with `tiercache_`; each carries a `tier` label (`l1`, `l2`, `l3`, `origin`).
//! The L3 upload queue publishes its own `tiercache_l3_*` series as it works.

use metrics::{counter, gauge};
use tiercache_store::{StatsSnapshot, TierName, TieredStore};

use crate::npm::NpmFrontend;

/// Publishes the npm front-end's request counters (`kind="npm"`).
pub fn publish_npm(npm: &NpmFrontend) {
    for (route, outcome, n) in npm.stats().counts() {
        let route = route.as_str();
        counter!("tiercache_requests_total", "kind" => "npm", "route" => route, "result" => outcome.as_str())
            .absolute(n);
    }
}

/// Publishes the current counters and usage of every tier to the recorder.
pub async fn publish(store: &TieredStore) {
    publish_counters(TierName::L1, store.l1().stats().snapshot());
    publish_counters(TierName::L2, store.l2().stats().snapshot());
    publish_counters(TierName::Origin, store.origin_stats().snapshot());
    if let Some(l3) = store.l3() {
        publish_counters(TierName::L3, l3.stats().snapshot());
    }
    let (l1_entries, l1_bytes) = store.l1().usage().await;
    set_usage(
        TierName::L1,
        l1_entries,
        l1_bytes,
        store.l1().budget_bytes(),
    );
    let l2 = store.l2().usage();
    set_usage(TierName::L2, l2.entries, l2.bytes, l2.budget_bytes);
}

fn publish_counters(tier: TierName, s: StatsSnapshot) {
    let t = tier.as_str();
    counter!("tiercache_hits_total", "tier" => t).absolute(s.hits);
    counter!("tiercache_misses_total", "tier" => t).absolute(s.misses);
    counter!("tiercache_read_bytes_total", "tier" => t).absolute(s.bytes_read);
    counter!("tiercache_written_bytes_total", "tier" => t).absolute(s.bytes_written);
    counter!("tiercache_writes_total", "tier" => t).absolute(s.writes);
    counter!("tiercache_evictions_total", "tier" => t).absolute(s.evictions);
    counter!("tiercache_expired_total", "tier" => t).absolute(s.expired);
    counter!("tiercache_corrupt_reads_total", "tier" => t).absolute(s.corrupt);
    counter!("tiercache_errors_total", "tier" => t).absolute(s.errors);
}

fn set_usage(tier: TierName, entries: u64, bytes: u64, budget: u64) {
    let t = tier.as_str();
    gauge!("tiercache_entries", "tier" => t).set(entries as f64);
    gauge!("tiercache_used_bytes", "tier" => t).set(bytes as f64);
    gauge!("tiercache_budget_bytes", "tier" => t).set(budget as f64);
}
