//! `tiercache scan PATH... [--json]` of the real binary: exit statuses (0 clean, 1 found,
//! 2 not scannable or bad usage), the line and JSON outputs, archives, and that the secret
//! itself never reaches stdout or stderr.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use rand::{Rng, SeedableRng};

/// A random GitHub-style token, made at run time so that no token literal is in the repo.
fn github_token(seed: u64) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let alnum = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let body: String = (0..36)
        .map(|_| char::from(alnum[rng.random_range(0..alnum.len())]))
        .collect();
    format!("ghp_{body}")
}

fn scan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .arg("scan")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn clean_tree_exits_0_and_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("index.js"),
        "const password = process.env.PASSWORD;\n",
    )
    .unwrap();
    std::fs::write(dir.path().join(".env.example"), "API_KEY=your-api-key\n").unwrap();
    let o = scan(&[p(dir.path())]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("0 finding(s)"), "{}", stderr(&o));
}

#[test]
fn findings_exit_1_one_per_line_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(1);
    let file = dir.path().join("deploy.yml");
    std::fs::write(&file, format!("name: deploy\nenv:\n  GH_TOKEN: {token}\n")).unwrap();
    std::fs::write(dir.path().join(".env"), "PORT=8080\n").unwrap();
    let o = scan(&[p(dir.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{}:0: dotenv-file", p(&dir.path().join(".env"))),
            format!("{}:3: github-pat (ghp_…(40 chars))", p(&file)),
        ]
    );
    assert!(!out.contains(&token[4..]) && !stderr(&o).contains(&token[4..]));
}

#[test]
fn json_lines_have_path_rule_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(2);
    let file = dir.path().join("config.json");
    std::fs::write(&file, format!("{{\n  \"token\": \"{token}\"\n}}\n")).unwrap();
    let o = scan(&["--json", p(&file)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    assert_eq!(v["path"], p(&file));
    assert_eq!(v["rule"], "github-pat");
    assert_eq!(v["line"], 2);
    assert_eq!(v["column"], 13);
    assert_eq!(v["reason"], format!("github-pat at {}:2", p(&file)));
    assert!(!out.contains(&token[4..]));
}

#[test]
fn archives_are_scanned_entry_by_entry() {
    let dir = tempfile::tempdir().unwrap();
    let token = github_token(3);
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in [
        ("package/package.json", "{\"name\":\"x\"}".to_string()),
        (
            "package/lib/auth.js",
            format!("\nmodule.exports = '{token}';\n"),
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let tgz = dir.path().join("x-1.0.0.tgz");
    std::fs::write(&tgz, gz.finish().unwrap()).unwrap();
    let zst = dir.path().join("x.tar.zst");
    std::fs::write(&zst, zstd::encode_all(tar.as_slice(), 1).unwrap()).unwrap();

    let o = scan(&[p(&tgz), p(&zst)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "{}!package/lib/auth.js:2: github-pat (ghp_…(40 chars))\n{}!package/lib/auth.js:2: github-pat (ghp_…(40 chars))\n",
            p(&tgz),
            p(&zst)
        )
    );
    assert!(
        stderr(&o).contains("2 finding(s) in 2 of 4 file(s)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_paths_and_corrupt_archives_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = scan(&[p(&dir.path().join("nope"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));

    let bad = dir.path().join("bad.tgz");
    std::fs::write(&bad, [0x1f, 0x8b, 0x08, 0x00, 0x01, 0x02]).unwrap();
    let o = scan(&[p(&bad)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not scanned"), "{}", stderr(&o));

    // a finding elsewhere does not hide the error
    let token = github_token(4);
    let good = dir.path().join("a.js");
    std::fs::write(&good, format!("x = '{token}'\n")).unwrap();
    let o = scan(&[p(&good), p(&bad)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("github-pat"));
}

#[test]
fn no_path_is_a_usage_error() {
    let o = scan(&[]);
    assert_eq!(o.status.code(), Some(2));
}
