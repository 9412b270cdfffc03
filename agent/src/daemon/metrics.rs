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
//! them a few times a minute, so contention is not a concern. The text is written with
//! `gantry_common::metrics_text`; the listener is `gantry_common::http`'s responder (shared with
//! the sidecar): `GET /metrics` and `GET /healthz`, one request per connection, HTTP/1.0.
//!
//! Limits: no histograms buckets, only sums and counts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry_common::http::{self, Response};
use gantry_common::metrics_text::Exposition;

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
        let mut out = Exposition::new();
        let counters = self.counters.lock().map(|m| m.clone()).unwrap_or_default();
        let gauges = self.gauges.lock().map(|m| m.clone()).unwrap_or_default();
        let connected = if self.docker_connected.load(Ordering::Relaxed) {
            1.0
        } else {
            0.0
        };
        for (name, kind, help) in HELP {
            out.family(name, kind, help);
            match *name {
                "gantry_up" => {
                    out.sample(name, &[], 1.0);
                }
                "gantry_docker_connected" => {
                    out.sample(name, &[], connected);
                }
                _ => {}
            }
            let series = counters
                .iter()
                .chain(gauges.iter())
                .filter(|((n, _), _)| n == name);
            for ((_, labels), v) in series {
                let pairs: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if *kind == "summary" {
                    let count = counters
                        .get(&(name_count(name), labels.clone()))
                        .copied()
                        .unwrap_or(0.0);
                    out.sample(&format!("{name}_sum"), &pairs, *v);
                    out.sample(&format!("{name}_count"), &pairs, count);
                } else {
                    out.sample(name, &pairs, *v);
                }
            }
        }
        out.finish()
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

/// Serves `GET /metrics` and `GET /healthz` on `listener` until the task is dropped
/// (`gantry_common::http`, the sidecar's health listener uses it too).
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let handler: http::Handler = Arc::new(move |_, path| match path {
        "/metrics" => Response::metrics(metrics.render()),
        "/healthz" => Response::text(200, "ok\n"),
        _ => Response::text(404, "not found: try /metrics\n"),
    });
    http::serve(listener, handler, std::future::pending()).await;
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
