//! Paths inside a deploy: `a/b/c.js`, relative, `/`-separated, normalised. A deploy's files
//! are a map from these paths to content hashes, so nothing is ever looked up on a file
//! system — and still every hostile form (`..`, encoded slashes, backslashes, NUL) is
//! refused outright rather than normalised, so no request can even name something else.

use std::fmt;

/// Longest path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest single segment (a file or directory name), in bytes.
pub const MAX_SEGMENT_LEN: usize = 255;
/// Most segments in a path.
pub const MAX_DEPTH: usize = 32;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("the path has more than {MAX_DEPTH} segments")]
    TooDeep,
    #[error("a path segment is longer than {MAX_SEGMENT_LEN} bytes")]
    SegmentTooLong,
    #[error("the path has an empty segment (a leading, doubled or trailing '/')")]
    EmptySegment,
    #[error("the path has a '.' or '..' segment")]
    DotSegment,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a control character (NUL, newline, ...)")]
    Control,
    #[error("the path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the path has a malformed percent-encoding")]
    BadEncoding,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
}

/// A valid path of a file in a deploy (no leading or trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SitePath(String);

fn check_segment(seg: &str) -> Result<(), PathError> {
    if seg.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(PathError::SegmentTooLong);
    }
    if seg == "." || seg == ".." {
        return Err(PathError::DotSegment);
    }
    if seg.contains('\\') {
        return Err(PathError::Backslash);
    }
    if seg.chars().any(char::is_control) {
        return Err(PathError::Control);
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one percent-encoded URL path segment; an encoded `/` or `\` is refused.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) else {
                return Err(PathError::BadEncoding);
            };
            let b = h * 16 + l;
            if b == b'/' || b == b'\\' {
                return Err(PathError::EncodedSeparator);
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

impl SitePath {
    /// A file path as a deploy's manifest names it (`assets/app.js`), checked.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let mut depth = 0;
        for seg in s.split('/') {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(PathError::TooDeep);
            }
            check_segment(seg)?;
        }
        Ok(SitePath(s.to_owned()))
    }

    /// The path a request names, from the raw (still percent-encoded) URL path below the
    /// site's root: `""` and paths ending in `/` are directories (served by their
    /// `index.html`); the answer is `(path, is_directory)`, where the path of the root is
    /// `None`. Every segment is decoded once and checked like a manifest path.
    pub fn from_request(raw: &str) -> Result<(Option<Self>, bool), PathError> {
        if raw.len() > 3 * MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if raw.contains('\\') {
            return Err(PathError::Backslash);
        }
        if raw.is_empty() {
            return Ok((None, true));
        }
        let (body, dir) = match raw.strip_suffix('/') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        if body.is_empty() {
            // A lone "/" below the root: the root itself, written with a slash.
            return Err(PathError::EmptySegment);
        }
        let mut decoded = String::with_capacity(body.len());
        for (i, seg) in body.split('/').enumerate() {
            if i > 0 {
                decoded.push('/');
            }
            // Check the raw form too: "%2e%2e" decodes to "..", and "." must not hide.
            let seg = decode_segment(seg)?;
            check_segment(&seg)?;
            decoded.push_str(&seg);
        }
        Ok((Some(SitePath::parse(&decoded)?), dir))
    }

    /// The path as text (`a/b.js`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file name: the last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// `index.html` inside this path taken as a directory.
    pub fn index(&self) -> SitePath {
        SitePath(format!("{}/index.html", self.0))
    }

    /// The root's `index.html`.
    pub fn root_index() -> SitePath {
        SitePath("index.html".to_owned())
    }
}

impl fmt::Display for SitePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths() {
        for ok in [
            "index.html",
            "a/b/c.js",
            "café/menu.html",
            "a b.txt",
            "x%y",
            ".well-known/x",
        ] {
            assert_eq!(SitePath::parse(ok).unwrap().as_str(), ok);
        }
        let long_seg = "s".repeat(MAX_SEGMENT_LEN + 1);
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        for (bad, why) in [
            ("", PathError::Empty),
            ("/a", PathError::EmptySegment),
            ("a/", PathError::EmptySegment),
            ("a//b", PathError::EmptySegment),
            ("../a", PathError::DotSegment),
            ("a/./b", PathError::DotSegment),
            ("a\\b", PathError::Backslash),
            ("a\0b", PathError::Control),
            ("a\nb", PathError::Control),
            (long_seg.as_str(), PathError::SegmentTooLong),
            (deep.as_str(), PathError::TooDeep),
        ] {
            assert_eq!(SitePath::parse(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn request_paths_decode_once_and_refuse_hostile_forms() {
        let p = |s| SitePath::from_request(s);
        assert_eq!(p(""), Ok((None, true)));
        assert_eq!(
            p("docs/"),
            Ok((Some(SitePath::parse("docs").unwrap()), true))
        );
        assert_eq!(
            p("caf%C3%A9/a%20b.js"),
            Ok((Some(SitePath::parse("café/a b.js").unwrap()), false))
        );
        // "%252e%252e" decodes once to "%2e%2e": a harmless literal name.
        assert!(p("%252e%252e").is_ok());
        for (bad, why) in [
            ("..", PathError::DotSegment),
            ("a/../b", PathError::DotSegment),
            ("%2e%2e/etc/passwd", PathError::DotSegment),
            ("%2E", PathError::DotSegment),
            ("a%2fb", PathError::EncodedSeparator),
            ("a%2F..%2Fb", PathError::EncodedSeparator),
            ("a%5cb", PathError::EncodedSeparator),
            ("a\\b", PathError::Backslash),
            ("a%00b", PathError::Control),
            ("a%0a", PathError::Control),
            ("a%zz", PathError::BadEncoding),
            ("a%2", PathError::BadEncoding),
            ("%ff", PathError::NotUtf8),
            ("/", PathError::EmptySegment),
            ("a//b", PathError::EmptySegment),
        ] {
            assert_eq!(p(bad), Err(why), "{bad:?}");
        }
    }

    #[test]
    fn names_and_indexes() {
        let p = SitePath::parse("a/b/app.js").unwrap();
        assert_eq!(p.file_name(), "app.js");
        assert_eq!(
            SitePath::parse("docs").unwrap().index().as_str(),
            "docs/index.html"
        );
    }
}
