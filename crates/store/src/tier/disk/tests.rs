use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tiercache_core::{CacheKey, ContentHash, DiskSync, L2Policy, PutOptions};

use super::DiskTier;
use crate::body::Body;
use crate::clock::now_ms;
use crate::config::StoreConfig;

fn key(name: &str) -> CacheKey {
    CacheKey::parse("global", "object", name).unwrap()
}

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig::new(dir)
}

async fn put(tier: &DiskTier, k: &CacheKey, bytes: &[u8]) {
    let meta =
        PutOptions::default().into_meta(bytes.len() as u64, ContentHash::of(bytes), now_ms());
    tier.put_bytes(k, meta, Bytes::copy_from_slice(bytes))
        .await
        .unwrap();
}

async fn read(tier: &DiskTier, k: &CacheKey) -> Option<Bytes> {
    let hit = tier.get(k).await.unwrap()?;
    Some(hit.body.collect().await.unwrap())
}

fn blob_files(dir: &std::path::Path) -> usize {
    walk(&dir.join("l2/blobs"))
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { walk(&p) } else { 1 }
        })
        .sum()
}

#[tokio::test]
async fn put_get_delete() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    put(&tier, &key("a"), b"alpha").await;
    assert_eq!(read(&tier, &key("a")).await.as_deref(), Some(&b"alpha"[..]));
    assert!(tier.head(&key("a")).await.unwrap().is_some());
    assert!(tier.delete(&key("a")).await.unwrap());
    assert!(!tier.delete(&key("a")).await.unwrap());
    assert!(read(&tier, &key("a")).await.is_none());
    assert_eq!(blob_files(dir.path()), 0);
    assert_eq!(tier.usage().bytes, 0);
}

#[tokio::test]
async fn identical_bytes_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    let body = vec![42u8; 10_000];
    put(&tier, &key("one"), &body).await;
    put(
        &tier,
        &CacheKey::parse("user/u1", "build", "two").unwrap(),
        &body,
    )
    .await;
    put(
        &tier,
        &CacheKey::parse("template/t", "npm", "three").unwrap(),
        &body,
    )
    .await;
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(tier.usage().bytes, 10_000);
    assert_eq!(tier.usage().entries, 3);
    let kinds = tier.usage_by_kind().await.unwrap();
    assert_eq!(
        kinds["object"],
        super::KindUsage {
            entries: 1,
            bytes: 10_000
        }
    );
    assert_eq!(kinds["build"].entries, 1);
    assert_eq!(kinds["npm"].entries, 1);
    // The blob lives until its last reference goes.
    tier.delete(&key("one")).await.unwrap();
    assert_eq!(blob_files(dir.path()), 1);
    tier.delete(&CacheKey::parse("user/u1", "build", "two").unwrap())
        .await
        .unwrap();
    tier.delete(&CacheKey::parse("template/t", "npm", "three").unwrap())
        .await
        .unwrap();
    assert_eq!(blob_files(dir.path()), 0);
}

#[tokio::test]
async fn replacing_an_entry_frees_the_old_blob() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    put(&tier, &key("k"), b"first").await;
    put(&tier, &key("k"), b"second").await;
    put(&tier, &key("k"), b"second").await;
    assert_eq!(
        read(&tier, &key("k")).await.as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(tier.usage().entries, 1);
    assert_eq!(tier.usage().bytes, 6);
}

#[tokio::test]
async fn budget_evicts_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.l2 = L2Policy {
        budget_bytes: 10_000,
        low_watermark_percent: 80,
        ttl: Duration::from_secs(3600),
        ..L2Policy::default()
    };
    let tier = DiskTier::open(&cfg).await.unwrap();
    for i in 0..8u8 {
        put(&tier, &key(&format!("k{i}")), &vec![i; 1000]).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Read k0 so it is recent; then push the store over budget.
    assert!(read(&tier, &key("k0")).await.is_some());
    tokio::time::sleep(Duration::from_millis(3)).await;
    for i in 8..12u8 {
        put(&tier, &key(&format!("k{i}")), &vec![i; 1000]).await;
    }
    tier.maintain().await.unwrap();
    // A background pass may still be finishing its batch.
    for _ in 0..100 {
        if tier.stats().snapshot().evictions >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let usage = tier.usage();
    // Over budget (11 KB after k10), eviction freed down to the 8 KB low watermark at
    // least once; whenever it ran, usage is back within budget.
    assert!(usage.bytes <= 10_000, "{usage:?}");
    assert!(
        read(&tier, &key("k0")).await.is_some(),
        "recently read entry was evicted"
    );
    assert!(
        read(&tier, &key("k1")).await.is_none(),
        "oldest entry survived"
    );
    assert!(read(&tier, &key("k11")).await.is_some());
    assert!(tier.stats().snapshot().evictions >= 3);
    assert_eq!(blob_files(dir.path()) as u64, usage.entries);
}

#[tokio::test]
async fn entries_expire_by_ttl_and_by_their_own_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.l2.ttl = Duration::from_millis(300);
    let tier = DiskTier::open(&cfg).await.unwrap();
    put(&tier, &key("tier-ttl"), b"x").await;
    let opts = PutOptions {
        ttl: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let stream = Body::Bytes(Bytes::from_static(b"y")).into_stream();
    tier.put_stream(&key("own"), opts, stream, 0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(read(&tier, &key("own")).await.is_none());
    assert!(read(&tier, &key("tier-ttl")).await.is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(tier.head(&key("tier-ttl")).await.unwrap().is_none());
    tier.maintain().await.unwrap();
    assert_eq!(tier.usage().entries, 0);
    assert_eq!(blob_files(dir.path()), 0);
    assert!(tier.stats().snapshot().expired >= 2);
}

#[tokio::test]
async fn a_corrupt_blob_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    let body = vec![7u8; 5000];
    put(&tier, &key("c"), &body).await;
    let path = dir
        .path()
        .join("l2/blobs")
        .join(&ContentHash::of(&body).to_hex()[..2])
        .join(ContentHash::of(&body).to_hex());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1234] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    assert!(read(&tier, &key("c")).await.is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 1);
    assert!(!path.exists());
    // Stored again, it is served again.
    put(&tier, &key("c"), &body).await;
    assert_eq!(read(&tier, &key("c")).await.unwrap(), body);
}

#[tokio::test]
async fn a_large_corrupt_blob_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.inline_read_bytes = 1024;
    let tier = DiskTier::open(&cfg).await.unwrap();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    put(&tier, &key("big"), &body).await;
    assert_eq!(read(&tier, &key("big")).await.unwrap(), body);
    let hex = ContentHash::of(&body).to_hex();
    let path = dir.path().join("l2/blobs").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2_999_999] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    assert!(tier.get(&key("big")).await.unwrap().is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 1);
}

#[tokio::test]
async fn bytes_changed_while_streaming_end_the_stream_in_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.inline_read_bytes = 1024;
    let tier = DiskTier::open(&cfg).await.unwrap();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 13) as u8).collect();
    put(&tier, &key("s"), &body).await;
    let hit = tier.get(&key("s")).await.unwrap().unwrap();
    let hex = ContentHash::of(&body).to_hex();
    let path = dir.path().join("l2/blobs").join(&hex[..2]).join(&hex);
    // Flip a byte in place (same inode, as bit rot would).
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(1_999_000)).unwrap();
    f.write_all(&[0xff]).unwrap();
    drop(f);
    let mut stream = hit.body.into_stream();
    let mut got_error = false;
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            got_error = true;
        }
    }
    assert!(
        got_error,
        "a changed blob streamed to the end without an error"
    );
}

#[tokio::test]
async fn large_bodies_stream_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.inline_read_bytes = 64 * 1024;
    let tier = DiskTier::open(&cfg).await.unwrap();
    let chunks: Vec<std::io::Result<Bytes>> = (0..64u8)
        .map(|i| Ok(Bytes::from(vec![i; 64 * 1024])))
        .collect();
    let stream = Box::pin(futures::stream::iter(chunks));
    let (meta, kept) = tier
        .put_stream(&key("big"), PutOptions::default(), stream, 1024)
        .await
        .unwrap();
    assert_eq!(meta.size, 64 * 64 * 1024);
    assert!(kept.is_none());
    let hit = tier.get(&key("big")).await.unwrap().unwrap();
    assert!(matches!(hit.body, Body::Stream(_)));
    let bytes = hit.body.collect().await.unwrap();
    assert_eq!(ContentHash::of(&bytes), meta.hash);
}

#[tokio::test]
async fn a_failed_body_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    let chunks: Vec<std::io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ];
    let stream = Box::pin(futures::stream::iter(chunks));
    let err = tier
        .put_stream(&key("p"), PutOptions::default(), stream, 0)
        .await;
    assert!(err.is_err());
    assert!(tier.head(&key("p")).await.unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(dir.path().join("l2/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(blob_files(dir.path()), 0);
}

#[tokio::test]
async fn a_cancelled_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    let stream = Box::pin(
        futures::stream::iter(vec![Ok(Bytes::from_static(b"start"))])
            .chain(futures::stream::pending()),
    );
    let k = key("never");
    let write = tier.put_stream(&k, PutOptions::default(), stream, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), write)
            .await
            .is_err()
    );
    assert!(tier.head(&key("never")).await.unwrap().is_none());
    // The writer thread removes the temporary file once it sees the write abandoned.
    let temp_files = || {
        std::fs::read_dir(dir.path().join("l2/tmp"))
            .unwrap()
            .count()
    };
    for _ in 0..200 {
        if temp_files() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(temp_files(), 0);
}

#[tokio::test]
async fn expected_hash_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    let opts = PutOptions {
        expected_hash: Some(ContentHash::of(b"something else")),
        ..Default::default()
    };
    let stream = Body::Bytes(Bytes::from_static(b"actual")).into_stream();
    let err = tier.put_stream(&key("h"), opts, stream, 0).await;
    assert!(matches!(err, Err(crate::StoreError::HashMismatch { .. })));
    assert!(tier.head(&key("h")).await.unwrap().is_none());
}

#[tokio::test]
async fn restart_keeps_entries_and_recovers_from_debris() {
    let dir = tempfile::tempdir().unwrap();
    {
        let tier = DiskTier::open(&config(dir.path())).await.unwrap();
        put(&tier, &key("keep"), b"kept across restarts").await;
        put(&tier, &key("lose"), b"its blob will vanish").await;
        tier.flush().await.unwrap();
    }
    // Debris of a crash: a half-written temp file, an orphan blob, a missing blob.
    let l2 = dir.path().join("l2");
    std::fs::write(l2.join("tmp/0123.part"), b"half").unwrap();
    let orphan = ContentHash::of(b"orphan").to_hex();
    std::fs::create_dir_all(l2.join("blobs").join(&orphan[..2])).unwrap();
    std::fs::write(l2.join("blobs").join(&orphan[..2]).join(&orphan), b"orphan").unwrap();
    let lost = ContentHash::of(b"its blob will vanish").to_hex();
    std::fs::remove_file(l2.join("blobs").join(&lost[..2]).join(&lost)).unwrap();
    // The first tier's maintenance task may still hold the index briefly.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let tier = DiskTier::open(&config(dir.path())).await.unwrap();
    assert_eq!(
        read(&tier, &key("keep")).await.as_deref(),
        Some(&b"kept across restarts"[..])
    );
    assert!(read(&tier, &key("lose")).await.is_none());
    assert_eq!(std::fs::read_dir(l2.join("tmp")).unwrap().count(), 0);
    assert!(!l2.join("blobs").join(&orphan[..2]).join(&orphan).exists());
    assert_eq!(tier.usage().entries, 1);
    assert_eq!(tier.usage().bytes, b"kept across restarts".len() as u64);
    let kinds = tier.usage_by_kind().await.unwrap();
    assert_eq!(kinds.len(), 1);
    assert_eq!(kinds["object"].entries, 1);
}

#[tokio::test]
async fn a_leased_blob_outlives_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.inline_read_bytes = 1024;
    let tier = DiskTier::open(&cfg).await.unwrap();
    let body = vec![9u8; 500_000];
    put(&tier, &key("r"), &body).await;
    let hit = tier.get(&key("r")).await.unwrap().unwrap();
    // Deleted while a reader holds it: the reader still gets every byte.
    assert!(tier.delete(&key("r")).await.unwrap());
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(hit.body.collect().await.unwrap(), body);
    tier.maintain().await.unwrap();
    assert_eq!(blob_files(dir.path()), 0);
    assert_eq!(tier.usage().bytes, 0);
}

#[tokio::test]
async fn every_fsync_mode_round_trips_and_survives_a_restart() {
    for mode in [DiskSync::Always, DiskSync::Background, DiskSync::Never] {
        round_trip_and_restart(mode).await;
    }
}

async fn round_trip_and_restart(mode: DiskSync) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.l2.fsync = mode;
    cfg.inline_read_bytes = 1024;
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 199) as u8).collect();
    {
        let tier = DiskTier::open(&cfg).await.unwrap();
        put(&tier, &key("small"), b"tiny").await;
        let chunks: Vec<std::io::Result<Bytes>> = body
            .chunks(65_536)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures::stream::iter(chunks);
        tier.put_stream(&key("big"), PutOptions::default(), Box::pin(stream), 0)
            .await
            .unwrap();
        assert_eq!(read(&tier, &key("big")).await.unwrap(), body);
    }
    let tier = DiskTier::open(&cfg).await.unwrap();
    assert_eq!(
        read(&tier, &key("small")).await.as_deref(),
        Some(&b"tiny"[..])
    );
    assert_eq!(read(&tier, &key("big")).await.unwrap(), body);
}

#[tokio::test]
async fn background_flushing_drains_and_a_blob_a_power_loss_took_is_a_counted_miss() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    assert_eq!(cfg.l2.fsync, DiskSync::Background, "the default");
    cfg.inline_read_bytes = 1024;
    cfg.l2.flush_backlog_bytes = 64 * 1024;
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    let hex = ContentHash::of(&body).to_hex();
    let path = dir.path().join("l2/blobs").join(&hex[..2]).join(&hex);
    {
        let tier = DiskTier::open(&cfg).await.unwrap();
        // Far more than the flusher's backlog: writers wait for room, none is lost.
        for i in 0..100u32 {
            put(
                &tier,
                &key(&format!("k{i}")),
                &[&body[..4096], &i.to_be_bytes()].concat(),
            )
            .await;
        }
        put(&tier, &key("big"), &body).await;
        // A blob removed before its turn is skipped, not waited on.
        assert!(tier.delete(&key("k0")).await.unwrap());
        tier.flush().await.unwrap();
        assert_eq!(read(&tier, &key("k99")).await.unwrap().len(), 4100);
    }
    // What a power loss before the flush leaves: the file is there, its bytes are not.
    std::fs::write(&path, vec![0u8; body.len()]).unwrap();
    let tier = DiskTier::open(&cfg).await.unwrap();
    assert!(tier.get(&key("big")).await.unwrap().is_none());
    assert_eq!(tier.stats().snapshot().corrupt, 1);
    assert!(!path.exists());
    assert_eq!(read(&tier, &key("k1")).await.unwrap().len(), 4100);
}
