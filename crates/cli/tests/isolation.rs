//! The privacy promise against a user who tries to break it, with auth on (the real binary,
//! real tokens from `tiercache token issue`): user B cannot read, HEAD, overwrite or delete
//! user A's entries through the object API or the build cache, cannot tell them from
//! missing ones, and cannot write into a template or global scope; forged, expired and
//! read-only tokens are refused.

mod common;

use std::process::Command;

use common::{Server, client};

const SECRET: &str = "isolation-test-secret-0123456789abcdef-xyz";
const OTHER_SECRET: &str = "not-the-servers-secret-0123456789abcdef-x";

fn token(secret: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(["token", "issue"])
        .args(args)
        .env("TIERCACHE_AUTH_SECRET", secret)
        .env_remove("TIERCACHE_CONFIG")
        .output()
        .expect("tiercache token issue runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn server(dir: &std::path::Path) -> Server {
    let config = dir.join("auth.toml");
    std::fs::write(&config, "[auth]\nleeway = \"0s\"\n").unwrap();
    Server::start_with_env(
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
    )
}

/// Status and body of a request with an optional bearer token.
async fn call(
    method: reqwest::Method,
    url: &str,
    bearer: Option<&str>,
    body: &'static [u8],
) -> (u16, String) {
    let mut req = client().request(method, url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if !body.is_empty() {
        req = req.body(body);
    }
    let resp = req.send().await.expect("the server answers");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test]
async fn another_users_objects_are_out_of_reach_and_indistinguishable_from_missing() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let alice = token(SECRET, &["--user", "alice", "--template", "web"]);
    let bob = token(SECRET, &["--user", "bob", "--template", "web"]);
    let warmer = token(
        SECRET,
        &["--user", "ci", "--template", "web", "--role", "warmer"],
    );
    use reqwest::Method as M;

    let secret = srv.url("/objects/user/alice/object/env");
    let (s, _) = call(M::PUT, &secret, Some(&alice), b"API_KEY=alice-only").await;
    assert_eq!(s, 201);
    let (s, body) = call(M::GET, &secret, Some(&alice), b"").await;
    assert_eq!((s, body.as_str()), (200, "API_KEY=alice-only"));
    // A user's entry is never for a shared cache (a CDN or proxy in front of tiercache).
    let r = client()
        .get(&secret)
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "private, max-age=0");

    // Bob: alice's key and a key that exists nowhere answer the same, byte for byte.
    let missing = srv.url("/objects/user/alice/object/never-written");
    for method in [M::GET, M::HEAD, M::DELETE] {
        let real = call(method.clone(), &secret, Some(&bob), b"").await;
        let absent = call(method.clone(), &missing, Some(&bob), b"").await;
        assert_eq!(real, absent, "{method} tells bob that alice's key exists");
        assert_eq!(real.0, 404, "{method}");
    }
    // Nor can he overwrite it (refused the same way whether or not it exists).
    let over = call(M::PUT, &secret, Some(&bob), b"poisoned").await;
    let over_missing = call(M::PUT, &missing, Some(&bob), b"poisoned").await;
    assert_eq!(over.0, 403);
    assert_eq!(over, over_missing);
    // Anonymous callers see nothing private either, and write nothing.
    assert_eq!(call(M::GET, &secret, None, b"").await.0, 404);
    let (s, _) = call(M::PUT, &srv.url("/objects/global/object/x"), None, b"x").await;
    assert_eq!(s, 403);
    // Hostile spellings of the path never reach another scope.
    for path in [
        "/objects/user/bob/../alice/object/env",
        "/objects/user/alice%2fobject/env",
        "/objects/user/bob/object/..%2f..%2falice%2fobject%2fenv",
    ] {
        let (s, _) = call(M::GET, &srv.url(path), Some(&bob), b"").await;
        assert!(s == 400 || s == 404, "{path}: {s}");
    }
    // Alice's entry is untouched.
    let (s, body) = call(M::GET, &secret, Some(&alice), b"").await;
    assert_eq!((s, body.as_str()), (200, "API_KEY=alice-only"));

    // Shared scopes: users never write them; a warmer of the template does, and its users
    // read it.
    for path in [
        "/objects/global/object/poison",
        "/objects/template/web/object/deps",
    ] {
        let (s, _) = call(M::PUT, &srv.url(path), Some(&bob), b"poison").await;
        assert_eq!(s, 403, "{path}");
    }
    let deps = srv.url("/objects/template/web/object/deps");
    assert_eq!(call(M::PUT, &deps, Some(&warmer), b"lockfile").await.0, 201);
    assert_eq!(call(M::GET, &deps, Some(&bob), b"").await.0, 200);
    let eve = token(SECRET, &["--user", "eve", "--template", "other"]);
    assert_eq!(call(M::GET, &deps, Some(&eve), b"").await.0, 404);
}

#[tokio::test]
async fn forged_expired_and_read_only_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    use reqwest::Method as M;
    let url = srv.url("/objects/user/alice/object/x");
    let forged = token(OTHER_SECRET, &["--user", "alice"]);
    let (s, body) = call(M::PUT, &url, Some(&forged), b"x").await;
    assert_eq!(s, 401, "{body}");
    assert!(!body.contains(&forged), "the token is echoed back");
    let short = token(SECRET, &["--user", "alice", "--ttl", "1s"]);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(call(M::GET, &url, Some(&short), b"").await.0, 401);
    let ro = token(SECRET, &["--user", "alice", "--read-only"]);
    assert_eq!(call(M::PUT, &url, Some(&ro), b"x").await.0, 403);
    let garbage = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
    assert_eq!(call(M::GET, &url, Some(garbage), b"").await.0, 401);
}

#[tokio::test]
async fn build_artifacts_stay_with_their_user_and_team() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let alice = token(SECRET, &["--user", "alice", "--team", "web"]);
    let bob = token(SECRET, &["--user", "bob", "--team", "web"]);
    let mallory = token(SECRET, &["--user", "mallory", "--team", "other"]);
    use reqwest::Method as M;
    let hash = "0123456789abcdef";
    let art = |team: &str| srv.url(&format!("/v8/artifacts/{hash}?slug={team}"));

    assert_eq!(
        call(M::PUT, &art("web"), Some(&alice), b"alice's dist")
            .await
            .0,
        202
    );
    let (s, body) = call(M::GET, &art("web"), Some(&alice), b"").await;
    assert_eq!((s, body.as_str()), (200, "alice's dist"));
    // Bob shares the team but not alice's user scope: her artifact is a miss for him,
    // exactly like a hash nobody uploaded.
    let other = srv.url("/v8/artifacts/fedcba9876543210?slug=web");
    for method in [M::GET, M::HEAD] {
        let real = call(method.clone(), &art("web"), Some(&bob), b"").await;
        let absent = call(method.clone(), &other, Some(&bob), b"").await;
        assert_eq!(real, absent, "{method}");
        assert_eq!(real.0, 404);
    }
    // His own upload of the same hash lands in his scope and never replaces hers.
    assert_eq!(
        call(M::PUT, &art("web"), Some(&bob), b"bob's dist").await.0,
        202
    );
    assert_eq!(
        call(M::GET, &art("web"), Some(&bob), b"").await.1,
        "bob's dist"
    );
    assert_eq!(
        call(M::GET, &art("web"), Some(&alice), b"").await.1,
        "alice's dist"
    );
    // Nor can a user list what the cache holds for every team.
    let list = srv.url("/admin/build/artifacts");
    assert_eq!(call(M::GET, &list, Some(&bob), b"").await.0, 403);
    let admin = token(SECRET, &["--user", "ops", "--role", "admin"]);
    let (s, listing) = call(M::GET, &list, Some(&admin), b"").await;
    assert_eq!(s, 200);
    // The operator sees every scope's artifacts, each with its scope.
    for scope in ["user/alice", "user/bob"] {
        assert!(
            listing.contains(&format!("\"scope\":\"{scope}\"")),
            "{listing}"
        );
    }
    // Nor read the operator's statistics (which name what everyone fetches).
    let stats = srv.url("/admin/stats");
    assert_eq!(call(M::GET, &stats, Some(&bob), b"").await.0, 403);
    assert_eq!(call(M::GET, &stats, None, b"").await.0, 401);
    assert_eq!(call(M::GET, &stats, Some(&admin), b"").await.0, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_tiercache"))
        .args(["stats", "--server", &srv.base, "--token", &admin])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // A team the token does not allow is refused outright.
    assert_eq!(call(M::GET, &art("web"), Some(&mallory), b"").await.0, 403);
    assert_eq!(call(M::PUT, &art("web"), Some(&mallory), b"x").await.0, 403);
    // The batch query answers only from what the caller may read.
    let resp = client()
        .post(srv.url("/v8/artifacts?slug=web"))
        .bearer_auth(&bob)
        .json(&serde_json::json!({ "hashes": [hash] }))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v[hash]["size"], "bob's dist".len());
}

#[tokio::test]
async fn identical_artifacts_of_two_users_of_a_template_are_shared_with_its_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server(dir.path());
    let user = |id: &str, template: &str| {
        token(
            SECRET,
            &["--user", id, "--template", template, "--team", "web"],
        )
    };
    let (alice, bob, carol) = (
        user("alice", "vite"),
        user("bob", "vite"),
        user("carol", "vite"),
    );
    let outsider = user("dave", "next");
    use reqwest::Method as M;
    let art = srv.url("/v8/artifacts/00aa11bb22cc33dd?slug=web");

    // One user, even twice, shares nothing (the second upload is acknowledged unread).
    assert_eq!(call(M::PUT, &art, Some(&alice), b"dist v1").await.0, 202);
    assert_eq!(call(M::PUT, &art, Some(&alice), b"dist v1").await.0, 200);
    assert_eq!(call(M::GET, &art, Some(&carol), b"").await.0, 404);
    // A second user of the template with byte-identical output: promoted.
    assert_eq!(call(M::PUT, &art, Some(&bob), b"dist v1").await.0, 202);
    let (s, body) = call(M::GET, &art, Some(&carol), b"").await;
    assert_eq!((s, body.as_str()), (200, "dist v1"));
    // Users of another template still see nothing.
    assert_eq!(call(M::GET, &art, Some(&outsider), b"").await.0, 404);

    // Different bytes from two users are not promoted.
    let other = srv.url("/v8/artifacts/44ee55ff66aa77bb?slug=web");
    assert_eq!(call(M::PUT, &other, Some(&alice), b"mine").await.0, 202);
    assert_eq!(call(M::PUT, &other, Some(&bob), b"theirs").await.0, 202);
    assert_eq!(call(M::GET, &other, Some(&carol), b"").await.0, 404);

    // The promotion is in the audit log, for admins.
    let admin = token(SECRET, &["--user", "ops", "--role", "admin"]);
    let (s, log) = call(
        M::GET,
        &srv.url("/admin/audit?action=promote"),
        Some(&admin),
        b"",
    )
    .await;
    assert_eq!(s, 200, "{log}");
    assert!(log.contains("template/vite"), "{log}");
}

#[tokio::test]
async fn npm_serves_public_packages_to_valid_callers_and_never_forwards_our_token() {
    use common::origin::{Origin, Package};
    let origin = Origin::start(vec![Package::with_versions("left-pad", &["1.0.0"])]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        "[auth]\nleeway = \"0s\"\nanonymous_reads = false\n",
    )
    .unwrap();
    let srv = Server::start_with_env(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--npm-upstream",
            &origin.url(),
        ],
        &[("TIERCACHE_AUTH_SECRET", SECRET)],
    );
    use reqwest::Method as M;
    let url = srv.url("/npm/left-pad");
    let alice = token(SECRET, &["--user", "alice"]);
    assert_eq!(call(M::GET, &url, Some(&alice), b"").await.0, 200);
    // Anonymous reads are off here; a forged token is refused either way.
    assert_eq!(call(M::GET, &url, None, b"").await.0, 401);
    let forged = token(OTHER_SECRET, &["--user", "alice"]);
    assert_eq!(call(M::GET, &url, Some(&forged), b"").await.0, 401);
    // The origin never saw tiercache's own credential.
    assert!(
        origin
            .request_log()
            .iter()
            .all(|r| r.authorization.is_none()),
        "a tiercache token was forwarded upstream"
    );
}

#[tokio::test]
async fn private_npm_packages_are_cached_per_user_and_fetched_with_the_scopes_own_credential() {
    use common::origin::{Origin, Package};
    let origin = Origin::start(vec![
        Package::with_versions("@acme/util", &["1.0.0"]),
        Package::with_versions("left-pad", &["1.0.0"]),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auth.toml");
    std::fs::write(
        &config,
        "[auth]\nleeway = \"0s\"\n[npm]\nprivate_scopes = [\"@acme\"]\n\
         [npm.scopes.\"@acme\"]\ntoken_env = \"ACME_REGISTRY_TOKEN\"\n",
    )
    .unwrap();
    let srv = Server::start_with_env(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--npm-upstream",
            &origin.url(),
        ],
        &[
            ("TIERCACHE_AUTH_SECRET", SECRET),
            ("ACME_REGISTRY_TOKEN", "acme-registry-credential"),
        ],
    );
    use reqwest::Method as M;
    let url = srv.url("/npm/@acme%2futil");
    let alice = token(SECRET, &["--user", "alice"]);
    let bob = token(SECRET, &["--user", "bob"]);

    // Anonymous callers get nothing of a private scope.
    assert_eq!(call(M::GET, &url, None, b"").await.0, 401);
    assert_eq!(origin.packument_requests_for("@acme/util"), 0);

    // Alice's first request fetches with the scope's credential; her second is her cache.
    let (s, first) = call(M::GET, &url, Some(&alice), b"").await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(call(M::GET, &url, Some(&alice), b"").await.1, first);
    assert_eq!(origin.packument_requests_for("@acme/util"), 1);
    // Bob has his own copy: his first request is his own fetch, never alice's cache.
    assert_eq!(call(M::GET, &url, Some(&bob), b"").await.0, 200);
    assert_eq!(origin.packument_requests_for("@acme/util"), 2);
    // Tarballs likewise.
    let tgz = srv.url("/npm/@acme/util/-/util-1.0.0.tgz");
    for who in [&alice, &alice, &bob] {
        assert_eq!(call(M::GET, &tgz, Some(who), b"").await.0, 200);
    }
    assert_eq!(origin.tarball_requests_for("@acme/util", "1.0.0"), 2);

    // Private requests carried the scope's credential and nothing else; public ones none.
    for r in origin.request_log() {
        let expected = r
            .path
            .contains("acme")
            .then_some("Bearer acme-registry-credential");
        assert_eq!(r.authorization.as_deref(), expected, "{}", r.path);
    }
    assert_eq!(
        call(M::GET, &srv.url("/npm/left-pad"), Some(&alice), b"")
            .await
            .0,
        200
    );
    assert!(
        origin
            .request_log()
            .iter()
            .filter(|r| r.path.contains("left-pad"))
            .all(|r| r.authorization.is_none())
    );

    // The private reads are in the audit log, under each user's own scope.
    let admin = token(SECRET, &["--user", "ops", "--role", "admin"]);
    let (_, log) = call(M::GET, &srv.url("/admin/audit?user=bob"), Some(&admin), b"").await;
    assert!(
        log.contains("user/bob") && log.contains("@acme+util"),
        "{log}"
    );
}
