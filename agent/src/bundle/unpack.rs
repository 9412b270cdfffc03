//! Reading a bundle (gzip tar) into memory with every entry checked, and installing its files
//! into a stack's directory with a manifest.
//!
//! A path is a file or a directory, never both: a bundle holding a file `a` and a file `a/b`
//! is refused when read. What the tar reader takes in by itself (GNU long names and links, PAX
//! records, headers, padding, the data of entries it skips) is bounded too: everything read
//! from the gzip stream counts, so no entry of any kind makes the reader hold more than
//! [`Limits::decompressed`]. A PAX global header (`git archive` writes one) is metadata and
//! skipped.
//!
//! Before the first write, [`install`] checks where each file goes against the disk: a
//! directory of the previous bundle that is now a file (or the reverse) is cleared first, its
//! files removed, when the previous manifest lists every file in it; anything else in the way
//! (a file no bundle installed) is refused naming it, nothing written or removed
//! (`fetch-bundle` exits 65): the bundle never removes what it does not own.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path};
use std::rc::Rc;

use gantry_common::fsx::{Owner, write_atomic};
use serde::{Deserialize, Serialize};

use super::{BundleError, MANIFEST, MAX_ENTRIES, MAX_UNPACKED, is_manifest_path};

/// Deepest path in a bundle.
pub(super) const MAX_DEPTH: usize = 8;

/// What tar headers, their padding, long names and PAX records may add to the files'
/// contents: 2,000 entries with a long name of a few hundred bytes each fit with room.
const HEADER_ALLOWANCE: u64 = 8 * 1024 * 1024;

/// One file of a bundle: its relative path (`/`-separated), mode and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

/// What [`install`] did, by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    sha256: String,
    files: BTreeSet<String>,
}

/// How much reading one bundle may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// The files' contents, in all.
    pub unpacked: u64,
    /// Everything read from the gzip stream (headers, extensions and skipped data included).
    pub decompressed: u64,
}

impl Limits {
    /// What hosts allow.
    pub const HOST: Limits = Limits {
        unpacked: MAX_UNPACKED,
        decompressed: MAX_UNPACKED + HEADER_ALLOWANCE,
    };
}

/// Reads every entry of the gzip tar in `bytes`: regular files and directories only, relative
/// paths without `..`, at most [`MAX_DEPTH`] deep, [`MAX_ENTRIES`] entries and
/// [`MAX_UNPACKED`] bytes in all. The manifest's own name is refused.
pub fn read_bundle(url: &str, bytes: &[u8]) -> Result<Vec<BundleFile>, BundleError> {
    read_within(url, bytes, Limits::HOST)
}

/// [`read_bundle`] within `limits`.
pub(super) fn read_within(
    url: &str,
    bytes: &[u8],
    limits: Limits,
) -> Result<Vec<BundleFile>, BundleError> {
    let entry_err = |entry: &str, reason: String| BundleError::Entry {
        url: url.to_owned(),
        entry: entry.to_owned(),
        reason,
    };
    let too_large = || {
        entry_err(
            "(archive)",
            format!(
                "the bundle unpacks to more than {} bytes (file contents) or {} bytes with its headers, long names and PAX records",
                limits.unpacked, limits.decompressed
            ),
        )
    };
    let capped = Capped {
        inner: flate2::read::GzDecoder::new(bytes),
        left: limits.decompressed,
        hit: Rc::new(Cell::new(false)),
    };
    let hit = Rc::clone(&capped.hit);
    let format = |e: std::io::Error| {
        if hit.get() {
            too_large()
        } else {
            BundleError::Format {
                url: url.to_owned(),
                message: e.to_string(),
            }
        }
    };
    let mut archive = tar::Archive::new(capped);
    let mut files: BTreeMap<String, BundleFile> = BTreeMap::new();
    let mut total: u64 = 0;
    let mut count = 0usize;
    for entry in archive.entries().map_err(format)? {
        let mut entry = entry.map_err(format)?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(entry_err(
                "(archive)",
                format!("more than {MAX_ENTRIES} entries"),
            ));
        }
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue; // metadata for the archive (a commit id), nothing to install
        }
        let raw_path = entry.path().map_err(format)?.into_owned();
        let shown = raw_path.to_string_lossy().into_owned();
        let path = relative_path(&raw_path).map_err(|reason| entry_err(&shown, reason.into()))?;
        if kind.is_dir() {
            if entry.size() > 0 {
                return Err(entry_err(
                    &shown,
                    format!(
                        "a directory entry holding {} bytes of data: a directory holds none",
                        entry.size()
                    ),
                ));
            }
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(entry_err(
                &shown,
                format!("a {kind:?} entry: bundles hold regular files and directories only"),
            ));
        }
        let Some(path) = path else {
            return Err(entry_err(&shown, "a file without a name".into()));
        };
        if is_manifest_path(&path) {
            return Err(entry_err(
                &shown,
                "this name is Gantry's own manifest".into(),
            ));
        }
        let left = limits.unpacked - total;
        let mut contents = Vec::new();
        (&mut entry)
            .take(left + 1)
            .read_to_end(&mut contents)
            .map_err(format)?;
        total += contents.len() as u64;
        if total > limits.unpacked {
            return Err(too_large());
        }
        let mode = entry.header().mode().map_err(format)?;
        // Owner read-write always; group read (and execute where the file had it); nothing for others.
        let mode = (mode & 0o750) | 0o600;
        files.insert(
            path.clone(),
            BundleFile {
                path,
                mode,
                contents,
            },
        );
    }
    // A path that is a file and the directory of another file cannot both be installed (the
    // second write would fail after the first): refused here, before anything is written.
    let mut dirs: BTreeMap<&str, &str> = BTreeMap::new();
    for path in files.keys() {
        for (i, _) in path.match_indices('/') {
            dirs.entry(&path[..i]).or_insert(path);
        }
    }
    if let Some((path, inner)) = files
        .keys()
        .find_map(|p| dirs.get(p.as_str()).map(|inner| (p, inner)))
    {
        return Err(entry_err(
            path,
            format!("a file, and the directory of `{inner}` too: a path is one or the other"),
        ));
    }
    Ok(files.into_values().collect())
}

/// A reader that fails once more than `left` bytes would come out of `inner`, and says so in
/// `hit` (the tar reader passes the error on as its own).
struct Capped<R> {
    inner: R,
    left: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte past what is left tells "exactly at the limit" from "over it".
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.hit.set(true);
            return Err(std::io::Error::other("the bundle decompresses to too much"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The entry's path as a clean relative `/`-joined string (`None` for `.`), or why not.
pub(super) fn relative_path(path: &Path) -> Result<Option<String>, &'static str> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => {
                let p = p.to_str().ok_or("a path that is not UTF-8")?;
                parts.push(p);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("a path with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("an absolute path"),
        }
    }
    if parts.len() > MAX_DEPTH {
        return Err("a path more than 8 directories deep");
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Installs `files` into `dir` (created 0750 if missing): writes what changed, removes what
/// the previous bundle installed and this one does not carry, then records the manifest.
/// Run as root, what it creates takes the group of the nearest directory above that exists
/// (`/etc/gantry/stacks` is root:gantry: members of `gantry` read the stack's files, as they
/// do a stack made by hand).
pub fn install(files: &[BundleFile], dir: &Path, sha256: &str) -> Result<Installed, BundleError> {
    let write_err = |path: &Path, message: String| BundleError::Write {
        path: path.to_path_buf(),
        message,
    };
    let owner = Owner {
        uid: None,
        gid: inherited_group(dir),
    };
    create_dir(dir, owner).map_err(|e| write_err(dir, e.to_string()))?;
    let manifest_path = dir.join(MANIFEST);
    let previous: Manifest = match std::fs::read(&manifest_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            write_err(
                &manifest_path,
                format!("unreadable manifest: {e} (hint: remove it; the next bundle rewrites every file)"),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(e) => return Err(write_err(&manifest_path, e.to_string())),
    };
    // What the previous bundle installed in the way of this one goes first; what no bundle
    // installed there is refused before anything is written.
    let clearing = clear_the_way(files, dir, &previous.files)?;
    let mut done = Installed::default();
    for gone in &clearing.files {
        let path = dir.join(gone);
        match std::fs::remove_file(&path) {
            Ok(()) => done.removed.push(gone.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&path, e.to_string())),
        }
    }
    for d in &clearing.dirs {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(d, e.to_string())),
        }
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            create_dir(parent, owner).map_err(|e| write_err(parent, e.to_string()))?;
        }
        let same = std::fs::read(&path).is_ok_and(|old| old == f.contents)
            && std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt as _;
                m.mode() & 0o7777 == f.mode && owner.gid.is_none_or(|g| g == m.gid())
            });
        // A fetch-bundle killed mid-write (an SSM timeout) left a temp file that may hold
        // the stack's `.env`.
        gantry_common::fsx::remove_leftover_temps_of(&path)
            .map_err(|e| write_err(&path, e.to_string()))?;
        if same {
            done.unchanged.push(f.path.clone());
            continue;
        }
        write_atomic(&path, &f.contents, f.mode, owner)
            .map_err(|e| write_err(&path, e.to_string()))?;
        done.written.push(f.path.clone());
    }
    let now: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for gone in previous.files.difference(&now) {
        if clearing.files.contains(gone) {
            continue; // removed above; its directory may be a file now
        }
        let path = dir.join(gone);
        match std::fs::remove_file(&path) {
            Ok(()) => done.removed.push(gone.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(&path, e.to_string())),
        }
    }
    if previous.sha256 != sha256 || previous.files != now {
        let manifest = Manifest {
            sha256: sha256.to_owned(),
            files: now,
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
        gantry_common::fsx::remove_leftover_temps_of(&manifest_path)
            .map_err(|e| write_err(&manifest_path, e.to_string()))?;
        write_atomic(&manifest_path, &text, 0o640, owner)
            .map_err(|e| write_err(&manifest_path, e.to_string()))?;
    }
    Ok(done)
}

/// What stands where a bundle writes and the previous bundle installed: its files (relative
/// paths), removed before any write, and the directories they leave empty, deepest first.
#[derive(Debug, Default)]
struct Clearing {
    files: BTreeSet<String>,
    dirs: Vec<std::path::PathBuf>,
}

/// Checks the disk under `dir` against where `files` go, writing nothing. A file where the
/// bundle needs a directory (`config` of the previous bundle, now `config/nginx.conf`), or a
/// directory where it installs a file (`config/` of the previous bundle, now one file
/// `config`), is to be cleared when `owned` (the previous manifest) lists it or every file in
/// it, and is refused as [`BundleError::InTheWay`], naming what no bundle installed, otherwise.
/// A link to a directory stays a directory.
fn clear_the_way(
    files: &[BundleFile],
    dir: &Path,
    owned: &BTreeSet<String>,
) -> Result<Clearing, BundleError> {
    let read_err = |path: &Path, e: std::io::Error| BundleError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let in_the_way = |path: &Path, entry: &str, reason: &str| BundleError::InTheWay {
        path: path.to_path_buf(),
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let mut clearing = Clearing::default();
    for f in files {
        let mut under_a_file = false;
        for (i, _) in f.path.match_indices('/') {
            let rel = &f.path[..i];
            let path = dir.join(rel);
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(read_err(&path, e)),
            };
            if meta.is_dir() || std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if meta.is_file() && owned.contains(rel) {
                clearing.files.insert(rel.to_owned());
                under_a_file = true;
                break;
            }
            return Err(in_the_way(
                &path,
                &f.path,
                "the bundle needs a directory here, and this is a file no earlier bundle installed",
            ));
        }
        if under_a_file {
            continue; // nothing is there yet
        }
        let path = dir.join(&f.path);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                owned_tree(dir, &path, owned, &mut found, &mut clearing.dirs)
                    .map_err(|e| read_err(&path, e))?
                    .map_or(Ok(()), |blocker| {
                        Err(in_the_way(
                            &blocker,
                            &f.path,
                            "the bundle's file is a directory here, holding this, which no earlier bundle installed",
                        ))
                    })?;
                clearing.files.extend(found);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_err(&path, e)),
        }
    }
    Ok(clearing)
}

/// Walks the directory `d` under `root` without following links: the files in it `owned`
/// lists go to `files`, the directories (`d` last) to `dirs`. Returns the first entry that is
/// not such a file or a directory.
fn owned_tree(
    root: &Path,
    d: &Path,
    owned: &BTreeSet<String>,
    files: &mut Vec<String>,
    dirs: &mut Vec<std::path::PathBuf>,
) -> std::io::Result<Option<std::path::PathBuf>> {
    for entry in std::fs::read_dir(d)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if let Some(blocker) = owned_tree(root, &path, owned, files, dirs)? {
                return Ok(Some(blocker));
            }
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .ok()
            .and_then(|r| r.to_str())
            .filter(|r| kind.is_file() && owned.contains(*r));
        match rel {
            Some(rel) => files.push(rel.to_owned()),
            None => return Ok(Some(path)),
        }
    }
    dirs.push(d.to_path_buf());
    Ok(None)
}

/// The group of the nearest existing directory at or above `dir`, when this process runs as
/// root (another user keeps its own group: it may not chown to that one).
fn inherited_group(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    dir.ancestors()
        .find_map(|d| std::fs::metadata(d).ok().filter(|m| m.is_dir()))
        .map(|m| m.gid())
}

/// Creates `dir` and the directories above it that are missing, 0750, each given
/// `owner`'s group.
fn create_dir(dir: &Path, owner: Owner) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    for d in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o750).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        if let Some(gid) = owner.gid {
            std::os::unix::fs::chown(d, None, Some(gid))?;
        }
    }
    Ok(())
}
