//! The real `turbo` client against the running binary: a miss uploads, a clean rerun is
//! "FULL TURBO" and restores `dist/` byte-identical — plain, signed, by team id — and
//! another team never hits.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::clients::{have, show};
use common::{Server, client};
use serde_json::Value;

const TOKEN: &str = "turbo-e2e-token";

/// A two-package workspace whose `build` writes `dist/out.txt` with unrepeatable content.
fn workspace(dir: &Path, signed: bool) {
    let write = |p: &str, s: &str| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, s).unwrap();
    };
    write(
        "package.json",
        r#"{"name":"ws","private":true,"packageManager":"npm@11.0.0","workspaces":["packages/*"]}"#,
    );
    let remote = if signed {
        r#","remoteCache":{"signature":true}"#
    } else {
        ""
    };
    write(
        "turbo.json",
        &format!(r#"{{"tasks":{{"build":{{"outputs":["dist/**"]}}}}{remote}}}"#),
    );
    write(".gitignore", "node_modules\n.turbo\ndist\n");
    for p in ["a", "b"] {
        write(
            &format!("packages/{p}/package.json"),
            &format!(
                r#"{{"name":"{p}","version":"1.0.0","scripts":{{"build":"node -e \"const fs=require('fs');fs.mkdirSync('dist',{{recursive:true}});fs.writeFileSync('dist/out.txt','{p} '+Date.now()+' '+Math.random())\""}}}}"#
            ),
        );
    }
    // turbo hashes git-tracked inputs, and needs a lockfile to see the workspace.
    write(
        "package-lock.json",
        r#"{"name":"ws","lockfileVersion":3,"requires":true,"packages":{"":{"name":"ws","workspaces":["packages/*"]},"node_modules/a":{"resolved":"packages/a","link":true},"node_modules/b":{"resolved":"packages/b","link":true},"packages/a":{"name":"a","version":"1.0.0"},"packages/b":{"name":"b","version":"1.0.0"}}}"#,
    );
    for args in [
        vec!["init", "-q"],
        vec!["add", "-A"],
        vec![
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "init",
        ],
    ] {
        let ok = Command::new("git")
            .args(&args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

fn clean(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join(".turbo"));
    for p in ["a", "b"] {
        let _ = std::fs::remove_dir_all(dir.join("packages").join(p).join("dist"));
        let _ = std::fs::remove_dir_all(dir.join("packages").join(p).join(".turbo"));
    }
}

fn turbo(dir: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("turbo");
    cmd.arg("run").arg("build").args(args).current_dir(dir);
    cmd.env("TURBO_TELEMETRY_DISABLED", "1")
        .env("DO_NOT_TRACK", "1")
        .env("TURBO_NO_UPDATE_NOTIFIER", "1")
        .env("TURBO_PRINT_VERSION_DISABLED", "1")
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("HOME", home)
        .env_remove("TURBO_TEAM")
        .env_remove("TURBO_TEAMID")
        .env_remove("TURBO_TOKEN")
        .env_remove("TURBO_API");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn outputs(dir: &Path) -> Vec<Vec<u8>> {
    ["a", "b"]
        .iter()
        .map(|p| std::fs::read(dir.join(format!("packages/{p}/dist/out.txt"))).unwrap())
        .collect()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run 1 misses and uploads; after cleaning, run 2 is a full remote hit with identical outputs.
fn miss_then_full_turbo(dir: &Path, home: &Path, args: &[&str], env: &[(&str, &str)]) {
    let run1 = turbo(dir, home, args, env);
    assert!(run1.status.success(), "{}", show(&run1));
    assert!(
        stdout(&run1).contains("0 cached, 2 total"),
        "{}",
        show(&run1)
    );
    let built = outputs(dir);
    clean(dir);
    let run2 = turbo(dir, home, args, env);
    assert!(run2.status.success(), "{}", show(&run2));
    assert!(stdout(&run2).contains("FULL TURBO"), "{}", show(&run2));
    assert_eq!(
        outputs(dir),
        built,
        "restored outputs differ from the built ones"
    );
    clean(dir);
}

async fn artifacts(server: &Server, team: &str) -> Vec<Value> {
    let v: Value = client()
        .get(server.url(&format!("/admin/build/artifacts?team={team}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["artifacts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turbo_uses_the_remote_cache() {
    assert!(
        have("turbo"),
        "turbo is not installed: run scripts/test.sh, which installs it"
    );
    assert!(have("git"), "git is required");
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &[]);
    let _ = &server;
    let config = tmp.path().join("tc.toml");
    std::fs::write(&config, format!("[build]\ntokens = [\"{TOKEN}\"]\n")).unwrap();
    drop(server);
    let server = Server::start(
        &tmp.path().join("data2"),
        &["--config", config.to_str().unwrap()],
    );
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let api = server.base.clone();

    // Plain: --api, --token, --team.
    let ws = tmp.path().join("ws");
    workspace(&ws, false);
    let flags = ["--api", &api, "--token", TOKEN, "--team", "web"];
    let plain = tokio::task::spawn_blocking({
        let (ws, home) = (ws.clone(), home.clone());
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        move || {
            let f: Vec<&str> = flags.iter().map(String::as_str).collect();
            miss_then_full_turbo(&ws, &home, &f, &[]);
            // Another team shares nothing.
            let mut other: Vec<&str> = f.clone();
            other[5] = "other";
            let run = turbo(&ws, &home, &other, &[]);
            assert!(stdout(&run).contains("0 cached, 2 total"), "{}", show(&run));
            clean(&ws);
        }
    });
    plain.await.unwrap();
    let web = artifacts(&server, "web").await;
    assert_eq!(web.len(), 2);
    assert!(
        web.iter().all(|a| a["hits"] == 1 && a["signed"] == false),
        "{web:?}"
    );

    // Signed artifacts: turbo signs uploads and verifies downloads with the shared key.
    let signed_ws = tmp.path().join("signed");
    workspace(&signed_ws, true);
    let env = [(
        "TURBO_REMOTE_CACHE_SIGNATURE_KEY",
        "a-signing-key-of-at-least-32-bytes!!",
    )];
    tokio::task::spawn_blocking({
        let (ws, home, api) = (signed_ws.clone(), home.clone(), api.clone());
        move || {
            miss_then_full_turbo(
                &ws,
                &home,
                &["--api", &api, "--token", TOKEN, "--team", "signed"],
                &env,
            )
        }
    })
    .await
    .unwrap();
    let signed = artifacts(&server, "signed").await;
    assert_eq!(signed.len(), 2);
    assert!(signed.iter().all(|a| a["signed"] == true), "{signed:?}");

    // The team given as TURBO_TEAMID (a team id) instead of --team.
    let id_ws = tmp.path().join("by-id");
    workspace(&id_ws, false);
    tokio::task::spawn_blocking({
        let (ws, home, api) = (id_ws.clone(), home.clone(), api.clone());
        move || {
            miss_then_full_turbo(
                &ws,
                &home,
                &["--api", &api, "--token", TOKEN],
                &[("TURBO_TEAMID", "team_by_id")],
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(artifacts(&server, "team_by_id").await.len(), 2);
    assert_eq!(artifacts(&server, "other").await.len(), 2);
}
