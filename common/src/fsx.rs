//! Crash-safe file writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err("create temp file"))?;
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
}
