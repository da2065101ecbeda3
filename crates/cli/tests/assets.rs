//! Static assets end to end, against the real binary: `tiercache deploy` uploads a built
//! site, the server serves it at `/assets/{site}/` and on the site's hostname with the
//! Cache-Control rules, validators, 304s, ranges and precompressed variants; a second deploy
//! uploads only what changed and switches atomically; rollback returns to the previous
//! deploy; hostile paths are refused; deploying needs an admin (or global warmer) token
//! while anyone reads.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Server, raw_request};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tiercache_testkit::secrets::{aws_key_id, aws_secret_key};

const HTML_CC: &str =
    "public, max-age=0, s-maxage=300, stale-while-revalidate=60, stale-if-error=3600";
const HASHED_CC: &str = "public, max-age=31536000, stale-if-error=86400, immutable";
const IMAGE_CC: &str = "public, max-age=86400, s-maxage=604800, stale-if-error=86400";
const STANDARD_CC: &str =
    "public, max-age=3600, s-maxage=86400, stale-while-revalidate=86400, stale-if-error=86400";
const SECRET: &str = "assets-test-secret-0123456789abcdef-0123456";

/// A client that neither asks for nor undoes compression, so encodings are under test control.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn page(title: &str) -> Vec<u8> {
    format!(
        "<!doctype html><title>{title}</title>{}",
        "<p>static pages compress well</p>".repeat(60)
    )
    .into_bytes()
}

/// A small built site: pages, a hashed script, an image, an unhashed library, an API file.
fn build_site(root: &Path) {
    write(root, "index.html", &page("home v1"));
    write(root, "guide/index.html", &page("guide"));
    write(
        root,
        "assets/index-BzT3c9aF.js",
        "export const answer = 42;\n".repeat(100).as_bytes(),
    );
    let png: Vec<u8> = (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect();
    write(root, "img/logo.png", &png);
    write(
        root,
        "vendor/jquery-3.7.1.min.js",
        "/* jquery */ function $(){}\n".repeat(80).as_bytes(),
    );
    write(root, "api/status.json", b"{\"ok\":true}");
}

fn tiercache(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(args)
        .env_remove("TIERCACHE_TOKEN")
        .env_remove("TIERCACHE_SERVER")
        .envs(env.iter().copied())
        .output()
        .expect("tiercache runs")
}

/// `tiercache deploy DIR --site SITE --json` (with `token`); the JSON result.
fn deploy(server: &Server, dir: &Path, site: &str, token: Option<&str>) -> serde_json::Value {
    let out = deploy_raw(server, dir, site, token);
    assert!(
        out.status.success(),
        "deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("deploy prints JSON")
}

fn deploy_raw(server: &Server, dir: &Path, site: &str, token: Option<&str>) -> Output {
    let dir = dir.to_str().unwrap();
    let mut args = vec![
        "deploy",
        dir,
        "--site",
        site,
        "--server",
        &server.base,
        "--json",
    ];
    if let Some(t) = token {
        args.extend(["--token", t]);
    }
    tiercache(&args, &[])
}

fn rollback(server: &Server, site: &str) -> Output {
    tiercache(
        &["deploy", "--rollback", site, "--server", &server.base],
        &[],
    )
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("tiercache.toml");
    let text = format!(
        "[[sites]]\nname = \"docs\"\nhostnames = [\"docs.test\"]\npublic_url = \"https://docs.test\"\n{extra}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn hex_of(bytes: &[u8]) -> String {
    tiercache_core::ContentHash::of(bytes).to_hex()
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex_of(bytes))
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the server answers");
    let status = resp.status();
    let h = resp.headers().clone();
    let body = resp.bytes().await.expect("body reads").to_vec();
    (status, h, body)
}

#[tokio::test]
async fn a_deployed_site_is_served_with_the_rules_headers_validators_ranges_and_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("dist");
    build_site(&site);
    let cfg = config(dir.path(), "");
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let result = deploy(&server, &site, "docs", None);
    assert_eq!(result["deploy"], 1);
    assert_eq!(result["files"], 6);
    assert_eq!(
        result["uploaded"], result["blobs"],
        "a first deploy uploads everything"
    );
    let url = |p: &str| server.url(&format!("/assets/docs/{p}"));

    // HTML: revalidated by browsers, five minutes at the edge; tags name site and deploy.
    let home = page("home v1");
    let (s, h, body) = get(&url(""), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, home);
    assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&h, "cache-control"), HTML_CC);
    assert_eq!(
        header(&h, "cdn-cache-control"),
        "max-age=300, stale-while-revalidate=60, stale-if-error=3600"
    );
    assert_eq!(header(&h, "surrogate-key"), "site:docs deploy:docs:1");
    assert_eq!(header(&h, "cache-tag"), "site:docs,deploy:docs:1");
    assert_eq!(header(&h, "vary"), "Accept-Encoding");
    assert_eq!(header(&h, "etag"), etag_of(&home));
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    let last_modified = header(&h, "last-modified").to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    assert_eq!(get(&url("index.html"), &[]).await.2, home);

    // Each default rule.
    let (s, h, body) = get(&url("assets/index-BzT3c9aF.js"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.len(), 2600);
    assert_eq!(header(&h, "cache-control"), HASHED_CC);
    assert!(h.get("cdn-cache-control").is_none());
    assert_eq!(header(&h, "content-type"), "text/javascript; charset=utf-8");
    let (_, h, _) = get(&url("img/logo.png"), &[]).await;
    assert_eq!(header(&h, "cache-control"), IMAGE_CC);
    assert_eq!(
        header(&h, "cdn-cache-control"),
        "max-age=604800, stale-if-error=86400"
    );
    assert_eq!(header(&h, "content-type"), "image/png");
    assert!(h.get("vary").is_none(), "an image has no variants");
    let (_, h, _) = get(&url("api/status.json"), &[]).await;
    assert_eq!(header(&h, "cache-control"), "no-store");
    let (_, h, _) = get(&url("vendor/jquery-3.7.1.min.js"), &[]).await;
    assert_eq!(
        header(&h, "cache-control"),
        STANDARD_CC,
        "not a hashed name"
    );

    // Directories: index.html, and a redirect to the slash form.
    let (s, h, _) = get(&url("guide"), &[]).await;
    assert_eq!(s, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&h, "location"), "./guide/");
    assert_eq!(get(&url("guide/"), &[]).await.2, page("guide"));
    let (s, h, _) = get(&server.url("/assets/docs"), &[]).await;
    assert_eq!(
        (s, header(&h, "location")),
        (StatusCode::MOVED_PERMANENTLY, "./docs/")
    );
    assert_eq!(get(&url("nope.html"), &[]).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&server.url("/assets/other/"), &[]).await.0,
        StatusCode::NOT_FOUND
    );

    // 304: If-None-Match, and If-Modified-Since; an older date gets the body.
    let tag = etag_of(&home);
    let (s, h, body) = get(&url(""), &[("if-none-match", &tag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&h, "etag"), tag);
    assert_eq!(header(&h, "cache-control"), HTML_CC);
    let (s, _, _) = get(&url(""), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = get(&url(""), &[("if-modified-since", &last_modified)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    assert_eq!(
        get(&url(""), &[("if-modified-since", old)]).await.0,
        StatusCode::OK
    );

    // HEAD: the headers, no body.
    let resp = client()
        .head(url("assets/index-BzT3c9aF.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(resp.headers(), "content-length"), "2600");
    assert_eq!(header(resp.headers(), "cache-control"), HASHED_CC);
    assert!(resp.bytes().await.unwrap().is_empty());

    // Single ranges: 206; unsatisfiable: 416; several: the whole body.
    let js = "export const answer = 42;\n".repeat(100).into_bytes();
    let (s, h, body) = get(&url("assets/index-BzT3c9aF.js"), &[("range", "bytes=0-9")]).await;
    assert_eq!(s, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &js[..10]);
    assert_eq!(header(&h, "content-range"), "bytes 0-9/2600");
    assert!(h.get("content-encoding").is_none());
    let (s, _, body) = get(&url("assets/index-BzT3c9aF.js"), &[("range", "bytes=-6")]).await;
    assert_eq!(
        (s, body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &js[2594..])
    );
    let (s, h, _) = get(
        &url("assets/index-BzT3c9aF.js"),
        &[("range", "bytes=5000-")],
    )
    .await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&h, "content-range"), "bytes */2600");
    let (s, _, body) = get(
        &url("assets/index-BzT3c9aF.js"),
        &[("range", "bytes=0-1,5-6")],
    )
    .await;
    assert_eq!((s, body.len()), (StatusCode::OK, 2600));
    let (s, _, _) = get(
        &url("assets/index-BzT3c9aF.js"),
        &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "If-Range naming another version: the whole body"
    );

    // Precompressed variants by Accept-Encoding, each its own representation.
    let (_, h, body) = get(&url(""), &[("accept-encoding", "gzip")]).await;
    assert_eq!(header(&h, "content-encoding"), "gzip");
    assert_eq!(header(&h, "vary"), "Accept-Encoding");
    let mut unpacked = Vec::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, home);
    let gzip_tag = header(&h, "etag").to_owned();
    assert_ne!(gzip_tag, tag);
    let (_, h, body) = get(&url(""), &[("accept-encoding", "gzip, deflate, br, zstd")]).await;
    assert_eq!(
        header(&h, "content-encoding"),
        "br",
        "brotli first on a tie"
    );
    let mut unbr = Vec::new();
    brotli::Decompressor::new(body.as_slice(), 4096)
        .read_to_end(&mut unbr)
        .unwrap();
    assert_eq!(unbr, home);
    let (_, h, body) = get(&url(""), &[("accept-encoding", "gzip, zstd")]).await;
    assert_eq!(header(&h, "content-encoding"), "zstd");
    assert_eq!(zstd::decode_all(body.as_slice()).unwrap(), home);
    let (_, h, body) = get(&url(""), &[("accept-encoding", "zstd;q=0.5, gzip")]).await;
    assert_eq!(header(&h, "content-encoding"), "gzip");
    assert!(body.len() < home.len());
    let (_, h, body) = get(&url(""), &[("accept-encoding", "compress")]).await;
    assert!(
        h.get("content-encoding").is_none(),
        "an encoding with no stored variant gets the identity bytes"
    );
    assert_eq!(body, home);
    let (s, _, _) = get(
        &url(""),
        &[("accept-encoding", "gzip"), ("if-none-match", &gzip_tag)],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    let (_, h, _) = get(&url("img/logo.png"), &[("accept-encoding", "gzip")]).await;
    assert!(
        h.get("content-encoding").is_none(),
        "images are not precompressed"
    );

    // By Host: the site's hostname serves it at its root, whatever the path.
    let (s, h, body) = get(&server.url("/guide/"), &[("host", "docs.test")]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, page("guide"));
    assert_eq!(header(&h, "cache-control"), HTML_CC);
    let (s, _, body) = get(&server.url("/"), &[("host", "DOCS.test:8080")]).await;
    assert_eq!((s, body), (StatusCode::OK, home.clone()));
    let (s, _, _) = get(&server.url("/healthz"), &[("host", "docs.test")]).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "on the site's host, every path is the site's"
    );
    let (s, _, _) = get(&server.url("/healthz"), &[]).await;
    assert_eq!(s, StatusCode::OK, "other hosts keep every route");
    let resp = client()
        .post(server.url("/index.html"))
        .header("host", "docs.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_second_deploy_uploads_only_changes_switches_atomically_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("dist");
    build_site(&site);
    let cfg = config(dir.path(), "");
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    let url = |p: &str| server.url(&format!("/assets/docs/{p}"));
    let first = deploy(&server, &site, "docs", None);
    let blobs = first["blobs"].as_u64().unwrap();

    // Unchanged: nothing is uploaded, yet a new deploy goes live.
    let same = deploy(&server, &site, "docs", None);
    assert_eq!(
        (same["deploy"].as_u64(), same["uploaded"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(same["previous"], 1);

    // One page changed (4 blobs: it, its gzip, zstd and brotli forms) and one small file added.
    write(&site, "index.html", &page("home v3"));
    write(&site, "notes.txt", b"new");
    let third = deploy(&server, &site, "docs", None);
    assert_eq!(third["deploy"], 3);
    assert_eq!(
        third["uploaded"], 5,
        "only the changed and new files: {third}"
    );
    assert_eq!(third["blobs"].as_u64(), Some(blobs - 4 + 4 + 1));
    // Purged: index.html (as /index.html and /) and notes.txt, at https://docs.test.
    assert_eq!(third["purge"]["urls"], 3, "{third}");
    assert_eq!(get(&url(""), &[]).await.2, page("home v3"));
    let (_, h, _) = get(&url(""), &[]).await;
    assert_eq!(header(&h, "surrogate-key"), "site:docs deploy:docs:3");
    // An unchanged file keeps its Last-Modified across deploys.
    let (_, h, _) = get(&url("img/logo.png"), &[]).await;
    let logo_modified = header(&h, "last-modified").to_owned();
    let (s, _, _) = get(
        &url("img/logo.png"),
        &[("if-modified-since", &logo_modified)],
    )
    .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);

    // Through the API: a new deploy is not live until activated, and activation waits
    // for every blob; a blob must hash to its name.
    let c = client();
    let body = page("home v4");
    let hash = hex_of(&body);
    let manifest = serde_json::json!({ "files": {
        "index.html": { "hash": hash, "size": body.len() },
        "notes.txt": { "hash": hex_of(b"new"), "size": 3 },
    }});
    let resp = c
        .post(server.url("/assets-api/docs/deploys"))
        .json(&manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(created["deploy"], 4);
    assert_eq!(
        created["missing"],
        serde_json::json!([hash]),
        "notes.txt is stored already"
    );
    assert_eq!(get(&url(""), &[]).await.2, page("home v3"), "not live yet");
    let activate = server.url("/assets-api/docs/deploys/4/activate");
    let resp = c.post(&activate).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    let blob = server.url(&format!("/assets-api/docs/blobs/{hash}"));
    let resp = c
        .put(&blob)
        .body(b"not the page".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = c.put(&blob).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        get(&url(""), &[]).await.2,
        page("home v3"),
        "still not live"
    );
    let resp = c.post(&activate).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(get(&url(""), &[]).await.2, body);
    assert_eq!(
        get(&url("guide/"), &[]).await.0,
        StatusCode::NOT_FOUND,
        "deploy 4 has no guide"
    );

    // Bad manifests are 400s with a reason.
    for bad in [
        serde_json::json!({ "files": {} }),
        serde_json::json!({ "files": { "../x": { "hash": hash, "size": 1 } } }),
        serde_json::json!({ "files": { "a": { "hash": "abc", "size": 1 } } }),
        serde_json::json!({ "files": { "a": { "hash": hash, "size": 1, "variants": { "lz4": { "hash": hash, "size": 1 } } } } }),
    ] {
        let resp = c
            .post(server.url("/assets-api/docs/deploys"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let resp = c
        .post(server.url("/assets-api/docs/deploys"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = c
        .post(server.url("/assets-api/..x/deploys"))
        .json(&manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Rollback: 4 → 3 → 2 → 1, then nothing earlier.
    let info: serde_json::Value = c
        .get(server.url("/assets-api/docs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["current"], 4);
    assert_eq!(info["previous"], serde_json::json!([1, 2, 3]));
    assert_eq!(info["deploys"].as_array().map(Vec::len), Some(4));
    let out = rollback(&server, "docs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rolled back to deploy 3"));
    assert_eq!(get(&url(""), &[]).await.2, page("home v3"));
    assert!(rollback(&server, "docs").status.success());
    assert_eq!(get(&url(""), &[]).await.2, page("home v1"));
    assert_eq!(get(&url("notes.txt"), &[]).await.0, StatusCode::NOT_FOUND);
    assert!(rollback(&server, "docs").status.success());
    let out = rollback(&server, "docs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no earlier deploy"));
    let (_, h, _) = get(&url(""), &[]).await;
    assert_eq!(header(&h, "surrogate-key"), "site:docs deploy:docs:1");
}

#[tokio::test]
async fn hostile_paths_are_refused_and_nothing_outside_the_site_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("dist");
    build_site(&site);
    let other = dir.path().join("other");
    write(&other, "secret.txt", b"OTHER-SITE-ONLY");
    write(&other, "index.html", b"OTHER-SITE-ONLY");
    let cfg = config(dir.path(), "");
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap()],
    );
    deploy(&server, &site, "docs", None);
    deploy(&server, &other, "other", None);
    for path in [
        "/assets/docs/../other/secret.txt",
        "/assets/docs/%2e%2e/other/secret.txt",
        "/assets/docs/%2E%2E/other/secret.txt",
        "/assets/docs/..%2fother%2fsecret.txt",
        "/assets/docs/%2e%2e%2fother%2fsecret.txt",
        "/assets/docs/guide/..%5c..%5cother%5csecret.txt",
        "/assets/docs/..\\other\\secret.txt",
        "/assets/docs/index.html%00.png",
        "/assets/docs/%00",
        "/assets/docs/./index.html",
        "/assets/docs//index.html",
        "/assets/..%2fother/secret.txt",
        "/assets/%2e%2e/other/secret.txt",
        "/assets/docs%2f..%2fother/secret.txt",
        "/assets/docs/%ff",
        "/assets/docs/a%2",
    ] {
        let (status, body) = raw_request(&server.base, "GET", path, b"");
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert!(!body.contains("OTHER-SITE-ONLY"), "{path} leaked: {body}");
    }
    // The same on the site's own hostname.
    for path in [
        "/../other/secret.txt",
        "/%2e%2e/other/secret.txt",
        "/a%2f..%2f..%2fx",
        "/%00",
    ] {
        let (status, body) = raw_request_host(&server.base, path, "docs.test");
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
        assert!(!body.contains("OTHER-SITE-ONLY"), "{path} leaked: {body}");
    }
    // Each site serves its own files only.
    let (s, _, body) = get(&server.url("/assets/other/secret.txt"), &[]).await;
    assert_eq!((s, body), (StatusCode::OK, b"OTHER-SITE-ONLY".to_vec()));
    assert_eq!(
        get(&server.url("/assets/docs/secret.txt"), &[]).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Like `raw_request`, with another `Host`.
fn raw_request_host(base: &str, path: &str, host: &str) -> (u16, String) {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).expect("writes");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn token(args: &[&str]) -> String {
    let out = tiercache(
        &[&["token", "issue"], args].concat(),
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn deploying_needs_an_admin_or_global_warmer_token_while_anyone_reads() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("dist");
    build_site(&site);
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
    );
    let user = token(&["--user", "alice"]);
    let template_warmer = token(&["--user", "ci", "--role", "warmer", "--template", "vite"]);
    let warmer = token(&["--user", "ci", "--role", "warmer"]);
    let admin = token(&["--user", "ops", "--role", "admin"]);

    for (who, t, status) in [
        ("anonymous", None, "401"),
        ("a user", Some(user.as_str()), "403"),
        ("a template's warmer", Some(template_warmer.as_str()), "403"),
    ] {
        let out = deploy_raw(&server, &site, "docs", t);
        assert!(!out.status.success(), "{who} deployed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(status) && err.contains("admin token"),
            "{who}: {err}"
        );
    }
    assert_eq!(
        get(&server.url("/assets/docs/"), &[]).await.0,
        StatusCode::NOT_FOUND,
        "nothing was deployed"
    );
    let resp = client()
        .put(server.url(&format!("/assets-api/docs/blobs/{}", hex_of(b"x"))))
        .bearer_auth(&user)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let done = deploy(&server, &site, "docs", Some(&admin));
    assert_eq!(done["deploy"], 1);
    // Anyone reads: no token, or any token.
    let (s, h, _) = get(&server.url("/assets/docs/"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "cache-control"), HTML_CC);
    let (s, _, _) = get(
        &server.url("/assets/docs/img/logo.png"),
        &[("authorization", &format!("Bearer {user}"))],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // A user may not roll back either.
    let resp = client()
        .post(server.url("/assets-api/docs/rollback"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // A global warmer deploys, screened: a secret in a file is refused with the file named.
    write(&site, "index.html", &page("by the warmer"));
    let by_warmer = deploy(&server, &site, "docs", Some(&warmer));
    assert_eq!(by_warmer["deploy"], 2);
    let config_js = format!(
        "export const aws = {{ id: '{}', secret: '{}' }};\n",
        aws_key_id(),
        aws_secret_key()
    );
    write(&site, "config.js", config_js.as_bytes());
    let out = deploy_raw(&server, &site, "docs", Some(&warmer));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("422") && err.contains("config.js"), "{err}");
    assert_eq!(
        get(&server.url("/assets/docs/"), &[]).await.2,
        page("by the warmer")
    );
    assert_eq!(
        get(&server.url("/assets/docs/config.js"), &[]).await.0,
        StatusCode::NOT_FOUND
    );
}
