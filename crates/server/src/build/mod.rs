//! The build cache: the Turborepo remote cache API (v8) over the tiered store.
//!
//! An artifact is stored as one entry (kind `turbo`, name `<team>~<hash>`) whose headers
//! carry `x-artifact-duration`, `x-artifact-tag`, `x-artifact-sha` and
//! `x-artifact-dirty-hash`, so body and metadata are written (and read) together.

pub mod auth;
pub mod error;
pub mod routes;
pub mod stats;

use tiercache_core::{Kind, Name, Principal, Role, Scope};

pub use auth::{Access, Tokens};
pub use error::TurboError;
use stats::BuildStats;
use tiercache_store::Fleet;

/// The kind of artifact entries.
pub const KIND: &str = "turbo";
/// Longest artifact hash accepted (turbo's are 16 hex digits).
pub const MAX_HASH: usize = 128;
/// Longest team id or slug.
pub const MAX_TEAM: usize = 64;
/// Longest signature tag (the spec's limit).
pub const MAX_TAG: usize = 600;

/// Settings of the build cache.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Tokens that may read and write.
    pub tokens: Vec<String>,
    /// Tokens that may only read.
    pub read_only_tokens: Vec<String>,
    /// Largest artifact accepted.
    pub max_artifact_bytes: u64,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            tokens: Vec::new(),
            read_only_tokens: Vec::new(),
            max_artifact_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// The build-cache front-end: who may use it, and what it counted.
pub struct BuildFrontend {
    pub(crate) tokens: Tokens,
    pub(crate) config: BuildConfig,
    pub(crate) stats: BuildStats,
}

impl BuildFrontend {
    /// A front-end with `config`'s tokens and limits; its counters also go to `fleet`.
    pub fn new(config: BuildConfig, fleet: Option<Fleet>) -> Self {
        BuildFrontend {
            tokens: Tokens::new(&config.tokens, &config.read_only_tokens),
            config,
            stats: BuildStats::new(fleet),
        }
    }

    /// Whether tokens are required.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> &BuildStats {
        &self.stats
    }

    /// The settings in force.
    pub fn config(&self) -> &BuildConfig {
        &self.config
    }
}

/// Checks an artifact hash: 1 to [`MAX_HASH`] hex digits.
pub fn check_hash(hash: &str) -> Result<(), TurboError> {
    if hash.is_empty() || hash.len() > MAX_HASH || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TurboError::bad_request(format!(
            "an artifact hash is 1 to {MAX_HASH} hexadecimal digits"
        )));
    }
    Ok(())
}

/// Checks a team id or slug: 1 to [`MAX_TEAM`] of `A-Z a-z 0-9 . _ -`, not starting with `.`.
pub fn check_team(team: &str) -> Result<(), TurboError> {
    let ok = !team.is_empty()
        && team.len() <= MAX_TEAM
        && !team.starts_with('.')
        && team
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TurboError::bad_request(format!(
            "a team (teamId or slug) is 1 to {MAX_TEAM} characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// The kind and name of a team's artifact, in whichever scope it lives.
pub fn artifact_name(team: &str, hash: &str) -> Result<(Kind, Name), TurboError> {
    let kind = Kind::new(KIND).map_err(|e| TurboError::bad_request(e.to_string()))?;
    let name = Name::new(&format!("{team}~{}", hash.to_ascii_lowercase()))
        .map_err(|e| TurboError::bad_request(e.to_string()))?;
    Ok((kind, name))
}

/// Where an upload by `who` goes: an admin's (and a static build token's) to global, a
/// warmer's to its first template (global if it has none), a user's to its own scope.
pub fn write_scope(who: &Principal) -> Option<Scope> {
    match who.role {
        Role::Admin => Some(Scope::Global),
        Role::Warmer => Some(
            who.templates
                .first()
                .and_then(|t| Scope::template(t).ok())
                .unwrap_or(Scope::Global),
        ),
        Role::User => who.own_scope(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_teams() {
        assert!(check_hash("0123456789abcdef").is_ok());
        assert!(check_hash("ABCDEF").is_ok());
        for bad in ["", "xyz", "../etc", "ab cd", &"a".repeat(129)] {
            assert!(check_hash(bad).is_err(), "{bad:?}");
        }
        assert!(check_team("team_abc").is_ok());
        assert!(check_team("my-team.1").is_ok());
        for bad in ["", ".x", "a/b", "a~b", "a%2f", &"t".repeat(65)] {
            assert!(check_team(bad).is_err(), "{bad:?}");
        }
        let (kind, name) = artifact_name("team_a", "ABC1").unwrap();
        assert_eq!((kind.as_str(), name.as_str()), ("turbo", "team_a~abc1"));
    }
}
