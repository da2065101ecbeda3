//! `tiercache turbo-config DIR`: points a turbo workspace at this cache by writing
//! `DIR/.turbo/config.json` (the seed's `configureTurboCache`).
//!
//! turbo 2 reads `apiurl`, `teamslug` / `teamid` and `token` from that file (tried with
//! turbo 2.11.11: without `token` it says "Remote caching disabled"); `TURBO_API`,
//! `TURBO_TEAM`, `TURBO_TOKEN` and the `--api/--team/--token` flags override it. turbo
//! accepts camelCase spellings too (`apiUrl`, `teamSlug`, `teamId`) but refuses a file
//! with two spellings of one key ("duplicate field"), so every other spelling of a key
//! written here is removed; all other keys are kept. The file is replaced atomically.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

use super::args::TurboConfigArgs;
use crate::http;

/// The keys turbo reads, by their spelling folded to lowercase without `_`.
const API: &str = "apiurl";
const SLUG: &str = "teamslug";
const ID: &str = "teamid";
const TOKEN: &str = "token";

fn fold(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Merges the cache settings into an existing config object.
pub fn merge(
    mut config: Map<String, Value>,
    api: &str,
    team: &str,
    token: Option<&str>,
) -> Map<String, Value> {
    let mut replaced = vec![API, SLUG, ID];
    if token.is_some() {
        replaced.push(TOKEN);
    }
    config.retain(|k, _| !replaced.contains(&fold(k).as_str()));
    config.insert(API.into(), Value::String(api.into()));
    // turbo sends `teamId` only for values starting with `team_`; a slug otherwise.
    let team_key = if team.starts_with("team_") { ID } else { SLUG };
    config.insert(team_key.into(), Value::String(team.into()));
    if let Some(t) = token {
        config.insert(TOKEN.into(), Value::String(t.into()));
    }
    config
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    if token.contains(char::is_whitespace) || token.contains(char::is_control) {
        bail!(
            "the token file {} holds more than one word; it should hold only the token",
            path.display()
        );
    }
    Ok(token.to_owned())
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::fs::File, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Runs `tiercache turbo-config`.
pub fn run(args: TurboConfigArgs) -> anyhow::Result<()> {
    let api = http::server_base(&args.api)?;
    super::remote::check_team(&args.team)?;
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let turbo_dir = args.dir.join(".turbo");
    std::fs::create_dir_all(&turbo_dir)
        .with_context(|| format!("creating {}", turbo_dir.display()))?;
    let path = turbo_dir.join("config.json");
    let existing = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            _ => bail!(
                "{} is not a JSON object; fix or remove it first (it was left as it is)",
                path.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let had_token = existing.keys().any(|k| fold(k) == TOKEN);
    let merged = merge(existing, &api, &args.team, token.as_deref());
    let mut text = serde_json::to_string_pretty(&Value::Object(merged))?;
    text.push('\n');

    let mut tmp = tempfile::NamedTempFile::new_in(&turbo_dir)
        .with_context(|| format!("creating a file in {}", turbo_dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    // A file holding a token is for its owner's eyes only.
    set_mode(
        tmp.as_file(),
        if token.is_some() || had_token {
            0o600
        } else {
            0o644
        },
    )?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path)
        .with_context(|| format!("replacing {}", path.display()))?;

    let mut out = format!(
        "wrote {}: apiurl {api}, {} {}",
        path.display(),
        if args.team.starts_with("team_") {
            ID
        } else {
            SLUG
        },
        args.team
    );
    match &args.token_file {
        Some(f) => {
            // Keep the token out of version control even where .turbo is not ignored.
            let ignore = turbo_dir.join(".gitignore");
            let ignored_note = if ignore.exists() {
                String::new()
            } else {
                std::fs::write(&ignore, "*\n")
                    .with_context(|| format!("writing {}", ignore.display()))?;
                format!("; wrote {} so git ignores .turbo/", ignore.display())
            };
            out.push_str(&format!(
                ", token from {} (file mode 600{ignored_note})\n\
                 turbo reads the token there; TURBO_TOKEN, if set, wins. To keep it out of the \
                 file instead, drop --token-file and run: export TURBO_TOKEN=\"$(cat {})\"\n",
                f.display(),
                f.display()
            ));
        }
        None if had_token => out.push_str(", the token already there kept\n"),
        None => out.push_str(
            ", no token\nif the server requires one, rerun with --token-file FILE or \
             export TURBO_TOKEN=... before running turbo\n",
        ),
    }
    crate::stdout::print(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_unknown_keys_and_drops_other_spellings() {
        let existing: Map<String, Value> = serde_json::from_str(
            r#"{"apiUrl":"https://old","teamId":"team_old","TeamSlug":"x","token":"keep","ui":"tui"}"#,
        )
        .unwrap();
        let m = merge(existing.clone(), "http://h:1", "acme", None);
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"token":"keep","ui":"tui","apiurl":"http://h:1","teamslug":"acme"})
        );
        let m = merge(existing, "http://h:1", "team_abc", Some("s3cret"));
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"ui":"tui","apiurl":"http://h:1","teamid":"team_abc","token":"s3cret"})
        );
    }
}
