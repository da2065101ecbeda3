//! `tiercache scan-shared [--server URL] [--token T] [--dry-run] [--json]`: asks a running
//! server (`POST /admin/scan-shared`, an admin token) to scan its template and global scopes
//! for secrets, email addresses and user-id references, and to quarantine what it finds.
//!
//! Output on stdout, one finding per line: `key: path:line: rule` and what became of the
//! entry (or, with `--json`, the server's report as it is). Never the matched text. Exit
//! status, as `tiercache scan`'s: 0 clean, 1 something found, 2 when the scan could not be
//! run or part of it failed (an entry could not be scanned, a listing failed).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use serde::Deserialize;

use crate::http;

/// Exit status when something was found.
const FOUND: u8 = 1;
/// Exit status when something could not be scanned or the scan failed.
const ERROR: u8 = 2;
/// How long a scan may take before the command gives up waiting (the server finishes it).
const TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Flags of `tiercache scan-shared`.
#[derive(Args, Debug)]
pub struct ScanSharedArgs {
    /// The tiercache server to scan.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = http::DEFAULT_SERVER)]
    pub server: String,
    /// An admin token (not needed in single-user mode).
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Report only: quarantine nothing, remove nothing, remember nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the server's JSON report instead of one line per finding.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Deserialize)]
struct Report {
    dry_run: bool,
    scanned: u64,
    skipped: u64,
    quarantined: u64,
    #[serde(default)]
    entries: Vec<Entry>,
    #[serde(default)]
    unscannable: Vec<Unscannable>,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    key: String,
    quarantine_id: Option<String>,
    error: Option<String>,
    findings: Vec<Finding>,
}

#[derive(Debug, Deserialize)]
struct Finding {
    rule: String,
    path: String,
    line: u32,
}

#[derive(Debug, Deserialize)]
struct Unscannable {
    key: String,
    reason: String,
}

/// Runs the command; every outcome is an exit status (errors are reported here, as 2).
pub fn run(args: ScanSharedArgs) -> anyhow::Result<ExitCode> {
    match scan(&args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("tiercache: {e:#}");
            Ok(ExitCode::from(ERROR))
        }
    }
}

fn scan(args: &ScanSharedArgs) -> anyhow::Result<ExitCode> {
    let base = http::server_base(&args.server)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = runtime.block_on(request(&base, args))?;
    let report: Report = serde_json::from_slice(&body)
        .map_err(|e| anyhow!("{base}/admin/scan-shared: not a scan report ({e})"))?;
    if args.json {
        let mut text = String::from_utf8_lossy(&body).into_owned();
        text.push('\n');
        crate::stdout::print(&text)?;
    } else {
        crate::stdout::print(&render(&report))?;
    }
    for u in &report.unscannable {
        eprintln!("tiercache: {}: not scanned: {}", u.key, u.reason);
    }
    for e in &report.errors {
        eprintln!("tiercache: {e}");
    }
    let findings: usize = report.entries.iter().map(|e| e.findings.len()).sum();
    eprintln!(
        "tiercache: {findings} finding(s) in {} of {} entr{} scanned ({} unchanged since an earlier scan); {}",
        report.entries.len(),
        report.scanned,
        if report.scanned == 1 { "y" } else { "ies" },
        report.skipped,
        if report.dry_run {
            "dry run: nothing quarantined".to_owned()
        } else {
            format!("{} quarantined", report.quarantined)
        }
    );
    let failed = !report.unscannable.is_empty()
        || !report.errors.is_empty()
        || report.entries.iter().any(|e| e.error.is_some());
    Ok(if failed {
        ExitCode::from(ERROR)
    } else if findings > 0 {
        ExitCode::from(FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

async fn request(base: &str, args: &ScanSharedArgs) -> anyhow::Result<Vec<u8>> {
    let url = format!("{base}/admin/scan-shared?dry_run={}", args.dry_run);
    let client = http::client_with_token(TIMEOUT, args.token.as_deref())?;
    let what = format!("cannot scan the shared scopes of {base}");
    Ok(http::send(client.post(&url), &what).await?.to_vec())
}

/// One line per finding: `key: path:line: rule` and what became of the entry.
fn render(report: &Report) -> String {
    let mut out = String::new();
    for e in &report.entries {
        let fate = match (&e.quarantine_id, &e.error) {
            (_, Some(err)) => format!("not quarantined: {err}"),
            (Some(id), None) => format!("quarantined as {id}"),
            (None, None) => "dry run: left in place".to_owned(),
        };
        for f in &e.findings {
            let _ = writeln!(out, "{}: {}:{}: {} ({fate})", e.key, f.path, f.line, f.rule);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_render_one_per_line_with_their_fate() {
        let report: Report = serde_json::from_value(serde_json::json!({
            "dry_run": false, "scanned": 3, "skipped": 1, "quarantined": 1,
            "entries": [{
                "key": "template/t1/object/cfg", "tier": "l2", "hash": "ab", "size": 9,
                "quarantine_id": "17-0a0b0c0d",
                "findings": [
                    {"rule": "aws-access-key-id", "path": "cfg", "line": 3, "reason": "x"},
                    {"rule": "email-address", "path": "cfg", "line": 4, "reason": "y"}
                ]
            }]
        }))
        .unwrap();
        assert_eq!(
            render(&report),
            "template/t1/object/cfg: cfg:3: aws-access-key-id (quarantined as 17-0a0b0c0d)\n\
             template/t1/object/cfg: cfg:4: email-address (quarantined as 17-0a0b0c0d)\n"
        );
    }
}
