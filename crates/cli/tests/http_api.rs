//! The object API over HTTP against the running binary.

mod common;

use common::{Server, blob_path, client, get_json, get_text, metric, raw_request};
use reqwest::StatusCode;

#[tokio::test]
async fn put_get_head_delete_and_304() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let c = client();
    let url = server.url("/objects/user/alice/object/notes.txt");

    let r = c
        .put(&url)
        .header("content-type", "text/plain")
        .body("hello tiercache")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let put: serde_json::Value = r.json().await.unwrap();
    assert_eq!(put["size"], 15);

    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/plain");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", put["hash"].as_str().unwrap()));
    assert!(r.headers().contains_key("last-modified"));
    assert_eq!(r.text().await.unwrap(), "hello tiercache");

    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "15");

    let r = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let r = c
        .get(&url)
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    assert_eq!(
        c.delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.get(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.head(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.delete(&url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn restart_keeps_entries() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let big: Vec<u8> = (0..6_000_000u32).map(|i| (i % 241) as u8).collect();
    {
        let mut server = Server::start(dir.path(), &[]);
        for (name, body) in [("small", b"small body".to_vec()), ("big", big.clone())] {
            let r = c
                .put(server.url(&format!("/objects/global/object/{name}")))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
        }
        assert!(server.terminate(), "server did not shut down cleanly");
    }
    let server = Server::start(dir.path(), &[]);
    let r = c
        .get(server.url("/objects/global/object/small"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-tiercache-tier"], "l2");
    assert_eq!(r.bytes().await.unwrap(), &b"small body"[..]);
    let r = c
        .get(server.url("/objects/global/object/big"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), big.as_slice());
}

#[tokio::test]
async fn a_flipped_byte_on_disk_is_a_miss_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    // No memory tier, so the read must come from disk.
    let server = Server::start(dir.path(), &["--l1-budget", "0"]);
    let c = client();
    let url = server.url("/objects/global/object/victim");
    let body = vec![b'a'; 100_000];
    let put: serde_json::Value = c
        .put(&url)
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        c.get(&url).send().await.unwrap().bytes().await.unwrap(),
        body
    );

    let path = blob_path(dir.path(), put["hash"].as_str().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[50_000] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let text = r.text().await.unwrap();
    assert!(!text.contains("aaaa"), "corrupt bytes were served");
    let metrics = get_text(&c, &server.url("/metrics")).await;
    assert_eq!(
        metric(&metrics, "tiercache_corrupt_reads_total{tier=\"l2\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "tiercache_hits_total{tier=\"l2\"}"),
        Some(1.0)
    );
    // The background flusher reports its backlog and has not failed.
    assert!(
        metric(&metrics, "tiercache_l2_flush_backlog_bytes").is_some(),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "tiercache_l2_flush_failures_total"),
        Some(0.0)
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body", "1KiB"]);
    let c = client();
    let cases: &[(&str, &str)] = &[
        ("/objects/global/object/..", "\"..\""),
        ("/objects/global/object/x..y", "\"..\""),
        ("/objects/global/object/a%2fb", "percent-encoded"),
        ("/objects/global/object/%2e%2e", "percent-encoded"),
        ("/objects/global/object/a%00b", "percent-encoded"),
        ("/objects/team/x/object/a", "unknown scope"),
        ("/objects/user/../object/a", "user id"),
        ("/objects/user/a%2f..%2fb/object/a", "percent-encoded"),
        ("/objects/user/.x/object/a", "user id"),
        ("/objects/user/a/OBJECT/a", "kind"),
        ("/objects/global/object", "name is empty"),
        ("/objects/global/object/", "name is empty"),
        ("/objects/global/object/a/b", "'/'"),
        ("/objects/global/object/.hidden", "start with '.'"),
    ];
    for (path, expect) in cases {
        for method in ["GET", "PUT", "DELETE", "HEAD"] {
            let (status, body) = raw_request(&server.base, method, path, b"x");
            assert_eq!(status, 400, "{method} {path}: {body}");
            if method != "HEAD" {
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                let msg = body["error"].as_str().unwrap();
                assert!(msg.contains(expect), "{method} {path}: {msg}");
            }
        }
    }
    let long_name = "n".repeat(513);
    let r = c
        .put(server.url(&format!("/objects/global/object/{long_name}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Oversized: declared and streamed (chunked, no length).
    let r = c
        .put(server.url("/objects/global/object/big"))
        .body(vec![0u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("limit"));
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..8).map(|_| Ok(vec![1u8; 512])).collect();
    let r = c
        .put(server.url("/objects/global/object/big"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    // The server answers 413 as soon as the limit is crossed; a client still sending may see
    // the connection close before it reads that answer. Either way nothing is stored.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // A fresh client: the pooled connection may be the one the server just closed.
    let c = client();
    assert_eq!(
        c.get(server.url("/objects/global/object/big"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    // Bad options.
    let r = c
        .put(server.url("/objects/global/object/t"))
        .header("x-tiercache-ttl", "soon")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .put(server.url("/objects/global/object/t"))
        .header("x-tiercache-tags", "ok,not ok")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Still serving.
    let r = c
        .put(server.url("/objects/global/object/fine"))
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let h: serde_json::Value = get_json(&c, &server.url("/healthz")).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["tiers"]["l1"]["state"], "ok");
    assert_eq!(h["tiers"]["l2"]["state"], "ok");
}

#[tokio::test]
async fn health_and_metrics_name_each_tier() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let c = client();
    let url = server.url("/objects/template/vite/object/k");
    c.put(&url).body("v").send().await.unwrap();
    c.get(&url).send().await.unwrap();
    c.get(server.url("/objects/template/vite/object/missing"))
        .send()
        .await
        .unwrap();
    let m = get_text(&c, &server.url("/metrics")).await;
    assert_eq!(
        metric(&m, "tiercache_hits_total{tier=\"l1\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "tiercache_misses_total{tier=\"l1\"}"), Some(1.0));
    assert_eq!(metric(&m, "tiercache_misses_total{tier=\"l2\"}"), Some(1.0));
    assert_eq!(metric(&m, "tiercache_entries{tier=\"l2\"}"), Some(1.0));
    assert!(m.contains("tiercache_tier_latency_seconds"));
}
