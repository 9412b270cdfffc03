//! Crash-safe file writes, and bounded reads of input files.
//!
//! Design: [`write_atomic`] writes a temp file beside the target and renames it over the
//! target. The temp file's name is unique per write, not per process
//! (`.<name>.tmp.<pid>.<n>`, `n` from a process-wide counter, created with `O_EXCL`), so two
//! threads writing the same path each rename their own complete file: the last rename wins,
//! and neither can rename (or delete) the other's partial file.
//!
//! A crash (SIGKILL, power loss) between create and rename leaves the temp file behind, and it
//! can hold a secret (an env file, a release with the environment). [`remove_leftover_temps`]
//! removes such files under a directory, [`remove_leftover_temps_of`] those of one file; a
//! program calls them at start, before it writes there.
//!
//! Inputs (compose, env and config files) are read with [`read_bounded`]: a regular file of at
//! most a cap, so a huge file or a FIFO (which would block the reader forever) is an error
//! naming what is wrong, not a hang or an out-of-memory. A file whose owner and mode decide
//! whether to trust it (a pid file) is read with [`read_bounded_nofollow`]: one open that
//! follows no symbolic link, and the metadata of that open file to check.
//!
//! [`write_atomic_if_changed`] compares with the existing file through one descriptor that
//! follows no link and waits on no FIFO; a comparison that fails (a root service that may not
//! read a file it gave to another user) is logged and the file rewritten, never silently.
//!
//! Limits: a leftover temp file of a process that is still alive (same pid namespace) is left
//! alone; so is one whose pid was reused by an unrelated live process, until that one exits.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::unistd::{Gid, Uid, fchown};

/// Why an atomic write failed, with the path it was writing.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {step}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub step: &'static str,
    #[source]
    pub source: io::Error,
}

/// Input caps: compose files (with their `extends` and `include` files).
pub const MAX_COMPOSE_FILE: u64 = 8 << 20;
/// Input caps: env files (`.env`, `--env-file`, `env_file:`) and configuration files.
pub const MAX_SMALL_FILE: u64 = 1 << 20;

/// Reads a text file that must be a regular file of at most `cap` bytes. A FIFO, socket or
/// device is refused without being read (it is opened non-blocking, so a FIFO with no writer
/// cannot hang the reader); a larger file is refused naming the cap. The error kinds:
/// `InvalidInput` (not a regular file), `FileTooLarge`, `InvalidData` (not UTF-8), or the
/// open's own (`NotFound`...).
pub fn read_bounded(path: &Path, cap: u64) -> io::Result<String> {
    let (file, meta) = open_regular(path, false)?;
    read_open_bounded(file, &meta, cap)
}

/// [`read_bounded`] for a file whose owner and mode decide whether to trust it (a pid file a
/// privileged process acts on): a symbolic link as the last component is refused, not followed
/// (`InvalidInput`), and the metadata returned is the open file's own (`fstat`), so the checks
/// made on it are about the bytes returned, not about whatever the path names a moment later.
pub fn read_bounded_nofollow(path: &Path, cap: u64) -> io::Result<(String, fs::Metadata)> {
    let (file, meta) = open_regular(path, true)?;
    let text = read_open_bounded(file, &meta, cap)?;
    Ok((text, meta))
}

/// What a file that is not a regular one is, for the error refusing it.
fn not_regular_kind(m: &fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    let t = m.file_type();
    if t.is_symlink() {
        Some("a symbolic link")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_block_device() || t.is_char_device() {
        Some("a device")
    } else if t.is_dir() {
        Some("a directory")
    } else {
        None
    }
}

fn not_regular(what: &str, nofollow: bool) -> io::Error {
    let tail = if nofollow && what == "a symbolic link" {
        "refused, not followed"
    } else {
        "refused, not read"
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file: {tail}"),
    )
}

/// Opens `path` for reading if it is a regular file (with `nofollow`, itself and not a
/// symbolic link to one), non-blocking and close-on-exec, with the open file's metadata.
fn open_regular(path: &Path, nofollow: bool) -> io::Result<(File, fs::Metadata)> {
    // Checked before opening (opening a device can have effects) and again on the open file
    // (it may have been swapped in between).
    let before = if nofollow {
        fs::symlink_metadata(path)?
    } else {
        fs::metadata(path)?
    };
    if let Some(what) = not_regular_kind(&before) {
        return Err(not_regular(what, nofollow));
    }
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    if nofollow {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        // Swapped for a symbolic link since the check.
        Err(e) if nofollow && e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(not_regular("a symbolic link", true));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if let Some(what) = not_regular_kind(&meta) {
        return Err(not_regular(what, nofollow));
    }
    Ok((file, meta))
}

/// Reads at most `cap` bytes of an open regular file as UTF-8 text; more is an error.
fn read_open_bounded(file: File, meta: &fs::Metadata, cap: u64) -> io::Result<String> {
    use std::io::Read as _;
    let too_large = || {
        let cap = if cap >= 1 << 10 {
            format!("{} KiB", cap >> 10)
        } else {
            format!("{cap}-byte")
        };
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than the {cap} cap for this kind of file"),
        )
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut body = Vec::new();
    // The file may grow after the fstat: never read more than one byte past the cap.
    file.take(cap + 1).read_to_end(&mut body)?;
    if body.len() as u64 > cap {
        return Err(too_large());
    }
    String::from_utf8(body)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8 text"))
}

/// Owner to give a written file; `None` keeps the writer's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Replace `path` with `contents` so that a reader (or a crash) sees either the old file or the
/// new one, never a mix: the temp file is created in the same directory with its final `mode`
/// (so it is never readable by others, not even for a moment), chowned, written, fsynced,
/// renamed over `path`, and the directory is fsynced.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<(), WriteError> {
    let err = |step: &'static str| {
        let path = path.to_path_buf();
        move |source| WriteError { path, step, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| WriteError {
        path: path.to_path_buf(),
        step: "file name",
        source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let (tmp, mut file) =
        create_temp(dir, &name.to_string_lossy(), mode).map_err(err("create temp file"))?;
    let result = (|| {
        // The umask may have narrowed the mode: set it exactly.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err("chmod"))?;
        if owner.uid.is_some() || owner.gid.is_some() {
            fchown(
                &file,
                owner.uid.map(Uid::from_raw),
                owner.gid.map(Gid::from_raw),
            )
            .map_err(|e| io::Error::from_raw_os_error(e as i32))
            .map_err(err("chown"))?;
        }
        file.write_all(contents).map_err(err("write"))?;
        file.sync_all().map_err(err("fsync"))?;
        fs::rename(&tmp, path).map_err(err("rename"))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err("fsync directory"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Per-process counter that makes each write's temp file name unique.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Marker between the target's name and the writer's pid in a temp file's name.
const TEMP_MARK: &str = ".tmp.";

/// Creates `dir/.<name>.tmp.<pid>.<n>` exclusively, with `mode`. A name taken (a leftover of a
/// dead process whose pid we now have) is skipped, never reused.
fn create_temp(dir: &Path, name: &str, mode: u32) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut tries = 0;
    loop {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}{TEMP_MARK}{pid}.{n}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The target's name and the writer's pid if `name` is a temp file name of [`write_atomic`]:
/// `.<name>.tmp.<pid>.<n>`, or `.<name>.tmp.<pid>` (written by Gantry before temp names were
/// unique per write).
fn temp_writer(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix('.')?;
    let (target, suffix) = rest.rsplit_once(TEMP_MARK)?;
    if target.is_empty() {
        return None;
    }
    let (pid, n) = match suffix.split_once('.') {
        Some((pid, n)) => (pid, Some(n)),
        None => (suffix, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !n.is_none_or(digits) {
        return None;
    }
    Some((target, pid.parse().ok()?))
}

/// Whether a process with this pid exists in our pid namespace. Our own pid counts as dead
/// unless `own_alive` (at start we have written nothing yet, so a temp file with our pid is
/// from a former process; later, it may be a write of ours in flight).
fn writer_alive(pid: u32, own_alive: bool) -> bool {
    if pid == std::process::id() {
        return own_alive;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temp files [`write_atomic`] left under `dir` (and its subdirectories, without
/// following symlinks) when a writer was killed between create and rename. Files of a writer
/// that is still running are left alone. Returns the paths removed; a missing `dir` is not an
/// error. Call it at start, before writing under `dir`; meant for a tree Gantry owns (the
/// state dir): for a file in a shared directory use [`remove_leftover_temps_of`].
pub fn remove_leftover_temps(dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let mut removed = Vec::new();
    remove_temps_in(dir, None, false, &mut removed, 0)?;
    Ok(removed)
}

/// [`remove_leftover_temps`] for a process that has been writing already (a daemon taking a
/// stack's lock): temp files of its own pid are writes of its other threads in flight, left
/// alone like those of any live writer.
pub fn remove_leftover_temps_of_others(dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let mut removed = Vec::new();
    remove_temps_in(dir, None, true, &mut removed, 0)?;
    Ok(removed)
}

/// Like [`remove_leftover_temps`], for the temp files of one target `path` only, in its
/// directory and nowhere else (for files written into directories others use, such as the
/// sidecar's `outputs:`).
pub fn remove_leftover_temps_of(path: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    remove_temps_in(dir, Some(name), false, &mut removed, 0)?;
    Ok(removed)
}

/// Removes leftover temp files in `dir`; with `only`, those of that target name and without
/// descending, else all of them, descending into subdirectories.
fn remove_temps_in(
    dir: &Path,
    only: Option<&str>,
    own_alive: bool,
    removed: &mut Vec<PathBuf>,
    depth: u32,
) -> Result<(), WriteError> {
    let err = |path: &Path, step: &'static str| {
        let path = path.to_path_buf();
        move |source| WriteError { path, step, source }
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound && depth == 0 => return Ok(()),
        Err(e) => return Err(err(dir, "list directory")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(err(dir, "list directory"))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(err(&path, "stat"))?;
        if kind.is_dir() {
            // Gantry's trees are shallow; the bound only guards against a pathological tree.
            if only.is_none() && depth < 16 {
                remove_temps_in(&path, None, own_alive, removed, depth + 1)?;
            }
            continue;
        }
        let file_name = entry.file_name();
        let is_ours = file_name
            .to_str()
            .and_then(temp_writer)
            .is_some_and(|(target, pid)| {
                only.is_none_or(|o| o == target) && !writer_alive(pid, own_alive)
            });
        if kind.is_file() && is_ours {
            match fs::remove_file(&path) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(&path, "remove leftover temp file")(e)),
            }
        }
    }
    Ok(())
}

/// Like [`write_atomic`], but leaves the file alone when it already holds exactly `contents`
/// with this `mode` and `owner`. Returns whether it wrote.
///
/// The existing file is compared through one descriptor ([`holds`]): its metadata first (a
/// different mode, owner or size needs no read), then at most `contents.len() + 1` bytes. It is
/// opened without following a symbolic link and non-blocking (a link or a FIFO at the path is
/// replaced, never read through or waited on). Reading it back needs read permission on it: a
/// root service without `CAP_DAC_OVERRIDE` or `CAP_DAC_READ_SEARCH` cannot read a file it gave
/// to another user with mode 0600 (the sidecar's unit grants `CAP_DAC_READ_SEARCH` for this).
/// When the comparison fails for any reason but the file not existing, whether the file is
/// current cannot be known: it is rewritten, and the failure is logged at `warn` with the path
/// and the error kind (never the content), so a file rewritten on every call is not a mystery.
pub fn write_atomic_if_changed(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<bool, WriteError> {
    match holds(path, contents, mode, owner) {
        Ok(true) => return Ok(false),
        Ok(false) => {}
        Err(e) => {
            let hint = if e.kind() == io::ErrorKind::PermissionDenied {
                "a root service needs CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE) to read a file \
                 owned by another user; without it the file is rewritten every time"
            } else {
                "the file is rewritten every time this happens"
            };
            tracing::warn!(
                path = %path.display(),
                error = %e.kind(),
                "cannot read the existing file to compare it, rewriting it (hint: {hint})"
            );
        }
    }
    write_atomic(path, contents, mode, owner).map(|()| true)
}

/// Whether `path` is a regular file holding exactly `contents`, with `mode` and `owner`.
/// `Ok(false)` when it differs, is missing or is not a regular file (the write replaces it);
/// `Err` when that cannot be told (it cannot be stat'ed, opened or read).
fn holds(path: &Path, contents: &[u8], mode: u32, owner: Owner) -> io::Result<bool> {
    use std::io::Read as _;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let same = |m: &fs::Metadata| {
        m.file_type().is_file()
            && m.permissions().mode() & 0o7777 == mode
            && owner.uid.is_none_or(|u| u == m.uid())
            && owner.gid.is_none_or(|g| g == m.gid())
            && m.len() == contents.len() as u64
    };
    // Metadata first: a difference there is known without opening the file.
    match fs::symlink_metadata(path) {
        Ok(m) if !same(&m) => return Ok(false),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC | nix::libc::O_NOFOLLOW;
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        // Removed, or swapped for a symbolic link, since the stat: the write replaces it.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(nix::libc::ELOOP) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    // The open file's own metadata: what is read below is this file.
    if !same(&file.metadata()?) {
        return Ok(false);
    }
    // The old content may be a secret too: read into one buffer of fixed size (one byte more
    // than `contents`, to see a file that grew), wiped on drop.
    let mut old = zeroize::Zeroizing::new(vec![0u8; contents.len() + 1]);
    let mut got = 0;
    while got < old.len() {
        match (&file).read(&mut old[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(&old[..got] == contents)
}

#[cfg(test)]
mod tests;
