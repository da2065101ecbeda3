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

/// The entropy bar for a string of `len` characters: `bar`, lowered for short strings (which
/// cannot reach it) to log2(len) − `slack`.
pub fn bar_for_len(bar: f64, len: usize, slack: f64) -> f64 {
    bar.min((len as f64).log2() - slack)
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
    // Short strings cannot reach the full bar (16 random characters have at most 4 bits per
    // character): below 24 characters the bar follows log2(length), set so that 99.9 % of
    // random strings of that length pass.
    if hex {
        return digits > 0 && entropy >= bar_for_len(MIN_HEX_ENTROPY, value.len(), 1.5);
    }
    if entropy < bar_for_len(MIN_ENTROPY, value.len(), 0.85) {
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
    if is_wordy(value) || is_identifier_like(value) {
        return false;
    }
    // Random text switches between classes about every other character; identifiers
    // (`SOME_CONSTANT_NAME`) switch once per word.
    transitions(value) >= 0.2
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

/// Two-letter pieces of identifiers (`isEnabled`, `userId`, `toJson`).
const TWO_LETTER_WORDS: &[&[u8]] = &[
    b"is", b"to", b"of", b"id", b"on", b"by", b"at", b"in", b"ui", b"db", b"io", b"js", b"ts",
    b"no", b"up", b"or", b"an", b"as", b"if", b"it", b"my", b"we", b"do", b"go", b"me", b"be",
    b"so", b"ok", b"un", b"re",
];

/// Whether a value reads as words: split at non-letters and camelCase humps, every piece is
/// word-shaped (`Word`, `word`, an acronym, a common two-letter word) and pronounceable
/// (a vowel in five letters or more, no four consonants in a row), with 8+ letters in all:
/// `?NonExpressionParenEnd`, `isEnabledForUser`, `base64EncodedValue`. Random strings split
/// into pieces such as `NXgd`, `Whztdwwswqu` or `q`; about 1 in 2,000 of 16 random
/// alphanumerics passes (and is then missed), far fewer of longer ones.
fn is_wordy(value: &[u8]) -> bool {
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut start = None;
    for (i, &b) in value.iter().enumerate() {
        let hump = i > 0 && b.is_ascii_uppercase() && value[i - 1].is_ascii_lowercase();
        if (!b.is_ascii_alphabetic() || hump)
            && let Some(s) = start.take()
        {
            pieces.push(&value[s..i]);
        }
        if b.is_ascii_alphabetic() && start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        pieces.push(&value[s..]);
    }
    let letters: usize = pieces.iter().map(|w| w.len()).sum();
    letters >= 8 && pieces.iter().all(|w| is_word(w))
}

/// One piece of [`is_wordy`]: a word, an acronym or a common two-letter word.
fn is_word(w: &[u8]) -> bool {
    let lower = w.to_ascii_lowercase();
    let upper = w.iter().all(u8::is_ascii_uppercase);
    match w.len() {
        0 | 1 => return false,
        2 => return TWO_LETTER_WORDS.contains(&lower.as_slice()),
        3..=5 if upper => return true,
        _ => {}
    }
    let shaped = w[1..].iter().all(u8::is_ascii_lowercase) || (upper && w.len() <= 8);
    let is_vowel = |b: &u8| matches!(b, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
    let vowels = lower.iter().filter(|b| is_vowel(b)).count();
    let mut run = 0;
    let clustered = lower.iter().any(|b| {
        run = if is_vowel(b) { 0 } else { run + 1 };
        run >= 4
    });
    shaped && vowels * 5 >= lower.len() && !clustered
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
        assert!(looks_random(b"NnasoasWfeLwoNXgdBrOMdznUelDYHZuuxmHbg"));
        assert!(looks_random(b"d99N3749Fe9Kzn-44"));
        assert!(looks_random(b"TghLZOSBSHUDA5TlxMnna_29"));
        assert!(looks_random(b"3JHXH6alDhpfgd_74"));
        assert!(looks_random(b"2On2ZsykutiwEE+91"));
        assert!(looks_random(b"UhvlhZYuWhztdwwswquHIU*48"));
        assert!(looks_random(b"NzIkoufMckde3y^45"));
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
            b"isEnabledForUser",
            b"handleSubmitButtonClick",
            b"base64EncodedValue",
        ] {
            assert!(!looks_random(v), "{}", String::from_utf8_lossy(v));
        }
    }
}
