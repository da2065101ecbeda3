//! The opt-in leakage rules (emails, user ids) on real npm packages, the false positives
//! that matter most: a template's build output holds hundreds of them under `node_modules/`.
//!
//! - as vendored code (`node_modules/<pkg>/…`) no file may be flagged;
//! - as a template's own files (the packages' paths as they are) at most 1 % of files may be
//!   (0.2 % when written: mostly addresses in READMEs and mail libraries' examples); the
//!   flagged ones are printed (`--nocapture`) for review.
//!
//! Needs `TIERCACHE_SCAN_CORPUS` (see `accuracy.rs`); without it this test fails.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tiercache_scan::{LeakageRules, Scanner};

/// Plausible user ids of a server: none of them should occur in public packages.
const IDS: &[&str] = &[
    "alice.w",
    "jsmith",
    "u-7f3a9c21",
    "dev-user-01",
    "9b2d4c1e-7a3f-4e8b-b1c2-3d4e5f6a7b8c",
    "mkowalski",
];

fn corpus() -> Vec<PathBuf> {
    let Some(dir) = std::env::var_os("TIERCACHE_SCAN_CORPUS") else {
        panic!("TIERCACHE_SCAN_CORPUS is not set: run scripts/test.sh (see accuracy.rs)");
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tgz"))
        .collect();
    files.sort();
    assert!(files.len() >= 50, "only {} corpus tarballs", files.len());
    files
}

#[test]
fn leakage_rules_on_real_npm_packages() {
    let scanner = Scanner::new()
        .unwrap()
        .with_leakage(&LeakageRules {
            user_ids: IDS.iter().map(|s| s.to_string()).collect(),
            emails: true,
            uuid_user_ids: true,
        })
        .unwrap();
    let leak_rule = |r: &str| {
        matches!(
            r,
            tiercache_scan::leak::EMAIL
                | tiercache_scan::leak::USER_ID
                | tiercache_scan::leak::UUID_USER_ID
        )
    };
    let (mut files, mut vendored_flags) = (0u64, Vec::new());
    let mut own: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tgz in corpus() {
        let name = tgz.file_name().unwrap().to_string_lossy().into_owned();
        let as_vendored = format!("node_modules/{name}");
        let report = scanner
            .scan_reader(&as_vendored, std::fs::File::open(&tgz).unwrap())
            .unwrap();
        files += report.files;
        vendored_flags.extend(
            report
                .findings
                .iter()
                .filter(|f| leak_rule(f.rule))
                .map(|f| f.to_string()),
        );
        let report = scanner
            .scan_reader(&name, std::fs::File::open(&tgz).unwrap())
            .unwrap();
        for f in report.findings.iter().filter(|f| leak_rule(f.rule)) {
            own.entry(f.path.clone()).or_default().push(f.to_string());
        }
    }
    assert!(
        vendored_flags.is_empty(),
        "flagged in node_modules: {vendored_flags:#?}"
    );
    let rate = own.len() as f64 / files as f64;
    println!(
        "leakage rules: {} of {files} package files flagged as a template's own files ({:.3} %)",
        own.len(),
        rate * 100.0
    );
    for findings in own.values() {
        println!("  {} ({} in the file)", findings[0], findings.len());
    }
    assert!(rate <= 0.01, "{} of {files} files flagged", own.len());
}
