//! A real S3-compatible server for tests: `moto_server` on 127.0.0.1, on a free port, with
//! one bucket, killed on drop. It can be stopped and started again on the same port for
//! fault tests; moto keeps everything in memory, so a restart starts from an empty bucket.
//!
//! The binary is `$TIERCACHE_MOTO_SERVER`, else `moto_server` on `PATH` (scripts/test.sh
//! installs it). A missing binary fails the test; it never skips.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket every test server starts with.
pub const BUCKET: &str = "tiercache-test";

/// A running (or stopped) moto server.
pub struct Moto {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Moto {
    /// Starts a server on a free port and creates [`BUCKET`].
    pub fn start() -> Moto {
        let binary = find_binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free port on 127.0.0.1")
            .port();
        let mut moto = Moto {
            binary,
            port,
            child: None,
        };
        moto.restart();
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server; the port stays reserved for [`Moto::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty) and creates [`BUCKET`].
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let child = Command::new(&self.binary)
                .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
            self.child = Some(child);
            if self.wait_ready(deadline) {
                break;
            }
            // The port may still be held by the previous process: try again.
            self.stop();
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = self.request("PUT", &format!("/{BUCKET}"));
        assert!(
            status == 200,
            "creating bucket {BUCKET} answered HTTP {status}"
        );
    }

    /// True once the server answers; false if its process exited first.
    fn wait_ready(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false;
            }
            if self.try_request("GET", "/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// An unsigned request; its HTTP status.
    fn request(&self, method: &str, path: &str) -> u16 {
        self.try_request(method, path)
            .unwrap_or_else(|| panic!("moto_server did not answer {method} {path}"))
    }

    fn try_request(&self, method: &str, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        text.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn find_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TIERCACHE_MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TIERCACHE_MOTO_SERVER={} is not a file; install moto (scripts/test.sh does: pip install 'moto[server]==5.2.5')",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "moto_server not found: set TIERCACHE_MOTO_SERVER or put moto_server on PATH \
                 (scripts/test.sh installs it: pip install 'moto[server]==5.2.5')"
            )
        })
}
