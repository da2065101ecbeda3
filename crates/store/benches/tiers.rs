//! Microbenchmarks of the tiered store's read paths.
//!
//! - `get/l1_hit_26k`: a 26 KiB entry answered from memory.
//! - `get/l2_hit_26k`: the same entry answered from disk (L1 has a zero budget, so every get
//!   reads the blob and verifies its BLAKE3 hash).
//! - `get/promoted_26k`: the get that misses L1, reads the entry from L2 and promotes it into
//!   L1. Each iteration first drops the key from L1 (untimed), then times the get.
//! - `get/l2_hit_1m`: a 1 MiB entry answered from disk (read whole and verified: it is below
//!   `inline_read_bytes`).
//!
//! Run with `cargo bench -p tiercache-store --bench tiers`. Each benchmark takes a few seconds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use tiercache_core::{CacheKey, L1Policy, PutOptions};
use tiercache_store::{Body, StoreConfig, TierName, TieredStore};
use tokio::runtime::Runtime;

const SMALL: usize = 26 * 1024;
const LARGE: usize = 1024 * 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Bytes that do not compress or repeat (a cheap xorshift; the content does not matter).
fn payload(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn key(name: &str) -> CacheKey {
    CacheKey::parse("global", "object", name).expect("valid key")
}

/// A store in a fresh temporary directory holding `body` under `key`.
fn store_with(
    rt: &Runtime,
    l1: Option<L1Policy>,
    key: &CacheKey,
    body: Bytes,
) -> (TempDir, TieredStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = StoreConfig::new(dir.path());
    if let Some(l1) = l1 {
        config.l1 = l1;
    }
    let store = rt.block_on(async {
        let store = TieredStore::open(&config).await.expect("open store");
        store
            .put(key, PutOptions::default(), Body::Bytes(body))
            .await
            .expect("put");
        store
    });
    (dir, store)
}

/// An L1 that keeps nothing, so every get goes to disk.
fn no_l1() -> L1Policy {
    L1Policy {
        budget_bytes: 0,
        ..L1Policy::default()
    }
}

/// Gets `key`, checks which tier answered, and returns the body's length.
async fn get_len(store: &TieredStore, key: &CacheKey, tier: TierName) -> usize {
    let hit = store.get(key).await.expect("get").expect("hit");
    assert_eq!(hit.tier, tier, "answered by the wrong tier");
    hit.body.collect().await.expect("body").len()
}

fn bench_gets(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("get");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // (a) L1 hit, 26 KiB.
    {
        let k = key("bench-26k");
        let (_dir, store) = store_with(&rt, None, &k, payload(SMALL, 1));
        group.throughput(Throughput::Bytes(SMALL as u64));
        group.bench_function("l1_hit_26k", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(get_len(&store, &k, TierName::L1).await) });
        });
    }

    // (b) L2 hit, 26 KiB: read from disk and hash-verified every time.
    {
        let k = key("bench-26k");
        let (_dir, store) = store_with(&rt, Some(no_l1()), &k, payload(SMALL, 2));
        group.throughput(Throughput::Bytes(SMALL as u64));
        group.bench_function("l2_hit_26k", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(get_len(&store, &k, TierName::L2).await) });
        });
    }

    // (c) Promoted get, 26 KiB: L1 miss, L2 hit, insert into L1. Only the get is timed.
    {
        let k = key("bench-26k");
        let (_dir, store) = store_with(&rt, None, &k, payload(SMALL, 3));
        group.throughput(Throughput::Bytes(SMALL as u64));
        group.bench_function("promoted_26k", |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let store = &store;
                let k = &k;
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        store.l1().remove(k).await;
                        let t0 = Instant::now();
                        black_box(get_len(store, k, TierName::L2).await);
                        total += t0.elapsed();
                    }
                    total
                }
            });
        });
    }

    // (d) L2 hit, 1 MiB.
    {
        let k = key("bench-1m");
        let (_dir, store) = store_with(&rt, Some(no_l1()), &k, payload(LARGE, 4));
        group.throughput(Throughput::Bytes(LARGE as u64));
        group.bench_function("l2_hit_1m", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(get_len(&store, &k, TierName::L2).await) });
        });
    }

    group.finish();
}

criterion_group!(benches, bench_gets);
criterion_main!(benches);
