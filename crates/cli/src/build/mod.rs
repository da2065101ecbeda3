//! The build cache from the command line: `tiercache hash` (a deterministic key for a
//! build's inputs), `tiercache build save|restore|run|ls` (artifacts on a tiercache
//! server, through its Turborepo v8 API) and `tiercache turbo-config` (turbo itself).
//!
//! Exit codes: 0 success (for `restore` and `run`: also a cache hit); [`MISS`] (3) when
//! `restore` finds no artifact; 1 on errors; `run` passes on its command's exit code.

pub mod archive;
pub mod args;
pub mod key;
pub mod ls;
pub mod remote;
pub mod run;
pub mod select;
pub mod turbo;

use std::process::ExitCode;

use anyhow::Context;

use args::{BuildArgs, BuildCommand, HashArgs, KeyArgs, RestoreArgs, SaveArgs};
use remote::{Fetched, Remote};

/// The exit code of a cache miss: not 1 (errors) nor 2 (what clap uses for bad flags).
pub const MISS: u8 = 3;

/// Prints a note on stderr, as every build command reports progress there.
fn note(text: &str) {
    eprintln!("tiercache: {text}");
}

/// A single-threaded runtime: the commands do one transfer at a time.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The key inputs of `--root/--sources/...`, plus a command line and output globs.
fn inputs(k: &KeyArgs, command: &[std::ffi::OsString], outputs: &[String]) -> key::Inputs {
    key::Inputs {
        root: k.root.clone(),
        sources: k.sources.clone(),
        lockfile: k.lockfile.clone(),
        configs: k.config.clone(),
        env_prefixes: k.env_prefix.clone(),
        command: command.to_vec(),
        outputs: outputs.to_vec(),
    }
}

/// Computes a key from the process's environment, warning about what it skipped.
fn compute(inputs: &key::Inputs) -> anyhow::Result<key::Key> {
    let key = key::compute(inputs, std::env::vars_os())?;
    for w in &key.warnings {
        note(&format!("warning: {w}"));
    }
    Ok(key)
}

/// Runs `tiercache hash`: prints the key of the inputs.
pub fn hash(args: HashArgs) -> anyhow::Result<ExitCode> {
    let key = compute(&inputs(&args.key, &args.command, &args.outputs))?;
    if args.verbose {
        for s in &key.sources {
            eprintln!("source  {s}");
        }
        for (c, present) in &key.configs {
            eprintln!("config  {c}{}", if *present { "" } else { " (missing)" });
        }
        for e in &key.env {
            eprintln!("env     {e}");
        }
        eprintln!(
            "{} sources ({}), {} configs, {} environment variables",
            key.sources.len(),
            bytesize::ByteSize(key.source_bytes),
            key.configs.len(),
            key.env.len()
        );
    }
    crate::stdout::print(&format!("{}\n", key.hex))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `tiercache build ...`.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BuildCommand::Save(a) => save(a).map(|()| ExitCode::SUCCESS),
        BuildCommand::Restore(a) => restore(a),
        BuildCommand::Run(a) => run::run(a),
        BuildCommand::Ls(a) => ls::run(a).map(|()| ExitCode::SUCCESS),
    }
}

/// What a save did.
pub enum Saved {
    Uploaded(archive::Summary),
    /// The server already held the key (artifacts are immutable: the first one stays).
    AlreadyThere,
}

impl Saved {
    /// For the closing message.
    fn describe(&self) -> String {
        match self {
            Saved::Uploaded(s) => format!("saved {} as", s.describe()),
            Saved::AlreadyThere => "already in the cache (not uploaded again):".to_owned(),
        }
    }
}

/// Packs `outputs` under `root` into a temporary file and uploads it as `key`, unless the
/// server already holds `key`.
fn pack_and_upload(
    remote: &Remote,
    rt: &tokio::runtime::Runtime,
    key: &str,
    root: &std::path::Path,
    outputs: &[String],
    duration_ms: u64,
) -> anyhow::Result<Saved> {
    if rt.block_on(remote.exists(key))? {
        return Ok(Saved::AlreadyThere);
    }
    let tmp = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    let summary = archive::pack(root, outputs, &mut tmp.reopen()?)?;
    for w in &summary.warnings {
        note(&format!("warning: {w}"));
    }
    if summary.files + summary.dirs + summary.links == 0 {
        note("warning: the output globs matched nothing; saving an empty artifact");
    }
    rt.block_on(remote.put(key, tmp.path(), duration_ms))?;
    Ok(Saved::Uploaded(summary))
}

fn save(args: SaveArgs) -> anyhow::Result<()> {
    remote::check_key(&args.key)?;
    let remote = Remote::new(&args.remote)?;
    let rt = runtime()?;
    let saved = pack_and_upload(
        &remote,
        &rt,
        &args.key,
        &args.root,
        &args.outputs,
        args.duration_ms,
    )?;
    note(&format!(
        "{} {} (team {})",
        saved.describe(),
        args.key,
        remote.team()
    ));
    Ok(())
}

/// What a restore found.
pub enum Restored {
    Hit(archive::Summary, u64),
    Miss,
}

/// Downloads `key` into a temporary file and unpacks it into `into`.
fn download_and_unpack(
    remote: &Remote,
    rt: &tokio::runtime::Runtime,
    key: &str,
    into: &std::path::Path,
) -> anyhow::Result<Restored> {
    let tmp = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    match rt.block_on(remote.get(key, tmp.path()))? {
        Fetched::Miss => Ok(Restored::Miss),
        Fetched::Hit(size) => {
            let summary = archive::unpack(tmp.path(), into)
                .with_context(|| format!("unpacking the artifact {key}"))?;
            Ok(Restored::Hit(summary, size))
        }
    }
}

fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    remote::check_key(&args.key)?;
    let remote = Remote::new(&args.remote)?;
    let rt = runtime()?;
    match download_and_unpack(&remote, &rt, &args.key, &args.into)? {
        Restored::Miss => {
            note(&format!(
                "cache miss: no artifact {} for team {}",
                args.key,
                remote.team()
            ));
            Ok(ExitCode::from(MISS))
        }
        Restored::Hit(summary, size) => {
            note(&format!(
                "restored {} into {} ({} downloaded)",
                summary.describe(),
                args.into.display(),
                bytesize::ByteSize(size)
            ));
            Ok(ExitCode::SUCCESS)
        }
    }
}
