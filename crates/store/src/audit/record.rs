//! One audit record: who did what to which key, and whether it was allowed. Stored as one
//! JSON object per line (JSON Lines).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tiercache_core::{CacheKey, Decision, Principal, Role, Scope};

use super::AuditError;

/// What the principal did (or tried to do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read an entry's body.
    Read,
    /// Read an entry's metadata.
    Head,
    /// Wrote (stored) an entry.
    Write,
    /// Deleted an entry.
    Delete,
    /// An entry was promoted into a shared scope (identical artifacts from `k` users).
    Promote,
    /// A shared entry was set aside by the leakage scan (removed there, kept for admins).
    Quarantine,
    /// Listed the entries of a scope.
    List,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::Head,
        Action::Write,
        Action::Delete,
        Action::Promote,
        Action::Quarantine,
        Action::List,
    ];

    /// The lowercase name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Head => "head",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Promote => "promote",
            Action::Quarantine => "quarantine",
            Action::List => "list",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                AuditError::Invalid(format!(
                    "unknown action {:?}; one of: {}",
                    s.chars().take(40).collect::<String>(),
                    names.join(", ")
                ))
            })
    }
}

/// Whether the action was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed (and done).
    Allow,
    /// Refused.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The principal's name in the log when it has no user id.
pub const ANONYMOUS: &str = "anonymous";

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The user id of the caller, or `anonymous`.
    pub principal: String,
    /// The caller's role.
    pub role: Role,
    /// The entry, as `<kind>/<name>` (its scope is in `scope`).
    pub key: String,
    /// The entry's scope: `global`, `template/<id>` or `user/<id>`.
    pub scope: String,
    /// What was done or attempted.
    pub action: Action,
    /// Allowed or refused.
    pub decision: Verdict,
    /// Why it was refused (or any other note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AuditRecord {
    /// A record of `who` doing `action` to `key` now, with the access decision's outcome
    /// (a denial's reason becomes the record's reason).
    pub fn new(who: &Principal, key: &CacheKey, action: Action, decision: &Decision) -> Self {
        let (decision, reason) = match decision {
            Decision::Allow => (Verdict::Allow, None),
            Decision::Deny(why) => (Verdict::Deny, Some((*why).to_owned())),
        };
        AuditRecord {
            time_ms: crate::clock::now_ms(),
            principal: principal_name(who).to_owned(),
            role: who.role,
            key: format!("{}/{}", key.kind().as_str(), key.name().as_str()),
            scope: key.scope().to_string(),
            action,
            decision,
            reason,
        }
    }

    /// Whether the record is about a non-global scope (what the audit log keeps).
    pub fn is_scoped(&self) -> bool {
        self.scope != "global"
    }

    /// The record as one JSON line, newline included.
    pub fn to_line(&self) -> Result<Vec<u8>, AuditError> {
        let mut line = serde_json::to_vec(self).map_err(|e| AuditError::Encode(e.to_string()))?;
        line.push(b'\n');
        Ok(line)
    }
}

/// The name a principal is logged under.
pub fn principal_name(who: &Principal) -> &str {
    who.user.as_deref().unwrap_or(ANONYMOUS)
}

/// Whether accesses to `scope` are audited (every scope but global).
pub fn audited(scope: &Scope) -> bool {
    !matches!(scope, Scope::Global)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line_with_lowercase_names() {
        let key = CacheKey::parse("user/alice", "object", "x").unwrap();
        let rec = AuditRecord::new(
            &Principal::anonymous(),
            &key,
            Action::Read,
            &Decision::Deny("another user's scope"),
        );
        let line = String::from_utf8(rec.to_line().unwrap()).unwrap();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["principal"], "anonymous");
        assert_eq!(v["role"], "user");
        assert_eq!(v["action"], "read");
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["scope"], "user/alice");
        assert_eq!(v["key"], "object/x");
        assert_eq!(v["reason"], "another user's scope");
        let back: AuditRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn actions_parse_case_insensitively_and_unknown_ones_are_named() {
        for a in Action::ALL {
            assert_eq!(a.as_str().to_uppercase().parse::<Action>().unwrap(), a);
        }
        let e = "steal".parse::<Action>().unwrap_err().to_string();
        assert!(e.contains("steal") && e.contains("promote"), "{e}");
    }
}
