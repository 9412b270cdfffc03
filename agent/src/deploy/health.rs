//! Readiness: when a new container counts as ready, and the rollout strategy of a service.
//!
//! One rule per service, chosen in this order and shown by `gantry plan`:
//! 1. `x-gantry.health` with `http` or `tcp`: Gantry's own probe from the host, `passes`
//!    consecutive successes (default 3) every `interval`, after `start_period`, within
//!    `deadline`.
//! 2. A Docker healthcheck: `healthy`, with the last `passes` checks (default 1) passing.
//! 3. Neither: running for `x-gantry.min_ready` without restarting or exiting. With no
//!    `min_ready` set (by the service or the stack), Gantry's own 2 s: per container for a
//!    replacement, but the containers a deploy creates where none ran are watched together
//!    (`ready.rs`, [`super::ready::Together`]).
//!
//! The probe's settings are validated when the files load (`compose::xgantry`); here they are
//! only applied.
//!
//! HTTP probes speak plain HTTP/1.0 (no TLS) to the container's address on its first network,
//! or to a full `http://` URL as given; the status must be in range and, when set, the body
//! must pass its checks ([`super::probe`]: a failure carries the body's first 200 bytes).
//!
//! Strategy: `deploy.update_config.order` when set; otherwise start-first (the new container
//! ready before the old one leaves), unless the service publishes a fixed host port, sets
//! `container_name`, uses host networking, sets a fixed address (`ipv4_address`,
//! `ipv6_address`, `mac_address`: two containers cannot hold it), or mounts a named volume
//! read-write (two containers would share its data): then stop-first, and the plan says why.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::compose::{MountKind, Service, UpdateOrder};

pub use crate::compose::xgantry::{Probe, Target};

/// When a new container counts as ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Probe(Probe),
    Docker {
        passes: u32,
    },
    /// Running this long without an exit or a restart. `built_in`: nothing set it (Gantry's
    /// [`DEFAULT_MIN_READY`]), so containers created where none ran share one window.
    MinReady {
        min: Duration,
        built_in: bool,
    },
}

/// `min_ready` when neither the service nor the stack sets one.
pub const DEFAULT_MIN_READY: Duration = Duration::from_secs(2);

impl Rule {
    /// One line for `gantry plan`.
    pub fn describe(&self) -> String {
        match self {
            Rule::Probe(p) => {
                let what = match &p.target {
                    Target::Http {
                        host,
                        port,
                        path,
                        body,
                        ..
                    } => format!(
                        "http {}:{port}{path}{}",
                        host.as_deref().unwrap_or("<container>"),
                        if body.is_set() {
                            " with a body check"
                        } else {
                            ""
                        }
                    ),
                    Target::Tcp { port } => format!("tcp <container>:{port}"),
                };
                format!("probe {what}, {} passes", p.passes)
            }
            Rule::Docker { passes } => format!("docker healthcheck, {passes} pass(es)"),
            Rule::MinReady { min, built_in } => format!(
                "running {} without restart{}",
                humantime::format_duration(*min),
                if *built_in {
                    " (Gantry's default: new containers count from the deploy's first start)"
                } else {
                    ""
                }
            ),
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

/// The readiness rule of a service (its `x-gantry` was validated when the files loaded).
pub fn rule(service: &Service) -> Rule {
    if let Some(probe) = &service.gantry.health {
        return Rule::Probe(probe.clone());
    }
    if service
        .healthcheck
        .as_ref()
        .is_some_and(|h| !h.is_disabled())
    {
        return Rule::Docker { passes: 1 };
    }
    match service.gantry.min_ready {
        Some(min) => Rule::MinReady {
            min,
            built_in: false,
        },
        None => Rule::MinReady {
            min: DEFAULT_MIN_READY,
            built_in: true,
        },
    }
}

/// The rollout strategy of a service and the reason for it. `edge`: published ports go
/// through the edge switch when they can ([`crate::edge::switched_ports`]); those do not force
/// stop-first.
pub fn strategy(service: &Service, edge: bool) -> (Strategy, String) {
    if let Some(order) = service.update_config().and_then(|u| u.order) {
        let s = match order {
            UpdateOrder::StartFirst => Strategy::StartFirst,
            UpdateOrder::StopFirst => Strategy::StopFirst,
        };
        return (s, "deploy.update_config.order".into());
    }
    // A port is the switch's by its address too: `[::1]:8080:80` beside `127.0.0.1:8080:80`
    // stays Docker's, and forces stop-first.
    let switching = edge && !crate::edge::switched_ports(service).is_empty();
    if let Some(p) = service.ports.iter().find(|p| {
        p.published.as_deref().is_some_and(|s| !s.is_empty())
            && !(switching && crate::edge::switched_port(p).is_some())
    }) {
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
    // Two containers cannot hold one address: Docker refuses the second IP, and a second MAC
    // on the same bridge confuses it without a word.
    let fixed = service
        .mac_address
        .as_ref()
        .map(|_| "mac_address".to_owned());
    if let Some(key) = fixed.or_else(|| {
        service.networks.iter().find_map(|(name, n)| {
            let n = n.as_ref()?;
            [
                ("ipv4_address", n.ipv4_address.is_some()),
                ("ipv6_address", n.ipv6_address.is_some()),
                ("mac_address", n.mac_address.is_some()),
            ]
            .into_iter()
            .find(|(_, set)| *set)
            .map(|(key, _)| format!("networks.{name}.{key}"))
        })
    }) {
        return (Strategy::StopFirst, format!("sets a fixed address ({key})"));
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
                body,
            } => {
                let host = match host {
                    Some(h) => h.clone(),
                    None => container_ip
                        .ok_or("the container has no address")?
                        .to_owned(),
                };
                // `[::1]` is the URL's and the Host header's form; the socket takes `::1`.
                let addr = host.trim_start_matches('[').trim_end_matches(']');
                let mut stream = TcpStream::connect((addr, *port))
                    .await
                    .map_err(|e| format!("http {host}:{port}{path}: {e}"))?;
                let request = format!(
                    "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: gantry-probe\r\nConnection: close\r\n\r\n"
                );
                stream
                    .write_all(request.as_bytes())
                    .await
                    .map_err(|e| format!("http {host}:{port}{path}: {e}"))?;
                let answer = super::probe::read_answer(&mut stream, body.is_set())
                    .await
                    .map_err(|e| format!("http {host}:{port}{path}: {e}"))?;
                let code = answer.code;
                if !(status.0..=status.1).contains(&code) {
                    let mut reason = format!("http {host}:{port}{path}: status {code}");
                    if body.is_set() {
                        reason = format!("{reason}; {}", super::probe::excerpt(&answer.body));
                    }
                    return Err(reason);
                }
                super::probe::check_body(&answer.body, body)
                    .map_err(|e| format!("http {host}:{port}{path}: status {code}, {e}"))
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
    use tokio::io::AsyncReadExt;

    use super::*;

    fn svc(yaml: &str) -> Service {
        let mut s: Service = serde_yaml::from_str(yaml).unwrap();
        s.name = "api".into();
        s
    }

    fn with_x(mut s: Service, x: serde_json::Value) -> Service {
        s.gantry = crate::compose::xgantry::XGantry::parse(Some(&x)).unwrap();
        s
    }

    #[test]
    fn rules_follow_the_documented_order() {
        let s = with_x(
            svc("image: x\nhealthcheck:\n  test: [\"CMD\", \"true\"]\n"),
            serde_json::json!({"health": {"http": "/healthz", "port": 8080}}),
        );
        match rule(&s) {
            Rule::Probe(p) => {
                assert_eq!(p.passes, 3);
                assert_eq!(
                    p.target,
                    Target::Http {
                        host: None,
                        port: 8080,
                        path: "/healthz".into(),
                        status: (200, 399),
                        body: Default::default(),
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let s = with_x(
            svc("image: x\nhealthcheck:\n  test: [\"CMD\", \"true\"]\n"),
            serde_json::json!({"min_ready": "5s"}),
        );
        assert_eq!(rule(&s), Rule::Docker { passes: 1 });
        let s = with_x(svc("image: x\n"), serde_json::json!({"min_ready": "5s"}));
        assert_eq!(
            rule(&s),
            Rule::MinReady {
                min: Duration::from_secs(5),
                built_in: false
            }
        );
        // Set to Gantry's own default by hand: a promise per container, not the built-in.
        let s = with_x(svc("image: x\n"), serde_json::json!({"min_ready": "2s"}));
        assert_eq!(
            rule(&s),
            Rule::MinReady {
                min: DEFAULT_MIN_READY,
                built_in: false
            }
        );
        assert_eq!(
            rule(&svc("image: x\n")),
            Rule::MinReady {
                min: DEFAULT_MIN_READY,
                built_in: true
            }
        );
    }

    #[test]
    fn strategy_defaults_to_start_first_and_says_why_not() {
        let s = svc("image: x\n");
        assert_eq!(strategy(&s, false).0, Strategy::StartFirst);
        let mut s = svc("image: x\n");
        s.ports = vec![serde_json::from_value(serde_json::json!({"mode":"ingress","target":80,"published":"8080","protocol":"tcp"})).unwrap()];
        let (st, why) = strategy(&s, false);
        assert_eq!(st, Strategy::StopFirst);
        assert!(why.contains("8080"), "{why}");
        let mut s = svc("image: x\n");
        s.container_name = Some("db".into());
        assert_eq!(strategy(&s, false).0, Strategy::StopFirst);
        let s = svc("image: x\nnetworks: {back: {ipv4_address: 172.30.0.5}}\n");
        assert_eq!(
            strategy(&s, false),
            (
                Strategy::StopFirst,
                "sets a fixed address (networks.back.ipv4_address)".into()
            )
        );
        let s = svc("image: x\nmac_address: 02:42:ac:11:00:99\n");
        assert_eq!(
            strategy(&s, false),
            (
                Strategy::StopFirst,
                "sets a fixed address (mac_address)".into()
            )
        );
        // Asked for explicitly, start-first stays (and Docker says if it cannot).
        let s = svc(
            "image: x\nmac_address: 02:42:ac:11:00:99\ndeploy: {update_config: {order: start-first}}\n",
        );
        assert_eq!(strategy(&s, false).0, Strategy::StartFirst);

        // Through the switch a fixed IPv4 port does not force stop-first; the same port on
        // IPv6 beside it is Docker's, and does.
        let v4 =
            "{mode: ingress, protocol: tcp, target: 80, published: '8080', host_ip: 127.0.0.1}";
        let v6 = "{mode: ingress, protocol: tcp, target: 80, published: '8080', host_ip: '::1'}";
        let s = svc(&format!("image: x\nports: [{v4}]\n"));
        assert_eq!(strategy(&s, true).0, Strategy::StartFirst);
        assert_eq!(strategy(&s, false).0, Strategy::StopFirst);
        let s = svc(&format!("image: x\nports: [{v4}, {v6}]\n"));
        assert_eq!(
            strategy(&s, true),
            (Strategy::StopFirst, "publishes fixed host port 8080".into())
        );
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
            body: Default::default(),
        };
        probe_once(&target, None, Duration::from_secs(2))
            .await
            .unwrap();
        let err = probe_once(&target, None, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
    }

    #[tokio::test]
    async fn http_probe_with_a_json_check_fails_on_200_degraded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for body in [r#"{"status":"ok"}"#, r#"{"status":"degraded"}"#] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let answer =
                    format!("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{body}");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let x = crate::compose::xgantry::XGantry::parse(Some(&serde_json::json!({"health": {
            "http": format!("http://127.0.0.1:{port}/api/v1/health"),
            "json": {"pointer": "/status", "equals": "ok"}}})))
        .unwrap();
        let target = x.health.unwrap().target;
        probe_once(&target, None, Duration::from_secs(2))
            .await
            .unwrap();
        let err = probe_once(&target, None, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            err.contains("status 200") && err.contains(r#"body: {"status":"degraded"}"#),
            "{err}"
        );
    }
}
