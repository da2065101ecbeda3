//! Crash-safe files: every write goes to `<name>.tmp`, is fsynced, renamed over `<name>`,
//! and the directory fsynced; a crash leaves the old file or the new one, plus at worst
//! a `.tmp` that [`clean_temp`] removes at start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The suffix of unfinished writes.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Writes every `(name, bytes)` in `dir`: all temp files first (each fsynced), then all
/// renames, then one directory fsync. Once it returns, every file is durable.
pub fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> io::Result<()> {
    for (name, bytes) in files {
        let tmp = dir.join(format!("{name}{TEMP_SUFFIX}"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    for (name, _) in files {
        fs::rename(dir.join(format!("{name}{TEMP_SUFFIX}")), dir.join(name))?;
    }
    sync_dir(dir)
}

/// Removes `name` from `dir` durably (absent is fine).
pub fn remove(dir: &Path, name: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the debris of writes a crash interrupted.
pub fn clean_temp(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.to_string_lossy().ends_with(TEMP_SUFFIX) {
            fs::remove_file(&path)?;
            n += 1;
        }
    }
    Ok(n)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_debris_is_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        write_all(dir.path(), &[("a.json".into(), b"1".to_vec())]).unwrap();
        write_all(
            dir.path(),
            &[
                ("a.json".into(), b"2".to_vec()),
                ("b.json".into(), b"3".to_vec()),
            ],
        )
        .unwrap();
        assert_eq!(fs::read(dir.path().join("a.json")).unwrap(), b"2");
        fs::write(dir.path().join("c.json.tmp"), b"torn").unwrap();
        assert_eq!(clean_temp(dir.path()).unwrap(), 1);
        remove(dir.path(), "b.json").unwrap();
        remove(dir.path(), "b.json").unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a.json"]);
    }
}
