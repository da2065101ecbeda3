//! Single byte ranges (RFC 9110 §14): `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges,
//! other units and malformed headers are ignored (a 200 with everything, as the RFC
//! allows); a well-formed range that starts past the end is unsatisfiable (416).

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole body (no header, or one that is ignored).
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Nothing of it can be sent: 416.
    Unsatisfiable,
}

/// Reads `header` against a body of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Full;
    };
    if spec.contains(',') {
        return RangeAsk::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => RangeAsk::Full,
        },
        (first, "") => match num(first) {
            Some(s) if s >= len => RangeAsk::Unsatisfiable,
            Some(s) => RangeAsk::Part {
                start: s,
                end: len - 1,
            },
            None => RangeAsk::Full,
        },
        (first, last) => match (num(first), num(last)) {
            (Some(s), Some(e)) if s > e => RangeAsk::Full,
            (Some(s), Some(_)) if s >= len => RangeAsk::Unsatisfiable,
            (Some(s), Some(e)) => RangeAsk::Part {
                start: s,
                end: e.min(len - 1),
            },
            _ => RangeAsk::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAsk::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=0-3"), 10), Part { start: 0, end: 3 });
        assert_eq!(parse(Some("bytes=5-"), 10), Part { start: 5, end: 9 });
        assert_eq!(parse(Some("bytes=-4"), 10), Part { start: 6, end: 9 });
        assert_eq!(parse(Some("bytes=-40"), 10), Part { start: 0, end: 9 });
        assert_eq!(parse(Some("bytes=8-100"), 10), Part { start: 8, end: 9 });
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=10-12"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse(Some("items=0-1"), 10), Full);
        assert_eq!(parse(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse(Some("bytes=+1-2"), 10), Full);
    }
}
