//! Flags of `tiercache hash`, `tiercache build ...` and `tiercache turbo-config`, kept
//! beside the build commands so `cli.rs` only has to name them.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// What goes into a build key (see `key.rs` for the exact byte stream).
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The directory globs and relative --lockfile/--config paths are relative to.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Source files, as globs relative to --root (quote them: 'src/**/*.ts'); `!GLOB` excludes.
    #[arg(long, value_name = "GLOB", num_args = 1.., action = clap::ArgAction::Append)]
    pub sources: Vec<String>,
    /// The lockfile whose content stands for the dependencies (must exist).
    #[arg(long, value_name = "FILE")]
    pub lockfile: Option<PathBuf>,
    /// Config files (tsconfig.json, vite.config.ts, ...); missing ones count as absent.
    #[arg(long, value_name = "FILE", num_args = 1.., action = clap::ArgAction::Append)]
    pub config: Vec<PathBuf>,
    /// Environment variables whose names start with one of these go into the key.
    #[arg(
        long,
        value_name = "PREFIX",
        num_args = 1..,
        action = clap::ArgAction::Append,
        default_values_t = [String::from("NODE_"), String::from("VITE_")]
    )]
    pub env_prefix: Vec<String>,
}

/// Flags of `tiercache hash`.
#[derive(Args, Debug)]
pub struct HashArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Output globs, only to reproduce the key `tiercache build run` uses (they are part of it).
    #[arg(long, value_name = "GLOB", num_args = 1.., action = clap::ArgAction::Append)]
    pub outputs: Vec<String>,
    /// List the files that went into the key (on stderr).
    #[arg(long, short)]
    pub verbose: bool,
    /// The command line, only to reproduce the key `tiercache build run -- CMD` uses.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Where the build cache is and who is asking.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The tiercache server.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// The team (namespace) artifacts belong to.
    #[arg(long, env = "TIERCACHE_TEAM", default_value = "default")]
    pub team: String,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `tiercache build <command>`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(subcommand)]
    pub command: BuildCommand,
}

/// The build-cache commands.
#[derive(Subcommand, Debug)]
pub enum BuildCommand {
    /// Pack output files into a zstd tar and upload it under a key.
    Save(SaveArgs),
    /// Download the artifact of a key and unpack it (exit 3 on a miss).
    Restore(RestoreArgs),
    /// Restore a command's outputs from the cache, or run it and save them.
    Run(RunArgs),
    /// List the artifacts a server holds.
    Ls(LsArgs),
}

/// Flags of `tiercache build save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// The artifact key: 1 to 128 hex digits (e.g. from `tiercache hash`).
    #[arg(long)]
    pub key: String,
    /// Output files and directories, as globs relative to --root; `!GLOB` excludes.
    #[arg(long, value_name = "GLOB", required = true, num_args = 1.., action = clap::ArgAction::Append)]
    pub outputs: Vec<String>,
    /// The directory the globs are relative to (and paths in the archive).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// How long producing the outputs took, in ms (shown by `build ls`).
    #[arg(long, default_value_t = 0)]
    pub duration_ms: u64,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Flags of `tiercache build restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The artifact key: 1 to 128 hex digits.
    #[arg(long)]
    pub key: String,
    /// Where to unpack (created if missing; existing files are overwritten).
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// Flags of `tiercache build run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub key: KeyArgs,
    /// Output files and directories the command produces, as globs relative to --root.
    #[arg(long, value_name = "GLOB", required = true, num_args = 1.., action = clap::ArgAction::Append)]
    pub outputs: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// The command to run on a miss, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Flags of `tiercache build ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// The tiercache server.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub server: String,
    /// Only this team's artifacts [default: every team].
    #[arg(long, env = "TIERCACHE_TEAM")]
    pub team: Option<String>,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "TIERCACHE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `tiercache turbo-config`.
#[derive(Args, Debug)]
pub struct TurboConfigArgs {
    /// The turbo workspace root (where turbo.json is); DIR/.turbo/config.json is written.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The tiercache server turbo should use as its remote cache.
    #[arg(long, env = "TIERCACHE_SERVER", default_value = crate::http::DEFAULT_SERVER)]
    pub api: String,
    /// The team; written as `teamid` when it starts with `team_`, else as `teamslug`.
    #[arg(long, env = "TIERCACHE_TEAM", default_value = "default")]
    pub team: String,
    /// A file holding the token; it is written into config.json (turbo reads it there).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}
