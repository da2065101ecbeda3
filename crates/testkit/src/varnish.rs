//! A real Varnish for tests: `varnishd -F` on a free 127.0.0.1 port in front of one
//! backend on 127.0.0.1, with a VCL ([`VCL`]) that caches every answer for an hour and takes
//! purges only from localhost: `PURGE <path>` removes that URL (with its `Host`), and `BAN`
//! with `X-Ban-Tags: t1,t2` (tags from the backend's `Cache-Tag` or `Surrogate-Key`),
//! `X-Ban-Prefix: /path/` (with `Host`) or `X-Ban-Site: <site>` (everything) bans. Killed
//! on drop.
//!
//! The binary is `$TIERCACHE_VARNISHD`, else `varnishd` on `PATH`, else `/usr/sbin/varnishd`
//! (scripts/test.sh installs Debian's varnish). A missing binary fails the test; it never
//! skips. The backend goes into the VCL (`varnishd` takes `-b` or `-f`, not both).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::Process;

/// How long varnishd may take to answer after starting (it compiles the VCL with cc).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The VCL, with `BACKEND_PORT` replaced.
pub const VCL: &str = r#"vcl 4.1;

backend default {
    .host = "127.0.0.1";
    .port = "BACKEND_PORT";
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(405, "PURGE not allowed"));
        }
        return (purge);
    }
    if (req.method == "BAN") {
        if (client.ip !~ purgers) {
            return (synth(405, "BAN not allowed"));
        }
        if (req.http.X-Ban-Tags) {
            ban("obj.http.x-cache-tags ~ (^|,)(" + regsuball(req.http.X-Ban-Tags, "\s*,\s*", "|") + ")(,|$)");
            return (synth(200, "Banned tags"));
        }
        if (req.http.X-Ban-Prefix) {
            ban("obj.http.x-host == " + req.http.host + " && obj.http.x-url ~ ^" + req.http.X-Ban-Prefix);
            return (synth(200, "Banned prefix"));
        }
        if (req.http.X-Ban-Site) {
            ban("obj.status != 0");
            return (synth(200, "Banned everything"));
        }
        return (synth(400, "BAN needs X-Ban-Tags, X-Ban-Prefix or X-Ban-Site"));
    }
}

sub vcl_backend_response {
    set beresp.http.x-url = bereq.url;
    set beresp.http.x-host = bereq.http.host;
    if (beresp.http.Cache-Tag) {
        set beresp.http.x-cache-tags = regsuball(beresp.http.Cache-Tag, "\s", "");
    } elsif (beresp.http.Surrogate-Key) {
        set beresp.http.x-cache-tags = regsuball(beresp.http.Surrogate-Key, "\s+", ",");
    }
    set beresp.ttl = 1h;
    set beresp.grace = 0s;
    return (deliver);
}

sub vcl_deliver {
    unset resp.http.x-url;
    unset resp.http.x-host;
    unset resp.http.x-cache-tags;
}
"#;

/// A running varnishd.
pub struct Varnish {
    port: u16,
    dir: tempfile::TempDir,
    child: Process,
}

impl Varnish {
    /// Starts varnishd on a free port in front of `127.0.0.1:<backend_port>` and waits until
    /// it answers.
    pub fn start(backend_port: u16) -> Varnish {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("no free port on 127.0.0.1")
            .port();
        Varnish::start_on(port, backend_port)
    }

    /// Starts varnishd on `port` (chosen ahead, e.g. to put it in a purge provider's config)
    /// in front of `127.0.0.1:<backend_port>`.
    pub fn start_on(port: u16, backend_port: u16) -> Varnish {
        let dir = tempfile::tempdir().expect("temp dir for varnishd");
        let vcl = dir.path().join("test.vcl");
        std::fs::write(&vcl, VCL.replace("BACKEND_PORT", &backend_port.to_string()))
            .expect("writing the VCL");
        let mut v = Varnish {
            port,
            dir,
            child: Process::default(),
        };
        v.spawn(&vcl);
        v
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills varnishd. Idempotent.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// What varnishd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("varnishd.log")
    }

    fn spawn(&mut self, vcl: &Path) {
        let bin = binary();
        let log = std::fs::File::create(self.log_path()).expect("varnishd log file");
        let log2 = log.try_clone().expect("varnishd log file");
        let child = Command::new(&bin)
            .arg("-F")
            .args(["-j", "none"])
            .args(["-a", &format!("127.0.0.1:{}", self.port)])
            .arg("-f")
            .arg(vcl)
            .arg("-n")
            .arg(self.dir.path().join("work"))
            .args(["-s", "malloc,64m", "-T", "none"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "varnishd not found ({}): install it (apt-get install -y varnish, as scripts/test.sh \
                 does) or set TIERCACHE_VARNISHD to its path",
                bin.display()
            ),
            Err(e) => panic!("cannot start {}: {e}", bin.display()),
        };
        self.child.set(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if answers(self.port) {
                return;
            }
            if let Some(status) = self.child.exited() {
                panic!(
                    "varnishd exited with {status} before answering:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "varnishd on port {} did not answer within {START_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether something on `port` answers an HTTP request with a status line.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("BAN / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 ")
}

/// `$TIERCACHE_VARNISHD`, else `varnishd` on `PATH`, else Debian's `/usr/sbin/varnishd`.
fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TIERCACHE_VARNISHD").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("varnishd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/varnishd"))
}
