//! `tiercache stats`: what a running server holds and how well it serves, from
//! `GET /admin/stats`, as a short summary (or the raw JSON with `--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use bytesize::ByteSize;
use serde::Deserialize;

use crate::cli::StatsArgs;
use crate::http;

/// The parts of `/admin/stats` the summary shows; anything missing reads as zero.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub hit_rate: f64,
    pub tiers: Tiers,
    pub kinds: BTreeMap<String, KindUsage>,
    /// Absent when the server runs without an npm upstream.
    pub npm: Option<NpmStats>,
    /// The whole fleet's numbers; absent when the server has no Redis.
    pub fleet: Option<FleetStats>,
}

/// What every node of a fleet counted together (from Redis).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FleetStats {
    pub hit_rate: f64,
    pub tiers: BTreeMap<String, TierStats>,
    pub misses: u64,
    pub origin_fetches: u64,
    pub build: FleetBuild,
    pub top_packages: Vec<TopPackage>,
    /// Set when Redis could not be read.
    pub error: Option<String>,
}

/// The fleet's build-cache numbers.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FleetBuild {
    pub hits: u64,
    pub time_saved_ms: u64,
}

/// Per tier counters.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Tiers {
    pub l1: TierStats,
    pub l2: TierStats,
    pub l3: Option<TierStats>,
    pub origin: TierStats,
}

/// One tier's hits and misses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    pub hit_rate: f64,
}

/// What one kind of entry takes on disk.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KindUsage {
    pub entries: u64,
    pub bytes: u64,
}

/// The npm proxy's numbers.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NpmStats {
    pub packages: u64,
    pub tarballs: u64,
    pub bytes: u64,
    pub hit_rate: f64,
    /// Route (`packuments`, `tarballs`) to outcome to count.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub top_packages: Vec<TopPackage>,
    pub origin_down: bool,
}

/// One of the most requested packages.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TopPackage {
    pub name: String,
    pub hits: u64,
}

/// Runs `tiercache stats`.
pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let base = http::server_base(&args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let body = runtime.block_on(fetch(&base, args.token.as_deref()))?;
    if args.json {
        let text = String::from_utf8_lossy(&body);
        return crate::stdout::print(&format!("{}\n", text.trim_end()));
    }
    let stats: Stats = serde_json::from_slice(&body)
        .with_context(|| format!("{base}/admin/stats did not answer with the stats JSON"))?;
    crate::stdout::print(&render(&stats))
}

async fn fetch(base: &str, token: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let url = format!("{base}/admin/stats");
    let client = http::client_with_token(Duration::from_secs(30), token)?;
    let what = format!("cannot read stats from {url}");
    Ok(http::send(client.get(&url), &what).await?.to_vec())
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The readable summary: packages, bytes, hit rates overall and per tier, top packages.
pub fn render(s: &Stats) -> String {
    let mut out = String::new();
    let (entries, bytes) = s
        .kinds
        .values()
        .fold((0, 0), |(e, b), k| (e + k.entries, b + k.bytes));
    match &s.npm {
        Some(npm) => {
            let _ = writeln!(
                out,
                "packages   {} ({} tarballs)",
                npm.packages, npm.tarballs
            );
            let _ = writeln!(
                out,
                "bytes      {} npm, {} in all ({entries} entries)",
                ByteSize(npm.bytes),
                ByteSize(bytes)
            );
        }
        None => {
            let _ = writeln!(out, "packages   none (the npm proxy is not configured)");
            let _ = writeln!(out, "bytes      {} ({entries} entries)", ByteSize(bytes));
        }
    }
    let _ = writeln!(out, "hit rate   {} overall", percent(s.hit_rate));
    let mut tiers = vec![("l1", &s.tiers.l1), ("l2", &s.tiers.l2)];
    if let Some(l3) = &s.tiers.l3 {
        tiers.push(("l3", l3));
    }
    for (name, t) in tiers {
        let _ = writeln!(
            out,
            "  {name}       {:>6}  ({} hits, {} misses)",
            percent(t.hit_rate),
            t.hits,
            t.misses
        );
    }
    if let Some(npm) = &s.npm {
        let requests: u64 = npm.requests.values().flat_map(|m| m.values()).sum();
        let origin = if npm.origin_down {
            "origin DOWN"
        } else {
            "origin up"
        };
        let _ = writeln!(
            out,
            "  npm      {:>6}  ({requests} requests; {origin})",
            percent(npm.hit_rate)
        );
        if s.fleet.is_none() {
            top_packages(&mut out, &npm.top_packages);
        }
    }
    if let Some(fleet) = &s.fleet {
        render_fleet(&mut out, fleet);
    }
    out
}

/// The fleet's block: its hit rate, hits per tier, origin fetches, build time saved and the
/// fleet's top packages.
fn render_fleet(out: &mut String, f: &FleetStats) {
    if let Some(e) = &f.error {
        let _ = writeln!(out, "fleet      unavailable ({e})");
        return;
    }
    let hits: Vec<String> = f
        .tiers
        .iter()
        .map(|(name, t)| format!("{name} {}", t.hits))
        .collect();
    let _ = writeln!(
        out,
        "fleet      {} hit rate across every node (hits: {}; {} misses, {} origin fetches)",
        percent(f.hit_rate),
        hits.join(", "),
        f.misses,
        f.origin_fetches
    );
    let _ = writeln!(
        out,
        "  build    {} hits saved {}",
        f.build.hits,
        humantime::format_duration(Duration::from_secs(f.build.time_saved_ms / 1000))
    );
    top_packages(out, &f.top_packages);
}

fn top_packages(out: &mut String, top: &[TopPackage]) {
    if top.is_empty() {
        let _ = writeln!(out, "top packages: none yet");
        return;
    }
    let _ = writeln!(out, "top packages by hits");
    let width = top
        .iter()
        .take(10)
        .map(|p| p.hits.to_string().len())
        .max()
        .unwrap_or(1);
    for p in top.iter().take(10) {
        let _ = writeln!(out, "  {:>width$}  {}", p.hits, p.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "hit_rate": 0.875,
      "tiers": {
        "l1": {"hits": 30, "misses": 10, "hit_rate": 0.75, "bytes_read": 1, "evictions": 0},
        "l2": {"hits": 5, "misses": 5, "hit_rate": 0.5},
        "origin": {"hits": 0, "misses": 0, "hit_rate": 0.0}
      },
      "kinds": {"npm-tgz": {"entries": 3, "bytes": 3145728}, "object": {"entries": 1, "bytes": 1024}},
      "npm": {
        "packages": 2, "tarballs": 3, "bytes": 3145728, "hit_rate": 0.5,
        "requests": {"packuments": {"hit": 2, "miss": 2}, "tarballs": {"hit": 1, "miss": 3}},
        "top_packages": [{"name": "react", "hits": 12}, {"name": "@types/react", "hits": 3}],
        "origin_down": false
      }
    }"#;

    #[test]
    fn the_summary_shows_packages_bytes_rates_and_top_packages() {
        let stats: Stats = serde_json::from_str(SAMPLE).unwrap();
        let text = render(&stats);
        let want = "\
packages   2 (3 tarballs)
bytes      3.0 MiB npm, 3.0 MiB in all (4 entries)
hit rate   87.5% overall
  l1        75.0%  (30 hits, 10 misses)
  l2        50.0%  (5 hits, 5 misses)
  npm       50.0%  (8 requests; origin up)
top packages by hits
  12  react
   3  @types/react
";
        assert_eq!(text, want);
    }

    #[test]
    fn with_a_fleet_the_summary_shows_the_fleets_numbers_and_top_packages() {
        let mut stats: Stats = serde_json::from_str(SAMPLE).unwrap();
        stats.fleet = Some(
            serde_json::from_str(
                r#"{"hit_rate": 0.9, "tiers": {"l1": {"hits": 70}, "l2": {"hits": 10}, "l3": {"hits": 10}},
                    "misses": 10, "origin_fetches": 10, "build": {"hits": 4, "time_saved_ms": 125000},
                    "top_packages": [{"name": "lodash", "hits": 40}]}"#,
            )
            .unwrap(),
        );
        let text = render(&stats);
        assert!(
            text.contains("fleet      90.0% hit rate across every node (hits: l1 70, l2 10, l3 10; 10 misses, 10 origin fetches)"),
            "{text}"
        );
        assert!(text.contains("  build    4 hits saved 2m 5s"), "{text}");
        assert!(text.contains("  40  lodash"), "{text}");
        assert!(
            !text.contains("react"),
            "node-local top packages shown: {text}"
        );
    }

    #[test]
    fn a_server_without_npm_or_traffic_still_summarises() {
        let stats: Stats = serde_json::from_str(r#"{"hit_rate": 0.0, "tiers": {}}"#).unwrap();
        let text = render(&stats);
        assert!(text.contains("the npm proxy is not configured"), "{text}");
        assert!(text.contains("0.0% overall"), "{text}");
        let mut top = String::from(r#"{"npm": {"top_packages": ["#);
        for i in 0..12 {
            if i > 0 {
                top.push(',');
            }
            top.push_str(&format!(r#"{{"name": "p{i}", "hits": {}}}"#, 100 - i));
        }
        top.push_str("], \"origin_down\": true}}");
        let text = render(&serde_json::from_str(&top).unwrap());
        assert!(text.contains("origin DOWN"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.contains("  p")).count(),
            10,
            "{text}"
        );
    }
}
