use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tiercache_core::{CacheKey, Decision, Principal, Role};

use super::*;

fn rec(time_ms: u64, user: &str, action: Action, decision: Verdict) -> AuditRecord {
    AuditRecord {
        time_ms,
        principal: user.into(),
        role: Role::User,
        key: format!("object/k{time_ms}"),
        scope: format!("user/{user}"),
        action,
        decision,
        reason: (decision == Verdict::Deny).then(|| "another user's scope".into()),
    }
}

fn all() -> AuditFilter {
    AuditFilter {
        limit: usize::MAX,
        ..AuditFilter::default()
    }
}

fn times(recs: &[AuditRecord]) -> Vec<u64> {
    recs.iter().map(|r| r.time_ms).collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn records_are_appended_and_every_filter_selects() {
    let tmp = tempfile::tempdir().unwrap();
    let log = AuditLog::open(tmp.path().join("audit"), 1 << 20, 4)
        .await
        .unwrap();
    log.record(rec(1000, "alice", Action::Read, Verdict::Allow))
        .await;
    log.record(rec(2000, "bob", Action::Write, Verdict::Allow))
        .await;
    log.record(rec(3000, "alice", Action::Read, Verdict::Deny))
        .await;
    log.record(rec(4000, "anonymous", Action::Head, Verdict::Deny))
        .await;
    log.record(rec(5000, "alice", Action::Promote, Verdict::Allow))
        .await;

    assert_eq!(
        times(&log.query(all()).await.unwrap()),
        [1000, 2000, 3000, 4000, 5000]
    );
    let alice = AuditFilter {
        user: Some("alice".into()),
        ..all()
    };
    assert_eq!(times(&log.query(alice).await.unwrap()), [1000, 3000, 5000]);
    let since = AuditFilter {
        since_ms: Some(3000),
        ..all()
    };
    assert_eq!(times(&log.query(since).await.unwrap()), [3000, 4000, 5000]);
    let reads = AuditFilter {
        action: Some(Action::Read),
        ..all()
    };
    let got = log.query(reads).await.unwrap();
    assert_eq!(times(&got), [1000, 3000]);
    assert_eq!(got[1].decision, Verdict::Deny);
    assert_eq!(got[1].reason.as_deref(), Some("another user's scope"));
    let combined = AuditFilter {
        user: Some("alice".into()),
        since_ms: Some(2000),
        action: Some(Action::Read),
        limit: 10,
    };
    assert_eq!(times(&log.query(combined).await.unwrap()), [3000]);
    // The limit keeps the newest, still oldest first.
    let newest = AuditFilter { limit: 2, ..all() };
    assert_eq!(times(&log.query(newest).await.unwrap()), [4000, 5000]);
    assert_eq!(log.stats().written, 5);
    assert_eq!(log.stats().dropped, 0);
    // The same records offline, from the directory alone.
    assert_eq!(read_dir(log.dir(), &all()).unwrap().len(), 5);
    log.close().await.unwrap();
}

#[tokio::test]
async fn access_records_every_scope_but_global_with_the_denial_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let log = AuditLog::open(tmp.path(), 1 << 20, 4).await.unwrap();
    let anon = Principal::anonymous();
    let private = CacheKey::parse("user/alice", "object", "x").unwrap();
    let public = CacheKey::parse("global", "npm-tgz", "react-18.3.1.tgz").unwrap();
    log.access(&anon, &public, Action::Read, &Decision::Allow)
        .await;
    log.access(
        &anon,
        &private,
        Action::Read,
        &anon.may_read(private.scope()),
    )
    .await;
    let got = log.query(all()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].principal, "anonymous");
    assert_eq!(got[0].scope, "user/alice");
    assert_eq!(got[0].key, "object/x");
    assert_eq!(got[0].decision, Verdict::Deny);
    assert_eq!(got[0].reason.as_deref(), Some("another user's scope"));
    log.close().await.unwrap();
}

#[tokio::test]
async fn records_survive_a_restart_and_appending_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    {
        let log = AuditLog::open(&dir, 1 << 20, 4).await.unwrap();
        for t in 1..=3 {
            log.record(rec(t, "alice", Action::Write, Verdict::Allow))
                .await;
        }
        log.close().await.unwrap();
        // After close, a record is refused and counted, never silently lost.
        log.record(rec(99, "alice", Action::Write, Verdict::Allow))
            .await;
        assert_eq!(log.stats().dropped, 1);
    }
    {
        // Dropped without close: what was flushed is on disk.
        let log = AuditLog::open(&dir, 1 << 20, 4).await.unwrap();
        assert_eq!(times(&log.query(all()).await.unwrap()), [1, 2, 3]);
        log.record(rec(4, "bob", Action::Read, Verdict::Allow))
            .await;
        log.flush().await.unwrap();
    }
    let log = AuditLog::open(&dir, 1 << 20, 4).await.unwrap();
    assert_eq!(times(&log.query(all()).await.unwrap()), [1, 2, 3, 4]);
    log.close().await.unwrap();
}

#[tokio::test]
async fn a_torn_last_line_is_cut_at_open_and_earlier_records_stay_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let log = AuditLog::open(&dir, 1 << 20, 4).await.unwrap();
    for t in 1..=3 {
        log.record(rec(t, "alice", Action::Write, Verdict::Allow))
            .await;
    }
    log.close().await.unwrap();
    drop(log);
    // A crash in the middle of appending the fourth record.
    let whole = rec(4, "alice", Action::Write, Verdict::Allow)
        .to_line()
        .unwrap();
    let current = dir.join(CURRENT);
    let intact = std::fs::read(&current).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&current)
        .unwrap()
        .write_all(&whole[..whole.len() / 2])
        .unwrap();
    // Readers skip it even before the log is reopened.
    assert_eq!(times(&read_dir(&dir, &all()).unwrap()), [1, 2, 3]);

    let log = AuditLog::open(&dir, 1 << 20, 4).await.unwrap();
    assert_eq!(
        std::fs::read(&current).unwrap(),
        intact,
        "only the torn tail is cut"
    );
    log.record(rec(5, "bob", Action::Read, Verdict::Deny)).await;
    assert_eq!(times(&log.query(all()).await.unwrap()), [1, 2, 3, 5]);
    log.close().await.unwrap();
    let text = std::fs::read_to_string(&current).unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        serde_json::from_str::<AuditRecord>(line).unwrap();
    }
}

#[tokio::test]
async fn a_file_of_nothing_but_a_torn_line_is_emptied() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(CURRENT), b"{\"time_ms\":1,\"princ").unwrap();
    let log = AuditLog::open(&dir, 1 << 20, 4).await.unwrap();
    log.record(rec(2, "alice", Action::Read, Verdict::Allow))
        .await;
    assert_eq!(times(&log.query(all()).await.unwrap()), [2]);
    log.close().await.unwrap();
}

#[tokio::test]
async fn rotation_keeps_at_most_max_files_and_queries_read_across_them_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let line = rec(1000, "alice", Action::Write, Verdict::Allow)
        .to_line()
        .unwrap()
        .len() as u64;
    // Three records per file.
    let log = AuditLog::open(&dir, line * 3 + 2, 2).await.unwrap();
    for t in 1000..1020 {
        log.record(rec(t, "alice", Action::Write, Verdict::Allow))
            .await;
    }
    log.close().await.unwrap();
    let names = files(&dir);
    let rotated: Vec<&String> = names.iter().filter(|n| n.starts_with("audit-")).collect();
    assert_eq!(rotated.len(), 2, "{names:?}");
    assert!(names.contains(&CURRENT.to_string()));
    // 20 records, 3 per file: files 1..=6 rotated (oldest 4 deleted), 2 records current.
    assert!(
        names.contains(&"audit-1012-5.jsonl".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"audit-1015-6.jsonl".to_string()),
        "{names:?}"
    );
    let got = read_dir(&dir, &all()).unwrap();
    assert_eq!(times(&got), (1012..1020).collect::<Vec<_>>());
    // `since` across files (whole older files skipped).
    let since = AuditFilter {
        since_ms: Some(1016),
        ..all()
    };
    assert_eq!(
        times(&read_dir(&dir, &since).unwrap()),
        [1016, 1017, 1018, 1019]
    );

    // Reopened, the sequence continues after the highest one on disk.
    let log = AuditLog::open(&dir, line * 3 + 2, 2).await.unwrap();
    for t in 1020..1024 {
        log.record(rec(t, "alice", Action::Write, Verdict::Allow))
            .await;
    }
    assert_eq!(
        times(&log.query(all()).await.unwrap()),
        (1015..1024).collect::<Vec<_>>()
    );
    log.close().await.unwrap();
    let names = files(&dir);
    assert!(
        names.contains(&"audit-1015-6.jsonl".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"audit-1018-7.jsonl".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"audit-1012-5.jsonl".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_full_channel_waits_briefly_then_drops_and_counts() {
    // A log whose writer never runs: the channel fills up.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let log = AuditLog::with_sender(tx);
    for t in 0..2 {
        log.record(rec(t, "alice", Action::Read, Verdict::Allow))
            .await;
    }
    assert_eq!(log.stats().dropped, 0);
    let start = Instant::now();
    log.record(rec(2, "alice", Action::Read, Verdict::Allow))
        .await;
    assert!(start.elapsed() >= SEND_TIMEOUT);
    assert_eq!(log.stats().dropped, 1);
    assert!(!log.try_record(rec(3, "alice", Action::Read, Verdict::Allow)));
    assert_eq!(log.stats().dropped, 2);
    // Room again: a waiting record gets in.
    let consumer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    log.record(rec(4, "alice", Action::Read, Verdict::Allow))
        .await;
    assert_eq!(log.stats().dropped, 2);
    drop(log);
    assert_eq!(consumer.await.unwrap(), 3);
}

#[tokio::test]
async fn a_burst_larger_than_the_channel_is_written_or_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let log = AuditLog::open(tmp.path(), 1 << 20, 64).await.unwrap();
    let n = (CHANNEL_CAPACITY * 2) as u64;
    for t in 0..n {
        log.record(rec(t, "alice", Action::Read, Verdict::Allow))
            .await;
    }
    log.flush().await.unwrap();
    let stats = log.stats();
    assert_eq!(stats.written + stats.dropped, n);
    assert_eq!(log.query(all()).await.unwrap().len() as u64, stats.written);
    log.close().await.unwrap();
}

#[tokio::test]
async fn a_disabled_log_keeps_nothing_and_a_zero_size_limit_is_refused() {
    let log = AuditLog::disabled();
    log.record(rec(1, "alice", Action::Read, Verdict::Allow))
        .await;
    log.flush().await.unwrap();
    assert!(log.query(all()).await.unwrap().is_empty());
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        AuditLog::open(tmp.path(), 0, 1).await,
        Err(AuditError::Invalid(_))
    ));
}
