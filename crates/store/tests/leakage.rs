//! The leakage scan of the shared scopes, on a real store: secrets, a known user's id and a
//! personal email address in template and global entries are quarantined (gone from every
//! tier, kept for admins, audited across a restart); clean entries and public npm packages
//! (whose manifests name their authors) stay; unchanged entries are not scanned again; a
//! dry run changes nothing; an entry that lives only in L3 is covered too.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tiercache_core::{CacheKey, PutOptions, Role};
use tiercache_store::audit::{AuditFilter, audit_dir, read_dir};
use tiercache_store::leakage::{Leakage, LeakageReport, RunOptions};
use tiercache_store::{Action, AuditLog, Body, L3Config, L3Credentials, StoreConfig, TieredStore};
use tiercache_testkit::moto::{BUCKET, Moto};
use tiercache_testkit::secrets::aws_key_id;

const EMAIL: &str = "mara.k@firma-intern.de";

fn key(path: &str) -> CacheKey {
    CacheKey::parse_path(path).unwrap()
}

fn tgz(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, text) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&tar).unwrap();
    e.finish().unwrap()
}

async fn put(store: &TieredStore, k: &str, body: impl Into<Vec<u8>>) {
    store
        .put(&key(k), PutOptions::default(), Body::from(body.into()))
        .await
        .unwrap();
}

async fn body(store: &TieredStore, k: &str) -> Option<Bytes> {
    let hit = store.get(&key(k)).await.unwrap()?;
    Some(hit.body.collect().await.unwrap())
}

fn admin() -> RunOptions {
    RunOptions {
        dry_run: false,
        by: "ops".into(),
        role: Role::Admin,
    }
}

fn dry() -> RunOptions {
    RunOptions {
        dry_run: true,
        ..admin()
    }
}

fn flagged(r: &LeakageReport) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = r
        .entries
        .iter()
        .map(|e| {
            (
                e.key.clone(),
                e.findings.iter().map(|f| f.rule.clone()).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

const AWS: &str = "template/t1/object/aws-config";
const USER_REF: &str = "template/t1/build/cache-log";
const MAIL: &str = "template/t2/build/app-output";
const CLEAN: &str = "template/t1/object/readme";
const NPM: &str = "global/npm-tgz/left-pad~1.3.0.tgz";

struct Node {
    store: TieredStore,
    audit: Arc<AuditLog>,
    leakage: Leakage,
}

async fn open(config: &StoreConfig) -> Node {
    let store = TieredStore::open(config).await.unwrap();
    let audit = Arc::new(AuditLog::open_for(config).await.unwrap());
    let leakage = Leakage::open(store.clone(), audit.clone(), &config.data_dir)
        .await
        .unwrap();
    Node {
        store,
        audit,
        leakage,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_user_ids_and_emails_in_shared_scopes_are_quarantined_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::new(dir.path());
    let node = open(&config).await;
    let store = &node.store;

    // Users this server knows: dana owns a scope, u-7f3a9c21 too.
    put(store, "user/dana/object/notes", "dana's own notes").await;
    put(store, "user/u-7f3a9c21/object/notes", "notes").await;

    let aws = format!(
        "[default]\nregion = eu-west-1\naws_access_key_id = {}\n",
        aws_key_id()
    );
    put(store, AWS, aws.clone()).await;
    put(
        store,
        USER_REF,
        "restored node_modules\nHOME=/home/dana/project\ndone in 3.2s\n",
    )
    .await;
    let output = tgz(&[
        ("dist/index.html", "<html><body>hello</body></html>\n"),
        (
            "dist/deploy.log",
            &format!("deployed by {EMAIL} at 12:00\n"),
        ),
    ]);
    put(store, MAIL, output.clone()).await;
    put(
        store,
        CLEAN,
        "# web template\nQuestions: support@corp.io; see git@github.com:acme/web.git\n",
    )
    .await;
    let package = tgz(&[
        (
            "package/package.json",
            "{\"name\": \"left-pad\", \"author\": \"Kim Lee <kim.lee@lumen-data.co.uk>\"}\n",
        ),
        (
            "package/README.md",
            "Bugs to kim.lee@lumen-data.co.uk please.\n",
        ),
    ]);
    put(store, NPM, package).await;

    // A dry run reports everything and changes nothing.
    let r = node.leakage.run(dry()).await;
    assert!(r.errors.is_empty() && r.unscannable.is_empty(), "{r:?}");
    assert_eq!(r.quarantined, 0);
    assert_eq!(r.entries.len(), 3, "{r:?}");
    assert!(r.entries.iter().all(|e| e.quarantine_id.is_none()));
    for k in [AWS, USER_REF, MAIL, CLEAN, NPM] {
        assert!(body(store, k).await.is_some(), "{k} kept by the dry run");
    }
    assert!(node.leakage.list().await.unwrap().is_empty());

    // The real run: the three are quarantined, clean and npm stay.
    let r = node.leakage.run(admin()).await;
    assert!(r.errors.is_empty() && r.unscannable.is_empty(), "{r:?}");
    assert_eq!((r.scanned, r.skipped, r.quarantined), (5, 0, 3), "{r:?}");
    assert_eq!(r.user_ids, 2);
    assert_eq!(
        flagged(&r),
        [
            (USER_REF.to_owned(), vec!["user-id-reference".to_owned()]),
            (AWS.to_owned(), vec!["aws-access-key-id".to_owned()]),
            (MAIL.to_owned(), vec!["email-address".to_owned()]),
        ]
    );
    let mail = r.entries.iter().find(|e| e.key == MAIL).unwrap();
    assert_eq!(mail.findings[0].path, "app-output!dist/deploy.log");
    assert_eq!(mail.findings[0].line, 1);
    let text = serde_json::to_string(&r).unwrap();
    for private in [aws_key_id().as_str(), EMAIL, "/home/dana"] {
        assert!(!text.contains(private), "the report shows {private}");
    }
    for k in [AWS, USER_REF, MAIL] {
        assert!(body(store, k).await.is_none(), "{k} still served");
        assert!(store.l1().get(&key(k)).await.is_none());
        assert!(store.l2().head(&key(k)).await.unwrap().is_none());
    }
    assert!(body(store, CLEAN).await.is_some());
    assert!(body(store, NPM).await.is_some());
    assert!(body(store, "user/dana/object/notes").await.is_some());

    // Kept for admins, with the reasons and the exact bytes.
    let items = node.leakage.list().await.unwrap();
    assert_eq!(items.len(), 3);
    let item = items.iter().find(|i| i.key == MAIL).unwrap();
    assert_eq!(item.scope, "template/t2");
    assert_eq!(item.by, "ops");
    assert_eq!(
        item.findings[0].reason,
        "email-address at app-output!dist/deploy.log:1"
    );
    let (_, kept) = node.leakage.get(&item.id).await.unwrap().unwrap();
    assert_eq!(kept.collect().await.unwrap(), Bytes::from(output));
    let aws_item = items.iter().find(|i| i.key == AWS).unwrap();
    let (_, kept) = node.leakage.get(&aws_item.id).await.unwrap().unwrap();
    assert_eq!(kept.collect().await.unwrap(), Bytes::from(aws));
    assert!(node.leakage.get("../../etc").await.unwrap().is_none());

    // Nothing changed: nothing is read again.
    let r = node.leakage.run(admin()).await;
    assert_eq!((r.scanned, r.skipped, r.quarantined), (0, 2, 0), "{r:?}");
    assert!(r.entries.is_empty());

    // A changed entry is due again; a new bad one is found (a dry run first keeps it).
    put(store, CLEAN, "# web template, v2\n").await;
    let late = "template/t3/object/env";
    put(store, late, "export TOKEN_OWNER=u-7f3a9c21\n").await;
    let r = node.leakage.run(dry()).await;
    assert_eq!((r.scanned, r.skipped), (2, 1), "{r:?}");
    assert_eq!(
        flagged(&r),
        [(late.to_owned(), vec!["user-id-reference".to_owned()])]
    );
    assert!(body(store, late).await.is_some());
    let r = node.leakage.run(admin()).await;
    assert_eq!((r.scanned, r.quarantined), (2, 1), "{r:?}");
    assert!(body(store, late).await.is_none());

    // The audit log keeps the quarantines, without the secret, across a restart.
    node.audit.close().await.unwrap();
    drop(node);
    let records = read_dir(
        &audit_dir(dir.path()),
        &AuditFilter {
            action: Some(Action::Quarantine),
            ..AuditFilter::default()
        },
    )
    .unwrap();
    assert_eq!(records.len(), 4, "{records:?}");
    let rec = records
        .iter()
        .find(|r| r.scope == "template/t1" && r.key == "object/aws-config");
    let rec = rec.expect("the AWS entry's quarantine is audited");
    assert_eq!(rec.principal, "ops");
    let reason = rec.reason.as_deref().unwrap();
    assert!(
        reason.starts_with("aws-access-key-id at aws-config:3; quarantined as "),
        "{reason}"
    );
    assert!(
        records
            .iter()
            .all(|r| !r.reason.as_deref().unwrap().contains(&aws_key_id()))
    );

    // After a restart the verdicts still hold: nothing is read again.
    let node = open(&config).await;
    let r = node.leakage.run(admin()).await;
    assert_eq!((r.scanned, r.skipped, r.quarantined), (0, 2, 0), "{r:?}");
    assert_eq!(node.leakage.list().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_only_in_l3_is_scanned_and_removed_from_l3() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    let mut l3 = L3Config::new(BUCKET).with_endpoint(moto.endpoint());
    l3.credentials = Some(L3Credentials {
        access_key_id: "test".into(),
        secret_access_key: "testtest".into(),
        session_token: None,
    });
    l3.first_byte_timeout = Duration::from_secs(10);
    config.l3 = Some(l3);
    let node = open(&config).await;
    let store = &node.store;
    let bad = "global/object/deploy-env";
    let good = "template/t1/object/ok";
    put(store, bad, format!("AWS_ACCESS_KEY_ID={}\n", aws_key_id())).await;
    put(store, good, "nothing to see\n").await;
    tokio::time::timeout(Duration::from_secs(30), async {
        while store.l3_queue().unwrap().depth > 0 || store.l3_queue().unwrap().uploaded < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("uploaded to L3");
    // Only L3 has them now (as on a node that never read them).
    for k in [bad, good] {
        store.l1().remove(&key(k)).await;
        store.l2().delete(&key(k)).await.unwrap();
    }
    let l3 = store.l3().unwrap();
    assert!(l3.head(&key(bad)).await.unwrap().is_some());

    let r = node.leakage.run(admin()).await;
    assert!(r.l3 && r.errors.is_empty(), "{r:?}");
    assert_eq!((r.scanned, r.quarantined), (2, 1), "{r:?}");
    assert_eq!(r.entries[0].key, bad);
    assert_eq!(r.entries[0].tier, "l3");
    assert!(l3.head(&key(bad)).await.unwrap().is_none());
    assert!(store.get(&key(bad)).await.unwrap().is_none());
    assert!(
        store.l2().head(&key(good)).await.unwrap().is_none(),
        "the scan promotes nothing"
    );
    assert!(body(store, good).await.is_some());
    let items = node.leakage.list().await.unwrap();
    assert_eq!((items.len(), items[0].tier.as_str()), (1, "l3"));
}
