//! What every handler shares.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tiercache_store::TieredStore;

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The one store every route reads and writes through.
    pub store: TieredStore,
    /// Renders `/metrics`; `None` where no recorder was installed (in-process tests).
    pub metrics: Option<PrometheusHandle>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// The build cache (Turborepo remote cache API).
    pub build: Arc<crate::build::BuildFrontend>,
    /// The npm registry proxy, if an upstream is configured.
    pub npm: Option<Arc<crate::npm::NpmFrontend>>,
    /// The audit log (`<data_dir>/audit/`); `AuditLog::disabled()` where nothing is kept.
    pub audit: Arc<tiercache_store::AuditLog>,
    /// The leakage scan of the shared scopes and its quarantine (admin endpoints).
    pub leakage: Arc<tiercache_store::leakage::Leakage>,
    /// Who is asking: signed tokens, or single-user mode without a secret.
    pub auth: Arc<crate::auth::Auth>,
    /// Static asset hosting: sites, hostnames, Cache-Control rules, the live deploys.
    pub assets: Arc<crate::assets::AssetsFrontend>,
    /// Where purges are handed over (deploys); `None` when no purge provider is configured.
    pub purge: Option<Arc<dyn crate::cdn::PurgeSink>>,
    /// The purge outbox behind `purge`, for `/admin/purges`.
    pub purge_outbox: Option<Arc<crate::cdn::Outbox>>,
}
