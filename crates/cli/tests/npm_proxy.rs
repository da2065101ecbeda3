//! The npm registry proxy against the running binary, a local origin, and the real clients.

mod common;

use std::path::Path;
use std::time::Duration;

use common::clients::{have, install, show, write_project};
use common::origin::{Mode, Origin, Package, Version};
use common::{Server, client, get_json, get_text, metric};
use reqwest::StatusCode;
use serde_json::Value;

const CORGI: &str = "application/vnd.npm.install-v1+json";

fn packages() -> Vec<Package> {
    vec![
        Package::with_versions("widget", &["1.0.0", "1.1.0", "2.0.0-beta.1"])
            .tag("latest", "1.1.0")
            .tag("next", "2.0.0-beta.1"),
        Package::new("@acme/util").version(Version::new("1.0.0")),
        Package::new("chain-a").version(Version::new("1.0.0").dep("chain-b", "^1.0.0")),
        Package::new("chain-b")
            .version(Version::new("1.0.0"))
            .version(Version::new("1.2.0").dep("chain-c", "~2.0.0")),
        Package::with_versions("chain-c", &["2.0.0", "2.0.1", "3.0.0"]),
        Package::with_versions("never-cached", &["1.0.0"]),
        Package::new("big").version(Version::new("1.0.0").file("blob.bin", noise(3 * 1024 * 1024))),
    ]
}

/// Incompressible bytes, so the tarball is as large as its content.
fn noise(len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut b = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut b);
    b
}

/// Starts tiercache in front of `origin`, with short freshness and quick retries so tests
/// of staleness and failure run in seconds.
fn start(dir: &Path, origin: &Origin, fresh_for: &str) -> Server {
    let config = dir.join("tiercache.toml");
    std::fs::write(
        &config,
        format!(
            "[npm]\nfresh_for = \"{fresh_for}\"\nretries = 1\nretry_min = \"20ms\"\nretry_max = \"50ms\"\nbreaker_threshold = 50\n"
        ),
    )
    .unwrap();
    let data = dir.join("data");
    Server::start(
        &data,
        &[
            "--npm-upstream",
            &origin.url(),
            "--config",
            config.to_str().unwrap(),
        ],
    )
}

async fn get(c: &reqwest::Client, url: &str, accept: Option<&str>) -> reqwest::Response {
    let mut req = c.get(url);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abbreviated_and_full_documents() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();

    let r = get(
        &c,
        &server.url("/npm/widget"),
        Some(&format!("{CORGI}; q=1.0, application/json; q=0.8, */*")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], CORGI);
    assert_eq!(r.headers()["x-cache"], "MISS");
    let corgi: Value = r.json().await.unwrap();
    let upstream = origin.packument("widget").unwrap();
    assert_eq!(corgi["modified"], upstream["time"]["modified"]);
    assert_eq!(corgi["dist-tags"], upstream["dist-tags"]);
    assert!(corgi.get("time").is_none());
    let v = &corgi["versions"]["1.1.0"];
    assert_eq!(
        v["dist"]["integrity"],
        origin.integrity("widget", "1.1.0").unwrap()
    );
    assert_eq!(
        v["dist"]["tarball"],
        format!("{}/npm/widget/-/widget-1.1.0.tgz", server.base)
    );

    let r = get(&c, &server.url("/npm/widget"), None).await;
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["x-cache"], "HIT");
    let full: Value = r.json().await.unwrap();
    assert_eq!(full["time"], upstream["time"]);
    assert_eq!(
        full["versions"]["1.0.0"]["dist"]["shasum"],
        upstream["versions"]["1.0.0"]["dist"]["shasum"]
    );
    assert_eq!(
        full["versions"]["1.0.0"]["dist"]["tarball"],
        format!("{}/npm/widget/-/widget-1.0.0.tgz", server.base)
    );
    // One origin request served both forms.
    assert_eq!(origin.packument_requests_for("widget"), 1);

    // Forwarded host and scheme are honoured in the links.
    let r = c
        .get(server.url("/npm/widget"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "cache.sandbox.test")
        .send()
        .await
        .unwrap();
    let full: Value = r.json().await.unwrap();
    assert_eq!(
        full["versions"]["1.0.0"]["dist"]["tarball"],
        "https://cache.sandbox.test/npm/widget/-/widget-1.0.0.tgz"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_names_in_every_encoding() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();
    let mut docs = Vec::new();
    for path in [
        "/npm/@acme%2futil",
        "/npm/@acme%2Futil",
        "/npm/@acme/util",
        "/npm/%40acme%2futil",
    ] {
        let r = get(&c, &server.url(path), Some(CORGI)).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        docs.push(r.text().await.unwrap());
    }
    assert!(docs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(origin.packument_requests_for("@acme/util"), 1);
    let doc: Value = serde_json::from_str(&docs[0]).unwrap();
    let tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        tarball,
        format!("{}/npm/@acme/util/-/util-1.0.0.tgz", server.base)
    );
    for url in [
        tarball.clone(),
        server.url("/npm/@acme%2futil/-/util-1.0.0.tgz"),
    ] {
        let r = get(&c, &url, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            origin.tarball("@acme/util", "1.0.0").unwrap().as_slice()
        );
    }
    assert_eq!(origin.tarball_requests_for("@acme/util", "1.0.0"), 1);
    // Hostile names are refused before anything is fetched.
    for path in [
        "/npm/..%2f..%2fetc",
        "/npm/%2e%2e",
        "/npm/widget/-/..%2fx.tgz",
        "/npm/.bin",
        "/npm/a%00b",
    ] {
        let (status, body) = common::raw_request(&server.base, "GET", path, b"");
        assert_eq!(status, 400, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests_and_304() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();
    let url = server.url("/npm/chain-c");
    let r = get(&c, &url, Some(CORGI)).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let last_modified = r.headers()["last-modified"].to_str().unwrap().to_owned();

    let with = |name: &'static str, value: String| {
        let c = c.clone();
        let url = url.clone();
        async move {
            c.get(&url)
                .header("accept", CORGI)
                .header(name, value)
                .send()
                .await
                .unwrap()
        }
    };
    let r = with("if-none-match", etag.clone()).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], etag.as_str());
    let r = with("if-none-match", "\"something-else\"".into()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = with("if-modified-since", last_modified.clone()).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = with("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT".into()).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The full form is a different representation: the corgi ETag does not match it.
    let r = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Never a 304 to an unconditional request.
    for _ in 0..3 {
        assert_eq!(get(&c, &url, Some(CORGI)).await.status(), StatusCode::OK);
    }
    // Tarballs: strong ETag, immutable.
    let t = server.url("/npm/chain-c/-/chain-c-2.0.1.tgz");
    let r = get(&c, &t, None).await;
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = c.get(&t).header("if-none-match", tag).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_publish_is_seen_without_waiting_for_freshness() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();
    let doc: Value = get(&c, &server.url("/npm/chain-c"), Some(CORGI))
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["versions"].get("3.1.0").is_none());
    origin.publish("chain-c", Version::new("3.1.0"));
    // The packument is still fresh, but a tarball it does not list makes the proxy ask again.
    let r = get(&c, &server.url("/npm/chain-c/-/chain-c-3.1.0.tgz"), None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        origin.tarball("chain-c", "3.1.0").unwrap().as_slice()
    );
    let doc: Value = get(&c, &server.url("/npm/chain-c"), Some(CORGI))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "3.1.0");
    assert_eq!(
        doc["modified"],
        origin.packument("chain-c").unwrap()["time"]["modified"]
    );
    // A tarball that really does not exist is a 404, after one revalidation.
    let before = origin.packument_requests_for("chain-c");
    let r = get(&c, &server.url("/npm/chain-c/-/chain-c-9.9.9.tgz"), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(origin.packument_requests_for("chain-c"), before + 1);
    assert_eq!(
        get(&c, &server.url("/npm/no-such-package"), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_for_a_cold_tarball_make_one_origin_request() {
    let origin = Origin::start(packages()).await;
    origin.set_mode(Mode::Slow(Duration::from_millis(300)));
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();
    let want = origin.tarball("widget", "1.0.0").unwrap();
    let url = server.url("/npm/widget/-/widget-1.0.0.tgz");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let r = c.get(&url).send().await.unwrap();
            (r.status(), r.bytes().await.unwrap())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_ref(), want.as_slice());
    }
    assert_eq!(origin.tarball_requests_for("widget", "1.0.0"), 1);
    assert_eq!(origin.packument_requests_for("widget"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tarball_failing_its_integrity_check_is_never_cached() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();
    origin.corrupt_tarball("chain-b", "1.2.0", true);
    let url = server.url("/npm/chain-b/-/chain-b-1.2.0.tgz");
    let r = get(&c, &url, None).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body: Value = r.json().await.unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("integrity"), "{msg}");
    // Nothing was cached: the next request goes to the origin again, and once the origin
    // serves the right bytes they install fine.
    origin.corrupt_tarball("chain-b", "1.2.0", false);
    let r = get(&c, &url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        origin.tarball("chain-b", "1.2.0").unwrap().as_slice()
    );
    assert_eq!(origin.tarball_requests_for("chain-b", "1.2.0"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_tarball_streams_while_fetched_and_is_cut_off_if_it_fails() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let c = client();
    let url = server.url("/npm/big/-/big-1.0.0.tgz");
    let want = origin.tarball("big", "1.0.0").unwrap();
    assert!(want.len() > 2 * 1024 * 1024);

    origin.corrupt_tarball("big", "1.0.0", true);
    let r = get(&c, &url, None).await;
    // Past the held-back first MiB the response has started; a failed check cuts it off,
    // so the client never receives a complete, wrong tarball.
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert!(
        r.bytes().await.is_err(),
        "a corrupt tarball was delivered whole"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    origin.corrupt_tarball("big", "1.0.0", false);
    let c = client();
    let r = get(&c, &url, None).await;
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert_eq!(r.bytes().await.unwrap().as_ref(), want.as_slice());
    let r = get(&c, &url, None).await;
    assert_eq!(r.headers()["x-cache"], "HIT");
    assert_eq!(r.bytes().await.unwrap().as_ref(), want.as_slice());
    assert_eq!(origin.tarball_requests_for("big", "1.0.0"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_trouble_is_503_or_stale_never_404() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "1s");
    let c = client();
    assert_eq!(
        get(&c, &server.url("/npm/widget"), Some(CORGI))
            .await
            .status(),
        StatusCode::OK
    );
    origin.set_mode(Mode::Fail500);
    // Never cached: 503 with Retry-After, not 404.
    let r = get(&c, &server.url("/npm/never-cached"), Some(CORGI)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let r = get(
        &c,
        &server.url("/npm/never-cached/-/never-cached-1.0.0.tgz"),
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Cached but no longer fresh: served stale, and said so.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&c, &server.url("/npm/widget"), Some(CORGI)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-cache"], "STALE");
    assert!(r.headers()["warning"].to_str().unwrap().contains("110"));
    // The origin killed outright: the same.
    origin.set_mode(Mode::Normal);
    origin.stop().await;
    let r = get(&c, &server.url("/npm/widget"), Some(CORGI)).await;
    assert_eq!(r.headers()["x-cache"], "STALE");
    let r = get(&c, &server.url("/npm/never-cached"), Some(CORGI)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Back up: revalidated with the stored ETag (a 304 upstream).
    origin.restart().await;
    let r = get(&c, &server.url("/npm/widget"), Some(CORGI)).await;
    assert_eq!(r.headers()["x-cache"], "REVALIDATED");
    let m = get_text(&c, &server.url("/metrics")).await;
    assert!(
        metric(
            &m,
            "tiercache_requests_total{kind=\"npm\",route=\"packument\",result=\"stale\"}"
        )
        .is_some_and(|v| v >= 2.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_scopes_are_cached_for_their_requester_and_carry_the_clients_credentials() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tiercache.toml");
    std::fs::write(&config, "[npm]\nprivate_scopes = [\"@acme\"]\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--npm-upstream",
            &origin.url(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let c = client();
    for round in 0..2 {
        let r = c
            .get(server.url("/npm/@acme%2futil"))
            .header("accept", CORGI)
            .header("authorization", "Bearer alice-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let expected = if round == 0 { "MISS" } else { "HIT" };
        assert_eq!(r.headers()["x-cache"], expected);
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .starts_with("private")
        );
        let doc: Value = r.json().await.unwrap();
        let tarball = doc["versions"]["1.0.0"]["dist"]["tarball"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(tarball.starts_with(&server.base), "{tarball}");
        let r = c
            .get(&tarball)
            .header("authorization", "Bearer alice-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .starts_with("private")
        );
        assert_eq!(
            r.bytes().await.unwrap().as_ref(),
            origin.tarball("@acme/util", "1.0.0").unwrap().as_slice()
        );
    }
    // Single-user mode: the one user's scope keeps them; the origin was asked once, with the
    // client's own credentials.
    assert_eq!(origin.packument_requests_for("@acme/util"), 1);
    assert_eq!(origin.tarball_requests_for("@acme/util", "1.0.0"), 1);
    assert!(
        origin
            .request_log()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer alice-token"))
    );
    // Private package names never appear in the shared statistics.
    let stats = get_json(&c, &server.url("/admin/stats")).await;
    assert!(!stats.to_string().contains("@acme"), "{stats}");
    // Public packages still go through the cache, without anyone's credentials.
    origin.clear_requests();
    let r = c
        .get(server.url("/npm/widget"))
        .header("authorization", "Bearer alice-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache"], "MISS");
    assert!(
        origin
            .request_log()
            .iter()
            .all(|r| r.authorization.is_none())
    );
}

fn assert_installed(project: &Path, origin: &Origin) {
    let nm = project.join("node_modules");
    for (name, version) in [
        ("chain-a", "1.0.0"),
        ("chain-b", "1.2.0"),
        ("chain-c", "2.0.1"),
        ("@acme/util", "1.0.0"),
        ("widget", "1.1.0"),
    ] {
        let pj: Value = serde_json::from_slice(
            &std::fs::read(nm.join(name).join("package.json")).unwrap_or_default(),
        )
        .unwrap_or(Value::Null);
        // pnpm links only direct dependencies at the top; look in its virtual store too.
        let found = pj["version"] == version
            || std::fs::read_dir(nm.join(".pnpm")).is_ok_and(|rd| {
                rd.filter_map(Result::ok).any(|e| {
                    e.file_name().to_string_lossy()
                        == format!("{}@{version}", name.replace('/', "+"))
                })
            });
        assert!(found, "{name}@{version} not installed");
    }
    let _ = origin;
}

async fn client_installs_then_reinstalls_from_cache(tool: &str) {
    assert!(
        have(tool),
        "{tool} is not installed: run scripts/test.sh, which installs it"
    );
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "1s");
    let registry = server.url("/npm/");
    let deps = [
        ("chain-a", "^1.0.0"),
        ("@acme/util", "1.0.0"),
        ("widget", "^1.0.0"),
    ];

    // First install: everything comes from the origin, once.
    let project = dir.path().join("p1");
    write_project(&project, &deps);
    let out = install(tool, &project, &registry, &dir.path().join("home1")).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_installed(&project, &origin);
    let first = origin.tarball_requests();
    assert_eq!(first, 5, "{:?}", origin.requests());

    // Second install: fresh client cache and store, no node_modules: zero tarball
    // requests reach the origin.
    let project = dir.path().join("p2");
    write_project(&project, &deps);
    let out = install(tool, &project, &registry, &dir.path().join("home2")).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_installed(&project, &origin);
    assert_eq!(
        origin.tarball_requests(),
        first,
        "tarballs were fetched from the origin again"
    );
    let m = get_text(&client(), &server.url("/metrics")).await;
    let hits =
        |tier: &str| metric(&m, &format!("tiercache_hits_total{{tier=\"{tier}\"}}")).unwrap_or(0.0);
    assert!(hits("l1") + hits("l2") >= 10.0, "{m}");
    assert!(
        metric(
            &m,
            "tiercache_requests_total{kind=\"npm\",route=\"tarball\",result=\"hit\"}"
        )
        .is_some_and(|v| v >= 5.0),
        "{m}"
    );

    // Third install with the origin killed (and packuments past their freshness): it
    // still succeeds from the cache.
    origin.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let project = dir.path().join("p3");
    write_project(&project, &deps);
    let out = install(tool, &project, &registry, &dir.path().join("home3")).await;
    assert!(out.status.success(), "{}", show(&out));
    assert_installed(&project, &origin);

    let stats = get_json(&client(), &server.url("/admin/stats")).await;
    assert_eq!(stats["npm"]["packages"], 5, "{stats}");
    assert!(
        stats["npm"]["top_packages"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_installs_through_the_proxy_and_again_without_the_origin() {
    client_installs_then_reinstalls_from_cache("npm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pnpm_installs_through_the_proxy_and_again_without_the_origin() {
    client_installs_then_reinstalls_from_cache("pnpm").await;
}

/// Opt-in: `TIERCACHE_TEST_PUBLIC_REGISTRY=1` installs a small package through the proxy from
/// the registry the npm client on this machine is configured with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_registry_opt_in() {
    if std::env::var_os("TIERCACHE_TEST_PUBLIC_REGISTRY").is_none() {
        eprintln!("note: set TIERCACHE_TEST_PUBLIC_REGISTRY=1 to run against the public registry");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let project = dir.path().join("p");
    write_project(&project, &[("is-number", "^7.0.0")]);
    let out = install(
        "npm",
        &project,
        &server.url("/npm/"),
        &dir.path().join("home"),
    )
    .await;
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        project
            .join("node_modules/is-number/package.json")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_fills_the_cache_and_stats_report_it() {
    let origin = Origin::start(packages()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &origin, "300s");
    let base = server.base.clone();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tiercache"))
                .args(args)
                .output()
                .unwrap()
        })
    };
    let args = [
        "prewarm",
        "npm",
        "--server",
        &base,
        "--deps",
        "chain-a",
        "@acme/util@^1",
        "widget@next",
    ];
    let out = run(args.iter().map(|s| s.to_string()).collect())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    for (name, version) in [
        ("chain-a", "1.0.0"),
        ("chain-b", "1.2.0"),
        ("chain-c", "2.0.1"),
        ("@acme/util", "1.0.0"),
        ("widget", "2.0.0-beta.1"),
    ] {
        assert_eq!(
            origin.tarball_requests_for(name, version),
            1,
            "{name}@{version}"
        );
    }
    let fetched = origin.tarball_requests();

    // An install afterwards needs nothing more from the origin.
    let project = dir.path().join("p");
    write_project(&project, &[("chain-a", "^1.0.0"), ("@acme/util", "1.0.0")]);
    let out = install(
        "npm",
        &project,
        &server.url("/npm/"),
        &dir.path().join("home"),
    )
    .await;
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(origin.tarball_requests(), fetched);

    // A missing package or range fails the run, and says which.
    let out = run(vec![
        "prewarm".into(),
        "npm".into(),
        "--server".into(),
        base.clone(),
        "chain-c@^9".into(),
    ])
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chain-c")
            || String::from_utf8_lossy(&out.stdout).contains("chain-c")
    );

    let out = run(vec![
        "stats".into(),
        "--server".into(),
        base.clone(),
        "--json".into(),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["npm"]["packages"], 5);
    let out = run(vec!["stats".into(), "--server".into(), base])
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("chain-a") && text.contains("hit rate"),
        "{text}"
    );
}
