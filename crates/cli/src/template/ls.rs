//! `tiercache template ls`: the templates of the config file, one per line.

use std::fmt::Write as _;

use super::args::LsArgs;
use super::config::{self, Template};

/// One line per template: name, dependencies, outputs, warmup.
pub fn render(templates: &[Template]) -> String {
    let mut out = String::new();
    for t in templates {
        let deps: Vec<String> = t
            .dependencies
            .iter()
            .map(|d| match &d.range {
                Some(r) => format!("{}@{r}", d.name),
                None => d.name.clone(),
            })
            .collect();
        let _ = writeln!(
            out,
            "{}\tdependencies: {}\toutputs: {}\twarmup: {}",
            t.name,
            if deps.is_empty() {
                "-".into()
            } else {
                deps.join(" ")
            },
            if t.outputs.is_empty() {
                "-".into()
            } else {
                t.outputs.join(" ")
            },
            t.warmup.as_deref().unwrap_or("-")
        );
    }
    out
}

/// Runs `tiercache template ls`.
pub fn run(args: LsArgs) -> anyhow::Result<()> {
    let path = super::config_path(&args.config)?;
    let templates = config::load(&path)?;
    if templates.is_empty() {
        super::note(&format!("{} has no [[templates]]", path.display()));
    }
    crate::stdout::print(&render(&templates))
}
