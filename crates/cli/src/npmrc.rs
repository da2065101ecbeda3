//! `tiercache npmrc`: the `.npmrc` a sandbox should use: the cache's npm proxy as registry,
//! retries suited to a nearby cache, and the seed's shared pnpm store.
//!
//! Every key here was checked against the clients: npm 11 and pnpm 10 read the registry
//! and `fetch-retry*` keys without a word. The pnpm store keys are pnpm's alone: pnpm 10
//! reads them from `.npmrc`, npm 11 warns "Unknown user config" for each, and pnpm 11+
//! reads only registry and auth keys from `.npmrc` (it wants them in
//! `~/.config/pnpm/config.yaml`). So they stay, with that said in the file, unless
//! `--npm-only` leaves them out. The seed's `content-addressable-store` and
//! `shared-workspace-lockfile` are no client's settings and are never written.

use std::fmt::Write as _;

use anyhow::bail;

use crate::cli::NpmrcArgs;
use crate::http::DEFAULT_SERVER;

/// The seed's shared pnpm store, hardlinked into every sandbox's `node_modules`.
pub const DEFAULT_STORE_DIR: &str = "/var/cache/pnpm/store";

/// What goes into the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Npmrc {
    /// The proxy's `/npm/` URL, ending in `/`.
    pub registry: String,
    pub store_dir: String,
    /// Leave out the pnpm-only keys (npm warns about them).
    pub npm_only: bool,
}

/// The registry when `--registry` is not given: `TIERCACHE_SERVER` + `/npm/`, else the
/// default server's.
pub fn default_registry(server: Option<&str>) -> String {
    let server = server
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_SERVER);
    format!("{}/npm/", server.trim_end_matches('/'))
}

impl Npmrc {
    /// Checks the values (an ini value cannot hold a line break) and ends the registry in `/`.
    pub fn new(registry: &str, store_dir: &str, npm_only: bool) -> anyhow::Result<Self> {
        let registry = registry.trim();
        if !(registry.starts_with("http://") || registry.starts_with("https://")) {
            bail!("registry {registry:?} must be an http:// or https:// URL");
        }
        if registry.contains(char::is_whitespace) {
            bail!("registry {registry:?} must not contain whitespace");
        }
        if store_dir.is_empty() || store_dir.contains(['\n', '\r']) {
            bail!("store dir {store_dir:?} must be a non-empty path on one line");
        }
        let registry = format!("{}/", registry.trim_end_matches('/'));
        Ok(Npmrc {
            registry,
            store_dir: store_dir.to_owned(),
            npm_only,
        })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# .npmrc for a sandbox, written by `tiercache npmrc`: every package comes through\n\
             # the tiercache npm proxy, fetched from the origin once and then served from cache.\n",
        );
        let _ = writeln!(out, "registry={}", self.registry);
        out.push_str(
            "# The cache is close: retry quickly, a few times, and give up within seconds.\n\
             fetch-retries=3\n\
             fetch-retry-factor=2\n\
             fetch-retry-mintimeout=1000\n\
             fetch-retry-maxtimeout=10000\n",
        );
        if self.npm_only {
            return out;
        }
        out.push_str(
            "# The shared pnpm store, hardlinked into node_modules. pnpm 10 reads these here;\n\
             # pnpm 11+ reads only registry and auth from .npmrc (set storeDir, cacheDir, stateDir,\n\
             # packageImportMethod in ~/.config/pnpm/config.yaml); npm warns about them as\n\
             # unknown: `tiercache npmrc --npm-only` leaves them out.\n",
        );
        let _ = writeln!(out, "store-dir={}", self.store_dir);
        out.push_str(
            "cache-dir=/var/cache/pnpm/cache\n\
             state-dir=/var/cache/pnpm/state\n\
             package-import-method=hardlink\n\
             symlink=true\n",
        );
        out
    }
}

/// Runs `tiercache npmrc`: prints the file.
pub fn run(args: NpmrcArgs) -> anyhow::Result<()> {
    let registry = match args.registry {
        Some(r) => r,
        None => default_registry(std::env::var("TIERCACHE_SERVER").ok().as_deref()),
    };
    let npmrc = Npmrc::new(&registry, &args.store_dir, args.npm_only)?;
    crate::stdout::print(&npmrc.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect()
    }

    #[test]
    fn the_default_file_has_registry_retries_and_the_pnpm_store() {
        let text = Npmrc::new(&default_registry(None), DEFAULT_STORE_DIR, false)
            .unwrap()
            .render();
        assert!(text.starts_with("# "), "a comment header: {text}");
        assert_eq!(
            keys(&text),
            [
                ("registry", "http://127.0.0.1:7700/npm/"),
                ("fetch-retries", "3"),
                ("fetch-retry-factor", "2"),
                ("fetch-retry-mintimeout", "1000"),
                ("fetch-retry-maxtimeout", "10000"),
                ("store-dir", "/var/cache/pnpm/store"),
                ("cache-dir", "/var/cache/pnpm/cache"),
                ("state-dir", "/var/cache/pnpm/state"),
                ("package-import-method", "hardlink"),
                ("symlink", "true"),
            ]
        );
        assert!(!text.contains("content-addressable-store"));
        assert!(!text.contains("shared-workspace-lockfile"));
    }

    #[test]
    fn flags_and_environment_shape_the_file() {
        assert_eq!(
            default_registry(Some("http://cache:9000/")),
            "http://cache:9000/npm/"
        );
        assert_eq!(default_registry(Some(" ")), "http://127.0.0.1:7700/npm/");
        let n = Npmrc::new("https://cache.example/npm", "/data/store", true).unwrap();
        assert_eq!(n.registry, "https://cache.example/npm/");
        let text = n.render();
        let k = keys(&text);
        assert_eq!(k[0], ("registry", "https://cache.example/npm/"));
        assert!(k.iter().all(|(key, _)| !key.ends_with("-dir")), "{text}");
        let with_store = Npmrc::new("http://h/npm/", "/data/store", false)
            .unwrap()
            .render();
        assert!(with_store.contains("\nstore-dir=/data/store\n"));
    }

    #[test]
    fn values_that_would_break_the_file_are_refused() {
        assert!(Npmrc::new("cache:7700", DEFAULT_STORE_DIR, false).is_err());
        assert!(Npmrc::new("http://h/npm/\nx=y", DEFAULT_STORE_DIR, false).is_err());
        assert!(Npmrc::new("http://h/npm/", "/a\nb=c", false).is_err());
    }
}
