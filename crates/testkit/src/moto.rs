//! A real S3-compatible server for tests: `moto_server` on 127.0.0.1, on a free port, with
//! one bucket, killed on drop. It can be stopped and started again on the same port for
//! fault tests; moto keeps everything in memory, so a restart starts from an empty bucket
//! (which [`Moto::restart`] creates again).
//!
//! Objects can be listed, read, overwritten and damaged behind a client's back with plain
//! unsigned HTTP requests (moto never checks signatures) ([`Moto::list`], [`Moto::get_object`],
//! [`Moto::put_object`], [`Moto::corrupt`]).
//!
//! The binary is `$TIERCACHE_MOTO_SERVER`, else `moto_server` on `PATH` (scripts/test.sh
//! installs it). A missing binary fails the test; it never skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::process::Process;
use std::time::{Duration, Instant};

/// The bucket every test server starts with.
pub const BUCKET: &str = "tiercache-test";
/// An access key id moto accepts (it accepts any).
pub const ACCESS_KEY_ID: &str = "test";
/// A secret access key moto accepts (it accepts any).
pub const SECRET_ACCESS_KEY: &str = "testtest";
/// The region requests are signed for.
pub const REGION: &str = "us-east-1";

/// A well-formed but unsigned `Authorization` header (moto does not verify signatures).
const FAKE_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/s3/aws4_request, \
     SignedHeaders=host, Signature=0000000000000000000000000000000000000000000000000000000000000000";

/// How long one unsigned request may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) moto server.
pub struct Moto {
    binary: PathBuf,
    port: u16,
    child: Process,
}

/// An answer to an unsigned request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
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
            child: Process::default(),
        };
        moto.restart();
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bucket created at start: [`BUCKET`].
    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// Kills the server (SIGKILL, as a crash would); the port stays reserved for
    /// [`Moto::restart`]. Everything stored is lost. Idempotent.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// Starts the server again on the same port (empty: moto keeps nothing) and creates
    /// [`BUCKET`] again.
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
            self.child.set(child);
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
        self.create_bucket(BUCKET);
    }

    /// Creates `bucket` (an error status, e.g. for one that exists, fails the test).
    pub fn create_bucket(&self, bucket: &str) {
        let reply = self.request("PUT", &format!("/{}", encode_path(bucket)), &[]);
        assert!(
            reply.status == 200,
            "creating bucket {bucket} answered HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }

    /// Every object key in [`BUCKET`] starting with `prefix` (all pages), sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.list_paged(prefix, 1000)
    }

    /// Like [`Moto::list`], asking for `page_size` keys per request.
    pub fn list_paged(&self, prefix: &str, page_size: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!(
                "/{BUCKET}?list-type=2&max-keys={page_size}&prefix={}",
                encode_query(prefix)
            );
            if let Some(t) = &token {
                path.push_str(&format!("&continuation-token={}", encode_query(t)));
            }
            let reply = self.request("GET", &path, &[]);
            let xml = String::from_utf8_lossy(&reply.body).into_owned();
            assert!(
                reply.status == 200,
                "listing {prefix:?} answered HTTP {}: {xml}",
                reply.status
            );
            keys.extend(
                xml_values(&xml, "Key")
                    .into_iter()
                    .map(|k| xml_unescape(&k)),
            );
            let truncated = xml_values(&xml, "IsTruncated")
                .first()
                .is_some_and(|v| v == "true");
            token = xml_values(&xml, "NextContinuationToken")
                .into_iter()
                .next()
                .map(|t| xml_unescape(&t));
            if !truncated || token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }

    /// The bytes of object `key` in [`BUCKET`]; `None` if there is no such object.
    pub fn get_object(&self, key: &str) -> Option<Vec<u8>> {
        let reply = self.request("GET", &object_path(key), &[]);
        match reply.status {
            200 => Some(reply.body),
            404 => None,
            s => panic!(
                "GET object {key} answered HTTP {s}: {}",
                String::from_utf8_lossy(&reply.body)
            ),
        }
    }

    /// Writes `bytes` as object `key` in [`BUCKET`] (replacing any object there).
    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        let reply = self.request("PUT", &object_path(key), bytes);
        assert!(
            reply.status == 200,
            "PUT object {key} answered HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }

    /// Deletes object `key` in [`BUCKET`] (absent is fine).
    pub fn delete_object(&self, key: &str) {
        let reply = self.request("DELETE", &object_path(key), &[]);
        assert!(
            reply.status == 204 || reply.status == 200,
            "DELETE object {key} answered HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }

    /// Damages object `key` in place: every byte is inverted, so it keeps its length but no
    /// longer has its content (nor its hash). Returns the original bytes. Panics if the
    /// object does not exist or is empty.
    pub fn corrupt(&self, key: &str) -> Vec<u8> {
        let original = self
            .get_object(key)
            .unwrap_or_else(|| panic!("cannot corrupt {key}: no such object in {BUCKET}"));
        assert!(
            !original.is_empty(),
            "cannot corrupt the empty object {key}"
        );
        let damaged: Vec<u8> = original.iter().map(|b| !b).collect();
        self.put_object(key, &damaged);
        original
    }

    /// Sends an unsigned request to the server (path with its query, already encoded) and
    /// returns its answer; fails the test if the server does not answer.
    pub fn request(&self, method: &str, path_and_query: &str, body: &[u8]) -> Reply {
        self.try_request(method, path_and_query, body)
            .unwrap_or_else(|e| panic!("moto_server did not answer {method} {path_and_query}: {e}"))
    }

    /// True once the server answers; false if its process exited first.
    fn wait_ready(&mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if self.child.exited().is_some() {
                return false;
            }
            if self.try_request("GET", "/", &[]).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn try_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        // moto never checks signatures, but answers 403 to an anonymous GET of an object:
        // any Authorization header makes the request an authenticated one.
        let head = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\n\
             Content-Type: application/octet-stream\r\nAuthorization: {FAKE_AUTHORIZATION}\r\n\
             Connection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse_reply(&raw)
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

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}

/// Splits a whole HTTP/1.1 response (the connection closed after it) into status and body.
fn parse_reply(raw: &[u8]) -> std::io::Result<Reply> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let rest = &raw[end + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len)
            .ok_or_else(|| invalid("body shorter than Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or_else(|| invalid("short chunk"))?);
        raw = raw.get(size + 2..).ok_or_else(|| invalid("short chunk"))?;
    }
}

/// `/<bucket>/<key>` with the key percent-encoded (its `/` kept).
fn object_path(key: &str) -> String {
    format!("/{BUCKET}/{}", encode_path(key))
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_path(s: &str) -> String {
    encode(s, true)
}

fn encode_query(s: &str) -> String {
    encode(s, false)
}

/// The text of every `<tag>…</tag>` in `xml`, in order.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(rest[..j].to_owned());
        rest = &rest[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_with_length_and_chunks() {
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
        let r = parse_reply(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abc"[..]));
    }

    #[test]
    fn keys_are_encoded_and_listings_parsed() {
        assert_eq!(encode_path("a/b c+d~e"), "a/b%20c%2Bd~e");
        assert_eq!(encode_query("a/b"), "a%2Fb");
        let xml = "<R><Contents><Key>a&amp;b</Key></Contents><Contents><Key>c</Key></Contents><IsTruncated>false</IsTruncated></R>";
        let keys: Vec<String> = xml_values(xml, "Key")
            .iter()
            .map(|k| xml_unescape(k))
            .collect();
        assert_eq!(keys, ["a&b", "c"]);
        assert_eq!(xml_values(xml, "IsTruncated"), ["false"]);
    }
}
