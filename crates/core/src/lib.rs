//! The domain of tiercache: what a cache key is, which scope it lives in, what is
//! known about a stored entry, and the policies that decide its lifetime.
//!
//! Nothing here performs I/O, so every rule can be tested (and trusted) on its own.

pub mod access;
pub mod assets;
pub mod entry;
pub mod hash;
pub mod key;
pub mod policy;
pub mod selector;

pub use access::{Decision, Principal, Role};
pub use entry::{EntryMeta, Headers, PutOptions};
pub use hash::{ContentHash, ContentHasher};
pub use key::{CacheKey, KeyError, Kind, Name, Scope};
pub use policy::{DiskSync, L1Policy, L2Policy, Ttl};
pub use selector::{Selector, SelectorError};
