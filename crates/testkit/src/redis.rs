//! A real `redis-server` for tests: started on a free loopback port, killed on drop, and
//! stoppable and restartable on the same port (fault tests). Also a small Redis Cluster.
//!
//! The binary comes from `TIERCACHE_REDIS_SERVER` or `PATH`; a missing one fails the test
//! with a message saying how to install it (scripts/test.sh installs Debian's redis-server).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process::Process;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after starting.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The redis-server binary to run: `$TIERCACHE_REDIS_SERVER` (which must exist), else
/// `redis-server` (looked up on `PATH` when started).
fn server_bin() -> PathBuf {
    match std::env::var_os("TIERCACHE_REDIS_SERVER").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "TIERCACHE_REDIS_SERVER={} is not a file: install redis-server (apt-get install \
                 -y redis-server, as scripts/test.sh does) or point it at the binary",
                path.display()
            );
            path
        }
        None => PathBuf::from("redis-server"),
    }
}

/// redis-cli: beside an explicitly configured redis-server, else from PATH.
fn cli_bin() -> PathBuf {
    match std::env::var_os("TIERCACHE_REDIS_SERVER")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
    {
        Some(server) => server
            .parent()
            .map(|dir| dir.join("redis-cli"))
            .filter(|cli| cli.exists())
            .unwrap_or_else(|| PathBuf::from("redis-cli")),
        None => PathBuf::from("redis-cli"),
    }
}

/// A port in 20000..40000 that is free now, and whose cluster bus port (+10000) is too.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let port = 20_000 + rand::random::<u16>() % 20_000;
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free loopback port found for redis-server");
}

/// One redis-server process.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Process,
}

impl RedisServer {
    /// A standalone server on a free port, answering PING.
    pub fn start() -> RedisServer {
        Self::start_with(free_port(), &[])
    }

    /// A server on `port` with extra arguments, answering PING.
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir for redis-server");
        let mut server = RedisServer {
            port,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: Process::default(),
        };
        server.restart();
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL for redis-rs.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Kills the process (as a crash would) and waits until it is gone. Idempotent.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Starts it (again) on the same port and waits until it answers PING. Nothing is
    /// persisted, so it starts empty.
    pub fn restart(&mut self) {
        self.stop();
        let bin = server_bin();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("redis-server log file");
        let log2 = log.try_clone().expect("redis-server log file");
        let child = Command::new(&bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server not found ({}): install it (apt-get install -y redis-server, as \
                 scripts/test.sh does) or set TIERCACHE_REDIS_SERVER to its path",
                bin.display()
            ),
            Err(e) => panic!("cannot start {}: {e}", bin.display()),
        };
        self.child.set(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ping(self.port) {
                return;
            }
            if let Some(status) = self.child.exited() {
                let out = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                panic!(
                    "redis-server on port {} exited with {status} before answering PING:\n{out}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {START_TIMEOUT:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Its working directory (cluster config files live there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Whether a server on `port` answers PING now.
pub fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// A Redis Cluster of `n` masters without replicas, all slots assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` cluster-enabled servers and joins them with `redis-cli --cluster create`.
    pub fn start(n: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..n)
            .map(|_| {
                RedisServer::start_with(
                    free_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let cli = cli_bin();
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli.display()));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_ok(&cli);
        cluster
    }

    /// Waits until every node reports `cluster_state:ok`.
    fn wait_ok(&self, cli: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        for node in &self.nodes {
            loop {
                let out = Command::new(cli)
                    .args(["-p", &node.port().to_string(), "cluster", "info"])
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run {}: {e}", cli.display()));
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "redis cluster did not reach cluster_state:ok within {START_TIMEOUT:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The comma-separated seed URLs.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
