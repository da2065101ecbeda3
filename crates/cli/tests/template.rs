//! `tiercache template warm|restore|ls` end to end: the real binary as server (with an auth
//! secret, in front of a local npm origin) and as client, a warmup that really runs
//! `pnpm install` through the cache, signed tokens for each role, and the audit log.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::clients::have;
use common::origin::{Origin, Package, Version};
use common::{Server, client};

const SECRET: &str = "template-test-secret-0123456789abcdef-0123";
const OBJECT: &str = "/objects/template/t1/template/outputs.tar.zst";

/// The warmup of `t1`: a real pnpm install through the cache, then build outputs made from
/// what it installed (a copy of each output also goes to $WITNESS, to compare restores with).
const WARMUP: &str = "pnpm install --reporter=append-only --config.update-notifier=false \
    && mkdir -p node_modules/.vite/deps .vite/deps/nested \
    && cp node_modules/tw-core/index.js .vite/deps/tw-core.js \
    && cp node_modules/tw-ui/package.json node_modules/.vite/deps/_metadata.json \
    && printf 'bin\\001\\002\\377' > .vite/deps/nested/blob.bin \
    && chmod +x .vite/deps/tw-core.js \
    && ln -s tw-core.js .vite/deps/entry.js \
    && mkdir -p \"$WITNESS/node_modules\" \
    && cp -a node_modules/.vite \"$WITNESS/node_modules/\" && cp -a .vite \"$WITNESS/\"";

fn packages() -> Vec<Package> {
    vec![
        Package::new("tw-core").version(Version::new("1.0.0").dep("tw-util", "^1.0.0")),
        Package::with_versions("tw-util", &["1.0.0", "1.1.0"]),
        Package::new("tw-ui")
            .version(Version::new("2.0.0").file("ui.js", "export const ui = 2;\n")),
    ]
}

/// The config file: `t1` (pnpm warmup), `broken` (a warmup that fails after making its
/// outputs) and `leaky` (no warmup: its source holds a `.env`, which the server refuses).
fn write_config(dir: &Path) -> String {
    let source = dir.join("leaky-src");
    std::fs::create_dir_all(source.join("dist")).unwrap();
    std::fs::write(source.join("dist/.env"), "PORT=8080\n").unwrap();
    std::fs::write(source.join("dist/app.js"), "console.log(1);\n").unwrap();
    let config = dir.join("tiercache.toml");
    std::fs::write(
        &config,
        format!(
            "[npm]\nretries = 1\nretry_min = \"20ms\"\nretry_max = \"50ms\"\n\n\
             [[templates]]\nname = \"t1\"\n\
             shared_dependencies = [\"tw-core@^1.0.0\", \"tw-ui\"]\n\
             shared_build_outputs = [\"node_modules/.vite\", \".vite/deps\", \".next/cache\"]\n\
             warmup = {WARMUP:?}\n\n\
             [[templates]]\nname = \"broken\"\nshared_build_outputs = [\"dist\"]\n\
             warmup = \"mkdir dist && echo x > dist/a && echo 'warmup broke' >&2 && exit 7\"\n\n\
             [[templates]]\nname = \"leaky\"\nshared_build_outputs = [\"dist\"]\nsource = \"leaky-src\"\n"
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_owned()
}

/// Runs `tiercache ARGS` with `env`, isolated from this machine's npm/pnpm configuration,
/// caches and proxies (client state lives under `home`).
fn tc(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    std::fs::create_dir_all(home).unwrap();
    let npmrc = home.join("npmrc");
    if !npmrc.exists() {
        std::fs::write(&npmrc, "").unwrap();
    }
    Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(args)
        .env_remove("TIERCACHE_SERVER")
        .env_remove("TIERCACHE_TOKEN")
        .env_remove("TIERCACHE_CONFIG")
        .env_remove("TIERCACHE_AUTH_SECRET")
        .env_remove("TIERCACHE_DATA_DIR")
        .env("NO_COLOR", "1")
        .env("NPM_CONFIG_USERCONFIG", &npmrc)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env("NO_PROXY", "127.0.0.1")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// [`tc`] on a blocking thread, so the origin (on this runtime) can answer meanwhile.
async fn tc_async(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let home = home.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tc(&args, &env, &home)
    })
    .await
    .unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn issue(home: &Path, args: &[&str]) -> String {
    let mut all = vec!["token", "issue"];
    all.extend_from_slice(args);
    let out = tc(&all, &[("TIERCACHE_AUTH_SECRET", SECRET)], home);
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A tree as path → what is there: file bytes and executable bit, a directory, or a link.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    File(Vec<u8>, bool),
    Dir,
    Link(std::path::PathBuf),
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, Node::Link(std::fs::read_link(&p).unwrap()));
            } else if meta.is_dir() {
                out.insert(rel, Node::Dir);
                walk(root, &p, out);
            } else {
                let exec = meta.permissions().mode() & 0o111 != 0;
                out.insert(rel, Node::File(std::fs::read(&p).unwrap(), exec));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

async fn status_of(url: &str, token: &str) -> u16 {
    client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The audit records about template scopes, as `(principal, action, decision, scope)`.
fn template_records(json_lines: &str) -> Vec<(String, String, String, String)> {
    json_lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| {
            r["scope"]
                .as_str()
                .is_some_and(|s| s.starts_with("template/"))
        })
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("principal"), s("action"), s("decision"), s("scope"))
        })
        .collect()
}

fn has(records: &[(String, String, String, String)], want: (&str, &str, &str, &str)) -> bool {
    records
        .iter()
        .any(|(p, a, d, s)| (p.as_str(), a.as_str(), d.as_str(), s.as_str()) == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_warm_and_restore_round_trip_a_build_output_directory() {
    assert!(
        have("pnpm"),
        "pnpm is not installed: run scripts/test.sh, which installs it"
    );
    let origin = Origin::start(packages()).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let home = dir.join("home");
    let config = write_config(dir);
    let data = dir.join("data");
    let serve_args = ["--npm-upstream", &origin.url(), "--config", &config];
    let mut server =
        Server::start_with_env(&data, &serve_args, &[("TIERCACHE_AUTH_SECRET", SECRET)]);
    let base = server.base.clone();

    let warmer = issue(
        &home,
        &["--user", "ci", "--role", "warmer", "--template", "t1,leaky"],
    );
    let admin = issue(&home, &["--user", "ops", "--role", "admin"]);
    let alice = issue(&home, &["--user", "alice", "--template", "t1"]);
    let bob = issue(&home, &["--user", "bob", "--template", "t2"]);
    let mallory = issue(&home, &["--user", "mallory", "--template", "t1"]);

    // `ls` lists the configured templates.
    let out = tc_async(&["template", "ls", "--config", &config], &[], &home).await;
    assert!(out.status.success(), "{}", show(&out));
    let ls = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<&str> = ls.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(names, ["t1", "broken", "leaky"], "{ls}");

    // A plain user token (even one listing t1) may not write the template: a clear 403,
    // and nothing is stored.
    let witness = dir.join("witness-mallory");
    let out = tc_async(
        &[
            "template", "warm", "t1", "--config", &config, "--server", &base,
        ],
        &[
            ("TIERCACHE_TOKEN", mallory.as_str()),
            ("WITNESS", witness.to_str().unwrap()),
        ],
        &home.join("mallory"),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("403") && err.contains("only a warmer token listing it"),
        "{err}"
    );
    assert_eq!(status_of(&server.url(OBJECT), &admin).await, 404);

    // The warmer: dependencies prewarmed, pnpm install through the cache, outputs stored.
    let witness = dir.join("witness");
    let out = tc_async(
        &["template", "warm", "t1", "--config", &config],
        &[
            ("TIERCACHE_SERVER", base.as_str()),
            ("TIERCACHE_TOKEN", warmer.as_str()),
            ("WITNESS", witness.to_str().unwrap()),
        ],
        &home.join("ci"),
    )
    .await;
    assert!(out.status.success(), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("prewarmed") && err.contains("stored"), "{err}");
    assert!(
        err.contains("the output .next/cache does not exist"),
        "{err}"
    );
    // Every tarball came from the origin once, for three installs (two pnpm, one prewarm).
    for (name, version) in [
        ("tw-core", "1.0.0"),
        ("tw-util", "1.1.0"),
        ("tw-ui", "2.0.0"),
    ] {
        assert_eq!(
            origin.tarball_requests_for(name, version),
            1,
            "{name}: {:?}",
            origin.requests()
        );
    }
    assert_eq!(status_of(&server.url(OBJECT), &admin).await, 200);

    // A user whose token lists t1 restores a byte-identical tree into a fresh directory.
    let restored = dir.join("sandbox");
    let out = tc_async(
        &[
            "template",
            "restore",
            "t1",
            restored.to_str().unwrap(),
            "--server",
            &base,
            "--token",
            &alice,
        ],
        &[],
        &home,
    )
    .await;
    assert!(out.status.success(), "{}", show(&out));
    assert!(stderr(&out).contains("restored"), "{}", show(&out));
    let want = tree(&witness);
    assert!(want.contains_key(".vite/deps/entry.js"), "{want:?}");
    assert_eq!(
        want[".vite/deps/tw-core.js"],
        Node::File(
            b"module.exports = { name: \"tw-core\", version: \"1.0.0\" };\n".to_vec(),
            true
        )
    );
    assert_eq!(tree(&restored), want);

    // A user of another template: a miss (exit 3), nothing written.
    let elsewhere = dir.join("bob-sandbox");
    let out = tc_async(
        &["template", "restore", "t1", elsewhere.to_str().unwrap()],
        &[
            ("TIERCACHE_SERVER", base.as_str()),
            ("TIERCACHE_TOKEN", bob.as_str()),
        ],
        &home,
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr(&out).contains("cache miss"), "{}", show(&out));
    assert!(!elsewhere.exists());

    // A failing warmup: its output is shown, the exit is non-zero, nothing is uploaded.
    let broken = server.url("/objects/template/broken/template/outputs.tar.zst");
    let out = tc_async(
        &[
            "template", "warm", "broken", "--config", &config, "--server", &base,
        ],
        &[("TIERCACHE_TOKEN", admin.as_str())],
        &home,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warmup broke")
            && err.contains("exit code 7")
            && err.contains("nothing was uploaded"),
        "{err}"
    );
    assert_eq!(status_of(&broken, &admin).await, 404);

    // A source with a .env: the server screens a warmer's write and refuses it (422).
    let out = tc_async(
        &[
            "template", "warm", "leaky", "--config", &config, "--server", &base,
        ],
        &[("TIERCACHE_TOKEN", warmer.as_str())],
        &home,
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("422") && err.contains("sensitive content") && err.contains("dotenv"),
        "{err}"
    );
    let leaky = server.url("/objects/template/leaky/template/outputs.tar.zst");
    assert_eq!(status_of(&leaky, &admin).await, 404);

    // The audit log holds the template's writes and reads, allowed and denied, and keeps
    // them across a restart.
    let want = [
        ("mallory", "write", "deny", "template/t1"),
        ("ci", "write", "allow", "template/t1"),
        ("alice", "read", "allow", "template/t1"),
        ("bob", "read", "deny", "template/t1"),
    ];
    assert!(server.terminate(), "the server exits cleanly");
    let out = tc_async(
        &["audit", "--data-dir", data.to_str().unwrap(), "--json"],
        &[],
        &home,
    )
    .await;
    assert!(out.status.success(), "{}", show(&out));
    let records = template_records(&String::from_utf8_lossy(&out.stdout));
    for w in want {
        assert!(has(&records, w), "{w:?} not in {records:?}");
    }
    let server = Server::start_with_env(&data, &serve_args, &[("TIERCACHE_AUTH_SECRET", SECRET)]);
    let body: serde_json::Value = client()
        .get(server.url("/admin/audit?limit=1000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lines: String = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    let records = template_records(&lines);
    for w in want {
        assert!(has(&records, w), "{w:?} not in {records:?} after a restart");
    }
    // And the outputs survived the restart too.
    assert_eq!(status_of(&server.url(OBJECT), &alice).await, 200);
}

#[test]
fn restore_without_a_server_and_bad_configs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // No config file named.
    let out = tc(&["template", "warm", "t1"], &[], &home);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--config"), "{}", show(&out));
    // An unknown template, naming the known ones.
    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        "[[templates]]\nname = \"a\"\n[[templates]]\nname = \"b\"\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = tc(&["template", "warm", "zzz", "--config", c], &[], &home);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no template \"zzz\""),
        "{}",
        show(&out)
    );
    assert!(stderr(&out).contains("a, b"), "{}", show(&out));
    // An absolute output path is refused when the file is loaded.
    std::fs::write(
        &config,
        "[[templates]]\nname = \"a\"\nshared_build_outputs = [\"/etc\"]\n",
    )
    .unwrap();
    let out = tc(&["template", "ls", "--config", c], &[], &home);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("absolute"), "{}", show(&out));
    // A bad template name never reaches the server.
    let out = tc(&["template", "restore", "../x", "out"], &[], &home);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not valid"), "{}", show(&out));
    // No server listening: a clear connection error, not a miss.
    let out = tc(
        &[
            "template",
            "restore",
            "t1",
            "out",
            "--server",
            "http://127.0.0.1:9",
        ],
        &[],
        &home,
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr(&out).contains("cannot connect"), "{}", show(&out));
}
