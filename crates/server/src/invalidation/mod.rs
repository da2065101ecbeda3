//! Invalidation as operators and upstreams ask for it: events that name front-end things
//! (a package, a template, a site, a team's builds, an epoch), the manual purge by selector,
//! and the npm registry's change hooks — all turned into the store's fleet-wide invalidations
//! (or, for a site, a CDN purge).

pub mod event;
pub mod npm_hook;
pub mod routes;
