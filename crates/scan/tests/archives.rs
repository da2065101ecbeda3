//! Archives, streamed entry by entry: tar, tgz, tar.zst, a lone .gz, archives inside archives,
//! and the limits (per file, in total, nesting depth) reported as skips or errors, never
//! silently passed.

mod support;

use std::io::Write as _;

use support::{ALNUM, Gen};
use tiercache_scan::{ArchiveKind, Limits, ScanError, Scanner};

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, *bytes).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn token(g: &mut Gen) -> String {
    format!("ghp_{}", g.chars(ALNUM, 36))
}

#[test]
fn tgz_zst_and_tar_entries_are_scanned_one_by_one() {
    let s = Scanner::new().unwrap();
    let mut g = Gen::new(20);
    let t = token(&mut g);
    let js = format!("module.exports = '{t}';\n");
    let tar = tar_of(&[
        ("package/package.json", b"{\"name\":\"a\"}"),
        ("package/lib/index.js", js.as_bytes()),
        ("package/.env", b"PORT=1\n"),
    ]);
    for (name, bytes) in [
        ("a.tgz", gz(&tar)),
        ("a.tar.zst", zstd::encode_all(tar.as_slice(), 1).unwrap()),
        ("a.tar", tar.clone()),
    ] {
        let r = s.scan_reader(name, bytes.as_slice()).unwrap();
        let got: Vec<(String, u32, &str)> = r
            .findings
            .iter()
            .map(|f| (f.path.clone(), f.line, f.rule))
            .collect();
        assert_eq!(
            got,
            [
                (format!("{name}!package/lib/index.js"), 1, "github-pat"),
                (format!("{name}!package/.env"), 0, "dotenv-file"),
            ],
            "{name}"
        );
        assert_eq!(r.files, 3);
        assert!(r.skipped.is_empty());
        assert!(!r.is_clean());
    }
    let r = s
        .scan_archive("b.tgz", gz(&tar).as_slice(), ArchiveKind::Gzip)
        .unwrap();
    assert_eq!(r.findings.len(), 2);
}

#[test]
fn nested_archives_and_lone_compressed_files() {
    let s = Scanner::new().unwrap();
    let mut g = Gen::new(21);
    let t = token(&mut g);
    let inner = gz(&tar_of(&[(
        "package/cfg.json",
        format!("{{\"t\":\"{t}\"}}").as_bytes(),
    )]));
    let outer = tar_of(&[("deps/inner.tgz", &inner), ("README.md", b"hello")]);
    let r = s.scan_reader("outer.tar", outer.as_slice()).unwrap();
    assert_eq!(r.findings.len(), 1);
    assert_eq!(
        r.findings[0].path,
        "outer.tar!deps/inner.tgz!package/cfg.json"
    );

    let lone = gz(format!("{{\"t\":\"{t}\"}}").as_bytes());
    let r = s.scan_reader("settings.json.gz", lone.as_slice()).unwrap();
    assert_eq!(r.findings[0].path, "settings.json");

    let deep = Scanner::with_limits(Limits {
        max_depth: 0,
        ..Limits::default()
    })
    .unwrap();
    let r = deep.scan_reader("outer.tar", outer.as_slice()).unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.skipped.len(), 1);
    assert!(
        r.skipped[0].reason.contains("nested"),
        "{}",
        r.skipped[0].reason
    );
    assert!(!r.is_clean());
}

#[test]
fn oversized_entries_are_skipped_and_reported() {
    let s = Scanner::with_limits(Limits {
        max_file_bytes: 1024,
        ..Limits::default()
    })
    .unwrap();
    let big = vec![b'a'; 4096];
    let tar = tar_of(&[("package/big.js", &big), ("package/small.js", b"ok")]);
    let r = s.scan_reader("p.tgz", gz(&tar).as_slice()).unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.files, 1);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].path, "p.tgz!package/big.js");
    assert!(r.skipped[0].reason.contains("limit"));
    assert!(!r.is_clean());
    // a plain stream over the limit too
    let r = s.scan_reader("big.js", big.as_slice()).unwrap();
    assert_eq!(r.skipped.len(), 1);
}

#[test]
fn total_limit_stops_a_decompression_bomb() {
    let s = Scanner::with_limits(Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    })
    .unwrap();
    let zeros = vec![0u8; 600 << 10];
    let tar = tar_of(&[("a.bin", &zeros), ("b.bin", &zeros)]);
    let err = s.scan_reader("bomb.tgz", gz(&tar).as_slice()).unwrap_err();
    assert!(matches!(err, ScanError::TooLarge { .. }), "{err}");
}

#[test]
fn corrupt_archives_are_errors_not_clean() {
    let s = Scanner::new().unwrap();
    let tar = tar_of(&[("package/a.js", &vec![b'x'; 100_000])]);
    let mut bytes = gz(&tar);
    bytes.truncate(bytes.len() / 2);
    let err = s.scan_reader("cut.tgz", bytes.as_slice()).unwrap_err();
    assert!(matches!(err, ScanError::Archive { .. }), "{err}");

    // through scan_path the same archive is reported as skipped
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cut.tgz"), &bytes).unwrap();
    std::fs::write(dir.path().join("fine.txt"), b"nothing here").unwrap();
    let r = s.scan_path(dir.path()).unwrap();
    assert_eq!(r.files, 1);
    assert_eq!(r.skipped.len(), 1);
    assert!(
        r.skipped[0].path.ends_with("cut.tgz!package/a.js"),
        "{}",
        r.skipped[0].path
    );
    assert!(!r.is_clean());
}

#[test]
fn scan_path_walks_directories_and_finds_archives_by_magic() {
    let s = Scanner::new().unwrap();
    let mut g = Gen::new(22);
    let t = token(&mut g);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/a.js"), format!("x = '{t}'\n")).unwrap();
    let tar = tar_of(&[("package/b.js", format!("y = '{t}'\n").as_bytes())]);
    // no archive extension: detected by its magic bytes
    std::fs::write(root.join("blob.bin"), gz(&tar)).unwrap();
    let r = s.scan_path(root).unwrap();
    let paths: Vec<String> = r
        .findings
        .iter()
        .map(|f| {
            f.path
                .strip_prefix(&format!("{}/", root.display()))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(paths, ["blob.bin!package/b.js", "src/a.js"]);
    assert!(s.scan_path(&root.join("missing")).is_err());
}

#[test]
fn fixture_directories_are_judged_below_the_scanned_root() {
    let s = Scanner::new().unwrap();
    let mut g = Gen::new(23);
    let pem = g.pem("PRIVATE KEY", 1624);
    let dir = tempfile::tempdir().unwrap();
    // the root itself lives under a directory named `test`: that is not a fixture directory
    let root = dir.path().join("test/app");
    std::fs::create_dir_all(root.join("certs")).unwrap();
    std::fs::create_dir_all(root.join("spec/fixtures")).unwrap();
    std::fs::write(root.join("certs/server.key"), &pem).unwrap();
    std::fs::write(root.join("spec/fixtures/server.key"), &pem).unwrap();
    let rules = |r: tiercache_scan::ScanReport| -> Vec<(String, &'static str)> {
        r.findings
            .into_iter()
            .map(|f| {
                (
                    f.path.rsplit('/').take(2).collect::<Vec<_>>().join("<"),
                    f.rule,
                )
            })
            .collect()
    };
    let expected = [
        ("server.key<certs".to_string(), "private-key-file"),
        ("server.key<certs".to_string(), "private-key"),
    ];
    assert_eq!(rules(s.scan_path(&root).unwrap()), expected);
    assert_eq!(
        rules(s.scan_path(&root.join("certs/server.key")).unwrap()),
        expected
    );
}
