//! Content-hashed file names: a file whose name carries a hash of its bytes never changes
//! under that name, so it may be cached for a year as `immutable`. Detected the way the
//! common bundlers name their output:
//!
//! - **Vite / Rollup / esbuild**: `name-[hash].ext`, the hash 8 characters of base64url
//!   (`index-BzT3c9aF.js`, `chunk-5ZQ7N2WK.js`);
//! - **webpack / Parcel / CRA**: `name.[contenthash].ext`, 8–20 hex digits as a whole
//!   dot-separated part (`main.3f2a9c1b.js`, `app.8f14e45fceea167a5a36.css`, `1.3f2a9c1b.chunk.js`);
//! - **Next.js**: everything under `/_next/static/` (chunks are `[name]-[hash].js`, and the
//!   build's own files sit under `/_next/static/<buildId>/`), and `name-[hex]` anywhere.
//!
//! Mistaking a mutable file for a hashed one would pin a stale copy in caches for a year,
//! so the test leans to "not hashed": a Vite-style hash must look random (an uppercase
//! letter, and at least two changes between character classes), a hex hash must mix digits
//! and letters (dates like `20240101` are not hashes). About 3% of real 8-character Vite
//! hashes (all lowercase, say) are missed; they get the ordinary rules instead.

/// Whether `path` (a site path, with or without a leading `/`) names a content-hashed file.
pub fn is_hashed(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    if path.starts_with("_next/static/") || path.contains("/_next/static/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let parts: Vec<&str> = name.split('.').collect();
    let Some((_ext, stem_parts)) = parts.split_last() else {
        return false;
    };
    if stem_parts.is_empty() {
        return false;
    }
    stem_parts.iter().enumerate().any(|(i, part)| {
        // A whole hex part: after the name (webpack), or the whole name if it is long.
        (is_hex_hash(part) && (i > 0 || part.len() >= 16)) || has_dash_hash(part)
    })
}

/// 8–20 hex digits (lowercase), with both digits and letters.
fn is_hex_hash(s: &str) -> bool {
    (8..=20).contains(&s.len())
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes().any(|b| b.is_ascii_lowercase())
}

/// `name-HASH`: a Vite-style base64url hash of 8, or a hex hash of 8–20 after the last `-`.
fn has_dash_hash(part: &str) -> bool {
    let bytes = part.as_bytes();
    if bytes.len() > 9
        && bytes[bytes.len() - 9] == b'-'
        && looks_random_b64(&part[part.len() - 8..])
    {
        return true;
    }
    match part.rsplit_once('-') {
        Some((name, tail)) => !name.is_empty() && is_hex_hash(tail),
        None => false,
    }
}

/// The class of a base64url character, to count how often a string changes class.
fn class(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => 0,
        b'a'..=b'z' => 1,
        b'0'..=b'9' => 2,
        _ => 3,
    }
}

/// 8 base64url characters that look random rather than like a word: an uppercase letter,
/// a lowercase letter or digit, and at least two changes of character class.
fn looks_random_b64(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 8
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    {
        return false;
    }
    let upper = b.iter().any(u8::is_ascii_uppercase);
    let lower_or_digit = b
        .iter()
        .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let changes = b.windows(2).filter(|w| class(w[0]) != class(w[1])).count();
    upper && lower_or_digit && changes >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_of_the_common_bundlers() {
        for name in [
            "index-BzT3c9aF.js",
            "/assets/index-BzT3c9aF.js",
            "assets/vendor-react-D_f3Xk-2.js",
            "assets/logo-Cq8Zz1Ab.svg",
            "chunk-5ZQ7N2WK.js",
            "main.3f2a9c1b.js",
            "static/js/main.3f2a9c1b.chunk.js",
            "static/js/787.3f2a9c1b.chunk.js",
            "app.8f14e45fceea167a5a36.css",
            "8f14e45fceea167a5a36.js",
            "/_next/static/chunks/pages/index-2b1c7a3e9f.js",
            "/_next/static/Xy12bUILDid/_buildManifest.js",
            "/_next/static/css/a1b2c3d4e5f6.css",
            "docs/_next/static/media/font.woff2",
            "chunks/framework-2b1c7a3e9f0d1e2f.js",
            "index-BzT3c9aF.js.map",
        ] {
            assert!(is_hashed(name), "{name} not detected");
        }
    }

    #[test]
    fn ordinary_names_are_not_hashed() {
        for name in [
            "jquery-3.7.1.min.js",
            "favicon.ico",
            "index.html",
            "react-dom.production.min.js",
            "my-component.js",
            "2024-report.pdf",
            "app-settings.js",
            "use-debounce.js",
            "photo-20240101.jpg",
            "report.20240101.pdf",
            "backup.deadbeef.txt",
            "bootstrap.bundle.min.js",
            "jquery-ui-1.13.2.js",
            "robots.txt",
            "README",
            ".htaccess",
            "assets/hero-image.png",
            "3f2a9c1b.js",
            "_next-static/app.js",
        ] {
            assert!(!is_hashed(name), "{name} taken for hashed");
        }
    }
}
