//! Flags of `tiercache template ...`, kept beside the commands so `cli.rs` only names them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `tiercache template <command>`.
#[derive(Args, Debug)]
pub struct TemplateArgs {
    #[command(subcommand)]
    pub command: TemplateCommand,
}

/// The template-cache commands.
#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Prewarm a template's dependencies, run its warmup in a scratch directory and store its
    /// build outputs in the template's scope.
    Warm(WarmArgs),
    /// Restore a template's shared build outputs into a directory (exit 3 on a miss).
    Restore(RestoreArgs),
    /// List the templates of the config file.
    Ls(LsArgs),
}

/// The config file that holds `[[templates]]`.
#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// TOML config file with [[templates]] (the server's file works).
    #[arg(long, env = "TIERCACHE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Where the server is and who is asking.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The tiercache server.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// Bearer token, when the server requires one (warm: a warmer of the template, or an admin).
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Flags of `tiercache template warm`.
#[derive(Args, Debug)]
pub struct WarmArgs {
    /// The template's name, as in the config file.
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `tiercache template restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The template's name (a token listing it may read its cache).
    pub name: String,
    /// Where to unpack (created if missing; existing files are overwritten).
    pub dir: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Flags of `tiercache template ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}
