//! How random a value looks: Shannon entropy and a few shape tests, so that a secret-named
//! variable holding a generated credential is told apart from one holding a word or a name.

/// Shannon entropy in bits per byte: about 4 for random hex, 5–6 for random base64.
pub fn shannon(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// Minimum entropy of a generic (unprefixed) secret made of hex digits.
pub const MIN_HEX_ENTROPY: f64 = 3.0;
/// Minimum entropy of any other generic secret (gitleaks' `generic-api-key` uses 3.5 too).
pub const MIN_ENTROPY: f64 = 3.5;
/// Shortest value the generic rules consider: shorter random strings are too rare to matter.
pub const MIN_GENERIC_LEN: usize = 16;

/// Whether `value` looks like a generated credential rather than a word, an identifier,
/// a number, a version or a sentence: long enough, no spaces, high entropy for its alphabet,
/// and mixing character classes the way random strings do (camelCase names do not).
pub fn looks_random(value: &[u8]) -> bool {
    if value.len() < MIN_GENERIC_LEN || value.iter().any(|b| b.is_ascii_whitespace()) {
        return false;
    }
    let digits = value.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = value.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 {
        return false; // numbers, dates, IP addresses
    }
    let hex = value.iter().all(u8::is_ascii_hexdigit);
    let entropy = shannon(value);
    if hex {
        return digits > 0 && entropy >= MIN_HEX_ENTROPY;
    }
    if entropy < MIN_ENTROPY {
        return false;
    }
    let classes = [
        value.iter().any(u8::is_ascii_lowercase),
        value.iter().any(u8::is_ascii_uppercase),
        digits > 0,
    ]
    .iter()
    .filter(|&&c| c)
    .count();
    if classes < 2 {
        return false;
    }
    if digits == 0 && is_wordy(value) || is_identifier_like(value) {
        return false;
    }
    // Random text switches between classes about every other character; identifiers
    // (`someLongIdentifierName`, `SOME_CONSTANT_NAME`) switch once per word.
    digits > 0 && transitions(value) >= 0.2 || transitions(value) >= 0.3
}

/// Whether a value is a snake/kebab/dotted name in one case (`aws_sse_customer_key_base64`,
/// `AWS_SSE_KMS_KEY_ID`, `app.v2.signing-key`): generated secrets mix cases.
fn is_identifier_like(value: &[u8]) -> bool {
    let separators = value
        .iter()
        .filter(|b| matches!(b, b'_' | b'-' | b'.'))
        .count();
    let one_case = |upper: bool| {
        value.iter().all(|&b| {
            b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'.')
                || (b.is_ascii_alphabetic() && b.is_ascii_uppercase() == upper)
        })
    };
    separators >= 2 && (one_case(false) || one_case(true))
}

/// Whether a value reads as words: split at non-letters and camelCase humps, its words
/// average 4+ letters with few 1-letter ones (`?NonExpressionParenEnd`, `Bearer-Auth-Header`).
/// Random letters split into many 1–2 letter pieces.
fn is_wordy(value: &[u8]) -> bool {
    let mut words = Vec::new();
    let mut len = 0usize;
    let mut prev_lower = false;
    for &b in value {
        if b.is_ascii_alphabetic() {
            if b.is_ascii_uppercase() && prev_lower {
                words.push(len);
                len = 0;
            }
            len += 1;
            prev_lower = b.is_ascii_lowercase();
        } else {
            if len > 0 {
                words.push(len);
            }
            len = 0;
            prev_lower = false;
        }
    }
    if len > 0 {
        words.push(len);
    }
    let letters: usize = words.iter().sum();
    let short = words.iter().filter(|&&w| w == 1).count();
    !words.is_empty() && letters >= 4 * words.len() && short * 4 <= words.len()
}

/// The share of adjacent byte pairs whose character class differs.
fn transitions(value: &[u8]) -> f64 {
    fn class(b: u8) -> u8 {
        match b {
            b'a'..=b'z' => 0,
            b'A'..=b'Z' => 1,
            b'0'..=b'9' => 2,
            _ => 3,
        }
    }
    if value.len() < 2 {
        return 0.0;
    }
    let changes = value
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    changes as f64 / (value.len() - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(shannon(b""), 0.0);
        assert_eq!(shannon(b"aaaa"), 0.0);
        assert!((shannon(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn random_values_look_random() {
        assert!(looks_random(b"q8Zk3LmP0xVt7RbN2wYc"));
        assert!(looks_random(b"9f86d081884c7d659a2feaa0c55ad015"));
        assert!(looks_random(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ3kLm9"));
        assert!(looks_random(b"hGkLmPqRsTvWxYzAbCdEfGh"));
    }

    #[test]
    fn words_names_and_numbers_do_not() {
        for v in [
            &b"someLongIdentifierName"[..],
            b"SOME_CONSTANT_NAME_HERE",
            b"1234567890123456789",
            b"aaaaaaaaaaaaaaaaaaaaaaaa",
            b"short1A",
            b"this is a sentence, not a key",
            b"application/octet-stream",
            b"2024-01-01T00:00:00Z",
            b"deadbeefdeadbeefdeadbeef",
            b"?NonExpressionParenEnd",
            b"Bearer-Auth-Header-Value",
            b"aws_sse_customer_key_base64",
            b"AWS_SSE_KMS_KEY_ID_V2",
        ] {
            assert!(!looks_random(v), "{}", String::from_utf8_lossy(v));
        }
    }
}
