//! Crash safety against the running binary: `kill -9` in the middle of 200 concurrent PUTs,
//! then a restart; and a graceful shutdown that lets an in-flight upload finish.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, client, get_json};
use rand::{Rng, RngCore, SeedableRng};
use reqwest::StatusCode;

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() { count_files(&p) } else { 1 }
            })
            .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_200_concurrent_puts_leaves_only_whole_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let c = client();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7ea);
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            // Mostly small, some large enough to be mid-write at the kill.
            let len = if i % 10 == 0 {
                rng.random_range(1_000_000..4_000_000)
            } else {
                rng.random_range(1..200_000)
            };
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            b
        })
        .collect();
    let bodies = Arc::new(bodies);
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (c, url, bodies, done) = (
            c.clone(),
            server.url(&format!("/objects/user/crash/object/entry-{i}")),
            bodies.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // Stream each body in chunks with small pauses, so many are mid-upload at the kill.
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bodies[i]
                .chunks(64 * 1024)
                .map(|c| Ok(c.to_vec()))
                .collect();
            let stream = futures::StreamExt::then(futures::stream::iter(chunks), |c| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                c
            });
            let r = c
                .put(&url)
                .body(reqwest::Body::wrap_stream(stream))
                .send()
                .await;
            done.fetch_add(1, Ordering::SeqCst);
            r.map(|r| r.status()).ok()
        }));
    }
    while done.load(Ordering::SeqCst) < 60 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let mut acknowledged = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap() == Some(StatusCode::CREATED) {
            acknowledged.push(i);
        }
    }
    assert!(
        acknowledged.len() < 200,
        "the kill came too late to test anything"
    );

    let server = Server::start(dir.path(), &[]);
    let mut present = 0;
    for (i, body) in bodies.iter().enumerate() {
        let r = c
            .get(server.url(&format!("/objects/user/crash/object/entry-{i}")))
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => {
                let got = r.bytes().await.unwrap();
                assert!(
                    got.as_ref() == body.as_slice(),
                    "entry-{i} read back different bytes"
                );
                present += 1;
            }
            StatusCode::NOT_FOUND => {
                assert!(
                    !acknowledged.contains(&i),
                    "entry-{i} was acknowledged (201) but lost"
                );
            }
            s => panic!("entry-{i}: unexpected {s}"),
        }
    }
    eprintln!(
        "acknowledged {} of 200 before the kill; {present} whole after restart",
        acknowledged.len()
    );
    assert!(present >= acknowledged.len());
    // Nothing half-written is left behind: no temp files, and every blob file is an entry's.
    assert_eq!(count_files(&dir.path().join("l2/tmp")), 0);
    let h: serde_json::Value = get_json(&c, &server.url("/healthz")).await;
    assert_eq!(h["tiers"]["l2"]["entries"], present);
    assert_eq!(count_files(&dir.path().join("l2/blobs")), present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_upload_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let c = client();
    let url = server.url("/objects/global/object/slow");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|i| Ok(vec![i as u8; 10_000])).collect();
    let stream = futures::StreamExt::then(futures::stream::iter(chunks), |c| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        c
    });
    let upload = tokio::spawn(c.put(&url).body(reqwest::Body::wrap_stream(stream)).send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = tokio::task::spawn_blocking(move || {
        let ok = server.terminate();
        (ok, server)
    });
    let r = upload.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (ok, _server) = stopped.await.unwrap();
    assert!(ok, "server did not exit cleanly after SIGTERM");

    let server = Server::start(dir.path(), &[]);
    let body = c
        .get(server.url("/objects/global/object/slow"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), 200_000);
    assert_eq!(body[199_999], 19);
}
