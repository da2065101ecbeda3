//! Artifacts: a tar of output paths (relative, `/` separators), compressed with zstd.
//!
//! Packing stores regular files, directories, and links that stay inside the root (a link
//! that leaves it is skipped with a warning); times are zero and owners root, so the same
//! outputs make the same bytes. Unpacking trusts nothing: it reads the whole archive once
//! to check it before writing anything, and refuses absolute paths, `..`, hard links,
//! devices and FIFOs, links that leave the target directory or climb out of another link,
//! and entries beneath a link. While writing it never follows a link already on disk.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tar::{EntryType, Header};

use super::select::{self, Kind, Patterns};

/// zstd level: fast to write, still small (what turbo uses too).
const LEVEL: i32 = 3;

/// What was packed or unpacked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    /// Bytes of file content (uncompressed).
    pub bytes: u64,
    pub warnings: Vec<String>,
}

impl Summary {
    /// "3 files (1.2 KiB), 1 directory, 1 link".
    pub fn describe(&self) -> String {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut s = format!(
            "{} ({})",
            plural(self.files, "file", "files"),
            bytesize::ByteSize(self.bytes)
        );
        if self.dirs > 0 {
            s.push_str(&format!(
                ", {}",
                plural(self.dirs, "directory", "directories")
            ));
        }
        if self.links > 0 {
            s.push_str(&format!(", {}", plural(self.links, "link", "links")));
        }
        s
    }
}

/// Reads exactly `len` bytes from a file, or fails if it shrank meanwhile (a tar entry
/// shorter than its header would corrupt the archive).
struct Exact<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

/// Packs what `outputs` picks under `root` into `dest` (a zstd tar).
pub fn pack(root: &Path, outputs: &[String], dest: &mut File) -> anyhow::Result<Summary> {
    let root_abs = std::fs::canonicalize(root)
        .with_context(|| format!("the root {} is not a directory", root.display()))?;
    let found = Patterns::new(outputs)?.walk(&root_abs)?;
    let mut summary = Summary::default();
    // Every picked path's ancestors go in as directories, so the archive is whole.
    let mut dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    for f in found.values() {
        let mut parent = f.rel.parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(select::rel_bytes(p));
            parent = p.parent();
        }
    }
    let mut entries: Vec<(Vec<u8>, Option<&select::Found>)> =
        found.iter().map(|(k, f)| (k.clone(), Some(f))).collect();
    for d in dirs {
        if !found.contains_key(&d) {
            entries.push((d, None));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let encoder =
        zstd::stream::write::Encoder::new(BufWriter::new(dest), LEVEL).context("starting zstd")?;
    let mut tar = tar::Builder::new(encoder);
    for (rel, f) in entries {
        let rel_path = bytes_path(&rel);
        match f {
            None => {
                let mut h = header(EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, &rel_path, io::empty())?;
                summary.dirs += 1;
            }
            Some(f) => match f.kind {
                Kind::Dir => {
                    let mut h = header(EntryType::Directory, 0o755, 0);
                    tar.append_data(&mut h, &rel_path, io::empty())?;
                    summary.dirs += 1;
                }
                Kind::File => {
                    let file = File::open(&f.abs)
                        .with_context(|| format!("reading {}", f.abs.display()))?;
                    let meta = file.metadata()?;
                    let mode = if is_executable(&meta) { 0o755 } else { 0o644 };
                    let len = meta.len();
                    let mut h = header(EntryType::Regular, mode, len);
                    let reader = Exact {
                        inner: file.take(len),
                        left: len,
                    };
                    tar.append_data(&mut h, &rel_path, reader)
                        .with_context(|| format!("packing {}", f.abs.display()))?;
                    summary.files += 1;
                    summary.bytes += len;
                }
                Kind::Symlink => {
                    let shown = String::from_utf8_lossy(&rel).into_owned();
                    let Some(dest) = select::link_inside(&root_abs, &f.rel, &f.abs)? else {
                        summary.warnings.push(format!(
                            "skipped {shown}: the link leads outside {}",
                            root.display()
                        ));
                        continue;
                    };
                    let target = std::fs::read_link(&f.abs)?;
                    // Absolute targets are stored relative, so they survive another root.
                    let stored = if target.is_absolute() {
                        let from = f.rel.parent().unwrap_or(Path::new(""));
                        select::relative_to(&Path::new("/").join(from), &Path::new("/").join(dest))
                    } else {
                        target
                    };
                    let mut h = header(EntryType::Symlink, 0o777, 0);
                    tar.append_link(&mut h, &rel_path, &stored)
                        .with_context(|| format!("packing the link {shown}"))?;
                    summary.links += 1;
                }
            },
        }
    }
    let encoder = tar.into_inner().context("finishing the tar")?;
    let mut out = encoder.finish().context("finishing zstd")?;
    out.flush()?;
    Ok(summary)
}

/// The path of `/`-separated bytes.
fn bytes_path(b: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(b))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(b).into_owned())
    }
}

/// An entry's path checked: relative, no `..`, not empty. Returns its components.
fn safe_path(raw: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let shown = String::from_utf8_lossy(raw);
    if raw.starts_with(b"/") {
        bail!("refusing the archive: {shown:?} is an absolute path");
    }
    if raw.contains(&0) {
        bail!("refusing the archive: {shown:?} contains NUL");
    }
    let mut parts = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => bail!("refusing the archive: {shown:?} has a `..` component"),
            _ => parts.push(c.to_vec()),
        }
    }
    if parts.is_empty() {
        bail!("refusing the archive: an entry has an empty path");
    }
    Ok(parts)
}

/// One checked entry.
enum Planned {
    Dir,
    File,
    Link(Vec<u8>),
}

fn open_archive(
    path: &Path,
) -> anyhow::Result<tar::Archive<zstd::stream::read::Decoder<'static, BufReader<File>>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let decoder = zstd::stream::read::Decoder::new(file).context("starting zstd")?;
    Ok(tar::Archive::new(decoder))
}

/// The first pass: every entry's path and kind, checked; the links' targets too.
fn check(archive: &Path) -> anyhow::Result<Vec<(Vec<Vec<u8>>, Planned)>> {
    let mut ar = open_archive(archive)?;
    let mut plan = Vec::new();
    for entry in ar.entries().context("reading the archive")? {
        let entry = entry.context("reading the archive")?;
        let kind = entry.header().entry_type();
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let planned = match kind {
            EntryType::Regular | EntryType::Continuous => Planned::File,
            EntryType::Directory => Planned::Dir,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                Planned::Link(target)
            }
            EntryType::XGlobalHeader => continue,
            EntryType::Link => bail!("refusing the archive: {shown:?} is a hard link"),
            EntryType::Char | EntryType::Block => {
                bail!("refusing the archive: {shown:?} is a device file")
            }
            EntryType::Fifo => bail!("refusing the archive: {shown:?} is a FIFO"),
            other => bail!("refusing the archive: {shown:?} has the unsupported type {other:?}"),
        };
        plan.push((safe_path(&raw)?, planned));
    }
    let links: HashSet<&[Vec<u8>]> = plan
        .iter()
        .filter(|(_, p)| matches!(p, Planned::Link(_)))
        .map(|(parts, _)| parts.as_slice())
        .collect();
    for (parts, planned) in &plan {
        let shown = String::from_utf8_lossy(&parts.join(&b'/')).into_owned();
        for i in 1..parts.len() {
            if links.contains(&parts[..i]) {
                bail!("refusing the archive: {shown:?} lies beneath a link");
            }
        }
        if let Planned::Link(target) = planned {
            check_link(parts, target, |p| links.contains(p))
                .map_err(|why| anyhow::anyhow!("refusing the archive: the link {shown:?} {why}"))?;
        }
    }
    Ok(plan)
}

/// A link's target may not be absolute, leave the directory, or pass through another
/// link (in the archive, or on disk per `is_link`) before its last component.
fn check_link(
    link: &[Vec<u8>],
    target: &[u8],
    is_link: impl Fn(&[Vec<u8>]) -> bool,
) -> Result<(), String> {
    if target.is_empty() {
        return Err("has an empty target".into());
    }
    if target.starts_with(b"/") {
        return Err("points at an absolute path".into());
    }
    let mut stack: Vec<Vec<u8>> = link[..link.len() - 1].to_vec();
    let comps: Vec<&[u8]> = target
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    for (i, c) in comps.iter().enumerate() {
        if *c == b".." {
            if stack.pop().is_none() {
                return Err("points outside the directory".into());
            }
        } else {
            stack.push(c.to_vec());
            if i + 1 < comps.len() && is_link(&stack) {
                return Err("passes through another link".into());
            }
        }
    }
    Ok(())
}

/// Ensures `dir/parts[..]` are real directories (never links), creating missing ones.
fn make_parents(dir: &Path, parts: &[Vec<u8>]) -> anyhow::Result<PathBuf> {
    let mut p = dir.to_owned();
    for c in parts {
        p.push(bytes_path(c));
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "cannot restore beneath {}: it is not a directory (a file or link is in the way)",
                p.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", p.display())),
        }
    }
    Ok(p)
}

/// Removes a file or link at `p` so a new entry can take its place; a directory there is
/// an error for non-directories.
fn clear(p: &Path, for_dir: bool) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            if for_dir {
                Ok(true)
            } else {
                bail!("cannot restore {}: a directory is in the way", p.display())
            }
        }
        Ok(_) => {
            std::fs::remove_file(p).with_context(|| format!("replacing {}", p.display()))?;
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

#[cfg(unix)]
fn set_mode(file: &File, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &File, _: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn make_link(target: &[u8], at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(bytes_path(target), at)
}

#[cfg(not(unix))]
fn make_link(_: &[u8], at: &Path) -> io::Result<()> {
    Err(io::Error::other(format!(
        "cannot create the link {}: links are restored on Unix only",
        at.display()
    )))
}

/// Unpacks the zstd tar at `archive` into `into` (created if missing), after checking all
/// of it; files and directories first, links last.
pub fn unpack(archive: &Path, into: &Path) -> anyhow::Result<Summary> {
    let plan = check(archive)?;
    std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
    let dir = std::fs::canonicalize(into)?;
    let mut summary = Summary::default();
    let mut ar = open_archive(archive)?;
    let mut index = 0usize;
    for entry in ar.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let Some((parts, planned)) = plan.get(index) else {
            bail!("the archive changed while it was read");
        };
        index += 1;
        let (last, parents) = parts.split_last().context("an entry has an empty path")?;
        match planned {
            Planned::Dir => {
                let parent = make_parents(&dir, parents)?;
                let p = parent.join(bytes_path(last));
                if !clear(&p, true)? {
                    std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
                }
                summary.dirs += 1;
            }
            Planned::File => {
                let parent = make_parents(&dir, parents)?;
                let p = parent.join(bytes_path(last));
                clear(&p, false)?;
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .with_context(|| format!("creating {}", p.display()))?;
                let n = io::copy(&mut entry, &mut file)
                    .with_context(|| format!("writing {}", p.display()))?;
                set_mode(&file, executable)?;
                summary.files += 1;
                summary.bytes += n;
            }
            Planned::Link(_) => {}
        }
    }
    for (parts, planned) in &plan {
        let Planned::Link(target) = planned else {
            continue;
        };
        let (last, parents) = parts.split_last().context("an entry has an empty path")?;
        let shown = String::from_utf8_lossy(&parts.join(&b'/')).into_owned();
        // Links already on disk (not from this archive) count too: none may be crossed.
        check_link(parts, target, |p| {
            let on_disk = p.iter().fold(dir.clone(), |acc, c| acc.join(bytes_path(c)));
            std::fs::symlink_metadata(on_disk).is_ok_and(|m| m.file_type().is_symlink())
        })
        .map_err(|why| anyhow::anyhow!("refusing the link {shown:?}: it {why}"))?;
        let parent = make_parents(&dir, parents)?;
        let p = parent.join(bytes_path(last));
        clear(&p, false)?;
        make_link(target, &p).with_context(|| format!("creating the link {}", p.display()))?;
        summary.links += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zstd tar written by hand, so it can hold what `pack` never would.
    fn crafted(entries: &[(&str, EntryType, &str)]) -> tempfile::NamedTempFile {
        let out = tempfile::NamedTempFile::new().unwrap();
        let enc = zstd::stream::write::Encoder::new(out.reopen().unwrap(), 3).unwrap();
        let mut tar = tar::Builder::new(enc);
        for (path, kind, data) in entries {
            let mut h = Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            let bytes = path.as_bytes();
            // Write the name raw: `set_path` itself refuses `..` and absolute paths.
            let name = &mut h.as_old_mut().name;
            name[..bytes.len()].copy_from_slice(bytes);
            if matches!(kind, EntryType::Symlink | EntryType::Link) {
                h.set_link_name(data).unwrap();
                h.set_size(0);
                h.set_cksum();
                tar.append(&h, io::empty()).unwrap();
            } else {
                h.set_size(data.len() as u64);
                h.set_cksum();
                tar.append(&h, data.as_bytes()).unwrap();
            }
        }
        tar.into_inner().unwrap().finish().unwrap();
        out
    }

    fn refused(entries: &[(&str, EntryType, &str)]) -> String {
        let a = crafted(entries);
        let into = tempfile::tempdir().unwrap();
        let err = unpack(a.path(), &into.path().join("out")).unwrap_err();
        // Nothing was written: the check comes first.
        assert!(!into.path().join("out").exists(), "wrote before refusing");
        format!("{err:#}")
    }

    #[test]
    fn hostile_archives_are_refused_before_anything_is_written() {
        use EntryType::*;
        let ok = ("fine.txt", Regular, "x");
        assert!(refused(&[ok, ("../x", Regular, "evil")]).contains("`..`"));
        assert!(refused(&[ok, ("a/../../x", Regular, "evil")]).contains("`..`"));
        assert!(refused(&[ok, ("/abs", Regular, "evil")]).contains("absolute"));
        assert!(refused(&[ok, ("l", Symlink, "../../etc")]).contains("outside"));
        assert!(refused(&[ok, ("l", Symlink, "/etc/passwd")]).contains("absolute"));
        assert!(refused(&[ok, ("l", Symlink, "a/../..")]).contains("outside"));
        assert!(refused(&[ok, ("h", Link, "fine.txt")]).contains("hard link"));
        assert!(refused(&[ok, ("dev", Char, "")]).contains("device"));
        assert!(refused(&[ok, ("f", Fifo, "")]).contains("FIFO"));
        // A link to `.` and another that climbs out through it.
        assert!(
            refused(&[("up", Symlink, "."), ("x", Symlink, "up/../..")])
                .contains("through another link")
        );
        assert!(
            refused(&[("d", Symlink, "sub"), ("e", Symlink, "d/../../x")])
                .contains("through another link")
        );
        assert!(
            refused(&[("d", Symlink, "sub/deeper"), ("e", Symlink, "d/../x")])
                .contains("through another link")
        );
        // Writing beneath a link of the archive.
        assert!(refused(&[("d", Symlink, "sub"), ("d/x", Regular, "x")]).contains("beneath"));
    }

    #[cfg(unix)]
    #[test]
    fn links_on_disk_are_never_written_through() {
        use EntryType::*;
        let outside = tempfile::tempdir().unwrap();
        let into = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), into.path().join("dist")).unwrap();
        let a = crafted(&[("dist/x", Regular, "evil")]);
        assert!(unpack(a.path(), into.path()).is_err());
        assert!(!outside.path().join("x").exists());
        // A file at the path of an existing link replaces the link, not its target.
        std::fs::remove_file(into.path().join("dist")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("y"), into.path().join("y")).unwrap();
        let a = crafted(&[("y", Regular, "mine")]);
        unpack(a.path(), into.path()).unwrap();
        assert!(!outside.path().join("y").exists());
        assert_eq!(
            std::fs::read_to_string(into.path().join("y")).unwrap(),
            "mine"
        );
        // A link through a link already on disk.
        std::os::unix::fs::symlink(outside.path(), into.path().join("out")).unwrap();
        let a = crafted(&[("z", Symlink, "out/x")]);
        assert!(unpack(a.path(), into.path()).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn pack_then_unpack_round_trips() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("dist/sub/empty")).unwrap();
        std::fs::write(r.join("dist/a.js"), "a").unwrap();
        std::fs::write(r.join("dist/sub/b.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::write(r.join("dist/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            r.join("dist/run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink("a.js", r.join("dist/link.js")).unwrap();
        symlink(r.join("dist/sub"), r.join("dist/abs-link")).unwrap();
        symlink(outside.path(), r.join("dist/escape")).unwrap();
        std::fs::write(r.join("other.txt"), "not an output").unwrap();
        let archive = tempfile::NamedTempFile::new().unwrap();
        let packed = pack(r, &["dist".into()], &mut archive.reopen().unwrap()).unwrap();
        assert_eq!(packed.files, 3);
        assert_eq!(packed.links, 2);
        assert_eq!(packed.warnings.len(), 1, "{:?}", packed.warnings);
        let into = tempfile::tempdir().unwrap();
        let got = unpack(archive.path(), into.path()).unwrap();
        assert_eq!((got.files, got.links, got.bytes), (3, 2, packed.bytes));
        let i = into.path();
        assert_eq!(
            std::fs::read(i.join("dist/sub/b.bin")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(
            std::fs::read_to_string(i.join("dist/link.js")).unwrap(),
            "a"
        );
        assert_eq!(
            std::fs::read_link(i.join("dist/abs-link")).unwrap(),
            Path::new("sub")
        );
        assert!(i.join("dist/sub/empty").is_dir());
        assert!(!i.join("dist/escape").exists());
        assert!(!i.join("other.txt").exists());
        let mode = std::fs::metadata(i.join("dist/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        // The same outputs make the same bytes.
        let again = tempfile::NamedTempFile::new().unwrap();
        pack(r, &["dist".into()], &mut again.reopen().unwrap()).unwrap();
        assert_eq!(
            std::fs::read(archive.path()).unwrap(),
            std::fs::read(again.path()).unwrap()
        );
    }
}
