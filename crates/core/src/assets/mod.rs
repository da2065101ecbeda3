//! Static asset hosting, the pure parts: site names, paths inside a deploy, content types,
//! content-hashed file names and the Cache-Control rules. The server and the `deploy`
//! command both use them, so a path or a rule means the same on either side.

pub mod cache_rules;
pub mod content_type;
pub mod hashed_name;
pub mod pattern;
pub mod site;
pub mod site_path;

pub use cache_rules::{CacheRule, Directives, RuleSet, Visibility};
pub use hashed_name::is_hashed;
pub use pattern::{PathPattern, PatternError};
pub use site::SiteName;
pub use site_path::{PathError, SitePath};
