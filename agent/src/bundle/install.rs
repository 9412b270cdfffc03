//! Installing a bundle's files into a stack's directory, with a manifest of what bundles own.
//!
//! Ownership: the manifest (`.gantry-bundle.json`) lists the files bundles installed. A bundle
//! writes over, and removes, only those; it writes where nothing is, and adopts a regular file
//! that already holds exactly its bytes. Anything else where a bundle file goes (a file no
//! bundle installed, such as an `.env` made by hand or the `secrets.env` gantry-secrets
//! renders; a symbolic link, never followed, there or in place of a directory above it; a
//! FIFO) is refused naming it ([`BundleError::InTheWay`], `fetch-bundle` exits 65), nothing
//! written or removed: the bundle never removes what it does not own, and never goes through
//! a link below the stack's directory (a file under one is left alone). A directory of the
//! previous bundle that is now a file (or the reverse) is cleared first, its files removed,
//! when the previous manifest lists every file in it.
//!
//! Order, so that a kill, a full disk or an I/O error at any moment leaves no file a bundle
//! wrote out of the manifest, and no file it did not write in it:
//! 1. temp files killed writes left (they may hold the stack's `.env`) of every path the
//!    previous manifest lists or this bundle carries are removed (dead writers' only);
//! 2. every path is checked against the disk; nothing is written yet;
//! 3. an intent manifest lists the previous bundle's files, and as `pending` each new path of
//!    this one with the SHA-256 of its bytes, written atomically before the first change (only
//!    when it differs from the manifest there);
//! 4. what is in the way is removed, changed files are written (atomically, one by one),
//!    what this bundle no longer carries is removed;
//! 5. the manifest lists this bundle's files only.
//!
//! A failure in 4 or 5 is [`BundleError::Interrupted`], naming what was changed; the manifest
//! is rewritten first to list the previous files still there and the files written, nothing
//! pending. Killed instead, the intent manifest stays: a pending path is the bundle's only
//! while it holds exactly the bytes recorded for it (an operator's file made there later is
//! not). Fetching the bundle again completes the install. Installs must not run beside each
//! other or beside a deploy of the stack: `fetch-bundle` holds the stack's lock around
//! [`install`].
//!
//! Compatibility: `pending` is left out when empty, so the manifest of a finished (or failed,
//! not killed) install is the format gantry read before `pending` existed; a version without
//! `pending` refuses a manifest that has it (an install killed part-way) as unreadable.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use gantry_common::fsx::{Owner, write_atomic};
use serde::{Deserialize, Serialize};

use super::unpack::{BundleFile, relative_path};
use super::{BundleError, MANIFEST, MAX_UNPACKED, is_manifest_path};

/// What [`install`] did, by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

/// What bundles installed in a stack's directory: `files` (relative paths), the checksum of
/// the last bundle installed whole, and in an intent manifest the paths an install is about
/// to write with the SHA-256 of what it writes there (`pending`, not in `files`).
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    sha256: String,
    files: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pending: BTreeMap<String, String>,
}

/// Largest manifest read: room for 2,000 paths of up to 8 names of 255 bytes, twice (`files`
/// and `pending`), JSON escapes and checksums included.
const MAX_MANIFEST: u64 = 64 << 20;

/// How to go on without a manifest that cannot be read.
const MANIFEST_HINT: &str = "hint: move it out of the stack's directory, run fetch-bundle with the bundle that was last installed (its files there, byte for byte the same, are adopted), then with the new one; if a newer gantry wrote it, finish that install with that version instead";

/// Installs `files` into `dir` (created 0750 if missing): writes what changed, removes what
/// the previous bundle installed and this one does not carry, then records the manifest.
/// Run as root, what it creates takes the group of the nearest directory above that exists
/// (`/etc/gantry/stacks` is root:gantry: members of `gantry` read the stack's files, as they
/// do a stack made by hand).
pub fn install(files: &[BundleFile], dir: &Path, sha256: &str) -> Result<Installed, BundleError> {
    let owner = Owner {
        uid: None,
        gid: inherited_group(dir),
    };
    stack_dir(dir, owner)?;
    let manifest_path = dir.join(MANIFEST);
    let on_disk = read_manifest(&manifest_path)?;
    let now: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    // Debris of a killed install, the bundle's own: removed even if this bundle is refused.
    let paths = on_disk.files.iter().chain(on_disk.pending.keys());
    sweep_temps(dir, paths.chain(&now).map(String::as_str).chain([MANIFEST]))?;
    let previous = owned(dir, &on_disk)?;
    // What the previous bundle installed in the way of this one goes first; what no bundle
    // installed there is refused before anything is written.
    let clearing = clear_the_way(files, dir, &previous)?;
    let intent = Manifest {
        sha256: on_disk.sha256.clone(),
        files: previous.clone(),
        pending: files
            .iter()
            .filter(|f| !previous.contains(&f.path))
            .map(|f| (f.path.clone(), sha256_hex(&f.contents)))
            .collect(),
    };
    let mut current = on_disk;
    if intent != current {
        write_manifest(&manifest_path, &intent, owner)?;
        current = intent;
    }
    #[cfg(test)]
    seam::run(dir);
    let mut done = Installed::default();
    let finished = Manifest {
        sha256: sha256.to_owned(),
        files: now,
        pending: BTreeMap::new(),
    };
    let result = apply(files, dir, &previous, &clearing, owner, &mut done).and_then(|()| {
        if current == finished {
            return Ok(());
        }
        write_manifest(&manifest_path, &finished, owner).map_err(|e| match e {
            BundleError::Write { path, message } => (path, message),
            other => (manifest_path.clone(), other.to_string()),
        })
    });
    let Err((path, message)) = result else {
        return Ok(done);
    };
    // Stopped by an error, not killed: the manifest lists what is the bundle's now, the
    // previous files still there and those written, and nothing this install did not write
    // (an operator may put a file there before the next bundle). If this write fails too, the
    // intent manifest stays: a pending path is the bundle's only while it holds its bytes.
    let mut kept = previous;
    for gone in &done.removed {
        kept.remove(gone);
    }
    kept.extend(done.written.iter().chain(&done.unchanged).cloned());
    // Written, though the step after the write failed (the directory's fsync).
    if let Some(f) = files.iter().find(|f| dir.join(&f.path) == path)
        && linked_component(dir, &f.path).is_ok_and(|l| l.is_none())
        && holds(&path, &f.contents).is_ok_and(|h| h.is_some())
    {
        kept.insert(f.path.clone());
    }
    let kept = Manifest {
        sha256: current.sha256.clone(),
        files: kept,
        pending: BTreeMap::new(),
    };
    if kept != current {
        let _ = write_manifest(&manifest_path, &kept, owner);
    }
    let mut changed: Vec<String> = done.written.iter().chain(&done.removed).cloned().collect();
    changed.sort();
    Err(BundleError::Interrupted {
        path,
        message,
        changed,
    })
}

fn write_err(path: &Path, e: &dyn std::fmt::Display) -> BundleError {
    BundleError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Creates the stack's directory `dir` if missing; a link to a directory is fine, a dangling
/// one or anything else than a directory is named.
fn stack_dir(dir: &Path, owner: Owner) -> Result<(), BundleError> {
    create_dir(dir, owner).map_err(|e| write_err(dir, &e))?;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(write_err(
            dir,
            &"the stack's directory is not a directory (hint: move it away to let the bundle create it)",
        )),
        Err(e) => match std::fs::read_link(dir) {
            Ok(target) => Err(write_err(
                dir,
                &format!(
                    "the stack's directory is a symbolic link to {}, which cannot be used: {e} (hint: create the directory it points to, or remove the link to let the bundle create the stack's directory)",
                    target.display()
                ),
            )),
            Err(_) => Err(write_err(dir, &e)),
        },
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, BundleError> {
    let unreadable = |why: &dyn std::fmt::Display| {
        write_err(
            path,
            &format!("unreadable manifest: {why} ({MANIFEST_HINT})"),
        )
    };
    // Not followed if a link, not blocking if a FIFO: the stack's lock is held.
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(unreadable(&"a symbolic link, never followed"));
        }
        Err(e) => return Err(write_err(path, &e)),
    };
    let mut bytes = Vec::new();
    match file.metadata() {
        Ok(m) if !m.is_file() => return Err(unreadable(&"not a regular file")),
        Ok(m) if m.len() > MAX_MANIFEST => {
            return Err(unreadable(&format_args!(
                "larger than {MAX_MANIFEST} bytes"
            )));
        }
        Ok(_) => file
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| write_err(path, &e))?,
        Err(e) => return Err(write_err(path, &e)),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| unreadable(&e))?;
    // Joined onto the stack's directory: only what a bundle may carry.
    for p in manifest.files.iter().chain(manifest.pending.keys()) {
        let clean = relative_path(Path::new(p)).is_ok_and(|r| r.as_deref() == Some(p.as_str()));
        if !clean || is_manifest_path(p) {
            return Err(unreadable(&format_args!(
                "{p:?} is not a path a bundle installs (a clean relative path in the stack's directory)"
            )));
        }
    }
    if let Some((p, _)) = manifest.pending.iter().find(|(_, sum)| {
        sum.len() != 64
            || !sum
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }) {
        return Err(unreadable(&format_args!(
            "the checksum of pending {p:?} is not a SHA-256"
        )));
    }
    Ok(manifest)
}

fn write_manifest(path: &Path, manifest: &Manifest, owner: Owner) -> Result<(), BundleError> {
    let text = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    write_atomic(path, &text, 0o640, owner).map_err(|e| write_err(path, &e))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The files bundles own in `dir` per `manifest`: its files, and each pending one that holds
/// exactly the bytes recorded for it (a regular file, reached through no link). A pending
/// path that is missing, or holds anything else, is not the bundle's.
fn owned(dir: &Path, manifest: &Manifest) -> Result<BTreeSet<String>, BundleError> {
    let mut owned = manifest.files.clone();
    for (rel, sum) in &manifest.pending {
        if owned.contains(rel) {
            continue;
        }
        let path = dir.join(rel);
        let ours = linked_component(dir, rel)
            .and_then(|link| match link {
                Some(_) => Ok(false),
                None => Ok(hash_of(&path)?.is_some_and(|h| &h == sum)),
            })
            .map_err(|e| write_err(&path, &e))?;
        if ours {
            owned.insert(rel.clone());
        }
    }
    Ok(owned)
}

/// The SHA-256 of the regular file at `path` (opened without following a link nor blocking
/// on a FIFO); `None` when nothing is there or it is something else, or larger than a bundle.
fn hash_of(path: &Path) -> std::io::Result<Option<String>> {
    use sha2::Digest as _;
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if absent(&e) || e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_UNPACKED {
        return Ok(None);
    }
    let mut hasher = sha2::Sha256::new();
    let mut file = file.take(MAX_UNPACKED + 1);
    let mut buf = vec![0; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

/// The first directory of the relative path `rel` under `dir` that is a symbolic link, if
/// any (the last component is not looked at).
fn linked_component(dir: &Path, rel: &str) -> std::io::Result<Option<PathBuf>> {
    for (i, _) in rel.match_indices('/') {
        let path = dir.join(&rel[..i]);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Ok(Some(path)),
            Ok(_) => {}
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Step 4 of [`install`]: every change, recorded in `done` as it is made. Fails with the
/// path and what went wrong.
fn apply(
    files: &[BundleFile],
    dir: &Path,
    previous: &BTreeSet<String>,
    clearing: &Clearing,
    owner: Owner,
    done: &mut Installed,
) -> Result<(), (PathBuf, String)> {
    let fail = |path: &Path, e: &dyn std::fmt::Display| (path.to_path_buf(), e.to_string());
    for gone in &clearing.files {
        let path = dir.join(gone);
        if remove_owned(dir, gone).map_err(|e| fail(&path, &e))? {
            done.removed.push(gone.clone());
        }
    }
    for d in &clearing.dirs {
        match std::fs::remove_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(d, &e)),
        }
    }
    for f in files {
        let path = dir.join(&f.path);
        // Checked before: no link on the way, and absent or a regular file there. What was
        // put there since (by hand, under the lock) is left as it is, never gone through,
        // read (a FIFO would block) nor replaced.
        if let Some(link) = linked_component(dir, &f.path).map_err(|e| fail(&path, &e))? {
            return Err(fail(
                &link,
                &"a symbolic link put in place of a directory after the install checked the way; a bundle never writes through one",
            ));
        }
        if let Some(parent) = path.parent() {
            create_dir(parent, owner).map_err(|e| fail(parent, &e))?;
        }
        let same = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => holds(&path, &f.contents)
                .map_err(|e| fail(&path, &e))?
                .is_some_and(|m| {
                    use std::os::unix::fs::MetadataExt as _;
                    m.mode() & 0o7777 == f.mode && owner.gid.is_none_or(|g| g == m.gid())
                }),
            Ok(_) => {
                return Err(fail(
                    &path,
                    &"no longer a regular file (put there after the install checked the way); left as it is",
                ));
            }
            Err(e) if absent(&e) => false,
            Err(e) => return Err(fail(&path, &e)),
        };
        if same {
            done.unchanged.push(f.path.clone());
            continue;
        }
        write_atomic(&path, &f.contents, f.mode, owner).map_err(|e| fail(&path, &e))?;
        done.written.push(f.path.clone());
    }
    let now: BTreeSet<&String> = files.iter().map(|f| &f.path).collect();
    for gone in previous {
        if now.contains(gone) || clearing.files.contains(gone) {
            continue; // the latter removed above; its directory may be a file now
        }
        let path = dir.join(gone);
        if remove_owned(dir, gone).map_err(|e| fail(&path, &e))? {
            done.removed.push(gone.clone());
        }
    }
    Ok(())
}

/// Removes the regular file at `rel` under `dir`; anything else there (a directory, a link
/// put there since), or a path through a link (a directory replaced by a link to elsewhere),
/// is not what a bundle wrote and stays. Whether it removed one.
fn remove_owned(dir: &Path, rel: &str) -> std::io::Result<bool> {
    if linked_component(dir, rel)?.is_some() {
        return Ok(false);
    }
    let path = &dir.join(rel);
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        },
        Ok(_) => Ok(false),
        Err(e) if absent(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The path is not there: missing, or under what is a file now.
fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// Removes the temp files killed writes of the paths `rels` (relative to `dir`) left, reading
/// each directory once (a bundle has up to 2,000 files); those of live writers, and those
/// under a link (a directory replaced by a link to elsewhere), stay.
fn sweep_temps<'a>(dir: &Path, rels: impl IntoIterator<Item = &'a str>) -> Result<(), BundleError> {
    let mut by_dir: BTreeMap<PathBuf, BTreeSet<&str>> = BTreeMap::new();
    for rel in rels {
        if linked_component(dir, rel)
            .map_err(|e| write_err(&dir.join(rel), &e))?
            .is_some()
        {
            continue;
        }
        let (parent, name) = match rel.rsplit_once('/') {
            Some((p, n)) => (dir.join(p), n),
            None => (dir.to_path_buf(), rel),
        };
        by_dir.entry(parent).or_default().insert(name);
    }
    for (d, names) in by_dir {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if absent(&e) => continue,
            Err(e) => return Err(write_err(&d, &e)),
        };
        let mut targets = BTreeSet::new();
        for entry in entries {
            let entry = entry.map_err(|e| write_err(&d, &e))?;
            // `.<name>.tmp.<pid>.<n>`: the writer's liveness is checked by fsx.
            let name = entry.file_name();
            let target = name
                .to_str()
                .and_then(|n| n.strip_prefix('.')?.rsplit_once(".tmp."))
                .map(|(target, _)| target)
                .filter(|t| names.contains(t));
            if let Some(t) = target {
                targets.insert(t.to_owned());
            }
        }
        for t in targets {
            let path = d.join(&t);
            gantry_common::fsx::remove_leftover_temps_of(&path)
                .map_err(|e| write_err(&path, &e))?;
        }
    }
    Ok(())
}

/// What stands where a bundle writes and the previous bundle installed: its files (relative
/// paths), removed before any write, and the directories they leave empty, deepest first.
#[derive(Debug, Default)]
struct Clearing {
    files: BTreeSet<String>,
    dirs: Vec<PathBuf>,
}

/// Checks the disk under `dir` against where `files` go, writing nothing. A file where the
/// bundle needs a directory (`config` of the previous bundle, now `config/nginx.conf`), or a
/// directory where it installs a file (`config/` of the previous bundle, now one file
/// `config`), is to be cleared when `owned` (the previous manifest) lists it or every file in
/// it, and is refused as [`BundleError::InTheWay`], naming what no bundle installed, otherwise.
/// Where a file goes, a regular file `owned` lists, or one holding exactly the bundle's bytes,
/// is the bundle's; anything else is refused the same way: a file no bundle installed, a link
/// (never followed), a FIFO. A link where the bundle needs a directory is refused too, naming
/// it: a bundle never writes through a link (it may lead out of the stack's directory).
fn clear_the_way(
    files: &[BundleFile],
    dir: &Path,
    owned: &BTreeSet<String>,
) -> Result<Clearing, BundleError> {
    let read_err = |path: &Path, e: std::io::Error| write_err(path, &e);
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
            if meta.file_type().is_symlink() {
                return Err(in_the_way(
                    &path,
                    &f.path,
                    "a symbolic link where the bundle needs a directory; a bundle never writes through one (it may lead out of the stack's directory)",
                ));
            }
            if meta.is_dir() {
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
            Ok(m) if m.is_file() => {
                if !owned.contains(&f.path)
                    && holds(&path, &f.contents)
                        .map_err(|e| read_err(&path, e))?
                        .is_none()
                {
                    return Err(in_the_way(
                        &path,
                        &f.path,
                        "a file no earlier bundle installed, holding something else than the bundle's file (a bundle never takes over a file it did not install)",
                    ));
                }
            }
            Ok(m) => {
                let what = if m.file_type().is_symlink() {
                    "a symbolic link, which a bundle never follows nor replaces"
                } else {
                    "neither a regular file nor a directory"
                };
                return Err(in_the_way(&path, &f.path, what));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(read_err(&path, e)),
        }
    }
    Ok(clearing)
}

/// Opens `path` to read, failing (ELOOP) on a link and without blocking on a FIFO.
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
}

/// The metadata of the regular file at `path` (not followed if a link, not blocking if a
/// FIFO) when it holds exactly `contents`.
fn holds(path: &Path, contents: &[u8]) -> std::io::Result<Option<std::fs::Metadata>> {
    let file = open_no_follow(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() != contents.len() as u64 {
        return Ok(None);
    }
    let mut old = Vec::with_capacity(contents.len());
    file.take(contents.len() as u64 + 1).read_to_end(&mut old)?;
    Ok((old == contents).then_some(meta))
}

/// Walks the directory `d` under `root` without following links: the files in it `owned`
/// lists go to `files`, the directories (`d` last) to `dirs`. Returns the first entry that is
/// not such a file or a directory.
fn owned_tree(
    root: &Path,
    d: &Path,
    owned: &BTreeSet<String>,
    files: &mut Vec<String>,
    dirs: &mut Vec<PathBuf>,
) -> std::io::Result<Option<PathBuf>> {
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

/// A test seam: a callback run on the installing thread once the checks are done and the
/// intent manifest is written, right before the first change.
#[cfg(test)]
pub(crate) mod seam {
    use std::cell::RefCell;
    use std::path::Path;

    type Hook = Box<dyn FnMut(&Path)>;

    thread_local! {
        static BEFORE_CHANGES: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    /// Runs `hook` with the stack's directory in every install on this thread, right before
    /// its first change, until the guard returned is dropped.
    pub(crate) fn before_changes(hook: impl FnMut(&Path) + 'static) -> Guard {
        BEFORE_CHANGES.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
        Guard
    }

    /// Removes the hook when dropped.
    pub(crate) struct Guard;

    impl Drop for Guard {
        fn drop(&mut self) {
            BEFORE_CHANGES.with(|h| h.borrow_mut().take());
        }
    }

    pub(super) fn run(dir: &Path) {
        BEFORE_CHANGES.with(|h| {
            if let Some(hook) = h.borrow_mut().as_mut() {
                hook(dir);
            }
        });
    }
}
