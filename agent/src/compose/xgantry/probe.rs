//! `x-gantry.health`: Gantry's own probe, read into [`Probe`].
//!
//! Design: the mapping is walked by hand like the rest of `x-gantry`, each error naming its
//! key; the helpers that read values are the parent module's. Besides each value's own check,
//! in a compose file being loaded (not in a recorded release: [`Source`]), a key the chosen
//! probe kind would ignore (`port`, `status`, `body` or `json` with `tcp`;
//! `port` with an `http://` URL) is refused, as are an `interval` or `timeout` of 0 and an
//! `http` target no request can carry as written (whitespace or a control character in it, a
//! URL's port 0).

use std::time::Duration;

use serde_json::Value;

use super::{
    BodyCheck, COUNT, JsonCheck, Probe, Source, Target, XGantryError, count, duration, integer,
    mapping, shown,
};

/// `health: {http: /healthz, port: 8080}` or `health: {tcp: 5432}`, with the probe's timing.
/// With `source` [`Source::Recorded`], without the checks on keys the probe kind ignores,
/// zero intervals and timeouts, and `http` targets no request can carry.
pub(super) fn probe(key: &str, value: &Value, source: Source) -> Result<Probe, XGantryError> {
    let strict = source == Source::File;
    let mut http = None;
    let mut port = None;
    let mut status = None;
    let mut tcp = None;
    let mut body = BodyCheck::default();
    let mut probe = Probe {
        target: Target::Tcp { port: 0 },
        passes: 3,
        failures: 3,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        start_period: Duration::ZERO,
        deadline: None,
        startup: None,
    };
    for (k, v) in mapping(key, value)? {
        let path = format!("{key}.{k}");
        match k.as_str() {
            "http" => {
                http = Some(
                    v.as_str()
                        .ok_or_else(|| XGantryError::new(&path, "must be a /path or a URL"))?,
                );
            }
            "port" => port = Some(port_number(&path, v)?),
            "tcp" => tcp = Some(port_number(&path, v)?),
            "status" => status = Some(status_range(&path, v)?),
            // 0 passes reads as 1, as it always has.
            "passes" => probe.passes = integer::<u32>(&path, v, |_| true, COUNT)?.max(1),
            "failures" => probe.failures = count(&path, v)?,
            "body" => {
                body.contains = Some(
                    v.as_str()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            XGantryError::new(
                                &path,
                                format!("{} is not a non-empty string", shown(v)),
                            )
                        })?
                        .to_owned(),
                );
            }
            "json" => body.json = Some(json_check(&path, v)?),
            "startup" => probe.startup = Some(startup(&path, v)?),
            "interval" => probe.interval = positive(&path, v, strict)?,
            "timeout" => probe.timeout = positive(&path, v, strict)?,
            "start_period" => probe.start_period = duration(&path, v)?,
            "deadline" => probe.deadline = Some(duration(&path, v)?),
            _ => {
                return Err(XGantryError::new(
                    &path,
                    "unknown key (health has http, port, status, body, json, tcp, passes, \
                     failures, interval, timeout, start_period, deadline, startup)",
                ));
            }
        }
    }
    probe.target = match (http, tcp) {
        (Some(_), Some(_)) => return Err(XGantryError::new(key, "set http or tcp, not both")),
        (Some(url), None) => {
            http_target(key, url, port, (status.unwrap_or((200, 399)), body), strict)?
        }
        (None, Some(tcp)) => {
            // What only an HTTP probe reads is refused, not ignored (a body check always was).
            let body_check = "checks an HTTP body: set http, not tcp";
            let ignored = [
                (
                    "port",
                    strict && port.is_some(),
                    "has no effect with tcp (the probe connects to the tcp port): remove it",
                ),
                (
                    "status",
                    strict && status.is_some(),
                    "has no effect with tcp (it checks an HTTP status): set http, not tcp",
                ),
                ("body", body.contains.is_some(), body_check),
                ("json", body.json.is_some(), body_check),
            ];
            if let Some((which, _, why)) = ignored.iter().find(|(_, set, _)| *set) {
                return Err(XGantryError::new(&format!("{key}.{which}"), *why));
            }
            Target::Tcp { port: tcp }
        }
        (None, None) => {
            return Err(XGantryError::new(
                key,
                "needs http (a /path with port, or a URL) or tcp",
            ));
        }
    };
    Ok(probe)
}

/// `startup: {deadline: 2m}`.
fn startup(key: &str, v: &Value) -> Result<Duration, XGantryError> {
    let mut deadline = None;
    for (k, v) in mapping(key, v)? {
        let path = format!("{key}.{k}");
        match k.as_str() {
            "deadline" => deadline = Some(duration(&path, v)?),
            _ => {
                return Err(XGantryError::new(
                    &path,
                    "unknown key (startup has deadline)",
                ));
            }
        }
    }
    deadline.ok_or_else(|| {
        XGantryError::new(
            &format!("{key}.deadline"),
            "missing (write startup: {deadline: 2m})",
        )
    })
}

/// `json: {pointer: /status, equals: ok}`.
fn json_check(key: &str, v: &Value) -> Result<JsonCheck, XGantryError> {
    let (mut pointer, mut equals) = (None, None);
    for (k, v) in mapping(key, v)? {
        let path = format!("{key}.{k}");
        match k.as_str() {
            "pointer" => {
                let p = v.as_str().ok_or_else(|| {
                    XGantryError::new(&path, format!("{} is not a string", shown(v)))
                })?;
                if !(p.is_empty() || p.starts_with('/')) {
                    return Err(XGantryError::new(
                        &path,
                        "not a JSON pointer: it starts with / (RFC 6901: /status, /data/0/ok)",
                    ));
                }
                pointer = Some(p.to_owned());
            }
            "equals" => match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => equals = Some(v.clone()),
                other => {
                    return Err(XGantryError::new(
                        &path,
                        format!("{} is not a string, number or bool", shown(other)),
                    ));
                }
            },
            _ => {
                return Err(XGantryError::new(
                    &path,
                    "unknown key (json has pointer and equals)",
                ));
            }
        }
    }
    let pointer = pointer.ok_or_else(|| {
        XGantryError::new(&format!("{key}.pointer"), "missing (e.g. pointer: /status)")
    })?;
    let equals = equals.ok_or_else(|| {
        XGantryError::new(
            &format!("{key}.equals"),
            "missing (the value expected at the pointer: a string, number or bool)",
        )
    })?;
    Ok(JsonCheck { pointer, equals })
}

fn port_number(key: &str, v: &Value) -> Result<u16, XGantryError> {
    integer(
        key,
        v,
        |n: &u16| *n > 0,
        ("a port number", "a number from 1 to 65535"),
    )
}

fn status_range(key: &str, v: &Value) -> Result<(u16, u16), XGantryError> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(XGantryError::new(
                key,
                format!("{} is not a range", shown(other)),
            ));
        }
    };
    let (lo, hi) = s.split_once('-').unwrap_or((&s, &s));
    match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
        (Ok(lo), Ok(hi)) if lo <= hi => Ok((lo, hi)),
        _ => Err(XGantryError::new(
            key,
            format!("{} is not a range like 200-399", shown(v)),
        )),
    }
}

/// An interval or timeout: a duration, of more than 0 when `strict`.
fn positive(key: &str, v: &Value, strict: bool) -> Result<Duration, XGantryError> {
    let d = duration(key, v)?;
    if strict && d.is_zero() {
        return Err(XGantryError::new(
            key,
            "must be more than 0 (write a duration like 1s or 500ms)",
        ));
    }
    Ok(d)
}

/// The target of `health` (at `key`) with `http: url`: a URL, whose port `port` must not
/// repeat, or a /path on the container's `port`. Errors name `http` (or `port`) and never
/// quote `url`, which a variable may have given. Not `strict`: whitespace and control
/// characters, a `port` beside a URL (unused) and a URL's port 0 pass, as they once did.
fn http_target(
    key: &str,
    url: &str,
    port: Option<u16>,
    (status, body): ((u16, u16), BodyCheck),
    strict: bool,
) -> Result<Target, XGantryError> {
    let http = format!("{key}.http");
    if strict && url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(XGantryError::new(
            &http,
            "holds whitespace or a control character, which an HTTP request line cannot carry \
             (write a space in a path as %20)",
        ));
    }
    if let Some(rest) = url.strip_prefix("http://") {
        if strict && port.is_some() {
            return Err(XGantryError::new(
                &format!("{key}.port"),
                "has no effect with an http:// URL (the probe connects to the URL's port): \
                 remove it, or write http as a /path",
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        // An IPv6 literal keeps its brackets (`[::1]:8080`): its colons are not the port's.
        let split = match authority.strip_prefix('[') {
            Some(v6) => v6.find(']').map(|end| authority.split_at(end + 2)),
            None => Some(match authority.rfind(':') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            }),
        };
        let Some((host, port)) = split else {
            return Err(XGantryError::new(
                &http,
                "the URL's [IPv6 address] has no closing bracket",
            ));
        };
        if strict && host.is_empty() {
            return Err(XGantryError::new(
                &http,
                "the URL has no host (write http://HOST[:PORT]/path, or a /path with `port`)",
            ));
        }
        let port = match port.strip_prefix(':') {
            None if port.is_empty() => Some(80),
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0 || !strict),
            None => None,
        }
        .ok_or_else(|| {
            XGantryError::new(
                &http,
                "the URL's port is not a port number (write one from 1 to 65535)",
            )
        })?;
        let host = host.to_owned();
        Ok(Target::Http {
            host: Some(host),
            port,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_owned()
            },
            status,
            body,
        })
    } else if url.starts_with('/') {
        let port = port.ok_or_else(|| {
            XGantryError::new(key, "http with a /path needs `port` (the container port)")
        })?;
        Ok(Target::Http {
            host: None,
            port,
            path: url.to_owned(),
            status,
            body,
        })
    } else {
        Err(XGantryError::new(
            &http,
            "http is neither a /path nor an http:// URL: write /path (with port) or \
             http://host:port/path",
        ))
    }
}
