//! Test support shared by tiercache's crates: real S3 (moto), Redis and Varnish servers on 127.0.0.1.

/// A real S3-compatible server (`moto_server`) on a free loopback port, with one bucket.
pub mod moto;
/// A real `redis-server` (and a small Redis Cluster) on free loopback ports.
pub mod redis;
/// Credential-shaped test inputs made at run time.
pub mod secrets;
/// A real `varnishd` in front of a backend on 127.0.0.1, taking PURGE and BAN from localhost.
pub mod varnish;

mod process;
