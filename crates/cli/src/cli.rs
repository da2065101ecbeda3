//! Commands and flags. Each flag also reads a `TIERCACHE_*` environment variable;
//! flags win over the environment, which wins over the config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Multi-tier, multi-tenant cache server for cloud development sandboxes.
#[derive(Parser, Debug)]
#[command(name = "tiercache", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing ServeArgs would buy nothing"
)]
pub enum Command {
    /// Run the cache server (memory + local disk by default; no other service needed).
    Serve(ServeArgs),
    /// Show what a running server holds and how well it serves (from /admin/stats).
    Stats(StatsArgs),
    /// Show the audit log: reads, writes, denials and promotions of non-global scopes.
    Audit(AuditArgs),
    /// Print the .npmrc a sandbox should use to install through the cache.
    Npmrc(NpmrcArgs),
    /// Fill a running server's cache ahead of the installs that will need it.
    Prewarm(PrewarmArgs),
    /// Print the build key (hex SHA-256) of source files, lockfile, configs and environment.
    Hash(crate::build::args::HashArgs),
    /// Save, restore and list build outputs in the cache; or wrap a build command with them.
    Build(crate::build::args::BuildArgs),
    /// Point a turbo workspace at this cache (writes DIR/.turbo/config.json).
    TurboConfig(crate::build::args::TurboConfigArgs),
    /// Look for secrets (keys, tokens, private keys, .env files) in files, directories and archives.
    Scan(crate::scan::ScanArgs),
    /// Scan a running server's template and global scopes for secrets and personal data; quarantine findings.
    ScanShared(crate::scan_shared::ScanSharedArgs),
    /// Issue and inspect signed tokens (needs the server's TIERCACHE_AUTH_SECRET).
    Token(crate::token::TokenArgs),
    /// Warm, restore and list template caches ([[templates]] in the config file).
    Template(crate::template::args::TemplateArgs),
    /// Purge cache entries (--key, --prefix, --tag, --scope, --kind; --dry-run counts), or a site's URLs, tags or everything at its CDNs (--site); --status lists pending and failed CDN purges.
    Purge(crate::purge::PurgeArgs),
    /// Send an invalidation event (package-update, template-update, deploy, build-invalidate, epoch) to every node.
    Invalidate(crate::invalidate::InvalidateArgs),
    /// Upload a built site as a new deploy and make it live (or --rollback to the previous one).
    Deploy(crate::deploy::args::DeployArgs),
}

/// Flags of `tiercache stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The tiercache server to ask.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// Print the raw JSON of /admin/stats instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// An admin token (needed when the server has an auth secret).
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `tiercache audit`: from a data directory (default), or a server's /admin/audit.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this user's records (`anonymous` for callers without credentials).
    #[arg(long)]
    pub user: Option<String>,
    /// Only records since: an RFC 3339 time, milliseconds since the epoch, or a duration back from now (1h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only this action: read, head, write, delete, promote, quarantine, list.
    #[arg(long)]
    pub action: Option<String>,
    /// At most this many records, the newest.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// One JSON object per line instead of the text columns.
    #[arg(long)]
    pub json: bool,
    /// The data directory whose audit log to read (works without a running server) [default: ./tiercache-data].
    #[arg(long, env = "TIERCACHE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Ask this running server's /admin/audit instead of reading a data directory.
    #[arg(long)]
    pub server: Option<String>,
    /// An admin token for --server.
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `tiercache npmrc`.
#[derive(Args, Debug)]
pub struct NpmrcArgs {
    /// pnpm's shared store directory.
    #[arg(long, default_value = crate::npmrc::DEFAULT_STORE_DIR)]
    pub store_dir: String,
    /// The registry URL [default: $TIERCACHE_SERVER/npm/, else http://127.0.0.1:7700/npm/].
    #[arg(long)]
    pub registry: Option<String>,
    /// Leave out pnpm's store settings (npm warns about keys it does not know).
    #[arg(long)]
    pub npm_only: bool,
}

/// `tiercache prewarm <ecosystem>`.
#[derive(Args, Debug)]
pub struct PrewarmArgs {
    #[command(subcommand)]
    pub target: PrewarmTarget,
}

/// What can be prewarmed.
#[derive(Subcommand, Debug)]
pub enum PrewarmTarget {
    /// npm packages: packuments and tarballs, through the server's /npm/ routes.
    Npm(PrewarmNpmArgs),
}

/// Flags of `tiercache prewarm npm`.
#[derive(Args, Debug)]
pub struct PrewarmNpmArgs {
    /// Packages as NAME or NAME@RANGE (a semver range or a dist-tag; default: latest).
    #[arg(value_name = "NAME[@RANGE]")]
    pub packages: Vec<String>,
    /// Add the packages most sandboxes install (react, next, vite, typescript, ...).
    #[arg(long)]
    pub popular: bool,
    /// Also prewarm each package's dependencies, all the way down (not dev/peer/optional).
    #[arg(long)]
    pub deps: bool,
    /// The tiercache server to fill.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// A token, for a server with an auth secret and anonymous reads turned off.
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `tiercache serve` for the shared tier and the fleet; unset = the config file's.
#[derive(Args, Debug, Default)]
pub struct FleetArgs {
    /// The shared tier's S3-compatible endpoint, e.g. http://127.0.0.1:9000 [default: AWS].
    #[arg(long, env = "TIERCACHE_L3_ENDPOINT")]
    pub l3_endpoint: Option<String>,
    /// The shared tier's bucket; setting it turns L3 on.
    #[arg(long, env = "TIERCACHE_L3_BUCKET")]
    pub l3_bucket: Option<String>,
    /// The bucket's region [default: us-east-1].
    #[arg(long, env = "TIERCACHE_L3_REGION")]
    pub l3_region: Option<String>,
    /// Path in the bucket every object lives under [default: tiercache].
    #[arg(long, env = "TIERCACHE_L3_PREFIX")]
    pub l3_prefix: Option<String>,
    /// Path-style bucket URLs [default: true with an endpoint, false on AWS].
    #[arg(long, env = "TIERCACHE_L3_PATH_STYLE")]
    pub l3_path_style: Option<bool>,
    /// How long an entry is served from L3, e.g. 30d.
    #[arg(long, env = "TIERCACHE_L3_TTL")]
    pub l3_ttl: Option<String>,
    /// The fleet's Redis, e.g. redis://127.0.0.1:6379 (several, comma-separated, for a cluster).
    #[arg(long, env = "TIERCACHE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Talk Redis Cluster.
    #[arg(long, env = "TIERCACHE_REDIS_CLUSTER")]
    pub redis_cluster: Option<bool>,
}

/// Flags of `tiercache serve`; anything unset falls back to the config file, then defaults.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7700].
    #[arg(long, env = "TIERCACHE_LISTEN")]
    pub listen: Option<String>,
    /// Directory of the disk tier [default: ./tiercache-data].
    #[arg(long, env = "TIERCACHE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file.
    #[arg(long, env = "TIERCACHE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Memory tier byte budget, e.g. 256MiB.
    #[arg(long, env = "TIERCACHE_L1_BUDGET")]
    pub l1_budget: Option<String>,
    /// Entries larger than this skip the memory tier, e.g. 4MiB.
    #[arg(long, env = "TIERCACHE_L1_MAX_ENTRY")]
    pub l1_max_entry: Option<String>,
    /// How long an entry stays in memory, e.g. 1h.
    #[arg(long, env = "TIERCACHE_L1_TTL")]
    pub l1_ttl: Option<String>,
    /// Disk tier byte budget, e.g. 50GB (lowered at start-up to what the disk can hold).
    #[arg(long, env = "TIERCACHE_L2_BUDGET")]
    pub l2_budget: Option<String>,
    /// How long an entry is served from disk, e.g. 7d.
    #[arg(long, env = "TIERCACHE_L2_TTL")]
    pub l2_ttl: Option<String>,
    /// Largest request body (entry) accepted, e.g. 2GiB.
    #[arg(long, env = "TIERCACHE_MAX_BODY")]
    pub max_body: Option<String>,
    /// The npm origin registry [default: what the npm client is configured with].
    #[arg(long, env = "TIERCACHE_NPM_UPSTREAM")]
    pub npm_upstream: Option<String>,
    /// This server's public URL (e.g. https://cache.example), for links it hands out.
    #[arg(long, env = "TIERCACHE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Without an auth secret, listen on a non-loopback address anyway: anyone who can
    /// reach the server reads and writes every scope.
    #[arg(long, env = "TIERCACHE_INSECURE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_no_auth: bool,
    /// Whether requests without a token may read the global scope (with an auth secret) [default: true].
    #[arg(long, env = "TIERCACHE_AUTH_ANONYMOUS_READS")]
    pub auth_anonymous_reads: Option<bool>,
    /// The shared tier (L3) and the fleet's Redis.
    #[command(flatten)]
    pub fleet: FleetArgs,
}
