//! A service's keys that name something checked only once the files are merged: the services
//! it depends on or extends, its networks, and its env and label files.
//!
//! Design: the same [`super::walk::Special`]s as [`super::service`]'s, output in compose's long
//! form (`depends_on` and `networks` as mappings with compose's defaults, `env_file` entries
//! with `required`, paths absolute). Each name or path read from interpolated text is recorded
//! with that text as written ([`Ctx::name`], [`Ctx::abs_path_at`]): the check that finds it
//! undefined or missing, after merging, quotes that text and never what a variable gave.
//! [`implied_dependencies`] does the same for the services `links`, `volumes_from` and
//! `network_mode`/`ipc`/`pid: service:X` depend on, which the loader adds to `depends_on`.
//!
//! Limits: mapping keys are never interpolated, so only list items and values are recorded.

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::scalar::{entries, string, strings_at, type_name};
use super::schema::{DEPENDS_ON, ENV_FILE, EXTENDS, SERVICE_NETWORK};
use super::walk::walk;
use super::{Ctx, R, join};
use crate::compose::error::ComposeError;
use crate::compose::written::NameKind;

pub(super) fn env_file(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
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
                m.extend(walk(ctx, &ip, item, ENV_FILE)?);
                if !m.contains_key("path") {
                    return Err(ctx.invalid(&ip, "an env_file entry needs a path"));
                }
            }
            other => {
                // Interpolated at `p` when written alone, not in a list.
                let at = if matches!(val, Value::Sequence(_)) {
                    &ip
                } else {
                    p
                };
                let path = string(ctx, &ip, other)?;
                m.insert("path".into(), Json::String(ctx.abs_path_at(at, &path)));
            }
        }
        out.push(Json::Object(m));
    }
    Ok(Json::Array(out))
}

/// `label_file`: a path or a list of paths, made absolute. Read into `labels` when the files
/// are merged (see the loader), as compose does.
pub(super) fn label_file(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let paths = strings_at(ctx, p, val)?;
    Ok(Json::from(
        paths
            .iter()
            .map(|(ip, s)| ctx.abs_path_at(ip, s))
            .collect::<Vec<_>>(),
    ))
}

fn list_or_mapping_error(ctx: &Ctx<'_>, path: &str, v: &Value) -> ComposeError {
    ctx.invalid(
        path,
        format!("expected a list or a mapping, found {}", type_name(v)),
    )
}

pub(super) fn depends_on(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    match v {
        Value::Sequence(_) => {
            for (ip, name) in strings_at(ctx, path, v)? {
                ctx.name(NameKind::Service, &ip, &name);
                out.insert(
                    name,
                    json!({"condition": "service_started", "required": true}),
                );
            }
        }
        Value::Mapping(_) => {
            for (name, d) in entries(ctx, path, v)? {
                let mut m = Map::new();
                m.insert("condition".into(), json!("service_started"));
                m.insert("required".into(), json!(true));
                m.extend(walk(ctx, &join(path, &name), d, DEPENDS_ON)?);
                out.insert(name, Json::Object(m));
            }
        }
        Value::Null => {}
        other => return Err(list_or_mapping_error(ctx, path, other)),
    }
    Ok(Json::Object(out))
}

pub(super) fn service_networks(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    match v {
        Value::Sequence(_) => {
            for (ip, name) in strings_at(ctx, path, v)? {
                ctx.name(NameKind::Network, &ip, &name);
                out.insert(name, Json::Null);
            }
        }
        Value::Mapping(_) => {
            for (name, n) in entries(ctx, path, v)? {
                let j = if n.is_null() {
                    Json::Null
                } else {
                    Json::Object(walk(ctx, &join(path, &name), n, SERVICE_NETWORK)?)
                };
                out.insert(name, j);
            }
        }
        Value::Null => {}
        other => return Err(list_or_mapping_error(ctx, path, other)),
    }
    Ok(Json::Object(out))
}

/// `extends`: `{service, file?}` or a service name; `file` made absolute.
pub(super) fn extends(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    match v {
        Value::String(s) => {
            ctx.name(NameKind::Service, path, s);
            Ok(json!({"service": s}))
        }
        Value::Mapping(_) => {
            let m = walk(ctx, path, v, EXTENDS)?;
            let Some(service) = m.get("service").and_then(Json::as_str) else {
                return Err(ctx.invalid(path, "extends needs a service"));
            };
            ctx.name(NameKind::Service, &join(path, "service"), service);
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

/// Records the services a canonical service (at `path`) depends on without `depends_on`, when
/// interpolation made the value naming them: `links` (`${DB}:db`) and `volumes_from`
/// (`${DB}:ro`; not `container:...`), and `network_mode`, `ipc` and `pid` as `service:${DB}`.
/// The loader adds them to `depends_on`, whose check names an undefined one.
pub(super) fn implied_dependencies(ctx: &Ctx<'_>, path: &str, svc: &Map<String, Json>) {
    for key in ["network_mode", "ipc", "pid"] {
        if let Some(dep) = svc
            .get(key)
            .and_then(Json::as_str)
            .and_then(|v| v.strip_prefix("service:"))
        {
            ctx.name_in(NameKind::Service, &join(path, key), "service:", dep);
        }
    }
    for key in ["links", "volumes_from"] {
        let items = svc.get(key).and_then(Json::as_array).into_iter().flatten();
        for (i, item) in items.enumerate() {
            if let Some(item) = item.as_str().filter(|s| !s.starts_with("container:")) {
                let ip = format!("{}[{i}]", join(path, key));
                match item.split_once(':') {
                    Some((dep, _)) => ctx.name_in(NameKind::Service, &ip, "", dep),
                    None => ctx.name(NameKind::Service, &ip, item),
                }
            }
        }
    }
}
