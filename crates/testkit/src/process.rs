//! A server process the tests start, stop (as a crash would) and start again.

use std::process::{Child, ExitStatus};

/// The current process of a server, if one runs; killed when dropped.
#[derive(Default)]
pub(crate) struct Process(Option<Child>);

impl Process {
    /// Takes over a freshly spawned process.
    pub fn set(&mut self, child: Child) {
        self.0 = Some(child);
    }

    /// Whether the process is running (started and not stopped or exited).
    pub fn is_running(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills the process (SIGKILL) and waits until it is gone. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
