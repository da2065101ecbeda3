//! What the detector reports: where a secret is and which rule saw it — never the secret.

use std::fmt;

/// One detected secret (or sensitive file): enough to find and judge it, nothing to reuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file, as given; inside an archive `archive.tgz!package/.env`.
    pub path: String,
    /// The rule's id, e.g. `github-pat` (see [`crate::rules::RULES`] and [`crate::paths`]).
    pub rule: &'static str,
    /// 1-based line of the secret's start; 0 when the file as a whole is the finding.
    pub line: u32,
    /// 1-based byte column of the secret's start on its line; `None` for whole-file findings.
    pub column: Option<u32>,
    /// A redacted view: at most the first 4 characters, `…`, and the length.
    pub redacted: String,
}

impl Finding {
    /// The message a refusal carries, e.g. `aws-access-key-id at .env:3`: safe to log or return.
    pub fn reason(&self) -> String {
        if self.line == 0 {
            format!("{} at {}", self.rule, self.path)
        } else {
            format!("{} at {}:{}", self.rule, self.path, self.line)
        }
    }
}

impl fmt::Display for Finding {
    /// `path:line: rule (redacted)`, the CLI's one-line form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.rule)?;
        if !self.redacted.is_empty() {
            write!(f, " ({})", self.redacted)?;
        }
        Ok(())
    }
}

/// Redacts a secret so that no usable part of it survives: a short prefix (a format's
/// public prefix such as `ghp_` when the secret is long, less for short ones) and the length.
pub fn redact(secret: &[u8]) -> String {
    let len = secret.len();
    let shown = (len / 5).min(4);
    let prefix: String = secret[..shown]
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect();
    format!("{prefix}…({len} chars)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_shows_at_most_four_chars_and_fewer_for_short_secrets() {
        assert_eq!(
            redact(b"ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
            "ghp_…(40 chars)"
        );
        assert_eq!(redact(b"hunter22"), "h…(8 chars)");
        assert_eq!(redact(b"abc"), "…(3 chars)");
    }

    #[test]
    fn reason_names_rule_and_place_only() {
        let f = Finding {
            path: ".env".into(),
            rule: "aws-access-key-id",
            line: 3,
            column: Some(19),
            redacted: "AKIA…(20 chars)".into(),
        };
        assert_eq!(f.reason(), "aws-access-key-id at .env:3");
        assert_eq!(f.to_string(), ".env:3: aws-access-key-id (AKIA…(20 chars))");
        let whole = Finding {
            line: 0,
            column: None,
            redacted: String::new(),
            ..f
        };
        assert_eq!(whole.reason(), "aws-access-key-id at .env");
    }
}
