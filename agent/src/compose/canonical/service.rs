//! A service's keys that need more than their type: short syntaxes, defaults, allowed values
//! that depend on more than a list, and values read against the environment.
//!
//! Design: each function is a [`super::walk::Special`] named in [`super::schema`]; [`service`]
//! walks the service table. Output is the long form compose prints: `command` split like a
//! shell, `extra_hosts` as `HOST=IP`, `build` with a context and a Dockerfile.
//!
//! Limits: mounts and ports are in [`super::mounts`]; `depends_on`, `networks`, `extends`,
//! `env_file` and `label_file` in [`super::refs`]; `build` keys other than `context`,
//! `args` and `labels` are kept as written (Gantry never builds).

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::scalar::{
    bytes, entries, float, integer, key_str, key_value_map, scalar_string, string, string_list,
    string_or_list, to_json, type_name, unsigned,
};
use super::schema::{DEVICE_REQUEST, HOOK, IPAM_POOL, SERVICE, WATCH};
use super::walk::walk;
use super::{Ctx, R, join};
use crate::compose::MAX_REPLICAS;
use crate::compose::error::ComposeError;

/// Canonicalises one service. A null service stays null: it is valid only over a service an
/// earlier file defines (checked after merging, as compose does).
pub fn service(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    match v {
        Value::Null => Ok(Json::Null),
        Value::Mapping(m) => {
            // Before the walk: `X-Gantry` would be an unknown key there, without the hint.
            for key in m.keys().map(key_str) {
                if let Some(message) = crate::compose::xgantry::misspelt(&key) {
                    return Err(ctx.invalid(&join(path, &key), message));
                }
            }
            let svc = walk(ctx, path, v, SERVICE)?;
            super::refs::implied_dependencies(ctx, path, &svc);
            Ok(Json::Object(svc))
        }
        other => Err(ctx.invalid(
            path,
            format!("a service is a mapping, found {}", type_name(other)),
        )),
    }
}

pub(super) fn container_name(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let s = string(ctx, p, val)?;
    let ok = s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(ctx.invalid(
            p,
            format!(
                "invalid container name {} (at least 2 of letters, digits, '_', '.', '-', \
                 starting with a letter or digit)",
                ctx.quote(p, &s)
            ),
        ));
    }
    Ok(Json::String(s))
}

pub(super) fn pull_policy(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
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
            format!(
                "invalid pull_policy {} (always, never, missing, build)",
                ctx.quote(p, &s)
            ),
        ));
    }
    Ok(Json::String(s))
}

pub(super) fn restart(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let s = string(ctx, p, val)?;
    s.parse::<crate::compose::model::Restart>().map_err(|e| {
        ctx.invalid(
            p,
            format!("invalid restart policy {} ({e})", ctx.quote(p, &s)),
        )
    })?;
    Ok(Json::String(s))
}

/// `command` and `entrypoint`: a string is split like a shell would.
pub(super) fn command(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    Ok(match val {
        Value::Null => Json::Null,
        Value::String(s) => {
            let (words, dropped) = shell_words(s).map_err(|e| ctx.invalid(p, e))?;
            if let Some(dropped) = dropped {
                // Where and which operator, not the text: it is interpolated, and may hold a
                // secret from the environment.
                let operator: String = dropped
                    .chars()
                    .take_while(|c| ";&|<>".contains(*c))
                    .collect();
                tracing::warn!(
                    file = %ctx.file.display(),
                    key = p,
                    operator,
                    at = s[..s.len() - dropped.len()].chars().count() + 1,
                    "a command string stops at a shell operator and the rest is dropped, as \
                     compose drops it; for a shell, write [sh, -c, \"...\"]"
                );
            }
            Json::from(words)
        }
        Value::Sequence(_) => Json::from(string_list(ctx, p, val)?),
        other => {
            return Err(ctx.invalid(
                p,
                format!("expected a string or a list, found {}", type_name(other)),
            ));
        }
    })
}

/// `environment`: a `KEY` without a value takes it from the interpolation environment.
pub(super) fn environment(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let lookup = ctx.lookup;
    Ok(Json::Object(key_value_map(ctx, p, val, &|k| {
        lookup(k).map_or(Json::Null, Json::String)
    })?))
}

/// Splits a command string into words as compose does (see [`shell_words`]); what follows a
/// shell operator is dropped.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    shell_words(s).map(|(words, _)| words)
}

/// Splits a command string into words the way compose does, without expansions: blanks
/// separate words; single quotes keep everything; a backslash outside them takes the next
/// character as it is (in double quotes too); `$(...)` and backticks stay whole, inside them
/// nothing splits. The words end at the first `;`, `&`, `|`, `<` or `>` outside quotes:
/// compose runs no shell, so it drops the rest, and a word of digits just before `>` (a file
/// descriptor, as in `2>&1`). Returns the words and the dropped rest, from its operator on.
/// A parenthesis outside quotes other than `$(...)` is refused, as compose refuses it.
pub fn shell_words(s: &str) -> Result<(Vec<String>, Option<&str>), String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut got = false;
    let (mut single, mut double, mut backtick, mut dollar, mut escaped) =
        (false, false, false, false, false);
    let mut rest = None;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && !single {
            escaped = true;
            got = true;
            continue;
        } else if matches!(c, ' ' | '\t' | '\r' | '\n') && !(single || double || backtick || dollar)
        {
            if got {
                words.push(std::mem::take(&mut cur));
                got = false;
            }
            continue;
        } else {
            let quoted = single || double || backtick;
            match c {
                '\'' if !double && !backtick && !dollar => {
                    single = !single;
                    got = true;
                    continue;
                }
                '"' if !single && !backtick && !dollar => {
                    double = !double;
                    got = true;
                    continue;
                }
                '`' if !single && !double && !dollar => backtick = !backtick,
                '(' if !quoted => {
                    if dollar || !cur.ends_with('$') {
                        return Err(format!(
                            "a `(` outside quotes at character {} (quote it)",
                            s[..i].chars().count() + 1
                        ));
                    }
                    dollar = true;
                }
                ')' if !quoted => {
                    if !dollar {
                        return Err(format!(
                            "a `)` outside quotes at character {} (quote it)",
                            s[..i].chars().count() + 1
                        ));
                    }
                    dollar = false;
                }
                ';' | '&' | '|' | '<' | '>' if !quoted && !dollar => {
                    if c == '>' && !cur.is_empty() && cur.chars().all(|d| d.is_ascii_digit()) {
                        got = false;
                    }
                    rest = Some(&s[i..]);
                    break;
                }
                _ => {}
            }
        }
        got = true;
        cur.push(c);
    }
    if got {
        words.push(cur);
    }
    let open = [
        (escaped, "a backslash at the end"),
        (single, "an unterminated single quote"),
        (double, "an unterminated double quote"),
        (backtick, "an unterminated backtick"),
        (dollar, "an unterminated `$(`"),
    ];
    if let Some((_, what)) = open.iter().find(|(open, _)| *open) {
        return Err(format!("{what} in the command"));
    }
    Ok((words, rest))
}

/// `[::1]` → `::1` (compose prints IPv6 addresses of extra_hosts without brackets).
fn unbracket(ip: &str) -> &str {
    ip.strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip)
}

pub(super) fn extra_hosts(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let mut out = Vec::new();
    match val {
        Value::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let ip_path = format!("{p}[{i}]");
                let s = string(ctx, &ip_path, item)?;
                let (h, ip) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .ok_or_else(|| {
                        ctx.invalid(
                            &ip_path,
                            format!("expected HOST=IP, found {}", ctx.quote(&ip_path, &s)),
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

/// `healthcheck.test`: a string is `CMD-SHELL`.
pub(super) fn health_test(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    match val {
        Value::String(s) => Ok(json!(["CMD-SHELL", s])),
        Value::Sequence(_) => Ok(Json::from(string_list(ctx, p, val)?)),
        other => Err(ctx.invalid(
            p,
            format!("expected a string or a list, found {}", type_name(other)),
        )),
    }
}

/// `ipam.config`: a list of pools.
pub(super) fn ipam_pools(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let Value::Sequence(seq) = val else {
        return Err(ctx.invalid(p, "expected a list of pools"));
    };
    let mut pools = Vec::new();
    for (i, pool) in seq.iter().enumerate() {
        pools.push(Json::Object(walk(
            ctx,
            &format!("{p}[{i}]"),
            pool,
            IPAM_POOL,
        )?));
    }
    Ok(Json::Array(pools))
}

/// `cpus` and `deploy.resources.*.cpus`: a number of CPUs, 0 or more.
pub(super) fn cpus(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let f = float(ctx, p, val)?;
    if f < 0.0 {
        return Err(ctx.invalid(
            p,
            format!("cpus must be 0 or more, found {}", ctx.number(p, f)),
        ));
    }
    serde_json::Number::from_f64(f)
        .map(Json::Number)
        .ok_or_else(|| ctx.invalid(p, "invalid cpus"))
}

/// `develop.watch`: a list of entries, each with its path made absolute and, as compose prints
/// it, an `exec` (`{command: null}` when the entry has none).
pub(super) fn develop_watch(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let items = sequence(ctx, p, val, "watch rules")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let mut rule = walk(ctx, &ip, item, WATCH)?;
        for required in ["path", "action"] {
            if !rule.contains_key(required) {
                return Err(ctx.invalid(&ip, format!("a watch rule needs `{required}`")));
            }
        }
        rule.entry("exec")
            .or_insert_with(|| json!({"command": null}));
        out.push(Json::Object(rule));
    }
    Ok(Json::Array(out))
}

/// `security_opt`: a list of strings; a seccomp profile given as a file
/// (`seccomp=./profile.json`) is made absolute against the base dir, as a bind source is:
/// Docker takes the profile's JSON, which the deploy reads from there ([`seccomp_file`]).
pub(super) fn security_opt(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let opts = string_list(ctx, p, val)?;
    Ok(Json::from(
        opts.into_iter()
            .map(|o| match seccomp_file(&o) {
                Some(path) => format!("seccomp={}", ctx.abs_path(path)),
                None => o,
            })
            .collect::<Vec<_>>(),
    ))
}

/// The file a `security_opt` entry names as its seccomp profile (`seccomp=FILE` or
/// `seccomp:FILE`): not `unconfined`, nor a profile written inline as JSON.
pub fn seccomp_file(opt: &str) -> Option<&str> {
    let value = opt
        .strip_prefix("seccomp=")
        .or_else(|| opt.strip_prefix("seccomp:"))?;
    (!value.is_empty() && value != "unconfined" && !value.trim_start().starts_with('{'))
        .then_some(value)
}

/// `mem_swappiness`: 0 to 100, printed as a string like compose does.
pub(super) fn mem_swappiness(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let n = unsigned(ctx, p, val)?;
    if n > 100 {
        return Err(ctx.invalid(
            p,
            format!("mem_swappiness is 0 to 100, found {}", ctx.number(p, n)),
        ));
    }
    Ok(Json::String(n.to_string()))
}

/// `memswap_limit`: a size like `1g` (memory plus swap), or `-1` for unlimited swap;
/// printed in bytes as a string.
pub(super) fn memswap_limit(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let unlimited = match val {
        Value::Number(n) => n.as_i64() == Some(-1),
        Value::String(s) => s.trim() == "-1",
        _ => false,
    };
    if unlimited {
        return Ok(Json::String("-1".into()));
    }
    super::scalar::bytes(ctx, p, val)
        .map_err(|_| ctx.invalid(p, "expected a size like 1g, or -1 for unlimited swap"))
}

/// `oom_score_adj`: -1000 to 1000.
pub(super) fn oom_score_adj(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let n = integer(ctx, p, val)?;
    if !(-1000..=1000).contains(&n) {
        return Err(ctx.invalid(
            p,
            format!("oom_score_adj is -1000 to 1000, found {}", ctx.number(p, n)),
        ));
    }
    Ok(Json::from(n))
}

fn unsupported(ctx: &Ctx<'_>, p: &str) -> ComposeError {
    ComposeError::Unsupported {
        file: ctx.file.to_path_buf(),
        path: p.to_string(),
    }
}

/// `deploy.mode`: `replicated` or `global` (anything else is swarm-only).
pub(super) fn deploy_mode(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let s = string(ctx, p, val)?;
    if s != "replicated" && s != "global" {
        return Err(unsupported(ctx, p));
    }
    Ok(json!(s))
}

/// `deploy.replicas` and `scale`: 0 to [`MAX_REPLICAS`]. Above it, refused here (the plan
/// holds one entry per replica: a count near `u32::MAX` would exhaust the daemon's memory).
pub(super) fn replicas(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let n = unsigned(ctx, p, val)?;
    match u32::try_from(n) {
        Ok(n) if n <= MAX_REPLICAS => Ok(json!(n)),
        _ => Err(ctx.invalid(
            p,
            format!(
                "{} is too many: Gantry runs at most {MAX_REPLICAS} replicas of a service \
                 (lower it; for more, run another service or another host)",
                ctx.number(p, n)
            ),
        )),
    }
}

/// `deploy.placement`: swarm scheduling, meaningless on one host; kept only when empty.
pub(super) fn placement(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    if entries(ctx, p, val)?.is_empty() {
        Ok(Json::Object(Map::new()))
    } else {
        Err(unsupported(ctx, p))
    }
}

/// `blkio_config.weight`: 10 to 1000; 0 is no weight (left out, as compose leaves it).
pub(super) fn blkio_weight(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let n = integer(ctx, p, val)?;
    match n {
        0 => Ok(Json::Null),
        10..=1000 => Ok(json!(n)),
        _ => Err(ctx.invalid(
            p,
            format!(
                "a block I/O weight is 10 to 1000, found {}",
                ctx.number(p, n)
            ),
        )),
    }
}

/// `blkio_config.weight_device`: `{path, weight}` entries, printed `{Path, Weight}`.
pub(super) fn weight_devices(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    per_device(ctx, p, val, "weight", |ctx, p, v| {
        let n = integer(ctx, p, v)?;
        if (10..=1000).contains(&n) {
            Ok(("Weight", json!(n)))
        } else {
            Err(ctx.invalid(
                p,
                format!(
                    "a block I/O weight is 10 to 1000, found {}",
                    ctx.number(p, n)
                ),
            ))
        }
    })
}

/// `blkio_config.device_{read,write}_{bps,iops}`: `{path, rate}` entries, the rate a size
/// (`12mb`, `1k` = 1024, as compose reads it for operations too), printed `{Path, Rate}`.
pub(super) fn throttle_devices(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    per_device(ctx, p, val, "rate", |ctx, p, v| {
        Ok(("Rate", bytes(ctx, p, v)?))
    })
}

type DeviceValue = fn(&Ctx<'_>, &str, &Value) -> R<(&'static str, Json)>;

/// A list of `{path, <key>}` mappings, both required.
fn per_device(ctx: &Ctx<'_>, p: &str, val: &Value, key: &str, value: DeviceValue) -> R<Json> {
    let items = sequence(ctx, p, val, &format!("{{path, {key}}}"))?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let (mut path, mut v) = (None, None);
        for (k, x) in entries(ctx, &ip, item)? {
            let kp = join(&ip, &k);
            match k.as_str() {
                "path" => path = Some(string(ctx, &kp, x)?),
                k if k == key => v = Some(value(ctx, &kp, x)?),
                _ => {
                    return Err(ctx.invalid(
                        &kp,
                        format!("unknown key (a device entry has `path` and `{key}`)"),
                    ));
                }
            }
        }
        let (Some(path), Some((name, v))) = (path, v) else {
            return Err(ctx.invalid(&ip, format!("a device entry needs `path` and `{key}`")));
        };
        out.push(json!({"Path": path, name: v}));
    }
    Ok(Json::Array(out))
}

/// `post_start` / `pre_stop`: lifecycle hooks, commands run in the container after it starts
/// or before it stops. Each needs a command; an empty `user` or `working_dir`, a false
/// `privileged` and an empty `environment` are left out, as compose prints them.
pub(super) fn hooks(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let items = sequence(ctx, p, val, "hooks ([{command: [...]}])")?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ip = format!("{p}[{i}]");
        let mut hook = walk(ctx, &ip, item, HOOK)?;
        if hook
            .get("command")
            .and_then(Json::as_array)
            .is_none_or(Vec::is_empty)
        {
            return Err(ctx.invalid(
                &ip,
                "a hook needs a command (command: [\"/app/warm-up\"] or a string)",
            ));
        }
        hook.retain(|k, v| match (k.as_str(), &*v) {
            ("user" | "working_dir", Json::String(s)) => !s.is_empty(),
            ("privileged", Json::Bool(b)) => *b,
            ("environment", Json::Object(m)) => !m.is_empty(),
            _ => true,
        });
        out.push(Json::Object(hook));
    }
    Ok(Json::Array(out))
}

/// `gpus`: `all`, or a list of device requests (see [`device_request`]).
pub(super) fn gpus(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    match val {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| device_request(ctx, &format!("{p}[{i}]"), item, false))
            .collect::<R<Vec<_>>>()
            .map(Json::Array),
        Value::String(s) if s == "all" => Ok(json!([{"count": -1}])),
        other => Err(ctx.invalid(
            p,
            format!(
                "expected `all` or a list of device requests ({{count: 1, capabilities: [gpu]}}), found {}",
                describe(ctx, p, other)
            ),
        )),
    }
}

/// `deploy.resources.reservations.devices`: a list of device requests, each with its
/// `capabilities` (compose requires them here).
pub(super) fn reserved_devices(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let items = sequence(ctx, p, val, "device requests")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| device_request(ctx, &format!("{p}[{i}]"), item, true))
        .collect::<R<Vec<_>>>()
        .map(Json::Array)
}

/// `deploy.resources.limits.devices`: refused, with where device requests belong.
pub(super) fn limit_devices(ctx: &Ctx<'_>, p: &str, _val: &Value) -> R<Json> {
    Err(ctx.invalid(
        p,
        "devices are reserved, not limited: move them to deploy.resources.reservations.devices",
    ))
}

/// One device request, in compose's normal form: `count` and `device_ids` are exclusive; with
/// neither, `count` is -1 (all devices); an explicit `count: 0` and empty lists are left out.
fn device_request(ctx: &Ctx<'_>, p: &str, item: &Value, needs_capabilities: bool) -> R<Json> {
    let mut m = walk(ctx, p, item, DEVICE_REQUEST)?;
    if needs_capabilities && !m.contains_key("capabilities") {
        return Err(ctx.invalid(
            p,
            "a device request needs `capabilities` (for a GPU: capabilities: [gpu])",
        ));
    }
    for key in ["capabilities", "device_ids"] {
        if m.get(key)
            .and_then(Json::as_array)
            .is_some_and(Vec::is_empty)
        {
            m.remove(key);
        }
    }
    if m.get("options")
        .and_then(Json::as_object)
        .is_some_and(Map::is_empty)
    {
        m.remove("options");
    }
    match (m.contains_key("count"), m.contains_key("device_ids")) {
        (true, true) => {
            return Err(ctx.invalid(
                p,
                "`count` and `device_ids` are exclusive: ask for a number of devices or name them",
            ));
        }
        (false, false) => {
            m.insert("count".into(), json!(-1));
        }
        _ => {}
    }
    if m.get("count").and_then(Json::as_i64) == Some(0) {
        m.remove("count");
    }
    Ok(Json::Object(m))
}

/// A list, else an error saying a list of `what` was expected.
fn sequence<'v>(ctx: &Ctx<'_>, p: &str, val: &'v Value, what: &str) -> R<&'v [Value]> {
    match val {
        Value::Sequence(items) => Ok(items),
        other => Err(ctx.invalid(
            p,
            format!("expected a list of {what}, found {}", type_name(other)),
        )),
    }
}

/// A scalar read at `p`, quoted (as written when interpolation made it: [`Ctx::quote`]);
/// anything else by its type.
fn describe(ctx: &Ctx<'_>, p: &str, v: &Value) -> String {
    scalar_string(v).map_or_else(|| type_name(v).to_owned(), |s| ctx.quote(p, &s))
}

/// A device request's `count`: a number, or `all` (-1).
pub(super) fn device_count(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<Json> {
    let bad = || {
        ctx.invalid(
            p,
            format!(
                "invalid count {}: `all` or a whole number",
                describe(ctx, p, val)
            ),
        )
    };
    match val {
        Value::Number(n) => n.as_i64().map(Json::from).ok_or_else(bad),
        Value::String(s) if s == "all" => Ok(json!(-1)),
        Value::String(s) => s.trim().parse::<i64>().map(Json::from).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

/// `build`: a context (local ones made absolute) and a Dockerfile, other keys as written.
pub(super) fn build(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let context = |s: String| {
        if is_remote_context(&s) {
            s
        } else {
            ctx.abs_path(&s)
        }
    };
    let mut out = Map::new();
    match v {
        Value::String(s) => {
            out.insert("context".into(), json!(context(s.clone())));
        }
        Value::Mapping(_) => {
            for (k, val) in entries(ctx, path, v)? {
                let p = join(path, &k);
                let j = match k.as_str() {
                    "context" => json!(context(string(ctx, &p, val)?)),
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
