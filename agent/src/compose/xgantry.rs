//! `x-gantry`: Gantry's own settings on a service, parsed once, when the files load.
//!
//! What: [`XGantry`] is the typed form of a service's `x-gantry` mapping: `health` (Gantry's
//! own readiness probe), `min_ready`, `job` and `edge` (see docs/deploy.md, docs/edge.md). [`XGantry::parse`] reads
//! the raw JSON the loader kept aside (and that a release records); deploy reads only the
//! typed form.
//!
//! Design: the mapping is walked by hand, so every error names the key it is about
//! (`x-gantry.health.status`) and the loader can add the file and the service. A malformed
//! value is an error, never a default; an unknown key is an error naming it. Durations are a
//! number of seconds or a duration string (`10s`, `1m30s`).
//!
//! Limits: the daemon's per-stack settings (`reconcile`, `watch_compose_files`) live in
//! `gantry.yaml` under `stacks:`, not here; `x-gantry.reconcile` and `x-gantry.watch_compose`
//! are refused with that hint.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::ComposeError;

/// A service's `x-gantry`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XGantry {
    /// Gantry's own readiness probe.
    pub health: Option<Probe>,
    /// With no healthcheck and no probe: how long a new container must keep running.
    pub min_ready: Option<Duration>,
    /// The service is a one-shot job (`job: pre-deploy`, `job: true` or `job: {timeout: 10m}`).
    pub job: Option<Job>,
    /// `edge: false`: Docker publishes the service's ports, not Gantry's edge switch.
    pub edge: Option<bool>,
    /// A weighted canary through the edge switch.
    pub canary: Option<Canary>,
}

/// `x-gantry.canary`: the new version gets these shares of new connections, step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canary {
    /// Percentages of new connections, strictly increasing, ending at 100.
    pub steps: Vec<u8>,
    /// How long each step (but the last) is watched before the next.
    pub pause: Duration,
    /// Probe failures of the new version within a step that abort the canary.
    pub probe_failures: u32,
    /// Restarts (or exits) of the new version that abort the canary.
    pub restarts: u32,
}

/// `x-gantry.job`: the service runs to completion before the services that need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    /// How long it may run (default: the deploy's job timeout, 10 min).
    pub timeout: Option<Duration>,
}

/// Where a probe connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// HTTP GET; `host: None` means the container's own address.
    Http {
        host: Option<String>,
        port: u16,
        path: String,
        status: (u16, u16),
    },
    Tcp {
        port: u16,
    },
}

/// `x-gantry.health`: Gantry's own probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    /// Consecutive passes needed (default 3).
    pub passes: u32,
    /// Between attempts (default 1 s).
    pub interval: Duration,
    /// Per attempt (default 2 s).
    pub timeout: Duration,
    /// No probing before (default 0).
    pub start_period: Duration,
    /// The whole wait (default: the deploy's `--ready-timeout`).
    pub deadline: Option<Duration>,
}

/// A malformed `x-gantry`: the key (`x-gantry.health.port`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct XGantryError {
    pub key: String,
    pub message: String,
}

impl XGantryError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// The loader's error: the file, `services.<service>.<key>` and the message (exit 65).
    pub fn in_service(self, file: &Path, service: &str) -> ComposeError {
        ComposeError::invalid(
            file,
            format!("services.{service}.{}", self.key),
            self.message,
        )
    }
}

impl XGantry {
    /// Reads a service's raw `x-gantry` (`None` or `null`: nothing set).
    pub fn parse(raw: Option<&Value>) -> Result<Self, XGantryError> {
        let mut out = Self::default();
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            return Ok(out);
        };
        for (key, value) in mapping("x-gantry", raw)? {
            let path = format!("x-gantry.{key}");
            match key.as_str() {
                "health" => out.health = Some(probe(&path, value)?),
                "min_ready" => out.min_ready = Some(duration(&path, value)?),
                "job" => out.job = job(&path, value)?,
                "canary" => out.canary = Some(canary(&path, value)?),
                "edge" => {
                    out.edge = Some(value.as_bool().ok_or_else(|| {
                        XGantryError::new(
                            &path,
                            format!(
                                "{value} is not true or false (false: Docker publishes the ports)"
                            ),
                        )
                    })?);
                }
                "reconcile" | "watch_compose" => {
                    return Err(XGantryError::new(
                        &path,
                        "not a service setting: set the stack's `reconcile` / \
                         `watch_compose_files` under `stacks:` in gantry.yaml",
                    ));
                }
                _ => {
                    return Err(XGantryError::new(
                        &path,
                        "unknown key (x-gantry has health, min_ready, job, edge and canary)",
                    ));
                }
            }
        }
        Ok(out)
    }
}

fn mapping<'a>(
    key: &str,
    value: &'a Value,
) -> Result<&'a serde_json::Map<String, Value>, XGantryError> {
    value
        .as_object()
        .ok_or_else(|| XGantryError::new(key, format!("must be a mapping, not {value}")))
}

fn job(key: &str, value: &Value) -> Result<Option<Job>, XGantryError> {
    match value {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(Job::default())),
        Value::String(s) if s == "pre-deploy" => Ok(Some(Job::default())),
        Value::Object(m) => {
            let mut job = Job::default();
            for (k, v) in m {
                let path = format!("{key}.{k}");
                match k.as_str() {
                    "timeout" => job.timeout = Some(duration(&path, v)?),
                    _ => return Err(XGantryError::new(&path, "unknown key (job has timeout)")),
                }
            }
            Ok(Some(job))
        }
        other => Err(XGantryError::new(
            key,
            format!("{other} is not a job setting (write pre-deploy, or {{timeout: 10m}})"),
        )),
    }
}

fn probe(key: &str, value: &Value) -> Result<Probe, XGantryError> {
    let mut http = None;
    let mut port = None;
    let mut status = (200, 399);
    let mut tcp = None;
    let mut probe = Probe {
        target: Target::Tcp { port: 0 },
        passes: 3,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        start_period: Duration::ZERO,
        deadline: None,
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
            "passes" => {
                probe.passes = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| XGantryError::new(&path, format!("{v} is not a count")))?
                    .max(1);
            }
            "interval" => probe.interval = duration(&path, v)?,
            "timeout" => probe.timeout = duration(&path, v)?,
            "start_period" => probe.start_period = duration(&path, v)?,
            "deadline" => probe.deadline = Some(duration(&path, v)?),
            _ => {
                return Err(XGantryError::new(
                    &path,
                    "unknown key (health has http, port, status, tcp, passes, interval, \
                     timeout, start_period, deadline)",
                ));
            }
        }
    }
    probe.target = match (http, tcp) {
        (Some(_), Some(_)) => return Err(XGantryError::new(key, "set http or tcp, not both")),
        (Some(url), None) => {
            http_target(url, port, status).map_err(|m| XGantryError::new(key, m))?
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

fn canary(key: &str, value: &Value) -> Result<Canary, XGantryError> {
    let mut out = Canary {
        steps: Vec::new(),
        pause: Duration::from_secs(60),
        probe_failures: 3,
        restarts: 1,
    };
    let count = |path: &str, v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| XGantryError::new(path, format!("{v} is not a count of 1 or more")))
    };
    let mut steps = None;
    for (k, v) in mapping(key, value)? {
        let path = format!("{key}.{k}");
        match k.as_str() {
            "steps" => {
                let list = v.as_array().ok_or_else(|| {
                    XGantryError::new(&path, format!("{v} is not a list like [10, 50, 100]"))
                })?;
                let mut parsed = Vec::new();
                for item in list {
                    let n = item
                        .as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .filter(|n| (1..=100).contains(n))
                        .ok_or_else(|| {
                            XGantryError::new(
                                &path,
                                format!("{item} is not a percentage from 1 to 100"),
                            )
                        })?;
                    if parsed.last().is_some_and(|last| *last >= n) {
                        return Err(XGantryError::new(
                            &path,
                            format!("{v} must increase step by step (like [10, 50, 100])"),
                        ));
                    }
                    parsed.push(n);
                }
                if parsed.last() != Some(&100) {
                    return Err(XGantryError::new(
                        &path,
                        format!("{v} must end at 100 (the new version takes every connection)"),
                    ));
                }
                steps = Some(parsed);
            }
            "pause" => out.pause = duration(&path, v)?,
            "abort" => {
                for (ak, av) in mapping(&path, v)? {
                    let apath = format!("{path}.{ak}");
                    match ak.as_str() {
                        "probe_failures" => out.probe_failures = count(&apath, av)?,
                        "restarts" => out.restarts = count(&apath, av)?,
                        _ => {
                            return Err(XGantryError::new(
                                &apath,
                                "unknown key (abort has probe_failures and restarts)",
                            ));
                        }
                    }
                }
            }
            _ => {
                return Err(XGantryError::new(
                    &path,
                    "unknown key (canary has steps, pause and abort)",
                ));
            }
        }
    }
    out.steps = steps.ok_or_else(|| XGantryError::new(key, "needs steps, like [10, 50, 100]"))?;
    Ok(out)
}

fn port_number(key: &str, v: &Value) -> Result<u16, XGantryError> {
    v.as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| XGantryError::new(key, format!("{v} is not a port number")))
}

fn status_range(key: &str, v: &Value) -> Result<(u16, u16), XGantryError> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(XGantryError::new(key, format!("{other} is not a range"))),
    };
    let (lo, hi) = s.split_once('-').unwrap_or((&s, &s));
    match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
        (Ok(lo), Ok(hi)) if lo <= hi => Ok((lo, hi)),
        _ => Err(XGantryError::new(
            key,
            format!("{s:?} is not a range like 200-399"),
        )),
    }
}

/// A number of seconds or a duration string.
fn duration(key: &str, v: &Value) -> Result<Duration, XGantryError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| XGantryError::new(key, format!("{n} is not a duration"))),
        Value::String(s) => {
            gantry_common::duration::parse(s).map_err(|e| XGantryError::new(key, e.to_string()))
        }
        other => Err(XGantryError::new(
            key,
            format!("{other} is not a duration (write 10s, 1m30s)"),
        )),
    }
}

fn http_target(url: &str, port: Option<u16>, status: (u16, u16)) -> Result<Target, String> {
    if let Some(rest) = url.strip_prefix("http://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse::<u16>()
                    .map_err(|_| format!("bad port in {url:?}"))?,
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
        })
    } else if url.starts_with('/') {
        let port = port.ok_or_else(|| format!("http {url:?} needs `port` (the container port)"))?;
        Ok(Target::Http {
            host: None,
            port,
            path: url.to_owned(),
            status,
        })
    } else {
        Err(format!(
            "http {url:?}: write /path (with port) or http://host:port/path"
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<XGantry, XGantryError> {
        XGantry::parse(Some(&v))
    }

    #[test]
    fn every_documented_key_is_read() {
        let x = parse(json!({
            "health": {"http": "/healthz", "port": 8080, "status": "200-299", "passes": 2,
                       "interval": "500ms", "timeout": 3, "start_period": "1s", "deadline": "2m"},
            "min_ready": "5s",
            "job": {"timeout": "10m"},
        }))
        .unwrap();
        assert_eq!(
            x.health,
            Some(Probe {
                target: Target::Http {
                    host: None,
                    port: 8080,
                    path: "/healthz".into(),
                    status: (200, 299)
                },
                passes: 2,
                interval: Duration::from_millis(500),
                timeout: Duration::from_secs(3),
                start_period: Duration::from_secs(1),
                deadline: Some(Duration::from_secs(120)),
            })
        );
        assert_eq!(x.min_ready, Some(Duration::from_secs(5)));
        assert_eq!(
            x.job,
            Some(Job {
                timeout: Some(Duration::from_secs(600))
            })
        );
        assert_eq!(
            parse(json!({"job": "pre-deploy"})).unwrap().job,
            Some(Job::default())
        );
        assert_eq!(parse(json!({"job": false})).unwrap().job, None);
        assert_eq!(XGantry::parse(None).unwrap(), XGantry::default());
        let tcp = parse(json!({"health": {"tcp": 5432}}))
            .unwrap()
            .health
            .unwrap();
        assert_eq!(tcp.target, Target::Tcp { port: 5432 });
        assert_eq!((tcp.passes, tcp.deadline), (3, None));
    }

    #[test]
    fn canary_and_edge_are_read_and_checked() {
        let x = parse(json!({
            "edge": false,
            "canary": {"steps": [10, 50, 100], "pause": "5m",
                       "abort": {"probe_failures": 3, "restarts": 1}},
        }))
        .unwrap();
        assert_eq!(x.edge, Some(false));
        assert_eq!(
            x.canary,
            Some(Canary {
                steps: vec![10, 50, 100],
                pause: Duration::from_secs(300),
                probe_failures: 3,
                restarts: 1
            })
        );
        let bad = [
            (
                json!({"canary": {"steps": [50, 10, 100]}}),
                "x-gantry.canary.steps",
                "increase",
            ),
            (
                json!({"canary": {"steps": [10, 10, 100]}}),
                "x-gantry.canary.steps",
                "increase",
            ),
            (
                json!({"canary": {"steps": [10, 50]}}),
                "x-gantry.canary.steps",
                "end at 100",
            ),
            (
                json!({"canary": {"steps": [0, 100]}}),
                "x-gantry.canary.steps",
                "percentage",
            ),
            (
                json!({"canary": {"steps": [10, 101]}}),
                "x-gantry.canary.steps",
                "percentage",
            ),
            (
                json!({"canary": {"pause": "1m"}}),
                "x-gantry.canary",
                "needs steps",
            ),
            (
                json!({"canary": {"steps": [100], "stpes": 1}}),
                "x-gantry.canary.stpes",
                "unknown",
            ),
            (
                json!({"canary": {"steps": [100], "abort": {"probe_failure": 1}}}),
                "x-gantry.canary.abort.probe_failure",
                "unknown",
            ),
            (json!({"edge": "no"}), "x-gantry.edge", "true or false"),
        ];
        for (input, key, what) in bad {
            let e = parse(input.clone()).unwrap_err();
            assert_eq!(e.key, key, "{input}");
            assert!(e.message.contains(what), "{input}: {}", e.message);
        }
    }

    #[test]
    fn malformed_values_name_their_key() {
        let cases = [
            (json!({"job": {"timeout": "soon"}}), "x-gantry.job.timeout"),
            (json!({"job": "migrate"}), "x-gantry.job"),
            (json!({"job": {"timout": "1m"}}), "x-gantry.job.timout"),
            (json!({"min_ready": true}), "x-gantry.min_ready"),
            (json!({"min_ready": -1}), "x-gantry.min_ready"),
            (json!({"helth": {}}), "x-gantry.helth"),
            (json!({"health": {"http": "/healthz"}}), "x-gantry.health"),
            (
                json!({"health": {"tcp": 80, "status": "500-200"}}),
                "x-gantry.health.status",
            ),
            (json!({"health": {"tcp": 70000}}), "x-gantry.health.tcp"),
            (
                json!({"health": {"tcp": 80, "http": "/"}}),
                "x-gantry.health",
            ),
            (
                json!({"health": {"tcp": 80, "interval": "often"}}),
                "x-gantry.health.interval",
            ),
            (json!({"reconcile": false}), "x-gantry.reconcile"),
            (json!({"watch_compose": true}), "x-gantry.watch_compose"),
            (json!("yes"), "x-gantry"),
        ];
        for (value, key) in cases {
            let e = parse(value.clone()).unwrap_err();
            assert_eq!(e.key, key, "{value}: {e}");
        }
        let e = parse(json!({"reconcile": false})).unwrap_err();
        assert!(e.message.contains("gantry.yaml"), "{e}");
        let e = parse(json!({"health": {"http": "/healthz"}})).unwrap_err();
        assert!(e.message.contains("port"), "{e}");
    }

    #[test]
    fn loader_error_names_file_service_and_key() {
        let e = parse(json!({"job": {"timeout": "soon"}}))
            .unwrap_err()
            .in_service(Path::new("/srv/compose.yaml"), "migrate");
        let text = e.to_string();
        assert!(
            text.contains("/srv/compose.yaml")
                && text.contains("services.migrate.x-gantry.job.timeout")
                && text.contains("soon"),
            "{text}"
        );
    }
}
