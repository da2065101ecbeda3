//! Reading the log: the rotated files oldest first, then `current.jsonl`; lines that do not
//! parse (a line torn by a crash, or being written right now) are skipped.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::record::{Action, AuditRecord};
use super::{AuditError, CURRENT};

/// Records a query returns unless told otherwise.
pub const DEFAULT_LIMIT: usize = 1000;

/// Which records a query returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this principal's (a user id, or `anonymous`).
    pub user: Option<String>,
    /// Only records at or after this time (milliseconds since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only this action.
    pub action: Option<Action>,
    /// At most this many: the newest ones, still oldest first.
    pub limit: usize,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            user: None,
            since_ms: None,
            action: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl AuditFilter {
    /// Whether `rec` passes the filter.
    pub fn matches(&self, rec: &AuditRecord) -> bool {
        self.user.as_deref().is_none_or(|u| rec.principal == u)
            && self.since_ms.is_none_or(|t| rec.time_ms >= t)
            && self.action.is_none_or(|a| rec.action == a)
    }
}

/// A rotated file: `audit-<first_time_ms>-<seq>.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rotated {
    pub path: PathBuf,
    pub first_time_ms: u64,
    pub seq: u64,
}

fn parse_rotated(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    let (time, seq) = stem.split_once('-')?;
    Some((time.parse().ok()?, seq.parse().ok()?))
}

/// The rotated files in `dir`, oldest (lowest sequence number) first.
pub(super) fn list_rotated(dir: &Path) -> io::Result<Vec<Rotated>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some((first_time_ms, seq)) = name.to_str().and_then(parse_rotated) else {
            continue;
        };
        out.push(Rotated {
            path: entry.path(),
            first_time_ms,
            seq,
        });
    }
    out.sort_by_key(|r| (r.seq, r.first_time_ms));
    Ok(out)
}

/// Reads the log in `dir` (`<data_dir>/audit`) without a running writer: the records
/// matching `filter`, oldest first (the newest `filter.limit` of them). A missing directory
/// has no records. Safe while a server writes the log: `current.jsonl` is opened before the
/// rotated files are listed, and a rotated file that is the same file is skipped.
pub fn read_dir(dir: &Path, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
    let mut out = VecDeque::new();
    if filter.limit == 0 {
        return Ok(Vec::new());
    }
    visit(dir, filter.since_ms, |line| {
        let Ok(rec) = serde_json::from_slice::<AuditRecord>(line) else {
            return;
        };
        if filter.matches(&rec) {
            if out.len() == filter.limit {
                out.pop_front();
            }
            out.push_back(rec);
        }
    })?;
    Ok(out.into())
}

/// The ids of every user-role principal in the log in `dir` (the server's users, as far as
/// the log has seen them), for the leakage scan; anonymous callers, warmers and admins are
/// left out.
pub fn user_principals(dir: &Path) -> Result<BTreeSet<String>, AuditError> {
    #[derive(serde::Deserialize)]
    struct Who {
        principal: String,
        role: tiercache_core::Role,
    }
    let mut out = BTreeSet::new();
    visit(dir, None, |line| {
        if let Ok(who) = serde_json::from_slice::<Who>(line)
            && who.role == tiercache_core::Role::User
            && who.principal != super::ANONYMOUS
            && !out.contains(&who.principal)
        {
            out.insert(who.principal);
        }
    })?;
    Ok(out)
}

/// Hands every line of the log in `dir` (rotated files oldest first, then `current.jsonl`)
/// to `f`, skipping rotated files wholly before `since_ms`. A missing directory has no lines.
/// Safe while a server writes the log: `current.jsonl` is opened before the rotated files
/// are listed, and a rotated file that is the same file is skipped.
fn visit(dir: &Path, since_ms: Option<u64>, mut f: impl FnMut(&[u8])) -> Result<(), AuditError> {
    let io_err = |what: String| move |e| AuditError::io(what, e);
    let current_path = dir.join(CURRENT);
    let current = match File::open(&current_path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(format!("opening {}", current_path.display()))(e)),
    };
    let rotated = match list_rotated(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("listing {}", dir.display()))(e)),
    };
    let current_id = current.as_ref().and_then(file_id);
    for (i, r) in rotated.iter().enumerate() {
        // Every record of a file is older than the next file's first record (clock
        // permitting): skip whole files before `since`.
        if let (Some(since), Some(next)) = (since_ms, rotated.get(i + 1))
            && next.first_time_ms < since
        {
            continue;
        }
        let file = match File::open(&r.path) {
            Ok(f) => f,
            // Deleted by rotation meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(format!("opening {}", r.path.display()))(e)),
        };
        if current_id.is_some() && file_id(&file) == current_id {
            continue;
        }
        read_lines(file, &mut f).map_err(io_err(format!("reading {}", r.path.display())))?;
    }
    if let Some(file) = current {
        read_lines(file, &mut f).map_err(io_err(format!("reading {}", current_path.display())))?;
    }
    Ok(())
}

fn read_lines(file: File, f: &mut impl FnMut(&[u8])) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        f(&line);
    }
}

#[cfg(unix)]
fn file_id(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(_file: &File) -> Option<(u64, u64)> {
    None
}

/// Parses a `since` bound: milliseconds since the Unix epoch (`1718000000000`), an RFC 3339
/// time (`2024-06-10T08:00:00Z`) or date (`2024-06-10`), or a duration back from `now_ms`
/// (`90s`, `1h`, `7d`).
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, AuditError> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| AuditError::Invalid(format!("since: {s} is too large")));
    }
    let date_only = s.len() == 10 && s.as_bytes().get(4) == Some(&b'-');
    let stamp = if date_only {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    if let Ok(t) = humantime::parse_rfc3339_weak(&stamp) {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        return Ok(ms);
    }
    if let Ok(d) = humantime::parse_duration(s) {
        let back = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        return Ok(now_ms.saturating_sub(back));
    }
    Err(AuditError::Invalid(format!(
        "since: {:?} is not a time; use milliseconds since the epoch, an RFC 3339 time \
         (2024-06-10T08:00:00Z) or a duration back from now (90s, 1h, 7d)",
        s.chars().take(60).collect::<String>()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_millis_rfc3339_dates_and_durations() {
        let now = 1_718_006_400_000; // 2024-06-10T08:00:00Z
        assert_eq!(
            parse_since("1718000000000", now).unwrap(),
            1_718_000_000_000
        );
        assert_eq!(parse_since("2024-06-10T08:00:00Z", now).unwrap(), now);
        assert_eq!(
            parse_since("2024-06-10T08:00:00.250Z", now).unwrap(),
            now + 250
        );
        assert_eq!(parse_since("2024-06-10", now).unwrap(), now - 8 * 3_600_000);
        assert_eq!(parse_since("1h", now).unwrap(), now - 3_600_000);
        assert_eq!(parse_since("90s", now).unwrap(), now - 90_000);
        for bad in ["", "yesterday", "2024-13-45", "-5", "1h later"] {
            let e = parse_since(bad, now).unwrap_err().to_string();
            assert!(e.contains("since"), "{bad}: {e}");
        }
    }

    #[test]
    fn rotated_names_parse() {
        assert_eq!(parse_rotated("audit-1700-3.jsonl"), Some((1700, 3)));
        assert_eq!(parse_rotated("current.jsonl"), None);
        assert_eq!(parse_rotated("audit-x-3.jsonl"), None);
        assert_eq!(parse_rotated("audit-17-3.jsonl.tmp"), None);
    }
}
