//! `x-gantry.health`: Gantry's own probe, read into [`Probe`].
//!
//! Design: the mapping is walked by hand like the rest of `x-gantry`, each error naming its
//! key; the helpers that read values are the parent module's.

use std::time::Duration;

use serde_json::Value;

use super::{
    BodyCheck, COUNT, JsonCheck, Probe, Target, XGantryError, count, duration, integer, mapping,
    shown,
};

/// `health: {http: /healthz, port: 8080}` or `health: {tcp: 5432}`, with the probe's timing.
pub(super) fn probe(key: &str, value: &Value) -> Result<Probe, XGantryError> {
    let mut http = None;
    let mut port = None;
    let mut status = (200, 399);
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
            "status" => status = status_range(&path, v)?,
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
            "interval" => probe.interval = duration(&path, v)?,
            "timeout" => probe.timeout = duration(&path, v)?,
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
            http_target(url, port, status, body).map_err(|m| XGantryError::new(key, m))?
        }
        (None, Some(_)) if body.is_set() => {
            let which = if body.contains.is_some() {
                "body"
            } else {
                "json"
            };
            return Err(XGantryError::new(
                &format!("{key}.{which}"),
                "checks an HTTP body: set http, not tcp",
            ));
        }
        (None, Some(port)) => Target::Tcp { port },
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

fn http_target(
    url: &str,
    port: Option<u16>,
    status: (u16, u16),
    body: BodyCheck,
) -> Result<Target, String> {
    if let Some(rest) = url.strip_prefix("http://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| "the URL's port is not a port number".to_owned())?,
            ),
            None => (authority.to_owned(), 80),
        };
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
        let port =
            port.ok_or_else(|| "http with a /path needs `port` (the container port)".to_owned())?;
        Ok(Target::Http {
            host: None,
            port,
            path: url.to_owned(),
            status,
            body,
        })
    } else {
        Err(
            "http is neither a /path nor an http:// URL: write /path (with port) or \
             http://host:port/path"
                .to_owned(),
        )
    }
}
