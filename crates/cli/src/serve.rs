//! `tiercache serve`: open the store, listen, and shut down gracefully on SIGTERM/SIGINT.

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use tiercache_server::AppState;
use tiercache_server::build::BuildFrontend;
use tiercache_server::npm::NpmFrontend;
use tiercache_store::TieredStore;
use tracing::{info, warn};

use crate::cli::ServeArgs;
use crate::config::ServeConfig;

/// Runs the server until a shutdown signal.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // One TLS provider for every outgoing HTTPS connection (the npm origin).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let store = TieredStore::open(&config.store).await.with_context(|| {
        format!(
            "opening the store in {} (is another tiercache using it?)",
            config.store.data_dir.display()
        )
    })?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "listening on a non-loopback address without authentication: anyone who can reach it can read and write every scope");
    }
    info!(%addr, data_dir = %config.store.data_dir.display(), "tiercache listening on http://{addr}");
    let npm = match config.npm {
        Some(npm_config) => {
            info!(upstream = %npm_config.upstream, "npm proxy at /npm/");
            Some(NpmFrontend::new(store.clone(), npm_config)?)
        }
        None => {
            warn!("npm proxy disabled: no --npm-upstream given and no npm client configured");
            None
        }
    };
    let build = BuildFrontend::new(config.build, store.fleet().cloned());
    if build.is_open() {
        warn!(
            "build cache: no tokens configured ([build] tokens or TIERCACHE_BUILD_TOKENS); anyone who can reach the server may read and write artifacts"
        );
    }
    let state = AppState {
        store,
        metrics: Some(metrics),
        max_body_bytes: config.store.max_entry_bytes,
        npm,
        build: Arc::new(build),
    };
    tiercache_server::serve(listener, state, shutdown_signal()).await?;
    info!("tiercache stopped cleanly");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    info!("shutdown signal received: finishing in-flight requests");
}
