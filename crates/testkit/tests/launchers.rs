//! The launchers against the real binaries: objects listed, read, written and corrupted with
//! unsigned requests; stop and restart on the same port.

use tiercache_testkit::moto::{BUCKET, Moto};
use tiercache_testkit::redis::{RedisServer, ping};

#[test]
fn moto_lists_reads_writes_and_corrupts_objects_and_restarts_empty() {
    let mut s3 = Moto::start();
    assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(s3.bucket(), BUCKET);
    assert!(s3.list("").is_empty());

    s3.put_object("p/blobs/ab/abc", b"hello world");
    s3.put_object("p/entries/global/npm-tgz/a~a-1.0.0.tgz", b"{}");
    s3.put_object("q/other file+x", b"x");
    assert_eq!(
        s3.list("p/"),
        ["p/blobs/ab/abc", "p/entries/global/npm-tgz/a~a-1.0.0.tgz"]
    );
    assert_eq!(s3.list("q/"), ["q/other file+x"]);
    assert_eq!(s3.get_object("q/other file+x").as_deref(), Some(&b"x"[..]));
    assert_eq!(s3.get_object("nothing"), None);

    let original = s3.corrupt("p/blobs/ab/abc");
    assert_eq!(original, b"hello world");
    let damaged = s3.get_object("p/blobs/ab/abc").unwrap();
    assert_eq!(damaged.len(), original.len());
    assert_ne!(damaged, original);

    s3.delete_object("q/other file+x");
    assert_eq!(s3.get_object("q/other file+x"), None);

    // Pages are followed.
    for i in 0..5 {
        s3.put_object(&format!("many/{i}"), b"");
    }
    assert_eq!(s3.list_paged("many/", 2), s3.list("many/"));
    assert_eq!(s3.list_paged("many/", 2).len(), 5);

    let port = s3.port();
    s3.stop();
    assert!(!s3.is_running());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    s3.restart();
    assert!(s3.is_running());
    assert_eq!(s3.port(), port);
    // moto keeps nothing; the bucket is there again, empty.
    assert!(s3.list("").is_empty());
}

#[test]
fn redis_stops_and_restarts_on_its_port() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert!(ping(port));
    redis.stop();
    assert!(!redis.is_running());
    assert!(!ping(port));
    redis.restart();
    assert!(redis.is_running());
    assert!(ping(port));
}
