//! Runs the real package-manager clients (`npm`, `pnpm`) the way a sandbox would, isolated
//! from this machine's own npm configuration, caches and proxies.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Whether `cmd` runs.
pub fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Writes a `package.json` depending on `deps` into a new directory `dir`.
pub fn write_project(dir: &Path, deps: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("project dir");
    let deps: serde_json::Map<String, serde_json::Value> = deps
        .iter()
        .map(|(n, r)| ((*n).to_owned(), serde_json::Value::String((*r).to_owned())))
        .collect();
    let pj = serde_json::json!({
        "name": "sandbox-project", "version": "1.0.0", "private": true, "dependencies": deps
    });
    std::fs::write(dir.join("package.json"), pj.to_string()).expect("package.json");
}

/// Runs `tool install` in `project` against `registry`, with its caches and config under
/// `home` (a fresh `home` means a fresh cache and store). Waits at most two minutes.
pub async fn install(tool: &str, project: &Path, registry: &str, home: &Path) -> Output {
    std::fs::create_dir_all(home).expect("client home");
    let npmrc = home.join("npmrc");
    if !npmrc.exists() {
        std::fs::write(&npmrc, "").expect("npmrc");
    }
    let mut cmd = Command::new(tool);
    cmd.arg("install").arg("--registry").arg(registry);
    match tool {
        "pnpm" => {
            cmd.arg("--store-dir")
                .arg(home.join("pnpm-store"))
                .arg("--cache-dir")
                .arg(home.join("pnpm-cache"))
                .arg("--config.update-notifier=false")
                .arg("--reporter=append-only");
        }
        _ => {
            cmd.args(["--no-audit", "--no-fund", "--update-notifier=false"])
                .arg("--cache")
                .arg(home.join("npm-cache"));
        }
    }
    cmd.current_dir(project)
        .env("NPM_CONFIG_USERCONFIG", &npmrc)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "127.0.0.1");
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("install finishes within two minutes")
    .expect("install task")
    .expect("client runs")
}

/// The output of a client run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
