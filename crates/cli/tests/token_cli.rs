//! `tiercache token issue|inspect`: the secret from the environment or the config file,
//! the token alone on stdout, claims as JSON, exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// Runs `tiercache ARGS` with only the given TIERCACHE_* variables set.
fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiercache"));
    cmd.args(args)
        .env_remove("TIERCACHE_AUTH_SECRET")
        .env_remove("TIERCACHE_CONFIG")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("tiercache runs");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("tiercache exits")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn issue_then_inspect_round_trips() {
    let env = [("TIERCACHE_AUTH_SECRET", SECRET)];
    let out = run(
        &[
            "token",
            "issue",
            "--user",
            "alice",
            "--template",
            "react-vite",
            "--template",
            "nextjs,vue",
            "--team",
            "web",
            "--read-only",
            "--ttl",
            "2h",
        ],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    // The token, a newline, nothing else.
    let token = stdout.strip_suffix('\n').expect("ends with a newline");
    assert!(!token.contains(char::is_whitespace), "{stdout:?}");
    assert_eq!(token.split('.').count(), 3);
    assert!(!text(&out.stderr).contains(SECRET));

    let out = run(&["token", "inspect", token], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["templates"],
        serde_json::json!(["react-vite", "nextjs", "vue"])
    );
    assert_eq!(claims["teams"], serde_json::json!(["web"]));
    assert_eq!(claims["role"], "user");
    assert_eq!(claims["ro"], true);
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 7200);

    // From standard input too.
    let out = run(
        &["token", "inspect", "-"],
        &env,
        Some(&format!("{token}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn the_secret_can_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, format!("[auth]\nsecret = \"{SECRET}\"\n")).unwrap();
    let p = path.to_str().unwrap();
    let out = run(
        &[
            "token", "issue", "--user", "ci", "--role", "warmer", "--config", p,
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    // Verified with the same secret given through the environment.
    let out = run(
        &["token", "inspect", &token],
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["role"], "warmer");
    // TIERCACHE_CONFIG works as --config does.
    let out = run(
        &["token", "inspect", &token],
        &[("TIERCACHE_CONFIG", p)],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn invalid_tokens_and_secrets_exit_1_with_a_reason() {
    let env = [("TIERCACHE_AUTH_SECRET", SECRET)];
    let token = text(&run(&["token", "issue", "--user", "alice"], &env, None).stdout)
        .trim()
        .to_owned();
    // Another secret: a forgery.
    let other = [(
        "TIERCACHE_AUTH_SECRET",
        "another-secret-0123456789abcdef-012345",
    )];
    let out = run(&["token", "inspect", &token], &other, None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid token") && err.contains("signature"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // Garbage.
    let out = run(&["token", "inspect", "not-a-token"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a well-formed JWT"));
    // A short secret is a clear configuration error, naming where it came from.
    let out = run(
        &["token", "issue", "--user", "alice"],
        &[("TIERCACHE_AUTH_SECRET", "too-short")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("TIERCACHE_AUTH_SECRET") && err.contains("at least 32 bytes"),
        "{err}"
    );
    assert!(!err.contains("too-short"), "{err}");
    assert!(out.stdout.is_empty());
    // No secret at all.
    let out = run(&["token", "issue", "--user", "alice"], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no auth secret"));
    // Bad ids and durations.
    for args in [
        &["token", "issue", "--user", "../bob"][..],
        &["token", "issue", "--user", "alice", "--template", "a/b"],
        &["token", "issue", "--user", "alice", "--ttl", "soon"],
        &["token", "issue", "--user", "alice", "--ttl", "0s"],
    ] {
        let out = run(args, &env, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // An unknown role is a usage error (clap's exit code 2).
    let out = run(
        &["token", "issue", "--user", "alice", "--role", "root"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(2));
}
