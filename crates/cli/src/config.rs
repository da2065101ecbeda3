//! The server's configuration: defaults, overlaid by the TOML file, overlaid by flags and
//! `TIERCACHE_*` variables (clap reads those). Sizes take units (`256MiB`, `50GB`),
//! durations take humantime forms (`90s`, `1h`, `7d`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tiercache_core::DiskSync;
use tiercache_server::auth::{AuthConfig, AuthSecret};
use tiercache_server::build::BuildConfig;
use tiercache_server::npm::NpmConfig;
use tiercache_server::npm::config::{HookSecret, UpstreamToken};
use tiercache_store::StoreConfig;
use tiercache_store::fleet::RedisConfig;
use tiercache_store::tier::object::L3Config;

use crate::cli::{FleetArgs, ServeArgs};

/// The config file's shape; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub max_body: Option<String>,
    #[serde(default)]
    pub l1: TierFile,
    #[serde(default)]
    pub l2: TierFile,
    pub public_url: Option<String>,
    #[serde(default)]
    pub npm: NpmFile,
    #[serde(default)]
    pub build: BuildFile,
    #[serde(default)]
    pub l3: L3File,
    #[serde(default)]
    pub redis: RedisFile,
    #[serde(default)]
    pub audit: AuditFile,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub sharing: SharingFile,
    /// `[[templates]]`: template caches for `tiercache template` (checked by `serve` too).
    #[serde(default)]
    pub templates: Vec<crate::template::config::TemplateFile>,
    #[serde(default)]
    pub leakage: LeakageFile,
    /// `[invalidation]`: how the fleet's invalidation events are followed.
    #[serde(default)]
    pub invalidation: InvalidationFile,
    /// `[epochs]`: configured version epochs per kind and per template.
    #[serde(default)]
    pub epochs: tiercache_store::EpochTable,
    /// `[purge]` and `[[purge.providers]]`: where CDN purges go.
    #[serde(default)]
    pub purge: tiercache_server::cdn::PurgeFile,
    /// `[[sites]]`: static sites served by hostname (and their public URLs).
    #[serde(default)]
    pub sites: Vec<crate::sites::SiteFile>,
    /// `[assets]`: the Cache-Control rules of static assets.
    #[serde(default)]
    pub assets: crate::sites::AssetsFile,
}

/// The `[sharing]` section of the file: when user uploads become shared.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharingFile {
    /// Distinct users of a template whose byte-identical build artifacts promote them to the
    /// template's scope (default 2; 0 = never).
    pub promote_after: Option<u32>,
}

/// Adds a tier's `[<tier>.kind_ttl]` entries (kind → duration, never zero) to `into`.
fn kind_ttls(
    tier: &str,
    file: &BTreeMap<String, String>,
    into: &mut BTreeMap<String, Duration>,
) -> anyhow::Result<()> {
    for (kind, text) in file {
        tiercache_core::Kind::new(kind)
            .map_err(|e| anyhow::anyhow!("[{tier}.kind_ttl] {kind:?}: {e}"))?;
        let ttl = duration(&format!("{tier} TTL of {kind}"), text)?;
        if ttl.is_zero() {
            bail!("[{tier}.kind_ttl] {kind}: a TTL must be longer than zero");
        }
        into.insert(kind.clone(), ttl);
    }
    Ok(())
}

/// The `[invalidation]` section of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidationFile {
    /// How long a fleet node that has not caught up on events answers from L3 and the
    /// origin only (default 30s).
    pub grace: Option<String>,
}

/// The `[leakage] interval` of the file: how often the shared scopes are scanned.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakageFile {
    /// A duration (`24h`), or `0`/`off` for no periodic scan.
    pub interval: Option<String>,
}

/// How often `serve` scans the shared scopes unless told otherwise.
pub const DEFAULT_LEAKAGE_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// `[leakage] interval`: `None` when off.
fn resolve_leakage(file: LeakageFile) -> anyhow::Result<Option<Duration>> {
    match file.interval.as_deref().map(str::trim) {
        None => Ok(Some(DEFAULT_LEAKAGE_INTERVAL)),
        Some("0" | "off" | "false" | "none") => Ok(None),
        Some(s) => {
            let d = duration("leakage interval", s)?;
            if d < Duration::from_secs(1) {
                bail!("leakage.interval must be at least 1s (or \"off\")");
            }
            Ok(Some(d))
        }
    }
}

/// The `[auth]` section of the file: signed tokens. `Debug` never shows the secret.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub secret: Option<String>,
    pub anonymous_reads: Option<bool>,
    pub leeway: Option<String>,
}

impl std::fmt::Debug for AuthFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFile")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("anonymous_reads", &self.anonymous_reads)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// The `[audit]` section of the file: the audit log's rotation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// `current.jsonl` is rotated at this size, e.g. `64MiB`.
    pub max_file: Option<String>,
    /// Rotated files kept.
    pub max_files: Option<usize>,
}

/// The `[l3]` section of the file: the shared tier in an S3-compatible bucket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L3File {
    /// Kinds with their own TTL: `[l3.kind_ttl] asset-blob = "365d"`.
    #[serde(default)]
    pub kind_ttl: BTreeMap<String, String>,
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    pub ttl: Option<String>,
    pub sweep_interval: Option<String>,
    pub queue: Option<usize>,
}

/// The `[redis]` section of the file: what the fleet shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url: Option<String>,
    pub cluster: Option<bool>,
    pub key_prefix: Option<String>,
    pub lock_lease: Option<String>,
    pub fleet_wait: Option<String>,
}

/// The `[build]` section of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildFile {
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub read_only_tokens: Vec<String>,
    pub max_artifact: Option<String>,
}

/// The `[npm]` section of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmFile {
    pub upstream: Option<String>,
    pub fresh_for: Option<String>,
    pub retries: Option<u32>,
    pub retry_factor: Option<u32>,
    pub retry_min: Option<String>,
    pub retry_max: Option<String>,
    pub breaker_threshold: Option<u32>,
    pub breaker_open_for: Option<String>,
    #[serde(default)]
    pub private_scopes: Vec<String>,
    /// Per private scope: `[npm.scopes."@acme"] upstream = "..."`.
    #[serde(default)]
    pub scopes: BTreeMap<String, ScopeFile>,
    /// The environment variable holding the npm hooks' shared secret (`POST /hooks/npm`).
    pub hook_secret_env: Option<String>,
}

/// One private scope's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeFile {
    pub upstream: Option<String>,
    /// The environment variable holding the registry token tiercache sends upstream for this
    /// scope when auth is on (clients then send tiercache tokens, which never leave the server).
    pub token_env: Option<String>,
}

/// One tier's section of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    pub budget: Option<String>,
    pub max_entry: Option<String>,
    pub ttl: Option<String>,
    /// Kinds with their own TTL: `[l2.kind_ttl] npm-full = "1d"`.
    #[serde(default)]
    pub kind_ttl: BTreeMap<String, String>,
    pub low_watermark_percent: Option<u8>,
    pub sweep_interval: Option<String>,
    pub fsync: Option<FsyncSetting>,
    pub flush_backlog: Option<String>,
}

/// `[l2] fsync`: `"always"`, `"background"` or `"never"`; `true`/`false` mean always/never.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum FsyncSetting {
    Flag(bool),
    Mode(String),
}

/// Everything `serve` needs, resolved.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: String,
    pub store: StoreConfig,
    /// `None` when no npm upstream is configured and the npm client has none either.
    pub npm: Option<NpmConfig>,
    pub build: BuildConfig,
    /// Signed tokens; without a secret the server is single-user.
    pub auth: AuthConfig,
    /// Serve without a secret on a non-loopback address anyway.
    pub insecure_no_auth: bool,
    /// How often the shared scopes are scanned for leakage; `None` = never on its own.
    pub leakage_interval: Option<Duration>,
    /// CDN purge providers; `None` when none is configured.
    pub purge: Option<tiercache_server::cdn::PurgeConfig>,
    /// Static asset hosting: sites and Cache-Control rules.
    pub assets: tiercache_server::assets::AssetsConfig,
}

fn size(what: &str, s: &str) -> anyhow::Result<u64> {
    let v: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{what}: {s:?} is not a size (e.g. 256MiB, 50GB): {e}"))?;
    Ok(v.as_u64())
}

fn duration(what: &str, s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s.trim())
        .with_context(|| format!("{what}: {s:?} is not a duration (e.g. 90s, 1h, 7d)"))
}

fn resolve_l3(
    args: &FleetArgs,
    file: L3File,
    store: &mut StoreConfig,
) -> anyhow::Result<Option<L3Config>> {
    let Some(bucket) = args.l3_bucket.clone().or(file.bucket) else {
        if args.l3_endpoint.is_some() || file.endpoint.is_some() {
            bail!("l3: an endpoint is set but no bucket; set [l3] bucket (or TIERCACHE_L3_BUCKET)");
        }
        return Ok(None);
    };
    let mut l3 = L3Config::new(bucket);
    if let Some(e) = args.l3_endpoint.clone().or(file.endpoint) {
        l3 = l3.with_endpoint(e);
    }
    if let Some(r) = args.l3_region.clone().or(file.region) {
        l3.region = r;
    }
    if let Some(p) = args.l3_prefix.clone().or(file.prefix) {
        l3.prefix = p;
    }
    if let Some(p) = args.l3_path_style.or(file.path_style) {
        l3.path_style = p;
    }
    kind_ttls("l3", &file.kind_ttl, &mut l3.kind_ttl)?;
    if let Some(t) = args.l3_ttl.clone().or(file.ttl) {
        l3.ttl = duration("L3 TTL", &t)?;
    }
    if let Some(t) = file.sweep_interval {
        store.l3_sweep_interval = duration("L3 sweep interval", &t)?;
    }
    if let Some(q) = file.queue {
        store.l3_queue = q;
    }
    l3.validate().map_err(|e| anyhow::anyhow!("l3: {e}"))?;
    Ok(Some(l3))
}

fn resolve_redis(
    args: &FleetArgs,
    file: RedisFile,
    store: &mut StoreConfig,
) -> anyhow::Result<Option<RedisConfig>> {
    if let Some(w) = file.fleet_wait {
        store.fleet_wait = duration("fleet wait", &w)?;
    }
    let Some(url) = args.redis_url.clone().or(file.url) else {
        return Ok(None);
    };
    let mut redis = RedisConfig::new(url);
    if let Some(c) = args.redis_cluster.or(file.cluster) {
        redis.cluster = c;
    }
    if let Some(p) = file.key_prefix {
        redis.key_prefix = p;
    }
    if let Some(l) = file.lock_lease {
        redis.lock_lease = duration("redis lock lease", &l)?;
        if redis.lock_lease < Duration::from_millis(100) {
            bail!("redis.lock_lease must be at least 100ms");
        }
    }
    Ok(Some(redis))
}

/// The variable that holds the auth secret (there is no flag: it would show in `ps`).
pub const AUTH_SECRET_ENV: &str = "TIERCACHE_AUTH_SECRET";

/// The auth secret: `TIERCACHE_AUTH_SECRET`, else the file's `[auth] secret`, else none;
/// one shorter than 32 bytes is an error naming where it came from (never its value).
fn resolve_secret(file_secret: Option<String>) -> anyhow::Result<Option<AuthSecret>> {
    let (text, from) = match std::env::var(AUTH_SECRET_ENV) {
        Ok(v) => (v, AUTH_SECRET_ENV),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{AUTH_SECRET_ENV} is not valid UTF-8"),
        Err(std::env::VarError::NotPresent) => match file_secret {
            Some(v) => (v, "[auth] secret"),
            None => return Ok(None),
        },
    };
    AuthSecret::new(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{from}: {e}"))
}

/// `[auth]`: the secret (environment over file), anonymous reads (flag/env over file,
/// default on) and the expiry leeway.
fn resolve_auth(file: AuthFile, anonymous_reads: Option<bool>) -> anyhow::Result<AuthConfig> {
    let mut c = AuthConfig {
        secret: resolve_secret(file.secret)?,
        ..AuthConfig::default()
    };
    if let Some(a) = anonymous_reads.or(file.anonymous_reads) {
        c.anonymous_reads = a;
    }
    if let Some(l) = file.leeway {
        c.leeway = duration("auth leeway", &l)?;
        if c.leeway > Duration::from_secs(600) {
            bail!("auth.leeway must be at most 10m");
        }
    }
    Ok(c)
}

/// The auth secret for `tiercache token`: `TIERCACHE_AUTH_SECRET`, else `config`'s
/// `[auth] secret`; an error if neither is set.
pub fn token_secret(config: Option<&Path>) -> anyhow::Result<AuthSecret> {
    let file_secret = match config {
        Some(p) => load_file(p)?.auth.secret,
        None => None,
    };
    resolve_secret(file_secret)?.ok_or_else(|| {
        anyhow::anyhow!(
            "no auth secret: set {AUTH_SECRET_ENV}, or pass --config FILE with [auth] secret"
        )
    })
}

/// Reads and parses the TOML file at `path` (no defaults applied), for every command.
pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

impl ServeConfig {
    /// Resolves flags (and environment) over the file over the defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        if let Some(p) = &args.config {
            crate::template::config::resolve(&file.templates, p)?;
        }
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:7700".into());
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./tiercache-data"));
        let mut store = StoreConfig::new(data_dir);
        if let Some(s) = args.max_body.or(file.max_body) {
            store.max_entry_bytes = size("max body", &s)?;
        }
        if let Some(s) = args.l1_budget.or(file.l1.budget) {
            store.l1.budget_bytes = size("L1 budget", &s)?;
        }
        if let Some(s) = args.l1_max_entry.or(file.l1.max_entry) {
            store.l1.max_entry_bytes = size("L1 max entry", &s)?;
        }
        kind_ttls("l1", &file.l1.kind_ttl, &mut store.l1.kind_ttl)?;
        kind_ttls("l2", &file.l2.kind_ttl, &mut store.l2.kind_ttl)?;
        if let Some(s) = args.l1_ttl.or(file.l1.ttl) {
            store.l1.ttl = duration("L1 TTL", &s)?;
        }
        if let Some(s) = args.l2_budget.or(file.l2.budget) {
            store.l2.budget_bytes = size("L2 budget", &s)?;
        }
        if let Some(s) = args.l2_ttl.or(file.l2.ttl) {
            store.l2.ttl = duration("L2 TTL", &s)?;
        }
        if let Some(p) = file.l2.low_watermark_percent {
            if !(1..=100).contains(&p) {
                bail!("l2.low_watermark_percent must be between 1 and 100");
            }
            store.l2.low_watermark_percent = p;
        }
        if let Some(s) = file.l2.sweep_interval {
            store.sweep_interval = duration("L2 sweep interval", &s)?;
        }
        if let Some(f) = file.l2.fsync {
            store.l2.fsync = match f {
                FsyncSetting::Flag(true) => DiskSync::Always,
                FsyncSetting::Flag(false) => DiskSync::Never,
                FsyncSetting::Mode(m) => DiskSync::parse(&m).ok_or_else(|| {
                    anyhow::anyhow!(
                        "l2.fsync must be \"always\", \"background\" or \"never\", not {m:?}"
                    )
                })?,
            };
        }
        if file.l1.low_watermark_percent.is_some()
            || file.l1.sweep_interval.is_some()
            || file.l1.fsync.is_some()
            || file.l1.flush_backlog.is_some()
        {
            bail!(
                "l1 has no low_watermark_percent, sweep_interval, fsync or flush_backlog; they belong to l2"
            );
        }
        if let Some(s) = file.l2.flush_backlog {
            store.l2.flush_backlog_bytes = size("L2 flush backlog", &s)?;
            if store.l2.flush_backlog_bytes == 0 {
                bail!(
                    "l2.flush_backlog must be more than zero (use fsync = \"always\" to wait for every flush)"
                );
            }
        }
        if file.l2.max_entry.is_some() {
            bail!("l2 has no max_entry; use max_body for the largest entry");
        }
        if store.l2.ttl.is_zero() || store.l1.ttl.is_zero() {
            bail!("a tier TTL must be longer than zero");
        }
        if let Some(s) = file.audit.max_file {
            store.audit_max_file_bytes = size("audit max_file", &s)?;
            if store.audit_max_file_bytes == 0 {
                bail!("audit.max_file must be larger than zero");
            }
        }
        if let Some(n) = file.audit.max_files {
            store.audit_max_files = n;
        }
        if let Some(k) = file.sharing.promote_after {
            store.promote_after = k;
        }
        if let Some(g) = &file.invalidation.grace {
            store.event_grace = duration("invalidation grace", g)?;
        }
        for kind in file.epochs.kinds.keys() {
            tiercache_core::Kind::new(kind)
                .map_err(|e| anyhow::anyhow!("[epochs.kinds] {kind:?}: {e}"))?;
        }
        for t in file.epochs.templates.keys() {
            tiercache_core::Scope::template(t)
                .map_err(|e| anyhow::anyhow!("[epochs.templates] {t:?}: {e}"))?;
        }
        store.epochs = file.epochs.clone();
        store.l3 = resolve_l3(&args.fleet, file.l3, &mut store)?;
        store.redis = resolve_redis(&args.fleet, file.redis, &mut store)?;
        let public_url = args.public_url.or(file.public_url);
        let assets = crate::sites::resolve(&file.sites, &file.assets, public_url.clone())?;
        let upstream = args.npm_upstream.or(file.npm.upstream.clone());
        let npm = resolve_npm(file.npm, upstream, public_url)?;
        let build = resolve_build(file.build, &store)?;
        let auth = resolve_auth(file.auth, args.auth_anonymous_reads)?;
        let leakage_interval = resolve_leakage(file.leakage)?;
        // Credentials come from the variables `token_env`/`secret_env` name, read once here.
        let purge = file.purge.resolve(&|var| std::env::var(var).ok())?;
        Ok(ServeConfig {
            listen,
            store,
            npm,
            build,
            auth,
            insecure_no_auth: args.insecure_no_auth,
            leakage_interval,
            purge,
            assets,
        })
    }
}

fn resolve_npm(
    file: NpmFile,
    upstream: Option<String>,
    public_url: Option<String>,
) -> anyhow::Result<Option<NpmConfig>> {
    let Some(upstream) = upstream.or_else(npm_client_registry) else {
        return Ok(None);
    };
    check_url("npm upstream", &upstream)?;
    let mut c = NpmConfig::new(upstream);
    if let Some(p) = public_url {
        check_url("public URL", &p)?;
        c.public_url = Some(p);
    }
    if let Some(s) = file.fresh_for {
        c.fresh_for = duration("npm fresh_for", &s)?;
    }
    if let Some(n) = file.retries {
        c.retries = n.min(10);
    }
    if let Some(n) = file.retry_factor {
        c.retry_factor = n.max(1);
    }
    if let Some(s) = file.retry_min {
        c.retry_min = duration("npm retry_min", &s)?;
    }
    if let Some(s) = file.retry_max {
        c.retry_max = duration("npm retry_max", &s)?;
    }
    if let Some(n) = file.breaker_threshold {
        c.breaker_threshold = n.max(1);
    }
    if let Some(s) = file.breaker_open_for {
        c.breaker_open_for = duration("npm breaker_open_for", &s)?;
    }
    for scope in file.private_scopes {
        if !scope.starts_with('@') || scope.contains('/') {
            bail!("npm private scope {scope:?} must look like @name");
        }
        c.private_scopes.insert(scope, None);
    }
    if let Some(var) = &file.hook_secret_env {
        let secret = std::env::var(var)
            .map_err(|_| anyhow::anyhow!("[npm] hook_secret_env: {var} is not set"))?;
        c.hook_secret = Some(HookSecret::new(secret.trim()).ok_or_else(|| {
            anyhow::anyhow!("{var}: an npm hook secret is at least 16 characters")
        })?);
    }
    for (scope, s) in file.scopes {
        if !c.private_scopes.contains_key(&scope) {
            bail!("[npm.scopes.{scope:?}] names a scope that is not in npm.private_scopes");
        }
        if let Some(var) = s.token_env {
            // Read once at start-up; a named variable that is unset is a mistake worth a stop.
            let token = std::env::var(&var).map_err(|_| {
                anyhow::anyhow!("[npm.scopes.{scope:?}] token_env: {var} is not set")
            })?;
            let token = UpstreamToken::bearer(token.trim())
                .ok_or_else(|| anyhow::anyhow!("{var} holds characters a header cannot carry"))?;
            c.scope_tokens.insert(scope.clone(), token);
        }
        if let Some(u) = s.upstream {
            check_url("npm scope upstream", &u)?;
            c.private_scopes.insert(scope, Some(u));
        }
    }
    Ok(Some(c))
}

/// Build-cache tokens: the environment (`TIERCACHE_BUILD_TOKENS`,
/// `TIERCACHE_BUILD_READONLY_TOKENS`, comma-separated) adds to the file's lists.
fn resolve_build(file: BuildFile, store: &StoreConfig) -> anyhow::Result<BuildConfig> {
    let from_env = |var: &str| -> Vec<String> {
        std::env::var(var)
            .map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut c = BuildConfig {
        tokens: file.tokens,
        read_only_tokens: file.read_only_tokens,
        max_artifact_bytes: store.max_entry_bytes,
    };
    c.tokens.extend(from_env("TIERCACHE_BUILD_TOKENS"));
    c.read_only_tokens
        .extend(from_env("TIERCACHE_BUILD_READONLY_TOKENS"));
    if let Some(s) = file.max_artifact {
        c.max_artifact_bytes = size("build max_artifact", &s)?.min(store.max_entry_bytes);
    }
    Ok(c)
}

fn check_url(what: &str, url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{what} {url:?} must be an http:// or https:// URL");
    }
    Ok(())
}

/// The registry the npm client on this machine uses: `npm_config_registry`, else
/// `npm config get registry`. Read at run time so no registry address lives in this repo.
fn npm_client_registry() -> Option<String> {
    for var in ["npm_config_registry", "NPM_CONFIG_REGISTRY"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return Some(v.trim().to_owned());
        }
    }
    let out = std::process::Command::new("npm")
        .args(["config", "get", "registry"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let url = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && url.starts_with("http")).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\nmax_body = \"1MiB\"\n[l1]\nbudget = \"64MiB\"\n[l2]\nttl = \"2d\"\nbudget = \"1GB\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            l2_budget: Some("2GB".into()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(args).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9");
        assert_eq!(c.store.max_entry_bytes, 1024 * 1024);
        assert_eq!(c.store.l1.budget_bytes, 64 * 1024 * 1024);
        assert_eq!(c.store.l2.budget_bytes, 2_000_000_000);
        assert_eq!(c.store.l2.ttl, Duration::from_secs(2 * 86400));
        assert_eq!(c.store.l1.max_entry_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn the_audit_and_sharing_sections_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[audit]\nmax_file = \"1MiB\"\nmax_files = 3\n[sharing]\npromote_after = 3\n\
             [l2.kind_ttl]\nnpm-full = \"1h\"\n[epochs.kinds]\nnpm-tgz = 2\n[invalidation]\ngrace = \"5s\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(args).unwrap();
        assert_eq!(c.store.audit_max_file_bytes, 1024 * 1024);
        assert_eq!(c.store.audit_max_files, 3);
        assert_eq!(c.store.promote_after, 3);
        assert_eq!(
            c.store.l2.kind_ttl.get("npm-full"),
            Some(&Duration::from_secs(3600))
        );
        assert_eq!(c.store.epochs.kinds.get("npm-tgz"), Some(&2));
        assert_eq!(c.store.event_grace, Duration::from_secs(5));
        std::fs::write(&path, "[audit]\nmax_file = \"0\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = ServeConfig::resolve(args).unwrap_err().to_string();
        assert!(e.contains("audit.max_file"), "{e}");
    }

    #[test]
    fn the_leakage_interval_defaults_to_a_day_and_turns_off() {
        let c = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(c.leakage_interval, Some(DEFAULT_LEAKAGE_INTERVAL));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, want) in [
            ("6h", Some(Duration::from_secs(6 * 3600))),
            ("off", None),
            ("0", None),
        ] {
            std::fs::write(&path, format!("[leakage]\ninterval = \"{text}\"\n")).unwrap();
            let args = ServeArgs {
                config: Some(path.clone()),
                ..Default::default()
            };
            assert_eq!(ServeConfig::resolve(args).unwrap().leakage_interval, want);
        }
        std::fs::write(&path, "[leakage]\ninterval = \"soon\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = ServeConfig::resolve(args).unwrap_err().to_string();
        assert!(e.contains("leakage interval"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let args = ServeArgs {
            l1_budget: Some("lots".into()),
            ..Default::default()
        };
        let e = ServeConfig::resolve(args).unwrap_err().to_string();
        assert!(e.contains("L1 budget"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        assert!(ServeConfig::resolve(args).is_err());
        std::fs::write(&path, "[l2]\nfsync = \"sometimes\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = ServeConfig::resolve(args).unwrap_err().to_string();
        assert!(e.contains("l2.fsync") && e.contains("\"sometimes\""), "{e}");
    }

    #[test]
    fn fsync_takes_a_mode_or_a_flag_and_defaults_to_background() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let resolve = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let args = ServeArgs {
                config: Some(path.clone()),
                ..Default::default()
            };
            ServeConfig::resolve(args).unwrap().store.l2.fsync
        };
        assert_eq!(resolve(""), DiskSync::Background);
        assert_eq!(resolve("[l2]\nfsync = \"always\"\n"), DiskSync::Always);
        assert_eq!(resolve("[l2]\nfsync = \"never\"\n"), DiskSync::Never);
        assert_eq!(resolve("[l2]\nfsync = true\n"), DiskSync::Always);
        assert_eq!(
            resolve("[l2]\nfsync = \"background\"\n"),
            DiskSync::Background
        );
        std::fs::write(&path, "[l2]\nflush_backlog = \"64MiB\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(args).unwrap();
        assert_eq!(c.store.l2.flush_backlog_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn auth_comes_from_the_file_and_flags_and_is_never_printed() {
        if std::env::var_os(AUTH_SECRET_ENV).is_some() {
            return; // the environment would win over the file
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let secret = "file-secret-0123456789abcdef-0123456789";
        std::fs::write(
            &path,
            format!("[auth]\nsecret = \"{secret}\"\nanonymous_reads = false\nleeway = \"5s\"\n"),
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = ServeConfig::resolve(args).unwrap();
        assert!(c.auth.secret.is_some() && !c.auth.anonymous_reads);
        assert_eq!(c.auth.leeway, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains(secret));
        assert!(!format!("{:?}", load_file(&path).unwrap()).contains(secret));
        let args = ServeArgs {
            config: Some(path.clone()),
            auth_anonymous_reads: Some(true),
            ..Default::default()
        };
        assert!(ServeConfig::resolve(args).unwrap().auth.anonymous_reads);
        // Defaults: no secret (single-user), anonymous reads on.
        let c = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert!(c.auth.secret.is_none() && c.auth.anonymous_reads && !c.insecure_no_auth);
        // A short secret names its source, never its value.
        std::fs::write(&path, "[auth]\nsecret = \"tiny\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = ServeConfig::resolve(args).unwrap_err().to_string();
        assert!(
            e.contains("[auth] secret") && e.contains("at least 32 bytes"),
            "{e}"
        );
        assert!(!e.contains("tiny"), "{e}");
    }

    #[test]
    fn the_shared_tier_and_redis_come_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[l3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\nttl = \"2d\"\nqueue = 7\n[redis]\nurl = \"redis://127.0.0.1:1\"\nlock_lease = \"2s\"\nfleet_wait = \"5s\"\n[l2]\nfsync = false\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            fleet: FleetArgs {
                l3_prefix: Some("p".into()),
                redis_url: Some("redis://127.0.0.1:2".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = ServeConfig::resolve(args).unwrap();
        let l3 = c.store.l3.unwrap();
        assert_eq!(l3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(l3.path_style);
        assert_eq!((l3.bucket.as_str(), l3.prefix.as_str()), ("b", "p"));
        assert_eq!(l3.ttl, Duration::from_secs(2 * 86400));
        assert_eq!(c.store.l3_queue, 7);
        let redis = c.store.redis.unwrap();
        assert_eq!(redis.url, "redis://127.0.0.1:2");
        assert_eq!(redis.lock_lease, Duration::from_secs(2));
        assert_eq!(c.store.fleet_wait, Duration::from_secs(5));
        assert_eq!(c.store.l2.fsync, DiskSync::Never);

        // An endpoint without a bucket is a mistake, not "no L3".
        std::fs::write(&path, "[l3]\nendpoint = \"http://127.0.0.1:9000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        let e = ServeConfig::resolve(args).unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
        // Without either, the node is alone.
        let c = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert!(c.store.l3.is_none() && c.store.redis.is_none());
    }
}
