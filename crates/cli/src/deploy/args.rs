//! Flags of `tiercache deploy`.

use std::path::PathBuf;

use clap::Args;

/// `tiercache deploy DIR --site S` or `tiercache deploy --rollback S`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The built site to upload (e.g. dist): every regular file below it.
    #[arg(required_unless_present = "rollback", conflicts_with = "rollback")]
    pub dir: Option<PathBuf>,
    /// The site to deploy to (1–64 of A-Z a-z 0-9 . _ -); served at /assets/SITE/.
    #[arg(
        long,
        required_unless_present = "rollback",
        conflicts_with = "rollback"
    )]
    pub site: Option<String>,
    /// Make SITE's previous deploy current again, instead of deploying.
    #[arg(long, value_name = "SITE")]
    pub rollback: Option<String>,
    /// The tiercache server.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// An admin or global warmer token (needed when the server has an auth secret).
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Do not store brotli, zstd and gzip variants of compressible files.
    #[arg(long)]
    pub no_compress: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}
