//! The fleet module against a real redis-server: counters and top sets shared by two nodes,
//! the fleet lock (mutual exclusion, release, lease expiry after a crash, renewal), Redis
//! going away and coming back, and a three-master Redis Cluster.

use std::time::Duration;

use tiercache_store::{Fleet, FleetStatus, LockAttempt, RedisConfig, WaitOutcome};
use tiercache_testkit::redis::{RedisCluster, RedisServer, free_port};

/// Bound on anything a test waits for, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        key_prefix: format!("{prefix}:"),
        flush_interval: Duration::from_millis(100),
        op_timeout: Duration::from_millis(500),
        ..RedisConfig::new(url)
    }
}

/// Waits until `fleet` reports `status`.
async fn wait_status(fleet: &Fleet, status: FleetStatus) {
    tokio::time::timeout(PATIENCE, async {
        while fleet.health().status != status {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("fleet never became {status:?}: {:?}", fleet.health()));
}

fn acquired(attempt: LockAttempt) -> tiercache_store::FleetLock {
    match attempt {
        LockAttempt::Acquired(lock) => lock,
        other => panic!("expected to acquire the lock, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_top_sets_from_two_nodes_add_up() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url(), "sum");
    let (a, b) = (Fleet::connect(&cfg), Fleet::connect(&cfg));

    for _ in 0..10 {
        a.count("hits", 1);
    }
    a.count("bytes", 1000);
    b.count("hits", 5);
    b.count("misses", 2);
    a.zincr("packages", "react", 3.0);
    b.zincr("packages", "react", 2.0);
    a.zincr("packages", "lodash", 4.0);
    b.zincr("packages", "left-pad", 1.0);
    b.zincr("packages", "express", 4.5);
    a.flush_now().await.expect("flush a");
    b.flush_now().await.expect("flush b");

    let counters = a.counters().await.expect("counters");
    assert_eq!(counters.get("hits"), Some(&15));
    assert_eq!(counters.get("bytes"), Some(&1000));
    assert_eq!(counters.get("misses"), Some(&2));
    assert_eq!(counters.len(), 3);

    let top = b.top("packages", 3).await.expect("top");
    assert_eq!(
        top,
        vec![
            ("react".to_owned(), 5.0),
            ("express".to_owned(), 4.5),
            ("lodash".to_owned(), 4.0)
        ]
    );
    assert_eq!(b.top("packages", 10).await.expect("top").len(), 4);
    assert!(b.top("packages", 0).await.expect("top").is_empty());
    assert!(b.top("nothing", 5).await.expect("top").is_empty());

    // The background flusher does the same without being asked.
    a.count("hits", 1);
    tokio::time::timeout(PATIENCE, async {
        while a.counters().await.ok().and_then(|c| c.get("hits").copied()) != Some(16) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the background flush never landed");
    assert_eq!(a.health().status, FleetStatus::Ok);
    assert_eq!(a.health().buffered, 0);

    // A backlog larger than one pipeline goes out in several.
    let many = Fleet::connect(&config(&redis.url(), "many"));
    for i in 0..2500 {
        many.count(&format!("f{i}"), i + 1);
    }
    many.flush_now().await.expect("flush many");
    let counters = many.counters().await.expect("counters");
    assert_eq!(counters.len(), 2500);
    assert_eq!(counters.get("f2499"), Some(&2500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_twenty_acquires_and_release_hands_over() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url(), "mutex");
    let (a, b) = (Fleet::connect(&cfg), Fleet::connect(&cfg));

    let attempts = futures::future::join_all((0..20).map(|i| {
        let fleet = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { fleet.try_lock("pkg/react").await }
    }))
    .await;
    let mut locks = Vec::new();
    let mut held = 0;
    for attempt in attempts {
        match attempt {
            LockAttempt::Acquired(lock) => locks.push(lock),
            LockAttempt::Held => held += 1,
            LockAttempt::Unavailable => panic!("redis is up; the lock must be available"),
        }
    }
    assert_eq!((locks.len(), held), (1, 19));
    let lock = locks.pop().expect("one lock");
    assert_eq!(lock.name(), "pkg/react");
    assert_eq!(a.lock_holder_alive("pkg/react").await, Some(true));
    assert_eq!(b.lock_holder_alive("pkg/other").await, Some(false));
    // Another name is independent.
    let other = acquired(b.try_lock("pkg/other").await);

    // A waiter on the other node wakes once the holder releases.
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move {
            b.wait_unlocked("pkg/react", Duration::from_millis(50), PATIENCE)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter must wait while the lock is held"
    );
    assert!(lock.release().await.expect("release"));
    assert_eq!(waiter.await.expect("waiter"), WaitOutcome::Released);
    assert_eq!(a.lock_holder_alive("pkg/react").await, Some(false));

    let again = acquired(b.try_lock("pkg/react").await);
    assert!(matches!(a.try_lock("pkg/react").await, LockAttempt::Held));
    assert_eq!(
        a.wait_unlocked(
            "pkg/react",
            Duration::from_millis(50),
            Duration::from_millis(200)
        )
        .await,
        WaitOutcome::TimedOut
    );

    // Dropping a lock releases it in the background.
    drop(again);
    assert_eq!(
        a.wait_unlocked("pkg/react", Duration::from_millis(20), PATIENCE)
            .await,
        WaitOutcome::Released
    );
    assert!(other.release().await.expect("release other"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holder_loses_the_lock_when_its_lease_runs_out() {
    let redis = RedisServer::start();
    let cfg = RedisConfig {
        lock_lease: Duration::from_millis(600),
        ..config(&redis.url(), "crash")
    };
    let (a, b) = (Fleet::connect(&cfg), Fleet::connect(&cfg));

    let lock = acquired(a.try_lock("origin/x").await);
    lock.abandon(); // stops renewing without releasing, as a killed process would
    assert!(matches!(b.try_lock("origin/x").await, LockAttempt::Held));
    assert_eq!(
        b.wait_unlocked("origin/x", Duration::from_millis(50), PATIENCE)
            .await,
        WaitOutcome::Released
    );
    let taken_over = acquired(b.try_lock("origin/x").await);
    assert!(!taken_over.is_lost());
    assert!(taken_over.release().await.expect("release"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_holder_keeps_the_lock_past_several_leases() {
    let redis = RedisServer::start();
    let cfg = RedisConfig {
        lock_lease: Duration::from_millis(600),
        ..config(&redis.url(), "renew")
    };
    let (a, b) = (Fleet::connect(&cfg), Fleet::connect(&cfg));

    let lock = acquired(a.try_lock("origin/y").await);
    tokio::time::sleep(Duration::from_millis(2000)).await; // more than three leases
    assert!(matches!(b.try_lock("origin/y").await, LockAttempt::Held));
    assert_eq!(b.lock_holder_alive("origin/y").await, Some(true));
    assert!(!lock.is_lost());
    assert!(lock.release().await.expect("release"));
    assert!(matches!(
        b.try_lock("origin/y").await,
        LockAttempt::Acquired(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_degrades_then_buffered_counts_land_when_it_returns() {
    let mut redis = RedisServer::start();
    let cfg = config(&redis.url(), "outage");
    let fleet = Fleet::connect(&cfg);
    fleet.count("before", 1);
    fleet.flush_now().await.expect("first flush");
    wait_status(&fleet, FleetStatus::Ok).await;

    redis.stop();
    // Counting never touches the network.
    for _ in 0..100 {
        fleet.count("during", 1);
    }
    fleet.zincr("top", "m", 2.0);
    // The lock fails open, within a bound.
    let attempt = tokio::time::timeout(PATIENCE, fleet.try_lock("l"))
        .await
        .expect("try_lock must not hang while redis is down");
    assert!(matches!(attempt, LockAttempt::Unavailable), "{attempt:?}");
    wait_status(&fleet, FleetStatus::Degraded).await;
    let health = fleet.health();
    assert!(health.last_error.is_some(), "{health:?}");
    let alive = tokio::time::timeout(PATIENCE, fleet.lock_holder_alive("l"))
        .await
        .expect("lock_holder_alive must not hang");
    assert_eq!(alive, None);
    let waited = tokio::time::timeout(
        PATIENCE,
        fleet.wait_unlocked("l", Duration::from_millis(50), Duration::from_secs(5)),
    )
    .await
    .expect("wait_unlocked must not hang");
    assert_eq!(waited, WaitOutcome::Unavailable);
    assert!(
        tokio::time::timeout(PATIENCE, fleet.counters())
            .await
            .expect("bounded")
            .is_err()
    );
    // Let the flusher fail a few times: the counts stay buffered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fleet.count("during", 1);
    assert!(fleet.health().buffered >= 2, "{:?}", fleet.health());

    redis.restart();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(c) = fleet.counters().await
                && c.get("during") == Some(&101)
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("buffered counts never landed: {:?}", fleet.health()));
    wait_status(&fleet, FleetStatus::Ok).await;
    assert_eq!(
        fleet.top("top", 1).await.expect("top"),
        vec![("m".to_owned(), 2.0)]
    );
    assert_eq!(fleet.health().dropped, 0);
    assert!(matches!(
        fleet.try_lock("l").await,
        LockAttempt::Acquired(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_started_before_redis_connects_once_it_is_up() {
    let port = free_port();
    let cfg = config(&format!("redis://127.0.0.1:{port}"), "late");
    let fleet = Fleet::connect(&cfg);
    fleet.count("early", 3);
    // The first attempt fails: still connecting, with the reason.
    tokio::time::timeout(PATIENCE, async {
        while fleet.health().last_error.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first connection attempt never failed");
    assert_eq!(fleet.health().status, FleetStatus::Connecting);
    assert!(matches!(
        fleet.try_lock("l").await,
        LockAttempt::Unavailable
    ));

    let _redis = RedisServer::start_with(port, &[]);
    wait_status(&fleet, FleetStatus::Ok).await;
    fleet.flush_now().await.expect("flush");
    assert_eq!(
        fleet.counters().await.expect("counters").get("early"),
        Some(&3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_master_cluster_shares_counters_and_the_lock() {
    let cluster = RedisCluster::start(3);
    let cfg = RedisConfig {
        cluster: true,
        ..config(&cluster.url(), "cl")
    };
    let (a, b) = (Fleet::connect(&cfg), Fleet::connect(&cfg));

    // Keys spread over several slots (so over several masters).
    for i in 0..20 {
        a.count(&format!("f{}", i % 4), 1);
        b.zincr(&format!("set{}", i % 5), "m", 1.0);
        b.zincr("one", &format!("m{i}"), f64::from(i));
    }
    b.count("f0", 10);
    a.flush_now().await.expect("flush a");
    b.flush_now().await.expect("flush b");
    let counters = b.counters().await.expect("counters");
    assert_eq!(counters.get("f0"), Some(&15));
    assert_eq!(counters.get("f3"), Some(&5));
    for s in 0..5 {
        assert_eq!(
            a.top(&format!("set{s}"), 1).await.expect("top"),
            vec![("m".to_owned(), 4.0)]
        );
    }
    let top = a.top("one", 2).await.expect("top");
    assert_eq!(
        top,
        vec![("m19".to_owned(), 19.0), ("m18".to_owned(), 18.0)]
    );

    let attempts = futures::future::join_all((0..10).map(|i| {
        let fleet = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { fleet.try_lock("cluster/lock").await }
    }))
    .await;
    let mut locks: Vec<_> = attempts
        .into_iter()
        .filter_map(|a| match a {
            LockAttempt::Acquired(l) => Some(l),
            LockAttempt::Held => None,
            LockAttempt::Unavailable => panic!("the cluster is up"),
        })
        .collect();
    assert_eq!(locks.len(), 1);
    let lock = locks.pop().expect("one lock");
    assert_eq!(b.lock_holder_alive("cluster/lock").await, Some(true));
    assert!(lock.release().await.expect("release"));
    assert!(matches!(
        b.try_lock("cluster/lock").await,
        LockAttempt::Acquired(_)
    ));

    // Promotion witnesses: a set per artifact, counted across nodes.
    let ttl = Duration::from_secs(60);
    assert_eq!(
        a.set_add("w:x", "alice", ttl, 8).await.expect("add"),
        ["alice"]
    );
    a.set_add("w:x", "alice", ttl, 8).await.expect("add again");
    let mut both = b.set_add("w:x", "bob", ttl, 8).await.expect("add");
    both.sort();
    assert_eq!(both, ["alice", "bob"]);
    assert_eq!(a.health().status, FleetStatus::Ok);
}
