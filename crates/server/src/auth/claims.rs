//! What a signed token says: the claims of tiercache's JWTs.
//!
//! ```json
//! {"sub": "alice", "templates": ["react-vite"], "role": "user", "ro": false,
//!  "teams": ["web"], "iat": 1767225600, "exp": 1769817600}
//! ```
//!
//! - `sub`: the user id, the owner of `user/<sub>` (an id: 1–64 of `A-Z a-z 0-9 . _ -`,
//!   not starting with `.`, no `..`);
//! - `templates`: the templates the user may read (a warmer also writes them; a warmer
//!   listing none writes global); each an id as above; may be absent (none);
//! - `role`: `"user"`, `"warmer"` or `"admin"`; absent means `"user"`;
//! - `ro`: read-only credentials never write; absent means `false`;
//! - `teams`: the Turborepo teams the token may use; absent or empty means the user's own
//!   team only, the one named like its user id (an admin may use every team);
//! - `exp` (required) and `iat`: seconds since the Unix epoch.
//!
//! Other claims are ignored; `aud` makes the token invalid (it is not meant for us).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tiercache_core::{Principal, Role, Scope};

/// The claims of a tiercache token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Templates the user may read (and, as a warmer, write).
    #[serde(default)]
    pub templates: Vec<String>,
    /// What else the token may do.
    #[serde(default = "user_role")]
    pub role: Role,
    /// Read-only: never writes.
    #[serde(default)]
    pub ro: bool,
    /// Turborepo teams the token may use; empty = the user's own team (named like `sub`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Issued at, seconds since the Unix epoch (0 if absent).
    #[serde(default)]
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
}

fn user_role() -> Role {
    Role::User
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Claims {
    /// Claims of a read-write token for `user` with `role`, issued now, valid for `ttl`.
    pub fn new(user: impl Into<String>, role: Role, ttl: Duration) -> Self {
        let iat = now_secs();
        Claims {
            sub: user.into(),
            templates: Vec::new(),
            role,
            ro: false,
            teams: Vec::new(),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
        }
    }

    /// Checks that the user id, every template and every team are valid ids.
    pub fn validate(&self) -> Result<(), String> {
        Scope::user(&self.sub).map_err(|e| e.to_string())?;
        for t in &self.templates {
            Scope::template(t).map_err(|e| e.to_string())?;
        }
        for t in &self.teams {
            crate::build::check_team(t).map_err(|_| {
                format!(
                    "a team is 1 to {} characters of A-Z a-z 0-9 . _ -, not starting with '.'",
                    crate::build::MAX_TEAM
                )
            })?;
        }
        Ok(())
    }

    /// The principal these claims describe.
    pub fn principal(&self) -> Principal {
        Principal {
            user: Some(self.sub.clone()),
            templates: self.templates.clone(),
            role: self.role,
            read_only: self.ro,
        }
    }

    /// The Turborepo teams the token may use: `teams`, else the user's own.
    pub fn allowed_teams(&self) -> Vec<String> {
        if self.teams.is_empty() {
            vec![self.sub.clone()]
        } else {
            self.teams.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_take_the_least_privilege() {
        let c: Claims = serde_json::from_str(r#"{"sub":"alice","exp":10}"#).unwrap();
        assert_eq!(c.role, Role::User);
        assert!(c.templates.is_empty() && !c.ro && c.iat == 0);
        assert_eq!(c.allowed_teams(), vec!["alice".to_string()]);
        let p = c.principal();
        assert_eq!(p.user.as_deref(), Some("alice"));
        assert!(!p.is_admin());
    }

    #[test]
    fn ids_are_checked() {
        let mut c = Claims::new("alice", Role::User, Duration::from_secs(60));
        assert!(c.validate().is_ok());
        c.templates = vec!["../x".into()];
        assert!(c.validate().is_err());
        c.templates.clear();
        c.teams = vec!["a b".into()];
        assert!(c.validate().is_err());
        c.teams.clear();
        c.sub = "".into();
        assert!(c.validate().is_err());
        c.sub = ".hidden".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn role_names_are_lowercase() {
        let mut c = Claims::new("ci", Role::Warmer, Duration::from_secs(60));
        c.teams = vec!["web".into()];
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["role"], "warmer");
        assert_eq!(v["teams"][0], "web");
        assert!(serde_json::from_str::<Claims>(r#"{"sub":"a","exp":1,"role":"root"}"#).is_err());
    }
}
