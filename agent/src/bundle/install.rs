//! Installing a bundle's files into a stack's directory, with a manifest of what bundles own.
//!
//! Ownership: the manifest (`.gantry-bundle.json`) lists the files bundles installed. A bundle
//! writes over, and removes, only those; it writes where nothing is, and adopts a regular file
//! that already holds exactly its bytes. Anything else where a bundle file goes (a file no
//! bundle installed, such as an `.env` made by hand or the `secrets.env` gantry-secrets
//! renders; a symbolic link, never followed; a FIFO) is refused naming it
//! ([`BundleError::InTheWay`], `fetch-bundle` exits 65), nothing written or removed: the
//! bundle never removes what it does not own. A directory of the previous bundle that is now
//! a file (or the reverse) is cleared first, its files removed, when the previous manifest
//! lists every file in it.
//!
//! Order, so that a kill, a full disk or an I/O error at any moment leaves no file a bundle
//! wrote out of the manifest:
//! 1. temp files killed writes left (they may hold the stack's `.env`) of every path the
//!    previous manifest lists or this bundle carries are removed (dead writers' only);
//! 2. every path is checked against the disk; nothing is written yet;
//! 3. an intent manifest lists the previous bundle's files and this one's, written atomically
//!    before the first change (only when this bundle brings a path the manifest lacks);
//! 4. what is in the way is removed, changed files are written (atomically, one by one),
//!    what this bundle no longer carries is removed;
//! 5. the manifest lists this bundle's files only.
//!
//! A failure in 4 or 5 is [`BundleError::Interrupted`], naming what was changed; fetching the
//! bundle again completes the install. Installs must not run beside each other or beside a
//! deploy of the stack: `fetch-bundle` holds the stack's lock around [`install`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};

use gantry_common::fsx::{Owner, write_atomic};
use serde::{Deserialize, Serialize};

use super::unpack::BundleFile;
use super::{BundleError, MANIFEST};

/// What [`install`] did, by relative path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

/// What bundles installed in a stack's directory: `files` (relative paths), and the checksum
/// of the last bundle installed whole.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    sha256: String,
    files: BTreeSet<String>,
}

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
    create_dir(dir, owner).map_err(|e| write_err(dir, &e))?;
    let manifest_path = dir.join(MANIFEST);
    let previous = read_manifest(&manifest_path)?;
    let now: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    // Debris of a killed install, the bundle's own: removed even if this bundle is refused.
    let paths = previous.files.iter().chain(&now).map(String::as_str);
    sweep_temps(dir, paths.chain([MANIFEST]))?;
    // What the previous bundle installed in the way of this one goes first; what no bundle
    // installed there is refused before anything is written.
    let clearing = clear_the_way(files, dir, &previous.files)?;
    let intent: BTreeSet<String> = previous.files.union(&now).cloned().collect();
    if intent != previous.files {
        let manifest = Manifest {
            sha256: previous.sha256.clone(),
            files: intent,
        };
        write_manifest(&manifest_path, &manifest, owner)?;
    }
    let mut done = Installed::default();
    let interrupted = |(path, message): (PathBuf, String), done: &Installed| {
        let mut changed: Vec<String> = done.written.iter().chain(&done.removed).cloned().collect();
        changed.sort();
        BundleError::Interrupted {
            path,
            message,
            changed,
        }
    };
    if let Err(e) = apply(files, dir, &previous.files, &clearing, owner, &mut done) {
        return Err(interrupted(e, &done));
    }
    if previous.sha256 != sha256 || previous.files != now {
        let manifest = Manifest {
            sha256: sha256.to_owned(),
            files: now,
        };
        if let Err(e) = write_manifest(&manifest_path, &manifest, owner) {
            let (path, message) = match e {
                BundleError::Write { path, message } => (path, message),
                other => (manifest_path, other.to_string()),
            };
            return Err(interrupted((path, message), &done));
        }
    }
    Ok(done)
}

fn write_err(path: &Path, e: &dyn std::fmt::Display) -> BundleError {
    BundleError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn read_manifest(path: &Path) -> Result<Manifest, BundleError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            write_err(
                path,
                &format!("unreadable manifest: {e} (hint: remove it; the next bundle rewrites every file)"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(e) => Err(write_err(path, &e)),
    }
}

fn write_manifest(path: &Path, manifest: &Manifest, owner: Owner) -> Result<(), BundleError> {
    let text = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    write_atomic(path, &text, 0o640, owner).map_err(|e| write_err(path, &e))
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
        if remove_owned(&path).map_err(|e| fail(&path, &e))? {
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
        if let Some(parent) = path.parent() {
            create_dir(parent, owner).map_err(|e| fail(parent, &e))?;
        }
        // Checked before: absent, or a regular file (never a link).
        let same = std::fs::read(&path).is_ok_and(|old| old == f.contents)
            && std::fs::symlink_metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt as _;
                m.mode() & 0o7777 == f.mode && owner.gid.is_none_or(|g| g == m.gid())
            });
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
        if remove_owned(&path).map_err(|e| fail(&path, &e))? {
            done.removed.push(gone.clone());
        }
    }
    Ok(())
}

/// Removes the regular file at `path`; anything else there (a directory, a link put there
/// since) is not what a bundle wrote and stays. Whether it removed one.
fn remove_owned(path: &Path) -> std::io::Result<bool> {
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
/// each directory once (a bundle has up to 2,000 files); those of live writers stay.
fn sweep_temps<'a>(dir: &Path, rels: impl IntoIterator<Item = &'a str>) -> Result<(), BundleError> {
    let mut by_dir: BTreeMap<PathBuf, BTreeSet<&str>> = BTreeMap::new();
    for rel in rels {
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
/// (never followed), a FIFO. A link to a directory above a file stays a directory.
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
            Ok(m) if m.is_file() => {
                if !owned.contains(&f.path)
                    && !holds(&path, &f.contents).map_err(|e| read_err(&path, e))?
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

/// Whether the regular file at `path` (not followed if a link) holds exactly `contents`.
fn holds(path: &Path, contents: &[u8]) -> std::io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() != contents.len() as u64 {
        return Ok(false);
    }
    let mut old = Vec::with_capacity(contents.len());
    file.take(contents.len() as u64 + 1).read_to_end(&mut old)?;
    Ok(old == contents)
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
