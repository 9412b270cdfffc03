//! Reading a bundle (gzip tar) into memory with every entry checked.
//!
//! A path is a file or a directory, never both: a bundle holding a file `a` and a file `a/b`
//! is refused when read. What the tar reader takes in by itself (GNU long names and links, PAX
//! records, headers, padding, the data of entries it skips) is bounded too: everything read
//! from the gzip stream counts, so no entry of any kind makes the reader hold more than
//! [`Limits::decompressed`]. A PAX global header (`git archive` writes one) is metadata and
//! skipped.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path};
use std::rc::Rc;

use super::{BundleError, MAX_ENTRIES, MAX_UNPACKED, is_manifest_path};

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
