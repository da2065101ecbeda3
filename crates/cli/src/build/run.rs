//! `tiercache build run -- CMD`: restore the command's outputs from the cache, or run it
//! and save them. The cache only ever saves time: a server that is down, refuses the
//! token or answers nonsense is a warning, and the command runs as if it were not there.

use std::ffi::OsString;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use super::args::RunArgs;
use super::remote::Remote;
use super::{Restored, download_and_unpack, inputs, note, pack_and_upload, runtime};

/// How long to try to reach the cache before building without it.
const CONNECT: Duration = Duration::from_secs(3);

/// The command line as a person would type it (for messages only).
fn shown(command: &[OsString]) -> String {
    command
        .iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
                format!("{a:?}")
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The exit code a shell would give for `status` (128 + signal when killed).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + (sig & 0x7f)).unwrap_or(1);
        }
    }
    1
}

/// Runs `tiercache build run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let inputs = inputs(&args.key, &args.command, &args.outputs);
    if inputs.sources.is_empty() {
        note(
            "warning: no --sources: the key covers only the lockfile, configs, environment and command",
        );
    }
    let key = super::compute(&inputs)?;
    let cmd = shown(&args.command);
    let remote = Remote::with_connect_timeout(&args.remote, CONNECT)?;
    let rt = runtime()?;

    match download_and_unpack(&remote, &rt, &key.hex, &args.key.root) {
        Ok(Restored::Hit(summary, _)) => {
            note(&format!(
                "cache hit {}: restored {}; skipped `{cmd}`",
                key.hex,
                summary.describe()
            ));
            return Ok(ExitCode::SUCCESS);
        }
        Ok(Restored::Miss) => note(&format!("cache miss {}: running `{cmd}`", key.hex)),
        Err(e) => note(&format!(
            "warning: cache unavailable ({e:#}); running `{cmd}`"
        )),
    }

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given after --"))?;
    let started = Instant::now();
    let status = match Command::new(program).args(rest).status() {
        Ok(s) => s,
        Err(e) => {
            note(&format!("cannot run `{cmd}`: {e}"));
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(ExitCode::from(code));
        }
    };
    let took = started.elapsed();
    if !status.success() {
        let code = exit_code(status);
        note(&format!("`{cmd}` failed (exit {code}); nothing saved"));
        return Ok(ExitCode::from(code));
    }
    let duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match pack_and_upload(
        &remote,
        &rt,
        &key.hex,
        &args.key.root,
        &args.outputs,
        duration_ms,
    ) {
        Ok(saved) => note(&format!("{} {}", saved.describe(), key.hex)),
        Err(e) => note(&format!("warning: outputs not saved ({e:#})")),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_shown_as_typed() {
        let c: Vec<OsString> = ["sh", "-c", "echo hi", ""]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(shown(&c), r#"sh -c "echo hi" """#);
    }
}
