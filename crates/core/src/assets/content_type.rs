//! Content types of a site's files, by extension (what browsers need to see; nothing is
//! sniffed): the server answers with them, and the deploy command asks which types are
//! worth precompressing.

/// Extension (lowercase) → media type. Text types carry `charset=utf-8`.
const TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("cjs", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("rss", "application/rss+xml"),
    ("atom", "application/atom+xml"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("bmp", "image/bmp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
];

/// What an unknown extension is served as.
pub const DEFAULT_TYPE: &str = "application/octet-stream";

/// The media type of a file named `name`, from its extension.
pub fn for_name(name: &str) -> &'static str {
    let Some((_, ext)) = name.rsplit_once('.') else {
        return DEFAULT_TYPE;
    };
    TYPES
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map_or(DEFAULT_TYPE, |(_, t)| t)
}

/// The type without parameters (`text/html`).
fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Whether a body of this type shrinks much when compressed (text, JSON, SVG, wasm, fonts
/// without their own compression), so the deploy command stores gzip/zstd variants of it.
pub fn is_compressible(content_type: &str) -> bool {
    let t = essence(content_type);
    t.starts_with("text/")
        || matches!(
            t,
            "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "application/rss+xml"
                | "application/atom+xml"
                | "application/wasm"
                | "image/svg+xml"
                | "image/x-icon"
                | "image/bmp"
                | "font/ttf"
                | "font/otf"
                | "application/vnd.ms-fontobject"
        )
}

/// Whether the type is an image.
pub fn is_image(content_type: &str) -> bool {
    essence(content_type).starts_with("image/")
}

/// Whether the type is an HTML page.
pub fn is_html(content_type: &str) -> bool {
    essence(content_type) == "text/html"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        assert_eq!(for_name("index.html"), "text/html; charset=utf-8");
        assert_eq!(for_name("APP.JS"), "text/javascript; charset=utf-8");
        assert_eq!(for_name("logo.svg"), "image/svg+xml");
        assert_eq!(for_name("a.woff2"), "font/woff2");
        assert_eq!(for_name("README"), DEFAULT_TYPE);
        assert_eq!(for_name("x.unknown"), DEFAULT_TYPE);
    }

    #[test]
    fn compressible_and_classes() {
        assert!(is_compressible(for_name("a.css")));
        assert!(is_compressible(for_name("a.svg")));
        assert!(is_compressible(for_name("a.json")));
        assert!(!is_compressible(for_name("a.png")));
        assert!(!is_compressible(for_name("a.woff2")));
        assert!(is_image(for_name("a.webp")));
        assert!(is_html(for_name("a.htm")));
        assert!(!is_html(for_name("a.txt")));
    }
}
