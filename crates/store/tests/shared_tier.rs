//! Two tiered stores ("nodes") sharing one real S3 server (moto) and one real Redis: what
//! one node stores is an L3 hit on the other, promoted into its own tiers; concurrent misses
//! across nodes run the loader once; a corrupt L3 object is never served or promoted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use tiercache_core::{CacheKey, PutOptions};
use tiercache_store::{
    Body, L3Config, L3Credentials, LoadError, RedisConfig, StoreConfig, TierName, TieredStore,
};
use tiercache_testkit::moto::{BUCKET, Moto};
use tiercache_testkit::redis::RedisServer;

const HANG: Duration = Duration::from_secs(30);

fn key(name: &str) -> CacheKey {
    CacheKey::parse_path(&format!("global/object/{name}")).unwrap()
}

async fn node(dir: &std::path::Path, moto: &Moto, redis: &RedisServer) -> TieredStore {
    let mut cfg = StoreConfig::new(dir);
    let mut l3 = L3Config::new(BUCKET).with_endpoint(moto.endpoint());
    l3.credentials = Some(L3Credentials {
        access_key_id: "test".into(),
        secret_access_key: "testtest".into(),
        session_token: None,
    });
    l3.first_byte_timeout = Duration::from_secs(10);
    cfg.l3 = Some(l3);
    let mut redis_cfg = RedisConfig::new(redis.url());
    redis_cfg.lock_lease = Duration::from_secs(2);
    cfg.redis = Some(redis_cfg);
    TieredStore::open(&cfg).await.unwrap()
}

async fn drained(store: &TieredStore) {
    tokio::time::timeout(HANG, async {
        while store.l3_queue().unwrap().depth > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the L3 upload queue did not drain");
}

async fn body_of(store: &TieredStore, k: &CacheKey) -> Option<(Bytes, TierName)> {
    let hit = store.get(k).await.unwrap()?;
    Some((hit.body.collect().await.unwrap(), hit.tier))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_stored_on_one_node_is_an_l3_hit_on_another_then_local() {
    let (moto, redis) = (Moto::start(), RedisServer::start());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        node(da.path(), &moto, &redis).await,
        node(db.path(), &moto, &redis).await,
    );
    let small = Bytes::from_static(b"shared across the fleet");
    let large: Bytes = (0..9 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    a.put(
        &key("small"),
        PutOptions::default(),
        Body::Bytes(small.clone()),
    )
    .await
    .unwrap();
    let opts = PutOptions {
        content_type: Some("application/x-tar".into()),
        ..Default::default()
    };
    let stream = Body::Bytes(large.clone()).into_stream();
    a.put(&key("large"), opts, Body::Stream(stream))
        .await
        .unwrap();
    drained(&a).await;
    assert_eq!(a.l3_queue().unwrap().uploaded, 2);

    for (name, bytes) in [("small", &small), ("large", &large)] {
        let (got, tier) = body_of(&b, &key(name)).await.unwrap();
        assert_eq!((&got, tier), (bytes, TierName::L3), "{name}");
        let (got, tier) = body_of(&b, &key(name)).await.unwrap();
        assert_eq!(&got, bytes);
        assert_ne!(tier, TierName::L3, "{name} was not promoted");
    }
    let meta = b.head(&key("large")).await.unwrap().unwrap();
    assert_eq!(meta.content_type.as_deref(), Some("application/x-tar"));
    assert_eq!(b.l3().unwrap().stats().snapshot().hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_two_nodes_load_once() {
    let (moto, redis) = (Moto::start(), RedisServer::start());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let nodes = [
        node(da.path(), &moto, &redis).await,
        node(db.path(), &moto, &redis).await,
    ];
    let loads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = nodes[i % 2].clone();
        let loads = loads.clone();
        tasks.push(tokio::spawn(async move {
            let hit = store
                .get_or_load(&key("cold"), || async move {
                    loads.fetch_add(1, SeqCst);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok::<_, LoadError>(Some((
                        PutOptions::default(),
                        Body::Bytes(Bytes::from_static(b"fetched once")),
                    )))
                })
                .await
                .unwrap()
                .unwrap();
            hit.body.collect().await.unwrap()
        }));
    }
    for t in tasks {
        let got = tokio::time::timeout(HANG, t).await.unwrap().unwrap();
        assert_eq!(&got[..], b"fetched once");
    }
    assert_eq!(loads.load(SeqCst), 1, "the origin was asked more than once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_l3_object_is_never_served_or_promoted() {
    let (moto, redis) = (Moto::start(), RedisServer::start());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        node(da.path(), &moto, &redis).await,
        node(db.path(), &moto, &redis).await,
    );
    let small = Bytes::from_static(b"the right bytes");
    let large: Bytes = (0..6 * 1024 * 1024u32).map(|i| (i % 7) as u8).collect();
    a.put(&key("s"), PutOptions::default(), Body::Bytes(small))
        .await
        .unwrap();
    a.put(&key("l"), PutOptions::default(), Body::Bytes(large))
        .await
        .unwrap();
    drained(&a).await;
    for blob in moto.list("tiercache/blobs/") {
        moto.corrupt(&blob);
    }
    assert!(b.get(&key("s")).await.unwrap().is_none());
    assert!(b.get(&key("l")).await.unwrap().is_none());
    // Nothing was copied into B's own tiers either.
    assert!(b.l2().head(&key("s")).await.unwrap().is_none());
    assert!(b.l2().head(&key("l")).await.unwrap().is_none());
    assert_eq!(b.l2().usage().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_of_an_immutable_key_converge_on_one_write_fleet_wide() {
    let (moto, redis) = (Moto::start(), RedisServer::start());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        node(da.path(), &moto, &redis).await,
        node(db.path(), &moto, &redis).await,
    );
    let opts = || PutOptions {
        immutable: true,
        ..Default::default()
    };
    let k = key("artifact");
    let (ra, rb) = tokio::join!(
        a.put(&k, opts(), Body::Bytes(Bytes::from_static(b"built on a"))),
        b.put(&k, opts(), Body::Bytes(Bytes::from_static(b"built on b"))),
    );
    ra.unwrap();
    rb.unwrap();
    drained(&a).await;
    drained(&b).await;
    // A third node and both writers all serve the one write L3 kept.
    let dc = tempfile::tempdir().unwrap();
    let c = node(dc.path(), &moto, &redis).await;
    let (kept, _) = body_of(&c, &k).await.unwrap();
    assert!(kept == b"built on a"[..] || kept == b"built on b"[..]);
    for n in [&a, &b] {
        let (got, _) = body_of(n, &k).await.unwrap();
        assert_eq!(got, kept);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_uploads_by_users_on_different_nodes_are_promoted_fleet_wide() {
    use tiercache_core::{Kind, Name, Principal, Role};
    let (moto, redis) = (Moto::start(), RedisServer::start());
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        node(da.path(), &moto, &redis).await,
        node(db.path(), &moto, &redis).await,
    );
    let user = |id: &str| Principal {
        user: Some(id.into()),
        templates: vec!["web".into()],
        role: Role::User,
        read_only: false,
    };
    let opts = || PutOptions {
        immutable: true,
        shareable: true,
        ..Default::default()
    };
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let name = "team~ab12";
    let put = |store: &TieredStore, who: &Principal| {
        let key = CacheKey::parse(
            &format!("user/{}", who.user.as_deref().unwrap()),
            "turbo",
            name,
        )
        .unwrap();
        let (store, who) = (store.clone(), who.clone());
        async move {
            store
                .scoped(&who)
                .put(&key, opts(), Body::Bytes(Bytes::from_static(b"built")))
                .await
                .unwrap();
        }
    };
    put(&a, &alice).await;
    put(&b, &bob).await;
    drained(&b).await;
    let hit = a
        .scoped(&carol)
        .resolve(&Kind::new("turbo").unwrap(), &Name::new(name).unwrap())
        .await
        .unwrap()
        .expect("carol, on the other node, reads the promoted artifact");
    assert_eq!(&hit.body.collect().await.unwrap()[..], b"built");
}
