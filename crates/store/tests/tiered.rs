//! The tiered store as front-ends use it: promotion, write-through and single-flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tiercache_core::{CacheKey, PutOptions};
use tiercache_store::{Body, LoadError, StoreConfig, TierName, TieredStore};

fn key(name: &str) -> CacheKey {
    CacheKey::parse("global", "object", name).unwrap()
}

async fn open(dir: &std::path::Path) -> TieredStore {
    TieredStore::open(&StoreConfig::new(dir)).await.unwrap()
}

#[tokio::test]
async fn puts_write_through_and_l2_hits_are_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let k = key("p");
    store
        .put(
            &k,
            PutOptions::default(),
            Body::from(b"promote me".to_vec()),
        )
        .await
        .unwrap();
    // Write-through: the first read is an L1 hit, and L2 has it too.
    assert_eq!(store.get(&k).await.unwrap().unwrap().tier, TierName::L1);
    assert!(store.l2().head(&k).await.unwrap().is_some());

    // Drop it from memory: the next read comes from disk and is promoted.
    store.l1().remove(&k).await;
    let hit = store.get(&k).await.unwrap().unwrap();
    assert_eq!(hit.tier, TierName::L2);
    assert_eq!(hit.body.collect().await.unwrap(), &b"promote me"[..]);
    let hit = store.get(&k).await.unwrap().unwrap();
    assert_eq!(hit.tier, TierName::L1);
    assert_eq!(store.l1().stats().snapshot().hits, 2);
    assert_eq!(store.l2().stats().snapshot().hits, 1);
}

#[tokio::test]
async fn streamed_puts_reach_both_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let k = key("s");
    let chunks = vec![
        Ok(Bytes::from_static(b"one ")),
        Ok(Bytes::from_static(b"two")),
    ];
    let body = Body::Stream(Box::pin(futures::stream::iter(chunks)));
    let meta = store.put(&k, PutOptions::default(), body).await.unwrap();
    assert_eq!(meta.size, 7);
    let hit = store.get(&k).await.unwrap().unwrap();
    assert_eq!(hit.tier, TierName::L1);
    assert_eq!(hit.body.collect().await.unwrap(), &b"one two"[..]);
}

#[tokio::test]
async fn restart_serves_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).await;
        store
            .put(&key("r"), PutOptions::default(), Body::from(vec![1, 2, 3]))
            .await
            .unwrap();
        store.flush(std::time::Duration::ZERO).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = open(dir.path()).await;
    let hit = store.get(&key("r")).await.unwrap().unwrap();
    assert_eq!(hit.tier, TierName::L2);
    assert_eq!(hit.body.collect().await.unwrap(), &[1u8, 2, 3][..]);
}

#[tokio::test]
async fn delete_removes_from_every_tier() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let k = key("d");
    store
        .put(&k, PutOptions::default(), Body::from(vec![0; 10]))
        .await
        .unwrap();
    assert!(store.delete(&k).await.unwrap());
    assert!(store.get(&k).await.unwrap().is_none());
    assert!(store.head(&k).await.unwrap().is_none());
    assert!(!store.delete(&k).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_load_runs_the_loader_once_for_100_callers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = store.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            let hit = store
                .get_or_load(&key("cold"), || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(Some((
                        PutOptions::default(),
                        Body::from(b"origin bytes".to_vec()),
                    )))
                })
                .await
                .unwrap()
                .unwrap();
            hit.body.collect().await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), &b"origin bytes"[..]);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(store.origin_stats().snapshot().hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_is_shared_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            store
                .get_or_load(&key("down"), || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let e: LoadError = Arc::new(std::io::Error::other("origin down"));
                    Err(e)
                })
                .await
                .is_err()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(store.get(&key("down")).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let leader = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .get_or_load(&key("handover"), || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(None)
                })
                .await
                .map(|h| h.is_some())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let follower = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .get_or_load(&key("handover"), || async {
                    Ok(Some((
                        PutOptions::default(),
                        Body::from(b"second".to_vec()),
                    )))
                })
                .await
                .map(|h| h.is_some())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    let got = tokio::time::timeout(Duration::from_secs(5), follower)
        .await
        .expect("follower stuck after its leader was cancelled")
        .unwrap()
        .unwrap();
    assert!(got);
}

#[tokio::test]
async fn not_found_at_the_origin_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let got = store
        .get_or_load(&key("nowhere"), || async { Ok(None) })
        .await
        .unwrap();
    assert!(got.is_none());
}

#[tokio::test]
async fn oversized_and_invalid_puts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.max_entry_bytes = 100;
    let store = TieredStore::open(&cfg).await.unwrap();
    let err = store
        .put(&key("big"), PutOptions::default(), Body::from(vec![0; 101]))
        .await;
    assert!(matches!(
        err,
        Err(tiercache_store::StoreError::TooLarge { .. })
    ));
    let chunks: Vec<std::io::Result<Bytes>> =
        (0..10).map(|_| Ok(Bytes::from(vec![0u8; 20]))).collect();
    let err = store
        .put(
            &key("big"),
            PutOptions::default(),
            Body::Stream(Box::pin(futures::stream::iter(chunks))),
        )
        .await;
    assert!(matches!(
        err,
        Err(tiercache_store::StoreError::TooLarge { .. })
    ));
    let opts = PutOptions {
        tags: vec!["bad tag".into()],
        ..Default::default()
    };
    assert!(
        store
            .put(&key("t"), opts, Body::from(vec![1]))
            .await
            .is_err()
    );
    assert!(store.get(&key("big")).await.unwrap().is_none());
}

fn slow_stream(chunks: Vec<std::io::Result<Bytes>>) -> Body {
    Body::Stream(Box::pin(futures::StreamExt::then(
        futures::stream::iter(chunks),
        |c| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c
        },
    )))
}

async fn drain(fill: tiercache_store::Fill) -> std::io::Result<Bytes> {
    match fill {
        tiercache_store::Fill::Hit(hit) => hit.body.collect().await,
        tiercache_store::Fill::Filling(s) => Body::Stream(s).collect().await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_fill_streams_to_the_loader_while_storing_for_everyone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(i * 5)).await;
            let fill = store
                .get_or_fill(&key("tee"), || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let chunks = (0..10)
                        .map(|i| Ok(Bytes::from(vec![i as u8; 1000])))
                        .collect();
                    Ok(Some((PutOptions::default(), slow_stream(chunks))))
                })
                .await
                .unwrap()
                .unwrap();
            let filling = matches!(fill, tiercache_store::Fill::Filling(_));
            (filling, drain(fill).await.unwrap())
        }));
    }
    let mut filling = 0;
    for t in tasks {
        let (f, bytes) = t.await.unwrap();
        filling += usize::from(f);
        assert_eq!(bytes.len(), 10_000);
        assert_eq!(bytes[9_999], 9);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(filling, 1, "exactly one caller streams from the loader");
    let hit = store.get(&key("tee")).await.unwrap().unwrap();
    assert_eq!(hit.meta.size, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_fill_keeps_nothing_when_the_loader_stream_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let fill = store
        .get_or_fill(&key("bad"), || async {
            let chunks = vec![
                Ok(Bytes::from_static(b"looks fine ")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "checksum mismatch",
                )),
            ];
            Ok(Some((PutOptions::default(), slow_stream(chunks))))
        })
        .await
        .unwrap()
        .unwrap();
    let err = drain(fill).await.unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(store.get(&key("bad")).await.unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(dir.path().join("l2/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_saw_a_fill_fail_starts_a_new_fetch_next_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    for round in 0..20 {
        let k = key(&format!("retry{round}"));
        let fill = store
            .get_or_fill(&k, || async {
                let chunks = vec![
                    Ok(Bytes::from_static(b"partial ")),
                    Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "bad bytes",
                    )),
                ];
                Ok(Some((PutOptions::default(), slow_stream(chunks))))
            })
            .await
            .unwrap()
            .unwrap();
        assert!(drain(fill).await.is_err());
        // At once: the failed flight has ended, so this is a new fetch, not its failure.
        let again = store
            .get_or_fill(&k, || async {
                Ok(Some((
                    PutOptions::default(),
                    Body::Bytes(Bytes::from_static(b"good")),
                )))
            })
            .await
            .unwrap_or_else(|e| panic!("round {round}: shared the old failure: {e}"))
            .unwrap();
        assert_eq!(&drain(again).await.unwrap()[..], b"good");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_fill_stores_even_if_the_caller_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let fill = store
        .get_or_fill(&key("abandoned"), || async {
            let chunks = (0..5).map(|_| Ok(Bytes::from(vec![7u8; 100]))).collect();
            Ok(Some((PutOptions::default(), slow_stream(chunks))))
        })
        .await
        .unwrap()
        .unwrap();
    drop(fill);
    let mut stored = false;
    for _ in 0..100 {
        if store.get(&key("abandoned")).await.unwrap().is_some() {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored, "the fill stopped when its caller went away");
}

#[tokio::test]
async fn list_by_name_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    for name in ["team-a~01", "team-a~02", "team-b~01", "team-aa~01"] {
        let k = CacheKey::parse("global", "turbo", name).unwrap();
        store
            .put(
                &k,
                PutOptions::default(),
                Body::from(name.as_bytes().to_vec()),
            )
            .await
            .unwrap();
    }
    let kind = tiercache_core::Kind::new("turbo").unwrap();
    let rows = store
        .list(&tiercache_core::Scope::Global, &kind, "team-a~", 100)
        .await
        .unwrap();
    let names: Vec<_> = rows
        .iter()
        .map(|(k, _)| k.name().as_str().to_owned())
        .collect();
    assert_eq!(names, ["team-a~01", "team-a~02"]);
    let rows = store
        .list(&tiercache_core::Scope::Global, &kind, "team-", 1)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}
