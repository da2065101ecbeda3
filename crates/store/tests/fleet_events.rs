//! Invalidation across a fleet (real redis-server, real S3 server): an event started on one
//! node takes effect on the others; a node that was down when it happened applies it before
//! it serves the entry again; a Redis restart between events loses nothing.

use std::time::Duration;

use bytes::Bytes;
use tiercache_core::{CacheKey, PutOptions, Selector};
use tiercache_store::{
    Body, FeedHandle, Invalidation, L3Config, L3Credentials, RedisConfig, StoreConfig, TieredStore,
};
use tiercache_testkit::moto::{BUCKET, Moto};
use tiercache_testkit::redis::{RedisServer, free_port};

const PATIENCE: Duration = Duration::from_secs(10);

fn key(text: &str) -> CacheKey {
    CacheKey::parse_path(text).unwrap()
}

async fn node(dir: &std::path::Path, moto: &Moto, redis: &RedisServer) -> TieredStore {
    let mut cfg = StoreConfig::new(dir);
    let mut l3 = L3Config::new(BUCKET).with_endpoint(moto.endpoint());
    l3.credentials = Some(L3Credentials {
        access_key_id: "test".into(),
        secret_access_key: "testtest".into(),
        session_token: None,
    });
    cfg.l3 = Some(l3);
    let mut r = RedisConfig::new(redis.url());
    r.op_timeout = Duration::from_millis(500);
    cfg.redis = Some(r);
    cfg.event_grace = Duration::from_secs(20);
    TieredStore::open(&cfg).await.unwrap()
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn in_l2(store: &TieredStore, k: &str) -> bool {
    store.l2().head(&key(k)).await.unwrap().is_some()
}

fn purge(k: &str) -> Invalidation {
    Invalidation {
        selectors: vec![Selector::Key(key(k))],
        epochs: Vec::new(),
        reason: format!("test purge of {k}"),
    }
}

/// Stores `k` in L3 (through `from`) and reads it on each of `nodes`, so each holds it in L2.
async fn spread(from: &TieredStore, nodes: &[&TieredStore], k: &str) {
    from.put_shared(
        &key(k),
        PutOptions::default(),
        Body::Bytes(Bytes::from_static(b"v1")),
        true,
    )
    .await
    .unwrap();
    for n in nodes {
        assert!(n.get(&key(k)).await.unwrap().is_some());
        until("the L3 hit reaches L2", async || in_l2(n, k).await).await;
    }
}

async fn following(store: &TieredStore, dir: &std::path::Path) -> FeedHandle {
    let handle = store
        .follow_events(dir)
        .expect("a fleet node follows events");
    until("the node catches up", async || store.feed().is_caught_up()).await;
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_one_node_takes_effect_on_the_others_even_one_that_was_down() {
    let moto = Moto::start();
    let redis = RedisServer::start();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = node(dirs[0].path(), &moto, &redis).await;
    let b = node(dirs[1].path(), &moto, &redis).await;
    let c = node(dirs[2].path(), &moto, &redis).await;
    let _fa = following(&a, dirs[0].path()).await;
    let _fb = following(&b, dirs[1].path()).await;
    let fc = following(&c, dirs[2].path()).await;

    let k = "global/npm-full/left-pad";
    spread(&a, &[&b, &c], k).await;

    // C goes down (stops reading the stream, keeps its position and its disk).
    drop(fc);
    let published = a.publish(purge(k), false).await.unwrap();
    assert!(published.stream_id.is_some());
    assert_eq!(published.removed.l3, 1, "{published:?}");
    until("B applies the event", async || !in_l2(&b, k).await).await;
    assert!(b.get(&key(k)).await.unwrap().is_none());
    assert!(
        in_l2(&c, k).await,
        "C was down: it still holds the old copy"
    );

    // C comes back: until it has caught up it does not serve its own copy; then it has
    // applied the event.
    let _fc = c.follow_events(dirs[2].path()).unwrap();
    assert!(
        c.get(&key(k)).await.unwrap().is_none(),
        "C served an entry an event it had not seen yet invalidated"
    );
    until("C catches up", async || c.feed().is_caught_up()).await;
    until("C applies the missed event", async || !in_l2(&c, k).await).await;

    // A's own event is not applied twice: a fresh copy written after it stays.
    a.put(
        &key(k),
        PutOptions::default(),
        Body::Bytes(Bytes::from_static(b"v2")),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(in_l2(&a, k).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_between_events_loses_none() {
    let moto = Moto::start();
    // Persisted like a production Redis would be (every write to the append-only file).
    let mut redis = RedisServer::start_with(
        free_port(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(da.path(), &moto, &redis).await;
    let b = node(db.path(), &moto, &redis).await;
    let _fa = following(&a, da.path()).await;
    let _fb = following(&b, db.path()).await;
    let (k1, k2) = ("global/npm-full/one", "global/npm-full/two");
    spread(&a, &[&b], k1).await;
    spread(&a, &[&b], k2).await;

    a.publish(purge(k1), false).await.unwrap();
    until("B applies the first event", async || !in_l2(&b, k1).await).await;
    redis.restart();
    // The first publish after the restart may race the reconnect: retry until Redis takes it.
    until("Redis takes the second event", async || {
        a.publish(purge(k2), false).await.is_ok()
    })
    .await;
    until("B applies the second event", async || !in_l2(&b, k2).await).await;
    assert!(b.get(&key(k2)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_read_the_stream_serves_nothing_of_its_own_until_it_can() {
    let moto = Moto::start();
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), &moto, &redis).await;
    let k = "global/npm-full/local-only";
    // Only on this node's disk (not in L3).
    let opts = PutOptions::default();
    let meta = opts.into_meta(2, tiercache_core::ContentHash::of(b"v1"), 1);
    a.l2()
        .put_bytes(&key(k), meta, Bytes::from_static(b"v1"))
        .await
        .unwrap();
    drop(following(&a, dir.path()).await);
    redis.stop();
    let _feed = a.follow_events(dir.path()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!a.feed().is_caught_up());
    assert!(
        a.get(&key(k)).await.unwrap().is_none(),
        "served from L2 while events may be unseen"
    );
    redis.restart();
    until("the node catches up", async || a.feed().is_caught_up()).await;
    assert!(a.get(&key(k)).await.unwrap().is_some());
}
