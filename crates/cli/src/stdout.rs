//! Command output on stdout: written in one go, and a reader that went away
//! (`tiercache stats --json | head`) ends the output quietly instead of panicking.

use std::io::Write;

/// Writes `text` to stdout; a closed pipe is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
