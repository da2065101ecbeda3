//! Reading a built site: every regular file below the directory, named by its path with
//! `/` separators (checked as the server will check it), hashed, and — for compressible
//! types above a small size — precompressed as brotli, zstd and gzip (made once per deploy,
//! at each format's highest level: browsers and CDNs read them for a year).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tiercache_core::ContentHash;
use tiercache_core::assets::{SitePath, content_type};

/// Smaller files are not worth a compressed variant.
pub const MIN_COMPRESS: u64 = 1024;
/// A variant is kept only if it is at most this share (percent) of the original.
const KEEP_PERCENT: usize = 90;
/// zstd's level: slow to make, made once per deploy, fast to read.
const ZSTD_LEVEL: i32 = 19;
/// brotli's quality (the highest) and window (log2 bytes), as static-site tools use them.
const BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 22;

/// Where a blob's bytes come from when it is uploaded.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file of the site, read again at upload.
    File(PathBuf),
    /// A variant made here.
    Bytes(bytes::Bytes),
}

/// A compressed form of a file.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `br`, `zstd` or `gzip`.
    pub encoding: &'static str,
    /// Its bytes' hash.
    pub hash: ContentHash,
    /// Its length.
    pub size: u64,
}

/// One file of the site.
#[derive(Debug, Clone)]
pub struct SiteFile {
    /// Its path in the site (`assets/app.js`).
    pub path: String,
    /// Its bytes' hash.
    pub hash: ContentHash,
    /// Its length.
    pub size: u64,
    /// Its compressed forms.
    pub variants: Vec<Variant>,
}

/// A site read from disk: its files, and where each blob's bytes are.
#[derive(Debug, Default)]
pub struct LocalSite {
    /// The files, by path.
    pub files: Vec<SiteFile>,
    /// Blob hash → its bytes' source.
    pub sources: BTreeMap<ContentHash, (Source, u64)>,
}

impl LocalSite {
    /// The manifest `POST /assets-api/{site}/deploys` takes.
    pub fn manifest(&self) -> serde_json::Value {
        let files: serde_json::Map<String, serde_json::Value> = self
            .files
            .iter()
            .map(|f| {
                let variants: serde_json::Map<String, serde_json::Value> = f
                    .variants
                    .iter()
                    .map(|v| {
                        (
                            v.encoding.to_owned(),
                            serde_json::json!({ "hash": v.hash, "size": v.size }),
                        )
                    })
                    .collect();
                let entry =
                    serde_json::json!({ "hash": f.hash, "size": f.size, "variants": variants });
                (f.path.clone(), entry)
            })
            .collect();
        serde_json::json!({ "files": files })
    }

    /// The paths whose bytes (or a variant's) are the blob `hash`, for error messages.
    pub fn paths_of(&self, hash: &ContentHash) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.hash == *hash || f.variants.iter().any(|v| v.hash == *hash))
            .map(|f| f.path.as_str())
            .collect()
    }
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes)?;
    Ok(enc.finish()?)
}

fn brotli(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc =
            brotli::CompressorWriter::new(&mut out, 64 * 1024, BROTLI_QUALITY, BROTLI_WINDOW);
        enc.write_all(bytes)?;
        enc.flush()?;
    }
    Ok(out)
}

fn zstd(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    Ok(zstd::bulk::compress(bytes, ZSTD_LEVEL)?)
}

/// The site path of `file` below `root`, with `/` separators, checked.
fn site_path(root: &Path, file: &Path) -> anyhow::Result<String> {
    let rel = file
        .strip_prefix(root)
        .with_context(|| format!("{} is not below {}", file.display(), root.display()))?;
    let mut parts = Vec::new();
    for c in rel.components() {
        let std::path::Component::Normal(s) = c else {
            bail!("{}: unexpected path component", file.display());
        };
        let Some(s) = s.to_str() else {
            bail!("{}: the file name is not UTF-8", file.display());
        };
        parts.push(s);
    }
    let path = parts.join("/");
    SitePath::parse(&path).map_err(|e| anyhow::anyhow!("{path:?} cannot be deployed: {e}"))?;
    Ok(path)
}

/// Reads every regular file below `root` (links are skipped, with a warning).
pub fn read(root: &Path, compress: bool) -> anyhow::Result<LocalSite> {
    if !root.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut site = LocalSite::default();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        let ft = entry.file_type();
        if ft.is_symlink() {
            eprintln!("tiercache: skipping the link {}", entry.path().display());
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        let path = site_path(root, entry.path())?;
        let name = path.rsplit('/').next().unwrap_or(&path);
        if tiercache_scan::paths::is_dotenv(name) {
            eprintln!(
                "tiercache: warning: {path} looks like an environment file; it will be public"
            );
        }
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        let size = bytes.len() as u64;
        let hash = ContentHash::of(&bytes);
        let mut variants = Vec::new();
        if compress
            && size >= MIN_COMPRESS
            && content_type::is_compressible(content_type::for_name(name))
        {
            let made = [
                ("gzip", gzip(&bytes)?),
                ("zstd", zstd(&bytes)?),
                ("br", brotli(&bytes)?),
            ];
            for (encoding, packed) in made {
                if packed.len() * 100 > bytes.len() * KEEP_PERCENT {
                    continue;
                }
                let v = Variant {
                    encoding,
                    hash: ContentHash::of(&packed),
                    size: packed.len() as u64,
                };
                site.sources
                    .insert(v.hash, (Source::Bytes(bytes::Bytes::from(packed)), v.size));
                variants.push(v);
            }
        }
        site.sources
            .insert(hash, (Source::File(entry.path().to_owned()), size));
        site.files.push(SiteFile {
            path,
            hash,
            size,
            variants,
        });
    }
    if site.files.is_empty() {
        bail!("{} holds no files to deploy", root.display());
    }
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_read_hashed_and_precompressed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::write(root.join("index.html"), "<p>hi</p>".repeat(500)).unwrap();
        std::fs::write(root.join("assets/tiny.js"), "x").unwrap();
        std::fs::write(root.join("logo.png"), vec![7u8; 4096]).unwrap();
        let site = read(root, true).unwrap();
        let paths: Vec<_> = site.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["assets/tiny.js", "index.html", "logo.png"]);
        let html = &site.files[1];
        let encodings: Vec<_> = html.variants.iter().map(|v| v.encoding).collect();
        assert_eq!(encodings, ["gzip", "zstd", "br"]);
        assert!(site.files[0].variants.is_empty(), "too small");
        assert!(site.files[2].variants.is_empty(), "not compressible");
        assert_eq!(site.sources.len(), 6);
        let m = site.manifest();
        assert_eq!(m["files"]["index.html"]["size"], 4500);
        assert!(read(root, false).unwrap().files[1].variants.is_empty());
    }
}
