//! The sharing rules at the store: a principal reads its own scope, its templates and global,
//! writes only where the rules allow, and cannot tell another user's entry from a missing one.

use bytes::Bytes;
use tiercache_core::{CacheKey, Kind, Name, Principal, PutOptions, Role};
use tiercache_store::{Body, StoreConfig, StoreError, TieredStore};
use tiercache_testkit::secrets::aws_key_id;

fn user(id: &str, templates: &[&str], role: Role) -> Principal {
    Principal {
        user: Some(id.into()),
        templates: templates.iter().map(|t| t.to_string()).collect(),
        role,
        read_only: false,
    }
}

fn key(scope: &str, name: &str) -> CacheKey {
    CacheKey::parse(scope, "object", name).unwrap()
}

fn body(s: &'static str) -> Body {
    Body::Bytes(Bytes::from_static(s.as_bytes()))
}

#[tokio::test]
async fn users_cannot_see_touch_or_detect_each_others_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = TieredStore::open(&StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let (alice, bob) = (
        user("alice", &["web"], Role::User),
        user("bob", &["web"], Role::User),
    );
    let (a, b) = (store.scoped(&alice), store.scoped(&bob));
    let secret = key("user/alice", "env");
    a.put(&secret, PutOptions::default(), body("TOKEN=1"))
        .await
        .unwrap();
    assert!(a.get(&secret).await.unwrap().is_some());

    // To bob, alice's entry and a key that does not exist look the same.
    let missing = key("user/alice", "nothing-here");
    for k in [&secret, &missing] {
        assert!(b.get(k).await.unwrap().is_none());
        assert!(b.head(k).await.unwrap().is_none());
        assert!(!b.delete(k).await.unwrap());
        let e = b
            .put(k, PutOptions::default(), body("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)), "{e}");
    }
    assert!(a.get(&secret).await.unwrap().is_some(), "bob changed it");

    // Shared scopes: users read them and never write them.
    for scope in ["global", "template/web"] {
        let e = b
            .put(&key(scope, "poison"), PutOptions::default(), body("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)), "{scope}: {e}");
    }
    let warmer = user("ci", &["web"], Role::Warmer);
    store
        .scoped(&warmer)
        .put(
            &key("template/web", "deps"),
            PutOptions::default(),
            body("t"),
        )
        .await
        .unwrap();
    assert!(b.get(&key("template/web", "deps")).await.unwrap().is_some());
    let outsider = user("eve", &["other"], Role::User);
    assert!(
        store
            .scoped(&outsider)
            .get(&key("template/web", "deps"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn reads_resolve_own_scope_then_templates_then_global() {
    let dir = tempfile::tempdir().unwrap();
    let store = TieredStore::open(&StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let admin = Principal::local_admin();
    let root = store.scoped(&admin);
    for (scope, text) in [
        ("global", "global"),
        ("template/web", "template"),
        ("user/alice", "alice"),
    ] {
        root.put(&key(scope, "cfg"), PutOptions::default(), body(text))
            .await
            .unwrap();
    }
    let (kind, name) = (Kind::new("object").unwrap(), Name::new("cfg").unwrap());
    let read = |p: Principal| {
        let store = store.clone();
        let (kind, name) = (kind.clone(), name.clone());
        async move {
            let hit = store
                .scoped(&p)
                .resolve(&kind, &name)
                .await
                .unwrap()
                .unwrap();
            hit.body.collect().await.unwrap()
        }
    };
    assert_eq!(
        &read(user("alice", &["web"], Role::User)).await[..],
        b"alice"
    );
    assert_eq!(
        &read(user("bob", &["web"], Role::User)).await[..],
        b"template"
    );
    assert_eq!(&read(user("carol", &[], Role::User)).await[..], b"global");
    assert_eq!(&read(Principal::anonymous()).await[..], b"global");
}

#[tokio::test]
async fn secrets_never_reach_a_shared_scope_and_the_reason_does_not_repeat_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = TieredStore::open(&StoreConfig::new(dir.path()))
        .await
        .unwrap();
    let warmer = user("ci", &["web"], Role::Warmer);
    let w = store.scoped(&warmer);
    let key_id = aws_key_id();
    let env = format!("NODE_ENV=production\nAWS_ACCESS_KEY_ID={key_id}\n");
    let shared = key("template/web", "dotenv");
    for streamed in [false, true] {
        let body = if streamed {
            let chunks: Vec<std::io::Result<Bytes>> = env
                .as_bytes()
                .chunks(7)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Body::Stream(Box::pin(futures::stream::iter(chunks)))
        } else {
            Body::Bytes(Bytes::from(env.clone()))
        };
        let e = w
            .put(&shared, PutOptions::default(), body)
            .await
            .unwrap_err();
        let StoreError::Sensitive(reason) = &e else {
            panic!("expected a refusal, got {e}");
        };
        assert!(reason.contains("aws"), "{reason}");
        assert!(
            !e.to_string().contains(&key_id),
            "the reason repeats the secret"
        );
        assert!(w.get(&shared).await.unwrap().is_none(), "it was stored");
    }
    // The same content in the writer's own scope is its own business.
    w.put(
        &key("user/ci", "dotenv"),
        PutOptions::default(),
        Body::Bytes(Bytes::from(env.clone())),
    )
    .await
    .unwrap();
    // Clean content goes to the template as before.
    w.put(
        &shared,
        PutOptions::default(),
        body("NODE_ENV=production\n"),
    )
    .await
    .unwrap();
}
