//! Reading a bundle (gzip tar) into memory with every entry checked, and installing its files
//! into a stack's directory with a manifest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Component, Path};

use gantry_common::fsx::{Owner, write_atomic};
use serde::{Deserialize, Serialize};

use super::{BundleError, MANIFEST, MAX_ENTRIES, MAX_UNPACKED};

/// Deepest path in a bundle.
const MAX_DEPTH: usize = 8;

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

/// Reads every entry of the gzip tar in `bytes`: regular files and directories only, relative
/// paths without `..`, at most [`MAX_DEPTH`] deep, [`MAX_ENTRIES`] entries and
/// [`MAX_UNPACKED`] bytes in all. The manifest's own name is refused.
pub fn read_bundle(url: &str, bytes: &[u8]) -> Result<Vec<BundleFile>, BundleError> {
    let format = |e: std::io::Error| BundleError::Format {
        url: url.to_owned(),
        message: e.to_string(),
    };
    let entry_err = |entry: &str, reason: String| BundleError::Entry {
        url: url.to_owned(),
        entry: entry.to_owned(),
        reason,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
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
        let raw_path = entry.path().map_err(format)?.into_owned();
        let shown = raw_path.to_string_lossy().into_owned();
        let path = relative_path(&raw_path).map_err(|reason| entry_err(&shown, reason.into()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
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
        if path == MANIFEST {
            return Err(entry_err(
                &shown,
                "this name is Gantry's own manifest".into(),
            ));
        }
        let left = MAX_UNPACKED - total;
        let mut contents = Vec::new();
        (&mut entry)
            .take(left + 1)
            .read_to_end(&mut contents)
            .map_err(format)?;
        total += contents.len() as u64;
        if total > MAX_UNPACKED {
            return Err(entry_err(
                &shown,
                format!("the bundle unpacks to more than {MAX_UNPACKED} bytes"),
            ));
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
    Ok(files.into_values().collect())
}

/// The entry's path as a clean relative `/`-joined string (`None` for `.`), or why not.
fn relative_path(path: &Path) -> Result<Option<String>, &'static str> {
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
    let mut done = Installed::default();
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
