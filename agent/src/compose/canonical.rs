//! Per-file validation and canonicalisation: every key checked, every value in long form.
//!
//! What: turns one interpolated YAML document into JSON whose services have the shape of
//! [`super::model::Service`]'s serde form: ports and volumes in long syntax (ranges expanded),
//! environment/labels/sysctls as maps, `depends_on` and `networks` as maps, durations and sizes
//! normalised, relative paths made absolute against the file's base directory.
//!
//! Design: done per file, before merging (like compose), so a type error or an unsupported key
//! names the file it is in. The Compose schema is data: [`schema`] holds a table per mapping
//! (keys and their kinds), [`walk`] is the one function that checks and converts a mapping by
//! its table, [`scalar`] reads single values; keys that need more than a type are small
//! functions in [`service`] (service keys), [`refs`] (what a service names: dependencies,
//! networks, env files) and [`mounts`] (ports, volumes, secrets, devices).
//! This file reads the document's top level and `include:`, and resolves host paths.
//! Unknown keys are refused: keys from the Compose Specification that Gantry does not
//! implement give [`ComposeError::Unsupported`], anything else [`ComposeError::UnknownKey`].
//! `x-*` keys are kept as raw JSON. A null service stays null (see [`service()`]).
//!
//! Limits: Windows paths are recognised where compose recognises them (a drive or UNC bind
//! source is absolute, a drive's colon does not split a short volume); `npipe` mounts are not
//! handled specially.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value as Json};
use serde_yaml::Value;

use super::error::ComposeError;
use super::interpolate::AsWritten;
use super::written::{NameKind, Written, WrittenNames};

mod mounts;
mod refs;
mod scalar;
mod schema;
mod service;
#[cfg(test)]
mod tests;
mod walk;

pub use mounts::{short_port, short_volume};
pub use scalar::to_json;
pub use service::{seccomp_file, service, shell_split, shell_words};

pub(in crate::compose) use scalar::closest;
use scalar::{entries, key_str, string, strings_at, type_name};
use schema::{FILE_OBJECT, INCLUDE, NETWORK, VOLUME};
use walk::{check_keys, walk};

/// Where a document comes from and how to resolve what it refers to.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub file: &'a Path,
    /// The file's values that interpolation changed, as written: errors quote those, never
    /// the values (see [`Ctx::quote`]).
    pub written: &'a AsWritten,
    /// Where the names and paths that interpolation made are recorded, for the errors after
    /// merging (see [`WrittenNames`]); shared by all the files of a load.
    pub names: &'a WrittenNames,
    /// Relative paths are resolved against this directory.
    pub base_dir: &'a Path,
    /// `base_dir` as written, when interpolation made it (an included project's directory, an
    /// extended file's directory): a path joined to it is recorded as written too.
    pub base_written: Option<&'a str>,
    /// The interpolation environment (for `environment: [KEY]` without a value).
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Expands `~` in bind sources.
    pub home: Option<&'a str>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("file", &self.file)
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

type R<T> = Result<T, ComposeError>;

const TOP_KEYS: &[&str] = &[
    "name", "version", "include", "services", "networks", "volumes", "secrets", "configs",
];
const UNSUPPORTED_TOP_KEYS: &[&str] = &["models"];

/// Joins a key path for messages (`services.web.ports[0]`).
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Ctx<'a> {
    fn invalid(&self, path: &str, message: impl Into<String>) -> ComposeError {
        ComposeError::invalid(self.file, path, message)
    }

    /// The string `value`, read at `path`, quoted for an error message. When interpolation
    /// made it, its text as written in the file (`"${DB_PASSWORD}"`) instead: a variable's
    /// value may be a secret. A value written literally is quoted as it is.
    fn quote(&self, path: &str, value: &str) -> String {
        format!("{:?}", self.written.get(path).unwrap_or(value))
    }

    /// A number read at `path` for an error message: as it is, or, when it was read from an
    /// interpolated string, that string as written, quoted (see [`Ctx::quote`]).
    fn number(&self, path: &str, n: impl std::fmt::Display) -> String {
        match self.written.get(path) {
            Some(w) => format!("{w:?}"),
            None => n.to_string(),
        }
    }

    /// Whether interpolation changed the value at `path`: an error then quotes no part of it
    /// on its own, only the whole as written ([`Ctx::quote`]).
    fn interpolated(&self, path: &str) -> bool {
        self.written.get(path).is_some()
    }

    /// Records `value`, the `kind` read at `path`, as written when interpolation made it: an
    /// error after merging (an undefined network...) then quotes that text.
    fn name(&self, kind: NameKind, path: &str, value: &str) {
        if let Some(w) = self.written.get(path) {
            self.names.insert(kind, value, Written::Whole(w.to_owned()));
        }
    }

    /// Records `value`, a `kind` cut out of the value at `path` after `prefix` and up to a `:`
    /// or the end (a named volume in `${VOL}:/data`), with that whole value as written when
    /// interpolation made it, unless the name is written literally there (`data:${TARGET}`).
    fn name_in(&self, kind: NameKind, path: &str, prefix: &str, value: &str) {
        let Some(w) = self.written.get(path) else {
            return;
        };
        let literal = !value.contains('$')
            && w.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix(value))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'));
        if !literal {
            self.names.insert(kind, value, Written::In(w.to_owned()));
        }
    }

    /// [`Ctx::abs_path`] of the path `p` read at `path`, recorded as written (see
    /// [`WrittenNames::file`]) when interpolation made it or the directory it is joined to:
    /// an error naming the file (an env file not found) shows that text instead.
    pub fn abs_path_at(&self, path: &str, p: &str) -> String {
        let (abs, joined) = self.resolve(p);
        let base = self.base_written.filter(|_| joined);
        let written = self.written.get(path);
        if written.is_some() || base.is_some() {
            let rel = written.unwrap_or(p);
            let shown = match base {
                Some(b) => format!("{b}/{}", rel.strip_prefix("./").unwrap_or(rel)),
                None => rel.to_owned(),
            };
            self.names
                .insert(NameKind::File, abs.clone(), Written::Whole(shown));
        }
        abs
    }

    fn unknown(&self, path: &str, key: &str, known: &[&str], unsupported: &[&str]) -> ComposeError {
        let full = join(path, key);
        if unsupported.contains(&key) {
            ComposeError::Unsupported {
                file: self.file.to_path_buf(),
                path: full,
            }
        } else {
            ComposeError::UnknownKey {
                file: self.file.to_path_buf(),
                path: full,
                suggestion: closest(key, known.iter().chain(unsupported)),
            }
        }
    }

    /// Makes a host path absolute: `~` expanded, relative joined to the base dir, normalised.
    pub fn abs_path(&self, p: &str) -> String {
        self.resolve(p).0
    }

    /// [`Ctx::abs_path`], and whether `p` was joined to the base dir.
    fn resolve(&self, p: &str) -> (String, bool) {
        let expanded: PathBuf = if p == "~" {
            match self.home {
                Some(h) => PathBuf::from(h),
                None => PathBuf::from(p),
            }
        } else if let Some(rest) = p.strip_prefix("~/") {
            match self.home {
                Some(h) => Path::new(h).join(rest),
                None => PathBuf::from(p),
            }
        } else {
            PathBuf::from(p)
        };
        if (expanded.is_absolute() && p.starts_with('/')) || is_windows_absolute(p) {
            // Written absolute: kept as written, like compose (`C:\data` too).
            return (p.to_string(), false);
        }
        let (joined, base) = if expanded.is_absolute() {
            (expanded, false)
        } else {
            (self.base_dir.join(expanded), true)
        };
        (normalize(&joined).to_string_lossy().into_owned(), base)
    }
}

/// `X:` at the start of `s` (`X` a letter): a Windows drive.
fn has_drive_letter(s: &str) -> bool {
    let mut chars = s.chars();
    matches!((chars.next(), chars.next()), (Some(l), Some(':')) if l.is_alphabetic())
}

/// A Windows absolute path, which compose keeps as written: `C:\x`, `C:/x` or `\\server\share`
/// (`C:x` is relative to the drive's current directory: joined like any relative path).
pub fn is_windows_absolute(s: &str) -> bool {
    s.starts_with("\\\\") || (has_drive_letter(s) && matches!(s.chars().nth(2), Some('\\' | '/')))
}

/// Lexical normalisation (`a/./b/../c` → `a/c`), no filesystem access.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

// ---------- the document ----------

/// A canonicalised compose file.
#[derive(Debug, Clone, Default)]
pub struct CanonFile {
    /// `name:` if set.
    pub name: Option<String>,
    /// `version:` was present (obsolete).
    pub has_version: bool,
    /// The document has no top-level key at all (an empty file, `{}`).
    pub empty: bool,
    /// Services, canonical JSON, `extends` not yet applied (kept under `"extends"`).
    pub services: Map<String, Json>,
    pub networks: Map<String, Json>,
    pub volumes: Map<String, Json>,
    pub secrets: Map<String, Json>,
    pub configs: Map<String, Json>,
    pub extensions: Map<String, Json>,
    /// `include:` entries, paths absolute.
    pub include: Vec<Include>,
}

/// One `include:` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Include {
    /// The included compose files (merged in order), absolute.
    pub paths: Vec<PathBuf>,
    /// Where the included files' relative paths point; default: the first path's directory.
    pub project_directory: Option<PathBuf>,
    /// Env files for the included files' interpolation; default: `<project_directory>/.env`.
    pub env_files: Vec<PathBuf>,
}

fn include(ctx: &Ctx<'_>, v: &Value) -> R<Vec<Include>> {
    let Value::Sequence(items) = v else {
        return Err(ctx.invalid(
            "include",
            format!("expected a list, found {}", type_name(v)),
        ));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("include[{i}]");
        let mut inc = Include::default();
        match item {
            Value::Mapping(_) => {
                for (k, val) in check_keys(ctx, &ip, item, INCLUDE)? {
                    let kp = join(&ip, &k);
                    match k.as_str() {
                        "path" => inc.paths = paths(ctx, &kp, val)?,
                        "project_directory" => {
                            let dir = string(ctx, &kp, val)?;
                            inc.project_directory = Some(PathBuf::from(ctx.abs_path_at(&kp, &dir)));
                        }
                        _ => inc.env_files = paths(ctx, &kp, val)?,
                    }
                }
            }
            other => {
                let path = string(ctx, &ip, other)?;
                inc.paths = vec![PathBuf::from(ctx.abs_path_at(&ip, &path))];
            }
        }
        if inc.paths.is_empty() {
            return Err(ctx.invalid(&ip, "an include needs a path"));
        }
        out.push(inc);
    }
    Ok(out)
}

/// A path or a list of paths read at `path`, made absolute ([`Ctx::abs_path_at`]).
fn paths(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Vec<PathBuf>> {
    Ok(strings_at(ctx, path, v)?
        .into_iter()
        .map(|(p, s)| PathBuf::from(ctx.abs_path_at(&p, &s)))
        .collect())
}

/// Canonicalises a whole document (already interpolated, tags stripped).
pub fn file(ctx: &Ctx<'_>, doc: &Value) -> R<CanonFile> {
    let mut out = CanonFile::default();
    let Value::Mapping(top) = doc else {
        return Err(ctx.invalid(
            "",
            format!("a compose file is a mapping, found {}", type_name(doc)),
        ));
    };
    out.empty = top.is_empty();
    for (k, v) in top {
        let key = key_str(k);
        if let Some(message) = super::xgantry::misspelt(&key) {
            return Err(ctx.invalid(&key, message));
        }
        match key.as_str() {
            "name" => {
                let name = string(ctx, "name", v)?;
                ctx.name(NameKind::Project, "name", &name);
                out.name = Some(name);
            }
            "version" => out.has_version = true,
            "include" => out.include = include(ctx, v)?,
            "services" => {
                for (name, svc) in entries(ctx, "services", v)? {
                    let path = join("services", &name);
                    if name.is_empty()
                        || !name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        return Err(ctx.invalid(
                            &path,
                            "invalid service name (use letters, digits, '.', '_' and '-')",
                        ));
                    }
                    out.services.insert(name.clone(), service(ctx, &path, svc)?);
                }
            }
            "networks" => {
                for (name, n) in entries(ctx, "networks", v)? {
                    out.networks.insert(
                        name.clone(),
                        Json::Object(walk(ctx, &join("networks", &name), n, NETWORK)?),
                    );
                }
            }
            "volumes" => {
                for (name, n) in entries(ctx, "volumes", v)? {
                    out.volumes.insert(
                        name.clone(),
                        Json::Object(walk(ctx, &join("volumes", &name), n, VOLUME)?),
                    );
                }
            }
            "secrets" | "configs" => {
                let mut m = Map::new();
                for (name, n) in entries(ctx, &key, v)? {
                    m.insert(
                        name.clone(),
                        Json::Object(walk(ctx, &join(&key, &name), n, FILE_OBJECT)?),
                    );
                }
                if key == "secrets" {
                    out.secrets = m;
                } else {
                    out.configs = m;
                }
            }
            k if k.starts_with("x-") => {
                out.extensions.insert(key.clone(), to_json(v));
            }
            _ => return Err(ctx.unknown("", &key, TOP_KEYS, UNSUPPORTED_TOP_KEYS)),
        }
    }
    Ok(out)
}
