//! The Turborepo remote cache API over HTTP against the running binary: every endpoint,
//! every error case, and the memory bound on large artifacts.

mod common;

use common::{Server, client, get_json};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let config = dir.join("tiercache.toml");
    std::fs::write(
        &config,
        "[build]\ntokens = [\"rw-token\"]\nread_only_tokens = [\"ro-token\"]\nmax_artifact = \"1MiB\"\n",
    )
    .unwrap();
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&dir.join("data"), &args)
}

fn url(server: &Server, hash: &str, team: &str) -> String {
    server.url(&format!("/v8/artifacts/{hash}?slug={team}"))
}

#[tokio::test]
async fn artifacts_round_trip_with_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let c = client();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let tag = "a".repeat(600);
    let r = c
        .put(url(&server, "0123456789abcdef", "web"))
        .bearer_auth("rw-token")
        .header("content-type", "application/octet-stream")
        .header("x-artifact-duration", "4200")
        .header("x-artifact-tag", &tag)
        .header("x-artifact-sha", "deadbeef")
        .header("x-artifact-dirty-hash", "cafe")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let r = c
        .head(url(&server, "0123456789abcdef", "web"))
        .bearer_auth("ro-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-artifact-duration"], "4200");
    assert_eq!(r.headers()["content-length"], "200000");

    let r = c
        .get(url(&server, "0123456789abcdef", "web"))
        .bearer_auth("ro-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(r.headers()["x-artifact-duration"], "4200");
    assert_eq!(r.headers()["x-artifact-tag"], tag.as_str());
    assert_eq!(r.headers()["x-artifact-sha"], "deadbeef");
    assert_eq!(r.headers()["x-artifact-dirty-hash"], "cafe");
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());

    // First write wins: a second PUT is acknowledged and changes nothing.
    let r = c
        .put(url(&server, "0123456789abcdef", "web"))
        .bearer_auth("rw-token")
        .header("x-artifact-duration", "1")
        .body("different bytes")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let r = c
        .get(url(&server, "0123456789abcdef", "web"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-artifact-duration"], "4200");
    assert_eq!(r.bytes().await.unwrap().as_ref(), body.as_slice());

    // Without a duration, the duration is 0 (always an integer).
    c.put(url(&server, "ab", "web"))
        .bearer_auth("rw-token")
        .body("x")
        .send()
        .await
        .unwrap();
    let r = c
        .head(url(&server, "ab", "web"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-artifact-duration"], "0");

    // The batch query.
    let r = c
        .post(server.url("/v8/artifacts?slug=web"))
        .bearer_auth("ro-token")
        .json(&json!({ "hashes": ["0123456789abcdef", "ab", "ffff"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["0123456789abcdef"]["size"], 200_000);
    assert_eq!(b["0123456789abcdef"]["taskDurationMs"], 4200);
    assert_eq!(b["0123456789abcdef"]["tag"], tag.as_str());
    assert_eq!(b["ab"]["taskDurationMs"], 0);
    assert!(b["ab"].get("tag").is_none());
    assert_eq!(b["ffff"], Value::Null);

    // Status and events.
    let r = c
        .get(server.url("/v8/artifacts/status"))
        .bearer_auth("ro-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "status": "enabled" })
    );
    let events = json!([
        { "sessionId": "s", "source": "REMOTE", "event": "HIT", "hash": "0123456789abcdef", "duration": 4200 },
        { "sessionId": "s", "source": "LOCAL", "event": "MISS", "hash": "ab", "duration": 0 }
    ]);
    let r = c
        .post(server.url("/v8/artifacts/events?slug=web"))
        .bearer_auth("rw-token")
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let stats = get_json(&c, &server.url("/admin/stats")).await;
    assert_eq!(stats["build"]["artifacts"], 2, "{stats}");
    assert_eq!(stats["build"]["hits"], 2);
    assert_eq!(stats["build"]["time_saved_ms"], 8400);
    assert_eq!(stats["build"]["events"]["remote_hit"], 1);
    let list = c
        .get(server.url("/admin/build/artifacts?team=web"))
        .bearer_auth("ro-token")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let first = &list["artifacts"][0];
    assert_eq!(first["hash"], "0123456789abcdef");
    assert_eq!(first["hits"], 2);
    assert_eq!(first["duration_ms"], 4200);
    assert_eq!(first["signed"], true);
}

#[tokio::test]
async fn teams_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let c = client();
    c.put(url(&server, "aaaa", "team-a"))
        .bearer_auth("rw-token")
        .body("A's")
        .send()
        .await
        .unwrap();
    let r = c
        .get(url(&server, "aaaa", "team-b"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .head(url(&server, "aaaa", "team-b"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // teamId works like slug.
    let r = c
        .get(server.url("/v8/artifacts/aaaa?teamId=team-a"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // team-b writing the same hash gets its own artifact.
    c.put(url(&server, "aaaa", "team-b"))
        .bearer_auth("rw-token")
        .body("B's")
        .send()
        .await
        .unwrap();
    let a = c
        .get(url(&server, "aaaa", "team-a"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(a.text().await.unwrap(), "A's");
    let b = c
        .get(url(&server, "aaaa", "team-b"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(b.text().await.unwrap(), "B's");
}

#[tokio::test]
async fn errors_are_clear_and_never_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let c = client();
    let check = |r: reqwest::Response, status: StatusCode| async move {
        assert_eq!(r.status(), status);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        assert!(v["error"]["code"].is_string(), "{v}");
    };
    // Auth.
    check(
        c.get(url(&server, "ab", "t")).send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    check(
        c.get(url(&server, "ab", "t"))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    check(
        c.put(url(&server, "ab", "t"))
            .bearer_auth("ro-token")
            .body("x")
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    check(
        c.get(server.url("/v8/artifacts/status"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Bad hashes and teams.
    for bad in ["xyz", "ab%2f..", &"a".repeat(129)] {
        let r = c
            .get(url(&server, bad, "t"))
            .bearer_auth("rw-token")
            .send()
            .await
            .unwrap();
        check(r, StatusCode::BAD_REQUEST).await;
    }
    check(
        c.get(server.url("/v8/artifacts/ab"))
            .bearer_auth("rw-token")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    check(
        c.get(url(&server, "ab", ".."))
            .bearer_auth("rw-token")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Bad metadata.
    let r = c
        .put(url(&server, "ab", "t"))
        .bearer_auth("rw-token")
        .header("x-artifact-duration", "12.5")
        .body("x")
        .send()
        .await
        .unwrap();
    check(r, StatusCode::BAD_REQUEST).await;
    let r = c
        .put(url(&server, "ab", "t"))
        .bearer_auth("rw-token")
        .header("x-artifact-tag", "t".repeat(601))
        .body("x")
        .send()
        .await
        .unwrap();
    check(r, StatusCode::BAD_REQUEST).await;
    // Too large (limit 1 MiB here).
    let r = c
        .put(url(&server, "ab", "t"))
        .bearer_auth("rw-token")
        .body(vec![0u8; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    check(r, StatusCode::PAYLOAD_TOO_LARGE).await;
    // Batch and events bodies.
    let r = c
        .post(server.url("/v8/artifacts?slug=t"))
        .bearer_auth("rw-token")
        .body("{not json")
        .send()
        .await
        .unwrap();
    check(r, StatusCode::BAD_REQUEST).await;
    let r = c
        .post(server.url("/v8/artifacts?slug=t"))
        .bearer_auth("rw-token")
        .json(&json!({ "hashes": ["zz"] }))
        .send()
        .await
        .unwrap();
    check(r, StatusCode::BAD_REQUEST).await;
    let r = c
        .post(server.url("/v8/artifacts/events"))
        .bearer_auth("rw-token")
        .json(&json!([{ "source": "ELSEWHERE", "event": "HIT" }]))
        .send()
        .await
        .unwrap();
    check(r, StatusCode::BAD_REQUEST).await;
    // A miss is a 404, and nothing above was stored.
    let r = c
        .get(url(&server, "ab", "t"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    check(r, StatusCode::NOT_FOUND).await;
}

/// Resident memory of a process, from /proc.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_gib_artifact_streams_both_ways_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("big.toml");
    std::fs::write(&config, "[build]\ntokens = [\"rw-token\"]\n").unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let pid = server.child.id();
    let c = client();
    const CHUNK: usize = 1024 * 1024;
    const CHUNKS: usize = 1024;
    let chunk = |i: usize| vec![(i % 251) as u8; CHUNK];
    let baseline = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let body = futures::stream::iter((0..CHUNKS).map(move |i| Ok::<_, std::io::Error>(chunk(i))));
    let r = c
        .put(url(&server, "0b1a", "big"))
        .bearer_auth("rw-token")
        .header("content-length", (CHUNK * CHUNKS).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c
        .get(url(&server, "0b1a", "big"))
        .bearer_auth("rw-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut seen = 0usize;
    let mut hasher_ok = true;
    while let Some(part) = futures::StreamExt::next(&mut stream).await {
        let part = part.unwrap();
        for (j, b) in part.iter().enumerate() {
            if *b != (((seen + j) / CHUNK) % 251) as u8 {
                hasher_ok = false;
            }
        }
        seen += part.len();
    }
    sampler.abort();
    assert_eq!(seen, CHUNK * CHUNKS);
    assert!(hasher_ok, "the artifact came back different");
    let growth_mib = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(baseline)
        / 1024;
    eprintln!("server RSS grew by {growth_mib} MiB over a 1 GiB PUT and GET");
    assert!(growth_mib < 64, "server RSS grew by {growth_mib} MiB");
}
