//! `tiercache template warm NAME`: (1) prewarm the template's dependencies through the
//! server's npm proxy; (2) run its warmup in a scratch project whose installs go through the
//! cache; (3) pack the shared build outputs that exist and store them in the template's
//! scope. Any failure stops the command before the upload: nothing half-done is stored.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, bail};

use super::args::WarmArgs;
use super::config::{self, Template};
use super::object::Outputs;
use super::{note, scratch};
use crate::build::archive;
use crate::http;

/// Runs `tiercache template warm`.
pub fn run(args: WarmArgs) -> anyhow::Result<()> {
    let path = super::config_path(&args.config)?;
    let template = config::find(&path, &args.name)?;
    let base = http::server_base(&args.server.server)?;
    let token = args.server.token.as_deref();
    let outputs = Outputs::new(&args.server, &template.name)?;
    let rt = super::runtime()?;

    prewarm(&rt, &base, &template, token)?;

    let registry = format!("{base}/npm/");
    let dir = scratch::prepare(&template, &registry, token)?;
    if let Some(cmd) = &template.warmup {
        note(&format!(
            "running the warmup in {}: {cmd}",
            dir.path().display()
        ));
        let status = warmup(cmd, dir.path(), &registry)?;
        if !status.success() {
            bail!(
                "the warmup of template {:?} failed ({}); nothing was uploaded",
                template.name,
                describe(status)
            );
        }
    }

    if template.outputs.is_empty() {
        note(&format!(
            "template {:?} has no shared_build_outputs: only its dependencies were prewarmed",
            template.name
        ));
        return Ok(());
    }
    let present = present_outputs(&template, dir.path())?;
    let archive = tempfile::NamedTempFile::new().context("creating a temporary file")?;
    let summary = archive::pack(dir.path(), &present, &mut archive.reopen()?)?;
    for w in &summary.warnings {
        note(&format!("warning: {w}"));
    }
    let size = rt.block_on(outputs.put(archive.path()))?;
    note(&format!(
        "stored {} of template {:?} ({} compressed) at {}",
        summary.describe(),
        template.name,
        bytesize::ByteSize(size),
        outputs.url()
    ));
    Ok(())
}

/// Prewarms the shared dependencies with their closure; any failure stops the warm.
fn prewarm(
    rt: &tokio::runtime::Runtime,
    base: &str,
    template: &Template,
    token: Option<&str>,
) -> anyhow::Result<()> {
    if template.dependencies.is_empty() {
        return Ok(());
    }
    note(&format!(
        "prewarming {} shared dependencies of template {:?} and what they depend on",
        template.dependencies.len(),
        template.name
    ));
    let report = rt.block_on(crate::prewarm::prewarm(
        base,
        template.dependencies.clone(),
        true,
        token,
    ))?;
    eprint!("{}", report.render());
    if !report.failures.is_empty() {
        bail!(
            "{} of the shared dependencies could not be prewarmed; nothing was uploaded",
            report.failures.len()
        );
    }
    Ok(())
}

/// Runs `cmd` with `sh -c` in `dir`, its output streamed to ours, installs pointed at
/// `registry` (also through the `.npmrc` the scratch directory holds).
fn warmup(cmd: &str, dir: &Path, registry: &str) -> anyhow::Result<ExitStatus> {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .env("npm_config_registry", registry)
        .env_remove("NPM_CONFIG_REGISTRY")
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting `sh -c {cmd:?}`"))
}

/// "exit code 7" or "killed by signal 9".
fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    status.to_string()
}

/// The outputs that exist under `dir` (a warning for each missing one); an error if none does.
fn present_outputs(template: &Template, dir: &Path) -> anyhow::Result<Vec<String>> {
    let (present, missing): (Vec<String>, Vec<String>) = template
        .outputs
        .iter()
        .cloned()
        .partition(|o| std::fs::symlink_metadata(dir.join(o)).is_ok());
    if present.is_empty() {
        bail!(
            "template {:?} produced none of its shared build outputs ({}); nothing was uploaded",
            template.name,
            missing.join(", ")
        );
    }
    for m in &missing {
        note(&format!(
            "warning: the output {m} does not exist after the warmup; skipped"
        ));
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_outputs_are_skipped_and_none_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let t = Template {
            name: "t".into(),
            dependencies: Vec::new(),
            outputs: vec!["a/b".into(), ".c".into()],
            warmup: None,
            source: None,
        };
        let e = present_outputs(&t, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("none of its shared build outputs (a/b, .c)"),
            "{e}"
        );
        std::fs::create_dir(dir.path().join(".c")).unwrap();
        assert_eq!(present_outputs(&t, dir.path()).unwrap(), [".c"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_warmup_runs_in_the_directory_with_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let status = warmup(
            "pwd > where && echo \"$npm_config_registry\" > reg && exit 4",
            dir.path(),
            "http://h/npm/",
        )
        .unwrap();
        assert_eq!(describe(status), "exit code 4");
        let reg = std::fs::read_to_string(dir.path().join("reg")).unwrap();
        assert_eq!(reg, "http://h/npm/\n");
        assert!(dir.path().join("where").is_file());
    }
}
