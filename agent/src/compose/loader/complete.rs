//! Completing the merged document into the model: each service's env files read into its
//! environment and its label files into its labels, the keys older than `deploy` (`cpus`,
//! `mem_limit`, `scale`, ...) checked against it, implicit dependencies and the default network
//! added, then deserialised into [`Service`]; top-level resources named, pruned to what the
//! active services use, and every reference checked; `depends_on` checked for missing services
//! and cycles.
//!
//! Design: runs once, on the merged canonical JSON (after every file, `include` and `extends`);
//! anything wrong here spans files, so it is a [`ComposeError::Project`], or, for an error
//! about a key of a service (a missing env or label file, a conflicting key), names the file
//! that wrote the key ([`Origins`]), else the first file.
//!
//! Limits: env and label files are read from disk here (the only file access after the
//! per-file stages).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value as Json, json};

use super::Env;
use super::origins::Origins;
use crate::compose::dotenv;
use crate::compose::error::ComposeError;
use crate::compose::model::{EnvFile, MountKind, Project, Service};
use crate::compose::written::{NameKind, WrittenNames};

/// Completes one merged canonical service and turns it into the model type.
/// An error about a key of the service names the file that wrote the key (`origins`), else
/// `first_file`.
pub(super) fn build_service(
    name: &str,
    mut sj: Json,
    env: &Env,
    (first_file, origins): (&Path, &Origins),
) -> Result<Service, ComposeError> {
    let file_of = |key: &str| origins.service_file(name, key).unwrap_or(first_file);
    let invalid = |key: &str, message: String| ComposeError::Invalid {
        file: file_of(key).to_path_buf(),
        path: format!("services.{name}.{key}"),
        message,
    };
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
    let mut env_from_files = BTreeSet::new();
    if !env_files.is_empty() {
        // Interpolation in the files sees the project's variables, then the service's own
        // environment, as compose does.
        let own: BTreeMap<String, String> = obj
            .get("environment")
            .and_then(Json::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect();
        let lookup = |k: &str| env.lookup(k).or_else(|| own.get(k).cloned());
        let missing = |path: &Path| {
            let shown = env.names.path(path);
            let message = format!(
                "env file {} not found (create it, or mark it `required: false`)",
                shown.display()
            );
            invalid("env_file", message)
        };
        // A file whose path a variable gave is named as written, in any error about it.
        let from_files = dotenv::read_env_files(&env_files, &lookup, &missing)
            .map_err(|e| env.names.in_error(e))?;
        let envmap = obj.entry("environment").or_insert_with(|| json!({}));
        if let Some(m) = envmap.as_object_mut() {
            for (k, v) in from_files {
                if !m.contains_key(&k) {
                    env_from_files.insert(k.clone());
                    m.insert(k, Json::String(v));
                }
            }
        }
    }
    legacy_keys(obj).map_err(|(key, message)| invalid(&key, message))?;
    label_files(obj, env, &invalid)?;
    mount_targets(name, obj).map_err(|(key, message)| invalid(&key, message))?;
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
    svc.env_from_files = env_from_files;
    svc.gantry = crate::compose::xgantry::XGantry::parse_file(x_gantry.as_ref()).map_err(|e| {
        let file = file_of(&e.key);
        e.in_service(file, name)
    })?;
    svc.x_gantry = x_gantry;
    svc.extensions = extensions;
    Ok(svc)
}

/// `label_file`: the files read like env files (later files win), their labels added under
/// `labels` where the service does not set the key itself; the key itself is not kept (compose
/// prints the merged labels only). A missing file is an error naming it, made by `invalid`
/// from the key and the message.
fn label_files(
    obj: &mut Map<String, Json>,
    env: &Env,
    invalid: &dyn Fn(&str, String) -> ComposeError,
) -> Result<(), ComposeError> {
    let Some(Json::Array(paths)) = obj.remove("label_file") else {
        return Ok(());
    };
    let files: Vec<EnvFile> = paths
        .iter()
        .filter_map(Json::as_str)
        .map(|p| EnvFile {
            path: p.into(),
            required: true,
            format: None,
        })
        .collect();
    let lookup = |k: &str| env.lookup(k);
    let missing = |path: &Path| {
        let message = format!("label file {} not found", env.names.path(path).display());
        invalid("label_file", message)
    };
    let from_files =
        dotenv::read_env_files(&files, &lookup, &missing).map_err(|e| env.names.in_error(e))?;
    let labels = obj.entry("labels").or_insert_with(|| json!({}));
    if let Some(m) = labels.as_object_mut() {
        for (k, v) in from_files {
            m.entry(k).or_insert(Json::String(v));
        }
    }
    Ok(())
}

/// The keys older than `deploy`, as compose reads them: a resource key set to zero is no
/// setting (dropped), and a key also set under `deploy` must hold the same value there, or the
/// file is refused: `scale` against `deploy.replicas`; `cpus`, `mem_limit`, `pids_limit`
/// against `deploy.resources.limits` once `limits` exists (unset there counts as different),
/// `mem_reservation` against `reservations`. The error is the key's path below the service and
/// the message.
fn legacy_keys(obj: &mut Map<String, Json>) -> Result<(), (String, String)> {
    // Numbers and sizes: 0 is no setting. (`cpuset: "0"` is CPU 0: only an empty one goes.)
    const LEGACY: [&str; 10] = [
        "cpu_period",
        "cpu_quota",
        "cpu_shares",
        "cpus",
        "mem_limit",
        "mem_reservation",
        "mem_swappiness",
        "memswap_limit",
        "oom_score_adj",
        "pids_limit",
    ];
    let zero = |v: &Json| match v {
        Json::Number(n) => n.as_f64() == Some(0.0),
        Json::String(s) => s == "0",
        _ => false,
    };
    for key in LEGACY {
        if obj.get(key).is_some_and(zero) {
            obj.remove(key);
        }
    }
    if obj.get("cpuset").and_then(Json::as_str) == Some("") {
        obj.remove("cpuset");
    }
    if let Some(scale) = obj.get("scale").cloned()
        && let Some(Json::Object(deploy)) = obj.get_mut("deploy")
    {
        // As compose prints it: a `deploy` without replicas gets `scale`'s.
        let replicas = deploy.entry("replicas").or_insert_with(|| scale.clone());
        if *replicas != scale {
            return Err((
                "scale".into(),
                "can't set distinct values on 'scale' and 'deploy.replicas' (keep one of them)"
                    .into(),
            ));
        }
    }
    let resources = obj.get("deploy").and_then(|d| d.get("resources"));
    for (legacy, side, key) in [
        ("cpus", "limits", "cpus"),
        ("mem_limit", "limits", "memory"),
        ("pids_limit", "limits", "pids"),
        ("mem_reservation", "reservations", "memory"),
    ] {
        let (Some(value), Some(side_map)) = (obj.get(legacy), resources.and_then(|r| r.get(side)))
        else {
            continue;
        };
        let same = match (value, side_map.get(key)) {
            (Json::Number(a), Some(Json::Number(b))) => a.as_f64() == b.as_f64(),
            (a, Some(b)) => a == b,
            (_, None) => false,
        };
        if !same {
            return Err((
                legacy.to_string(),
                format!(
                    "can't set distinct values on '{legacy}' and 'deploy.resources.{side}.{key}' \
                     (keep one of them, or make them equal)"
                ),
            ));
        }
    }
    Ok(())
}

/// No two `tmpfs` entries or volumes mount on one target (Docker refuses a duplicate mount
/// point when the container is created, mid-rollout): refused here, naming both keys, as
/// compose does (tmpfs first, then volumes; the target is not quoted, a variable may have
/// made it).
fn mount_targets(name: &str, obj: &Map<String, Json>) -> Result<(), (String, String)> {
    let mut seen: Vec<(String, String)> = Vec::new();
    let tmpfs = obj
        .get("tmpfs")
        .and_then(Json::as_array)
        .into_iter()
        .flatten();
    let tmpfs = tmpfs.enumerate().map(|(i, t)| {
        let target = t.as_str().map(|t| t.split(':').next().unwrap_or(t));
        (format!("tmpfs[{i}]"), target)
    });
    let volumes = obj
        .get("volumes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten();
    let volumes = volumes.enumerate().map(|(i, v)| {
        (
            format!("volumes[{i}]"),
            v.get("target").and_then(Json::as_str),
        )
    });
    for (key, target) in tmpfs.chain(volumes) {
        let Some(target) = target.map(|t| t.trim_end_matches('/')) else {
            continue;
        };
        if let Some((earlier, _)) = seen.iter().find(|(_, t)| t == target) {
            return Err((
                key,
                format!("mounts the same target as services.{name}.{earlier} (keep one of them)"),
            ));
        }
        seen.push((key, target.to_owned()));
    }
    Ok(())
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

/// Names and prunes top-level networks, volumes, secrets and configs; checks references. A
/// reference that interpolation made is quoted as written (`names`).
pub(super) fn resolve_resources(
    project: &mut Project,
    merged: &Json,
    names: &WrittenNames,
) -> Result<(), ComposeError> {
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
                    "service {:?} refers to undefined network {} (add it under the top-level networks:)",
                    svc.name,
                    names.quote(NameKind::Network, net)
                )));
            }
        }
        for m in &svc.volumes {
            if m.kind == MountKind::Volume
                && let Some(src) = &m.source
                && !vols.contains_key(src)
            {
                return Err(ComposeError::project(format!(
                    "service {:?} refers to undefined volume {} (add it under the top-level volumes:)",
                    svc.name,
                    names.quote(NameKind::Volume, src)
                )));
            }
        }
        for (kind, name_kind, list, defined) in [
            ("secret", NameKind::Secret, &svc.secrets, &secrets),
            ("config", NameKind::Config, &svc.configs, &configs),
        ] {
            for fm in list {
                if !defined.contains_key(&fm.source) {
                    return Err(ComposeError::project(format!(
                        "service {:?} refers to undefined {kind} {} (add it under the top-level {kind}s:)",
                        svc.name,
                        names.quote(name_kind, &fm.source)
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
        .filter(|m| m.kind == MountKind::Volume)
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

/// `depends_on` must name active services (unless `required: false`) and have no cycle. A
/// service that interpolation named is quoted as written (`names`).
pub(super) fn check_dependencies(
    project: &Project,
    names: &WrittenNames,
) -> Result<(), ComposeError> {
    for svc in project.services.values() {
        for (dep, d) in &svc.depends_on {
            if !project.services.contains_key(dep) && d.required {
                let hint = if project.disabled_services.contains_key(dep) {
                    " (it is in a profile that is not enabled: pass --profile)"
                } else {
                    ""
                };
                return Err(ComposeError::project(format!(
                    "service {:?} depends on undefined service {}{hint}",
                    svc.name,
                    names.quote(NameKind::Service, dep)
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
