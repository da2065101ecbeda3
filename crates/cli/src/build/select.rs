//! Which paths a list of globs picks under a root, for build keys (sources) and artifacts
//! (outputs). One rule for both, so `tiercache hash` and `build save` agree:
//!
//! - Globs are relative to the root, with `/` separators; `*` and `?` stay within one path
//!   component, `**` crosses them, `{a,b}` and `[ab]` work as usual. A leading `./` is
//!   ignored; absolute globs and `..` components are refused.
//! - A glob that names a directory picks everything beneath it (`dist` = `dist/**`).
//! - `!GLOB` excludes, whatever the order; an excluded directory is not descended into.
//! - Symbolic links are never followed while walking; they are reported as links.
//! - Only the literal leading components of a glob are walked (`src/**/*.ts` walks `src`),
//!   so `node_modules` costs nothing unless a glob reaches into it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

/// What a picked path is (links are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One picked path.
#[derive(Debug, Clone)]
pub struct Found {
    /// Relative to the root.
    pub rel: PathBuf,
    /// Root joined with `rel`.
    pub abs: PathBuf,
    pub kind: Kind,
}

/// Compiled globs: what to include and exclude, and where to start walking.
#[derive(Debug)]
pub struct Patterns {
    include: GlobSet,
    exclude: GlobSet,
    bases: Vec<PathBuf>,
}

/// A glob pattern with `./` and trailing `/` dropped; refuses absolute ones and `..`.
fn normalise(pattern: &str) -> anyhow::Result<String> {
    let mut p = pattern.trim();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    if p.is_empty() || p == "." {
        bail!("the glob {pattern:?} is empty (to pick everything, say '**')");
    }
    if p.starts_with('/') {
        bail!("the glob {pattern:?} is absolute; globs are relative to --root");
    }
    if p.split('/').any(|c| c == "..") {
        bail!("the glob {pattern:?} has a `..` component; globs stay inside --root");
    }
    Ok(p.to_owned())
}

fn glob(pattern: &str, original: &str) -> anyhow::Result<globset::Glob> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .with_context(|| format!("bad glob {original:?}"))
}

/// The literal leading components of a glob: the one directory (or file) worth walking.
fn base_of(pattern: &str) -> PathBuf {
    pattern
        .split('/')
        .take_while(|c| !c.contains(['*', '?', '[', '{', '\\']))
        .collect()
}

impl Patterns {
    /// Compiles `patterns` (`!` marks an exclusion).
    pub fn new(patterns: &[String]) -> anyhow::Result<Self> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        let mut bases = Vec::new();
        for original in patterns {
            let (negated, rest) = match original.trim().strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, original.as_str()),
            };
            let p = normalise(rest)?;
            let set = if negated { &mut exclude } else { &mut include };
            set.add(glob(&p, original)?);
            set.add(glob(&format!("{p}/**"), original)?);
            if !negated {
                bases.push(base_of(&p));
            }
        }
        // Walk each base once: drop those inside another.
        bases.sort();
        bases.dedup();
        let mut kept: Vec<PathBuf> = Vec::new();
        for b in bases {
            if !kept.iter().any(|k| b.starts_with(k)) {
                kept.push(b);
            }
        }
        Ok(Patterns {
            include: include.build().context("compiling the globs")?,
            exclude: exclude.build().context("compiling the globs")?,
            bases: kept,
        })
    }

    /// Whether no glob includes anything.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// Whether `rel` (relative to the root) is picked.
    pub fn is_match(&self, rel: &Path) -> bool {
        self.include.is_match(rel) && !self.exclude.is_match(rel)
    }

    /// The picked paths under `root`, keyed (and so sorted) by [`rel_bytes`].
    pub fn walk(&self, root: &Path) -> anyhow::Result<BTreeMap<Vec<u8>, Found>> {
        let mut out = BTreeMap::new();
        for base in &self.bases {
            let start = root.join(base);
            if std::fs::symlink_metadata(&start).is_err() {
                continue; // Nothing there: a glob that matches nothing is fine.
            }
            let walker = WalkDir::new(&start)
                .follow_links(false)
                .follow_root_links(false)
                .into_iter()
                .filter_entry(|e| match e.path().strip_prefix(root) {
                    Ok(rel) => rel.as_os_str().is_empty() || !self.exclude.is_match(rel),
                    Err(_) => false,
                });
            for entry in walker {
                let entry = entry.with_context(|| format!("walking {}", start.display()))?;
                let Ok(rel) = entry.path().strip_prefix(root) else {
                    continue;
                };
                if rel.as_os_str().is_empty() || !self.is_match(rel) {
                    continue;
                }
                let ft = entry.file_type();
                let kind = if ft.is_symlink() {
                    Kind::Symlink
                } else if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File
                } else {
                    continue; // Sockets, FIFOs, devices: never build inputs or outputs.
                };
                out.insert(
                    rel_bytes(rel),
                    Found {
                        rel: rel.to_owned(),
                        abs: entry.path().to_owned(),
                        kind,
                    },
                );
            }
        }
        Ok(out)
    }
}

/// A relative path as bytes with `/` separators: what keys hash and archives store.
pub fn rel_bytes(rel: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for c in rel.components() {
        if let Component::Normal(part) = c {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(&os_bytes(part));
        }
    }
    out
}

/// The bytes of an OS string (on Unix exactly; elsewhere its UTF-8, lossily).
pub fn os_bytes(s: &std::ffi::OsStr) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        s.as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        s.to_string_lossy().replace('\\', "/").into_bytes()
    }
}

/// Where a link at `link_rel` (relative to the root) pointing at `target` leads, relative
/// to the root, worked out on the path alone; `None` if it leaves the root. An absolute
/// target counts as inside only under `root_abs` (the canonical root).
pub fn link_destination(root_abs: &Path, link_rel: &Path, target: &Path) -> Option<PathBuf> {
    let mut stack: Vec<OsString> = Vec::new();
    let rest: &Path = if target.is_absolute() {
        target.strip_prefix(root_abs).ok()?
    } else {
        if let Some(parent) = link_rel.parent() {
            for c in parent.components() {
                match c {
                    Component::Normal(p) => stack.push(p.to_owned()),
                    Component::CurDir => {}
                    _ => return None,
                }
            }
        }
        target
    };
    for c in rest.components() {
        match c {
            Component::Normal(p) => stack.push(p.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                stack.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(stack.iter().collect())
}

/// Whether the link at `abs` (relative path `rel`) stays inside the root, by its path and,
/// when it resolves, by where it really ends up (so chains of links cannot escape).
pub fn link_inside(root_abs: &Path, rel: &Path, abs: &Path) -> anyhow::Result<Option<PathBuf>> {
    let target =
        std::fs::read_link(abs).with_context(|| format!("reading the link {}", abs.display()))?;
    let real = std::fs::canonicalize(abs).ok();
    if real.as_ref().is_some_and(|r| !r.starts_with(root_abs)) {
        return Ok(None);
    }
    match link_destination(root_abs, rel, &target) {
        Some(dest) => Ok(Some(dest)),
        // An absolute target spelled through a linked prefix (`/tmp` → `/private/tmp`).
        None if target.is_absolute() => {
            Ok(real.and_then(|r| r.strip_prefix(root_abs).ok().map(Path::to_owned)))
        }
        None => Ok(None),
    }
}

/// `path` made relative to `base` on the path alone (both absolute and normalised):
/// `../x` for a sibling of `base`.
pub fn relative_to(base: &Path, path: &Path) -> PathBuf {
    let b: Vec<Component> = base.components().collect();
    let p: Vec<Component> = path.components().collect();
    let common = b.iter().zip(&p).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// `path` with `.` dropped and `..` applied to earlier components where it can be.
pub fn lexical(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }

    fn picked(patterns: &[&str], root: &Path) -> Vec<String> {
        let p = Patterns::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.walk(root)
            .unwrap()
            .keys()
            .map(|k| String::from_utf8(k.clone()).unwrap())
            .collect()
    }

    #[test]
    fn globs_pick_files_directories_and_exclusions() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "src/a.ts",
            "src/deep/b.ts",
            "src/c.css",
            "dist/x.js",
            "node_modules/m/i.ts",
            "package.json",
        ] {
            touch(d.path(), f);
        }
        assert_eq!(
            picked(&["src/**/*.ts"], d.path()),
            ["src/a.ts", "src/deep/b.ts"]
        );
        assert_eq!(picked(&["src/*.ts"], d.path()), ["src/a.ts"]);
        assert_eq!(picked(&["./dist"], d.path()), ["dist", "dist/x.js"]);
        assert_eq!(
            picked(&["**/*.ts", "!node_modules"], d.path()),
            ["src/a.ts", "src/deep/b.ts"]
        );
        assert_eq!(
            picked(&["package.json", "nope/**"], d.path()),
            ["package.json"]
        );
        assert!(picked(&["missing/*.ts"], d.path()).is_empty());
        for bad in ["/etc/*", "../x", "src/../../x", "", "."] {
            assert!(Patterns::new(&[bad.to_string()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_destinations_stay_inside_or_are_refused() {
        let root = Path::new("/r");
        let d = |l: &str, t: &str| link_destination(root, Path::new(l), Path::new(t));
        assert_eq!(d("a/l", "b"), Some(PathBuf::from("a/b")));
        assert_eq!(d("a/l", "../b"), Some(PathBuf::from("b")));
        assert_eq!(d("a/l", "../../b"), None);
        assert_eq!(d("l", "/r/x/y"), Some(PathBuf::from("x/y")));
        assert_eq!(d("l", "/etc/passwd"), None);
        assert_eq!(
            relative_to(Path::new("/a/b/c"), Path::new("/a/x")),
            PathBuf::from("../../x")
        );
        assert_eq!(lexical(Path::new("./a/../b/./c")), PathBuf::from("b/c"));
        assert_eq!(lexical(Path::new("../a/../../b")), PathBuf::from("../../b"));
    }
}
