//! Promotion of build artifacts: byte-identical uploads of one key by `k` distinct users of
//! a template are copied to the template's scope (screened, audited); anything less stays
//! private, so no single user can put bytes where another user's reads will find them.

use bytes::Bytes;
use tiercache_core::{CacheKey, Kind, Name, Principal, PutOptions, Role, Scope};
use tiercache_store::{Action, AuditFilter, AuditLog, Body, StoreConfig, TieredStore, Verdict};
use tiercache_testkit::secrets::aws_key_id;

fn user(id: &str, templates: &[&str]) -> Principal {
    Principal {
        user: Some(id.into()),
        templates: templates.iter().map(|t| t.to_string()).collect(),
        role: Role::User,
        read_only: false,
    }
}

fn artifact(scope: &str, name: &str) -> CacheKey {
    CacheKey::parse(scope, "turbo", name).unwrap()
}

fn shareable() -> PutOptions {
    PutOptions {
        content_type: Some("application/octet-stream".into()),
        immutable: true,
        shareable: true,
        ..Default::default()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: TieredStore,
    audit: AuditLog,
}

async fn fixture(k: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.promote_after = k;
    let store = TieredStore::open(&cfg).await.unwrap();
    let audit = AuditLog::open_for(&cfg).await.unwrap();
    Fixture {
        _dir: dir,
        store,
        audit,
    }
}

impl Fixture {
    /// `who` uploads `bytes` as artifact `name` into its own scope.
    async fn upload(&self, who: &Principal, name: &str, bytes: &[u8]) {
        let scope = format!("user/{}", who.user.as_deref().unwrap());
        self.store
            .scoped(who)
            .audited(&self.audit)
            .put(
                &artifact(&scope, name),
                shareable(),
                Body::Bytes(Bytes::copy_from_slice(bytes)),
            )
            .await
            .unwrap();
    }

    /// What `who` reads for artifact `name` through its read order.
    async fn read(&self, who: &Principal, name: &str) -> Option<Bytes> {
        let hit = self
            .store
            .scoped(who)
            .resolve(&Kind::new("turbo").unwrap(), &Name::new(name).unwrap())
            .await
            .unwrap()?;
        Some(hit.body.collect().await.unwrap())
    }

    async fn in_template(&self, template: &str, name: &str) -> bool {
        let key = CacheKey::new(
            Scope::template(template).unwrap(),
            Kind::new("turbo").unwrap(),
            Name::new(name).unwrap(),
        );
        self.store.head(&key).await.unwrap().is_some()
    }

    async fn promotions(&self) -> Vec<tiercache_store::AuditRecord> {
        self.audit.flush().await.unwrap();
        self.audit
            .query(AuditFilter {
                action: Some(Action::Promote),
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn identical_uploads_by_two_users_are_promoted_and_audited() {
    let f = fixture(2).await;
    let (alice, bob, carol) = (
        user("alice", &["web"]),
        user("bob", &["web"]),
        user("carol", &["web"]),
    );
    let outsider = user("eve", &["other"]);
    f.upload(&alice, "team~aa11", b"dist/app.js v1").await;
    assert!(!f.in_template("web", "team~aa11").await);
    assert_eq!(
        f.read(&carol, "team~aa11").await,
        None,
        "one user shared it"
    );

    f.upload(&bob, "team~aa11", b"dist/app.js v1").await;
    assert!(f.in_template("web", "team~aa11").await);
    assert_eq!(
        f.read(&carol, "team~aa11").await.as_deref(),
        Some(&b"dist/app.js v1"[..]),
        "a third user of the template reads the promoted copy"
    );
    assert_eq!(f.read(&outsider, "team~aa11").await, None);

    let recs = f.promotions().await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].scope, "template/web");
    assert_eq!(recs[0].decision, Verdict::Allow);
    assert_eq!(recs[0].principal, "bob");
    assert!(recs[0].reason.as_deref().unwrap().contains("2 users"));

    // The promoted copy is written once: a later, different upload does not replace it.
    let dave = user("dave", &["web"]);
    f.upload(&dave, "team~aa11", b"something else").await;
    assert_eq!(
        f.read(&carol, "team~aa11").await.as_deref(),
        Some(&b"dist/app.js v1"[..])
    );
}

#[tokio::test]
async fn one_user_twice_or_different_bytes_or_other_templates_are_not_promoted() {
    let f = fixture(2).await;
    let (alice, bob, mallory) = (
        user("alice", &["web"]),
        user("bob", &["web"]),
        user("mallory", &["other"]),
    );
    // The same user uploading twice is one witness.
    f.upload(&alice, "team~bb22", b"out").await;
    f.upload(&alice, "team~bb22", b"out").await;
    assert!(!f.in_template("web", "team~bb22").await);
    // Different bytes under the same key do not agree.
    f.upload(&bob, "team~bb22", b"poisoned out").await;
    assert!(!f.in_template("web", "team~bb22").await);
    // A user of another template does not count for this one.
    f.upload(&mallory, "team~bb22", b"out").await;
    assert!(!f.in_template("web", "team~bb22").await);
    assert!(!f.in_template("other", "team~bb22").await);
    assert!(f.promotions().await.is_empty());
}

#[tokio::test]
async fn a_user_cannot_poison_a_key_a_template_build_will_read() {
    let f = fixture(2).await;
    let mallory = user("mallory", &["web"]);
    let alice = user("alice", &["web"]);
    let mut warmer = user("ci", &["web"]);
    warmer.role = Role::Warmer;
    // Mallory uploads first, under the key the template build and alice will ask for.
    f.upload(&mallory, "team~cc33", b"evil").await;
    assert_eq!(f.read(&warmer, "team~cc33").await, None);
    assert_eq!(f.read(&alice, "team~cc33").await, None);
    // Alice's honest build is hers alone, until another user builds the same bytes.
    f.upload(&alice, "team~cc33", b"honest").await;
    assert_eq!(f.read(&warmer, "team~cc33").await, None);
    f.upload(&user("bob", &["web"]), "team~cc33", b"honest")
        .await;
    assert_eq!(
        f.read(&warmer, "team~cc33").await.as_deref(),
        Some(&b"honest"[..])
    );
    assert_eq!(
        f.read(&mallory, "team~cc33").await.as_deref(),
        Some(&b"evil"[..]),
        "mallory's own copy is still only mallory's"
    );
}

#[tokio::test]
async fn sensitive_artifacts_are_not_promoted_and_the_refusal_is_audited() {
    let f = fixture(2).await;
    let key_id = aws_key_id();
    let env = format!("AWS_ACCESS_KEY_ID={key_id}\n");
    f.upload(&user("alice", &["web"]), "team~dd44", env.as_bytes())
        .await;
    f.upload(&user("bob", &["web"]), "team~dd44", env.as_bytes())
        .await;
    assert!(!f.in_template("web", "team~dd44").await);
    assert_eq!(f.read(&user("carol", &["web"]), "team~dd44").await, None);
    let recs = f.promotions().await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].decision, Verdict::Deny);
    let reason = recs[0].reason.as_deref().unwrap();
    assert!(reason.contains("sensitive"), "{reason}");
    assert!(
        !reason.contains(&key_id),
        "the audit log repeats the secret"
    );
}

#[tokio::test]
async fn the_threshold_is_configurable_and_zero_turns_promotion_off() {
    let f = fixture(3).await;
    for u in ["a1", "b2"] {
        f.upload(&user(u, &["web"]), "team~ee55", b"x").await;
    }
    assert!(!f.in_template("web", "team~ee55").await);
    f.upload(&user("c3", &["web"]), "team~ee55", b"x").await;
    assert!(f.in_template("web", "team~ee55").await);

    let off = fixture(0).await;
    for u in ["a1", "b2", "c3"] {
        off.upload(&user(u, &["web"]), "team~ee55", b"x").await;
    }
    assert!(!off.in_template("web", "team~ee55").await);
}

#[tokio::test]
async fn witnesses_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let name = "team~ff66";
    {
        let store = TieredStore::open(&cfg).await.unwrap();
        store
            .scoped(&user("alice", &["web"]))
            .put(
                &artifact("user/alice", name),
                shareable(),
                Body::Bytes(Bytes::from_static(b"y")),
            )
            .await
            .unwrap();
    }
    let store = TieredStore::open(&cfg).await.unwrap();
    store
        .scoped(&user("bob", &["web"]))
        .put(
            &artifact("user/bob", name),
            shareable(),
            Body::Bytes(Bytes::from_static(b"y")),
        )
        .await
        .unwrap();
    assert!(
        store
            .head(&artifact("template/web", name))
            .await
            .unwrap()
            .is_some()
    );
}
