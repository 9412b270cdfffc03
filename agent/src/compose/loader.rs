//! The load pipeline: files → YAML → tags → interpolation → canonical → extends → merge →
//! env files, profiles, defaults, references → [`Project`].
//!
//! Design: each file goes through the per-file stages on its own (so errors name it); the
//! merged canonical JSON is then completed (env files read, default network added, names
//! given to networks/volumes/secrets/configs, unused ones dropped like compose does) and
//! deserialised into the model types. Anything wrong there is a [`ComposeError::Project`].
//! This file runs the pipeline and the per-file stages, and refuses what compose refuses
//! across files (an empty project, a service left null); [`complete`] does the completion.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::LoadOptions;
use super::canonical::{self, Ctx, join, normalize};
use super::dotenv;
use super::error::{ComposeError, UnreadableComposeFile};
use super::extends;
use super::interpolate::{AsWritten, InterpolationError, interpolate};
use super::merge::{self, Tags};
use super::model::Project;
use super::written::{NameKind, Written, WrittenNames};
use super::xgantry::StackDefaults;
use super::yaml;

mod complete;
mod origins;

use complete::{build_service, check_dependencies, resolve_resources};
use origins::Origins;

/// Default file names, in the order compose looks for them.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Override file names, in the order compose looks for them: the first one found is merged
/// over the default file.
pub const OVERRIDE_FILES: &[&str] = &[
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// The files compose would load from `dir` when none is named: the first of
/// [`DEFAULT_FILES`] there, then the first of [`OVERRIDE_FILES`] if any. Empty when `dir` has
/// no default file. A second candidate of either kind is ignored, with a warning (as compose
/// does) pushed to `warnings`.
///
/// A file taken is there, but it may not be readable (a directory, no read permission, a
/// symlink to nothing or a loop): it is returned all the same, never skipped for the next
/// name, and [`load`](super::load) refuses it with one error naming it and saying what to do
/// ([`UnreadableComposeFile`]). Compose fails on the first two as well; it skips the
/// symlinks, where Gantry refuses to fall back to another file silently.
pub fn discover(dir: &Path, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let Some(main) = first_of(dir, DEFAULT_FILES, "compose", warnings) else {
        return Vec::new();
    };
    let mut files = vec![main];
    files.extend(first_of(dir, OVERRIDE_FILES, "override", warnings));
    files
}

/// The first of `names` in `dir`; a warning when there are several.
fn first_of(dir: &Path, names: &[&str], what: &str, warnings: &mut Vec<String>) -> Option<PathBuf> {
    let found: Vec<PathBuf> = names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| is_there(p))
        .collect();
    if found.len() > 1 {
        warnings.push(format!(
            "found {} {what} files in {}: using {}, ignoring {}",
            found.len(),
            dir.display(),
            found[0].display(),
            found[1..]
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    found.into_iter().next()
}

/// The compose files given to the load that are there but cannot be read are refused, each
/// with what to do ([`UnreadableComposeFile`]); one that is not there at all is left to the
/// read, whose error says so.
fn check_readable(files: &[PathBuf]) -> Result<(), UnreadableComposeFile> {
    for file in files.iter().filter(|f| is_there(f)) {
        readable(file).map_err(|source| UnreadableComposeFile {
            file: file.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Whether there is an entry at `path`, whatever it is (a symlink to nothing too).
fn is_there(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Whether `path` is a regular file this process may open. Nothing is read: a FIFO is refused
/// before it is opened.
fn readable(path: &Path) -> std::io::Result<()> {
    let not_a_file = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let meta = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_a_file("a symlink to nothing"));
        }
        other => other?,
    };
    if meta.is_dir() {
        return Err(not_a_file("a directory, not a file"));
    }
    if !meta.is_file() {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = meta.file_type();
        return Err(not_a_file(if kind.is_fifo() {
            "a FIFO (named pipe), not a regular file"
        } else if kind.is_socket() {
            "a socket, not a regular file"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device, not a regular file"
        } else {
            "not a regular file"
        }));
    }
    std::fs::File::open(path).map(drop)
}

struct Env {
    /// Interpolation environment: env files under the process environment.
    vars: BTreeMap<String, String>,
    home: Option<String>,
    /// Files under this directory are named relative to it in errors.
    cwd: PathBuf,
    /// The names and paths interpolation made, in every file of the load (`include` and
    /// `extends` too), for the errors after merging.
    names: Rc<WrittenNames>,
}

impl Env {
    fn lookup(&self, k: &str) -> Option<String> {
        self.vars.get(k).cloned()
    }
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        normalize(p)
    } else {
        normalize(&cwd.join(p))
    }
}

pub(crate) fn load(opts: &LoadOptions) -> Result<Project, ComposeError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let explicit_dir = opts.project_dir.as_ref().map(|d| absolute(&cwd, d));
    let compose_file: Vec<PathBuf> = opts
        .environment
        .get("COMPOSE_FILE")
        .map(|v| {
            let sep = opts
                .environment
                .get("COMPOSE_PATH_SEPARATOR")
                .and_then(|s| s.chars().next())
                .unwrap_or(':');
            v.split(sep)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let mut discovery_warnings = Vec::new();
    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|f| absolute(&cwd, f)).collect()
    } else if !compose_file.is_empty() {
        compose_file.iter().map(|f| absolute(&cwd, f)).collect()
    } else {
        let dir = explicit_dir.clone().unwrap_or_else(|| cwd.clone());
        let found = discover(&dir, &mut discovery_warnings);
        if found.is_empty() {
            return Err(ComposeError::NoComposeFile { dir });
        }
        found
    };
    check_readable(&files)?;
    let project_dir = explicit_dir.unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone())
    });

    // Variables: env files first, a later one over an earlier one, the process environment
    // (and --var) over them all. Interpolation in an env file sees, as in compose, the process
    // environment first, then the file's own earlier keys, then what earlier files gave.
    let mut dot: BTreeMap<String, String> = BTreeMap::new();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let p = project_dir.join(".env");
        if p.is_file() { vec![p] } else { Vec::new() }
    } else {
        opts.env_files.iter().map(|f| absolute(&cwd, f)).collect()
    };
    let process = |k: &str| opts.environment.get(k).cloned();
    for f in &env_files {
        let vars = dotenv::read_after(f, false, &process, &dot)?;
        dot.extend(vars);
    }
    let mut vars = dot;
    vars.extend(opts.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    let env = Env {
        home: vars.get("HOME").cloned(),
        vars,
        cwd: cwd.clone(),
        names: Rc::default(),
    };

    let mut warnings: Vec<String> = discovery_warnings;
    let mut stack = Vec::new();
    let mut origins = Origins::default();
    let (mut merged, name_in_files, empty) = load_files(
        &files,
        (&project_dir, None),
        &env,
        (&mut warnings, &mut origins),
        &mut stack,
    )?;
    if empty {
        // Compose refuses it too ("empty compose file").
        let names: Vec<String> = files
            .iter()
            .map(|f| shown(f, &env).display().to_string())
            .collect();
        return Err(ComposeError::project(format!(
            "{}: empty compose file (define at least one service under services:)",
            names.join(", ")
        )));
    }

    // Project name, as compose v2 does: -p, else COMPOSE_PROJECT_NAME (environment or .env),
    // both validated; else `name:` (the last file's), else the directory name, both normalised.
    let explicit = opts
        .project_name
        .clone()
        .or_else(|| env.lookup("COMPOSE_PROJECT_NAME"))
        .filter(|s| !s.is_empty());
    let name = match (explicit, name_in_files) {
        (None, Some(in_file)) => {
            let n = normalize_project_name(&in_file);
            if n.is_empty() {
                return Err(ComposeError::project(format!(
                    "invalid project name {} in name: (use lowercase letters, digits, '-' and '_')",
                    env.names.quote(NameKind::Project, &in_file)
                )));
            }
            n
        }
        (Some(n), _) => {
            if !is_valid_project_name(&n) {
                return Err(ComposeError::project(format!(
                    "invalid project name {n:?}: use only lowercase letters, digits, '-' and '_', starting with a letter or digit"
                )));
            }
            n
        }
        _ => {
            let base = project_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let n = normalize_project_name(&base);
            if n.is_empty() {
                return Err(ComposeError::project(format!(
                    "cannot derive a project name from the directory {base:?}: pass -p NAME"
                )));
            }
            n
        }
    };

    // Profiles.
    let mut profiles: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if let Some(p) = env.lookup("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }

    let first_file = files.first().cloned().unwrap_or_default();
    let services_json = match merged.get_mut("services").map(Json::take) {
        Some(Json::Object(m)) => m,
        _ => Map::new(),
    };
    // An x-gantry error names the file that wrote the key.
    let defaults = StackDefaults::parse(merged.get("x-gantry")).map_err(|e| {
        let file = origins.stack_file(&e.key).unwrap_or(&first_file).to_owned();
        e.in_stack(&file)
    })?;
    let mut services = BTreeMap::new();
    let mut disabled = BTreeMap::new();
    for (sname, mut sj) in services_json {
        merge::enforce_unicity(&mut sj);
        defaults.apply(&mut sj);
        let svc = build_service(&sname, sj, &env, (&first_file, &origins))?;
        let active = svc.profiles.is_empty()
            || profiles.contains("*")
            || svc.profiles.iter().any(|p| profiles.contains(p));
        if active {
            services.insert(sname, svc);
        } else {
            disabled.insert(sname, svc);
        }
    }

    let mut project = Project {
        name,
        working_dir: project_dir,
        config_files: files,
        services,
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
        extensions: BTreeMap::new(),
        disabled_services: disabled,
        warnings: Vec::new(),
    };
    if let Some(obj) = merged.as_object() {
        for (k, v) in obj {
            if k.starts_with("x-") {
                project.extensions.insert(k.clone(), v.clone());
            }
        }
    }
    resolve_resources(&mut project, &merged, &env.names)?;
    check_dependencies(&project, &env.names)?;
    warnings.extend(crate::compose::mounted::ignored_options(&project));
    project.warnings = dedup_strings(warnings);
    Ok(project)
}

fn dedup_strings(v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

/// Compose's normalisation: lowercase, keep `[a-z0-9_-]`, no leading `_` or `-`.
pub fn normalize_project_name(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

/// Loads and merges `files` (relative paths against `base_dir`, as written when interpolation
/// made it), `include`s and `extends` applied; records in `origins` which file wrote which
/// key of a service and of the top-level `x-gantry`. Returns the merged canonical document,
/// the last `name:` seen, and whether every file was empty (no top-level key).
fn load_files(
    files: &[PathBuf],
    base_dir: (&Path, Option<&str>),
    env: &Env,
    (warnings, origins): (&mut Vec<String>, &mut Origins),
    stack: &mut Vec<PathBuf>,
) -> Result<(Json, Option<String>, bool), ComposeError> {
    let mut merged = json!({});
    let mut name_in_files: Option<String> = None;
    let mut empty = true;
    for file in files {
        if stack.contains(file) {
            return Err(ComposeError::project(format!(
                "{}: include cycle ({})",
                shown(file, env).display(),
                stack
                    .iter()
                    .map(|p| shown(p, env).display().to_string())
                    .collect::<Vec<_>>()
                    .join(" -> ")
            )));
        }
        let (tags, canon) = load_file_in(file, base_dir, env, warnings)?;
        empty &= canon.empty;
        if canon.has_version {
            warnings.push(format!(
                "{}: the attribute `version` is obsolete, it will be ignored",
                env.names.path(file).display()
            ));
        }
        if let Some(n) = &canon.name {
            name_in_files = Some(n.clone());
        }
        // An extended file's relative paths point from that file's own directory.
        let mut loader = |other: &Path| -> Result<extends::FileServices, ComposeError> {
            let dir = other.parent().unwrap_or(Path::new("/")).to_path_buf();
            let dir_written = env.names.dir_of(other);
            let mut w = Vec::new();
            // Not checked for null services: compose does not check a file reached through
            // `extends` either (extending a null service merges over nothing).
            let (t, c) = load_file_in(other, (&dir, dir_written.as_deref()), env, &mut w)?;
            Ok((c.services, t))
        };
        let services = extends::resolve_all(file, &canon.services, &tags, &env.names, &mut loader)?;
        let mut d = Map::new();
        d.insert("services".into(), Json::Object(services));
        for (k, v) in [
            ("networks", canon.networks),
            ("volumes", canon.volumes),
            ("secrets", canon.secrets),
            ("configs", canon.configs),
        ] {
            if !v.is_empty() {
                d.insert(k.into(), Json::Object(v));
            }
        }
        for (k, v) in canon.extensions {
            d.insert(k, v);
        }
        stack.push(file.clone());
        for inc in &canon.include {
            let imported = load_include(inc, env, warnings, stack)?;
            import(&shown(file, env), &mut d, imported)?;
        }
        stack.pop();
        origins.record(&shown(file, env), &d);
        merged = merge::merge_documents(merged, Json::Object(d), &tags);
        if let Some(services) = merged.get("services").and_then(Json::as_object) {
            check_null_services(&shown(file, env), services)?;
        }
    }
    Ok((merged, name_in_files, empty))
}

/// A service left null once `file` is merged is refused, as compose does: `web:` alone is
/// valid only over a `web` an earlier file defines.
fn check_null_services(file: &Path, services: &Map<String, Json>) -> Result<(), ComposeError> {
    match services.iter().find(|(_, v)| v.is_null()) {
        Some((name, _)) => Err(ComposeError::invalid(
            file,
            join("services", name),
            "a service is a mapping, found null (give it at least an image)",
        )),
        None => Ok(()),
    }
}

/// Loads one `include:` entry as its own little project: its own directory and env files
/// (the including project's variables win over them, as compose does).
fn load_include(
    inc: &canonical::Include,
    env: &Env,
    warnings: &mut Vec<String>,
    stack: &mut Vec<PathBuf>,
) -> Result<Json, ComposeError> {
    let (dir, dir_written) = match &inc.project_directory {
        Some(d) => (d.clone(), env.names.file(d)),
        None => match inc.paths.first() {
            Some(first) => (
                first
                    .parent()
                    .map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
                env.names.dir_of(first),
            ),
            None => (PathBuf::from("/"), None),
        },
    };
    let env_files: Vec<PathBuf> = if inc.env_files.is_empty() {
        let p = dir.join(".env");
        if let Some(w) = &dir_written {
            let shown = Written::Whole(format!("{w}/.env"));
            env.names.insert(NameKind::File, p.to_string_lossy(), shown);
        }
        if p.is_file() { vec![p] } else { Vec::new() }
    } else {
        inc.env_files.clone()
    };
    let mut vars = env.vars.clone();
    for f in &env_files {
        let snapshot = vars.clone();
        let lookup = |k: &str| snapshot.get(k).cloned();
        let read = dotenv::read(f, false, &lookup).map_err(|e| env.names.in_error(e))?;
        for (k, v) in read {
            vars.entry(k).or_insert(v);
        }
    }
    let sub = Env {
        vars,
        home: env.home.clone(),
        cwd: env.cwd.clone(),
        names: Rc::clone(&env.names),
    };
    let base = (dir.as_path(), dir_written.as_deref());
    // The included services' x-gantry is traced to the file that includes them.
    let mut origins = Origins::default();
    let (doc, _, _) = load_files(&inc.paths, base, &sub, (warnings, &mut origins), stack)?;
    Ok(doc)
}

/// Adds an included document's resources to `doc`; the same key defined differently on both
/// sides is an error (compose refuses it too).
fn import(file: &Path, doc: &mut Map<String, Json>, imported: Json) -> Result<(), ComposeError> {
    let Json::Object(imported) = imported else {
        return Ok(());
    };
    for (section, items) in imported {
        let Json::Object(items) = items else {
            continue;
        };
        if !["services", "networks", "volumes", "secrets", "configs"].contains(&section.as_str()) {
            continue;
        }
        let target = doc
            .entry(section.clone())
            .or_insert_with(|| Json::Object(Map::new()));
        let Some(target) = target.as_object_mut() else {
            continue;
        };
        for (key, value) in items {
            match target.get(&key) {
                Some(existing) if *existing != value => {
                    return Err(ComposeError::Invalid {
                        file: file.to_path_buf(),
                        path: format!("{section}.{key}"),
                        message: "conflicts with the same key from an included file (override it in another -f file instead)".into(),
                    });
                }
                Some(_) => {}
                None => {
                    target.insert(key, value);
                }
            }
        }
    }
    Ok(())
}

/// `^[a-z0-9][a-z0-9_-]*$`, what compose accepts from -p, `name:` and COMPOSE_PROJECT_NAME.
pub fn is_valid_project_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Errors name a file relative to the current directory when it is below it; a file whose
/// path interpolation made (an `include` or `extends` of `${FILE}`), by that path as written.
fn shown(file: &Path, env: &Env) -> PathBuf {
    if let Some(written) = env.names.file(file) {
        return PathBuf::from(written);
    }
    match file.strip_prefix(&env.cwd) {
        Ok(rel) if env.cwd.parent().is_some() => rel.to_path_buf(),
        _ => file.to_path_buf(),
    }
}

/// Per-file stages. `base_dir` is where the file's relative paths point: the project
/// directory for the files given with -f (as compose does), the file's own directory for a
/// file reached through `extends.file`; with its text as written when interpolation made it.
fn load_file_in(
    file: &Path,
    (base_dir, base_written): (&Path, Option<&str>),
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<(Tags, canonical::CanonFile), ComposeError> {
    let shown_as = shown(file, env);
    let shown = shown_as.as_path();
    let text = gantry_common::fsx::read_bounded(file, gantry_common::fsx::MAX_COMPOSE_FILE)
        .map_err(|source| ComposeError::Read {
            file: shown.to_path_buf(),
            source,
        })?;
    let doc = yaml::parse(shown, &text)?;
    let (doc, tags) = merge::strip_tags(doc).map_err(|(path, message)| ComposeError::Invalid {
        file: shown.to_path_buf(),
        path,
        message,
    })?;
    let mut written = AsWritten::default();
    let source = (shown, text.as_str());
    let doc = interpolate_value(source, doc, "", env, warnings, &mut written)?;
    let lookup = |k: &str| env.lookup(k);
    let ctx = Ctx {
        file: shown,
        written: &written,
        names: &env.names,
        base_dir: if base_dir.as_os_str().is_empty() {
            Path::new("/")
        } else {
            base_dir
        },
        base_written,
        lookup: &lookup,
        home: env.home.as_deref(),
    };
    let canon = canonical::file(&ctx, &doc)?;
    Ok((tags, canon))
}

/// `v` (at `path`) with its strings interpolated; the ones that changed are recorded in
/// `written` with their text as written, which errors show instead of the value. `source`: the
/// file's name and text, where an error is placed.
fn interpolate_value(
    source: (&Path, &str),
    v: Value,
    path: &str,
    env: &Env,
    warnings: &mut Vec<String>,
    written: &mut AsWritten,
) -> Result<Value, ComposeError> {
    Ok(match v {
        Value::String(s) => {
            let lookup = |k: &str| env.lookup(k);
            let r =
                interpolate(&s, &lookup).map_err(|e| interpolation_error(source, path, &s, e))?;
            for u in r.unset {
                warnings.push(format!(
                    "The {u:?} variable is not set. Defaulting to a blank string."
                ));
            }
            if r.value != s {
                written.insert(path, s);
            }
            Value::String(r.value)
        }
        Value::Mapping(m) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, val) in m {
                let key = match &k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let child = join(path, &key);
                out.insert(
                    k,
                    interpolate_value(source, val, &child, env, warnings, written)?,
                );
            }
            Value::Mapping(out)
        }
        Value::Sequence(seq) => {
            let mut out = Vec::with_capacity(seq.len());
            for (i, item) in seq.into_iter().enumerate() {
                out.push(interpolate_value(
                    source,
                    item,
                    &format!("{path}[{i}]"),
                    env,
                    warnings,
                    written,
                )?);
            }
            Value::Sequence(out)
        }
        other => other,
    })
}

/// The error about the value at `path` (its text as written: `written`) of the compose file
/// `(file, text)`. A malformed `${` is placed where it is written ([`yaml::place`]): the line,
/// and the character in that line when the value's characters before it are all on it (quotes
/// and escapes counted as written); else the line the value starts on. Its place in the value
/// after YAML unescaped it would mislead, and the value is never shown.
fn interpolation_error(
    (file, text): (&Path, &str),
    path: &str,
    written: &str,
    e: InterpolationError,
) -> ComposeError {
    let placed = match e {
        InterpolationError::Invalid { at } => yaml::place(text, path, written, at),
        _ => None,
    };
    let (line, message) = match placed {
        Some(yaml::Place::At { line, column }) => (
            Some(line),
            format!(
                "invalid interpolation format at character {column} of the line (escape a \
                 literal $ as $$)"
            ),
        ),
        Some(yaml::Place::Scalar { line }) => (
            Some(line),
            "invalid interpolation format in the value that starts on this line (escape a \
             literal $ as $$)"
                .to_owned(),
        ),
        None => (None, e.to_string()),
    };
    ComposeError::Interpolation {
        file: file.to_path_buf(),
        line,
        path: path.to_owned(),
        message,
    }
}
