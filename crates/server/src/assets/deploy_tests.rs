//! The deploy API in-process, with a purge sink that records what it is given: an
//! activation and a rollback each submit the purge of the URLs whose answers changed.

use std::sync::{Arc, Mutex};

use axum::body::Body as HttpBody;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use tiercache_core::ContentHash;
use tiercache_core::assets::SiteName;
use tiercache_store::{AuditLog, StoreConfig, TieredStore};

use super::{AssetsConfig, AssetsFrontend, PurgeRequest, PurgeSink, SiteConfig, deploy};
use crate::auth::Auth;
use crate::build::{BuildConfig, BuildFrontend};
use crate::state::AppState;

#[derive(Default)]
struct Recorder(Mutex<Vec<PurgeRequest>>);

impl PurgeSink for Recorder {
    fn submit(&self, request: PurgeRequest) -> futures::future::BoxFuture<'_, Result<(), String>> {
        if let Ok(mut v) = self.0.lock() {
            v.push(request);
        }
        Box::pin(async { Ok(()) })
    }
}

async fn state(dir: &std::path::Path, sink: Arc<Recorder>) -> AppState {
    let store = TieredStore::open(&StoreConfig::new(dir)).await.unwrap();
    let assets = AssetsConfig {
        sites: vec![SiteConfig {
            name: SiteName::new("docs").unwrap(),
            hostnames: Vec::new(),
            public_url: Some("https://docs.example".into()),
        }],
        ..Default::default()
    };
    let audit = Arc::new(AuditLog::disabled());
    let leakage = Arc::new(
        tiercache_store::leakage::Leakage::open(store.clone(), audit.clone(), dir)
            .await
            .unwrap(),
    );
    AppState {
        store,
        leakage,
        purge_outbox: None,
        metrics: None,
        max_body_bytes: 1 << 20,
        build: Arc::new(BuildFrontend::new(BuildConfig::default(), None)),
        npm: None,
        audit,
        auth: Arc::new(Auth::single_user()),
        assets: Arc::new(AssetsFrontend::new(assets)),
        purge: Some(sink),
    }
}

/// Creates a deploy of `files`, uploads what is missing and activates it.
async fn ship(state: &AppState, files: &[(&str, &str)]) {
    let manifest = serde_json::json!({ "files": files.iter().map(|(p, b)| {
        ((*p).to_owned(), serde_json::json!({ "hash": ContentHash::of(b.as_bytes()), "size": b.len() }))
    }).collect::<serde_json::Map<_, _>>() });
    let site = || Path("docs".to_owned());
    let created = deploy::create(
        State(state.clone()),
        site(),
        HeaderMap::new(),
        HttpBody::from(manifest.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let bytes = axum::body::to_bytes(created.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for (_, body) in files {
        let hash = ContentHash::of(body.as_bytes()).to_hex();
        if answer["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == &hash)
        {
            let put = deploy::put_blob(
                State(state.clone()),
                Path(("docs".to_owned(), hash)),
                HeaderMap::new(),
                HttpBody::from(body.to_string()),
            )
            .await
            .unwrap();
            assert_eq!(put.status(), StatusCode::CREATED);
        }
    }
    let n = answer["deploy"].as_u64().unwrap().to_string();
    let live = deploy::activate(
        State(state.clone()),
        Path(("docs".to_owned(), n)),
        HeaderMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
}

#[tokio::test]
async fn activation_and_rollback_submit_the_purge_of_changed_mutable_urls() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(Recorder::default());
    let state = state(dir.path(), sink.clone()).await;
    ship(&state, &[("index.html", "v1"), ("a-BzT3c9aF.js", "js1")]).await;
    ship(
        &state,
        &[
            ("index.html", "v2"),
            ("a-Qx81LmZa.js", "js2"),
            ("new.css", "c"),
        ],
    )
    .await;
    let rolled = deploy::rollback(
        State(state.clone()),
        Path("docs".to_owned()),
        HeaderMap::new(),
    )
    .await
    .unwrap();
    assert_eq!(rolled.status(), StatusCode::OK);
    let seen = sink.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // The first deploy: its one mutable page (the hashed script is immutable).
    assert_eq!(
        seen[0].urls,
        ["https://docs.example/index.html", "https://docs.example/"]
    );
    let expected = [
        "https://docs.example/index.html",
        "https://docs.example/",
        "https://docs.example/new.css",
    ];
    assert_eq!(seen[1].urls, expected);
    assert!(seen[1].tags.is_empty() && !seen[1].everything);
    assert_eq!(
        seen[2].urls, expected,
        "rolling back changes the same URLs back"
    );
}
