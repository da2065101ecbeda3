//! `[[templates]]` in the config file: what a template cache holds and how it is warmed,
//! checked when the file is loaded (by `tiercache template` and by `serve`).
//!
//! ```toml
//! [[templates]]
//! name = "react-vite"                                  # a template id, as in template/<id>
//! shared_dependencies = ["react", "vite@^6"]            # npm specs NAME[@RANGE]
//! shared_build_outputs = ["node_modules/.vite", ".vite/deps"]  # paths inside the project
//! warmup = "pnpm install && pnpm vite optimize"        # optional, run with `sh -c`
//! source = "templates/react-vite"                      # optional, relative to this file
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use tiercache_core::Scope;

use crate::prewarm::plan::Spec;

/// One `[[templates]]` table as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// The template id (`template/<name>` is its scope).
    pub name: String,
    /// npm packages (`NAME[@RANGE]`) the template's sandboxes install.
    #[serde(default)]
    pub shared_dependencies: Vec<String>,
    /// Paths, relative to the project, that the warmup produces and sandboxes restore.
    #[serde(default)]
    pub shared_build_outputs: Vec<String>,
    /// The shell command that produces the outputs (run with `sh -c` in a scratch copy).
    pub warmup: Option<String>,
    /// A directory of the template's base files, copied into the scratch directory.
    pub source: Option<PathBuf>,
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// A valid template id.
    pub name: String,
    /// Parsed npm specs, in the file's order.
    pub dependencies: Vec<Spec>,
    /// Normalised relative paths (no `./`, no trailing `/`).
    pub outputs: Vec<String>,
    /// The warmup command, if any (never blank).
    pub warmup: Option<String>,
    /// The source directory, resolved against the config file's directory.
    pub source: Option<PathBuf>,
}

/// Characters that would make a path a glob (outputs are literal paths).
const GLOB_CHARS: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

/// Checks one output path and normalises it: relative, inside the project, no glob.
pub fn check_output(path: &str) -> anyhow::Result<String> {
    let mut p = path.trim();
    while let Some(rest) = p.strip_prefix("./") {
        p = rest;
    }
    let p = p.trim_end_matches('/');
    if p.is_empty() || p == "." {
        bail!("the output {path:?} is empty; name a path inside the project, e.g. \".vite/deps\"");
    }
    if p.starts_with('/') {
        bail!("the output {path:?} is absolute; outputs are paths relative to the project");
    }
    if p.split('/').any(|c| c == "..") {
        bail!("the output {path:?} has a `..` component; outputs stay inside the project");
    }
    if p.starts_with('!') || p.contains(GLOB_CHARS) || p.contains(char::is_control) {
        bail!("the output {path:?} is not a plain path (no globs, `!` or control characters)");
    }
    Ok(p.to_owned())
}

impl Template {
    /// Checks one table; a relative `source` is taken relative to `base_dir`.
    pub fn from_file(t: &TemplateFile, base_dir: &Path) -> anyhow::Result<Self> {
        let name = t.name.trim();
        Scope::template(name).map_err(|e| anyhow::anyhow!("template {name:?}: {e}"))?;
        let within = |what: &str| format!("template {name:?}: {what}");
        let dependencies = t
            .shared_dependencies
            .iter()
            .map(|d| Spec::parse(d).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| within("shared_dependencies"))?;
        let mut outputs: Vec<String> = Vec::new();
        for o in &t.shared_build_outputs {
            let o = check_output(o).with_context(|| within("shared_build_outputs"))?;
            if !outputs.contains(&o) {
                outputs.push(o);
            }
        }
        let warmup = match t.warmup.as_deref().map(str::trim) {
            Some("") => bail!("{}", within("warmup is empty (leave it out instead)")),
            w => w.map(str::to_owned),
        };
        let source = t.source.as_ref().map(|s| base_dir.join(s));
        Ok(Template {
            name: name.to_owned(),
            dependencies,
            outputs,
            warmup,
            source,
        })
    }
}

/// Checks every `[[templates]]` table of the file at `config_path`; names are unique.
pub fn resolve(files: &[TemplateFile], config_path: &Path) -> anyhow::Result<Vec<Template>> {
    let base_dir = config_path.parent().unwrap_or(Path::new("."));
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let t = Template::from_file(f, base_dir)
            .with_context(|| format!("[[templates]] in {}", config_path.display()))?;
        if !seen.insert(t.name.clone()) {
            bail!(
                "[[templates]] in {}: the name {:?} is used twice",
                config_path.display(),
                t.name
            );
        }
        out.push(t);
    }
    Ok(out)
}

/// The templates of the config file at `path`.
pub fn load(path: &Path) -> anyhow::Result<Vec<Template>> {
    let file = crate::config::load_file(path)?;
    resolve(&file.templates, path)
}

/// The template `name` of the config file at `path`, or an error listing the known ones.
pub fn find(path: &Path, name: &str) -> anyhow::Result<Template> {
    let all = load(path)?;
    let known: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    let hint = if known.is_empty() {
        "it has no [[templates]]".to_owned()
    } else {
        format!("it has {}", known.join(", "))
    };
    all.iter()
        .find(|t| t.name == name)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no template {name:?} in {} ({hint})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    fn parse(text: &str) -> anyhow::Result<Vec<Template>> {
        let file: FileConfig = toml::from_str(text)?;
        resolve(&file.templates, Path::new("/etc/tiercache/tiercache.toml"))
    }

    #[test]
    fn the_example_config_has_both_seed_templates() {
        let text = include_str!("../../../../examples/tiercache.toml");
        let all = parse(text).unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["react-vite", "nextjs"]);
        let rv = &all[0];
        let deps: Vec<&str> = rv.dependencies.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            deps,
            [
                "react",
                "react-dom",
                "vite",
                "@vitejs/plugin-react",
                "typescript",
                "tailwindcss",
                "postcss",
                "autoprefixer"
            ]
        );
        assert_eq!(rv.outputs, ["node_modules/.vite", ".vite/deps"]);
        assert_eq!(
            rv.warmup.as_deref(),
            Some("pnpm install && pnpm vite optimize")
        );
        let next = &all[1];
        assert_eq!(next.dependencies.len(), 6);
        assert_eq!(next.outputs, [".next/cache", "node_modules/.cache"]);
        assert_eq!(
            next.warmup.as_deref(),
            Some("pnpm install && pnpm next build --no-lint")
        );
    }

    #[test]
    fn serve_accepts_the_example_and_refuses_bad_templates() {
        use crate::cli::ServeArgs;
        use crate::config::ServeConfig;
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tiercache.toml");
        let args = ServeArgs {
            config: Some(example),
            npm_upstream: Some("http://127.0.0.1:9/".into()),
            ..Default::default()
        };
        ServeConfig::resolve(args).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[templates]]\nname = \"t\"\nshared_build_outputs = [\"../up\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            npm_upstream: Some("http://127.0.0.1:9/".into()),
            ..Default::default()
        };
        let e = format!("{:#}", ServeConfig::resolve(args).unwrap_err());
        assert!(e.contains("`..`"), "{e}");
    }

    #[test]
    fn specs_paths_and_sources_are_normalised() {
        let all = parse(
            "[[templates]]\nname = \"t\"\nshared_dependencies = [\"@types/react@^18\", \"vite\"]\n\
             shared_build_outputs = [\"./dist/\", \"dist\", \".cache\"]\nsource = \"base\"\n",
        )
        .unwrap();
        let t = &all[0];
        assert_eq!(t.dependencies[0].name, "@types/react");
        assert_eq!(t.dependencies[0].range.as_deref(), Some("^18"));
        assert_eq!(t.dependencies[1].range, None);
        assert_eq!(t.outputs, ["dist", ".cache"]);
        assert_eq!(t.source.as_deref(), Some(Path::new("/etc/tiercache/base")));
        assert_eq!(t.warmup, None);
    }

    #[test]
    fn bad_templates_are_explained() {
        let err = |text: &str| format!("{:#}", parse(text).unwrap_err());
        let e = err("[[templates]]\nname = \"t\"\nshared_build_outputs = [\"/etc\"]\n");
        assert!(e.contains("absolute") && e.contains("\"t\""), "{e}");
        let e = err("[[templates]]\nname = \"t\"\nshared_build_outputs = [\"a/../../x\"]\n");
        assert!(e.contains("`..`"), "{e}");
        let e = err("[[templates]]\nname = \"t\"\nshared_build_outputs = [\"dist/**\"]\n");
        assert!(e.contains("not a plain path"), "{e}");
        let e = err("[[templates]]\nname = \"../x\"\n");
        assert!(e.contains("template id"), "{e}");
        let e = err("[[templates]]\nname = \"a\"\n[[templates]]\nname = \"a\"\n");
        assert!(e.contains("used twice"), "{e}");
        let e = err("[[templates]]\nname = \"t\"\nshared_dependencies = [\"Not A Name\"]\n");
        assert!(e.contains("not an npm package name"), "{e}");
        let e = err("[[templates]]\nname = \"t\"\nwarmup = \"  \"\n");
        assert!(e.contains("warmup is empty"), "{e}");
        assert!(parse("[[templates]]\nname = \"t\"\nwarmups = \"x\"\n").is_err());
    }
}
