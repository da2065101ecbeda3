//! Invalidation at the store: by key, prefix, tag, scope, kind and a kind's names, with dry
//! runs that count exactly what the real run removes; version epochs that retire every older
//! entry at once (and stay raised across a restart); L3 reached only when asked.

use bytes::Bytes;
use tiercache_core::{CacheKey, Kind, PutOptions, Scope, Selector};
use tiercache_store::{
    Body, EpochOf, EpochTable, L3Config, L3Credentials, Reach, Removed, StoreConfig, TieredStore,
};
use tiercache_testkit::moto::{BUCKET, Moto};

fn key(text: &str) -> CacheKey {
    CacheKey::parse_path(text).unwrap()
}

async fn put(store: &TieredStore, text: &str, tags: &[&str]) {
    let opts = PutOptions {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    store
        .put(&key(text), opts, Body::Bytes(Bytes::from(text.to_owned())))
        .await
        .unwrap();
}

async fn has(store: &TieredStore, text: &str) -> bool {
    store.get(&key(text)).await.unwrap().is_some()
}

const KEYS: [&str; 7] = [
    "global/npm-full/react",
    "global/npm-full/vite",
    "global/npm-tgz/react~react-18.2.0.tgz",
    "template/vite/turbo/web~aa",
    "user/alice/turbo/web~bb",
    "user/alice/turbo/api~cc",
    "global/asset-blob/docs~dd",
];

async fn filled(dir: &std::path::Path) -> TieredStore {
    let store = TieredStore::open(&StoreConfig::new(dir)).await.unwrap();
    for k in KEYS {
        let tags: &[&str] = if k.contains("asset") {
            &["site:docs"]
        } else {
            &[]
        };
        put(&store, k, tags).await;
    }
    store
}

#[tokio::test]
async fn each_selector_removes_what_it_names_and_a_dry_run_counts_the_same() {
    let cases: Vec<(Selector, Vec<&str>)> = vec![
        (
            Selector::Key(key("global/npm-full/react")),
            vec!["global/npm-full/react"],
        ),
        (
            Selector::prefix("global/npm-").unwrap(),
            vec![
                "global/npm-full/react",
                "global/npm-full/vite",
                "global/npm-tgz/react~react-18.2.0.tgz",
            ],
        ),
        (
            Selector::tag("site:docs").unwrap(),
            vec!["global/asset-blob/docs~dd"],
        ),
        (
            Selector::Scope(Scope::user("alice").unwrap()),
            vec!["user/alice/turbo/web~bb", "user/alice/turbo/api~cc"],
        ),
        (
            Selector::Kind(Kind::new("turbo").unwrap()),
            vec![
                "template/vite/turbo/web~aa",
                "user/alice/turbo/web~bb",
                "user/alice/turbo/api~cc",
            ],
        ),
        (
            Selector::names("turbo", "web~").unwrap(),
            vec!["template/vite/turbo/web~aa", "user/alice/turbo/web~bb"],
        ),
    ];
    for (selector, gone) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = filled(dir.path()).await;
        let dry = store
            .invalidate(std::slice::from_ref(&selector), Reach::Everywhere, true)
            .await
            .unwrap();
        for k in KEYS {
            assert!(
                has(&store, k).await,
                "{selector:?}: the dry run removed {k}"
            );
        }
        let real = store
            .invalidate(std::slice::from_ref(&selector), Reach::Everywhere, false)
            .await
            .unwrap();
        assert_eq!(dry, real, "{selector:?}");
        assert_eq!(real.l2, gone.len() as u64, "{selector:?}: {real:?}");
        for k in KEYS {
            assert_eq!(
                has(&store, k).await,
                !gone.contains(&k),
                "{selector:?}: {k}"
            );
        }
        // Nothing left to remove.
        let again = store
            .invalidate(std::slice::from_ref(&selector), Reach::Everywhere, false)
            .await
            .unwrap();
        assert_eq!(again, Removed::default(), "{selector:?}");
    }
}

#[tokio::test]
async fn an_epoch_bump_retires_older_entries_at_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = filled(dir.path()).await;
        // Read once so the entries sit in L1 as well as L2.
        for k in KEYS {
            assert!(has(&store, k).await);
        }
        let removed = store
            .raise_epoch(&EpochOf::Kind("npm-full".into()), 1, Reach::Everywhere)
            .await
            .unwrap()
            .expect("raised");
        assert_eq!(removed.l2, 2, "{removed:?}");
        assert!(!has(&store, "global/npm-full/react").await);
        assert!(!has(&store, "global/npm-full/vite").await);
        assert!(has(&store, "global/npm-tgz/react~react-18.2.0.tgz").await);
        // Written after the bump: current.
        put(&store, "global/npm-full/react", &[]).await;
        assert!(has(&store, "global/npm-full/react").await);
        // A template epoch retires that template's scope only.
        store
            .raise_epoch(&EpochOf::Template("vite".into()), 4, Reach::Everywhere)
            .await
            .unwrap();
        assert!(!has(&store, "template/vite/turbo/web~aa").await);
        assert!(has(&store, "user/alice/turbo/web~bb").await);
        // Epochs never go down; the same value again is a no-op.
        assert!(
            store
                .raise_epoch(&EpochOf::Template("vite".into()), 3, Reach::Everywhere)
                .await
                .is_err()
        );
        assert!(
            store
                .raise_epoch(&EpochOf::Template("vite".into()), 4, Reach::Everywhere)
                .await
                .unwrap()
                .is_none()
        );
    }
    let store = TieredStore::open(&StoreConfig::new(dir.path()))
        .await
        .unwrap();
    assert_eq!(store.epochs().snapshot().templates.get("vite"), Some(&4));
    assert!(
        has(&store, "global/npm-full/react").await,
        "written under epoch 1"
    );
}

#[tokio::test]
async fn a_configured_epoch_retires_entries_written_before_it_without_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path()).await);
    let mut cfg = StoreConfig::new(dir.path());
    let mut floor = EpochTable::default();
    floor.kinds.insert("npm-tgz".into(), 7);
    cfg.epochs = floor;
    let store = TieredStore::open(&cfg).await.unwrap();
    assert!(!has(&store, "global/npm-tgz/react~react-18.2.0.tgz").await);
    assert!(has(&store, "global/npm-full/react").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_everywhere_invalidation_reaches_l3() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    let mut l3 = L3Config::new(BUCKET).with_endpoint(moto.endpoint());
    l3.credentials = Some(L3Credentials {
        access_key_id: "test".into(),
        secret_access_key: "testtest".into(),
        session_token: None,
    });
    cfg.l3 = Some(l3);
    let store = TieredStore::open(&cfg).await.unwrap();
    for k in KEYS {
        store
            .put_shared(
                &key(k),
                PutOptions::default(),
                Body::Bytes(Bytes::from_static(b"x")),
                true,
            )
            .await
            .unwrap();
    }
    let npm = [Selector::prefix("global/npm-full/").unwrap()];
    let local = store.invalidate(&npm, Reach::Local, false).await.unwrap();
    assert_eq!((local.l2, local.l3), (2, 0));
    // Still in L3: a local miss reads it back from there (and writes it to L2 again in the
    // background: wait for that, so the counts below are stable).
    assert!(has(&store, "global/npm-full/react").await);
    for _ in 0..500 {
        if store
            .l2()
            .head(&key("global/npm-full/react"))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let dry = store
        .invalidate(&npm, Reach::Everywhere, true)
        .await
        .unwrap();
    let all = store
        .invalidate(&npm, Reach::Everywhere, false)
        .await
        .unwrap();
    assert_eq!(dry, all);
    assert_eq!(all.l3, 2, "{all:?}");
    assert!(!has(&store, "global/npm-full/react").await);
    assert!(!has(&store, "global/npm-full/vite").await);
    assert!(has(&store, "user/alice/turbo/web~bb").await);
}

#[tokio::test]
async fn a_kind_can_live_shorter_or_longer_than_its_tier_and_expired_entries_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    let short = std::time::Duration::from_millis(300);
    cfg.l1.kind_ttl.insert("npm-full".into(), short);
    cfg.l2.kind_ttl.insert("npm-full".into(), short);
    assert_eq!(
        cfg.l2.ttls().of_key("global/asset-blob/docs~x"),
        std::time::Duration::from_secs(365 * 24 * 3600),
        "site assets live a year by default"
    );
    let store = TieredStore::open(&cfg).await.unwrap();
    put(&store, "global/npm-full/react", &[]).await;
    put(&store, "global/npm-tgz/react~react-18.2.0.tgz", &[]).await;
    assert!(has(&store, "global/npm-full/react").await);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !has(&store, "global/npm-full/react").await,
        "past its kind's TTL"
    );
    assert!(has(&store, "global/npm-tgz/react~react-18.2.0.tgz").await);
    assert!(store.l2().stats().snapshot().expired >= 1);
}
