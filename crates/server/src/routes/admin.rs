//! `GET /admin/stats`: what the cache holds and how well it serves (the seed's
//! `GlobalCacheStats`): per tier hits and hit rate, per kind entries and bytes, and the
//! npm proxy's packages, bytes, hit rate and top packages; with a fleet, the same numbers
//! added up across every node (from Redis) under `fleet`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};
use tiercache_store::StatsSnapshot;

use crate::error::ApiError;
use crate::state::AppState;

/// The admin routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/admin/stats", get(stats))
}

fn rate(hits: u64, misses: u64) -> f64 {
    if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    }
}

fn tier(s: StatsSnapshot) -> Value {
    json!({
        "hits": s.hits,
        "misses": s.misses,
        "hit_rate": rate(s.hits, s.misses),
        "bytes_read": s.bytes_read,
        "bytes_written": s.bytes_written,
        "evictions": s.evictions,
        "expired": s.expired,
        "corrupt": s.corrupt,
    })
}

async fn stats(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    // What the cache holds and who fetches what: for the operator (everyone, single-user).
    crate::auth::admin(&state, &headers, "/admin/stats")?;
    let store = &state.store;
    let (l1, l2) = (store.l1().stats().snapshot(), store.l2().stats().snapshot());
    let kinds = store.l2().usage_by_kind().await?;
    // A lookup reaches L1 first; it is a cache hit if any tier had it.
    let l3_hits = store.l3().map_or(0, |l3| l3.stats().snapshot().hits);
    let lookups = l1.hits + l1.misses;
    let overall = if lookups == 0 {
        0.0
    } else {
        (l1.hits + l2.hits + l3_hits) as f64 / lookups as f64
    };
    let mut body = json!({
        "hit_rate": overall,
        "tiers": {
            "l1": tier(l1),
            "l2": tier(l2),
            "origin": tier(store.origin_stats().snapshot()),
        },
        "kinds": kinds,
    });
    if let Some(l3) = store.l3() {
        body["tiers"]["l3"] = tier(l3.stats().snapshot());
    }
    let build = state.build.stats().report();
    let turbo = kinds.get(crate::build::KIND).copied().unwrap_or_default();
    body["build"] = json!({
        "artifacts": turbo.entries,
        "bytes": turbo.bytes,
        "hits": build.hits,
        "misses": build.misses,
        "uploads": build.uploads,
        "time_saved_ms": build.time_saved_ms,
        "events": build.events,
    });
    if let Some(npm) = &state.npm {
        let npm_bytes: u64 = kinds
            .iter()
            .filter(|(k, _)| k.starts_with("npm-"))
            .map(|(_, u)| u.bytes)
            .sum();
        let packages = kinds.get("npm-index").map_or(0, |u| u.entries);
        let tarballs = kinds.get("npm-tgz").map_or(0, |u| u.entries);
        let report = npm.stats().report();
        body["npm"] = json!({
            "packages": packages,
            "tarballs": tarballs,
            "bytes": npm_bytes,
            "hit_rate": report.hit_rate,
            "requests": { "packuments": report.packuments, "tarballs": report.tarballs },
            "top_packages": report.top_packages,
            "origin_down": npm.origin_down(),
        });
    }
    if let Some(fleet) = state.store.fleet() {
        body["fleet"] = fleet_report(fleet).await;
    }
    Ok(Json(body))
}

/// The fleet's numbers from Redis: hits per tier and kind, origin fetches, build time saved
/// and the most served packages. If Redis cannot be read, says so instead.
async fn fleet_report(fleet: &tiercache_store::Fleet) -> Value {
    let counters = match fleet.counters().await {
        Ok(c) => c,
        Err(e) => return json!({ "error": e.to_string(), "health": fleet.health() }),
    };
    let top = fleet
        .top(crate::npm::stats::FLEET_TOP, 10)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(name, hits)| json!({ "name": name, "hits": hits as u64 }))
        .collect::<Vec<_>>();
    let sum = |prefix: &str| -> u64 {
        counters
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| *v)
            .sum()
    };
    let mut tiers = serde_json::Map::new();
    for t in ["l1", "l2", "l3"] {
        tiers.insert(t.into(), json!({ "hits": sum(&format!("hits:{t}:")) }));
    }
    let (hits, misses) = (sum("hits:"), sum("misses:"));
    json!({
        "hit_rate": rate(hits, misses),
        "tiers": tiers,
        "misses": misses,
        "origin_fetches": sum("origin:"),
        "origin_bytes": sum("origin_bytes:"),
        "build": {
            "hits": counters.get("build:hits").copied().unwrap_or(0),
            "misses": counters.get("build:misses").copied().unwrap_or(0),
            "uploads": counters.get("build:uploads").copied().unwrap_or(0),
            "time_saved_ms": counters.get("build:time_saved_ms").copied().unwrap_or(0),
        },
        "top_packages": top,
        "counters": counters,
        "health": fleet.health(),
    })
}
