//! `tiercache build ls`: the artifacts a server holds, from `/admin/build/artifacts`, as
//! a table (newest first) or the server's JSON.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use bytesize::ByteSize;
use serde::Deserialize;

use super::args::LsArgs;

/// One artifact as the server lists it; missing fields read as zero.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Artifact {
    /// `global`, `template/<T>` or `user/<U>` (older servers: absent, read as empty).
    pub scope: String,
    pub team: String,
    pub hash: String,
    pub size: u64,
    pub created_ms: u64,
    pub duration_ms: u64,
    pub hits: u64,
    pub signed: bool,
}

/// The listing's envelope.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Listing {
    pub artifacts: Vec<Artifact>,
}

/// Runs `tiercache build ls`.
pub fn run(args: LsArgs) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    let body = runtime.block_on(super::remote::list(
        &args.server,
        args.team.as_deref(),
        args.token.as_deref(),
    ))?;
    if args.json {
        let text = String::from_utf8_lossy(&body);
        return crate::stdout::print(&format!("{}\n", text.trim_end()));
    }
    let listing: Listing =
        serde_json::from_slice(&body).context("the server did not answer with the listing JSON")?;
    crate::stdout::print(&render(listing))
}

/// A task time: `850ms`, `12.3s`, `4m 05s`, `1h 02m`.
pub fn duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// A creation time in UTC: `2026-11-24 16:39:22`.
pub fn created(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

/// The table, newest first.
pub fn render(mut listing: Listing) -> String {
    if listing.artifacts.is_empty() {
        return "no artifacts\n".to_owned();
    }
    listing
        .artifacts
        .sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(a.hash.cmp(&b.hash)));
    let rows: Vec<[String; 7]> = listing
        .artifacts
        .iter()
        .map(|a| {
            [
                a.hash.clone(),
                a.team.clone(),
                ByteSize(a.size).to_string(),
                created(a.created_ms),
                duration(a.duration_ms),
                a.hits.to_string(),
                a.scope.clone(),
            ]
        })
        .collect();
    let head = [
        "HASH",
        "TEAM",
        "SIZE",
        "CREATED (UTC)",
        "DURATION",
        "HITS",
        "SCOPE",
    ];
    // Text columns to the left, numbers to the right.
    let right = [false, false, true, false, true, true, false];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 7]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((c, w), r)| {
                if r {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut out, head);
    for r in &rows {
        line(&mut out, [&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]);
    }
    let total: u64 = listing.artifacts.iter().map(|a| a.size).sum();
    let _ = writeln!(
        out,
        "{} artifacts, {}",
        listing.artifacts.len(),
        ByteSize(total)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_newest_first_and_readable() {
        let listing: Listing = serde_json::from_str(
            r#"{"artifacts":[
              {"scope":"user/alice","team":"acme","hash":"aa37dd4d8b1d3f88","size":237,"created_ms":1795538362236,"duration_ms":488,"hits":0,"signed":false},
              {"scope":"global","team":"web","hash":"0f","size":3145728,"created_ms":1795538400000,"duration_ms":125000,"hits":12,"signed":true}
            ]}"#,
        )
        .unwrap();
        let want = "\
HASH              TEAM     SIZE  CREATED (UTC)        DURATION  HITS  SCOPE
0f                web   3.0 MiB  2026-11-24 16:40:00    2m 05s    12  global
aa37dd4d8b1d3f88  acme    237 B  2026-11-24 16:39:22     488ms     0  user/alice
2 artifacts, 3.0 MiB
";
        assert_eq!(render(listing), want);
        assert_eq!(render(Listing::default()), "no artifacts\n");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(3_720_000), "1h 02m");
    }
}
