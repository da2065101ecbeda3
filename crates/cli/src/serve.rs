//! `tiercache serve`: open the store, listen, and shut down gracefully on SIGTERM/SIGINT.

use std::sync::Arc;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusBuilder;
use tiercache_server::AppState;
use tiercache_server::auth::Auth;
use tiercache_server::build::BuildFrontend;
use tiercache_server::cdn::{Outbox, PurgeConfig, PurgeSink};
use tiercache_server::npm::NpmFrontend;
use tiercache_store::TieredStore;
use tiercache_store::leakage::Leakage;
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
    // Checked before anything is opened: a refused address never touches the data.
    let auth = Auth::new(&config.auth);
    check_auth_mode(&config.listen, &auth, config.insecure_no_auth).await?;
    let store = TieredStore::open(&config.store).await.with_context(|| {
        format!(
            "opening the store in {} (is another tiercache using it?)",
            config.store.data_dir.display()
        )
    })?;
    let audit = Arc::new(
        tiercache_store::AuditLog::open_for(&config.store)
            .await
            .context("opening the audit log")?,
    );
    let leakage = Arc::new(
        Leakage::open(store.clone(), audit.clone(), &config.store.data_dir)
            .await
            .context("opening the leakage scan's state")?,
    );
    // Runs until the server stops (dropped at the end of this function).
    let _leakage_job = config.leakage_interval.map(|i| leakage.spawn_periodic(i));
    // With a fleet: every node applies every invalidation event (dropped at the end).
    let events_feed = store.follow_events(&config.store.data_dir);
    if events_feed.is_some() {
        info!(grace = ?config.store.event_grace, "following the fleet's invalidation events");
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
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
    if build.is_open() && !auth.is_enabled() && !addr.ip().is_loopback() {
        warn!(
            "build cache: no tokens configured ([build] tokens or TIERCACHE_BUILD_TOKENS); anyone who can reach the server may read and write artifacts"
        );
    }
    let (purge, purge_outbox) = open_purges(config.purge, &config.store.data_dir).await?;
    let state = AppState {
        store,
        metrics: Some(metrics),
        max_body_bytes: config.store.max_entry_bytes,
        npm,
        build: Arc::new(build),
        auth: Arc::new(auth),
        audit,
        leakage,
        assets: Arc::new(tiercache_server::assets::AssetsFrontend::new(config.assets)),
        purge,
        purge_outbox,
    };
    tiercache_server::serve(listener, state, shutdown_signal()).await?;
    // Stop following the fleet's events only once the server has stopped serving.
    drop(events_feed);
    info!("tiercache stopped cleanly");
    Ok(())
}

/// The purge outbox in `<data_dir>/purges/` with its delivery workers, when providers are
/// configured; without any, a warning if undelivered purges are left on disk.
async fn open_purges(
    config: Option<PurgeConfig>,
    data_dir: &std::path::Path,
) -> anyhow::Result<(Option<Arc<dyn PurgeSink>>, Option<Arc<Outbox>>)> {
    let dir = data_dir.join("purges");
    let Some(config) = config else {
        let left = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0);
        if left > 0 {
            warn!(jobs = left, dir = %dir.display(), "purge jobs are on disk but no [[purge.providers]] is configured: they wait");
        }
        return Ok((None, None));
    };
    let names: Vec<String> = config
        .providers
        .iter()
        .map(|p| format!("{} ({})", p.name, p.provider.kind()))
        .collect();
    let outbox = Outbox::open(dir.clone(), config)
        .await
        .with_context(|| format!("opening the purge outbox in {}", dir.display()))?;
    tiercache_server::cdn::deliver::start(&outbox).context("starting purge delivery")?;
    info!(providers = %names.join(", "), "CDN purges through the outbox in {}", dir.display());
    Ok((Some(outbox.clone() as Arc<dyn PurgeSink>), Some(outbox)))
}

/// Says which auth mode runs, and refuses a non-loopback address without a secret unless
/// `--insecure-no-auth` is given. A listen address that resolves to several counts as
/// loopback only if all of them are.
async fn check_auth_mode(listen: &str, auth: &Auth, insecure_no_auth: bool) -> anyhow::Result<()> {
    if auth.is_enabled() {
        let anonymous = if auth.anonymous_reads() {
            "requests without a token may read the global scope only"
        } else {
            "requests without a token are refused (401)"
        };
        info!("auth on: requests carry a signed token (Authorization: Bearer, HS256); {anonymous}");
        if insecure_no_auth {
            warn!("--insecure-no-auth has no effect: an auth secret is configured");
        }
        return Ok(());
    }
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("resolving the listen address {listen}"))?
        .collect();
    if !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()) {
        info!(
            "single-user mode: no auth secret; every request is admin; loopback only (set {} for signed tokens)",
            crate::config::AUTH_SECRET_ENV
        );
        return Ok(());
    }
    if !insecure_no_auth {
        bail!(
            "refusing to listen on {listen} without authentication: no auth secret is configured, so every request would be admin. \
             Set {} (or [auth] secret in the config file; at least 32 bytes) to require signed tokens, \
             listen on a loopback address (e.g. --listen 127.0.0.1:7700), \
             or pass --insecure-no-auth (TIERCACHE_INSECURE_NO_AUTH=1) to let anyone who can reach it read and write every scope",
            crate::config::AUTH_SECRET_ENV
        );
    }
    warn!(
        listen,
        "single-user mode on a non-loopback address (--insecure-no-auth): no auth secret; every request is admin; anyone who can reach it reads and writes every scope"
    );
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
