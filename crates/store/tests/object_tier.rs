//! L3 against a real S3-compatible server (moto): round trips, dedup, expiry, the sweeper,
//! verification of corrupt objects, the circuit while S3 is down, and the upload queue.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tiercache_core::{CacheKey, ContentHash, EntryMeta};
use tiercache_store::{
    Body, L3Config, L3Credentials, L3Error, L3Status, ObjectTier, TierName, UploadQueue,
    UploadSource,
};
use tiercache_testkit::moto::{BUCKET, Moto};

const MIB: usize = 1024 * 1024;
/// Generous bound on operations that must not hang; the assertions are about outcomes.
const HANG: Duration = Duration::from_secs(10);

fn key(name: &str) -> CacheKey {
    CacheKey::parse_path(&format!("global/object/{name}")).unwrap()
}

fn config(endpoint: &str) -> L3Config {
    let mut cfg = L3Config::new(BUCKET).with_endpoint(endpoint);
    cfg.credentials = Some(L3Credentials {
        access_key_id: "test".into(),
        secret_access_key: "testtest".into(),
        session_token: None,
    });
    // moto is slow when the machine is busy; no test is about the first-byte timeout.
    cfg.first_byte_timeout = Duration::from_secs(10);
    cfg.circuit_initial_backoff = Duration::from_millis(200);
    cfg.circuit_max_backoff = Duration::from_millis(400);
    cfg
}

/// A raw client on the same bucket, to inspect and damage objects behind the tier's back.
fn raw(endpoint: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("testtest")
        .build()
        .unwrap()
}

fn meta_of(body: &[u8]) -> EntryMeta {
    EntryMeta {
        size: body.len() as u64,
        hash: ContentHash::of(body),
        created_ms: now_ms(),
        expires_ms: None,
        epoch: 0,
        tags: Vec::new(),
        content_type: None,
        headers: Default::default(),
        immutable: false,
    }
}

fn now_ms() -> u64 {
    tiercache_store::clock::now_ms()
}

/// Deterministic bytes that differ per seed.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn chunked(bytes: Vec<u8>, chunk: usize) -> Body {
    let chunks: Vec<io::Result<Bytes>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Body::Stream(Box::pin(futures::stream::iter(chunks)))
}

async fn count(store: &AmazonS3, prefix: &str) -> usize {
    let prefix = Path::from(prefix);
    store.list(Some(&prefix)).collect::<Vec<_>>().await.len()
}

/// Waits for the background removal of a corrupt blob.
async fn wait_gone(store: &AmazonS3, path: &Path) {
    let deadline = tokio::time::Instant::now() + HANG;
    while store.head(path).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "corrupt blob kept");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn read_all(tier: &ObjectTier, k: &CacheKey) -> Option<Vec<u8>> {
    let hit = tier.get(k).await.unwrap()?;
    assert_eq!(hit.tier, TierName::L3);
    Some(hit.body.collect().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_small_and_large_with_metadata() {
    let s3 = Moto::start();
    let tier = ObjectTier::open(&config(&s3.endpoint())).unwrap();
    assert_eq!(tier.health().status, L3Status::Ok);

    // Small, with every piece of metadata and a name using the whole name alphabet.
    let small = b"hello from the shared tier".to_vec();
    let mut meta = meta_of(&small);
    meta.created_ms -= 5_000;
    meta.expires_ms = Some(now_ms() + 3_600_000);
    meta.epoch = 7;
    meta.tags = vec!["site:docs".into(), "deploy/7".into()];
    meta.content_type = Some("text/plain; charset=utf-8".into());
    meta.headers.insert("x-artifact-tag".into(), "sig".into());
    let k = CacheKey::parse_path("user/u-1/object/a.b_c-d+e@f=g~h,i").unwrap();
    tier.put(&k, &meta, Body::from(small.clone()))
        .await
        .unwrap();
    let hit = tier.get(&k).await.unwrap().unwrap();
    assert_eq!(hit.meta, meta);
    assert!(
        matches!(hit.body, Body::Bytes(_)),
        "small bodies come whole"
    );
    assert_eq!(hit.body.collect().await.unwrap(), small);
    assert_eq!(tier.head(&k).await.unwrap(), Some(meta.clone()));
    let entry = tier.layout().entry(&k);
    assert_eq!(
        entry.as_ref(),
        "tiercache/entries/user/u-1/object/a.b_c-d+e@f=g~h,i"
    );

    // Large: 20 MiB, streamed in odd chunks, uploaded in 8 MiB parts, read as a stream.
    let large = data(20 * MIB, 1);
    let lmeta = meta_of(&large);
    let lk = key("large");
    tier.put(&lk, &lmeta, chunked(large.clone(), 300_001))
        .await
        .unwrap();
    let hit = tier.get(&lk).await.unwrap().unwrap();
    assert!(matches!(hit.body, Body::Stream(_)), "large bodies stream");
    assert!(hit.body.collect().await.unwrap() == large);

    // A body that does not match its metadata stores nothing.
    let bad = data(9 * MIB, 2);
    let mut bmeta = meta_of(&bad);
    bmeta.hash = ContentHash::of(b"something else");
    let err = tier
        .put(&key("bad"), &bmeta, chunked(bad, MIB))
        .await
        .unwrap_err();
    assert!(matches!(err, L3Error::HashMismatch { .. }), "{err}");
    let err = tier
        .put(&key("short"), &meta_of(b"abc"), Body::from(b"ab".to_vec()))
        .await
        .unwrap_err();
    assert!(matches!(err, L3Error::SizeMismatch { .. }), "{err}");
    assert!(tier.get(&key("bad")).await.unwrap().is_none());
    let store = raw(&s3.endpoint());
    assert_eq!(count(&store, "tiercache/blobs").await, 2);

    // Delete removes the entry, not the (possibly shared) blob.
    assert!(tier.delete(&k).await.unwrap());
    assert!(!tier.delete(&k).await.unwrap());
    assert!(tier.get(&k).await.unwrap().is_none());
    assert_eq!(count(&store, "tiercache/blobs").await, 2);

    let stats = tier.stats().snapshot();
    assert_eq!((stats.hits, stats.writes, stats.corrupt), (2, 2, 0));
    assert!(stats.misses >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_the_same_bytes_store_one_blob() {
    let s3 = Moto::start();
    let tier = ObjectTier::open(&config(&s3.endpoint())).unwrap();
    let body = data(64 * 1024, 3);
    let meta = meta_of(&body);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (tier, meta, body) = (tier.clone(), meta.clone(), body.clone());
            // Half of them under one key, half under their own keys.
            let k = if i % 2 == 0 {
                key("same")
            } else {
                key(&format!("k{i}"))
            };
            tokio::spawn(async move { tier.put(&k, &meta, Body::from(body)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let store = raw(&s3.endpoint());
    assert_eq!(count(&store, "tiercache/blobs").await, 1);
    assert_eq!(count(&store, "tiercache/entries").await, 5);
    for name in ["same", "k1", "k3", "k5", "k7"] {
        assert_eq!(read_all(&tier, &key(name)).await.unwrap(), body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_not_served_and_the_sweeper_collects_them() {
    let s3 = Moto::start();
    let mut cfg = config(&s3.endpoint());
    cfg.ttl = Duration::from_secs(3600);
    cfg.sweep_grace = Duration::ZERO;
    let tier = ObjectTier::open(&cfg).unwrap();

    // Five entries past the tier's TTL, one past its own expiry, one live.
    for i in 0..5u8 {
        let body = data(1000, 10 + i);
        let mut meta = meta_of(&body);
        meta.created_ms -= 2 * 3_600_000;
        tier.put(&key(&format!("old{i}")), &meta, Body::from(body))
            .await
            .unwrap();
    }
    let body = data(1000, 20);
    let mut meta = meta_of(&body);
    meta.expires_ms = Some(now_ms() - 1);
    tier.put(&key("gone"), &meta, Body::from(body))
        .await
        .unwrap();
    let live = data(1000, 30);
    tier.put(&key("live"), &meta_of(&live), Body::from(live.clone()))
        .await
        .unwrap();
    // A blob written by a put that never wrote its entry.
    let store = raw(&s3.endpoint());
    let stray = ContentHash::of(b"stray");
    store
        .put(
            &tier.layout().blob(&stray),
            PutPayload::from_static(b"stray"),
        )
        .await
        .unwrap();

    assert!(tier.get(&key("old0")).await.unwrap().is_none());
    assert!(tier.head(&key("old0")).await.unwrap().is_none());
    assert!(tier.get(&key("gone")).await.unwrap().is_none());
    // Not deleted inline: the sweeper does it.
    assert_eq!(count(&store, "tiercache/entries").await, 7);
    assert_eq!(count(&store, "tiercache/blobs").await, 8);

    // Bounded batches: at most 2 deletions per pass.
    let mut passes = Vec::new();
    loop {
        let r = tier.sweep(2).await.unwrap();
        assert!(r.expired + r.invalid + r.orphans <= 2, "{r:?}");
        let more = r.more;
        passes.push(r);
        if !more {
            break;
        }
        assert!(passes.len() < 10, "sweeping does not converge: {passes:?}");
    }
    let expired: u64 = passes.iter().map(|r| r.expired).sum();
    let orphans: u64 = passes.iter().map(|r| r.orphans).sum();
    assert_eq!((expired, orphans), (6, 7), "{passes:?}");
    assert!(passes.len() >= 7);
    assert_eq!(count(&store, "tiercache/entries").await, 1);
    assert_eq!(count(&store, "tiercache/blobs").await, 1);
    assert_eq!(read_all(&tier, &key("live")).await.unwrap(), live);
    assert_eq!(tier.stats().snapshot().expired, 6);

    // With a grace period, a young unreferenced blob survives.
    let mut cfg = cfg.clone();
    cfg.sweep_grace = Duration::from_secs(3600);
    let patient = ObjectTier::open(&cfg).unwrap();
    store
        .put(
            &tier.layout().blob(&stray),
            PutPayload::from_static(b"stray"),
        )
        .await
        .unwrap();
    let r = patient.sweep(100).await.unwrap();
    assert_eq!((r.orphans, r.blobs, r.more), (0, 2, false));

    // The background sweeper runs the same passes.
    tier.put(
        &key("old9"),
        &{
            let mut m = meta_of(b"x");
            m.expires_ms = Some(1);
            m
        },
        Body::from(b"x".to_vec()),
    )
    .await
    .unwrap();
    let sweeper = tier.spawn_sweeper(Duration::from_millis(100), 100);
    let deadline = tokio::time::Instant::now() + HANG;
    while count(&store, "tiercache/entries").await > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "background sweep did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sweeper);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_objects_are_never_served() {
    let s3 = Moto::start();
    let tier = ObjectTier::open(&config(&s3.endpoint())).unwrap();
    let store = raw(&s3.endpoint());

    // Small: same size, different bytes → a miss, counted, and the bad blob removed.
    let small = data(10_000, 4);
    let meta = meta_of(&small);
    tier.put(&key("s"), &meta, Body::from(small.clone()))
        .await
        .unwrap();
    let blob = tier.layout().blob(&meta.hash);
    store
        .put(&blob, PutPayload::from(data(10_000, 5)))
        .await
        .unwrap();
    assert!(tier.get(&key("s")).await.unwrap().is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 1);
    // Removed in the background, so the next put uploads the right bytes again.
    wait_gone(&store, &blob).await;
    tier.put(&key("s"), &meta, Body::from(small.clone()))
        .await
        .unwrap();
    assert_eq!(read_all(&tier, &key("s")).await.unwrap(), small);

    // Small: different size → a miss, counted.
    store
        .put(&blob, PutPayload::from(data(9_999, 4)))
        .await
        .unwrap();
    assert!(tier.get(&key("s")).await.unwrap().is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 2);

    // Large: same size, one byte changed near the end → the stream ends in an error
    // instead of its last chunk.
    let large = data(6 * MIB, 6);
    let lmeta = meta_of(&large);
    tier.put(&key("l"), &lmeta, Body::from(large.clone()))
        .await
        .unwrap();
    let mut bad = large.clone();
    let last = bad.len() - 10;
    bad[last] ^= 0xff;
    let lblob = tier.layout().blob(&lmeta.hash);
    store.put(&lblob, PutPayload::from(bad)).await.unwrap();
    let hit = tier
        .get(&key("l"))
        .await
        .unwrap()
        .expect("large hits stream");
    let mut stream = hit.body.into_stream();
    let (mut served, mut error) = (0usize, None);
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => served += chunk.len(),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("a corrupt large body must end in an error");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(served < large.len(), "the whole corrupt body was served");
    assert_eq!(tier.stats().snapshot().corrupt, 3);
    wait_gone(&store, &lblob).await;

    // Large: different size → a miss before any byte is served.
    tier.put(&key("l2"), &lmeta, Body::from(large.clone()))
        .await
        .unwrap();
    store
        .put(&lblob, PutPayload::from(data(5 * MIB, 6)))
        .await
        .unwrap();
    assert!(tier.get(&key("l2")).await.unwrap().is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 4);

    // A missing blob behind an entry is a plain miss.
    store.delete(&tier.layout().blob(&meta.hash)).await.unwrap();
    assert!(tier.get(&key("s")).await.unwrap().is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_s3_is_a_fast_miss_until_it_answers_again() {
    let mut s3 = Moto::start();
    let tier = ObjectTier::open(&config(&s3.endpoint())).unwrap();
    let body = b"before the outage".to_vec();
    tier.put(&key("a"), &meta_of(&body), Body::from(body))
        .await
        .unwrap();

    s3.stop();
    // The first request finds out (after object_store's short retries)…
    let first = tokio::time::timeout(HANG, tier.get(&key("a")))
        .await
        .expect("get hung while S3 is down");
    assert!(first.is_err(), "a request to a dead S3 must fail");
    let health = tier.health();
    assert_eq!(health.status, L3Status::Degraded);
    assert!(health.last_error.is_some() && health.since_ms.is_some());
    let json = serde_json::to_value(&health).unwrap();
    assert_eq!(json["status"], "degraded");
    // …and later ones are answered by the open circuit without a request.
    for _ in 0..3 {
        let r = tokio::time::timeout(HANG, tier.get(&key("a")))
            .await
            .unwrap();
        assert!(matches!(r, Err(L3Error::Unavailable { .. })));
        let r = tokio::time::timeout(HANG, tier.head(&key("a")))
            .await
            .unwrap();
        assert!(r.unwrap_err().is_unavailable());
    }
    let err = tier
        .put(&key("b"), &meta_of(b"b"), Body::from(b"b".to_vec()))
        .await
        .unwrap_err();
    assert!(err.is_transient());

    // Back up (empty: moto keeps data in memory): the prober closes the circuit.
    s3.restart();
    let deadline = tokio::time::Instant::now() + HANG;
    while tier.health().status != L3Status::Ok {
        assert!(
            tokio::time::Instant::now() < deadline,
            "health never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let json = serde_json::to_value(tier.health()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "ok", "last_error": null, "since_ms": null})
    );
    assert!(tier.get(&key("a")).await.unwrap().is_none());
    let body = b"after the outage".to_vec();
    tier.put(&key("a"), &meta_of(&body), Body::from(body.clone()))
        .await
        .unwrap();
    assert_eq!(read_all(&tier, &key("a")).await.unwrap(), body);
}

/// Bodies the queue asks for, as the tiered store would read them from L2.
#[derive(Default)]
struct Source {
    bodies: Mutex<HashMap<String, Vec<u8>>>,
}

impl UploadSource for Source {
    fn open(&self, key: CacheKey, _meta: EntryMeta) -> BoxFuture<'static, Option<Body>> {
        let body = self.bodies.lock().unwrap().get(&key.to_string()).cloned();
        Box::pin(async move { body.map(|b| chunked(b, 1_000_003)) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_uploads_wait_out_an_outage() {
    let mut s3 = Moto::start();
    let tier = ObjectTier::open(&config(&s3.endpoint())).unwrap();
    let source = Arc::new(Source::default());
    let queue = UploadQueue::start(tier.clone(), source.clone(), 16, 2);

    // While S3 is up: one inline, one read from the source, one whose entry is gone.
    let inline = b"inline".to_vec();
    assert!(queue.enqueue(
        key("inline"),
        meta_of(&inline),
        Some(Bytes::from(inline.clone()))
    ));
    let big = data(9 * MIB, 7);
    source
        .bodies
        .lock()
        .unwrap()
        .insert(key("big").to_string(), big.clone());
    assert!(queue.enqueue(key("big"), meta_of(&big), None));
    assert!(queue.enqueue(key("vanished"), meta_of(b"v"), None));
    assert!(queue.wait_idle(HANG).await);
    assert_eq!(read_all(&tier, &key("inline")).await.unwrap(), inline);
    assert!(read_all(&tier, &key("big")).await.unwrap() == big);
    assert!(tier.get(&key("vanished")).await.unwrap().is_none());
    let stats = queue.stats();
    assert_eq!((stats.uploaded, stats.failures, stats.dropped), (2, 0, 0));

    // S3 down: the upload fails, keeps its slot, and completes once S3 is back.
    s3.stop();
    let body = b"uploaded after the outage".to_vec();
    assert!(queue.enqueue(
        key("later"),
        meta_of(&body),
        Some(Bytes::from(body.clone()))
    ));
    let deadline = tokio::time::Instant::now() + HANG;
    while queue.stats().failures == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no failed attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queue.depth(), 1);
    assert!(!queue.wait_idle(Duration::from_millis(200)).await);
    s3.restart();
    assert!(
        queue.wait_idle(Duration::from_secs(20)).await,
        "upload never completed"
    );
    assert_eq!(read_all(&tier, &key("later")).await.unwrap(), body);
    let stats = queue.stats();
    assert_eq!((stats.uploaded, stats.depth, stats.dropped), (3, 0, 0));
    assert!(stats.failures >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts() {
    // Nothing listens on the endpoint, so every job stays in the queue, retrying.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let tier = ObjectTier::open(&config(&endpoint)).unwrap();
    let queue = UploadQueue::start(tier, Arc::new(Source::default()), 2, 1);
    let one = |n: &str| {
        (
            key(n),
            meta_of(n.as_bytes()),
            Some(Bytes::from(n.to_owned())),
        )
    };
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let (k, m, b) = one(name);
        assert_eq!(queue.enqueue(k, m, b), i < 2, "job {name}");
    }
    let stats = queue.stats();
    assert_eq!((stats.depth, stats.capacity, stats.dropped), (2, 2, 2));
    assert_eq!(
        serde_json::to_value(stats).unwrap()["dropped"],
        serde_json::json!(2)
    );
}
