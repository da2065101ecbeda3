//! Template caches (the design's `TemplateCacheConfig`): `[[templates]]` in the config file
//! name a template's shared npm dependencies, its shared build outputs and a warmup command.
//!
//! - `tiercache template warm NAME` prewarms the dependencies through the server's npm proxy,
//!   runs the warmup in a scratch directory and uploads the outputs (a zstd tar) to
//!   [`object_path`] in the template's scope through the object API;
//! - `tiercache template restore NAME DIR` downloads that archive and unpacks it into DIR;
//! - `tiercache template ls` lists the configured templates.
//!
//! The server decides who may do what: a warmer token listing the template (or an admin)
//! writes, a token listing it reads. Exit codes as for `build`: 0, [`MISS`] (3) when
//! `restore` finds nothing, 1 on errors.

pub mod args;
pub mod config;
pub mod ls;
pub mod object;
pub mod restore;
pub mod scratch;
pub mod warm;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

pub use crate::build::MISS;
use args::{ConfigArg, TemplateArgs, TemplateCommand};

/// The kind and name of a template's outputs inside its scope (fixed, so that `restore`
/// needs nothing but the template's name).
pub const OUTPUTS_KEY: &str = "template/outputs.tar.zst";

/// The content type the outputs are stored with.
pub const CONTENT_TYPE: &str = "application/zstd";

/// The object-API path of a template's outputs: `/objects/template/<name>/template/outputs.tar.zst`.
pub fn object_path(name: &str) -> String {
    format!("/objects/template/{name}/{OUTPUTS_KEY}")
}

/// Prints a note on stderr, as the build commands do.
fn note(text: &str) {
    eprintln!("tiercache: {text}");
}

/// A runtime for the transfers (multi-threaded: prewarming spawns its requests).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The config file to read templates from, or an error saying how to name one.
fn config_path(arg: &ConfigArg) -> anyhow::Result<PathBuf> {
    arg.config.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "no config file: pass --config FILE (or set TIERCACHE_CONFIG) with [[templates]]"
        )
    })
}

/// Runs `tiercache template ...`.
pub fn run(args: TemplateArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TemplateCommand::Warm(a) => warm::run(a).map(|()| ExitCode::SUCCESS),
        TemplateCommand::Restore(a) => restore::run(a),
        TemplateCommand::Ls(a) => ls::run(a).map(|()| ExitCode::SUCCESS),
    }
}
