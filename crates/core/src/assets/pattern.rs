//! Path patterns of the Cache-Control rules, glob-ish and small:
//!
//! - `/` at the start anchors the pattern at the site's root (`/api/**`); without it the
//!   pattern matches at any depth (`*.html` is `/**/*.html`);
//! - `*` is any run of characters within one segment, `?` one such character, `**` any
//!   run across segments (`/**/` also matches a single `/`), `{a,b,c}` alternatives
//!   (not nested); everything else is literal and case-sensitive.
//!
//! Paths are matched with a leading `/` (`/assets/app.js`).

use std::fmt;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;
/// Most wildcards (`*`, `**`, `?`) in one pattern, which bounds the matcher's backtracking.
pub const MAX_WILDCARDS: usize = 8;
/// Most alternatives a pattern's braces may expand to.
pub const MAX_ALTERNATIVES: usize = 64;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    #[error("the pattern is longer than {MAX_PATTERN_LEN} bytes")]
    TooLong,
    #[error("the pattern has more than {MAX_WILDCARDS} wildcards")]
    TooManyWildcards,
    #[error("the pattern's braces expand to more than {MAX_ALTERNATIVES} alternatives")]
    TooManyAlternatives,
    #[error("the pattern has an unbalanced or nested brace")]
    BadBraces,
    #[error("the pattern contains a control character or a backslash")]
    BadChar,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    Any,
    /// `**/`: nothing, or anything ending in `/`.
    Dirs,
}

/// A compiled path pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    alternatives: Vec<Vec<Token>>,
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathPattern({:?})", self.text)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Expands `{a,b}` groups (not nested) into every combination.
fn expand(pattern: &str) -> Result<Vec<String>, PatternError> {
    let mut out = vec![String::new()];
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let (before, after) = rest.split_at(open);
        if before.contains('}') {
            return Err(PatternError::BadBraces);
        }
        let close = after.find('}').ok_or(PatternError::BadBraces)?;
        let group = &after[1..close];
        if group.contains('{') {
            return Err(PatternError::BadBraces);
        }
        let options: Vec<&str> = group.split(',').collect();
        if out.len() * options.len() > MAX_ALTERNATIVES {
            return Err(PatternError::TooManyAlternatives);
        }
        out = out
            .iter()
            .flat_map(|prefix| options.iter().map(move |o| format!("{prefix}{before}{o}")))
            .collect();
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(PatternError::BadBraces);
    }
    for s in &mut out {
        s.push_str(rest);
    }
    Ok(out)
}

fn compile(alt: &str) -> Vec<Token> {
    let chars: Vec<char> = alt.chars().collect();
    let mut tokens = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    tokens.push(Token::Dirs);
                    i += 3;
                } else {
                    tokens.push(Token::Any);
                    i += 2;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            '?' => {
                tokens.push(Token::One);
                i += 1;
            }
            c => {
                tokens.push(Token::Char(c));
                i += 1;
            }
        }
    }
    tokens
}

fn matches(tokens: &[Token], text: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match first {
        Token::Char(c) => text.first() == Some(c) && matches(rest, &text[1..]),
        Token::One => text.first().is_some_and(|c| *c != '/') && matches(rest, &text[1..]),
        Token::Star => {
            let segment_end = text.iter().position(|c| *c == '/').unwrap_or(text.len());
            (0..=segment_end).any(|i| matches(rest, &text[i..]))
        }
        Token::Any => (0..=text.len()).any(|i| matches(rest, &text[i..])),
        Token::Dirs => {
            matches(rest, text)
                || text
                    .iter()
                    .enumerate()
                    .any(|(i, c)| *c == '/' && matches(rest, &text[i + 1..]))
        }
    }
}

impl PathPattern {
    /// Compiles `pattern` (see the module's syntax).
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if pattern.chars().any(|c| c.is_control() || c == '\\') {
            return Err(PatternError::BadChar);
        }
        let wildcards =
            pattern.matches("**").count() + pattern.replace("**", "").matches(['*', '?']).count();
        if wildcards > MAX_WILDCARDS {
            return Err(PatternError::TooManyWildcards);
        }
        let anchored = if pattern.starts_with('/') {
            pattern.to_owned()
        } else {
            format!("/**/{pattern}")
        };
        let alternatives = expand(&anchored)?.iter().map(|a| compile(a)).collect();
        Ok(PathPattern {
            text: pattern.to_owned(),
            alternatives,
        })
    }

    /// Whether the site path `path` (with or without its leading `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let mut chars = Vec::with_capacity(path.len() + 1);
        if !path.starts_with('/') {
            chars.push('/');
        }
        chars.extend(path.chars());
        self.alternatives.iter().any(|t| matches(t, &chars))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::new(s).unwrap()
    }

    #[test]
    fn anchored_and_floating() {
        assert!(p("/api/**").matches("/api/users"));
        assert!(p("/api/**").matches("api/v1/users/7"));
        assert!(!p("/api/**").matches("/docs/api/x"));
        assert!(p("*.html").matches("/index.html"));
        assert!(p("*.html").matches("a/b/page.html"));
        assert!(!p("*.html").matches("/page.htm"));
        assert!(p("/*.txt").matches("/robots.txt"));
        assert!(!p("/*.txt").matches("/a/robots.txt"));
    }

    #[test]
    fn wildcards_and_braces() {
        let img = p("*.{png,jpg,svg}");
        assert!(img.matches("/a/logo.svg"));
        assert!(img.matches("/x.jpg"));
        assert!(!img.matches("/x.jpeg"));
        assert!(p("/a/**/z.js").matches("/a/z.js"));
        assert!(p("/a/**/z.js").matches("/a/b/c/z.js"));
        assert!(p("/?.js").matches("/a.js"));
        assert!(!p("/?.js").matches("/ab.js"));
        assert!(!p("/*/x").matches("/a/b/x"));
        assert!(p("/**").matches("/anything/at/all"));
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(PathPattern::new(""), Err(PatternError::Empty));
        assert_eq!(PathPattern::new("{a"), Err(PatternError::BadBraces));
        assert_eq!(PathPattern::new("a}"), Err(PatternError::BadBraces));
        assert_eq!(PathPattern::new("{a,{b}}"), Err(PatternError::BadBraces));
        assert_eq!(
            PathPattern::new("*/*/*/*/*/*/*/*/*"),
            Err(PatternError::TooManyWildcards)
        );
        assert_eq!(
            PathPattern::new("{a,b,c,d}{a,b,c,d}{a,b,c,d,e}"),
            Err(PatternError::TooManyAlternatives)
        );
        assert_eq!(PathPattern::new("a\\b"), Err(PatternError::BadChar));
    }
}
