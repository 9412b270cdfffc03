//! The names and paths interpolation made that errors after merging quote, kept with their
//! text as written: a service's networks, volumes, secrets, configs and dependencies, the
//! service an `extends` names, the project name, env and label files, and the compose files
//! `include` and `extends` reach. Those errors quote the text as written (`"${NET}"`), never
//! the name: what a variable holds may be a secret.
//!
//! Design: a per-file error quotes a value as written through its key path
//! ([`super::interpolate::AsWritten`]), but once the files are merged, `extends` applied and
//! env files read, a name has no key path any more. So each file's canonicalisation records
//! here, by kind and value, every name and absolute path it derives from interpolated text
//! (see [`super::canonical::Ctx`]); one [`WrittenNames`] serves all the files of a load
//! (`include` and `extends` too), and the checks after merging look names up by value.
//!
//! Limits: a name written literally that is equal to one a variable gave elsewhere, of the same
//! kind, is shown as that variable's text too (the other way round would show a value). A name
//! cut out of a longer value (a named volume in `${VOL}:/data`, a service in `links:` or
//! `network_mode: service:${X}`) is shown as the whole value as written ("named in ...").

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::ComposeError;

/// What a recorded name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameKind {
    Network,
    Volume,
    Secret,
    Config,
    /// A service another one depends on or extends.
    Service,
    /// The project's `name:`.
    Project,
    /// An absolute path: an env or label file, a compose file, an included project's
    /// directory.
    File,
}

/// The text as written that a name came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The whole value (`${NET}`).
    Whole(String),
    /// A value the name is a part of (`${VOL}:/data` for a named volume).
    In(String),
}

/// The names and paths of one load that interpolation made, by kind and value, with their
/// text as written. Filled while the files are read (through a shared reference: the
/// canonicaliser's context is `Copy`), read by the checks after merging.
#[derive(Debug, Default)]
pub struct WrittenNames(RefCell<BTreeMap<(NameKind, String), Written>>);

impl WrittenNames {
    /// Records that interpolation made `value` (a `kind`) from `written`. A whole value as
    /// written wins over a longer one holding it.
    pub fn insert(&self, kind: NameKind, value: impl Into<String>, written: Written) {
        let mut map = self.0.borrow_mut();
        let slot = map.entry((kind, value.into())).or_insert(written.clone());
        if matches!((&*slot, &written), (Written::In(_), Written::Whole(_))) {
            *slot = written;
        }
    }

    fn get(&self, kind: NameKind, value: &str) -> Option<Written> {
        self.0.borrow().get(&(kind, value.to_owned())).cloned()
    }

    /// `value` (a `kind`) quoted for an error: its text as written when interpolation made it
    /// (`"${NET}"`, or `named in "${VOL}:/data"` for a part of a value), else itself.
    pub fn quote(&self, kind: NameKind, value: &str) -> String {
        match self.get(kind, value) {
            Some(Written::Whole(w)) => format!("{w:?}"),
            Some(Written::In(w)) => format!("named in {w:?}"),
            None => format!("{value:?}"),
        }
    }

    /// `value` (a `kind`) unquoted, for a place in a key path (`services.<name>.extends`): its
    /// text as written when interpolation made it, else itself.
    pub fn raw(&self, kind: NameKind, value: &str) -> String {
        match self.get(kind, value) {
            Some(Written::Whole(w) | Written::In(w)) => w,
            None => value.to_owned(),
        }
    }

    /// The absolute path `path` as written, when interpolation made it (or made the directory
    /// it was joined to).
    pub fn file(&self, path: &Path) -> Option<String> {
        match self.get(NameKind::File, &path.to_string_lossy())? {
            Written::Whole(w) | Written::In(w) => Some(w),
        }
    }

    /// `path` for an error: as written when interpolation made it, else itself.
    pub fn path(&self, path: &Path) -> PathBuf {
        self.file(path)
            .map_or_else(|| path.to_path_buf(), PathBuf::from)
    }

    /// The directory of the file `path` as written, when interpolation made `path` (relative
    /// paths in that file are joined to it): with the last part of `path` written literally
    /// (`${DIR}/compose.yaml`), the text before it (`${DIR}`); else `${FILE}/..`.
    pub fn dir_of(&self, path: &Path) -> Option<String> {
        let written = self.file(path)?;
        Some(match written.rsplit_once('/') {
            Some(("", last)) if !last.contains('$') => "/".to_owned(),
            Some((head, last)) if !last.contains('$') => head.to_owned(),
            _ => format!("{written}/.."),
        })
    }

    /// `e` naming, instead of a file that interpolation made, its path as written (an env
    /// file's read and parse errors name the file).
    pub fn in_error(&self, e: ComposeError) -> ComposeError {
        match e {
            ComposeError::Read { file, source } => ComposeError::Read {
                file: self.path(&file),
                source,
            },
            ComposeError::EnvFile {
                file,
                line,
                message,
            } => ComposeError::EnvFile {
                file: self.path(&file),
                line,
                message,
            },
            other => other,
        }
    }
}
