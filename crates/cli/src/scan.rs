//! `tiercache scan PATH... [--json]`: the sensitive-content detector (the one the server runs
//! before anything reaches a shared scope) over files, directories and archives.
//!
//! Output on stdout, one finding per line: `path:line: rule (redacted)`, or with `--json` one
//! object per line (`path`, `rule`, `line`, `column`, `reason`, `redacted`). Never the secret.
//! Exit status, as grep's: 0 clean, 1 something found, 2 when a path could not be scanned
//! (missing, unreadable, corrupt archive, over a size limit) — even if something was found.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tiercache_scan::{Finding, ScanReport, Scanner};

/// Exit status when something was found.
const FOUND: u8 = 1;
/// Exit status when something could not be scanned (clap uses 2 for usage errors too).
const ERROR: u8 = 2;

/// Flags of `tiercache scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files, directories (walked, symlinks not followed) or archives (tar, tar.gz/tgz, tar.zst).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON object per finding per line: path, rule, line, column, reason, redacted.
    #[arg(long)]
    pub json: bool,
}

/// Runs the scan; every outcome is an exit status (errors are reported here, as status 2).
pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    match scan(&args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("tiercache: {e:#}");
            Ok(ExitCode::from(ERROR))
        }
    }
}

fn scan(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let scanner = Scanner::new().context("compiling the detector's rules")?;
    let mut total = ScanReport::default();
    let mut errors = 0usize;
    for path in &args.paths {
        match scanner.scan_path(path) {
            Ok(report) => {
                print_findings(&report.findings, args.json)?;
                for s in &report.skipped {
                    eprintln!("tiercache: {}: not scanned: {}", s.path, s.reason);
                }
                total.findings.extend(report.findings);
                total.skipped.extend(report.skipped);
                total.files += report.files;
                total.bytes += report.bytes;
            }
            Err(e) => {
                eprintln!("tiercache: {e}");
                errors += 1;
            }
        }
    }
    let flagged: std::collections::BTreeSet<&str> =
        total.findings.iter().map(|f| f.path.as_str()).collect();
    eprintln!(
        "tiercache: {} finding(s) in {} of {} file(s) scanned ({} bytes){}",
        total.findings.len(),
        flagged.len(),
        total.files,
        total.bytes,
        match errors + total.skipped.len() {
            0 => String::new(),
            n => format!(", {n} not scanned"),
        }
    );
    Ok(if errors > 0 || !total.skipped.is_empty() {
        ExitCode::from(ERROR)
    } else if !total.findings.is_empty() {
        ExitCode::from(FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_findings(findings: &[Finding], json: bool) -> anyhow::Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let mut out = String::new();
    for f in findings {
        if json {
            let obj = serde_json::json!({
                "path": f.path,
                "rule": f.rule,
                "line": f.line,
                "column": f.column,
                "reason": f.reason(),
                "redacted": f.redacted,
            });
            out.push_str(&obj.to_string());
        } else {
            out.push_str(&f.to_string());
        }
        out.push('\n');
    }
    crate::stdout::print(&out)
}
