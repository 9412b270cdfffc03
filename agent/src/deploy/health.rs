//! Readiness: when a new container counts as ready, and the rollout strategy of a service.
//!
//! One rule per service, chosen in this order and shown by `gantry plan`:
//! 1. `x-gantry.health` with `http` or `tcp`: Gantry's own probe from the host, `passes`
//!    consecutive successes (default 3) every `interval`, after `start_period`, within
//!    `deadline`.
//! 2. A Docker healthcheck: `healthy`, with the last `passes` checks (default 1) passing.
//! 3. Neither: running for `x-gantry.min_ready` (default 2 s) without restarting or exiting.
//!
//! HTTP probes speak plain HTTP/1.0 (no TLS) to the container's address on its first network,
//! or to a full `http://` URL as given.
//!
//! Strategy: `deploy.update_config.order` when set; otherwise start-first (the new container
//! ready before the old one leaves), unless the service publishes a fixed host port, sets
//! `container_name`, or mounts a named volume read-write (two containers would share its
//! data): then stop-first, and the plan says why.

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::compose::{MountKind, Service, UpdateOrder};

use super::DeployError;

/// `x-gantry` as Gantry reads it. Unknown keys are refused, naming the service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XGantry {
    /// Gantry's own readiness probe.
    #[serde(default)]
    pub health: Option<RawHealth>,
    /// With no healthcheck and no probe: how long a new container must keep running.
    #[serde(default, with = "opt_duration")]
    pub min_ready: Option<Duration>,
    /// `pre-deploy`, or `{timeout: 10m}`: the service is a one-shot job.
    #[serde(default)]
    pub job: Option<serde_json::Value>,
    /// Daemon: bring back containers removed or stopped by hand (default true).
    #[serde(default)]
    pub reconcile: Option<bool>,
    /// Daemon: apply compose file changes when they are edited on disk (default false).
    #[serde(default)]
    pub watch_compose: Option<bool>,
}

/// `x-gantry.health` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// `/path` (with `port`) or a full `http://host:port/path` URL.
    pub http: Option<String>,
    /// Container port for a `/path` probe.
    pub port: Option<u16>,
    /// Accepted status codes, `200-399` by default.
    pub status: Option<String>,
    /// A TCP port that must accept connections.
    pub tcp: Option<u16>,
    pub passes: Option<u32>,
    #[serde(default, with = "opt_duration")]
    pub interval: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub start_period: Option<Duration>,
    #[serde(default, with = "opt_duration")]
    pub deadline: Option<Duration>,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let raw: Option<serde_json::Value> = Option::deserialize(d)?;
        match raw {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_f64()
                .map(|s| Some(Duration::from_secs_f64(s)))
                .ok_or_else(|| serde::de::Error::custom("a duration must be positive")),
            Some(serde_json::Value::String(s)) => humantime::parse_duration(&s)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration: {e}"))),
            Some(other) => Err(serde::de::Error::custom(format!(
                "{other} is not a duration (write 10s, 1m30s)"
            ))),
        }
    }
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

/// Gantry's own probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: Target,
    pub passes: u32,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub deadline: Option<Duration>,
}

/// When a new container counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Probe(Probe),
    Docker { passes: u32 },
    MinReady(Duration),
}

impl Rule {
    /// One line for `gantry plan`.
    pub fn describe(&self) -> String {
        match self {
            Rule::Probe(p) => {
                let what = match &p.target {
                    Target::Http {
                        host, port, path, ..
                    } => format!(
                        "http {}:{port}{path}",
                        host.as_deref().unwrap_or("<container>")
                    ),
                    Target::Tcp { port } => format!("tcp <container>:{port}"),
                };
                format!("probe {what}, {} passes", p.passes)
            }
            Rule::Docker { passes } => format!("docker healthcheck, {passes} pass(es)"),
            Rule::MinReady(d) => {
                format!("running {} without restart", humantime::format_duration(*d))
            }
        }
    }
}

/// The rollout order of a service, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    StartFirst,
    StopFirst,
}

/// Reads a service's `x-gantry`, refusing unknown keys.
pub fn x_gantry(service: &Service) -> Result<XGantry, DeployError> {
    match &service.x_gantry {
        None => Ok(XGantry::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| DeployError::Unsupported {
            service: service.name.clone(),
            reason: format!("x-gantry: {e}"),
        }),
    }
}

/// The readiness rule of a service.
pub fn rule(service: &Service) -> Result<Rule, DeployError> {
    let x = x_gantry(service)?;
    let bad = |reason: String| DeployError::Unsupported {
        service: service.name.clone(),
        reason: format!("x-gantry.health: {reason}"),
    };
    if let Some(h) = x.health {
        let status = match h.status.as_deref() {
            None => (200, 399),
            Some(s) => {
                let (lo, hi) = s.split_once('-').unwrap_or((s, s));
                match (lo.trim().parse::<u16>(), hi.trim().parse::<u16>()) {
                    (Ok(lo), Ok(hi)) if lo <= hi => (lo, hi),
                    _ => return Err(bad(format!("status {s:?} is not a range like 200-399"))),
                }
            }
        };
        let target = match (&h.http, h.tcp) {
            (Some(_), Some(_)) => return Err(bad("set http or tcp, not both".into())),
            (Some(url), None) => http_target(url, h.port, status).map_err(bad)?,
            (None, Some(port)) => Target::Tcp { port },
            (None, None) => {
                return Err(bad("needs http (a /path with port, or a URL) or tcp".into()));
            }
        };
        let passes = h.passes.unwrap_or(3).max(1);
        return Ok(Rule::Probe(Probe {
            target,
            passes,
            interval: h.interval.unwrap_or(Duration::from_secs(1)),
            timeout: h.timeout.unwrap_or(Duration::from_secs(2)),
            start_period: h.start_period.unwrap_or_default(),
            deadline: h.deadline,
        }));
    }
    if service
        .healthcheck
        .as_ref()
        .is_some_and(|h| !h.is_disabled())
    {
        return Ok(Rule::Docker { passes: 1 });
    }
    Ok(Rule::MinReady(
        x.min_ready.unwrap_or(Duration::from_secs(2)),
    ))
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

/// The rollout strategy of a service and the reason for it.
pub fn strategy(service: &Service) -> (Strategy, String) {
    if let Some(order) = service.update_config().and_then(|u| u.order) {
        let s = match order {
            UpdateOrder::StartFirst => Strategy::StartFirst,
            UpdateOrder::StopFirst => Strategy::StopFirst,
        };
        return (s, "deploy.update_config.order".into());
    }
    if let Some(p) = service
        .ports
        .iter()
        .find(|p| p.published.as_deref().is_some_and(|s| !s.is_empty()))
    {
        return (
            Strategy::StopFirst,
            format!(
                "publishes fixed host port {}",
                p.published.as_deref().unwrap_or_default()
            ),
        );
    }
    if service.container_name.is_some() {
        return (Strategy::StopFirst, "sets container_name".into());
    }
    if service.network_mode.as_deref() == Some("host") {
        return (Strategy::StopFirst, "uses network_mode: host".into());
    }
    if let Some(v) = service
        .volumes
        .iter()
        .find(|v| v.kind == MountKind::Volume && !v.read_only && v.source.is_some())
    {
        return (
            Strategy::StopFirst,
            format!(
                "mounts volume {} for writing",
                v.source.as_deref().unwrap_or_default()
            ),
        );
    }
    (Strategy::StartFirst, "default".into())
}

/// One probe attempt: `Ok(())` passed, `Err(reason)` failed.
pub async fn probe_once(
    target: &Target,
    container_ip: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        match target {
            Target::Tcp { port } => {
                let ip = container_ip.ok_or("the container has no address")?;
                TcpStream::connect((ip, *port))
                    .await
                    .map(drop)
                    .map_err(|e| format!("tcp {ip}:{port}: {e}"))
            }
            Target::Http {
                host,
                port,
                path,
                status,
            } => {
                let host = match host {
                    Some(h) => h.clone(),
                    None => container_ip
                        .ok_or("the container has no address")?
                        .to_owned(),
                };
                let mut stream = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| format!("http {host}:{port}{path}: {e}"))?;
                let request = format!(
                    "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: gantry-probe\r\nConnection: close\r\n\r\n"
                );
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| format!("http {host}:{port}{path}: {e}"))?;
                let mut head = Vec::with_capacity(256);
                let mut buf = [0u8; 256];
                while !head.contains(&b'\n') && head.len() < 4096 {
                    let n = stream
                        .read(&mut buf)
                        .await
                        .map_err(|e| format!("http {host}:{port}{path}: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let line = String::from_utf8_lossy(&head);
                let code = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or_else(|| {
                        format!("http {host}:{port}{path}: no HTTP status in the answer")
                    })?;
                if (status.0..=status.1).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("http {host}:{port}{path}: status {code}"))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        let mut s: Service = serde_yaml::from_str(yaml).unwrap();
        s.name = "api".into();
        s
    }

    #[test]
    fn rules_follow_the_documented_order() {
        let mut s = svc("image: x\n");
        s.x_gantry = Some(serde_json::json!({"health": {"http": "/healthz", "port": 8080}}));
        match rule(&s).unwrap() {
            Rule::Probe(p) => {
                assert_eq!(p.passes, 3);
                assert_eq!(
                    p.target,
                    Target::Http {
                        host: None,
                        port: 8080,
                        path: "/healthz".into(),
                        status: (200, 399)
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let s = svc("image: x\nhealthcheck:\n  test: [\"CMD\", \"true\"]\n");
        assert_eq!(rule(&s).unwrap(), Rule::Docker { passes: 1 });
        let mut s = svc("image: x\n");
        s.x_gantry = Some(serde_json::json!({"min_ready": "5s"}));
        assert_eq!(rule(&s).unwrap(), Rule::MinReady(Duration::from_secs(5)));
    }

    #[test]
    fn bad_health_settings_name_the_service() {
        let mut s = svc("image: x\n");
        s.x_gantry = Some(serde_json::json!({"health": {"http": "/healthz"}}));
        let e = rule(&s).unwrap_err().to_string();
        assert!(e.contains("api") && e.contains("port"), "{e}");
        s.x_gantry = Some(serde_json::json!({"helth": {}}));
        let e = rule(&s).unwrap_err().to_string();
        assert!(e.contains("helth"), "{e}");
        s.x_gantry = Some(serde_json::json!({"health": {"tcp": 80, "status": "500-200"}}));
        assert!(rule(&s).is_err());
    }

    #[test]
    fn strategy_defaults_to_start_first_and_says_why_not() {
        let s = svc("image: x\n");
        assert_eq!(strategy(&s).0, Strategy::StartFirst);
        let mut s = svc("image: x\n");
        s.ports = vec![serde_json::from_value(serde_json::json!({"mode":"ingress","target":80,"published":"8080","protocol":"tcp"})).unwrap()];
        let (st, why) = strategy(&s);
        assert_eq!(st, Strategy::StopFirst);
        assert!(why.contains("8080"), "{why}");
        let mut s = svc("image: x\n");
        s.container_name = Some("db".into());
        assert_eq!(strategy(&s).0, Strategy::StopFirst);
    }

    #[tokio::test]
    async fn http_probe_reads_the_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [200u16, 503] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.0 {code} X\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let target = Target::Http {
            host: Some("127.0.0.1".into()),
            port,
            path: "/".into(),
            status: (200, 399),
        };
        probe_once(&target, None, Duration::from_secs(2))
            .await
            .unwrap();
        let err = probe_once(&target, None, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
    }
}
