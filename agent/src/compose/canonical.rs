//! Per-file validation and canonicalisation: every key checked, every value in long form.
//!
//! What: turns one interpolated YAML document into JSON whose services have the shape of
//! [`super::model::Service`]'s serde form: ports and volumes in long syntax (ranges expanded),
//! environment/labels/sysctls as maps, `depends_on` and `networks` as maps, durations and sizes
//! normalised, relative paths made absolute against the file's base directory.
//!
//! Design: done per file, before merging (like compose), so a type error or an unsupported key
//! names the file it is in. Unknown keys are refused: keys from the Compose Specification that
//! Gantry does not implement give [`ComposeError::Unsupported`], anything else
//! [`ComposeError::UnknownKey`]. `x-*` keys are kept as raw JSON.
//!
//! Limits: Windows paths are recognised where compose recognises them (a drive or UNC bind
//! source is absolute, a drive's colon does not split a short volume); `npipe` mounts are not
//! handled specially.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::error::ComposeError;
use super::model::{Duration, parse_bytes};

/// Where a document comes from and how to resolve what it refers to.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub file: &'a Path,
    /// Relative paths are resolved against this directory.
    pub base_dir: &'a Path,
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

/// Service keys Gantry implements.
pub const SERVICE_KEYS: &[&str] = &[
    "build",
    "cap_add",
    "cap_drop",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "depends_on",
    "deploy",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "extra_hosts",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "labels",
    "links",
    "logging",
    "mac_address",
    "network_mode",
    "networks",
    "pid",
    "platform",
    "ports",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "userns_mode",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// Service keys of the Compose Specification that Gantry refuses.
pub const UNSUPPORTED_SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cgroup",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "external_links",
    "gpus",
    "isolation",
    "label_file",
    "lifecycle",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "oom_score_adj",
    "pids_limit",
    "post_start",
    "pre_stop",
    "provider",
    "scale",
    "storage_opt",
    "use_api_socket",
    "uts",
    "volume_driver",
];

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
            return p.to_string();
        }
        let joined = if expanded.is_absolute() {
            expanded
        } else {
            self.base_dir.join(expanded)
        };
        normalize(&joined).to_string_lossy().into_owned()
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

/// The known key within edit distance 2 of `key` (case-insensitive), if any.
fn closest<'k>(key: &str, known: impl Iterator<Item = &'k &'k str>) -> Option<String> {
    let key = key.to_ascii_lowercase();
    known
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.to_string())
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
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

// ---------- scalar helpers ----------

fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "<complex key>".into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn entries<'v>(ctx: &Ctx<'_>, path: &str, v: &'v Value) -> R<Vec<(String, &'v Value)>> {
    match v {
        Value::Mapping(m) => Ok(m.iter().map(|(k, v)| (key_str(k), v)).collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(ctx.invalid(
            path,
            format!("expected a mapping, found {}", type_name(other)),
        )),
    }
}

fn string(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<String> {
    scalar_string(v)
        .ok_or_else(|| ctx.invalid(path, format!("expected a string, found {}", type_name(v))))
}

fn boolean(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "no" | "n" | "off" | "0" | "" => Ok(false),
            _ => Err(ctx.invalid(path, format!("expected true or false, found {s:?}"))),
        },
        other => Err(ctx.invalid(
            path,
            format!("expected true or false, found {}", type_name(other)),
        )),
    }
}

fn integer(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ctx.invalid(path, format!("expected an integer, found {n}"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| ctx.invalid(path, format!("expected an integer, found {s:?}"))),
        other => Err(ctx.invalid(
            path,
            format!("expected an integer, found {}", type_name(other)),
        )),
    }
}

fn unsigned(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<u64> {
    let n = integer(ctx, path, v)?;
    u64::try_from(n)
        .map_err(|_| ctx.invalid(path, format!("expected a non-negative integer, found {n}")))
}

fn float(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ctx.invalid(path, "expected a number")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| ctx.invalid(path, format!("expected a number, found {s:?}"))),
        other => Err(ctx.invalid(
            path,
            format!("expected a number, found {}", type_name(other)),
        )),
    }
}

fn duration(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    // Like compose, a bare number is refused: its unit would be a guess.
    let d = match v {
        Value::String(s) => s.parse::<Duration>().map_err(|e| ctx.invalid(path, e))?,
        other => {
            return Err(ctx.invalid(
                path,
                format!(
                    "expected a duration with a unit like 30s or 1m30s, found {}",
                    type_name(other)
                ),
            ));
        }
    };
    Ok(Json::String(d.to_string()))
}

fn bytes(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let n = match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| ctx.invalid(path, format!("invalid size {n}")))?,
        Value::String(s) => parse_bytes(s).map_err(|e| ctx.invalid(path, e))?,
        other => {
            return Err(ctx.invalid(
                path,
                format!("expected a size like 64m, found {}", type_name(other)),
            ));
        }
    };
    Ok(Json::String(n.to_string()))
}

fn string_list(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Vec<String>> {
    match v {
        Value::Sequence(seq) => seq
            .iter()
            .enumerate()
            .map(|(i, item)| string(ctx, &format!("{path}[{i}]"), item))
            .collect(),
        other => Err(ctx.invalid(
            path,
            format!("expected a list of strings, found {}", type_name(other)),
        )),
    }
}

fn string_or_list(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Vec<String>> {
    match v {
        Value::Sequence(_) => string_list(ctx, path, v),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![string(ctx, path, other)?]),
    }
}

/// A `KEY=VALUE` list or a mapping, as a map; `missing` decides what a `KEY` alone becomes.
fn key_value_map(
    ctx: &Ctx<'_>,
    path: &str,
    v: &Value,
    missing: &dyn Fn(&str) -> Json,
) -> R<Map<String, Json>> {
    let mut out = Map::new();
    match v {
        Value::Null => {}
        Value::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let s = string(ctx, &format!("{path}[{i}]"), item)?;
                match s.split_once('=') {
                    Some((k, val)) => out.insert(k.to_string(), Json::String(val.to_string())),
                    None => out.insert(s.clone(), missing(&s)),
                };
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let key = key_str(k);
                let j = match val {
                    Value::Null => missing(&key),
                    other => Json::String(string(ctx, &join(path, &key), other)?),
                };
                out.insert(key, j);
            }
        }
        other => {
            return Err(ctx.invalid(
                path,
                format!(
                    "expected a list of KEY=VALUE or a mapping, found {}",
                    type_name(other)
                ),
            ));
        }
    }
    Ok(out)
}

fn string_map(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in entries(ctx, path, v)? {
        let s = match val {
            Value::Null => String::new(),
            other => string(ctx, &join(path, &k), other)?,
        };
        out.insert(k, Json::String(s));
    }
    Ok(Json::Object(out))
}

fn labels(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    key_value_map(ctx, path, v, &|_| Json::String(String::new())).map(Json::Object)
}

/// Raw YAML to JSON (for `x-*` and loosely typed keys). Non-string keys become strings.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            }
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Sequence(seq) => Json::Array(seq.iter().map(to_json).collect()),
        Value::Mapping(m) => {
            Json::Object(m.iter().map(|(k, v)| (key_str(k), to_json(v))).collect())
        }
        Value::Tagged(t) => to_json(&t.value),
    }
}

/// Checks a mapping's keys against `known` (plus `x-*`), returning its entries.
fn checked<'v>(
    ctx: &Ctx<'_>,
    path: &str,
    v: &'v Value,
    known: &[&str],
) -> R<Vec<(String, &'v Value)>> {
    let es = entries(ctx, path, v)?;
    for (k, _) in &es {
        if !known.contains(&k.as_str()) && !k.starts_with("x-") {
            return Err(ctx.unknown(path, k, known, &[]));
        }
    }
    Ok(es)
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
                for (k, val) in checked(ctx, &ip, item, &["path", "project_directory", "env_file"])?
                {
                    let kp = join(&ip, &k);
                    match k.as_str() {
                        "path" => {
                            inc.paths = string_or_list(ctx, &kp, val)?
                                .iter()
                                .map(|p| PathBuf::from(ctx.abs_path(p)))
                                .collect();
                        }
                        "project_directory" => {
                            inc.project_directory =
                                Some(PathBuf::from(ctx.abs_path(&string(ctx, &kp, val)?)));
                        }
                        _ => {
                            inc.env_files = string_or_list(ctx, &kp, val)?
                                .iter()
                                .map(|p| PathBuf::from(ctx.abs_path(p)))
                                .collect();
                        }
                    }
                }
            }
            other => inc.paths = vec![PathBuf::from(ctx.abs_path(&string(ctx, &ip, other)?))],
        }
        if inc.paths.is_empty() {
            return Err(ctx.invalid(&ip, "an include needs a path"));
        }
        out.push(inc);
    }
    Ok(out)
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
        match key.as_str() {
            "name" => out.name = Some(string(ctx, "name", v)?),
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
                    out.networks
                        .insert(name.clone(), network(ctx, &join("networks", &name), n)?);
                }
            }
            "volumes" => {
                for (name, n) in entries(ctx, "volumes", v)? {
                    out.volumes
                        .insert(name.clone(), volume(ctx, &join("volumes", &name), n)?);
                }
            }
            "secrets" | "configs" => {
                let mut m = Map::new();
                for (name, n) in entries(ctx, &key, v)? {
                    m.insert(name.clone(), file_object(ctx, &join(&key, &name), n)?);
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

fn network(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &[
            "name",
            "driver",
            "driver_opts",
            "ipam",
            "external",
            "internal",
            "attachable",
            "labels",
            "enable_ipv6",
            "enable_ipv4",
        ],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "name" | "driver" => Json::String(string(ctx, &p, val)?),
            "driver_opts" => string_map(ctx, &p, val)?,
            "labels" => labels(ctx, &p, val)?,
            "external" => external(ctx, &p, val, &mut out)?,
            "internal" | "attachable" | "enable_ipv6" | "enable_ipv4" => {
                Json::Bool(boolean(ctx, &p, val)?)
            }
            "ipam" => ipam(ctx, &p, val)?,
            _ => to_json(val),
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

/// `external: true`, or the legacy `external: {name: x}`.
fn external(ctx: &Ctx<'_>, p: &str, val: &Value, out: &mut Map<String, Json>) -> R<Json> {
    if let Value::Mapping(_) = val {
        for (k2, v2) in checked(ctx, p, val, &["name"])? {
            if k2 == "name" {
                out.insert(
                    "name".into(),
                    Json::String(string(ctx, &join(p, "name"), v2)?),
                );
            }
        }
        return Ok(Json::Bool(true));
    }
    Ok(Json::Bool(boolean(ctx, p, val)?))
}

fn ipam(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(ctx, path, v, &["driver", "config", "options"])? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "driver" => Json::String(string(ctx, &p, val)?),
            "options" => string_map(ctx, &p, val)?,
            "config" => {
                let Value::Sequence(seq) = val else {
                    return Err(ctx.invalid(&p, "expected a list of pools"));
                };
                let mut pools = Vec::new();
                for (i, pool) in seq.iter().enumerate() {
                    let pp = format!("{p}[{i}]");
                    let mut m = Map::new();
                    for (k2, v2) in checked(
                        ctx,
                        &pp,
                        pool,
                        &["subnet", "ip_range", "gateway", "aux_addresses"],
                    )? {
                        let j2 = if k2 == "aux_addresses" {
                            string_map(ctx, &join(&pp, &k2), v2)?
                        } else {
                            Json::String(string(ctx, &join(&pp, &k2), v2)?)
                        };
                        m.insert(k2, j2);
                    }
                    pools.push(Json::Object(m));
                }
                Json::Array(pools)
            }
            _ => to_json(val),
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn volume(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &["name", "driver", "driver_opts", "external", "labels"],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "name" | "driver" => Json::String(string(ctx, &p, val)?),
            "driver_opts" => string_map(ctx, &p, val)?,
            "labels" => labels(ctx, &p, val)?,
            "external" => external(ctx, &p, val, &mut out)?,
            _ => to_json(val),
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn file_object(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &[
            "name",
            "file",
            "environment",
            "content",
            "external",
            "labels",
            "driver",
            "driver_opts",
            "template_driver",
        ],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "name" | "environment" | "content" => Json::String(string(ctx, &p, val)?),
            "file" => Json::String(ctx.abs_path(&string(ctx, &p, val)?)),
            "labels" => labels(ctx, &p, val)?,
            "external" => external(ctx, &p, val, &mut out)?,
            _ => {
                return Err(ComposeError::Unsupported {
                    file: ctx.file.to_path_buf(),
                    path: p,
                });
            }
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

// ---------- services ----------

/// Canonicalises one service.
pub fn service(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    let es = match v {
        // Kept as null: valid only over a service an earlier file defines (checked after
        // merging, as compose does).
        Value::Null => return Ok(Json::Null),
        Value::Mapping(_) => entries(ctx, path, v)?,
        other => {
            return Err(ctx.invalid(
                path,
                format!("a service is a mapping, found {}", type_name(other)),
            ));
        }
    };
    for (k, val) in es {
        let p = join(path, &k);
        if k.starts_with("x-") {
            out.insert(k, to_json(val));
            continue;
        }
        if !SERVICE_KEYS.contains(&k.as_str()) {
            return Err(ctx.unknown(path, &k, SERVICE_KEYS, UNSUPPORTED_SERVICE_KEYS));
        }
        let j = service_key(ctx, &p, &k, val)?;
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn service_key(ctx: &Ctx<'_>, p: &str, k: &str, val: &Value) -> R<Json> {
    Ok(match k {
        "container_name" => {
            let s = string(ctx, p, val)?;
            let ok = s.len() >= 2
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(ctx.invalid(
                    p,
                    format!("invalid container name {s:?} (at least 2 of letters, digits, '_', '.', '-', starting with a letter or digit)"),
                ));
            }
            Json::String(s)
        }
        "cgroup_parent" | "domainname" | "hostname" | "image" | "ipc" | "mac_address"
        | "network_mode" | "pid" | "platform" | "runtime" | "stop_signal" | "user"
        | "userns_mode" | "working_dir" => Json::String(string(ctx, p, val)?),
        "pull_policy" => {
            let s = string(ctx, p, val)?;
            let ok = [
                "always",
                "never",
                "missing",
                "if_not_present",
                "build",
                "daily",
                "weekly",
            ];
            if !ok.contains(&s.as_str()) && !s.starts_with("every_") {
                return Err(ctx.invalid(
                    p,
                    format!("invalid pull_policy {s:?} (always, never, missing, build)"),
                ));
            }
            Json::String(s)
        }
        "restart" => {
            let s = string(ctx, p, val)?;
            s.parse::<super::model::Restart>()
                .map_err(|e| ctx.invalid(p, e))?;
            Json::String(s)
        }
        "init" | "privileged" | "read_only" | "stdin_open" | "tty" => {
            Json::Bool(boolean(ctx, p, val)?)
        }
        "cap_add" | "cap_drop" | "links" | "security_opt" | "volumes_from" | "group_add"
        | "profiles" => Json::from(string_list(ctx, p, val)?),
        "dns" | "dns_opt" | "dns_search" | "tmpfs" => Json::from(string_or_list(ctx, p, val)?),
        "command" | "entrypoint" => match val {
            Value::Null => Json::Null,
            Value::String(s) => Json::from(shell_split(s).map_err(|e| ctx.invalid(p, e))?),
            Value::Sequence(_) => Json::from(string_list(ctx, p, val)?),
            other => {
                return Err(ctx.invalid(
                    p,
                    format!("expected a string or a list, found {}", type_name(other)),
                ));
            }
        },
        "environment" => {
            let lookup = ctx.lookup;
            Json::Object(key_value_map(ctx, p, val, &|k| {
                lookup(k).map_or(Json::Null, Json::String)
            })?)
        }
        "labels" => labels(ctx, p, val)?,
        "sysctls" => Json::Object(key_value_map(
            ctx,
            p,
            val,
            &|_| Json::String(String::new()),
        )?),
        "env_file" => env_file(ctx, p, val)?,
        "expose" => Json::from(string_list(ctx, p, val)?),
        "extra_hosts" => extra_hosts(ctx, p, val)?,
        "shm_size" => bytes(ctx, p, val)?,
        "stop_grace_period" => duration(ctx, p, val)?,
        "healthcheck" => healthcheck(ctx, p, val)?,
        "depends_on" => depends_on(ctx, p, val)?,
        "networks" => service_networks(ctx, p, val)?,
        "ports" => ports(ctx, p, val)?,
        "volumes" => volumes(ctx, p, val)?,
        "secrets" => file_mounts(ctx, p, val, true)?,
        "configs" => file_mounts(ctx, p, val, false)?,
        "ulimits" => ulimits(ctx, p, val)?,
        "devices" => devices(ctx, p, val)?,
        "logging" => logging(ctx, p, val)?,
        "deploy" => deploy(ctx, p, val)?,
        "build" => build(ctx, p, val)?,
        "extends" => extends_spec(ctx, p, val)?,
        _ => to_json(val),
    })
}

/// Splits a command string like a POSIX shell would (quotes and backslashes), without
/// expansions: what compose does for `command: "..."`.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some('\n') => {}
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(x) => cur.push(x),
                    None => cur.push('\\'),
                }
            }
            other => {
                in_word = true;
                cur.push(other);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn env_file(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let items: Vec<&Value> = match val {
        Value::Sequence(seq) => seq.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let mut m = Map::new();
        m.insert("required".into(), Json::Bool(true));
        match item {
            Value::Mapping(_) => {
                for (k, v) in checked(ctx, &ip, item, &["path", "required", "format"])? {
                    let kp = join(&ip, &k);
                    match k.as_str() {
                        "path" => m.insert(k, Json::String(ctx.abs_path(&string(ctx, &kp, v)?))),
                        "required" => m.insert(k, Json::Bool(boolean(ctx, &kp, v)?)),
                        _ => m.insert(k, Json::String(string(ctx, &kp, v)?)),
                    };
                }
                if !m.contains_key("path") {
                    return Err(ctx.invalid(&ip, "an env_file entry needs a path"));
                }
            }
            other => {
                m.insert(
                    "path".into(),
                    Json::String(ctx.abs_path(&string(ctx, &ip, other)?)),
                );
            }
        }
        out.push(Json::Object(m));
    }
    Ok(Json::Array(out))
}

/// `[::1]` → `::1` (compose prints IPv6 addresses of extra_hosts without brackets).
fn unbracket(ip: &str) -> &str {
    ip.strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip)
}

fn extra_hosts(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let mut out = Vec::new();
    match val {
        Value::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let s = string(ctx, &format!("{p}[{i}]"), item)?;
                let (h, ip) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .ok_or_else(|| {
                        ctx.invalid(
                            &format!("{p}[{i}]"),
                            format!("expected HOST=IP, found {s:?}"),
                        )
                    })?;
                out.push(format!("{h}={}", unbracket(ip)));
            }
        }
        Value::Mapping(_) => {
            for (h, v) in entries(ctx, p, val)? {
                let hp = join(p, &h);
                for ip in string_or_list(ctx, &hp, v)? {
                    out.push(format!("{h}={}", unbracket(&ip)));
                }
            }
        }
        Value::Null => {}
        other => {
            return Err(ctx.invalid(
                p,
                format!("expected a list or a mapping, found {}", type_name(other)),
            ));
        }
    }
    Ok(Json::from(out))
}

fn healthcheck(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &[
            "test",
            "interval",
            "timeout",
            "retries",
            "start_period",
            "start_interval",
            "disable",
        ],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "test" => match val {
                Value::String(s) => json!(["CMD-SHELL", s]),
                Value::Sequence(_) => Json::from(string_list(ctx, &p, val)?),
                other => {
                    return Err(ctx.invalid(
                        &p,
                        format!("expected a string or a list, found {}", type_name(other)),
                    ));
                }
            },
            "retries" => Json::from(unsigned(ctx, &p, val)?),
            "disable" => Json::Bool(boolean(ctx, &p, val)?),
            _ => duration(ctx, &p, val)?,
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn depends_on(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    match v {
        Value::Sequence(_) => {
            for name in string_list(ctx, path, v)? {
                out.insert(
                    name,
                    json!({"condition": "service_started", "required": true}),
                );
            }
        }
        Value::Mapping(_) => {
            for (name, d) in entries(ctx, path, v)? {
                let dp = join(path, &name);
                let mut m = Map::new();
                m.insert("condition".into(), json!("service_started"));
                m.insert("required".into(), json!(true));
                for (k, val) in checked(ctx, &dp, d, &["condition", "restart", "required"])? {
                    let kp = join(&dp, &k);
                    match k.as_str() {
                        "condition" => {
                            let c = string(ctx, &kp, val)?;
                            if ![
                                "service_started",
                                "service_healthy",
                                "service_completed_successfully",
                            ]
                            .contains(&c.as_str())
                            {
                                return Err(ctx.invalid(
                                    &kp,
                                    format!("invalid condition {c:?} (service_started, service_healthy, service_completed_successfully)"),
                                ));
                            }
                            m.insert(k, Json::String(c));
                        }
                        _ => {
                            let b = boolean(ctx, &kp, val)?;
                            if k == "restart" && !b {
                                m.remove("restart");
                            } else {
                                m.insert(k, Json::Bool(b));
                            }
                        }
                    }
                }
                out.insert(name, Json::Object(m));
            }
        }
        Value::Null => {}
        other => {
            return Err(ctx.invalid(
                path,
                format!("expected a list or a mapping, found {}", type_name(other)),
            ));
        }
    }
    Ok(Json::Object(out))
}

fn service_networks(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    match v {
        Value::Sequence(_) => {
            for name in string_list(ctx, path, v)? {
                out.insert(name, Json::Null);
            }
        }
        Value::Mapping(_) => {
            for (name, n) in entries(ctx, path, v)? {
                let np = join(path, &name);
                if n.is_null() {
                    out.insert(name, Json::Null);
                    continue;
                }
                let mut m = Map::new();
                for (k, val) in checked(
                    ctx,
                    &np,
                    n,
                    &[
                        "aliases",
                        "ipv4_address",
                        "ipv6_address",
                        "link_local_ips",
                        "mac_address",
                        "driver_opts",
                        "priority",
                        "gw_priority",
                    ],
                )? {
                    let kp = join(&np, &k);
                    let j = match k.as_str() {
                        "aliases" | "link_local_ips" => Json::from(string_list(ctx, &kp, val)?),
                        "driver_opts" => string_map(ctx, &kp, val)?,
                        "priority" | "gw_priority" => Json::from(integer(ctx, &kp, val)?),
                        _ => Json::String(string(ctx, &kp, val)?),
                    };
                    m.insert(k, j);
                }
                out.insert(name, Json::Object(m));
            }
        }
        Value::Null => {}
        other => {
            return Err(ctx.invalid(
                path,
                format!("expected a list or a mapping, found {}", type_name(other)),
            ));
        }
    }
    Ok(Json::Object(out))
}

fn parse_port_num(s: &str) -> Option<u16> {
    s.parse::<u16>().ok()
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_port_num(a)?, parse_port_num(b)?);
            (a <= b).then_some((a, b))
        }
        None => parse_port_num(s).map(|n| (n, n)),
    }
}

/// Expands one short-syntax port (`[ip:][published:]target[/proto]`) to long-form entries.
pub fn short_port(spec: &str) -> Result<Vec<Json>, String> {
    let bad = || format!("invalid port {spec:?} (expected [IP:][HOST:]CONTAINER[/PROTOCOL])");
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) if !p.is_empty() => (r, p.to_string()),
        Some(_) => return Err(bad()),
        None => (spec, "tcp".to_string()),
    };
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r.split_once(']').ok_or_else(bad)?;
        let after = after.strip_prefix(':').ok_or_else(bad)?;
        (Some(ip.to_string()), after.to_string())
    } else {
        (None, rest.to_string())
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (ip, published, target) = match (ip, parts.as_slice()) {
        (ip, [t]) => (ip, None, *t),
        (ip, [t, p]) => (ip, Some(*p), *t),
        (None, [t, p, i]) => (Some(i.to_string()), Some(*p), *t),
        _ => return Err(bad()),
    };
    let ip = ip.filter(|i| !i.is_empty());
    let published = published.filter(|p| !p.is_empty());
    let (t0, t1) = parse_range(target).ok_or_else(bad)?;
    let mut out = Vec::new();
    let entry = |target: u16, published: Option<String>| {
        let mut m = Map::new();
        m.insert("mode".into(), json!("ingress"));
        if let Some(ip) = &ip {
            m.insert("host_ip".into(), json!(ip));
        }
        m.insert("target".into(), json!(target));
        if let Some(p) = published {
            m.insert("published".into(), json!(p));
        }
        m.insert("protocol".into(), json!(protocol));
        Json::Object(m)
    };
    match published {
        None => {
            for t in t0..=t1 {
                out.push(entry(t, None));
            }
        }
        Some(p) => {
            let (p0, p1) = parse_range(p).ok_or_else(bad)?;
            if t0 == t1 {
                let published = if p0 == p1 {
                    p0.to_string()
                } else {
                    format!("{p0}-{p1}")
                };
                out.push(entry(t0, Some(published)));
            } else if p1 - p0 == t1 - t0 {
                for (i, t) in (t0..=t1).enumerate() {
                    let pub_port = u32::from(p0) + i as u32;
                    out.push(entry(t, Some(pub_port.to_string())));
                }
            } else {
                return Err(format!(
                    "invalid port {spec:?}: host and container ranges differ in size"
                ));
            }
        }
    }
    Ok(out)
}

fn ports(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let Value::Sequence(seq) = v else {
        return Err(ctx.invalid(path, format!("expected a list, found {}", type_name(v))));
    };
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        match item {
            Value::Mapping(_) => {
                let mut m = Map::new();
                m.insert("mode".into(), json!("ingress"));
                let mut host_ip = None;
                let mut target = None;
                let mut published = None;
                let mut protocol = json!("tcp");
                for (k, val) in checked(
                    ctx,
                    &ip,
                    item,
                    &[
                        "name",
                        "mode",
                        "host_ip",
                        "target",
                        "published",
                        "protocol",
                        "app_protocol",
                    ],
                )? {
                    let kp = join(&ip, &k);
                    match k.as_str() {
                        "target" => {
                            let n = integer(ctx, &kp, val)?;
                            let n = u16::try_from(n)
                                .map_err(|_| ctx.invalid(&kp, format!("port {n} out of range")))?;
                            target = Some(n);
                        }
                        "published" => published = Some(string(ctx, &kp, val)?),
                        "host_ip" => host_ip = Some(string(ctx, &kp, val)?),
                        "protocol" => protocol = Json::String(string(ctx, &kp, val)?),
                        "mode" => {
                            let s = string(ctx, &kp, val)?;
                            if s != "ingress" && s != "host" {
                                return Err(ctx.invalid(
                                    &kp,
                                    format!("invalid mode {s:?} (ingress or host)"),
                                ));
                            }
                            m.insert(k, Json::String(s));
                        }
                        _ => {
                            m.insert(k, Json::String(string(ctx, &kp, val)?));
                        }
                    }
                }
                let target = target.ok_or_else(|| ctx.invalid(&ip, "a port needs a target"))?;
                if let Some(h) = host_ip {
                    m.insert("host_ip".into(), Json::String(h));
                }
                m.insert("target".into(), json!(target));
                if let Some(p) = published.filter(|p| !p.is_empty()) {
                    m.insert("published".into(), Json::String(p));
                }
                m.insert("protocol".into(), protocol);
                out.push(Json::Object(m));
            }
            Value::Number(_) | Value::String(_) => {
                let s = string(ctx, &ip, item)?;
                out.extend(short_port(&s).map_err(|e| ctx.invalid(&ip, e))?);
            }
            other => {
                return Err(ctx.invalid(
                    &ip,
                    format!(
                        "expected a port string or mapping, found {}",
                        type_name(other)
                    ),
                ));
            }
        }
    }
    Ok(Json::Array(out))
}

/// A short-syntax source that is a host path (else a volume name), as compose decides:
/// `.`, `/`, `~`, a UNC path or a Windows drive.
fn is_bind_source(s: &str) -> bool {
    s.starts_with('.')
        || s.starts_with('/')
        || s.starts_with('~')
        || s.starts_with("\\\\")
        || has_drive_letter(s)
}

/// Splits a short-syntax volume on `:`, except the colon of a Windows drive (a single letter
/// at the start of a part), as compose does: `C:\data:/data:ro` is three parts.
fn split_volume_spec(spec: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in spec.char_indices() {
        if c != ':' {
            continue;
        }
        let part = &spec[start..i];
        let drive = part.chars().count() == 1 && part.chars().all(char::is_alphabetic);
        if !drive {
            parts.push(part);
            start = i + 1;
        }
    }
    parts.push(&spec[start..]);
    parts
}

/// Parses one short-syntax volume (`[SOURCE:]TARGET[:OPTIONS]`) to its long form.
pub fn short_volume(ctx: &Ctx<'_>, spec: &str) -> Result<Json, String> {
    let parts: Vec<&str> = split_volume_spec(spec);
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => {
            return Err(format!(
                "invalid volume {spec:?} (expected [SOURCE:]TARGET[:OPTIONS])"
            ));
        }
    };
    if target.is_empty() {
        return Err(format!("invalid volume {spec:?}: empty target"));
    }
    let mut m = Map::new();
    let bind = source.is_some_and(is_bind_source);
    m.insert("type".into(), json!(if bind { "bind" } else { "volume" }));
    if let Some(s) = source {
        m.insert(
            "source".into(),
            json!(if bind { ctx.abs_path(s) } else { s.to_string() }),
        );
    }
    m.insert("target".into(), json!(clean_target(target)));
    let mut bind_opts = Map::new();
    let mut vol_opts = Map::new();
    for o in opts
        .map(|o| o.split(',').collect::<Vec<_>>())
        .unwrap_or_default()
    {
        match o {
            "ro" => {
                m.insert("read_only".into(), json!(true));
            }
            "rw" | "" => {}
            "z" | "Z" => {
                bind_opts.insert("selinux".into(), json!(o));
            }
            "nocopy" => {
                vol_opts.insert("nocopy".into(), json!(true));
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                bind_opts.insert("propagation".into(), json!(o));
            }
            "cached" | "delegated" | "consistent" => {
                m.insert("consistency".into(), json!(o));
            }
            other => return Err(format!("invalid volume {spec:?}: unknown option {other:?}")),
        }
    }
    if bind {
        bind_opts.insert("create_host_path".into(), json!(true));
        m.insert("bind".into(), Json::Object(bind_opts));
    } else {
        if !bind_opts.is_empty() {
            return Err(format!(
                "invalid volume {spec:?}: bind options on a named volume"
            ));
        }
        m.insert("volume".into(), Json::Object(vol_opts));
    }
    Ok(Json::Object(m))
}

/// A container path cleaned like Go's `path.Clean` for the common cases (trailing `/`).
fn clean_target(t: &str) -> String {
    let trimmed = t.trim_end_matches('/');
    if trimmed.is_empty() && t.starts_with('/') {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

fn volumes(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let Value::Sequence(seq) = v else {
        return Err(ctx.invalid(path, format!("expected a list, found {}", type_name(v))));
    };
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        match item {
            Value::String(s) => out.push(short_volume(ctx, s).map_err(|e| ctx.invalid(&ip, e))?),
            Value::Mapping(_) => out.push(long_volume(ctx, &ip, item)?),
            other => {
                return Err(ctx.invalid(
                    &ip,
                    format!(
                        "expected a volume string or mapping, found {}",
                        type_name(other)
                    ),
                ));
            }
        }
    }
    Ok(Json::Array(out))
}

fn long_volume(ctx: &Ctx<'_>, ip: &str, item: &Value) -> R<Json> {
    let mut m = Map::new();
    let es = checked(
        ctx,
        ip,
        item,
        &[
            "type",
            "source",
            "target",
            "read_only",
            "consistency",
            "bind",
            "volume",
            "tmpfs",
        ],
    )?;
    let kind = es
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| string(ctx, &join(ip, "type"), v))
        .transpose()?
        .ok_or_else(|| ctx.invalid(ip, "a volume mapping needs a type (bind, volume, tmpfs)"))?;
    if !["bind", "volume", "tmpfs", "npipe", "image"].contains(&kind.as_str()) {
        return Err(ctx.invalid(
            &join(ip, "type"),
            format!("invalid mount type {kind:?} (bind, volume, tmpfs)"),
        ));
    }
    m.insert("type".into(), json!(kind));
    for (k, val) in &es {
        let kp = join(ip, k);
        match k.as_str() {
            "type" => {}
            "source" => {
                let s = string(ctx, &kp, val)?;
                let s = if kind == "bind" { ctx.abs_path(&s) } else { s };
                m.insert(k.clone(), json!(s));
            }
            "target" | "consistency" => {
                m.insert(k.clone(), json!(string(ctx, &kp, val)?));
            }
            "read_only" if boolean(ctx, &kp, val)? => {
                m.insert(k.clone(), json!(true));
            }
            "bind" => {
                let mut b = Map::new();
                for (k2, v2) in checked(
                    ctx,
                    &kp,
                    val,
                    &["propagation", "create_host_path", "selinux", "recursive"],
                )? {
                    let p2 = join(&kp, &k2);
                    let j = if k2 == "create_host_path" {
                        // compose prints it only when true.
                        if !boolean(ctx, &p2, v2)? {
                            continue;
                        }
                        json!(true)
                    } else {
                        json!(string(ctx, &p2, v2)?)
                    };
                    b.insert(k2, j);
                }
                m.insert(k.clone(), Json::Object(b));
            }
            "volume" => {
                let mut b = Map::new();
                for (k2, v2) in checked(ctx, &kp, val, &["nocopy", "subpath", "labels"])? {
                    let p2 = join(&kp, &k2);
                    let j = match k2.as_str() {
                        "nocopy" => {
                            if !boolean(ctx, &p2, v2)? {
                                continue;
                            }
                            json!(true)
                        }
                        "labels" => labels(ctx, &p2, v2)?,
                        _ => json!(string(ctx, &p2, v2)?),
                    };
                    b.insert(k2, j);
                }
                m.insert(k.clone(), Json::Object(b));
            }
            "tmpfs" => {
                let mut b = Map::new();
                for (k2, v2) in checked(ctx, &kp, val, &["size", "mode"])? {
                    let p2 = join(&kp, &k2);
                    let j = if k2 == "size" {
                        bytes(ctx, &p2, v2)?
                    } else {
                        json!(integer(ctx, &p2, v2)?)
                    };
                    b.insert(k2, j);
                }
                m.insert(k.clone(), Json::Object(b));
            }
            _ => {}
        }
    }
    if !m.contains_key("target") {
        return Err(ctx.invalid(ip, "a volume mapping needs a target"));
    }
    Ok(Json::Object(m))
}

fn file_mounts(ctx: &Ctx<'_>, path: &str, v: &Value, secret: bool) -> R<Json> {
    let Value::Sequence(seq) = v else {
        return Err(ctx.invalid(path, format!("expected a list, found {}", type_name(v))));
    };
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let mut m = Map::new();
        match item {
            Value::Mapping(_) => {
                for (k, val) in
                    checked(ctx, &ip, item, &["source", "target", "uid", "gid", "mode"])?
                {
                    let kp = join(&ip, &k);
                    let j = if k == "mode" {
                        // A YAML 1.2 parser reads `0440` as decimal 440: take its digits as octal,
                        // which is what compose (YAML 1.1) means.
                        let n = match val {
                            Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                                .map_err(|_| ctx.invalid(&kp, format!("invalid mode {s:?}")))?,
                            other => {
                                let n = integer(ctx, &kp, other)?;
                                u32::from_str_radix(&n.to_string(), 8).unwrap_or(n as u32)
                            }
                        };
                        json!(format!("{n:04o}"))
                    } else {
                        json!(string(ctx, &kp, val)?)
                    };
                    m.insert(k, j);
                }
                if !m.contains_key("source") {
                    return Err(ctx.invalid(&ip, "needs a source"));
                }
            }
            other => {
                m.insert("source".into(), json!(string(ctx, &ip, other)?));
            }
        }
        if secret && !m.contains_key("target") {
            let src = m
                .get("source")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            m.insert("target".into(), json!(format!("/run/secrets/{src}")));
        }
        out.push(Json::Object(m));
    }
    Ok(Json::Array(out))
}

fn ulimits(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (name, val) in entries(ctx, path, v)? {
        let p = join(path, &name);
        let j = match val {
            Value::Mapping(_) => {
                let mut soft = None;
                let mut hard = None;
                for (k, v2) in checked(ctx, &p, val, &["soft", "hard"])? {
                    let n = integer(ctx, &join(&p, &k), v2)?;
                    if k == "soft" {
                        soft = Some(n);
                    } else {
                        hard = Some(n);
                    }
                }
                match (soft, hard) {
                    (Some(s), Some(h)) => json!({"soft": s, "hard": h}),
                    _ => return Err(ctx.invalid(&p, "needs both soft and hard")),
                }
            }
            other => json!(integer(ctx, &p, other)?),
        };
        out.insert(name, j);
    }
    Ok(Json::Object(out))
}

fn devices(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let Value::Sequence(seq) = v else {
        return Err(ctx.invalid(path, format!("expected a list, found {}", type_name(v))));
    };
    let mut out = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let j = match item {
            Value::Mapping(_) => {
                let mut m = Map::new();
                for (k, val) in checked(ctx, &ip, item, &["source", "target", "permissions"])? {
                    m.insert(k.clone(), json!(string(ctx, &join(&ip, &k), val)?));
                }
                if !m.contains_key("source") {
                    return Err(ctx.invalid(&ip, "needs a source"));
                }
                if !m.contains_key("target") {
                    let s = m.get("source").cloned().unwrap_or(Json::Null);
                    m.insert("target".into(), s);
                }
                Json::Object(m)
            }
            other => {
                let s = string(ctx, &ip, other)?;
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [src] => json!({"source": src, "target": src}),
                    [src, dst] => json!({"source": src, "target": dst}),
                    [src, dst, perm] => json!({"source": src, "target": dst, "permissions": perm}),
                    _ => {
                        return Err(ctx.invalid(
                            &ip,
                            format!("invalid device {s:?} (HOST[:CONTAINER[:PERMISSIONS]])"),
                        ));
                    }
                }
            }
        };
        out.push(j);
    }
    Ok(Json::Array(out))
}

fn logging(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(ctx, path, v, &["driver", "options"])? {
        let p = join(path, &k);
        let j = if k == "driver" {
            json!(string(ctx, &p, val)?)
        } else {
            string_map(ctx, &p, val)?
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn update_config(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &[
            "parallelism",
            "delay",
            "failure_action",
            "monitor",
            "max_failure_ratio",
            "order",
        ],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "parallelism" => json!(unsigned(ctx, &p, val)?),
            "delay" | "monitor" => duration(ctx, &p, val)?,
            "max_failure_ratio" => json!(float(ctx, &p, val)?),
            "failure_action" => {
                let s = string(ctx, &p, val)?;
                if !["continue", "rollback", "pause"].contains(&s.as_str()) {
                    return Err(ctx.invalid(
                        &p,
                        format!("invalid failure_action {s:?} (continue, rollback, pause)"),
                    ));
                }
                json!(s)
            }
            _ => {
                let s = string(ctx, &p, val)?;
                if !["start-first", "stop-first"].contains(&s.as_str()) {
                    return Err(
                        ctx.invalid(&p, format!("invalid order {s:?} (start-first, stop-first)"))
                    );
                }
                json!(s)
            }
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn resource(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &["cpus", "memory", "pids", "devices", "generic_resources"],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "cpus" => {
                let f = float(ctx, &p, val)?;
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| ctx.invalid(&p, "invalid cpus"))?
            }
            "memory" => bytes(ctx, &p, val)?,
            "pids" => json!(integer(ctx, &p, val)?),
            _ => {
                return Err(ComposeError::Unsupported {
                    file: ctx.file.to_path_buf(),
                    path: p,
                });
            }
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn deploy(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in checked(
        ctx,
        path,
        v,
        &[
            "mode",
            "replicas",
            "labels",
            "update_config",
            "rollback_config",
            "resources",
            "restart_policy",
            "placement",
            "endpoint_mode",
        ],
    )? {
        let p = join(path, &k);
        let j = match k.as_str() {
            "mode" => {
                let s = string(ctx, &p, val)?;
                if s != "replicated" && s != "global" {
                    return Err(ComposeError::Unsupported {
                        file: ctx.file.to_path_buf(),
                        path: p,
                    });
                }
                json!(s)
            }
            "endpoint_mode" => json!(string(ctx, &p, val)?),
            "replicas" => {
                let n = unsigned(ctx, &p, val)?;
                json!(u32::try_from(n).map_err(|_| ctx.invalid(&p, "too many replicas"))?)
            }
            "labels" => labels(ctx, &p, val)?,
            "update_config" | "rollback_config" => update_config(ctx, &p, val)?,
            "resources" => {
                let mut r = Map::new();
                for (k2, v2) in checked(ctx, &p, val, &["limits", "reservations"])? {
                    r.insert(k2.clone(), resource(ctx, &join(&p, &k2), v2)?);
                }
                Json::Object(r)
            }
            "restart_policy" => {
                let mut r = Map::new();
                for (k2, v2) in checked(
                    ctx,
                    &p,
                    val,
                    &["condition", "delay", "max_attempts", "window"],
                )? {
                    let p2 = join(&p, &k2);
                    let j = match k2.as_str() {
                        "condition" => json!(string(ctx, &p2, v2)?),
                        "max_attempts" => json!(unsigned(ctx, &p2, v2)?),
                        _ => duration(ctx, &p2, v2)?,
                    };
                    r.insert(k2, j);
                }
                Json::Object(r)
            }
            _ => {
                // placement: swarm scheduling, meaningless on one host; kept only when empty.
                if entries(ctx, &p, val)?.is_empty() {
                    Json::Object(Map::new())
                } else {
                    return Err(ComposeError::Unsupported {
                        file: ctx.file.to_path_buf(),
                        path: p,
                    });
                }
            }
        };
        out.insert(k, j);
    }
    Ok(Json::Object(out))
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn build(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    match v {
        Value::String(s) => {
            let c = if is_remote_context(s) {
                s.clone()
            } else {
                ctx.abs_path(s)
            };
            out.insert("context".into(), json!(c));
        }
        Value::Mapping(_) => {
            for (k, val) in entries(ctx, path, v)? {
                let p = join(path, &k);
                let j = match k.as_str() {
                    "context" => {
                        let s = string(ctx, &p, val)?;
                        json!(if is_remote_context(&s) {
                            s
                        } else {
                            ctx.abs_path(&s)
                        })
                    }
                    "args" | "labels" => {
                        // A `KEY` without value and not set is dropped, like compose.
                        let lookup = ctx.lookup;
                        let mut m = key_value_map(ctx, &p, val, &|k| {
                            lookup(k).map_or(Json::Null, Json::String)
                        })?;
                        m.retain(|_, v| !v.is_null());
                        Json::Object(m)
                    }
                    _ => to_json(val),
                };
                out.insert(k, j);
            }
            if !out.contains_key("context") {
                out.insert("context".into(), json!(ctx.abs_path(".")));
            }
        }
        other => {
            return Err(ctx.invalid(
                path,
                format!("expected a string or a mapping, found {}", type_name(other)),
            ));
        }
    }
    if !out.contains_key("dockerfile") && !out.contains_key("dockerfile_inline") {
        out.insert("dockerfile".into(), json!("Dockerfile"));
    }
    Ok(Json::Object(out))
}

/// `extends`: `{service, file?}` or a service name; `file` made absolute.
fn extends_spec(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    match v {
        Value::String(s) => Ok(json!({"service": s})),
        Value::Mapping(_) => {
            let mut m = Map::new();
            for (k, val) in checked(ctx, path, v, &["service", "file"])? {
                let p = join(path, &k);
                let s = string(ctx, &p, val)?;
                m.insert(
                    k.clone(),
                    json!(if k == "file" { ctx.abs_path(&s) } else { s }),
                );
            }
            if !m.contains_key("service") {
                return Err(ctx.invalid(path, "extends needs a service"));
            }
            Ok(Json::Object(m))
        }
        other => Err(ctx.invalid(
            path,
            format!(
                "expected a service name or a mapping, found {}",
                type_name(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_test() -> (PathBuf, PathBuf) {
        (PathBuf::from("/p/compose.yaml"), PathBuf::from("/p"))
    }

    fn svc(yaml: &str) -> R<Json> {
        let (file, base) = ctx_test();
        let lookup = |k: &str| (k == "FROM_ENV").then(|| "e".to_string());
        let ctx = Ctx {
            file: &file,
            base_dir: &base,
            lookup: &lookup,
            home: Some("/home/u"),
        };
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        service(&ctx, "services.web", &v)
    }

    #[test]
    fn ports_short_and_long() {
        let j = svc(r#"ports: ["8080:80", "127.0.0.1:8081-8082:81-82/udp", 9000, "[::1]:90:90", "127.0.0.1::80", "8000-8010:80", {target: 443, published: 8443, mode: host}]"#).unwrap();
        assert_eq!(
            j["ports"],
            json!([
                {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
                {"mode": "ingress", "host_ip": "127.0.0.1", "target": 81, "published": "8081", "protocol": "udp"},
                {"mode": "ingress", "host_ip": "127.0.0.1", "target": 82, "published": "8082", "protocol": "udp"},
                {"mode": "ingress", "target": 9000, "protocol": "tcp"},
                {"mode": "ingress", "host_ip": "::1", "target": 90, "published": "90", "protocol": "tcp"},
                {"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "protocol": "tcp"},
                {"mode": "ingress", "target": 80, "published": "8000-8010", "protocol": "tcp"},
                {"mode": "host", "target": 443, "published": "8443", "protocol": "tcp"},
            ])
        );
        let e = svc(r#"ports: ["80:abc"]"#).unwrap_err().to_string();
        assert_eq!(
            e,
            "/p/compose.yaml: services.web.ports[0]: invalid port \"80:abc\" (expected [IP:][HOST:]CONTAINER[/PROTOCOL])"
        );
        assert!(
            svc("ports: [{published: 80}]")
                .unwrap_err()
                .to_string()
                .contains("needs a target")
        );
    }

    #[test]
    fn volumes_short_and_long() {
        let j = svc(r#"volumes: ["./data:/data:ro", "~/x:/x", "named:/n:nocopy", "/abs:/abs:rw,z", "/anon", {type: bind, source: ../rel, target: /r, read_only: true}, {type: tmpfs, target: /t, tmpfs: {size: 64m}}]"#).unwrap();
        assert_eq!(
            j["volumes"],
            json!([
                {"type": "bind", "source": "/p/data", "target": "/data", "read_only": true, "bind": {"create_host_path": true}},
                {"type": "bind", "source": "/home/u/x", "target": "/x", "bind": {"create_host_path": true}},
                {"type": "volume", "source": "named", "target": "/n", "volume": {"nocopy": true}},
                {"type": "bind", "source": "/abs", "target": "/abs", "bind": {"selinux": "z", "create_host_path": true}},
                {"type": "volume", "target": "/anon", "volume": {}},
                {"type": "bind", "source": "/rel", "target": "/r", "read_only": true},
                {"type": "tmpfs", "target": "/t", "tmpfs": {"size": "67108864"}},
            ])
        );
        assert!(
            svc("volumes: [{source: x, target: /y}]")
                .unwrap_err()
                .to_string()
                .contains("needs a type")
        );
        assert!(svc(r#"volumes: ["ab:cd:ef:gh"]"#).is_err());
        // A single letter before a colon is a Windows drive, as in compose: two parts here.
        let j = svc(r#"volumes: ["a:b:c:d"]"#).unwrap();
        assert_eq!(j["volumes"][0]["source"], json!("/p/a:b"));
        assert_eq!(j["volumes"][0]["target"], json!("c:d"));
        assert!(
            svc(r#"volumes: ["ab:/b:bogus"]"#)
                .unwrap_err()
                .to_string()
                .contains("unknown option")
        );
    }

    #[test]
    fn environment_labels_forms() {
        let j = svc("environment: [A=1, FROM_ENV, MISSING, 'B=x=y']\nlabels: [a=1, b]").unwrap();
        assert_eq!(
            j["environment"],
            json!({"A": "1", "FROM_ENV": "e", "MISSING": null, "B": "x=y"})
        );
        assert_eq!(j["labels"], json!({"a": "1", "b": ""}));
        let j =
            svc("environment: {A: 1, B: true, C: null, FROM_ENV: }\nlabels: {x: null}").unwrap();
        assert_eq!(
            j["environment"],
            json!({"A": "1", "B": "true", "C": null, "FROM_ENV": "e"})
        );
        assert_eq!(j["labels"], json!({"x": ""}));
    }

    #[test]
    fn command_forms() {
        let j = svc(r#"command: echo "hi there" 'a b' c\ d"#).unwrap();
        assert_eq!(j["command"], json!(["echo", "hi there", "a b", "c d"]));
        let j = svc("command: [sh, -c, 1]\nentrypoint: ''").unwrap();
        assert_eq!(j["command"], json!(["sh", "-c", "1"]));
        assert_eq!(j["entrypoint"], json!([]));
        assert!(svc("command: 'echo \"open'").is_err());
    }

    #[test]
    fn healthcheck_and_durations() {
        let j = svc("healthcheck: {test: curl -f x, interval: 1m30s, timeout: 10s, retries: 3, start_period: 90s}").unwrap();
        assert_eq!(
            j["healthcheck"],
            json!({"test": ["CMD-SHELL", "curl -f x"], "interval": "1m30s", "timeout": "10s", "retries": 3, "start_period": "1m30s"})
        );
        let j = svc("healthcheck: {test: [NONE]}\nstop_grace_period: 1m").unwrap();
        assert_eq!(j["healthcheck"]["test"], json!(["NONE"]));
        assert_eq!(j["stop_grace_period"], json!("1m0s"));
        let e = svc("healthcheck: {interval: soon}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("services.web.healthcheck.interval: invalid duration"),
            "{e}"
        );
    }

    #[test]
    fn depends_on_networks_forms() {
        let j = svc("depends_on: [db]\nnetworks: [a, b]").unwrap();
        assert_eq!(
            j["depends_on"],
            json!({"db": {"condition": "service_started", "required": true}})
        );
        assert_eq!(j["networks"], json!({"a": null, "b": null}));
        let j = svc("depends_on: {db: {condition: service_healthy, restart: true}, job: {condition: service_completed_successfully, required: false}}\nnetworks: {front: {aliases: [w], ipv4_address: 10.0.0.5, priority: 10}, back: }").unwrap();
        assert_eq!(
            j["depends_on"],
            json!({"db": {"condition": "service_healthy", "restart": true, "required": true}, "job": {"condition": "service_completed_successfully", "required": false}})
        );
        assert_eq!(
            j["networks"],
            json!({"front": {"aliases": ["w"], "ipv4_address": "10.0.0.5", "priority": 10}, "back": null})
        );
        assert!(
            svc("depends_on: {db: {condition: service_ready}}")
                .unwrap_err()
                .to_string()
                .contains("invalid condition")
        );
    }

    #[test]
    fn misc_forms() {
        let j = svc("ulimits: {nproc: 65535, nofile: {soft: 1, hard: 2}}\nextra_hosts: ['a:1.2.3.4', 'b=::1']\ndevices: ['/dev/fuse:/dev/fuse:rwm', /dev/x]\nenv_file: [a.env, {path: b.env, required: false}]\ntmpfs: /run\ndns: 8.8.8.8\nsysctls: [a.b=1]\nshm_size: 64m\nlogging: {driver: json-file, options: {max-size: 10m, max-file: 3}}").unwrap();
        assert_eq!(
            j["ulimits"],
            json!({"nproc": 65535, "nofile": {"soft": 1, "hard": 2}})
        );
        assert_eq!(j["extra_hosts"], json!(["a=1.2.3.4", "b=::1"]));
        assert_eq!(
            j["devices"],
            json!([{"source": "/dev/fuse", "target": "/dev/fuse", "permissions": "rwm"}, {"source": "/dev/x", "target": "/dev/x"}])
        );
        assert_eq!(
            j["env_file"],
            json!([{"required": true, "path": "/p/a.env"}, {"required": false, "path": "/p/b.env"}])
        );
        assert_eq!(j["tmpfs"], json!(["/run"]));
        assert_eq!(j["dns"], json!(["8.8.8.8"]));
        assert_eq!(j["sysctls"], json!({"a.b": "1"}));
        assert_eq!(j["shm_size"], json!("67108864"));
        assert_eq!(j["logging"]["options"]["max-file"], json!("3"));
        let j = svc("extra_hosts: {h: [1.1.1.1, '::1']}").unwrap();
        assert_eq!(j["extra_hosts"], json!(["h=1.1.1.1", "h=::1"]));
    }

    #[test]
    fn deploy_forms() {
        let j = svc("deploy: {replicas: 2, resources: {limits: {cpus: '0.5', memory: 50M}}, update_config: {order: start-first, failure_action: rollback, delay: 10s}}").unwrap();
        assert_eq!(
            j["deploy"]["resources"]["limits"],
            json!({"cpus": 0.5, "memory": "52428800"})
        );
        assert_eq!(
            j["deploy"]["update_config"],
            json!({"order": "start-first", "failure_action": "rollback", "delay": "10s"})
        );
        assert!(svc("deploy: {update_config: {order: random}}").is_err());
        let e = svc("deploy: {placement: {constraints: [a]}}")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/p/compose.yaml: services.web.deploy.placement: not supported by Gantry (remove it, or open an issue)"
        );
    }

    #[test]
    fn unknown_and_unsupported_keys() {
        let e = svc("blkio_config: {}").unwrap_err().to_string();
        assert_eq!(
            e,
            "/p/compose.yaml: services.web.blkio_config: not supported by Gantry (remove it, or open an issue)"
        );
        let e = svc("imagee: x").unwrap_err().to_string();
        assert!(
            e.ends_with("services.web.imagee: unknown key (did you mean \"image\"?)"),
            "{e}"
        );
        let e = svc("zzzzzz: x").unwrap_err().to_string();
        assert!(
            e.ends_with("check the spelling against the Compose Specification)"),
            "{e}"
        );
        let e = svc("healthcheck: {tset: x}").unwrap_err().to_string();
        assert!(
            e.contains("services.web.healthcheck.tset: unknown key"),
            "{e}"
        );
        assert!(svc("x-anything: {a: 1}").is_ok());
        assert!(svc("container_name: c").is_err());
        assert!(svc("container_name: my-db.1").is_ok());
        let e = svc("privileged: maybe").unwrap_err().to_string();
        assert!(
            e.contains("services.web.privileged: expected true or false"),
            "{e}"
        );
    }

    #[test]
    fn shell_split_rules() {
        assert_eq!(shell_split("a  b\tc").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(
            shell_split(r#"sh -c "echo \"x\" $$HOME""#).unwrap(),
            vec!["sh", "-c", "echo \"x\" $$HOME"]
        );
        assert_eq!(shell_split("''").unwrap(), vec![""]);
        assert!(shell_split("").unwrap().is_empty());
    }
}
