//! Which entries an invalidation removes: one key, a key prefix, a tag, a scope, a kind, or
//! the names of one kind starting with a prefix in every scope (a team's build artifacts).
//!
//! Selectors travel between nodes (the fleet's event stream) as JSON, so each is checked when
//! it is parsed: nothing unbounded or unprintable reaches an index scan or a log line.

use serde::{Deserialize, Serialize};

use crate::entry::{EntryMeta, MAX_TAG_LEN};
use crate::key::{CacheKey, KeyError, Kind, MAX_NAME_LEN, Scope};

/// The longest key prefix a selector may carry (a whole key text is shorter).
pub const MAX_PREFIX_LEN: usize = 700;

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("a prefix is 1 to {MAX_PREFIX_LEN} printable characters without spaces")]
    BadPrefix,
    #[error("a tag is 1 to {MAX_TAG_LEN} characters of A-Z a-z 0-9 . _ - : / @")]
    BadTag,
    #[error("a selector has exactly one of key, prefix, tag, scope or kind (kind may add names)")]
    Shape,
}

/// The entries one invalidation step removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SelectorText", into = "SelectorText")]
pub enum Selector {
    /// Exactly this entry.
    Key(CacheKey),
    /// Every entry whose key text (`<scope>/<kind>/<name>`) starts with this.
    Prefix(String),
    /// Every entry carrying this tag.
    Tag(String),
    /// Every entry of this scope.
    Scope(Scope),
    /// Every entry of this kind, in every scope.
    Kind(Kind),
    /// Every entry of this kind, in every scope, whose name starts with the prefix.
    Names(Kind, String),
}

/// The wire form: `{"key": "..."}`, `{"prefix": "..."}`, `{"tag": ...}`, `{"scope": ...}`,
/// `{"kind": ...}` or `{"kind": ..., "names": "prefix"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<String>,
}

fn printable_word(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

impl Selector {
    /// A prefix selector, if `prefix` is printable and bounded.
    pub fn prefix(prefix: &str) -> Result<Self, SelectorError> {
        if printable_word(prefix, MAX_PREFIX_LEN) {
            Ok(Selector::Prefix(prefix.to_owned()))
        } else {
            Err(SelectorError::BadPrefix)
        }
    }

    /// A tag selector, if `tag` is a valid tag.
    pub fn tag(tag: &str) -> Result<Self, SelectorError> {
        let ok = !tag.is_empty()
            && tag.len() <= MAX_TAG_LEN
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/@".contains(c));
        if ok {
            Ok(Selector::Tag(tag.to_owned()))
        } else {
            Err(SelectorError::BadTag)
        }
    }

    /// Names of `kind` starting with `prefix`, in every scope.
    pub fn names(kind: &str, prefix: &str) -> Result<Self, SelectorError> {
        let kind = Kind::new(kind)?;
        if !printable_word(prefix, MAX_NAME_LEN) {
            return Err(SelectorError::BadPrefix);
        }
        Ok(Selector::Names(kind, prefix.to_owned()))
    }

    /// Whether the entry under `key` with `meta` is selected.
    pub fn matches(&self, key: &CacheKey, meta: &EntryMeta) -> bool {
        match self {
            Selector::Tag(t) => meta.tags.iter().any(|x| x == t),
            _ => self.may_match(key),
        }
    }

    /// Whether the entry under `key` may be selected, before its metadata is read: the answer
    /// for every selector but tags (which any key may carry).
    pub fn may_match(&self, key: &CacheKey) -> bool {
        match self {
            Selector::Key(k) => k == key,
            Selector::Prefix(p) => key.to_string().starts_with(p.as_str()),
            Selector::Tag(_) => true,
            Selector::Scope(s) => key.scope() == s,
            Selector::Kind(k) => key.kind() == k,
            Selector::Names(k, p) => key.kind() == k && key.name().as_str().starts_with(p.as_str()),
        }
    }

    /// Whether deciding needs the entry's metadata (tags).
    pub fn needs_meta(&self) -> bool {
        matches!(self, Selector::Tag(_))
    }

    /// The key-text prefix every selected entry has, to narrow an index scan ("" = all).
    pub fn key_prefix(&self) -> String {
        match self {
            Selector::Key(k) => k.to_string(),
            Selector::Prefix(p) => p.clone(),
            Selector::Scope(s) => format!("{s}/"),
            Selector::Tag(_) | Selector::Kind(_) | Selector::Names(..) => String::new(),
        }
    }
}

impl TryFrom<SelectorText> for Selector {
    type Error = SelectorError;

    fn try_from(t: SelectorText) -> Result<Self, SelectorError> {
        match t {
            SelectorText {
                key: Some(k),
                prefix: None,
                tag: None,
                scope: None,
                kind: None,
                names: None,
            } => Ok(Selector::Key(CacheKey::parse_path(&k)?)),
            SelectorText {
                prefix: Some(p),
                key: None,
                tag: None,
                scope: None,
                kind: None,
                names: None,
            } => Selector::prefix(&p),
            SelectorText {
                tag: Some(tag),
                key: None,
                prefix: None,
                scope: None,
                kind: None,
                names: None,
            } => Selector::tag(&tag),
            SelectorText {
                scope: Some(s),
                key: None,
                prefix: None,
                tag: None,
                kind: None,
                names: None,
            } => Ok(Selector::Scope(Scope::parse(&s)?)),
            SelectorText {
                kind: Some(k),
                names: None,
                key: None,
                prefix: None,
                tag: None,
                scope: None,
            } => Ok(Selector::Kind(Kind::new(&k)?)),
            SelectorText {
                kind: Some(k),
                names: Some(n),
                key: None,
                prefix: None,
                tag: None,
                scope: None,
            } => Selector::names(&k, &n),
            _ => Err(SelectorError::Shape),
        }
    }
}

impl From<Selector> for SelectorText {
    fn from(s: Selector) -> Self {
        let mut t = SelectorText::default();
        match s {
            Selector::Key(k) => t.key = Some(k.to_string()),
            Selector::Prefix(p) => t.prefix = Some(p),
            Selector::Tag(x) => t.tag = Some(x),
            Selector::Scope(s) => t.scope = Some(s.to_string()),
            Selector::Kind(k) => t.kind = Some(k.as_str().to_owned()),
            Selector::Names(k, n) => {
                t.kind = Some(k.as_str().to_owned());
                t.names = Some(n);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::ContentHash;

    fn meta(tags: &[&str]) -> EntryMeta {
        EntryMeta {
            size: 1,
            hash: ContentHash::of(b"x"),
            created_ms: 0,
            expires_ms: None,
            epoch: 0,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            content_type: None,
            headers: Default::default(),
            immutable: false,
        }
    }

    #[test]
    fn selectors_match_what_they_name() {
        let k = CacheKey::parse_path("user/alice/turbo/web~abc").unwrap();
        let m = meta(&["site:docs"]);
        let yes = [
            Selector::Key(k.clone()),
            Selector::prefix("user/alice/").unwrap(),
            Selector::tag("site:docs").unwrap(),
            Selector::Scope(Scope::user("alice").unwrap()),
            Selector::Kind(Kind::new("turbo").unwrap()),
            Selector::names("turbo", "web~").unwrap(),
        ];
        for s in &yes {
            assert!(s.matches(&k, &m), "{s:?}");
        }
        let no = [
            Selector::prefix("user/bob/").unwrap(),
            Selector::tag("site:blog").unwrap(),
            Selector::Scope(Scope::Global),
            Selector::Kind(Kind::new("npm-full").unwrap()),
            Selector::names("turbo", "api~").unwrap(),
        ];
        for s in &no {
            assert!(!s.matches(&k, &m), "{s:?}");
        }
    }

    #[test]
    fn the_wire_form_round_trips_and_refuses_nonsense() {
        for json in [
            r#"{"key":"global/npm-full/react"}"#,
            r#"{"prefix":"template/vite/"}"#,
            r#"{"tag":"deploy:docs:3"}"#,
            r#"{"scope":"template/vite"}"#,
            r#"{"kind":"npm-index"}"#,
            r#"{"kind":"turbo","names":"team~"}"#,
        ] {
            let s: Selector = serde_json::from_str(json).expect(json);
            assert_eq!(serde_json::to_string(&s).unwrap(), json);
        }
        for bad in [
            r#"{}"#,
            r#"{"key":"global/npm/a","tag":"x"}"#,
            r#"{"key":"../etc/passwd"}"#,
            r#"{"prefix":"has space"}"#,
            r#"{"prefix":""}"#,
            r#"{"tag":"a\nb"}"#,
            r#"{"scope":"team/x"}"#,
            r#"{"kind":"Bad"}"#,
            r#"{"names":"x"}"#,
            r#"{"what":"x"}"#,
        ] {
            assert!(serde_json::from_str::<Selector>(bad).is_err(), "{bad}");
        }
    }
}
