//! Cache keys: `(scope, kind, name)`, validated so that no part can escape its
//! place in a path, a URL or an index.
//!
//! Character sets (documented in the README and checked here):
//! - scope: `global`, `template/<id>` or `user/<id>`; `<id>` is 1–64 bytes of
//!   `A-Z a-z 0-9 . _ -`, not starting with `.`;
//! - kind: 1–32 bytes of `a-z 0-9 -`, starting with a letter (`npm`, `build`, `asset`, `object`, …);
//! - name: 1–512 bytes of `A-Z a-z 0-9 . _ - + @ = ~ ,`, not starting with `.`.
//!
//! Anywhere: no `/`, no `..`, no `%`, no NUL or other control bytes, no whitespace.

use std::fmt;

/// Why a key (or one of its parts) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{part} is empty")]
    Empty { part: &'static str },
    #[error("{part} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        part: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{part} contains the character {ch:?}, which is not allowed there")]
    BadChar { part: &'static str, ch: char },
    #[error("{part} must not contain \"..\"")]
    DotDot { part: &'static str },
    #[error("{part} must not start with '.'")]
    LeadingDot { part: &'static str },
    #[error("{part} must start with a lowercase letter")]
    BadStart { part: &'static str },
    #[error("unknown scope {0:?}: expected global, template/<id> or user/<id>")]
    UnknownScope(String),
}

/// Longest template or user id.
pub const MAX_ID_LEN: usize = 64;
/// Longest kind.
pub const MAX_KIND_LEN: usize = 32;
/// Longest entry name.
pub const MAX_NAME_LEN: usize = 512;

fn check(
    part: &'static str,
    s: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), KeyError> {
    if s.is_empty() {
        return Err(KeyError::Empty { part });
    }
    if s.len() > max {
        return Err(KeyError::TooLong {
            part,
            len: s.len(),
            max,
        });
    }
    if let Some(ch) = s.chars().find(|c| !allowed(*c)) {
        return Err(KeyError::BadChar { part, ch });
    }
    if s.contains("..") {
        return Err(KeyError::DotDot { part });
    }
    if s.starts_with('.') {
        return Err(KeyError::LeadingDot { part });
    }
    Ok(())
}

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks `s` as an id (template and user ids, site names): 1–64 of `A-Z a-z 0-9 . _ -`,
/// no `..`, not starting with `.`; `part` names it in the error.
pub(crate) fn check_id(part: &'static str, s: &str) -> Result<(), KeyError> {
    check(part, s, MAX_ID_LEN, id_char)
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@' | '=' | '~' | ',')
}

/// Who may see an entry: everyone, the users of one template, or one user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Shared by every user (public packages).
    Global,
    /// Shared by the users of one sandbox template.
    Template(String),
    /// Private to one user.
    User(String),
}

impl Scope {
    /// A template scope, if `id` is a valid id.
    pub fn template(id: &str) -> Result<Self, KeyError> {
        check("template id", id, MAX_ID_LEN, id_char)?;
        Ok(Scope::Template(id.to_owned()))
    }

    /// A user scope, if `id` is a valid id.
    pub fn user(id: &str) -> Result<Self, KeyError> {
        check("user id", id, MAX_ID_LEN, id_char)?;
        Ok(Scope::User(id.to_owned()))
    }

    /// Parses `global`, `template/<id>` or `user/<id>`.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        match s.split_once('/') {
            None if s == "global" => Ok(Scope::Global),
            Some(("template", id)) => Scope::template(id),
            Some(("user", id)) => Scope::user(id),
            _ => Err(KeyError::UnknownScope(truncate(s))),
        }
    }
}

/// Error messages echo at most this much of hostile input.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Template(t) => write!(f, "template/{t}"),
            Scope::User(u) => write!(f, "user/{u}"),
        }
    }
}

/// The namespace of an entry (`npm`, `build`, `asset`, `object`), so front-ends never collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(String);

impl Kind {
    /// A kind, if `s` is valid.
    pub fn new(s: &str) -> Result<Self, KeyError> {
        check("kind", s, MAX_KIND_LEN, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        })?;
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(KeyError::BadStart { part: "kind" });
        }
        Ok(Kind(s.to_owned()))
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of an entry within its scope and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// A name, if `s` is valid.
    pub fn new(s: &str) -> Result<Self, KeyError> {
        check("name", s, MAX_NAME_LEN, name_char)?;
        Ok(Name(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The address of one cache entry; its text form (`<scope>/<kind>/<name>`) is unambiguous
/// because no part may contain `/` (except the scope's own separator).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    scope: Scope,
    kind: Kind,
    name: Name,
}

impl CacheKey {
    /// A key from already-validated parts.
    pub fn new(scope: Scope, kind: Kind, name: Name) -> Self {
        CacheKey { scope, kind, name }
    }

    /// Validates and assembles a key from its three texts.
    pub fn parse(scope: &str, kind: &str, name: &str) -> Result<Self, KeyError> {
        Ok(CacheKey::new(
            Scope::parse(scope)?,
            Kind::new(kind)?,
            Name::new(name)?,
        ))
    }

    /// Parses the text form `<scope>/<kind>/<name>` (the inverse of `Display`).
    pub fn parse_path(path: &str) -> Result<Self, KeyError> {
        let (scope, rest) = if let Some(rest) = path.strip_prefix("global/") {
            ("global", rest)
        } else {
            let mut parts = path.splitn(3, '/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(s @ ("template" | "user")), Some(id), Some(rest)) => {
                    let end = s.len() + 1 + id.len();
                    (&path[..end], rest)
                }
                _ => return Err(KeyError::UnknownScope(truncate(path))),
            }
        };
        match rest.split_once('/') {
            Some((kind, name)) => CacheKey::parse(scope, kind, name),
            None if rest.is_empty() => Err(KeyError::Empty { part: "kind" }),
            None => Err(KeyError::Empty { part: "name" }),
        }
    }

    /// Who may see this entry.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Which front-end's namespace it belongs to.
    pub fn kind(&self) -> &Kind {
        &self.kind
    }

    /// Its name inside scope and kind.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.scope, self.kind.0, self.name.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_round_trip() {
        for text in [
            "global/npm/react",
            "global/npm/@types+react",
            "template/next-js_14/build/abc123",
            "user/u-42/object/a.b_c-d+e@f=g~h,i",
        ] {
            let key = CacheKey::parse_path(text).expect(text);
            assert_eq!(key.to_string(), text);
        }
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(Scope::parse("global"), Ok(Scope::Global));
        assert_eq!(Scope::parse("user/alice"), Ok(Scope::User("alice".into())));
        assert_eq!(
            Scope::parse("template/vite"),
            Ok(Scope::Template("vite".into()))
        );
        for bad in [
            "",
            "globals",
            "global/x",
            "team/x",
            "user/",
            "user/a/b",
            "template/..",
            "USER/a",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/../b",
            "a/b",
            "a%2fb",
            "%2e%2e",
            "a\0b",
            "a\nb",
            "a b",
            "a\\b",
            ".hidden",
            "x..y",
            "ä",
            "a\u{202e}b",
            long.as_str(),
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Name::new(&"a".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn hostile_ids_and_kinds_are_refused() {
        for bad in [
            "",
            "..",
            ".x",
            "a/b",
            "a%00",
            "a\0",
            &"u".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(Scope::user(bad).is_err(), "user {bad:?} accepted");
            assert!(Scope::template(bad).is_err(), "template {bad:?} accepted");
        }
        for bad in [
            "",
            "NPM",
            "1npm",
            "-x",
            "n_p",
            "n/p",
            "n.p",
            &"k".repeat(33),
        ] {
            assert!(Kind::new(bad).is_err(), "kind {bad:?} accepted");
        }
    }

    #[test]
    fn parse_path_errors_name_the_part() {
        assert_eq!(
            CacheKey::parse_path("global/npm"),
            Err(KeyError::Empty { part: "name" })
        );
        assert_eq!(
            CacheKey::parse_path("global/npm/"),
            Err(KeyError::Empty { part: "name" })
        );
        assert!(matches!(
            CacheKey::parse_path("users/x/npm/y"),
            Err(KeyError::UnknownScope(_))
        ));
        assert!(matches!(
            CacheKey::parse_path("global/npm/a/b"),
            Err(KeyError::BadChar {
                part: "name",
                ch: '/'
            })
        ));
    }

    #[test]
    fn error_messages_do_not_echo_unbounded_input() {
        let huge = "x".repeat(10_000);
        let err = Scope::parse(&huge).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }
}
