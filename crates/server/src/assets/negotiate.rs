//! Choosing a precompressed variant by `Accept-Encoding` (RFC 9110 §12.5.3): the coding
//! with the highest q-value among those stored; on a tie, br, then zstd, then gzip. A
//! coding the client does not name (and no `*`) is not acceptable; identity always is.

use super::manifest::Encoding;

/// The q-value (in thousandths) the header gives `coding`: its own entry, else `*`'s, else 0.
fn q_of(header: &str, coding: &str) -> u16 {
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let q = parts
            .find_map(|p| {
                let (k, v) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| parse_q(v.trim()))
            })
            .unwrap_or(Some(1000));
        let Some(q) = q else { continue };
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0)
}

/// A qvalue (`0`, `0.5`, `1.000`) in thousandths; `None` if malformed.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = whole + thousandths;
    (q <= 1000).then_some(q)
}

/// The variant to send, among `available`, for a request's `Accept-Encoding` (`None`:
/// the identity bytes).
pub fn choose(accept_encoding: Option<&str>, available: &[Encoding]) -> Option<Encoding> {
    let header = accept_encoding?;
    let mut best: Option<(u16, Encoding)> = None;
    for e in Encoding::PREFERENCE {
        if !available.contains(&e) {
            continue;
        }
        let q = q_of(header, e.as_str());
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, e));
        }
    }
    best.map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::*;

    const ALL: [Encoding; 3] = [Br, Zstd, Gzip];

    #[test]
    fn preference_and_q_values() {
        assert_eq!(choose(None, &ALL), None);
        assert_eq!(choose(Some(""), &ALL), None);
        assert_eq!(choose(Some("gzip, deflate, br, zstd"), &ALL), Some(Br));
        assert_eq!(
            choose(Some("gzip, deflate, br, zstd"), &[Zstd, Gzip]),
            Some(Zstd)
        );
        assert_eq!(choose(Some("gzip"), &[Zstd, Gzip]), Some(Gzip));
        assert_eq!(
            choose(Some("gzip;q=0.5, zstd;q=0.4"), &[Zstd, Gzip]),
            Some(Gzip)
        );
        assert_eq!(choose(Some("gzip;q=0, zstd;q=0"), &[Zstd, Gzip]), None);
        assert_eq!(choose(Some("*"), &[Zstd, Gzip]), Some(Zstd));
        assert_eq!(choose(Some("*;q=0.1, zstd;q=0"), &[Zstd, Gzip]), Some(Gzip));
        assert_eq!(choose(Some("identity"), &ALL), None);
        assert_eq!(choose(Some("GZIP;Q=1.0"), &[Gzip]), Some(Gzip));
        assert_eq!(choose(Some("gzip;q=2"), &[Gzip]), None);
        assert_eq!(choose(Some("br"), &[Zstd, Gzip]), None);
    }
}
