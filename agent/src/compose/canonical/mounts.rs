//! Mounts and ports of a service in long form: `ports`, `volumes`, `secrets`, `configs`,
//! `devices` and `ulimits`.
//!
//! Design: short syntaxes are parsed here the way compose parses them (port ranges expanded,
//! `[SOURCE:]TARGET[:OPTIONS]` volumes with a Windows drive's colon kept, devices
//! `HOST[:CONTAINER[:PERMISSIONS]]`); long forms are walked by their tables in
//! [`super::schema`] and completed with compose's defaults (`mode: ingress`, a secret's
//! target under `/run/secrets`, a bind's `create_host_path`).
//!
//! Limits: `npipe` and `image` mounts pass through as written; Windows targets are not
//! translated.

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::scalar::{entries, integer, string, type_name};
use super::schema::{DEVICE, FILE_MOUNT, MOUNT, PORT, ULIMIT};
use super::walk::{check_keys, walk};
use super::{Ctx, R, has_drive_letter};
use crate::compose::written::NameKind;

fn list<'v>(ctx: &Ctx<'_>, path: &str, v: &'v Value) -> R<&'v Vec<Value>> {
    match v {
        Value::Sequence(seq) => Ok(seq),
        _ => Err(ctx.invalid(path, format!("expected a list, found {}", type_name(v)))),
    }
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
/// The error says what is wrong, never the text: the caller quotes it (or, when interpolation
/// made it, its text as written).
pub fn short_port(spec: &str) -> Result<Vec<Json>, String> {
    let bad = || "expected [IP:][HOST:]CONTAINER[/PROTOCOL]".to_owned();
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
                return Err("host and container ranges differ in size".to_owned());
            }
        }
    }
    Ok(out)
}

/// A long-form port's `target`: a port number.
pub(super) fn port_target(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let n = integer(ctx, p, val)?;
    let n = u16::try_from(n).map_err(|_| {
        ctx.invalid(
            p,
            format!("port {} out of range (0 to 65535)", ctx.number(p, n)),
        )
    })?;
    Ok(json!(n))
}

pub(super) fn ports(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Vec::new();
    for (i, item) in list(ctx, path, v)?.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        match item {
            Value::Mapping(_) => out.push(long_port(ctx, &ip, item)?),
            Value::Number(_) | Value::String(_) => {
                let s = string(ctx, &ip, item)?;
                out.extend(short_port(&s).map_err(|e| {
                    ctx.invalid(&ip, format!("invalid port {} ({e})", ctx.quote(&ip, &s)))
                })?);
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

/// A long-form port, keys in compose's order: mode, the others, host_ip, target, published
/// (unless empty), protocol (default tcp).
fn long_port(ctx: &Ctx<'_>, ip: &str, item: &Value) -> R<Json> {
    let mut given = walk(ctx, ip, item, PORT)?;
    let mut m = Map::new();
    m.insert("mode".into(), json!("ingress"));
    let placed = ["host_ip", "target", "published", "protocol"];
    for (k, v) in &given {
        if !placed.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    let target = given
        .remove("target")
        .ok_or_else(|| ctx.invalid(ip, "a port needs a target"))?;
    if let Some(h) = given.remove("host_ip") {
        m.insert("host_ip".into(), h);
    }
    m.insert("target".into(), target);
    if let Some(p) = given.remove("published").filter(|p| p != "") {
        m.insert("published".into(), p);
    }
    m.insert(
        "protocol".into(),
        given.remove("protocol").unwrap_or_else(|| json!("tcp")),
    );
    Ok(Json::Object(m))
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

/// Parses one short-syntax volume (`[SOURCE:]TARGET[:OPTIONS]`, read at `path`) to its long
/// form. The error quotes the whole spec, as written when interpolation made it, and a part of
/// it (an unknown option) only when the spec was written literally.
pub fn short_volume(ctx: &Ctx<'_>, path: &str, spec: &str) -> Result<Json, String> {
    let bad = |why: &str| format!("invalid volume {} ({why})", ctx.quote(path, spec));
    let parts: Vec<&str> = split_volume_spec(spec);
    let (source, target, opts) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, o] => (Some(*s), *t, Some(*o)),
        _ => return Err(bad("expected [SOURCE:]TARGET[:OPTIONS]")),
    };
    if target.is_empty() {
        return Err(bad("empty target"));
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
            other => {
                let which = if ctx.interpolated(path) {
                    String::new()
                } else {
                    format!(" {other:?}")
                };
                return Err(bad(&format!(
                    "unknown option{which}: ro, rw, z, Z, nocopy, shared, rshared, slave, \
                     rslave, private, rprivate, cached, delegated or consistent"
                )));
            }
        }
    }
    if bind {
        bind_opts.insert("create_host_path".into(), json!(true));
        m.insert("bind".into(), Json::Object(bind_opts));
    } else {
        if !bind_opts.is_empty() {
            return Err(bad("bind options on a named volume"));
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

pub(super) fn volumes(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Vec::new();
    for (i, item) in list(ctx, path, v)?.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        match item {
            Value::String(s) => {
                let m = short_volume(ctx, &ip, s).map_err(|e| ctx.invalid(&ip, e))?;
                if m["type"] == "volume"
                    && let Some(source) = m.get("source").and_then(Json::as_str)
                {
                    ctx.name_in(NameKind::Volume, &ip, "", source);
                }
                out.push(m);
            }
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
    let es = check_keys(ctx, ip, item, MOUNT)?;
    let kind = es
        .iter()
        .find(|(k, _)| k == "type")
        .map(|(_, v)| string(ctx, &super::join(ip, "type"), v))
        .transpose()?
        .ok_or_else(|| ctx.invalid(ip, "a volume mapping needs a type (bind, volume, tmpfs)"))?;
    if !["bind", "volume", "tmpfs", "npipe", "image"].contains(&kind.as_str()) {
        let tp = super::join(ip, "type");
        return Err(ctx.invalid(
            &tp,
            format!(
                "invalid mount type {} (bind, volume, tmpfs)",
                ctx.quote(&tp, &kind)
            ),
        ));
    }
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    for (k, v) in walk(ctx, ip, item, MOUNT)? {
        match k.as_str() {
            "type" => {}
            "source" if kind == "bind" => {
                let s = v.as_str().unwrap_or_default();
                m.insert(k, json!(ctx.abs_path(s)));
            }
            "source" if kind == "volume" => {
                let s = v.as_str().unwrap_or_default();
                ctx.name(NameKind::Volume, &super::join(ip, "source"), s);
                m.insert(k, v);
            }
            _ => {
                m.insert(k, v);
            }
        }
    }
    if !m.contains_key("target") {
        return Err(ctx.invalid(ip, "a volume mapping needs a target"));
    }
    Ok(Json::Object(m))
}

/// A secret or config mount's `mode`, as compose reads it: a number is the mode itself
/// (`0o644`, `0x1a4` and `420` are all `0644`); a string is octal digits (`"644"`, `"0644"`).
/// Written with a leading zero (`0644`, YAML 1.1 octal for compose), a YAML 1.2 parser hands
/// it over as a string, so it is octal too. Printed like compose: `0` and the octal digits.
pub(super) fn file_mode(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let n = match val {
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).map_err(|_| {
            ctx.invalid(
                p,
                format!("invalid mode {} (octal digits, 0644)", ctx.quote(p, s)),
            )
        })?,
        other => {
            let n = integer(ctx, p, other)?;
            u32::try_from(n).map_err(|_| {
                ctx.invalid(
                    p,
                    format!("invalid mode {} (0o644, or 420)", ctx.number(p, n)),
                )
            })?
        }
    };
    Ok(json!(format!("0{n:o}")))
}

/// A tmpfs mount's `mode`, a number. Written with a leading zero (`01777`), a YAML 1.2 parser
/// hands it over as a string: octal, as compose (YAML 1.1) reads it, not decimal 1777. A
/// number without one stays what it is, as in compose.
pub(super) fn tmpfs_mode(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    match val {
        Value::String(s) => {
            let digits = s.strip_prefix("0o").or_else(|| s.strip_prefix('0'));
            digits
                .and_then(|d| u32::from_str_radix(if d.is_empty() { "0" } else { d }, 8).ok())
                .map(|n| json!(n))
                .ok_or_else(|| {
                    ctx.invalid(
                        p,
                        format!(
                            "invalid mode {} (a number, 1777 or 0o1777)",
                            ctx.quote(p, s)
                        ),
                    )
                })
        }
        other => Ok(json!(integer(ctx, p, other)?)),
    }
}

pub(super) fn secret_mounts(ctx: &Ctx<'_>, p: &str, v: &Value) -> R<Json> {
    file_mounts(ctx, p, v, true)
}

pub(super) fn config_mounts(ctx: &Ctx<'_>, p: &str, v: &Value) -> R<Json> {
    file_mounts(ctx, p, v, false)
}

fn file_mounts(ctx: &Ctx<'_>, path: &str, v: &Value, secret: bool) -> R<Json> {
    let kind = if secret {
        NameKind::Secret
    } else {
        NameKind::Config
    };
    let mut out = Vec::new();
    for (i, item) in list(ctx, path, v)?.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let mut m = Map::new();
        match item {
            Value::Mapping(_) => {
                m = walk(ctx, &ip, item, FILE_MOUNT)?;
                let Some(source) = m.get("source").and_then(Json::as_str) else {
                    return Err(ctx.invalid(&ip, "needs a source"));
                };
                ctx.name(kind, &super::join(&ip, "source"), source);
            }
            other => {
                let source = string(ctx, &ip, other)?;
                ctx.name(kind, &ip, &source);
                m.insert("source".into(), json!(source));
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

pub(super) fn ulimits(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (name, val) in entries(ctx, path, v)? {
        let p = super::join(path, &name);
        let j = match val {
            Value::Mapping(_) => {
                let m = walk(ctx, &p, val, ULIMIT)?;
                match (m.get("soft"), m.get("hard")) {
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

/// `devices`: host device mappings in long form, `permissions` defaulting to `rwm` as compose
/// prints them.
pub(super) fn device_mounts(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Vec::new();
    for (i, item) in list(ctx, path, v)?.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let j = match item {
            Value::Mapping(_) => {
                let mut m = walk(ctx, &ip, item, DEVICE)?;
                if !m.contains_key("source") {
                    return Err(ctx.invalid(&ip, "needs a source"));
                }
                if !m.contains_key("target") {
                    let s = m.get("source").cloned().unwrap_or(Json::Null);
                    m.insert("target".into(), s);
                }
                m.entry("permissions").or_insert_with(|| json!("rwm"));
                Json::Object(m)
            }
            other => {
                let s = string(ctx, &ip, other)?;
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [src] => json!({"source": src, "target": src, "permissions": "rwm"}),
                    [src, dst] => json!({"source": src, "target": dst, "permissions": "rwm"}),
                    [src, dst, perm] => json!({"source": src, "target": dst, "permissions": perm}),
                    _ => {
                        return Err(ctx.invalid(
                            &ip,
                            format!(
                                "invalid device {} (HOST[:CONTAINER[:PERMISSIONS]])",
                                ctx.quote(&ip, &s)
                            ),
                        ));
                    }
                }
            }
        };
        out.push(j);
    }
    Ok(Json::Array(out))
}
