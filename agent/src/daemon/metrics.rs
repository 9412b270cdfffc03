//! Prometheus metrics in the text exposition format, hand-written, on a loopback listener.
//!
//! Names (all prefixed `gantry_`):
//! - `gantry_up` (gauge, 1) and `gantry_docker_connected` (gauge, 0/1: the event stream is up)
//! - `gantry_deploys_total{stack,kind,outcome}`: finished jobs (kind deploy, rollback,
//!   reconcile, env_redeploy) by outcome
//! - `gantry_rollout_duration_seconds_{sum,count}{stack}`: how long deploy jobs took to apply
//! - `gantry_job_duration_seconds_{sum,count}{stack}`: one-shot (migration) jobs within deploys
//! - `gantry_job_queue_wait_seconds_{sum,count}{stack}`: time jobs waited for their stack
//! - `gantry_heal_restarts_total{stack,service}`, `gantry_heal_giveups_total{stack,service}`,
//!   `gantry_crash_loops_total{stack,service}`
//! - `gantry_file_redeploys_total{stack}`: redeploys after an env-file change
//! - `gantry_event_stream_reconnects_total`
//! - `gantry_containers{stack,state}` (gauge, from the last resync)
//!
//! Design: counters live in one mutex-guarded map keyed by (name, labels): the daemon updates
//! them a few times a minute, so contention is not a concern. The listener answers `GET
//! /metrics` and `GET /healthz` and closes each connection (HTTP/1.0 style).
//!
//! Limits: no histograms buckets, only sums and counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Key = (&'static str, Vec<(&'static str, String)>);

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Key, f64>>,
    gauges: Mutex<BTreeMap<Key, f64>>,
    pub docker_connected: AtomicBool,
}

const HELP: &[(&str, &str, &str)] = &[
    ("gantry_up", "gauge", "1 while the daemon runs"),
    (
        "gantry_docker_connected",
        "gauge",
        "1 while the Docker event stream is connected",
    ),
    (
        "gantry_deploys_total",
        "counter",
        "Finished jobs by kind and outcome",
    ),
    (
        "gantry_rollout_duration_seconds",
        "summary",
        "Duration of deploy jobs",
    ),
    (
        "gantry_job_duration_seconds",
        "summary",
        "Duration of one-shot jobs (migrations) within deploys",
    ),
    (
        "gantry_job_queue_wait_seconds",
        "summary",
        "Time jobs waited for their stack",
    ),
    (
        "gantry_heal_restarts_total",
        "counter",
        "Restarts of unhealthy containers",
    ),
    (
        "gantry_heal_giveups_total",
        "counter",
        "Containers given up on after their restart budget",
    ),
    (
        "gantry_crash_loops_total",
        "counter",
        "Containers reported crash-looping",
    ),
    (
        "gantry_file_redeploys_total",
        "counter",
        "Redeploys after an env file (or opted-in compose file) changed",
    ),
    (
        "gantry_event_stream_reconnects_total",
        "counter",
        "Reconnections to the Docker event stream",
    ),
    (
        "gantry_containers",
        "gauge",
        "Managed containers by state, at the last resync",
    ),
];

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1.0);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], v: f64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        if let Ok(mut m) = self.counters.lock() {
            *m.entry(key).or_default() += v;
        }
    }

    /// Adds one observation to a `_sum`/`_count` pair.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], d: Duration) {
        self.add(name, labels, d.as_secs_f64());
    }

    /// Replaces every series of gauge `name` whose first label equals `scope`.
    pub fn set_gauges(
        &self,
        name: &'static str,
        scope: (&'static str, &str),
        values: &[(&'static str, String, f64)],
    ) {
        if let Ok(mut m) = self.gauges.lock() {
            m.retain(|(n, l), _| {
                !(*n == name
                    && l.first()
                        .is_some_and(|(k, v)| *k == scope.0 && v == scope.1))
            });
            for (k, v, x) in values {
                m.insert(
                    (name, vec![(scope.0, scope.1.to_owned()), (*k, v.clone())]),
                    *x,
                );
            }
        }
    }

    /// A counter's value (tests and status).
    pub fn get(&self, name: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        self.counters
            .lock()
            .ok()
            .and_then(|m| m.get(&key).copied())
            .unwrap_or(0.0)
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|m| m.clone()).unwrap_or_default();
        let gauges = self.gauges.lock().map(|m| m.clone()).unwrap_or_default();
        let connected = if self.docker_connected.load(Ordering::Relaxed) {
            1.0
        } else {
            0.0
        };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            match *name {
                "gantry_up" => out.push_str("gantry_up 1\n"),
                "gantry_docker_connected" => {
                    let _ = writeln!(out, "gantry_docker_connected {connected}");
                }
                _ => {}
            }
            let series = counters
                .iter()
                .chain(gauges.iter())
                .filter(|((n, _), _)| n == name);
            for ((_, labels), v) in series {
                let suffixes: &[&str] = if *kind == "summary" {
                    &["_sum", "_count"]
                } else {
                    &[""]
                };
                for s in suffixes {
                    let value = if *s == "_count" {
                        counters
                            .get(&(name_count(name), labels.clone()))
                            .copied()
                            .unwrap_or(0.0)
                    } else {
                        *v
                    };
                    let _ = writeln!(out, "{name}{s}{} {value}", fmt_labels(labels));
                }
            }
        }
        out
    }

    /// Records a summary observation (sum and count).
    pub fn summary(&self, name: &'static str, labels: &[(&'static str, &str)], d: Duration) {
        self.observe(name, labels, d);
        self.inc(name_count(name), labels);
    }
}

/// The hidden counter key holding a summary's count.
fn name_count(name: &str) -> &'static str {
    match name {
        "gantry_rollout_duration_seconds" => "gantry_rollout_duration_seconds:count",
        "gantry_job_duration_seconds" => "gantry_job_duration_seconds:count",
        "gantry_job_queue_wait_seconds" => "gantry_job_queue_wait_seconds:count",
        _ => "gantry_unknown:count",
    }
}

fn fmt_labels(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Serves `GET /metrics` and `GET /healthz` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, ctype, body) = match path {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                _ => (
                    "404 Not Found",
                    "text/plain",
                    "not found: try /metrics\n".to_owned(),
                ),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// Binds the metrics listener.
pub async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_summaries() {
        let m = Metrics::default();
        m.inc(
            "gantry_heal_restarts_total",
            &[("stack", "web"), ("service", "app")],
        );
        m.inc(
            "gantry_heal_restarts_total",
            &[("stack", "web"), ("service", "app")],
        );
        m.summary(
            "gantry_rollout_duration_seconds",
            &[("stack", "web")],
            Duration::from_millis(1500),
        );
        let text = m.render();
        assert!(text.contains("gantry_up 1\n"), "{text}");
        assert!(
            text.contains("gantry_heal_restarts_total{stack=\"web\",service=\"app\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("gantry_rollout_duration_seconds_sum{stack=\"web\"} 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("gantry_rollout_duration_seconds_count{stack=\"web\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains(":count"), "{text}");
    }
}
