//! CDN purges that are never lost: a [`PurgeRequest`] (from a deploy, through the
//! [`PurgeSink`] seam, or from `POST /admin/purges`) is validated, written to the durable
//! [`Outbox`] as one job per provider, and delivered by a worker per provider with retries
//! until the provider acknowledges it, across restarts.
//!
//! - `request.rs` the request, the seam and the validation
//! - `config.rs` `[purge]` / `[[purge.providers]]`, resolved (credentials from the environment)
//! - `providers/` Cloudflare, Fastly, HTTP `PURGE`/`BAN` (Varnish, nginx), webhook: plans and judgements
//! - `outbox.rs`, `job.rs`, `atomic.rs` the jobs on disk
//! - `deliver.rs`, `backoff.rs` the workers and their retries
//! - `routes.rs` `GET`/`POST /admin/purges`

pub mod atomic;
pub mod backoff;
pub mod config;
pub mod deliver;
pub mod job;
pub mod outbox;
pub mod providers;
pub mod request;
pub mod routes;
pub mod secret;

pub use config::{PurgeConfig, PurgeFile};
pub use outbox::Outbox;
pub use request::{PurgeRequest, PurgeSink};
