//! Structural checks the regexes cannot express: a PEM private key's body, a JWT's header.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The fewest base64 characters a private-key body needs: `MIIE...` placeholders in docs
/// have fewer (gitleaks uses the same bar).
pub const MIN_PEM_BODY: usize = 64;

/// How far past `-----BEGIN … PRIVATE KEY-----` the END line is looked for.
const MAX_PEM_LEN: usize = 64 * 1024;

/// A private-key body found after a BEGIN line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PemBody {
    /// Byte offset just past the `-----END … -----` line's dashes.
    pub end: usize,
    /// Number of base64 characters in the body.
    pub base64_chars: usize,
}

/// Reads a PEM body starting at `start` (just after the BEGIN line) up to its END line.
/// Accepts real line breaks, escaped ones (`\n`, `\\n`, as in JSON and JS strings), string
/// quotes and concatenation between lines, and `Key: value` headers (encrypted PEM, PGP).
/// Returns `None` for placeholders: `...`, `<key>`, or a body shorter than [`MIN_PEM_BODY`].
pub fn pem_body(text: &[u8], start: usize) -> Option<PemBody> {
    let limit = text.len().min(start.saturating_add(MAX_PEM_LEN));
    let mut i = start;
    let mut count = 0usize;
    let mut body = Vec::new();
    let mut line_start = true;
    while i < limit {
        if text[i..].starts_with(b"-----END") {
            let close = memchr::memmem::find(&text[i + 8..limit], b"-----")?;
            if count < MIN_PEM_BODY || crate::entropy::shannon(&body) < 4.5 {
                return None;
            }
            return Some(PemBody {
                end: i + 8 + close + 5,
                base64_chars: count,
            });
        }
        let b = text[i];
        if line_start && is_header_line(&text[i..limit]) {
            // `Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`, `Version: …`, `Comment: "…"`
            while i < limit && !matches!(text[i], b'\n' | b'\\') {
                i += 1;
            }
            continue;
        }
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {
                count += 1;
                body.push(b);
                line_start = false;
                i += 1;
            }
            b'\\' => {
                // an escaped line break: `\n`, `\r\n`, `\\n`
                while i < limit && text[i] == b'\\' {
                    i += 1;
                }
                if i < limit && matches!(text[i], b'n' | b'r' | b't') {
                    i += 1;
                }
                line_start = true;
            }
            b'\n' | b'\r' => {
                line_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'"' | b'\'' | b'`' | b',' | b';' => {
                i += 1;
            }
            _ => return None,
        }
    }
    None
}

/// Whether the line at `text` is a PEM header (`Name: value`) rather than base64.
fn is_header_line(text: &[u8]) -> bool {
    let skip = text
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'+'))
        .count();
    let rest = &text[skip..];
    let name_len = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    name_len > 0 && rest.get(name_len) == Some(&b':')
}

/// Whether a JWT's header decodes to a JSON object naming a real signing algorithm
/// (`"alg"` present and not `none`), and its payload to a JSON object other than jwt.io's
/// sample claims.
pub fn is_signed_jwt(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(header) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    let compact: Vec<u8> = header
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let alg = memchr::memmem::find(&compact, b"\"alg\":\"");
    let payload = decode_prefix(payload).unwrap_or_default();
    // jwt.io's sample claims (in every JWT tutorial): `"sub": "1234567890", "name": "John Doe"`
    let sample = memchr::memmem::find(&payload, b"John Doe").is_some()
        || memchr::memmem::find(&payload, b"\"sub\":\"1234567890\"").is_some();
    let payload_ok = payload.first() == Some(&b'{') && !sample;
    compact.first() == Some(&b'{')
        && alg.is_some_and(|at| {
            !compact[at + 7..]
                .to_ascii_lowercase()
                .starts_with(b"none\"")
        })
        && payload_ok
}

/// Decodes base64url, tolerating a length that is not a multiple of 4 at the end.
fn decode_prefix(part: &[u8]) -> Option<Vec<u8>> {
    let usable = part.len() - part.len() % 4;
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| URL_SAFE_NO_PAD.decode(&part[..usable]).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(n: usize) -> String {
        // deterministic base64-looking text with high entropy
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n)
            .map(|i| char::from(alphabet[(i * 37 + i / 7) % 64]))
            .collect()
    }

    #[test]
    fn pem_with_real_lines() {
        let body = format!("{}\n{}\n", b64(64), b64(40));
        let text = format!("{body}-----END RSA PRIVATE KEY-----\n");
        let found = pem_body(text.as_bytes(), 0).unwrap();
        assert_eq!(found.base64_chars, 104);
        assert_eq!(&text.as_bytes()[..found.end], text.trim_end().as_bytes());
    }

    #[test]
    fn pem_with_escaped_newlines_and_headers() {
        let text = format!(
            "\\nProc-Type: 4,ENCRYPTED\\nDEK-Info: AES-128-CBC,ABCDEF\\n\\n{}\\n{}\\n-----END RSA PRIVATE KEY-----\\n\"",
            b64(64),
            b64(20)
        );
        assert!(pem_body(text.as_bytes(), 0).is_some());
    }

    #[test]
    fn pem_placeholders_are_not_keys() {
        for body in [
            "MIIEpAIBAAKCAQEA...\n".to_string(),
            "<your private key>\n".to_string(),
            format!("{}\n", b64(40)),
            format!("{}\n", "A".repeat(80)),
        ] {
            let text = format!("{body}-----END PRIVATE KEY-----");
            assert!(pem_body(text.as_bytes(), 0).is_none(), "{body}");
        }
        // no END line at all
        assert!(pem_body(b64(200).as_bytes(), 0).is_none());
    }

    #[test]
    fn jwt_header_must_name_an_algorithm() {
        let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let sig = "c2lnbmF0dXJlLWJ5dGVzLWhlcmU";
        let good = format!(
            "{}.{}.{sig}",
            enc(r#"{"alg":"RS256","typ":"JWT"}"#),
            enc(r#"{"sub":"42"}"#)
        );
        assert!(is_signed_jwt(good.as_bytes()));
        let none = format!(
            "{}.{}.{sig}",
            enc(r#"{"alg":"none"}"#),
            enc(r#"{"sub":"42"}"#)
        );
        assert!(!is_signed_jwt(none.as_bytes()));
        let noalg = format!("{}.{}.{sig}", enc(r#"{"typ":"JWT"}"#), enc(r#"{"a":1}"#));
        assert!(!is_signed_jwt(noalg.as_bytes()));
        assert!(!is_signed_jwt(b"eyJhbGciOi.eyJzdWIi.zzz"));
        let sample = format!(
            "{}.{}.{sig}",
            enc(r#"{"alg":"HS256"}"#),
            enc(r#"{"sub":"1234567890","name":"John Doe","admin":true}"#)
        );
        assert!(!is_signed_jwt(sample.as_bytes()));
    }
}
