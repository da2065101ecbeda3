//! Invalidation end to end, against the real binary: events (`tiercache invalidate`, the
//! admin API and npm's signed hooks), manual purges whose dry runs count what the real purge
//! removes, version epochs — on one node, and across a 3-node fleet with Redis and S3 where a
//! node that was down applies what it missed before it serves, and a Redis restart between
//! events loses nothing.

mod common;

use std::process::Command;

use common::clients::{install, show, write_project};
use common::fleet::{Fleet, wait_for};
use common::origin::{Origin, Package, Version};
use common::{Server, client, get_json};
use serde_json::Value;

const SECRET: &str = "invalidation-test-secret-0123456789abcdef";
const HOOK_SECRET: &str = "npm-hook-secret-0123456789";

fn tiercache(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(args)
        .env_remove("TIERCACHE_TOKEN")
        .env_remove("TIERCACHE_SERVER")
        .env_remove("TIERCACHE_CONFIG")
        .output()
        .expect("tiercache runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The newest version a node's packument of `name` lists.
async fn latest(url: &str) -> String {
    let doc = get_json(&client(), url).await;
    doc["dist-tags"]["latest"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn status(method: reqwest::Method, url: &str) -> u16 {
    client()
        .request(method, url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_purges_and_epochs_on_one_node() {
    let origin = Origin::start(vec![Package::with_versions("widget", &["1.0.0"])]).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--npm-upstream", &origin.url()]);
    let base = server.base.clone();
    let packument = server.url("/npm/widget");

    // A package changed upstream: the cached packument is fresh for minutes, but the event
    // makes the next install (the real npm client) get the new version at once.
    let installed = |n: usize| {
        let project = dir.path().join(format!("p{n}"));
        let home = dir.path().join(format!("home{n}"));
        let registry = server.url("/npm/");
        async move {
            write_project(&project, &[("widget", "*")]);
            let out = install("npm", &project, &registry, &home).await;
            assert!(out.status.success(), "{}", show(&out));
            let manifest = std::fs::read(project.join("node_modules/widget/package.json")).unwrap();
            serde_json::from_slice::<Value>(&manifest).unwrap()["version"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(installed(1).await, "1.0.0");
    origin.publish("widget", Version::new("1.1.0"));
    assert_eq!(
        latest(&packument).await,
        "1.0.0",
        "still fresh in the cache"
    );
    let (ok, out, err) = tiercache(&["invalidate", "package-update", "widget", "--server", &base]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("removed: L1"), "{out}");
    assert_eq!(installed(2).await, "1.1.0");
    assert_eq!(latest(&packument).await, "1.1.0");

    // A manual purge: the dry run counts exactly what the real one removes.
    let tgz = server.url("/npm/widget/-/widget-1.1.0.tgz");
    assert_eq!(status(reqwest::Method::GET, &tgz).await, 200);
    let purge = |dry: bool| {
        let mut args = vec![
            "purge",
            "--prefix",
            "global/npm-",
            "--server",
            &base,
            "--json",
        ];
        if dry {
            args.push("--dry-run");
        }
        let (ok, out, err) = tiercache(&args);
        assert!(ok, "{out}{err}");
        serde_json::from_str::<Value>(&out).unwrap()["removed"].clone()
    };
    let dry = purge(true);
    assert!(
        dry["l2"].as_u64().unwrap() >= 4,
        "index, full, corgi, tarball: {dry}"
    );
    assert_eq!(
        purge(false),
        dry,
        "the real purge removed what the dry run counted"
    );
    assert_eq!(purge(true)["l2"], 0, "nothing left");

    // An epoch bump: entries of the kind written before it are misses (the origin is asked
    // again), entries written after it are hits.
    assert_eq!(status(reqwest::Method::GET, &tgz).await, 200);
    let before = origin.tarball_requests_for("widget", "1.1.0");
    let (ok, out, err) = tiercache(&[
        "invalidate",
        "epoch",
        "--kind",
        "npm-tgz",
        "1",
        "--server",
        &base,
    ]);
    assert!(ok, "{out}{err}");
    assert_eq!(status(reqwest::Method::GET, &tgz).await, 200);
    assert_eq!(origin.tarball_requests_for("widget", "1.1.0"), before + 1);
    assert_eq!(status(reqwest::Method::GET, &tgz).await, 200);
    assert_eq!(origin.tarball_requests_for("widget", "1.1.0"), before + 1);
    let epochs = get_json(&client(), &server.url("/admin/epochs")).await;
    assert_eq!(epochs["current"]["kinds"]["npm-tgz"], 1, "{epochs}");
    // Epochs only go up.
    let (ok, _, err) = tiercache(&[
        "invalidate",
        "epoch",
        "--kind",
        "npm-tgz",
        "0",
        "--server",
        &base,
    ]);
    assert!(!ok && err.contains("409"), "{err}");

    // A team's build artifacts, and a template's scope.
    let art = server.url("/v8/artifacts/0123456789abcdef?slug=web");
    let put = client().put(&art).body("dist").send().await.unwrap();
    assert!(put.status().is_success());
    let obj = server.url("/objects/template/vite/object/deps");
    client().put(&obj).body("deps").send().await.unwrap();
    let (ok, out, err) = tiercache(&["invalidate", "build-invalidate", "web", "--server", &base]);
    assert!(ok, "{out}{err}");
    assert_eq!(status(reqwest::Method::GET, &art).await, 404);
    let (ok, out, err) = tiercache(&["invalidate", "template-update", "vite", "--server", &base]);
    assert!(ok, "{out}{err}");
    assert_eq!(status(reqwest::Method::GET, &obj).await, 404);

    // Malformed events are refused with the reason.
    for bad in [
        r#"{"event":"package-update","name":"../etc"}"#,
        r#"{"event":"reboot"}"#,
        r#"{"event":"epoch","epoch":1}"#,
        "not json",
    ] {
        let r = client()
            .post(server.url("/admin/events"))
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

fn signature(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, HOOK_SECRET.as_bytes());
    format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(&key, body).as_ref())
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_hooks_need_a_valid_signature_and_admin_endpoints_an_admin() {
    let origin = Origin::start(vec![Package::with_versions("widget", &["1.0.0"])]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiercache.toml");
    std::fs::write(&config, "[npm]\nhook_secret_env = \"NPM_HOOK_SECRET\"\n").unwrap();
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[
            "--npm-upstream",
            &origin.url(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("NPM_HOOK_SECRET", HOOK_SECRET),
            ("TIERCACHE_AUTH_SECRET", SECRET),
        ],
    );
    let packument = server.url("/npm/widget");
    assert_eq!(latest(&packument).await, "1.0.0");
    origin.publish("widget", Version::new("2.0.0"));
    let hook = server.url("/hooks/npm");
    let send = |body: &'static [u8], sig: Option<String>| {
        let hook = hook.clone();
        async move {
            let mut req = client().post(&hook).body(body);
            if let Some(s) = sig {
                req = req.header("x-npm-signature", s);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    let body: &'static [u8] =
        br#"{"event":"package:publish","name":"widget","type":"package","version":"2.0.0"}"#;
    assert_eq!(send(body, None).await, 401);
    assert_eq!(send(body, Some("sha256=00".into())).await, 401);
    assert_eq!(send(body, Some(signature(b"another body"))).await, 401);
    assert_eq!(send(b"{not json", Some(signature(b"{not json"))).await, 400);
    assert_eq!(latest(&packument).await, "1.0.0", "nothing applied so far");
    assert_eq!(send(body, Some(signature(body))).await, 200);
    assert_eq!(latest(&packument).await, "2.0.0");

    // The admin endpoints refuse users and anonymous callers.
    let user = {
        let out = Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(["token", "issue", "--user", "alice"])
            .env("TIERCACHE_AUTH_SECRET", SECRET)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    for path in ["/admin/events", "/admin/invalidate"] {
        let r = client()
            .post(server.url(path))
            .bearer_auth(&user)
            .body(r#"{"event":"template-update","name":"vite"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let r = client().post(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_reaches_every_node_even_one_that_was_down_and_survives_a_redis_restart() {
    let mut fleet = Fleet::start(vec![Package::with_versions("widget", &["1.0.0"])], 3).await;
    let packument = |f: &Fleet, i: usize| f.url(i, "/npm/widget");
    for i in 0..3 {
        assert_eq!(latest(&packument(&fleet, i)).await, "1.0.0");
    }
    let event = |f: &Fleet, i: usize| {
        let base = f.base(i);
        async move {
            tokio::task::spawn_blocking(move || {
                tiercache(&["invalidate", "package-update", "widget", "--server", &base])
            })
            .await
            .unwrap()
        }
    };

    // An event on A takes effect on B and C.
    fleet.origin.publish("widget", Version::new("1.1.0"));
    let (ok, out, err) = event(&fleet, 0).await;
    assert!(ok && out.contains("sent to the fleet"), "{out}{err}");
    for i in 1..3 {
        let url = packument(&fleet, i);
        wait_for(&format!("node {i} sees 1.1.0"), || {
            let url = url.clone();
            async move { (latest(&url).await == "1.1.0").then_some(()) }
        })
        .await;
    }

    // C is down while an event happens; restarted, it applies it before serving the entry.
    fleet.kill9(2);
    fleet.origin.publish("widget", Version::new("1.2.0"));
    let (ok, out, err) = event(&fleet, 0).await;
    assert!(ok, "{out}{err}");
    fleet.restart(2);
    assert_eq!(
        latest(&packument(&fleet, 2)).await,
        "1.2.0",
        "C served a packument an event it had missed invalidated"
    );

    // Redis restarts (empty) between two events: the next one still reaches B.
    fleet.restart_redis();
    fleet.origin.publish("widget", Version::new("1.3.0"));
    wait_for("Redis takes the event", || async {
        let (ok, _, _) = event(&fleet, 0).await;
        ok.then_some(())
    })
    .await;
    let url = packument(&fleet, 1);
    wait_for("node 1 sees 1.3.0", || {
        let url = url.clone();
        async move { (latest(&url).await == "1.3.0").then_some(()) }
    })
    .await;
}
