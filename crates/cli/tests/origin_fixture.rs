//! Self-test of the local npm origin fixture (`common::origin`): real packuments, real
//! tarballs, the controls, and a real `npm install` straight against it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::clients::{have, install, show, write_project};
use common::origin::{Mode, Origin, Package, Version, integrity_of, shasum_of, unpack_tgz};
use serde_json::Value;

fn packages() -> Vec<Package> {
    vec![
        Package::with_versions("widget", &["1.0.0", "1.1.0", "2.0.0-beta.1"])
            .tag("latest", "1.1.0")
            .tag("next", "2.0.0-beta.1"),
        Package::new("@acme/util").version(Version::new("1.0.0").file(
            "index.js",
            "module.exports = { util: true, version: '1.0.0' };\n",
        )),
        Package::new("chain-a").version(Version::new("1.0.0").dep("chain-b", "^1.0.0").file(
            "index.js",
            "module.exports = { name: 'chain-a', b: require('chain-b') };\n",
        )),
        Package::new("chain-b")
            .version(Version::new("1.0.0"))
            .version(Version::new("1.2.0").dep("chain-c", "~2.0.0").file(
                "index.js",
                "module.exports = { name: 'chain-b', version: '1.2.0', c: require('chain-c') };\n",
            )),
        Package::with_versions("chain-c", &["2.0.0", "2.0.1", "3.0.0"]),
    ]
}

fn client() -> reqwest::Client {
    // The workspace's reqwest has `rustls-no-provider` (for the npm upstream client), so a
    // client cannot be built before a crypto provider is installed, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    common::client()
}

async fn get(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url).send().await.expect("origin answers")
}

#[tokio::test]
async fn serves_real_packuments_and_tarballs() {
    let origin = Origin::start(packages()).await;
    let c = client();
    let base = origin.url();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with('/'));

    for p in packages() {
        let encoded = p.name.replace('/', "%2f");
        let r = get(&c, &format!("{base}{encoded}")).await;
        assert_eq!(r.status(), 200, "{}", p.name);
        assert_eq!(r.headers()["content-type"], "application/json");
        let etag = r.headers()["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert_eq!(Some(&etag), origin.etag(&p.name).as_ref());
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["_id"], p.name.as_str());
        assert_eq!(doc["name"], p.name.as_str());
        assert!(doc.get("modified").is_none(), "no top-level modified");
        assert!(doc["time"]["created"].as_str().unwrap().ends_with('Z'));
        assert!(doc["time"]["modified"].as_str().unwrap().ends_with('Z'));
        let latest = doc["dist-tags"]["latest"].as_str().unwrap();
        assert!(p.get(latest).is_some());

        let versions = doc["versions"].as_object().unwrap();
        assert_eq!(versions.len(), p.versions.len());
        for v in &p.versions {
            let m = &versions[&v.version];
            assert_eq!(m["name"], p.name.as_str());
            assert_eq!(m["version"], v.version.as_str());
            assert_eq!(
                m["dependencies"],
                serde_json::to_value(&v.dependencies).unwrap()
            );
            assert!(doc["time"][&v.version].is_string());
            let dist = &m["dist"];
            let tarball_url = dist["tarball"].as_str().unwrap();
            assert_eq!(
                tarball_url,
                format!(
                    "http://127.0.0.1:{}/{}/-/{}-{}.tgz",
                    origin.port(),
                    p.name,
                    p.basename(),
                    v.version
                )
            );
            assert_eq!(tarball_url, origin.tarball_url(&p.name, &v.version));
            let integrity = dist["integrity"].as_str().unwrap();
            assert_eq!(Some(integrity.to_owned()), p.integrity(&v.version));
            assert_eq!(
                Some(integrity.to_owned()),
                origin.integrity(&p.name, &v.version)
            );

            let r = get(&c, tarball_url).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/octet-stream");
            let bytes = r.bytes().await.unwrap();
            assert_eq!(integrity_of(&bytes), integrity);
            assert_eq!(shasum_of(&bytes), dist["shasum"].as_str().unwrap());
            assert_eq!(dist["shasum"].as_str().unwrap().len(), 40);

            let files = unpack_tgz(&bytes).expect("a gzip'd tar");
            assert!(files.iter().all(|(path, _)| path.starts_with("package/")));
            let (_, pj) = files
                .iter()
                .find(|(path, _)| path == "package/package.json")
                .expect("package/package.json");
            let pj: Value = serde_json::from_slice(pj).unwrap();
            assert_eq!(pj["name"], p.name.as_str());
            assert_eq!(pj["version"], v.version.as_str());
            assert_eq!(pj["main"], "index.js");
            assert!(files.iter().any(|(path, _)| path == "package/index.js"));
        }
    }

    // Every spelling of a scoped name, and the version manifest routes.
    let mut etags = Vec::new();
    for path in [
        "@acme%2futil",
        "@acme%2Futil",
        "@acme/util",
        "%40acme%2futil",
    ] {
        let r = get(&c, &format!("{base}{path}")).await;
        assert_eq!(r.status(), 200, "{path}");
        etags.push(r.headers()["etag"].clone());
        let doc: Value = r.json().await.unwrap();
        assert_eq!(doc["name"], "@acme/util");
    }
    assert!(etags.windows(2).all(|w| w[0] == w[1]));
    let m: Value = get(&c, &format!("{base}widget/next"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["version"], "2.0.0-beta.1");
    let m: Value = get(&c, &format!("{base}@acme%2futil/1.0.0"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["version"], "1.0.0");
    let doc = origin.packument("widget").unwrap();
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0");
    assert_eq!(doc["dist-tags"]["next"], "2.0.0-beta.1");
    // Without a latest tag, the last release (not prerelease) is latest.
    assert_eq!(
        origin.packument("chain-c").unwrap()["dist-tags"]["latest"],
        "3.0.0"
    );

    // Unknown things are 404 {"error":"Not found"}.
    for path in [
        "nope",
        "@acme%2fnope",
        "widget/-/widget-9.9.9.tgz",
        "nope/-/nope-1.0.0.tgz",
        "widget/9.9.9",
        "",
    ] {
        let r = get(&c, &format!("{base}{path}")).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"error": "Not found"}));
    }

    // If-None-Match: 304 for the current ETag (also in a list, or weak), 200 otherwise.
    let etag = origin.etag("widget").unwrap();
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let r = c
            .get(format!("{base}widget"))
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    }
    let r = c
        .get(format!("{base}widget"))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Everything was counted.
    let total = origin.requests().len();
    assert_eq!(
        total,
        origin.packument_requests() + origin.tarball_requests() + origin.requests_to("/")
    );
    assert_eq!(origin.packument_requests_for("@acme/util"), 1 + 4 + 1);
    assert_eq!(origin.requests_to("/@acme%2Futil"), 1);
    assert_eq!(origin.tarball_requests_for("chain-c", "3.0.0"), 1);
    assert_eq!(origin.tarball_requests_for("widget", "9.9.9"), 1);
    assert_eq!(origin.packument_requests_for("widget"), 1 + 1 + 3 + 1 + 1);
}

#[tokio::test]
async fn controls_publish_modes_corruption_and_stop() {
    let origin = Origin::start(packages()).await;
    let c = client();
    let base = origin.url();

    // publish: a new version, latest moves, time.modified and the ETag change.
    let before = origin.packument("chain-c").unwrap();
    let etag_before = origin.etag("chain-c").unwrap();
    origin.publish("chain-c", Version::new("3.1.0").dep("chain-b", "1"));
    let r = get(&c, &format!("{base}chain-c")).await;
    let etag_after = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag_after, etag_before);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["dist-tags"]["latest"], "3.1.0");
    assert_eq!(after["versions"]["3.1.0"]["dependencies"]["chain-b"], "1");
    assert!(after["time"]["3.1.0"].is_string());
    assert!(
        after["time"]["modified"].as_str().unwrap() > before["time"]["modified"].as_str().unwrap()
    );
    assert_eq!(after["time"]["created"], before["time"]["created"]);
    let r = c
        .get(format!("{base}chain-c"))
        .header("if-none-match", &etag_before)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the old ETag no longer matches");
    let url = after["versions"]["3.1.0"]["dist"]["tarball"]
        .as_str()
        .unwrap();
    let bytes = get(&c, url).await.bytes().await.unwrap();
    assert_eq!(
        integrity_of(&bytes),
        after["versions"]["3.1.0"]["dist"]["integrity"]
    );
    // publishing a brand-new package creates it
    origin.publish("@acme/new", Version::new("0.1.0"));
    assert_eq!(get(&c, &format!("{base}@acme%2fnew")).await.status(), 200);

    // corrupt_tarball: other (valid) bytes, integrity mismatch; the packument is unchanged.
    let url = origin.tarball_url("widget", "1.0.0");
    let good = origin.integrity("widget", "1.0.0").unwrap();
    let etag = origin.etag("widget").unwrap();
    origin.corrupt_tarball("widget", "1.0.0", true);
    let bad = get(&c, &url).await.bytes().await.unwrap();
    assert_ne!(integrity_of(&bad), good);
    assert!(unpack_tgz(&bad).is_ok());
    assert_eq!(origin.etag("widget").unwrap(), etag);
    origin.corrupt_tarball("widget", "1.0.0", false);
    assert_eq!(
        integrity_of(&get(&c, &url).await.bytes().await.unwrap()),
        good
    );

    // Fail500
    origin.set_mode(Mode::Fail500);
    assert_eq!(get(&c, &format!("{base}widget")).await.status(), 500);
    assert_eq!(get(&c, &url).await.status(), 500);
    // Slow
    origin.set_mode(Mode::Slow(Duration::from_millis(300)));
    let t = Instant::now();
    assert_eq!(get(&c, &format!("{base}widget")).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    origin.set_mode(Mode::Normal);
    assert_eq!(get(&c, &format!("{base}widget")).await.status(), 200);

    // stop: an in-flight (slow) request dies, the pooled keep-alive connection dies, and new
    // connections are refused.
    origin.set_mode(Mode::Slow(Duration::from_secs(30)));
    let seen = origin.requests().len();
    let slow = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}widget");
        async move { c.get(url).send().await }
    });
    while origin.requests().len() == seen {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    origin.stop().await;
    assert!(!origin.is_running());
    let r = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .expect("the in-flight request ends when the origin stops")
        .unwrap();
    assert!(r.is_err(), "no response from a killed origin: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let e = c.get(format!("{base}widget")).send().await.unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    let e = std::net::TcpStream::connect(("127.0.0.1", origin.port())).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);

    // restart: same port, same packages and counters.
    origin.set_mode(Mode::Normal);
    let n = origin.packument_requests_for("widget");
    origin.restart().await;
    assert_eq!(get(&c, &format!("{base}widget")).await.status(), 200);
    assert_eq!(origin.packument_requests_for("widget"), n + 1);
    origin.clear_requests();
    assert!(origin.requests().is_empty());
    assert_eq!(origin.tarball_requests(), 0);
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_npm_installs_from_the_origin() {
    if !have("npm") {
        eprintln!("note: npm not found; skipping the real npm install against the origin");
        return;
    }
    let origin = Origin::start(packages()).await;
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join("project");
    write_project(
        &project,
        &[
            ("chain-a", "^1.0.0"),
            ("@acme/util", "1.0.0"),
            ("widget", "*"),
        ],
    );
    let out = install("npm", &project, &origin.url(), &tmp.path().join("home")).await;
    assert!(out.status.success(), "npm install failed:\n{}", show(&out));

    let nm = project.join("node_modules");
    for (name, version) in [
        ("chain-a", "1.0.0"),
        ("chain-b", "1.2.0"),
        ("chain-c", "2.0.1"),
        ("@acme/util", "1.0.0"),
        ("widget", "1.1.0"),
    ] {
        let pj = read_json(&nm.join(name).join("package.json"));
        assert_eq!(pj["version"], version, "{name}");
        assert!(nm.join(name).join("index.js").is_file());
        assert_eq!(origin.tarball_requests_for(name, version), 1, "{name}");
    }
    let lock = read_json(&project.join("package-lock.json"));
    assert_eq!(
        lock["packages"]["node_modules/chain-c"]["integrity"],
        origin.integrity("chain-c", "2.0.1").unwrap()
    );
    let util = std::fs::read_to_string(nm.join("@acme/util/index.js")).unwrap();
    assert!(util.contains("util: true"));

    // The installed chain actually loads: a → b → c.
    if have("node") {
        let out = Command::new("node")
            .args(["-p", "JSON.stringify(require('chain-a'))"])
            .current_dir(&project)
            .output()
            .unwrap();
        let loaded: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(loaded["b"]["version"], "1.2.0");
        assert_eq!(loaded["b"]["c"]["version"], "2.0.1");
    }

    // What npm asked for (shown with --nocapture): npm 11 sends `Accept: application/json`
    // for packuments, that is the full documents the origin serves.
    let log = origin.request_log();
    for r in &log {
        eprintln!(
            "npm → origin: {} {} accept={:?}",
            r.method, r.path, r.accept
        );
    }
    assert!(log.iter().any(|r| r.path == "/chain-a"));
    assert!(origin.packument_requests_for("@acme/util") >= 1);
}
