//! CDN purges end to end, against the real binary: a real Varnish purged by URL and by tag,
//! the durable outbox across a restart with its target down, Cloudflare's and Fastly's
//! request formats and batching against a local recording server, webhook signatures,
//! credentials kept out of logs and answers, and refused input. Everything talks to
//! 127.0.0.1 only.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tiercache_testkit::varnish::Varnish;

const CF_TOKEN: &str = "cf-test-token-7f3a9c1e";
const FASTLY_TOKEN: &str = "fastly-test-token-51b2d8";
const HOOK_SECRET: &str = "hook-secret-0c4e6a";
const AUTH_SECRET: &str = "purge-test-secret-0123456789abcdef-0123456789";

// ---------------------------------------------------------------------------------------
// The server, with its log captured (to check no credential is ever printed).

struct Tc {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Tc {
    fn start(data_dir: &Path, config: &Path, env: &[(&str, &str)]) -> Tc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .env("CF_TEST_TOKEN", CF_TOKEN)
            .env("FASTLY_TEST_TOKEN", FASTLY_TOKEN)
            .env("HOOK_TEST_SECRET", HOOK_SECRET)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tiercache starts");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let addr: String = line[i + "listening on http://".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                if std::env::var_os("TIERCACHE_TEST_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("server did not start:\n{}", log.lock().unwrap()));
        Tc {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn port(&self) -> u16 {
        self.base.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "server exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not stop");
    }
}

impl Drop for Tc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tiercache <args>`; returns (success, stdout, stderr).
async fn cli(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(&args)
            .env_remove("TIERCACHE_TOKEN")
            .env_remove("TIERCACHE_SERVER")
            .output()
            .expect("tiercache runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("tiercache.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn purges(c: &reqwest::Client, tc: &Tc) -> Value {
    common::get_json(c, &tc.url("/admin/purges")).await
}

/// Waits until the outbox has no pending job; returns the last listing.
async fn until_delivered(c: &reqwest::Client, tc: &Tc, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let list = purges(c, tc).await;
        if list["pending"].as_array().unwrap().is_empty() {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "still pending after {within:?}: {list:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_credentials(text: &str, what: &str) {
    for secret in [CF_TOKEN, FASTLY_TOKEN, HOOK_SECRET] {
        assert!(!text.contains(secret), "{what} shows a credential:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// A recording HTTP endpoint: every request kept; answers 200 (Cloudflare's success JSON)
// unless a rule says otherwise.

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Answer `status` to the next `times` requests whose path starts with `prefix`.
struct Rule {
    prefix: String,
    status: u16,
    times: usize,
}

#[derive(Clone)]
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
}

impl Recorder {
    async fn start_on(port: u16) -> Recorder {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .expect("recorder binds");
        let port = listener.local_addr().unwrap().port();
        let rec = Recorder {
            port,
            seen: Arc::default(),
            rules: Arc::default(),
        };
        let app = axum::Router::new().fallback(record).with_state(rec.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        rec
    }

    async fn start() -> Recorder {
        Recorder::start_on(0).await
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn answer(&self, prefix: &str, status: u16, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            prefix: prefix.into(),
            status,
            times,
        });
    }

    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "recorder saw {} of {n} requests",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(State(rec): State<Recorder>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    rec.seen.lock().unwrap().push(Seen {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        headers,
        body,
    });
    let mut rules = rec.rules.lock().unwrap();
    if let Some(rule) = rules
        .iter_mut()
        .find(|r| r.times > 0 && path.starts_with(&r.prefix))
    {
        rule.times -= 1;
        let status = axum::http::StatusCode::from_u16(rule.status).unwrap();
        return (
            status,
            json!({ "success": false, "errors": [{ "message": "refused by the test" }] })
                .to_string(),
        )
            .into_response();
    }
    axum::Json(json!({ "success": true, "result": { "id": "x" } })).into_response()
}

/// HMAC-SHA256, written out here so the server's signature is checked independently.
fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    hex::encode(outer.finalize())
}

// ---------------------------------------------------------------------------------------
// Varnish.

/// Whether a response through Varnish was a cache hit (`X-Varnish` names two requests).
fn is_hit(r: &reqwest::Response) -> bool {
    r.headers()
        .get("x-varnish")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split_whitespace().count() == 2)
}

/// GETs `url` through Varnish: (body, was it a hit).
async fn through(c: &reqwest::Client, url: &str) -> (String, bool) {
    let r = c.get(url).send().await.expect("varnish answers");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    let hit = is_hit(&r);
    (r.text().await.unwrap(), hit)
}

/// The origin behind Varnish in the URL test: tiercache's own object API (answers with an
/// ETag); the deploy test serves `/assets/{site}/{path}` instead.
struct Origin<'a> {
    tc: &'a Tc,
}

impl Origin<'_> {
    fn path(&self, name: &str) -> String {
        format!("/objects/global/object/{name}")
    }

    async fn put(&self, c: &reqwest::Client, name: &str, body: &str) {
        let r = c
            .put(self.tc.url(&self.path(name)))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "PUT {name}: {}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn varnish_serves_new_content_after_a_url_purge() {
    let dir = tempfile::tempdir().unwrap();
    let vport = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[purge]\nretry_min = \"100ms\"\nretry_max = \"500ms\"\n\
             [[purge.providers]]\nkind = \"http\"\nname = \"varnish\"\nnodes = [\"http://127.0.0.1:{vport}\"]\n"
        ),
    );
    let tc = Tc::start(&dir.path().join("data"), &config, &[]);
    let c = common::client();
    let origin = Origin { tc: &tc };
    origin.put(&c, "page.html", "version one").await;
    let varnish = Varnish::start_on(vport, tc.port());
    let url = format!("{}{}", varnish.base(), origin.path("page.html"));

    let (body, hit) = through(&c, &url).await;
    assert_eq!((body.as_str(), hit), ("version one", false));
    let (body, hit) = through(&c, &url).await;
    assert_eq!(
        (body.as_str(), hit),
        ("version one", true),
        "second GET is a hit"
    );

    origin.put(&c, "page.html", "version two").await;
    let (body, hit) = through(&c, &url).await;
    assert_eq!(
        (body.as_str(), hit),
        ("version one", true),
        "Varnish still has the old one"
    );

    let (ok, out, err) = cli(args(&[
        "purge", "--site", "docs", "--path", &url, "--wait", "30s", "--server", &tc.base,
    ]))
    .await;
    assert!(ok, "purge failed: {out}{err}\n{}", varnish.log());
    assert!(
        out.contains("recorded for varnish") && out.contains("delivered"),
        "{out}"
    );

    let (body, hit) = through(&c, &url).await;
    assert_eq!((body.as_str(), hit), ("version two", false), "purged");
    let (body, hit) = through(&c, &url).await;
    assert_eq!((body.as_str(), hit), ("version two", true));
    assert!(
        purges(&c, &tc).await["failed"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// Writes a built site (an HTML page and a content-hashed script) into `dir`.
fn site_files(dir: &Path, page: &str) {
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), page).unwrap();
    std::fs::write(
        dir.join("assets/index-BzT3c9aF.js"),
        "console.log('built once, immutable');",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_purges_the_changed_page_from_varnish_and_the_hashed_script_stays_cached() {
    let dir = tempfile::tempdir().unwrap();
    let vport = free_port();
    // Varnish is the site's edge: its public URL is the one purges name.
    let config = write_config(
        dir.path(),
        &format!(
            "[[sites]]\nname = \"docs\"\npublic_url = \"http://127.0.0.1:{vport}/assets/docs\"\n\
             [purge]\nretry_min = \"100ms\"\nretry_max = \"500ms\"\n\
             [[purge.providers]]\nkind = \"http\"\nname = \"varnish\"\nnodes = [\"http://127.0.0.1:{vport}\"]\n"
        ),
    );
    let tc = Tc::start(&dir.path().join("data"), &config, &[]);
    let c = common::client();
    let v1 = dir.path().join("v1");
    site_files(&v1, "<h1>version one</h1>");
    let deploy = |src: PathBuf| {
        let base = tc.base.clone();
        async move {
            let (ok, out, err) = cli(vec![
                "deploy".into(),
                src.display().to_string(),
                "--site".into(),
                "docs".into(),
                "--server".into(),
                base,
            ])
            .await;
            assert!(ok, "deploy failed: {out}{err}");
        }
    };
    deploy(v1).await;
    let varnish = Varnish::start_on(vport, tc.port());
    let page = format!("{}/assets/docs/index.html", varnish.base());
    let script = format!("{}/assets/docs/assets/index-BzT3c9aF.js", varnish.base());
    for url in [&page, &script] {
        assert!(!through(&c, url).await.1, "first GET of {url} is a miss");
        assert!(through(&c, url).await.1, "second GET of {url} is a hit");
    }

    // A new deploy changes the page only: tiercache purges it (not the immutable script).
    let v2 = dir.path().join("v2");
    site_files(&v2, "<h1>version two</h1>");
    deploy(v2).await;
    let list = until_delivered(&c, &tc, Duration::from_secs(30)).await;
    assert!(list["failed"].as_array().unwrap().is_empty(), "{list:#}");
    let (body, hit) = through(&c, &page).await;
    assert_eq!(
        (body.as_str(), hit),
        ("<h1>version two</h1>", false),
        "the page was purged:\n{}",
        varnish.log()
    );
    let (body, hit) = through(&c, &script).await;
    assert!(
        hit,
        "the hashed script is still served from Varnish's cache"
    );
    assert_eq!(body, "console.log('built once, immutable');");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_event_sends_the_sites_paths_through_the_outbox() {
    let rec = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[sites]]\nname = \"docs\"\npublic_url = \"https://docs.example\"\n\
             [[purge.providers]]\nkind = \"webhook\"\nurl = \"{}/hook\"\n",
            rec.base()
        ),
    );
    let tc = Tc::start(&dir.path().join("data"), &config, &[]);
    let c = common::client();
    let (ok, out, err) = cli(args(&[
        "invalidate",
        "deploy",
        "docs",
        "index.html",
        "guide/index.html",
        "--server",
        &tc.base,
    ]))
    .await;
    assert!(ok, "{out}{err}");
    until_delivered(&c, &tc, Duration::from_secs(30)).await;
    let seen = rec.wait_for(1, Duration::from_secs(10)).await;
    let urls = seen[0].json()["urls"].clone();
    assert_eq!(
        urls,
        json!([
            "https://docs.example/index.html",
            "https://docs.example/",
            "https://docs.example/guide/index.html",
            "https://docs.example/guide/",
            "https://docs.example/guide"
        ]),
        "{urls}"
    );
    // Without paths: everything tagged with the site.
    let (ok, out, err) = cli(args(&[
        "invalidate",
        "deploy",
        "docs",
        "--server",
        &tc.base,
    ]))
    .await;
    assert!(ok, "{out}{err}");
    let seen = rec.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(seen[1].json()["tags"], json!(["site:docs"]));
    // A path that could escape the site is refused.
    let (ok, _, err) = cli(args(&[
        "invalidate",
        "deploy",
        "docs",
        "../etc/passwd",
        "--server",
        &tc.base,
    ]))
    .await;
    assert!(!ok && err.contains("400"), "{err}");
}

/// A tiny origin whose answers carry `Cache-Tag`, for tag and prefix bans.
#[derive(Clone, Default)]
struct TaggedOrigin {
    pages: Arc<Mutex<HashMap<String, (String, String)>>>,
}

async fn tagged(State(o): State<TaggedOrigin>, req: Request) -> Response {
    let pages = o.pages.lock().unwrap();
    match pages.get(req.uri().path()) {
        Some((body, tags)) => ([("cache-tag", tags.clone())], body.clone()).into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn varnish_bans_by_tag_prefix_and_site() {
    let origin = TaggedOrigin::default();
    let set = |path: &str, body: &str, tags: &str| {
        origin
            .pages
            .lock()
            .unwrap()
            .insert(path.into(), (body.into(), tags.into()));
    };
    set("/a", "a1", "page-a, common");
    set("/b", "b1", "page-b");
    set("/docs/c", "c1", "page-c");
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let oport = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .fallback(tagged)
        .with_state(origin.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let vport = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[[purge.providers]]\nkind = \"http\"\nnodes = [\"http://127.0.0.1:{vport}\"]\ntag_header = \"X-Ban-Tags\"\n"
        ),
    );
    let tc = Tc::start(&dir.path().join("data"), &config, &[]);
    let varnish = Varnish::start_on(vport, oport);
    let c = common::client();
    let url = |p: &str| format!("{}{p}", varnish.base());
    for p in ["/a", "/b", "/docs/c"] {
        through(&c, &url(p)).await;
        assert!(through(&c, &url(p)).await.1, "{p} is cached");
    }
    set("/a", "a2", "page-a, common");
    set("/b", "b2", "page-b");
    set("/docs/c", "c2", "page-c");

    let purge = |extra: &[&str]| {
        let mut a = args(&[
            "purge", "--site", "docs", "--wait", "30s", "--server", &tc.base,
        ]);
        a.extend(args(extra));
        cli(a)
    };
    let (ok, out, err) = purge(&["--tag", "common"]).await;
    assert!(ok, "{out}{err}\n{}", varnish.log());
    assert_eq!(through(&c, &url("/a")).await, ("a2".into(), false));
    assert_eq!(
        through(&c, &url("/b")).await,
        ("b1".into(), true),
        "other tags stay"
    );

    let (ok, out, err) = purge(&["--path", &url("/docs/*")]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(through(&c, &url("/docs/c")).await, ("c2".into(), false));
    assert_eq!(
        through(&c, &url("/b")).await,
        ("b1".into(), true),
        "outside the prefix"
    );

    let (ok, out, err) = purge(&["--all"]).await;
    assert!(ok, "{out}{err}");
    assert_eq!(through(&c, &url("/b")).await, ("b2".into(), false));
}

// ---------------------------------------------------------------------------------------
// The outbox.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purges_wait_in_the_outbox_across_a_restart_until_the_target_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cf_port = free_port(); // nothing listens there yet: Cloudflare is "down"
    let hook = Recorder::start().await;
    let config = write_config(
        dir.path(),
        &format!(
            "[purge]\nretry_min = \"100ms\"\nretry_max = \"400ms\"\n\
             [[purge.providers]]\nkind = \"cloudflare\"\nzone_id = \"zone1\"\ntoken_env = \"CF_TEST_TOKEN\"\n\
             api_base = \"http://127.0.0.1:{cf_port}/client/v4\"\n\
             [[purge.providers]]\nkind = \"webhook\"\nurl = \"{}/hook\"\nsecret_env = \"HOOK_TEST_SECRET\"\n",
            hook.base()
        ),
    );
    let mut tc = Tc::start(&data, &config, &[]);
    let c = common::client();

    let (ok, out, err) = cli(args(&[
        "purge",
        "--site",
        "docs",
        "--path",
        "https://docs.example/a.html",
        "--path",
        "https://docs.example/b.html",
        "--tag",
        "release-7",
        "--server",
        &tc.base,
    ]))
    .await;
    assert!(ok, "{out}{err}");
    let purge_id = out.split_whitespace().nth(1).unwrap().to_owned();

    // The webhook is up: delivered at once, signed, exactly the request.
    let seen = hook.wait_for(1, Duration::from_secs(10)).await;
    let h = &seen[0];
    assert_eq!((h.method.as_str(), h.path.as_str()), ("POST", "/hook"));
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(h.header("x-tiercache-purge-id"), Some(purge_id.as_str()));
    assert_eq!(
        h.json(),
        json!({ "site": "docs", "urls": ["https://docs.example/a.html", "https://docs.example/b.html"],
                "tags": ["release-7"], "everything": false })
    );
    let expected = format!("sha256={}", hmac_sha256(HOOK_SECRET.as_bytes(), &h.body));
    assert_eq!(h.header("x-tiercache-signature"), Some(expected.as_str()));

    // Cloudflare is down: pending, tried, with the reason; the other provider was not held back.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let list = purges(&c, &tc).await;
    let pending = list["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{list:#}");
    let job = &pending[0];
    assert_eq!(job["id"], format!("{purge_id}.cloudflare"));
    assert_eq!(
        (job["site"].as_str(), job["provider"].as_str()),
        (Some("docs"), Some("cloudflare"))
    );
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job:#}");
    assert!(
        job["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{job:#}"
    );
    assert!(job["next_attempt"].is_string());
    assert_no_credentials(&list.to_string(), "/admin/purges");

    let (ok, status, err) = cli(args(&["purge", "--status", "--server", &tc.base])).await;
    assert!(ok, "{err}");
    assert!(
        status.contains("pending: 1") && status.contains("failed: 0"),
        "{status}"
    );
    assert!(
        status.contains(&format!("{purge_id}.cloudflare")) && status.contains("cannot connect"),
        "{status}"
    );

    // A restart keeps it.
    tc.stop();
    assert!(
        data.join("purges")
            .join(format!("{purge_id}.cloudflare.json"))
            .is_file(),
        "the job is on disk"
    );
    let tc = Tc::start(&data, &config, &[]);
    let list = purges(&c, &tc).await;
    assert_eq!(
        list["pending"][0]["id"],
        format!("{purge_id}.cloudflare"),
        "{list:#}"
    );
    assert_eq!(
        hook.seen().len(),
        1,
        "the delivered webhook is not sent again"
    );

    // Cloudflare comes back: delivered exactly as recorded, then gone from the list.
    let cf = Recorder::start_on(cf_port).await;
    let list = until_delivered(&c, &tc, Duration::from_secs(20)).await;
    assert!(list["failed"].as_array().unwrap().is_empty(), "{list:#}");
    let calls = cf.seen();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    for call in &calls {
        assert_eq!(call.method, "POST");
        assert_eq!(call.path, "/client/v4/zones/zone1/purge_cache");
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {CF_TOKEN}").as_str())
        );
        assert_eq!(call.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        calls[0].json(),
        json!({ "files": ["https://docs.example/a.html", "https://docs.example/b.html"] })
    );
    assert_eq!(calls[1].json(), json!({ "tags": ["release-7"] }));
    assert!(
        !data
            .join("purges")
            .join(format!("{purge_id}.cloudflare.json"))
            .exists(),
        "a delivered job leaves the disk"
    );
    let metrics = common::get_text(&c, &tc.url("/metrics")).await;
    assert_eq!(
        common::metric(
            &metrics,
            "tiercache_purge_delivered_total{provider=\"cloudflare\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        common::metric(&metrics, "tiercache_purge_pending{provider=\"cloudflare\"}"),
        Some(0.0)
    );
    assert_no_credentials(&tc.log(), "the server log");
}

// ---------------------------------------------------------------------------------------
// Request formats.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudflare_and_fastly_get_their_formats_batched_and_authorized() {
    let api = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[purge]\nretry_min = \"100ms\"\nretry_max = \"300ms\"\n\
             [[purge.providers]]\nkind = \"cloudflare\"\nzone_id = \"zone1\"\ntoken_env = \"CF_TEST_TOKEN\"\napi_base = \"{0}/client/v4\"\n\
             [[purge.providers]]\nkind = \"fastly\"\nservice_id = \"svc1\"\ntoken_env = \"FASTLY_TEST_TOKEN\"\napi_base = \"{0}\"\nsoft = true\n",
            api.base()
        ),
    );
    let tc = Tc::start(&dir.path().join("data"), &config, &[]);
    let c = common::client();
    let urls: Vec<String> = (0..250)
        .map(|i| format!("{}/p/{i}.html", api.base()))
        .collect();
    let tags: Vec<String> = (0..300).map(|i| format!("tag-{i}")).collect();
    let r = c
        .post(tc.url("/admin/purges"))
        .json(&json!({ "site": "docs", "urls": urls, "tags": tags }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let recorded: Value = r.json().await.unwrap();
    assert_eq!(recorded["jobs"].as_array().unwrap().len(), 2);
    until_delivered(&c, &tc, Duration::from_secs(30)).await;

    let seen = api.take();
    let cf: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/client/v4/"))
        .collect();
    let sizes: Vec<(String, usize)> = cf
        .iter()
        .map(|s| {
            assert_eq!(s.method, "POST");
            assert_eq!(s.path, "/client/v4/zones/zone1/purge_cache");
            assert_eq!(
                s.header("authorization"),
                Some(format!("Bearer {CF_TOKEN}").as_str())
            );
            assert_eq!(s.header("content-type"), Some("application/json"));
            let b = s.json();
            let (k, v) = b.as_object().unwrap().iter().next().unwrap();
            (k.clone(), v.as_array().unwrap().len())
        })
        .collect();
    let expect: Vec<(String, usize)> = [
        ("files", 100),
        ("files", 100),
        ("files", 50),
        ("tags", 100),
        ("tags", 100),
        ("tags", 100),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), *n))
    .collect();
    assert_eq!(sizes, expect);
    let all_files: Vec<Value> = cf
        .iter()
        .filter_map(|s| s.json().get("files").cloned())
        .flat_map(|f| f.as_array().unwrap().clone())
        .collect();
    assert_eq!(
        all_files,
        urls.iter().map(|u| json!(u)).collect::<Vec<_>>(),
        "every URL, in order"
    );

    let url_purges: Vec<&Seen> = seen.iter().filter(|s| s.method == "PURGE").collect();
    assert_eq!(url_purges.len(), 250);
    assert_eq!(url_purges[0].path, "/p/0.html");
    for s in &url_purges {
        assert_eq!(s.header("fastly-key"), Some(FASTLY_TOKEN));
        assert_eq!(s.header("fastly-soft-purge"), Some("1"));
    }
    let key_purges: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.path.starts_with("/service/"))
        .collect();
    assert_eq!(key_purges.len(), 2);
    let mut keys = Vec::new();
    for s in &key_purges {
        assert_eq!(
            (s.method.as_str(), s.path.as_str()),
            ("POST", "/service/svc1/purge")
        );
        assert_eq!(s.header("fastly-key"), Some(FASTLY_TOKEN));
        assert_eq!(s.header("fastly-soft-purge"), Some("1"));
        keys.push(s.header("surrogate-key").unwrap().split(' ').count());
    }
    assert_eq!(keys, [256, 44]);

    // Everything: Cloudflare's purge_everything and Fastly's purge_all, never soft.
    let (ok, out, err) = cli(args(&[
        "purge", "--site", "docs", "--all", "--wait", "20s", "--server", &tc.base,
    ]))
    .await;
    assert!(ok, "{out}{err}");
    let seen = api.take();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let cf_all = seen
        .iter()
        .find(|s| s.path.starts_with("/client/"))
        .unwrap();
    assert_eq!(cf_all.json(), json!({ "purge_everything": true }));
    let fastly_all = seen
        .iter()
        .find(|s| s.path.starts_with("/service/"))
        .unwrap();
    assert_eq!(
        (fastly_all.method.as_str(), fastly_all.path.as_str()),
        ("POST", "/service/svc1/purge_all")
    );
    assert_eq!(fastly_all.header("fastly-key"), Some(FASTLY_TOKEN));
    assert_eq!(fastly_all.header("fastly-soft-purge"), None);

    // 429 and 503 are retried; a 403 is permanent: failed, kept, with the reason.
    api.answer("/service/", 429, 1);
    api.answer("/service/", 503, 1);
    api.answer("/client/", 403, 1);
    let (ok, _, err) = cli(args(&[
        "purge", "--site", "docs", "--tag", "t1", "--wait", "20s", "--server", &tc.base,
    ]))
    .await;
    assert!(!ok, "a failed provider fails --wait");
    assert!(
        err.contains("failed at cloudflare") && err.contains("403"),
        "{err}"
    );
    let list = until_delivered(&c, &tc, Duration::from_secs(20)).await;
    let failed = list["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{list:#}");
    assert_eq!(failed[0]["provider"], "cloudflare");
    assert_eq!(failed[0]["attempts"], 1);
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 403"),
        "{list:#}"
    );
    let fastly_tries = api
        .seen()
        .iter()
        .filter(|s| s.path == "/service/svc1/purge")
        .count();
    assert_eq!(fastly_tries, 3, "two refusals, then delivered");
    let (ok, status, _) = cli(args(&["purge", "--status", "--server", &tc.base])).await;
    assert!(
        ok && status.contains("failed: 1") && status.contains("HTTP 403"),
        "{status}"
    );

    // An admin sends it back: delivered now that Cloudflare takes it; an unknown job cannot
    // be forgotten; a failed one can.
    let failed_id = failed[0]["id"].as_str().unwrap().to_owned();
    let (ok, out, err) = cli(args(&[
        "purge", "--retry", &failed_id, "--server", &tc.base,
    ]))
    .await;
    assert!(ok, "{out}{err}");
    let after = until_delivered(&c, &tc, Duration::from_secs(20)).await;
    assert!(after["failed"].as_array().unwrap().is_empty(), "{after:#}");
    assert_eq!(api.seen().last().unwrap().json(), json!({ "tags": ["t1"] }));
    let (ok, _, err) = cli(args(&[
        "purge", "--forget", &failed_id, "--server", &tc.base,
    ]))
    .await;
    assert!(!ok && err.contains("404"), "{err}");
    api.answer("/client/", 400, 1);
    let (ok, _, _) = cli(args(&[
        "purge", "--site", "docs", "--tag", "t2", "--wait", "20s", "--server", &tc.base,
    ]))
    .await;
    assert!(!ok);
    let list = until_delivered(&c, &tc, Duration::from_secs(20)).await;
    let id = list["failed"][0]["id"].as_str().unwrap().to_owned();
    let (ok, out, err) = cli(args(&["purge", "--forget", &id, "--server", &tc.base])).await;
    assert!(ok, "{out}{err}");
    assert!(
        purges(&c, &tc).await["failed"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let metrics = common::get_text(&c, &tc.url("/metrics")).await;
    assert_eq!(
        common::metric(
            &metrics,
            "tiercache_purge_failed_total{provider=\"cloudflare\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        common::metric(
            &metrics,
            "tiercache_purge_delivered_total{provider=\"fastly\"}"
        ),
        Some(4.0)
    );
    assert_no_credentials(&list.to_string(), "/admin/purges");
    assert_no_credentials(&tc.log(), "the server log");
}

// ---------------------------------------------------------------------------------------
// Refusals.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_purges_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "[[purge.providers]]\nkind = \"webhook\"\nsites = [\"docs\"]\nurl = \"http://127.0.0.1:{dead}/hook\"\n\
             [[purge.providers]]\nkind = \"fastly\"\nsites = [\"docs\"]\nservice_id = \"svc\"\ntoken_env = \"FASTLY_TEST_TOKEN\"\napi_base = \"http://127.0.0.1:{dead}\"\n"
        ),
    );
    let tc = Tc::start(
        &dir.path().join("data"),
        &config,
        &[("TIERCACHE_AUTH_SECRET", AUTH_SECRET)],
    );
    let issue = |extra: &[&str]| {
        let mut a = args(&["token", "issue", "--user"]);
        a.extend(args(extra));
        let out = Command::new(env!("CARGO_BIN_EXE_tiercache"))
            .args(&a)
            .env("TIERCACHE_AUTH_SECRET", AUTH_SECRET)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let admin = issue(&["ops", "--role", "admin"]);
    let user = issue(&["alice"]);
    let c = common::client();
    let post = |token: Option<&str>, body: Value| {
        let mut r = c.post(tc.url("/admin/purges")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let ok_body = json!({ "site": "docs", "tags": ["t"] });
    assert_eq!(post(None, ok_body.clone()).await.0, 401);
    let (s, b) = post(Some(&user), ok_body.clone()).await;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("admins only"), "{b}");
    let r = c
        .get(tc.url("/admin/purges"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "site": "app", "tags": ["t"] }), 404, "unknown site"),
        (json!({ "site": "../x", "tags": ["t"] }), 400, "site"),
        (json!({ "site": "docs", "tags": ["a b"] }), 400, "printable"),
        (
            json!({ "site": "docs", "tags": ["x".repeat(1025)] }),
            400,
            "1024",
        ),
        (
            json!({ "site": "docs", "tags": ["\u{7}"] }),
            400,
            "printable",
        ),
        (
            json!({ "site": "docs", "urls": ["/relative.html"] }),
            400,
            "absolute",
        ),
        (
            json!({ "site": "docs", "urls": ["ftp://docs.example/x"] }),
            400,
            "http",
        ),
        (
            json!({ "site": "docs", "urls": ["https://docs.example/*"] }),
            400,
            "prefix",
        ),
        (
            json!({ "site": "docs", "tags": (0..5001).map(|i| format!("t{i}")).collect::<Vec<_>>() }),
            400,
            "too many",
        ),
        (json!({ "site": "docs" }), 400, "nothing to purge"),
        (
            json!({ "site": "docs", "tags": ["t"], "paths": [] }),
            400,
            "unknown field",
        ),
    ];
    for (body, status, reason) in cases {
        let (s, b) = post(Some(&admin), body.clone()).await;
        assert_eq!(s, status, "{body}: {b}");
        assert!(b.contains(reason), "{body}: {b}");
    }
    let r = c
        .post(tc.url("/admin/purges"))
        .bearer_auth(&admin)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Nothing refused was recorded.
    let list: Value = c
        .get(tc.url("/admin/purges"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["pending"].as_array().unwrap().is_empty(), "{list:#}");

    let (ok, _, err) = cli(args(&[
        "purge", "--site", "docs", "--tag", "a b", "--server", &tc.base, "--token", &admin,
    ]))
    .await;
    assert!(
        !ok && err.contains("400") && err.contains("printable"),
        "{err}"
    );
    let (ok, _, err) = cli(args(&["purge", "--site", "docs", "--server", &tc.base])).await;
    assert!(!ok && err.contains("nothing to purge"), "{err}");
    let (ok, _, err) = cli(args(&[
        "purge", "--status", "--server", &tc.base, "--token", &user,
    ]))
    .await;
    assert!(!ok && err.contains("403"), "{err}");
}
