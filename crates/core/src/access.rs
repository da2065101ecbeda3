//! Who is asking, and the sharing rules: which scopes a principal may read and write.
//!
//! The seed's table, in one place:
//! - global: anyone may read (anonymous reads only if enabled); only an admin, a global
//!   warmer, or the server itself (public packages from a verified origin) writes;
//! - template/T: readable by users whose token lists T; written by a warmer of T or an admin;
//! - user/U: read and written by U alone (and an admin).
//!
//! Reads resolve in order: the user's own scope, then the token's templates, then global.

use crate::key::Scope;

/// What a principal may do besides reading its own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A sandbox user: its own scope, read access to its templates and global.
    User,
    /// Fills shared caches: writes the templates its token lists, or global if it lists none.
    Warmer,
    /// Operates the cache: everything, including admin endpoints.
    Admin,
}

/// The caller of a request, as its credentials say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id (the owner of `user/<id>`); `None` for an anonymous caller.
    pub user: Option<String>,
    /// Templates the principal may read (and, as a warmer, write).
    pub templates: Vec<String>,
    /// What else it may do.
    pub role: Role,
    /// Read-only credentials never write anywhere.
    pub read_only: bool,
}

/// An access decision; a denial says why, for the audit log (never for another user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Refused, and the reason.
    Deny(&'static str),
}

impl Decision {
    /// Whether the access is allowed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

impl Principal {
    /// A caller without credentials: may read global only (if the server allows that).
    pub fn anonymous() -> Self {
        Principal {
            user: None,
            templates: Vec::new(),
            role: Role::User,
            read_only: true,
        }
    }

    /// The single user of a server without an auth secret: every scope, every action.
    pub fn local_admin() -> Self {
        Principal {
            user: Some("admin".into()),
            templates: Vec::new(),
            role: Role::Admin,
            read_only: false,
        }
    }

    /// Whether the principal is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The principal's own scope, if it has a user id.
    pub fn own_scope(&self) -> Option<Scope> {
        self.user.as_deref().and_then(|u| Scope::user(u).ok())
    }

    /// Whether it may read entries of `scope`.
    pub fn may_read(&self, scope: &Scope) -> Decision {
        if self.is_admin() {
            return Decision::Allow;
        }
        match scope {
            Scope::Global => Decision::Allow,
            Scope::Template(t) if self.templates.iter().any(|x| x == t) => Decision::Allow,
            Scope::Template(_) => Decision::Deny("the token does not list this template"),
            Scope::User(u) if self.user.as_deref() == Some(u.as_str()) => Decision::Allow,
            Scope::User(_) => Decision::Deny("another user's scope"),
        }
    }

    /// Whether it may write (or delete) entries of `scope`.
    pub fn may_write(&self, scope: &Scope) -> Decision {
        if self.read_only {
            return Decision::Deny("read-only credentials");
        }
        if self.is_admin() {
            return Decision::Allow;
        }
        match (scope, self.role) {
            (Scope::User(u), _) if self.user.as_deref() == Some(u.as_str()) => Decision::Allow,
            (Scope::User(_), _) => Decision::Deny("another user's scope"),
            (Scope::Template(t), Role::Warmer) if self.templates.iter().any(|x| x == t) => {
                Decision::Allow
            }
            (Scope::Template(_), _) => Decision::Deny("only a warmer of this template writes it"),
            (Scope::Global, Role::Warmer) if self.templates.is_empty() => Decision::Allow,
            (Scope::Global, _) => Decision::Deny("only a global warmer or an admin writes global"),
        }
    }

    /// The scopes a read looks in, most private first: the user's own, its templates, global.
    pub fn read_order(&self) -> Vec<Scope> {
        let mut out: Vec<Scope> = self.own_scope().into_iter().collect();
        out.extend(
            self.templates
                .iter()
                .filter_map(|t| Scope::template(t).ok()),
        );
        out.push(Scope::Global);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, templates: &[&str]) -> Principal {
        Principal {
            user: Some(id.into()),
            templates: templates.iter().map(|t| t.to_string()).collect(),
            role: Role::User,
            read_only: false,
        }
    }

    fn t(id: &str) -> Scope {
        Scope::template(id).unwrap()
    }

    fn u(id: &str) -> Scope {
        Scope::user(id).unwrap()
    }

    #[test]
    fn a_user_reads_its_own_its_templates_and_global_and_writes_only_its_own() {
        let alice = user("alice", &["react-vite"]);
        assert!(alice.may_read(&u("alice")).allowed());
        assert!(alice.may_read(&t("react-vite")).allowed());
        assert!(alice.may_read(&Scope::Global).allowed());
        assert!(!alice.may_read(&u("bob")).allowed());
        assert!(!alice.may_read(&t("nextjs")).allowed());
        assert!(alice.may_write(&u("alice")).allowed());
        assert!(!alice.may_write(&u("bob")).allowed());
        assert!(!alice.may_write(&t("react-vite")).allowed());
        assert!(!alice.may_write(&Scope::Global).allowed());
        assert_eq!(
            alice.read_order(),
            vec![u("alice"), t("react-vite"), Scope::Global]
        );
    }

    #[test]
    fn warmers_write_their_templates_or_global_and_read_only_writes_nothing() {
        let mut w = user("ci", &["react-vite"]);
        w.role = Role::Warmer;
        assert!(w.may_write(&t("react-vite")).allowed());
        assert!(!w.may_write(&t("nextjs")).allowed());
        assert!(!w.may_write(&Scope::Global).allowed());
        let mut g = user("ci", &[]);
        g.role = Role::Warmer;
        assert!(g.may_write(&Scope::Global).allowed());
        assert!(!g.may_write(&t("react-vite")).allowed());
        let mut ro = user("alice", &[]);
        ro.read_only = true;
        assert!(!ro.may_write(&u("alice")).allowed());
        assert!(ro.may_read(&u("alice")).allowed());
    }

    #[test]
    fn anonymous_reads_global_only_and_admin_everything() {
        let anon = Principal::anonymous();
        assert!(anon.may_read(&Scope::Global).allowed());
        assert!(!anon.may_read(&u("alice")).allowed());
        assert!(!anon.may_write(&Scope::Global).allowed());
        assert_eq!(anon.read_order(), vec![Scope::Global]);
        let admin = Principal::local_admin();
        assert!(admin.may_read(&u("alice")).allowed());
        assert!(admin.may_write(&t("x")).allowed());
    }
}
