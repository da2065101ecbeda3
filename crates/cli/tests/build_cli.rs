//! The build-cache commands of the real binary against a running server: `hash`,
//! `build save/restore/run/ls` and `turbo-config` (checked with the real `turbo`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::clients::{have, show};
use common::{Server, client};

const TOKEN: &str = "build-cli-token";

/// The exit code of `build restore` on a miss.
const MISS: i32 = 3;

/// A server whose build cache requires [`TOKEN`].
fn server(tmp: &Path) -> Server {
    let config = tmp.join("tc.toml");
    std::fs::write(&config, format!("[build]\ntokens = [\"{TOKEN}\"]\n")).unwrap();
    Server::start(
        &tmp.join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--npm-upstream",
            "http://127.0.0.1:9/",
        ],
    )
}

/// Runs `tiercache ARGS` with a clean `TIERCACHE_*` environment plus `env`.
fn tc(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiercache"));
    cmd.args(args)
        .env_remove("TIERCACHE_SERVER")
        .env_remove("TIERCACHE_TEAM")
        .env_remove("TIERCACHE_TOKEN")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn write(root: &Path, rel: &str, bytes: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Bytes no compressor can shrink much (xorshift), without a dependency.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

/// Every file under `dir` (relative path → bytes), links as `-> target`.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let t = std::fs::read_link(e.path()).unwrap();
                out.push((rel, format!("-> {}", t.display()).into_bytes()));
            } else if ft.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                stack.push(e.path());
            } else {
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn save_then_restore_is_byte_identical_and_ls_lists_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let src = tmp.path().join("checkout");
    write(&src, "dist/app.js", "console.log('hi')\n");
    write(&src, "dist/assets/blob.bin", noise(3 << 20, 7));
    write(&src, "dist/empty.txt", "");
    write(&src, "src/not-an-output.ts", "x");
    #[cfg(unix)]
    std::os::unix::fs::symlink("app.js", src.join("dist/latest.js")).unwrap();
    let key = "00c0ffee00c0ffee";
    let remote = ["--server", &server.base, "--team", "web"];

    let save = tc(
        &[
            &[
                "build",
                "save",
                "--key",
                key,
                "--outputs",
                "dist/**",
                "--root",
            ],
            &[src.to_str().unwrap()][..],
            &remote[..],
        ]
        .concat(),
        &[("TIERCACHE_TOKEN", TOKEN)],
    );
    assert!(save.status.success(), "{}", show(&save));

    let into = tmp.path().join("fresh");
    let restore = tc(
        &[
            &[
                "build",
                "restore",
                "--key",
                key,
                "--into",
                into.to_str().unwrap(),
            ][..],
            &remote[..],
        ]
        .concat(),
        &[("TIERCACHE_TOKEN", TOKEN)],
    );
    assert!(restore.status.success(), "{}", show(&restore));
    assert_eq!(tree(&into.join("dist")), tree(&src.join("dist")));
    assert!(!into.join("src").exists(), "only outputs are packed");

    // Without the token: an error (1) that says why, not a miss.
    let denied = tc(
        &[
            &[
                "build",
                "restore",
                "--key",
                key,
                "--into",
                into.to_str().unwrap(),
            ][..],
            &remote[..],
        ]
        .concat(),
        &[],
    );
    assert_eq!(denied.status.code(), Some(1), "{}", show(&denied));
    assert!(stderr(&denied).contains("401"), "{}", show(&denied));
    // Another team does not see it.
    let other = tc(
        &[
            "build",
            "restore",
            "--key",
            key,
            "--into",
            into.to_str().unwrap(),
            "--server",
            &server.base,
            "--team",
            "other",
        ],
        &[("TIERCACHE_TOKEN", TOKEN)],
    );
    assert_eq!(other.status.code(), Some(MISS), "{}", show(&other));

    let ls = tc(
        &["build", "ls", "--server", &server.base],
        &[("TIERCACHE_TOKEN", TOKEN)],
    );
    assert!(ls.status.success(), "{}", show(&ls));
    let table = String::from_utf8_lossy(&ls.stdout);
    assert!(table.starts_with("HASH "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(key) && l.contains(" web ")),
        "{table}"
    );
    let json = tc(
        &[
            "build",
            "ls",
            "--server",
            &server.base,
            "--team",
            "web",
            "--json",
        ],
        &[("TIERCACHE_TOKEN", TOKEN)],
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["artifacts"][0]["hash"], key);
    assert_eq!(v["artifacts"][0]["hits"], 1);
}

#[test]
fn restore_of_an_unknown_key_is_a_miss_and_bad_keys_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let into = tmp.path().join("into");
    let args = |key: &'static str| {
        vec![
            "build".to_owned(),
            "restore".into(),
            "--key".into(),
            key.into(),
            "--into".into(),
            into.to_string_lossy().into_owned(),
            "--server".into(),
            server.base.clone(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        tc(&a, &[("TIERCACHE_TOKEN", TOKEN)])
    };
    let miss = run(args("abcdef0123456789"));
    assert_eq!(miss.status.code(), Some(MISS), "{}", show(&miss));
    assert!(stderr(&miss).contains("cache miss"), "{}", show(&miss));
    let bad = run(args("not-hex"));
    assert_eq!(bad.status.code(), Some(1), "{}", show(&bad));
    assert!(stderr(&bad).contains("hexadecimal"), "{}", show(&bad));
    // A server that is not there is an error, not a miss.
    let down = tc(
        &[
            "build",
            "restore",
            "--key",
            "ab",
            "--into",
            "x",
            "--server",
            "http://127.0.0.1:9",
        ],
        &[],
    );
    assert_eq!(down.status.code(), Some(1), "{}", show(&down));
}

#[test]
fn build_run_runs_once_then_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let root = tmp.path().join("app");
    write(&root, "src/main.ts", "export const v = 1;\n");
    write(&root, "package-lock.json", "{}\n");
    let counter = tmp.path().join("runs.log");
    let script = format!(
        "mkdir -p dist && cat src/main.ts > dist/main.js && echo run >> '{}'",
        counter.display()
    );
    let run = |server_url: &str, script: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tiercache"));
        c.args([
            "build",
            "run",
            "--sources",
            "src/**",
            "--lockfile",
            "package-lock.json",
        ])
        .args([
            "--outputs",
            "dist/**",
            "--server",
            server_url,
            "--token",
            TOKEN,
        ])
        .args(["--", "sh", "-c", script])
        .current_dir(&root)
        .env_remove("TIERCACHE_TEAM");
        c.output().unwrap()
    };
    let runs = || {
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let first = run(&server.base, &script);
    assert!(first.status.success(), "{}", show(&first));
    assert!(stderr(&first).contains("cache miss"), "{}", show(&first));
    let built = std::fs::read(root.join("dist/main.js")).unwrap();
    std::fs::remove_dir_all(root.join("dist")).unwrap();

    let second = run(&server.base, &script);
    assert!(second.status.success(), "{}", show(&second));
    assert!(stderr(&second).contains("cache hit"), "{}", show(&second));
    assert_eq!(runs(), 1, "the second run must not run the command");
    assert_eq!(std::fs::read(root.join("dist/main.js")).unwrap(), built);

    // A changed source is a new key: the command runs again.
    write(&root, "src/main.ts", "export const v = 2;\n");
    let third = run(&server.base, &script);
    assert!(third.status.success(), "{}", show(&third));
    assert_eq!(runs(), 2);

    // The command's exit code passes through, and a failure is not saved.
    let failing = run(&server.base, "exit 7");
    assert_eq!(failing.status.code(), Some(7), "{}", show(&failing));
    let again = run(&server.base, "exit 7");
    assert!(stderr(&again).contains("cache miss"), "{}", show(&again));

    // A cache that is down never fails the build.
    write(&root, "src/main.ts", "export const v = 3;\n");
    let down = run("http://127.0.0.1:9", &script);
    assert!(down.status.success(), "{}", show(&down));
    assert!(stderr(&down).contains("warning"), "{}", show(&down));
    assert_eq!(runs(), 3);
}

/// The key of the fixture below, also derived from the spec by an independent
/// implementation: a change here means every cached artifact is orphaned.
const GOLDEN: &str = "42cad89e2d5804784317e971e7f28115d85c2e7e429bbf5747a65d41fd315882";

#[test]
fn hash_is_the_same_in_any_checkout_and_file_order() {
    let tmp = tempfile::tempdir().unwrap();
    let files: &[(&str, &str)] = &[
        ("src/index.ts", "export const x = 1;\n"),
        ("src/lib/util.ts", "export const u = 2;\n"),
        ("src/style.css", "body{}\n"),
        ("package.json", "{\"name\":\"golden\"}\n"),
        ("package-lock.json", "{\"lockfileVersion\":3}\n"),
        ("tsconfig.json", "{\"strict\":true}\n"),
        ("README.md", "readme\n"),
    ];
    let one = tmp.path().join("one");
    let two = tmp.path().join("deeper/two");
    for (f, c) in files {
        write(&one, f, c);
    }
    for (f, c) in files.iter().rev() {
        write(&two, f, c);
    }
    let hash = |root: &Path, node_env: &str| {
        let o = tc(
            &[
                "hash",
                "--root",
                root.to_str().unwrap(),
                "--sources",
                "src/**/*.ts",
                "package.json",
                "--lockfile",
                "package-lock.json",
                "--config",
                "tsconfig.json",
                "vite.config.ts",
                "--env-prefix",
                "GOLDEN_",
                "--outputs",
                "dist/**",
                "--",
                "npm",
                "run",
                "build",
            ],
            &[("GOLDEN_MODE", "prod"), ("NODE_ENV", node_env)],
        );
        assert!(o.status.success(), "{}", show(&o));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(hash(&one, "a"), GOLDEN);
    assert_eq!(hash(&two, "b"), GOLDEN);
    // Plain `hash` from inside the checkout, relative root.
    let plain = |dir: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(["hash", "--sources", "src", "--env-prefix", "GOLDEN_"])
            .current_dir(dir)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(plain(&one), plain(&two));
    write(&two, "src/style.css", "body{ }\n");
    assert_ne!(plain(&one), plain(&two));
}

/// A one-package npm workspace turbo can run, committed (turbo hashes tracked files).
fn turbo_workspace(dir: &Path) {
    write(
        dir,
        "package.json",
        r#"{"name":"ws","private":true,"packageManager":"npm@11.0.0","workspaces":["packages/*"]}"#,
    );
    write(
        dir,
        "turbo.json",
        r#"{"tasks":{"build":{"outputs":["dist/**"]}}}"#,
    );
    write(dir, ".gitignore", "node_modules\n.turbo\ndist\n");
    write(
        dir,
        "packages/app/package.json",
        r#"{"name":"app","version":"1.0.0","scripts":{"build":"node -e \"require('fs').mkdirSync('dist',{recursive:true});require('fs').writeFileSync('dist/out.txt',String(Math.random()))\""}}"#,
    );
    write(
        dir,
        "package-lock.json",
        r#"{"name":"ws","lockfileVersion":3,"requires":true,"packages":{"":{"name":"ws","workspaces":["packages/*"]},"node_modules/app":{"resolved":"packages/app","link":true},"packages/app":{"name":"app","version":"1.0.0"}}}"#,
    );
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.email=t@t",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "init",
        ],
    ] {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(dir)
                .status()
                .unwrap()
                .success()
        );
    }
}

#[tokio::test]
async fn turbo_config_writes_what_turbo_reads() {
    assert!(
        have("turbo"),
        "turbo is not installed: run scripts/test.sh, which installs it"
    );
    assert!(have("git"), "git is required");
    let tmp = tempfile::tempdir().unwrap();
    let server = server(tmp.path());
    let ws = tmp.path().join("ws");
    turbo_workspace(&ws);
    // A config the seed would have written: camelCase keys turbo also reads; keeping them
    // beside ours would make turbo fail on a duplicate field.
    write(
        &ws,
        ".turbo/config.json",
        r#"{"apiUrl":"https://turbo-cache.internal","teamId":"x","ui":"stream"}"#,
    );
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let out = tc(
        &[
            "turbo-config",
            ws.to_str().unwrap(),
            "--api",
            &server.base,
            "--team",
            "turbo-team",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", show(&out));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.join(".turbo/config.json")).unwrap()).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"ui":"stream","apiurl":server.base,"teamslug":"turbo-team","token":TOKEN})
    );

    let home = tmp.path().join("home");
    let turbo = || {
        let _ = std::fs::remove_dir_all(ws.join(".turbo/cache"));
        let _ = std::fs::remove_dir_all(ws.join("packages/app/dist"));
        let _ = std::fs::remove_dir_all(ws.join("packages/app/.turbo"));
        let o = Command::new("turbo")
            .args(["run", "build"])
            .current_dir(&ws)
            .env("TURBO_TELEMETRY_DISABLED", "1")
            .env("DO_NOT_TRACK", "1")
            .env("TURBO_NO_UPDATE_NOTIFIER", "1")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env_remove("TURBO_API")
            .env_remove("TURBO_TEAM")
            .env_remove("TURBO_TEAMID")
            .env_remove("TURBO_TOKEN")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", show(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = turbo();
    assert!(first.contains("0 cached, 1 total"), "{first}");
    let built = std::fs::read(ws.join("packages/app/dist/out.txt")).unwrap();
    let second = turbo();
    assert!(second.contains("FULL TURBO"), "{second}");
    assert_eq!(
        std::fs::read(ws.join("packages/app/dist/out.txt")).unwrap(),
        built
    );

    let listed: serde_json::Value = client()
        .get(server.url("/admin/build/artifacts?team=turbo-team"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["artifacts"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}
