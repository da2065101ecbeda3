//! npm package names and request paths: what clients send, what we accept, and how a
//! name becomes a cache key and an upstream path.
//!
//! Accepted names: optional `@scope/`, then 1–214 bytes in all of `a-z A-Z 0-9 - . _ ~`,
//! not starting with `.` or `_` (npm's URL-safe set; the few legacy names with `!*'()` are
//! refused). Scoped names arrive as `@scope%2fname`, `@scope%2Fname` or `@scope/name`;
//! `%40` for `@` is accepted too. Any other percent-escape is refused.

use tiercache_core::{CacheKey, Kind, Name, Scope};

/// Longest package name npm allows.
const MAX_NAME: usize = 214;

/// A validated npm package name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackageName {
    full: String,
    scope: Option<String>,
}

/// What a request under `/npm/` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpmPath {
    /// A packument.
    Packument(PackageName),
    /// A tarball, by the basename its packument names.
    Tarball(PackageName, String),
    /// A registry endpoint under `/-/` (ping, audit, search).
    Special(String),
}

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadName(pub String);

fn part_ok(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.starts_with('_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl PackageName {
    /// Validates `name` (`pkg` or `@scope/pkg`).
    pub fn parse(name: &str) -> Result<Self, BadName> {
        if name.len() > MAX_NAME {
            return Err(BadName(format!(
                "package names are at most {MAX_NAME} characters"
            )));
        }
        let (scope, pkg) = match name.strip_prefix('@') {
            Some(rest) => match rest.split_once('/') {
                Some((scope, pkg)) => (Some(scope), pkg),
                None => return Err(BadName("a scoped name is @scope/name".into())),
            },
            None => (None, name),
        };
        if scope.is_some_and(|s| !part_ok(s)) || !part_ok(pkg) {
            return Err(BadName(format!(
                "invalid package name {:?}: use a-z A-Z 0-9 - . _ ~, not starting with . or _",
                name.chars().take(80).collect::<String>()
            )));
        }
        Ok(PackageName {
            full: name.to_owned(),
            scope: scope.map(|s| format!("@{s}")),
        })
    }

    /// The name as npm writes it.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// `@scope`, if scoped.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The path segment for the upstream registry: `@scope%2fname` for scoped names.
    pub fn escaped(&self) -> String {
        self.full.replacen('/', "%2f", 1)
    }

    /// The name without its scope (the tarball basename's prefix).
    pub fn bare(&self) -> &str {
        self.full.rsplit('/').next().unwrap_or(&self.full)
    }

    /// The cache key of one of this package's entries, in `scope`.
    pub fn key(
        &self,
        scope: &Scope,
        kind: &str,
        suffix: Option<&str>,
    ) -> Result<CacheKey, BadName> {
        let base = self.full.replacen('/', "+", 1);
        let name = match suffix {
            Some(s) => format!("{base}~{s}"),
            None => base,
        };
        let kind = Kind::new(kind).map_err(|e| BadName(e.to_string()))?;
        let name = Name::new(&name).map_err(|e| BadName(e.to_string()))?;
        Ok(CacheKey::new(scope.clone(), kind, name))
    }
}

impl std::fmt::Display for PackageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.full)
    }
}

/// Checks a tarball basename (`name-1.2.3.tgz`).
pub fn tarball_basename(s: &str) -> Result<&str, BadName> {
    let ok = s.len() <= 256 && s.ends_with(".tgz") && part_ok(s) && !s.contains("..");
    if ok {
        Ok(s)
    } else {
        Err(BadName(format!(
            "invalid tarball name {:?}",
            s.chars().take(80).collect::<String>()
        )))
    }
}

/// Decodes the few escapes clients use in names (`%2f`, `%2F`, `%40`); refuses any other.
fn decode(path: &str) -> Result<String, BadName> {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3).unwrap_or("");
        match esc {
            "%2f" | "%2F" => out.push('/'),
            "%40" => out.push('@'),
            _ => {
                return Err(BadName(
                    "only %2f and %40 may be percent-encoded in npm paths".into(),
                ));
            }
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses the path after `/npm/`.
pub fn parse_path(raw: &str) -> Result<NpmPath, BadName> {
    let path = decode(raw)?;
    if let Some(special) = path.strip_prefix("-/") {
        return Ok(NpmPath::Special(special.to_owned()));
    }
    let segments: Vec<&str> = path.split('/').collect();
    let (name_len, rest) = if path.starts_with('@') {
        (2, segments.get(2..).unwrap_or(&[]))
    } else {
        (1, segments.get(1..).unwrap_or(&[]))
    };
    if segments.len() < name_len {
        return Err(BadName("a scoped name is @scope/name".into()));
    }
    let name = PackageName::parse(&segments[..name_len].join("/"))?;
    match rest {
        [] => Ok(NpmPath::Packument(name)),
        ["-", base] => Ok(NpmPath::Tarball(name, tarball_basename(base)?.to_owned())),
        _ => Err(BadName(format!(
            "unsupported npm path {:?}",
            path.chars().take(120).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scoped_form_is_one_name() {
        let want = NpmPath::Packument(PackageName::parse("@types/react").unwrap());
        for p in [
            "@types%2freact",
            "@types%2Freact",
            "@types/react",
            "%40types%2freact",
        ] {
            assert_eq!(parse_path(p), Ok(want.clone()), "{p}");
        }
    }

    #[test]
    fn tarballs_in_every_shape() {
        let scoped = PackageName::parse("@acme/util").unwrap();
        for p in [
            "@acme/util/-/util-1.0.0.tgz",
            "@acme%2futil/-/util-1.0.0.tgz",
        ] {
            assert_eq!(
                parse_path(p),
                Ok(NpmPath::Tarball(scoped.clone(), "util-1.0.0.tgz".into()))
            );
        }
        assert_eq!(
            parse_path("react/-/react-18.2.0.tgz"),
            Ok(NpmPath::Tarball(
                PackageName::parse("react").unwrap(),
                "react-18.2.0.tgz".into()
            ))
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in [
            "",
            "..",
            "../etc",
            ".bin",
            "_hidden",
            "a%00b",
            "a%2e%2e",
            "react/-/..",
            "react/-/x.tar",
            "react/-/../../x.tgz",
            "@scope",
            "@/x",
            "a b",
            "react/1.0.0/extra",
            &"a".repeat(215),
        ] {
            assert!(parse_path(p).is_err(), "{p:?} accepted");
        }
    }

    #[test]
    fn keys_and_upstream_paths() {
        let n = PackageName::parse("@types/react").unwrap();
        assert_eq!(n.escaped(), "@types%2freact");
        assert_eq!(n.bare(), "react");
        assert_eq!(
            n.key(&Scope::Global, "npm-tgz", Some("react-18.2.0.tgz"))
                .unwrap()
                .to_string(),
            "global/npm-tgz/@types+react~react-18.2.0.tgz"
        );
        assert_eq!(parse_path("-/ping"), Ok(NpmPath::Special("ping".into())));
    }
}
