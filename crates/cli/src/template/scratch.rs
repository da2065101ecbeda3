//! The scratch project a warmup runs in: a temporary directory holding a copy of the
//! template's `source` (or, without one, a `package.json` listing its shared dependencies)
//! and an `.npmrc` that sends every install through the cache, with the token.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use walkdir::WalkDir;

use super::config::Template;
use crate::npmrc::{DEFAULT_STORE_DIR, Npmrc};

/// A fresh scratch directory for `template`, removed when dropped.
pub fn prepare(
    template: &Template,
    registry: &str,
    token: Option<&str>,
) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("tiercache-template-{}-", template.name))
        .tempdir()
        .context("creating the scratch directory")?;
    match &template.source {
        Some(src) => copy_tree(src, dir.path())
            .with_context(|| format!("copying the template's source {}", src.display()))?,
        None => std::fs::write(dir.path().join("package.json"), package_json(template))
            .context("writing package.json")?,
    }
    std::fs::write(dir.path().join(".npmrc"), npmrc(registry, token)?).context("writing .npmrc")?;
    Ok(dir)
}

/// A `package.json` depending on the template's shared dependencies (`latest` without a range).
pub fn package_json(template: &Template) -> String {
    let deps: serde_json::Map<String, serde_json::Value> = template
        .dependencies
        .iter()
        .map(|d| {
            let range = d.range.clone().unwrap_or_else(|| "latest".into());
            (d.name.clone(), serde_json::Value::String(range))
        })
        .collect();
    let doc = serde_json::json!({
        "name": format!("tiercache-template-{}", template.name.to_ascii_lowercase()),
        "version": "0.0.0",
        "private": true,
        "dependencies": deps,
    });
    format!("{doc:#}\n")
}

/// `tiercache npmrc --npm-only`'s file for `registry` (the store stays the client's own, as a
/// warm machine may not share the sandboxes' store), plus the token for that registry.
pub fn npmrc(registry: &str, token: Option<&str>) -> anyhow::Result<String> {
    let rc = Npmrc::new(registry, DEFAULT_STORE_DIR, true)?;
    let mut text = rc.render();
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        if t.contains(|c: char| c.is_whitespace() || c.is_control()) {
            bail!("the token contains whitespace; it cannot go into .npmrc");
        }
        // npm and pnpm send it to URLs under the registry: `//host:port/path/:_authToken`.
        let nerf = rc
            .registry
            .split_once("://")
            .map_or(rc.registry.as_str(), |(_, rest)| rest);
        let _ = writeln!(text, "//{nerf}:_authToken={t}");
    }
    Ok(text)
}

/// Copies the tree at `from` into the existing directory `to`: directories, regular files
/// (with their permissions) and symbolic links as links (never followed).
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    if !from.is_dir() {
        bail!("{} is not a directory", from.display());
    }
    for entry in WalkDir::new(from).follow_links(false).min_depth(1) {
        let entry = entry?;
        let rel = entry.path().strip_prefix(from)?;
        let dest = to.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("creating {}", dest.display()))?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            symlink(&target, &dest)
                .with_context(|| format!("creating the link {}", dest.display()))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
        // Sockets, FIFOs and devices have no place in a project: skipped.
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(target: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(not(unix))]
fn symlink(_: &Path, at: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(format!(
        "cannot create the link {}: links are copied on Unix only",
        at.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prewarm::plan::Spec;

    fn template(source: Option<&Path>) -> Template {
        Template {
            name: "react-vite".into(),
            dependencies: vec![
                Spec::parse("react@^18").unwrap(),
                Spec::parse("@types/node").unwrap(),
            ],
            outputs: vec![".vite/deps".into()],
            warmup: None,
            source: source.map(Path::to_owned),
        }
    }

    #[test]
    fn without_a_source_the_dependencies_make_the_package_json() {
        let dir = prepare(&template(None), "http://127.0.0.1:9/npm/", Some("t.o.k")).unwrap();
        let pj: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("package.json")).unwrap())
                .unwrap();
        assert_eq!(pj["dependencies"]["react"], "^18");
        assert_eq!(pj["dependencies"]["@types/node"], "latest");
        assert_eq!(pj["private"], true);
        let rc = std::fs::read_to_string(dir.path().join(".npmrc")).unwrap();
        assert!(rc.contains("\nregistry=http://127.0.0.1:9/npm/\n"), "{rc}");
        assert!(
            rc.ends_with("\n//127.0.0.1:9/npm/:_authToken=t.o.k\n"),
            "{rc}"
        );
        assert!(!rc.contains("store-dir"), "{rc}");
    }

    #[cfg(unix)]
    #[test]
    fn a_source_is_copied_with_its_links() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("src/deep")).unwrap();
        std::fs::write(src.path().join("package.json"), "{}").unwrap();
        std::fs::write(src.path().join("src/deep/a.ts"), "x").unwrap();
        std::os::unix::fs::symlink("deep/a.ts", src.path().join("src/link.ts")).unwrap();
        let dir = prepare(&template(Some(src.path())), "http://h/npm", None).unwrap();
        let d = dir.path();
        assert_eq!(
            std::fs::read_to_string(d.join("package.json")).unwrap(),
            "{}"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("src/deep/a.ts")).unwrap(),
            "x"
        );
        assert_eq!(
            std::fs::read_link(d.join("src/link.ts")).unwrap(),
            Path::new("deep/a.ts")
        );
        let rc = std::fs::read_to_string(d.join(".npmrc")).unwrap();
        assert!(!rc.contains("_authToken"), "{rc}");
        // A missing source is an error naming it.
        let gone = src.path().join("gone");
        let e = format!(
            "{:#}",
            prepare(&template(Some(&gone)), "http://h/npm", None).unwrap_err()
        );
        assert!(e.contains("gone") && e.contains("not a directory"), "{e}");
    }
}
