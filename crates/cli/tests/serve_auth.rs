//! `tiercache serve` and auth at start-up: without a secret the server is single-user and
//! refuses a non-loopback address unless `--insecure-no-auth` is given; with a secret it
//! listens anywhere; a short secret is a configuration error. Each mode is said on stderr.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const SECRET: &str = "serve-auth-test-secret-0123456789abcdef";

/// A `tiercache serve` process and the stderr lines it printed so far.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    addr: mpsc::Receiver<String>,
}

impl Proc {
    fn start(data_dir: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            // A fixed origin, so start-up never asks the machine's npm client.
            .args(["--npm-upstream", "http://127.0.0.1:9/"])
            .args(extra)
            .env_remove("TIERCACHE_AUTH_SECRET")
            .env_remove("TIERCACHE_INSECURE_NO_AUTH")
            .env_remove("TIERCACHE_CONFIG")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tiercache starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let rest = &line[i + "listening on http://".len()..];
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = tx.send(addr);
                }
                seen.lock().unwrap().push(line);
            }
        });
        Proc {
            child,
            lines,
            addr: rx,
        }
    }

    fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for the process to exit by itself; returns whether it succeeded.
    fn exits(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tiercache did not exit; stderr:\n{}", self.stderr());
    }

    /// Waits for the announced port.
    fn port(&self) -> u16 {
        let addr = self
            .addr
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no address announced; stderr:\n{}", self.stderr()));
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthz_on_loopback(port: u16) -> u16 {
    common::raw_request(&format!("http://127.0.0.1:{port}"), "GET", "/healthz", b"").0
}

#[test]
fn without_a_secret_a_non_loopback_address_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = Proc::start(&data, "0.0.0.0:0", &[], &[]);
    assert!(!p.exits(), "it must refuse");
    let err = p.stderr();
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{err}"
    );
    assert!(
        err.contains("TIERCACHE_AUTH_SECRET") && err.contains("--insecure-no-auth"),
        "{err}"
    );
    assert!(
        !data.exists(),
        "a refused start leaves the data directory alone"
    );

    for (extra, env) in [
        (&["--insecure-no-auth"][..], &[][..]),
        (&[][..], &[("TIERCACHE_INSECURE_NO_AUTH", "1")][..]),
    ] {
        let p = Proc::start(&data, "0.0.0.0:0", extra, env);
        let port = p.port();
        assert_eq!(healthz_on_loopback(port), 200);
        let err = p.stderr();
        assert!(
            err.contains("single-user mode on a non-loopback address"),
            "{err}"
        );
    }
}

#[test]
fn loopback_runs_single_user_and_a_secret_turns_auth_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::start(&dir.path().join("a"), "127.0.0.1:0", &[], &[]);
    let port = p.port();
    assert_eq!(healthz_on_loopback(port), 200);
    assert!(
        p.stderr()
            .contains("single-user mode: no auth secret; every request is admin; loopback only"),
        "{}",
        p.stderr()
    );
    drop(p);

    // With a secret, any address; anonymous reads as configured.
    let p = Proc::start(
        &dir.path().join("b"),
        "0.0.0.0:0",
        &["--auth-anonymous-reads", "false"],
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
    );
    let port = p.port();
    assert_eq!(healthz_on_loopback(port), 200);
    let err = p.stderr();
    assert!(err.contains("auth on:"), "{err}");
    assert!(err.contains("without a token are refused"), "{err}");
    assert!(!err.contains(SECRET), "the secret is never logged");
    drop(p);

    // From the config file too.
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[auth]\nsecret = \"{SECRET}\"\nanonymous_reads = true\nleeway = \"5s\"\n"),
    )
    .unwrap();
    let p = Proc::start(
        &dir.path().join("c"),
        "0.0.0.0:0",
        &["--config", cfg.to_str().unwrap()],
        &[],
    );
    p.port();
    assert!(p.stderr().contains("may read the global scope only"));
}

#[test]
fn a_short_secret_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Proc::start(
        &dir.path().join("d"),
        "127.0.0.1:0",
        &[],
        &[("TIERCACHE_AUTH_SECRET", "short-secret")],
    );
    assert!(!p.exits());
    let err = p.stderr();
    assert!(
        err.contains("TIERCACHE_AUTH_SECRET") && err.contains("at least 32 bytes"),
        "{err}"
    );
    assert!(!err.contains("short-secret"), "{err}");
}
