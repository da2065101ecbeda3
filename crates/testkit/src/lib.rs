//! Test support shared by tiercache's crates: real S3 (moto) and Redis servers on 127.0.0.1.

/// A real S3-compatible server (`moto_server`) on a free loopback port, with one bucket.
pub mod moto;
/// A real `redis-server` (and a small Redis Cluster) on free loopback ports.
pub mod redis;

mod process;
