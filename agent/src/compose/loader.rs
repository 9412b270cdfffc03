//! The load pipeline: files → YAML → tags → interpolation → canonical → extends → merge →
//! env files, profiles, defaults, references → [`Project`].
//!
//! Design: each file goes through the per-file stages on its own (so errors name it); the
//! merged canonical JSON is then completed (env files read, default network added, names
//! given to networks/volumes/secrets/configs, unused ones dropped like compose does) and
//! deserialised into the model types. Anything wrong there is a [`ComposeError::Project`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::LoadOptions;
use super::canonical::{self, Ctx, join, normalize};
use super::dotenv;
use super::error::ComposeError;
use super::extends;
use super::interpolate::interpolate;
use super::merge::{self, Tags};
use super::model::{EnvFile, Project, Service};
use super::yaml;

/// Default file names, in the order compose looks for them.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

struct Env {
    /// Interpolation environment: env files under the process environment.
    vars: BTreeMap<String, String>,
    home: Option<String>,
    /// Files under this directory are named relative to it in errors.
    cwd: PathBuf,
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
    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|f| absolute(&cwd, f)).collect()
    } else if !compose_file.is_empty() {
        compose_file.iter().map(|f| absolute(&cwd, f)).collect()
    } else {
        let dir = explicit_dir.clone().unwrap_or_else(|| cwd.clone());
        let found = DEFAULT_FILES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or(ComposeError::NoComposeFile { dir: dir.clone() })?;
        vec![found]
    };
    let project_dir = explicit_dir.unwrap_or_else(|| {
        files
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone())
    });

    // Variables: env files first, the process environment (and --var) over them.
    let mut dot: BTreeMap<String, String> = BTreeMap::new();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let p = project_dir.join(".env");
        if p.is_file() { vec![p] } else { Vec::new() }
    } else {
        opts.env_files.iter().map(|f| absolute(&cwd, f)).collect()
    };
    for f in &env_files {
        let so_far = dot.clone();
        let lookup = |k: &str| {
            so_far
                .get(k)
                .cloned()
                .or_else(|| opts.environment.get(k).cloned())
        };
        dot.extend(dotenv::read(f, false, &lookup)?);
    }
    let mut vars = dot;
    vars.extend(opts.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    let env = Env {
        home: vars.get("HOME").cloned(),
        vars,
        cwd: cwd.clone(),
    };

    let mut warnings: Vec<String> = Vec::new();
    let mut stack = Vec::new();
    let (mut merged, name_in_files) =
        load_files(&files, &project_dir, &env, &mut warnings, &mut stack)?;

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
                    "invalid project name {in_file:?} in name: (use lowercase letters, digits, '-' and '_')"
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
    let mut services = BTreeMap::new();
    let mut disabled = BTreeMap::new();
    for (sname, mut sj) in services_json {
        merge::enforce_unicity(&mut sj);
        let svc = build_service(&sname, sj, &env, &first_file)?;
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
    resolve_resources(&mut project, &merged)?;
    check_dependencies(&project)?;
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

/// Loads and merges `files` (relative paths against `base_dir`), `include`s and `extends`
/// applied. Returns the merged canonical document and the last `name:` seen.
fn load_files(
    files: &[PathBuf],
    base_dir: &Path,
    env: &Env,
    warnings: &mut Vec<String>,
    stack: &mut Vec<PathBuf>,
) -> Result<(Json, Option<String>), ComposeError> {
    let mut merged = json!({});
    let mut name_in_files: Option<String> = None;
    for file in files {
        if stack.contains(file) {
            return Err(ComposeError::project(format!(
                "{}: include cycle ({})",
                shown(file, env).display(),
                stack
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" -> ")
            )));
        }
        let (tags, canon) = load_file_in(file, base_dir, env, warnings)?;
        if canon.has_version {
            warnings.push(format!(
                "{}: the attribute `version` is obsolete, it will be ignored",
                file.display()
            ));
        }
        if let Some(n) = &canon.name {
            name_in_files = Some(n.clone());
        }
        // An extended file's relative paths point from that file's own directory.
        let mut loader = |other: &Path| -> Result<Map<String, Json>, ComposeError> {
            let dir = other.parent().unwrap_or(Path::new("/")).to_path_buf();
            let mut w = Vec::new();
            let (_, c) = load_file_in(other, &dir, env, &mut w)?;
            Ok(c.services)
        };
        let services = extends::resolve_all(file, &canon.services, &mut loader)?;
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
            import(shown(file, env), &mut d, imported)?;
        }
        stack.pop();
        merged = merge::merge_documents(merged, Json::Object(d), &tags);
    }
    Ok((merged, name_in_files))
}

/// Loads one `include:` entry as its own little project: its own directory and env files
/// (the including project's variables win over them, as compose does).
fn load_include(
    inc: &canonical::Include,
    env: &Env,
    warnings: &mut Vec<String>,
    stack: &mut Vec<PathBuf>,
) -> Result<Json, ComposeError> {
    let dir = inc.project_directory.clone().unwrap_or_else(|| {
        inc.paths
            .first()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    });
    let env_files: Vec<PathBuf> = if inc.env_files.is_empty() {
        let p = dir.join(".env");
        if p.is_file() { vec![p] } else { Vec::new() }
    } else {
        inc.env_files.clone()
    };
    let mut vars = env.vars.clone();
    for f in &env_files {
        let snapshot = vars.clone();
        let lookup = |k: &str| snapshot.get(k).cloned();
        for (k, v) in dotenv::read(f, false, &lookup)? {
            vars.entry(k).or_insert(v);
        }
    }
    let sub = Env {
        vars,
        home: env.home.clone(),
        cwd: env.cwd.clone(),
    };
    let (doc, _) = load_files(&inc.paths, &dir, &sub, warnings, stack)?;
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

/// Errors name a file relative to the current directory when it is below it.
fn shown<'p>(file: &'p Path, env: &Env) -> &'p Path {
    match file.strip_prefix(&env.cwd) {
        Ok(rel) if env.cwd.parent().is_some() => rel,
        _ => file,
    }
}

/// Per-file stages. `base_dir` is where the file's relative paths point: the project
/// directory for the files given with -f (as compose does), the file's own directory for a
/// file reached through `extends.file`.
fn load_file_in(
    file: &Path,
    base_dir: &Path,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<(Tags, canonical::CanonFile), ComposeError> {
    let shown = shown(file, env);
    let text = std::fs::read_to_string(file).map_err(|source| ComposeError::Read {
        file: shown.to_path_buf(),
        source,
    })?;
    let doc = yaml::parse(shown, &text)?;
    let (doc, tags) = merge::strip_tags(doc).map_err(|(path, message)| ComposeError::Invalid {
        file: shown.to_path_buf(),
        path,
        message,
    })?;
    let doc = interpolate_value(shown, doc, "", env, warnings)?;
    let lookup = |k: &str| env.lookup(k);
    let ctx = Ctx {
        file: shown,
        base_dir: if base_dir.as_os_str().is_empty() {
            Path::new("/")
        } else {
            base_dir
        },
        lookup: &lookup,
        home: env.home.as_deref(),
    };
    let canon = canonical::file(&ctx, &doc)?;
    Ok((tags, canon))
}

fn interpolate_value(
    file: &Path,
    v: Value,
    path: &str,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Value, ComposeError> {
    Ok(match v {
        Value::String(s) => {
            let lookup = |k: &str| env.lookup(k);
            let r = interpolate(&s, &lookup).map_err(|e| ComposeError::Interpolation {
                file: file.to_path_buf(),
                path: path.to_string(),
                message: e.to_string(),
            })?;
            for u in r.unset {
                warnings.push(format!(
                    "The {u:?} variable is not set. Defaulting to a blank string."
                ));
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
                out.insert(k, interpolate_value(file, val, &child, env, warnings)?);
            }
            Value::Mapping(out)
        }
        Value::Sequence(seq) => {
            let mut out = Vec::with_capacity(seq.len());
            for (i, item) in seq.into_iter().enumerate() {
                out.push(interpolate_value(
                    file,
                    item,
                    &format!("{path}[{i}]"),
                    env,
                    warnings,
                )?);
            }
            Value::Sequence(out)
        }
        other => other,
    })
}

/// Completes one merged canonical service and turns it into the model type.
fn build_service(
    name: &str,
    mut sj: Json,
    env: &Env,
    first_file: &Path,
) -> Result<Service, ComposeError> {
    let Some(obj) = sj.as_object_mut() else {
        return Err(ComposeError::project(format!(
            "service {name:?} is not a mapping"
        )));
    };
    // x-gantry and other extensions are kept aside.
    let ext_keys: Vec<String> = obj
        .keys()
        .filter(|k| k.starts_with("x-"))
        .cloned()
        .collect();
    let mut x_gantry = None;
    let mut extensions = BTreeMap::new();
    for k in ext_keys {
        if let Some(v) = obj.remove(&k) {
            if k == "x-gantry" {
                x_gantry = Some(v);
            } else {
                extensions.insert(k, v);
            }
        }
    }
    // env_file contents under `environment`.
    let env_files: Vec<EnvFile> = match obj.remove("env_file") {
        Some(v) => serde_json::from_value(v)
            .map_err(|e| ComposeError::project(format!("services.{name}.env_file: {e}")))?,
        None => Vec::new(),
    };
    if !env_files.is_empty() {
        let mut from_files: BTreeMap<String, String> = BTreeMap::new();
        for ef in &env_files {
            if !ef.path.is_file() {
                if ef.required {
                    return Err(ComposeError::Invalid {
                        file: first_file.to_path_buf(),
                        path: format!("services.{name}.env_file"),
                        message: format!(
                            "env file {} not found (create it, or mark it `required: false`)",
                            ef.path.display()
                        ),
                    });
                }
                continue;
            }
            let raw = ef.format.as_deref() == Some("raw");
            let lookup = |k: &str| env.lookup(k);
            from_files.extend(dotenv::read(&ef.path, raw, &lookup)?);
        }
        let envmap = obj.entry("environment").or_insert_with(|| json!({}));
        if let Some(m) = envmap.as_object_mut() {
            for (k, v) in from_files {
                if !m.contains_key(&k) {
                    m.insert(k, Json::String(v));
                }
            }
        }
    }
    implicit_dependencies(obj);
    // Default network unless network_mode is set.
    if !obj.contains_key("network_mode") && !obj.contains_key("networks") {
        obj.insert("networks".into(), json!({"default": null}));
    }
    if let Some(Json::Array(hosts)) = obj.get_mut("extra_hosts") {
        hosts.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    let mut svc: Service = serde_json::from_value(sj).map_err(|e| {
        ComposeError::project(format!(
            "services.{name}: {e} (this is a Gantry bug if the file validated)"
        ))
    })?;
    svc.name = name.to_string();
    svc.env_file = env_files;
    svc.gantry = super::xgantry::XGantry::parse(x_gantry.as_ref())
        .map_err(|e| e.in_service(first_file, name))?;
    svc.x_gantry = x_gantry;
    svc.extensions = extensions;
    Ok(svc)
}

/// Dependencies compose adds by itself: `network_mode`/`ipc`/`pid: service:X` and `links`
/// (restart with X), `volumes_from: X` (no restart). Explicit `depends_on` entries win.
fn implicit_dependencies(obj: &mut Map<String, Json>) {
    let mut implied: Vec<(String, bool)> = Vec::new();
    for key in ["network_mode", "ipc", "pid"] {
        if let Some(dep) = obj
            .get(key)
            .and_then(Json::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            implied.push((dep.to_string(), true));
        }
    }
    for (key, restart) in [("links", true), ("volumes_from", false)] {
        if let Some(Json::Array(items)) = obj.get(key) {
            for item in items.iter().filter_map(Json::as_str) {
                if item.starts_with("container:") {
                    continue;
                }
                let dep = item.split(':').next().unwrap_or_default();
                implied.push((dep.to_string(), restart));
            }
        }
    }
    if implied.is_empty() {
        return;
    }
    let deps = obj.entry("depends_on").or_insert_with(|| json!({}));
    if let Some(deps) = deps.as_object_mut() {
        for (dep, restart) in implied {
            if dep.is_empty() || deps.contains_key(&dep) {
                continue;
            }
            let mut d = json!({"condition": "service_started", "required": true});
            if restart {
                d["restart"] = json!(true);
            }
            deps.insert(dep, d);
        }
    }
}

fn obj_of(v: Option<&Json>) -> Map<String, Json> {
    v.and_then(Json::as_object).cloned().unwrap_or_default()
}

/// Names and prunes top-level networks, volumes, secrets and configs; checks references.
fn resolve_resources(project: &mut Project, merged: &Json) -> Result<(), ComposeError> {
    let pname = project.name.clone();
    let nets = obj_of(merged.get("networks"));
    let vols = obj_of(merged.get("volumes"));
    let secrets = obj_of(merged.get("secrets"));
    let configs = obj_of(merged.get("configs"));

    let named = |key: &str, mut v: Json| -> Json {
        if let Json::Null = v {
            v = json!({});
        }
        if let Some(o) = v.as_object_mut()
            && !o.contains_key("name")
        {
            let external = o.get("external").and_then(Json::as_bool).unwrap_or(false);
            let n = if external {
                key.to_string()
            } else {
                format!("{pname}_{key}")
            };
            o.insert("name".into(), json!(n));
        }
        v
    };
    for svc in project.services.values() {
        for net in svc.networks.keys() {
            if net == "default" {
                continue;
            }
            if !nets.contains_key(net) {
                return Err(ComposeError::project(format!(
                    "service {:?} refers to undefined network {net:?} (add it under the top-level networks:)",
                    svc.name
                )));
            }
        }
        for m in &svc.volumes {
            if m.kind == super::model::MountKind::Volume
                && let Some(src) = &m.source
                && !vols.contains_key(src)
            {
                return Err(ComposeError::project(format!(
                    "service {:?} refers to undefined volume {src:?} (add it under the top-level volumes:)",
                    svc.name
                )));
            }
        }
        for (kind, list, defined) in [
            ("secret", &svc.secrets, &secrets),
            ("config", &svc.configs, &configs),
        ] {
            for fm in list {
                if !defined.contains_key(&fm.source) {
                    return Err(ComposeError::project(format!(
                        "service {:?} refers to undefined {kind} {:?} (add it under the top-level {kind}s:)",
                        svc.name, fm.source
                    )));
                }
            }
        }
    }
    let used_nets: BTreeSet<&String> = project
        .services
        .values()
        .flat_map(|s| s.networks.keys())
        .collect();
    let used_vols: BTreeSet<&String> = project
        .services
        .values()
        .flat_map(|s| s.volumes.iter())
        .filter(|m| m.kind == super::model::MountKind::Volume)
        .filter_map(|m| m.source.as_ref())
        .collect();
    let used_secrets: BTreeSet<&String> = project
        .services
        .values()
        .flat_map(|s| s.secrets.iter().map(|f| &f.source))
        .collect();
    let used_configs: BTreeSet<&String> = project
        .services
        .values()
        .flat_map(|s| s.configs.iter().map(|f| &f.source))
        .collect();

    let mut networks = BTreeMap::new();
    for key in &used_nets {
        let v = nets.get(key.as_str()).cloned().unwrap_or(Json::Null);
        let v = named(key, v);
        let n = serde_json::from_value(v)
            .map_err(|e| ComposeError::project(format!("networks.{key}: {e}")))?;
        networks.insert((*key).clone(), n);
    }
    let mut volumes = BTreeMap::new();
    for key in &used_vols {
        let v = named(key, vols.get(key.as_str()).cloned().unwrap_or(Json::Null));
        let n = serde_json::from_value(v)
            .map_err(|e| ComposeError::project(format!("volumes.{key}: {e}")))?;
        volumes.insert((*key).clone(), n);
    }
    let mut sec = BTreeMap::new();
    for key in &used_secrets {
        let v = named(
            key,
            secrets.get(key.as_str()).cloned().unwrap_or(Json::Null),
        );
        let n = serde_json::from_value(v)
            .map_err(|e| ComposeError::project(format!("secrets.{key}: {e}")))?;
        sec.insert((*key).clone(), n);
    }
    let mut cfg = BTreeMap::new();
    for key in &used_configs {
        let v = named(
            key,
            configs.get(key.as_str()).cloned().unwrap_or(Json::Null),
        );
        let n = serde_json::from_value(v)
            .map_err(|e| ComposeError::project(format!("configs.{key}: {e}")))?;
        cfg.insert((*key).clone(), n);
    }
    project.networks = networks;
    project.volumes = volumes;
    project.secrets = sec;
    project.configs = cfg;
    Ok(())
}

/// `depends_on` must name active services (unless `required: false`) and have no cycle.
fn check_dependencies(project: &Project) -> Result<(), ComposeError> {
    for svc in project.services.values() {
        for (dep, d) in &svc.depends_on {
            if !project.services.contains_key(dep) && d.required {
                let hint = if project.disabled_services.contains_key(dep) {
                    " (it is in a profile that is not enabled: pass --profile)"
                } else {
                    ""
                };
                return Err(ComposeError::project(format!(
                    "service {:?} depends on undefined service {dep:?}{hint}",
                    svc.name
                )));
            }
        }
    }
    // Cycle detection: Kahn's algorithm.
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = project
        .services
        .values()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on
                    .keys()
                    .map(String::as_str)
                    .filter(|d| project.services.contains_key(*d))
                    .collect(),
            )
        })
        .collect();
    loop {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, d)| d.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            break;
        }
        for r in &ready {
            remaining.remove(r);
        }
        for deps in remaining.values_mut() {
            for r in &ready {
                deps.remove(r);
            }
        }
    }
    if !remaining.is_empty() {
        let names: Vec<&str> = remaining.keys().copied().collect();
        return Err(ComposeError::project(format!(
            "dependency cycle between services {} (check their depends_on)",
            names.join(", ")
        )));
    }
    Ok(())
}
