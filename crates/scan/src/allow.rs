//! What is deliberately not a finding: placeholders and published example credentials,
//! test fixtures, lockfiles, and spans of a file that only look like secrets
//! (data: URIs, source-map mappings, integrity hashes).

use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

/// Substrings (compared case-insensitively) that mark any value as a placeholder or an
/// example. Five letters or more, or not letters: a random token contains none in practice.
const FILLER_WORDS: &[&str] = &[
    "xxxx",
    "****",
    "....",
    "…",
    "example",
    "sample",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "dummy",
    "redacted",
    "insert",
    "replace",
    "123456",
    "abcdefg",
    "qwerty",
    "${",
    "{{",
    "%(",
    "<",
    ">",
];

/// More words that mark a generic (unprefixed) value as a placeholder: shorter, or words a
/// secret's description would use (`my-secret-token`). Not applied to prefixed tokens, whose
/// long random bodies contain a 4-letter word now and then.
const PLACEHOLDER_WORDS: &[&str] = &[
    "your",
    "secret",
    "password",
    "passwd",
    "pass",
    "token",
    "test",
    "fake",
    "mock",
    "demo",
    "foobar",
    "lorem",
    "%s",
    "process.env",
    "os.environ",
    "getenv",
    "env(",
];

/// A run of this many identical characters marks filler (`000000`, `aaaaaa`).
const FILLER_RUN: usize = 6;

/// Credentials published as examples in vendors' documentation (AWS, Stripe, jwt.io) and in
/// the OAuth RFCs (5849, 6749): they are everywhere in READMEs and SDKs and grant nothing.
const KNOWN_EXAMPLES: &[&str] = &[
    "2YotnFZFEjr1zCsicMWpAA",
    "tGzv3JOkF0XG5Qx2TlKWIA",
    "SplxlOBeZQQYbYS6WxSbIA",
    "7Fjfp0ZBr1KtDRbnfVdmIw",
    "czZCaGRSa3F0MzpnWDFmQmF0M2JW",
    "ad180jjd733klru7",
    "hh5s93j4hdidpola",
    "kd94hf93k423kf44",
    "nnch734d00sl2jdk",
    "pfkkdhi9sl3r4s00",
    "djr9rjt0jd78jf88",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Whether a token's random body is filler: `xxxx`, `<…>`, `${…}`, `123456`, `example`, or a
/// run of one repeated character.
pub fn is_filler(value: &[u8]) -> bool {
    let lower = value.to_ascii_lowercase();
    contains_any(&lower, FILLER_WORDS)
        || lower
            .windows(FILLER_RUN)
            .any(|w| w.iter().all(|&b| b == w[0]))
}

/// Whether a generic value is a placeholder (`<your-token>`, `${API_KEY}`, `changeme`,
/// `my-secret-token`, `xxxx…`), a template or environment reference (`$VAR`, `@VAR@`,
/// `%VAR%`, `process.env.X`), or filler.
pub fn is_placeholder(value: &[u8]) -> bool {
    let lower = value.to_ascii_lowercase();
    is_filler(value)
        || contains_any(&lower, PLACEHOLDER_WORDS)
        || matches!(lower.first(), Some(b'$' | b'@' | b'%'))
}

fn contains_any(haystack: &[u8], needles: &[&str]) -> bool {
    needles
        .iter()
        .any(|w| memchr::memmem::find(haystack, w.as_bytes()).is_some())
}

/// Whether `secret` is one of the vendors' published example credentials, or contains the
/// word EXAMPLE the way AWS's documented keys do.
pub fn is_known_example(secret: &[u8]) -> bool {
    KNOWN_EXAMPLES.iter().any(|e| e.as_bytes() == secret)
        || memchr::memmem::find(&secret.to_ascii_uppercase(), b"EXAMPLE").is_some()
}

/// Directory names that hold test fixtures, test vectors and examples.
const FIXTURE_DIRS: &[&str] = &[
    "test",
    "tests",
    "__tests__",
    "spec",
    "specs",
    "__specs__",
    "fixture",
    "fixtures",
    "__fixtures__",
    "testdata",
    "test-data",
    "test_data",
    "test-fixtures",
    "test-vectors",
    "testvectors",
    "__mocks__",
    "mocks",
    "example",
    "examples",
];

/// Whether `path` is a test fixture: it lies in a test, fixture or example directory (any
/// ancestor directory), or its file name marks it as a test (`x509_test.cc`, `sign.test.ts`,
/// `keys.spec.js`, `test_rsa.py`). Crypto libraries keep their test keys there; rules for key
/// material and generic assignments do not fire in such places, while rules for live-service
/// tokens with distinctive prefixes (AWS, GitHub, Slack, …) still do: nobody needs a real one
/// in a fixture.
pub fn is_fixture_path(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split(['/', '\\', '!']).collect();
    let name = parts.pop().unwrap_or_default().to_ascii_lowercase();
    let test_name = name.starts_with("test_")
        || name.starts_with("test-")
        || [
            "_test.", ".test.", "-test.", "_tests.", ".tests.", "_spec.", ".spec.", "-spec.",
        ]
        .iter()
        .any(|m| name.contains(m));
    test_name
        || parts
            .iter()
            .any(|p| FIXTURE_DIRS.iter().any(|d| p.eq_ignore_ascii_case(d)))
}

/// Lockfiles: integrity hashes and resolved URLs, never hand-written secrets; generic rules
/// skip them (distinctive-prefix rules still run, e.g. a token pasted into a resolved URL).
pub fn is_lockfile(basename: &str) -> bool {
    matches!(
        basename,
        "package-lock.json"
            | ".package-lock.json"
            | "npm-shrinkwrap.json"
            | "yarn.lock"
            | "pnpm-lock.yaml"
            | "bun.lock"
            | "Cargo.lock"
            | "composer.lock"
            | "Gemfile.lock"
            | "poetry.lock"
            | "go.sum"
    )
}

/// Minified or bundled code by name; generic rules skip it (prefix rules still run).
pub fn is_minified_name(basename: &str) -> bool {
    let lower = basename.to_ascii_lowercase();
    [".min.js", ".min.mjs", ".min.cjs", ".min.css", ".bundle.js"]
        .iter()
        .any(|s| lower.ends_with(s))
}

/// Lines longer than this are minified code or embedded data: generic rules skip them.
pub const MINIFIED_LINE: usize = 1000;

static EXCLUDED: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        // data: URIs with base64 payloads (images, fonts, WASM)
        r"data:[A-Za-z0-9/+.\-]{0,100}(?:;[A-Za-z0-9=.\-]{1,100}){0,5};base64,[A-Za-z0-9+/=\\]+",
        // source maps' VLQ mappings
        r#"|"mappings"\s*:\s*"[^"]*""#,
        // Subresource-Integrity / lockfile hashes
        r"|\b(?:sha1|sha256|sha384|sha512)-[A-Za-z0-9+/]{20,}={0,2}",
    ))
    .ok()
});

/// Byte ranges of `text` that are data, not code: a finding inside one is dropped.
pub fn excluded_spans(text: &[u8]) -> Vec<Range<usize>> {
    match &*EXCLUDED {
        Some(re) => re.find_iter(text).map(|m| m.range()).collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for v in [
            &b"<your-token>"[..],
            b"${NPM_TOKEN}",
            b"$API_KEY",
            b"changeme",
            b"xxxxxxxxxxxxxxxx",
            b"process.env.SECRET",
            b"aaaaaaaaaaaaaa",
            b"my-super-secret-value",
        ] {
            assert!(is_placeholder(v), "{}", String::from_utf8_lossy(v));
        }
        assert!(!is_placeholder(b"q8Zk3LmP0xVt7RbN2wYc"));
        // token bodies: only filler counts, not the odd 4-letter word or a 5-character run
        assert!(is_filler(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        assert!(is_filler(b"0000000000000000"));
        assert!(!is_filler(b"qejEz-d0Gyc65DuIlDG2L8fAkeaEkEz"));
        assert!(!is_filler(b"57f0b9faa0d7b9e8403f517d4424cb44444ce315"));
    }

    #[test]
    fn known_examples() {
        assert!(is_known_example(b"AKIAIOSFODNN7EXAMPLE"));
        assert!(is_known_example(b"AKIAI44QH8DHBEXAMPLE"));
        // built at run time so that this repository holds no key-shaped literal
        let key = ["AKIA", "Q3ZLMNP4RSTUVW2X"].concat();
        assert!(!is_known_example(key.as_bytes()));
    }

    #[test]
    fn fixture_dirs_and_test_file_names() {
        assert!(is_fixture_path("package/test/fixtures/key.pem"));
        assert!(is_fixture_path("x.tgz!package/__tests__/a.js"));
        assert!(is_fixture_path("repo/Examples/server.key"));
        assert!(is_fixture_path("crypto/x509/x509_test.cc"));
        assert!(is_fixture_path("src/sign.test.ts"));
        assert!(is_fixture_path("src/keys.spec.js"));
        assert!(is_fixture_path("tests_py/test_rsa.py"));
        assert!(!is_fixture_path("package/lib/test.js"));
        assert!(!is_fixture_path("package/lib/latest.js"));
        assert!(!is_fixture_path("package/testing/key.pem"));
        assert!(!is_fixture_path("src/contest_keys.js"));
        assert!(!is_fixture_path(".env"));
    }

    #[test]
    fn spans_cover_data_uris_mappings_and_integrity() {
        let text = br#"{"integrity": "sha512-AAAAbbbbCCCCddddEEEEffff0000==", "mappings": "AAAA;BACA", "img": "data:image/png;base64,iVBORw0KGgo="}"#;
        let spans = excluded_spans(text);
        assert_eq!(spans.len(), 3);
        let covered: Vec<&[u8]> = spans.iter().map(|r| &text[r.clone()]).collect();
        assert!(covered[0].starts_with(b"sha512-"));
        assert!(covered[1].starts_with(b"\"mappings\""));
        assert!(covered[2].starts_with(b"data:image/png;base64,"));
    }
}
