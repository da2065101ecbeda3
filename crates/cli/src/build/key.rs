//! Build keys: the seed's `calculateCacheKey`, as a byte stream that is the same on every
//! machine, in every checkout directory and whatever order the files were created in.
//!
//! The key is the lowercase hex SHA-256 of this stream, where `u64(n)` is 8 bytes little
//! endian, `u8(n)` one byte, and `field(x)` is `u64(len(x))` followed by the bytes of `x`:
//!
//! ```text
//! "tiercache-build-key-v1" 0x00
//! field("sources")  u64(N)  then per source, sorted by path (bytes):
//!                           field(path) u8('f') field(content)       a file
//!                           field(path) u8('l') field(destination)   a link not to a file
//! field("lockfile") u8(0)                       no --lockfile
//!                   u8(1) field(content)        --lockfile given (it must exist)
//! field("configs")  u64(M)  then per --config, sorted by name (bytes), duplicates once:
//!                           field(name) u8(0)                        missing
//!                           field(name) u8(1) field(content)         present
//! field("env")      u64(K)  then per variable whose name starts with an --env-prefix
//!                           (default NODE_ and VITE_), sorted by name (bytes):
//!                           field(name) field(value)
//! field("command")  u64(A)  then field(arg) per argument, in order (none for `hash`
//!                           without `-- CMD`)
//! field("outputs")  u64(O)  then field(glob) per --outputs glob, sorted, duplicates once
//! ```
//!
//! A path is relative to `--root` with `/` separators. Sources are the files (and links)
//! the `--sources` globs pick (see `select.rs`), less those the `--outputs` globs pick.
//! A link to a regular file inside the root counts as that file (its path, the target's
//! content); a link to a directory, or one that dangles, counts as `'l'` with where it
//! leads relative to the root; a link that leaves the root is skipped with a warning.
//! A config's name is its path relative to `--root`, `..` allowed
//! (`../tsconfig.base.json`). Nothing else goes in: no absolute path, time or permission.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::select::{self, Kind, Patterns};

/// The domain-separation prefix: a key of this version never equals any other hash.
pub const DOMAIN: &[u8] = b"tiercache-build-key-v1\0";

/// Everything a key is made of, as the user named it.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub root: PathBuf,
    pub sources: Vec<String>,
    pub lockfile: Option<PathBuf>,
    pub configs: Vec<PathBuf>,
    pub env_prefixes: Vec<String>,
    pub command: Vec<OsString>,
    pub outputs: Vec<String>,
}

/// A computed key and what went into it.
#[derive(Debug, Clone)]
pub struct Key {
    /// 64 lowercase hex digits.
    pub hex: String,
    /// Source paths hashed, in order.
    pub sources: Vec<String>,
    /// Bytes of source content hashed.
    pub source_bytes: u64,
    /// Config names and whether each was present.
    pub configs: Vec<(String, bool)>,
    /// Names of the environment variables hashed.
    pub env: Vec<String>,
    /// Things the user should know (links skipped).
    pub warnings: Vec<String>,
}

/// The hasher with the stream's framing.
struct Stream(Sha256);

impl Stream {
    fn u64(&mut self, n: u64) {
        self.0.update(n.to_le_bytes());
    }
    fn u8(&mut self, n: u8) {
        self.0.update([n]);
    }
    fn field(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.0.update(bytes);
    }
    /// `field(content of path)`, streamed; fails if the file changes size while read.
    fn file(&mut self, path: &Path) -> anyhow::Result<u64> {
        let file =
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        self.u64(len);
        let mut limited = file.take(len);
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = 0u64;
        loop {
            let n = limited
                .read(&mut buf)
                .with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            self.0.update(&buf[..n]);
            seen += n as u64;
        }
        if seen != len {
            bail!("{} changed while it was read", path.display());
        }
        Ok(len)
    }
}

/// A source as it enters the key.
enum Source {
    File(PathBuf),
    Link(Vec<u8>),
}

/// Computes the key of `inputs`, with `env` the environment (passed in so tests need not
/// touch the process's).
pub fn compute(
    inputs: &Inputs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> anyhow::Result<Key> {
    let root = &inputs.root;
    let root_abs = std::fs::canonicalize(root)
        .with_context(|| format!("the root {} is not a directory", root.display()))?;
    if !root_abs.is_dir() {
        bail!("the root {} is not a directory", root.display());
    }
    let mut warnings = Vec::new();
    let mut s = Stream(Sha256::new());
    s.0.update(DOMAIN);

    // Sources, less outputs.
    let patterns = Patterns::new(&inputs.sources)?;
    let outputs = Patterns::new(&inputs.outputs)?;
    let mut sources: Vec<(Vec<u8>, Source)> = Vec::new();
    for (rel_b, found) in patterns.walk(&root_abs)? {
        if !outputs.is_empty() && outputs.is_match(&found.rel) {
            continue;
        }
        match found.kind {
            Kind::Dir => {}
            Kind::File => sources.push((rel_b, Source::File(found.abs))),
            Kind::Symlink => {
                let shown = String::from_utf8_lossy(&rel_b).into_owned();
                match select::link_inside(&root_abs, &found.rel, &found.abs)? {
                    None => warnings.push(format!(
                        "skipped {shown}: the link leads outside {}",
                        root.display()
                    )),
                    Some(dest) => {
                        let is_file = std::fs::metadata(&found.abs).is_ok_and(|m| m.is_file());
                        let entry = if is_file {
                            Source::File(found.abs)
                        } else {
                            Source::Link(select::rel_bytes(&dest))
                        };
                        sources.push((rel_b, entry));
                    }
                }
            }
        }
    }
    s.field(b"sources");
    s.u64(sources.len() as u64);
    let mut source_bytes = 0;
    let mut names = Vec::with_capacity(sources.len());
    for (rel, src) in &sources {
        s.field(rel);
        match src {
            Source::File(abs) => {
                s.u8(b'f');
                source_bytes += s.file(abs)?;
            }
            Source::Link(dest) => {
                s.u8(b'l');
                s.field(dest);
            }
        }
        names.push(String::from_utf8_lossy(rel).into_owned());
    }

    // The lockfile.
    s.field(b"lockfile");
    match &inputs.lockfile {
        None => s.u8(0),
        Some(lock) => {
            let path = root.join(lock);
            if !path.is_file() {
                bail!("the lockfile {} does not exist", path.display());
            }
            s.u8(1);
            s.file(&path)?;
        }
    }

    // Config files, by their name relative to the root.
    let mut configs: Vec<(Vec<u8>, PathBuf)> = inputs
        .configs
        .iter()
        .map(|c| (config_name(&root_abs, c), root_abs.join(c)))
        .collect();
    configs.sort_by(|a, b| a.0.cmp(&b.0));
    configs.dedup_by(|a, b| a.0 == b.0);
    s.field(b"configs");
    s.u64(configs.len() as u64);
    let mut config_report = Vec::new();
    for (name, path) in &configs {
        s.field(name);
        let present = path.is_file();
        if present {
            s.u8(1);
            s.file(path)?;
        } else {
            s.u8(0);
        }
        config_report.push((String::from_utf8_lossy(name).into_owned(), present));
    }

    // Environment variables with the given prefixes.
    let prefixes: Vec<Vec<u8>> = inputs
        .env_prefixes
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let mut vars: Vec<(Vec<u8>, Vec<u8>)> = env
        .into_iter()
        .map(|(k, v)| (select::os_bytes(&k), select::os_bytes(&v)))
        .filter(|(k, _)| prefixes.iter().any(|p| k.starts_with(p)))
        .collect();
    vars.sort();
    vars.dedup_by(|a, b| a.0 == b.0);
    s.field(b"env");
    s.u64(vars.len() as u64);
    for (k, v) in &vars {
        s.field(k);
        s.field(v);
    }

    // The command line and the output globs (`build run`).
    s.field(b"command");
    s.u64(inputs.command.len() as u64);
    for arg in &inputs.command {
        s.field(&select::os_bytes(arg));
    }
    let mut globs: Vec<&str> = inputs.outputs.iter().map(String::as_str).collect();
    globs.sort_unstable();
    globs.dedup();
    s.field(b"outputs");
    s.u64(globs.len() as u64);
    for g in globs {
        s.field(g.as_bytes());
    }

    Ok(Key {
        hex: hex::encode(s.0.finalize()),
        sources: names,
        source_bytes,
        configs: config_report,
        env: vars
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect(),
        warnings,
    })
}

/// A config file's name in the key: its path relative to the root, normalised.
fn config_name(root_abs: &Path, given: &Path) -> Vec<u8> {
    let joined = select::lexical(&root_abs.join(given));
    let rel = match joined.strip_prefix(root_abs) {
        Ok(inside) => inside.to_owned(),
        Err(_) => select::relative_to(root_abs, &joined),
    };
    let mut out = Vec::new();
    for c in rel.components() {
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(&select::os_bytes(c.as_os_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn inputs(root: &Path) -> Inputs {
        Inputs {
            root: root.to_owned(),
            sources: vec!["src/**".into(), "package.json".into()],
            lockfile: Some("package-lock.json".into()),
            configs: vec!["tsconfig.json".into(), "vite.config.ts".into()],
            env_prefixes: vec!["NODE_".into(), "VITE_".into()],
            ..Default::default()
        }
    }

    const FILES: &[(&str, &str)] = &[
        ("src/a.ts", "export const a = 1;\n"),
        ("src/b/c.ts", "export const c = 2;\n"),
        ("src/z.css", "body {}\n"),
        ("package.json", "{\"name\":\"x\"}"),
        ("package-lock.json", "{}"),
        ("tsconfig.json", "{\"strict\":true}"),
        ("README.md", "not a source"),
    ];

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn same_inputs_in_another_checkout_and_order_give_the_same_key() {
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        for (f, c) in FILES {
            write(one.path(), f, c);
        }
        for (f, c) in FILES.iter().rev() {
            write(two.path(), f, c);
        }
        let e1 = env(&[
            ("NODE_ENV", "production"),
            ("VITE_API", "x"),
            ("HOME", "/a"),
        ]);
        let e2 = env(&[
            ("HOME", "/b"),
            ("VITE_API", "x"),
            ("NODE_ENV", "production"),
        ]);
        let k1 = compute(&inputs(one.path()), e1).unwrap();
        let k2 = compute(&inputs(two.path()), e2).unwrap();
        assert_eq!(k1.hex, k2.hex);
        assert_eq!(k1.hex.len(), 64);
        assert_eq!(
            k1.sources,
            ["package.json", "src/a.ts", "src/b/c.ts", "src/z.css"]
        );
        assert_eq!(k1.env, ["NODE_ENV", "VITE_API"]);
        assert_eq!(
            k1.configs,
            [
                ("tsconfig.json".to_owned(), true),
                ("vite.config.ts".to_owned(), false)
            ]
        );
        // Globs in another order, `./` and a relative root spelled differently.
        let mut other = inputs(two.path());
        other.sources = vec!["./package.json".into(), "src".into()];
        other.root = two.path().join("src/..");
        other.configs.reverse();
        let e3 = env(&[("VITE_API", "x"), ("NODE_ENV", "production")]);
        assert_eq!(compute(&other, e3).unwrap().hex, k1.hex);
    }

    #[test]
    fn one_changed_byte_or_name_changes_the_key() {
        let d = tempfile::tempdir().unwrap();
        for (f, c) in FILES {
            write(d.path(), f, c);
        }
        let base = compute(&inputs(d.path()), env(&[])).unwrap().hex;
        let mut seen = std::collections::HashSet::from([base.clone()]);
        let mut fresh = |label: &str, hex: String| {
            assert!(seen.insert(hex), "{label} did not change the key");
        };
        write(d.path(), "src/a.ts", "export const a = 2;\n");
        fresh(
            "a source byte",
            compute(&inputs(d.path()), env(&[])).unwrap().hex,
        );
        write(d.path(), "src/a.ts", "export const a = 1;\n");
        assert_eq!(compute(&inputs(d.path()), env(&[])).unwrap().hex, base);
        std::fs::rename(d.path().join("src/z.css"), d.path().join("src/y.css")).unwrap();
        fresh(
            "a renamed source",
            compute(&inputs(d.path()), env(&[])).unwrap().hex,
        );
        write(d.path(), "vite.config.ts", "");
        fresh(
            "an empty config appearing",
            compute(&inputs(d.path()), env(&[])).unwrap().hex,
        );
        write(d.path(), "package-lock.json", "{ }");
        fresh(
            "the lockfile",
            compute(&inputs(d.path()), env(&[])).unwrap().hex,
        );
        let mut with_cmd = inputs(d.path());
        with_cmd.command = vec!["npm".into(), "run".into(), "build".into()];
        fresh("a command", compute(&with_cmd, env(&[])).unwrap().hex);
        with_cmd.command = vec!["npm".into(), "runbuild".into()];
        fresh(
            "the split of arguments",
            compute(&with_cmd, env(&[])).unwrap().hex,
        );
    }

    #[test]
    fn only_prefixed_environment_variables_count() {
        let d = tempfile::tempdir().unwrap();
        for (f, c) in FILES {
            write(d.path(), f, c);
        }
        let k = |e: &[(&str, &str)]| compute(&inputs(d.path()), env(e)).unwrap().hex;
        let base = k(&[("NODE_ENV", "production")]);
        assert_eq!(
            base,
            k(&[("NODE_ENV", "production"), ("PATH", "/x"), ("HOME", "/h")])
        );
        assert_eq!(base, k(&[("NODE_ENV", "production"), ("XNODE_ENV", "1")]));
        assert_ne!(base, k(&[("NODE_ENV", "development")]));
        assert_ne!(base, k(&[("NODE_ENV", "production"), ("VITE_X", "")]));
        // Other prefixes replace the defaults.
        let mut custom = inputs(d.path());
        custom.env_prefixes = vec!["NEXT_PUBLIC_".into()];
        let c1 = compute(&custom, env(&[("NODE_ENV", "a"), ("NEXT_PUBLIC_X", "1")])).unwrap();
        let c2 = compute(&custom, env(&[("NODE_ENV", "b"), ("NEXT_PUBLIC_X", "1")])).unwrap();
        assert_eq!(c1.hex, c2.hex);
        assert_eq!(c1.env, ["NEXT_PUBLIC_X"]);
    }

    #[test]
    fn outputs_are_not_sources_and_links_do_not_leave_the_root() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(d.path(), "src/a.ts", "a");
        write(outside.path(), "secret", "s");
        let mut i = Inputs {
            root: d.path().to_owned(),
            sources: vec!["**".into()],
            outputs: vec!["dist/**".into()],
            ..Default::default()
        };
        let before = compute(&i, env(&[])).unwrap();
        write(d.path(), "dist/out.js", "built");
        assert_eq!(compute(&i, env(&[])).unwrap().hex, before.hex);
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("src/esc"))
                .unwrap();
            let k = compute(&i, env(&[])).unwrap();
            assert_eq!(k.hex, before.hex);
            assert_eq!(k.warnings.len(), 1, "{:?}", k.warnings);
            std::os::unix::fs::symlink("a.ts", d.path().join("src/l.ts")).unwrap();
            let k = compute(&i, env(&[])).unwrap();
            assert_ne!(k.hex, before.hex);
            assert!(k.sources.contains(&"src/l.ts".to_owned()));
        }
        i.lockfile = Some("missing.lock".into());
        assert!(compute(&i, env(&[])).is_err());
    }
}
