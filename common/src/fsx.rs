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
//! naming what is wrong, not a hang or an out-of-memory.
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
    use std::io::Read as _;
    let not_regular = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not a regular file: refused, not read"),
        )
    };
    let kind = |m: &fs::Metadata| {
        use std::os::unix::fs::FileTypeExt as _;
        let t = m.file_type();
        if t.is_fifo() {
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
    };
    // Checked before opening (opening a device can have effects) and again on the open file
    // (it may have been swapped in between).
    if let Some(what) = kind(&fs::metadata(path)?) {
        return Err(not_regular(what));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if let Some(what) = kind(&meta) {
        return Err(not_regular(what));
    }
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!(
                "larger than the {} KiB cap for this kind of file",
                cap >> 10
            ),
        )
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut body = Vec::new();
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
/// (and has the right mode). Returns whether it wrote.
pub fn write_atomic_if_changed(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Owner,
) -> Result<bool, WriteError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if let (Ok(meta), Ok(old)) = (fs::metadata(path), fs::read(path)) {
        let same_owner =
            owner.uid.is_none_or(|u| u == meta.uid()) && owner.gid.is_none_or(|g| g == meta.gid());
        if old == contents && meta.permissions().mode() & 0o7777 == mode && same_owner {
            return Ok(false);
        }
    }
    write_atomic(path, contents, mode, owner).map(|()| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.env");
        write_atomic(&p, b"A=1\n", 0o600, Owner::default()).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"A=1\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!write_atomic_if_changed(&p, b"A=1\n", 0o600, Owner::default()).unwrap());
        assert!(write_atomic_if_changed(&p, b"A=2\n", 0o600, Owner::default()).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"A=2\n");
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn concurrent_writers_of_one_path_never_clobber_each_other() {
        // Before temp names were unique per write, two threads shared `.<name>.tmp.<pid>`:
        // one removed or renamed the other's partial file (failed writes, or a torn file).
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("release.json");
        let threads = 8;
        let rounds = 40;
        let body = |t: usize| vec![b'a' + t as u8; 64 * 1024];
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(got) = fs::read(&p) {
                        assert_eq!(got.len(), 64 * 1024, "a reader saw a partial file");
                        assert!(got.iter().all(|b| *b == got[0]), "a reader saw a torn file");
                        reads += 1;
                    }
                }
                reads
            });
            let writers: Vec<_> = (0..threads)
                .map(|t| {
                    let p = &p;
                    s.spawn(move || {
                        (0..rounds)
                            .map(|_| write_atomic(p, &body(t), 0o600, Owner::default()))
                            .filter_map(Result::err)
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let failed: Vec<String> = writers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect();
            stop.store(true, Ordering::Relaxed);
            let reads = reader.join();
            assert_eq!(failed, Vec::<String>::new(), "every write succeeds");
            assert!(reads.unwrap() > 0, "the reader read the file");
        });
        let last = fs::read(&p).unwrap();
        assert!(
            (0..threads).any(|t| last == body(t)),
            "one writer's whole file"
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["release.json"], "no temp file left behind");
    }

    #[test]
    fn temp_names_are_unique_per_write() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _fa) = create_temp(dir.path(), "x.env", 0o600).unwrap();
        let (b, _fb) = create_temp(dir.path(), "x.env", 0o600).unwrap();
        assert_ne!(a, b);
        let pid = std::process::id();
        for t in [&a, &b] {
            let name = t.file_name().unwrap().to_str().unwrap();
            assert_eq!(temp_writer(name), Some(("x.env", pid)), "{name}");
        }
        // A leftover with the name the next write would take is skipped, not reused.
        let next = TEMP_SEQ.load(Ordering::Relaxed);
        let taken = dir.path().join(format!(".x.env.tmp.{pid}.{next}"));
        fs::write(&taken, "LEFTOVER").unwrap();
        write_atomic(&dir.path().join("x.env"), b"A=1\n", 0o600, Owner::default()).unwrap();
        assert_eq!(fs::read(&taken).unwrap(), b"LEFTOVER");
    }

    #[test]
    fn a_running_process_keeps_its_own_temps_when_it_asks_so() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir
            .path()
            .join(format!(".canary-command.tmp.{}.4", std::process::id()));
        fs::write(&own, "promote").unwrap();
        // A daemon taking a lock: another of its threads may be writing this one.
        assert!(
            remove_leftover_temps_of_others(dir.path())
                .unwrap()
                .is_empty()
        );
        assert!(own.exists());
        // At start: a former process had our pid.
        assert_eq!(
            remove_leftover_temps(dir.path()).unwrap(),
            std::slice::from_ref(&own)
        );
        assert!(!own.exists());
    }

    #[test]
    fn leftover_temps_of_dead_writers_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("stacks/web/releases")).unwrap();
        // Above any pid_max (at most 2^22): no process has these pids.
        let dead = 4_194_305;
        let leftovers = [
            d.join(format!(".app.env.tmp.{dead}.0")),
            d.join(format!("stacks/web/releases/.000003.json.tmp.{dead}.17")),
            d.join(format!(".old-format.json.tmp.{}", dead + 1)),
        ];
        let parent = std::os::unix::process::parent_id();
        let kept = [
            d.join("app.env"),
            d.join(".hidden"),
            d.join("notes.tmp.12"),
            d.join(".x.tmp.abc"),
            d.join(format!(".x.tmp.{dead}.1a")),
            d.join(".tmp.5"),
            // a writer that is alive (our parent) may be between create and rename
            d.join(format!(".live.env.tmp.{parent}.3")),
            d.join("stacks/web/releases/000003.json"),
        ];
        for f in leftovers.iter().chain(&kept) {
            fs::write(f, "SECRET=1").unwrap();
        }
        // A directory with a temp-like name is not a temp file.
        fs::create_dir(d.join(format!(".dir.tmp.{dead}.0"))).unwrap();
        let mut removed = remove_leftover_temps(d).unwrap();
        removed.sort();
        let mut want = leftovers.to_vec();
        want.sort();
        assert_eq!(removed, want);
        for f in &leftovers {
            assert!(!f.exists(), "{}", f.display());
        }
        for f in &kept {
            assert!(f.exists(), "{} was kept", f.display());
        }
        assert!(
            remove_leftover_temps(&d.join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn leftover_temps_of_one_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        let dead = 4_194_305;
        let mine = d.join(format!(".app.env.tmp.{dead}.4"));
        let others = [
            d.join(format!(".other.env.tmp.{dead}.4")),
            d.join(format!(".app.env.old.tmp.{dead}.4")),
            d.join(format!("sub/.app.env.tmp.{dead}.4")),
        ];
        for f in std::iter::once(&mine).chain(&others) {
            fs::write(f, "SECRET=1").unwrap();
        }
        let removed = remove_leftover_temps_of(&d.join("app.env")).unwrap();
        assert_eq!(removed, std::slice::from_ref(&mine));
        assert!(!mine.exists());
        for f in &others {
            assert!(f.exists(), "{} was kept", f.display());
        }
    }

    #[test]
    fn names_the_path_on_failure() {
        let e = write_atomic(
            Path::new("/nonexistent-dir/x"),
            b"",
            0o600,
            Owner::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x"), "{e}");
    }

    #[test]
    fn bounded_reads_refuse_fifos_devices_and_large_files_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("compose.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer: a plain read would block forever.
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || tx.send(read_bounded(&f, MAX_COMPOSE_FILE)).unwrap());
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a FIFO must not hang");
        let e = got.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a FIFO"), "{e}");

        let e = read_bounded(Path::new("/dev/zero"), MAX_SMALL_FILE).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");

        let big = dir.path().join(".env");
        fs::write(&big, vec![b'A'; (MAX_SMALL_FILE + 1) as usize]).unwrap();
        let e = read_bounded(&big, MAX_SMALL_FILE).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("1024 KiB cap"), "{e}");

        fs::write(&big, "A=1\n").unwrap();
        assert_eq!(read_bounded(&big, MAX_SMALL_FILE).unwrap(), "A=1\n");
    }
}
