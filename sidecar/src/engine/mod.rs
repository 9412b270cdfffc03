//! The refresh engine: first fetch of every source, then one watcher task per source.
//!
//! Design:
//! - [`first_fetch`] reads every source at once and fails closed: unless every source
//!   answered, the caller gets a [`FirstFetchError`] naming each failing source and why.
//! - [`spawn_watchers`] moves each source into its own task that sleeps until
//!   `min(source.next_refresh(), refresh)`, calls `refresh`, and sends a [`Change`] only when
//!   the values really differ from the last good ones. On an error it keeps the last good
//!   values, retries with exponential backoff and full jitter (1 s doubling, capped at the
//!   refresh interval and 60 s), re-reading with `fetch` until the source answers again.
//! - [`Debouncer`] gathers changes into one action after a quiet period and rate limits them.
//! - [`Status`] is the shared view used by `/readyz`, `/metrics` and `STATUS=` lines: stale
//!   sources, outputs whose last write failed, and outputs whose on_change action is owed
//!   make it not ready.
//!
//! All timing goes through `tokio::time`, so tests run with a paused clock; shutdown is a
//! `CancellationToken` the caller owns.

mod build;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use gantry_common::metrics_text::Exposition;

use crate::source::{Snapshot, Source, SourceError};

pub use build::{BuildError, build_sources, source_ids};

/// Longest wait for one fetch or refresh call before it counts as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// First retry delay after an error.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Not every source answered the first fetch.
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} sources failed on first fetch: {}", failures.len(), failures.iter().map(|(_, e)| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct FirstFetchError {
    /// (index in config order, error), in config order.
    pub failures: Vec<(usize, SourceError)>,
    pub total: usize,
}

impl FirstFetchError {
    /// Index (config order) of the first failing source.
    pub fn first_index(&self) -> usize {
        self.failures.first().map(|(i, _)| *i).unwrap_or(0)
    }
}

/// Reads every source concurrently. All must succeed.
pub async fn first_fetch(
    sources: &mut [Box<dyn Source>],
    status: &Status,
) -> Result<Vec<Snapshot>, FirstFetchError> {
    let total = sources.len();
    let results = futures_util::future::join_all(sources.iter_mut().map(|s| async move {
        let id = s.id().to_owned();
        let started = Instant::now();
        let r = match tokio::time::timeout(CALL_TIMEOUT, s.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(timeout_error(&id)),
        };
        (id, started.elapsed(), r)
    }))
    .await;
    let mut snapshots = Vec::with_capacity(total);
    let mut failures = Vec::new();
    for (i, (id, took, r)) in results.into_iter().enumerate() {
        match r {
            Ok(snap) => {
                tracing::info!(secret_ref = %id, keys = snap.values.len(), binary = snap.binary.is_some(), took_ms = took.as_millis() as u64, "source fetched");
                status.fetched(i, false);
                snapshots.push(snap);
            }
            Err(e) => {
                tracing::error!(secret_ref = %id, error = %e, "first fetch failed");
                status.failed(i, &e);
                failures.push((i, e));
            }
        }
    }
    if failures.is_empty() {
        Ok(snapshots)
    } else {
        Err(FirstFetchError { failures, total })
    }
}

fn timeout_error(id: &str) -> SourceError {
    SourceError {
        source_id: id.to_owned(),
        message: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
        hint: Some("check that the server is reachable from here".to_owned()),
    }
}

/// New values of one source.
#[derive(Debug)]
pub struct Change {
    pub index: usize,
    pub snapshot: Snapshot,
}

/// Whether two snapshots hold different values (versions alone do not count).
pub fn differs(a: &Snapshot, b: &Snapshot) -> bool {
    a.values != b.values || a.binary != b.binary
}

/// The delay before retry number `failures` (1-based): `base·2^(n-1)`, capped, with full
/// jitter in [cap/2, cap].
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let cap = cap.clamp(BACKOFF_BASE, BACKOFF_MAX);
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let d = exp.min(cap);
    let half = d / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// Moves each source into its own watcher task. Changes arrive on the returned channel.
pub fn spawn_watchers(
    sources: Vec<Box<dyn Source>>,
    snapshots: Vec<Snapshot>,
    refresh: Duration,
    status: Status,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(64);
    for (index, (source, last)) in sources.into_iter().zip(snapshots).enumerate() {
        tokio::spawn(watch(
            index,
            source,
            last,
            refresh,
            status.clone(),
            tx.clone(),
            shutdown.clone(),
        ));
    }
    rx
}

async fn watch(
    index: usize,
    mut source: Box<dyn Source>,
    mut last: Snapshot,
    refresh: Duration,
    status: Status,
    tx: mpsc::Sender<Change>,
    shutdown: CancellationToken,
) {
    let id = source.id().to_owned();
    let mut failures: u32 = 0;
    loop {
        let wait = if failures == 0 {
            source.next_refresh().min(refresh)
        } else {
            backoff(failures, refresh)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        let call = async {
            if failures == 0 {
                source.refresh().await
            } else {
                source.fetch().await.map(Some)
            }
        };
        let result = tokio::select! {
            r = tokio::time::timeout(CALL_TIMEOUT, call) => r.unwrap_or_else(|_| Err(timeout_error(&id))),
            () = shutdown.cancelled() => return,
        };
        match result {
            Ok(next) => {
                if failures > 0 {
                    tracing::info!(secret_ref = %id, after_failures = failures, "source reachable again");
                }
                failures = 0;
                let changed = next.filter(|n| differs(&last, n));
                status.fetched(index, changed.is_some());
                if let Some(snapshot) = changed {
                    tracing::info!(secret_ref = %id, keys = snapshot.values.len(), version = %snapshot.version, "secret changed");
                    last = snapshot.clone();
                    if tx.send(Change { index, snapshot }).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                status.failed(index, &e);
                tracing::warn!(secret_ref = %id, error = %e, attempt = failures, "refresh failed, keeping the last good values");
            }
        }
    }
}

/// Gathers changes into one action after `debounce` of quiet, at most one action per
/// `min_interval`.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce: Duration,
    min_interval: Duration,
    last_change: Option<Instant>,
    first_pending: Option<Instant>,
    last_fire: Option<Instant>,
}

impl Debouncer {
    /// Longest an action waits for quiet: changes that never stop still act this often.
    const MAX_DELAY_FACTOR: u32 = 10;

    pub fn new(debounce: Duration, min_interval: Duration) -> Self {
        Self {
            debounce,
            min_interval,
            last_change: None,
            first_pending: None,
            last_fire: None,
        }
    }

    /// Records a change at `now`.
    pub fn changed(&mut self, now: Instant) {
        self.last_change = Some(now);
        self.first_pending.get_or_insert(now);
    }

    /// Whether a change waits.
    pub fn pending(&self) -> bool {
        self.first_pending.is_some()
    }

    /// When the pending action is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        let first = self.first_pending?;
        let last = self.last_change.unwrap_or(first);
        let quiet = (last + self.debounce).min(first + self.debounce * Self::MAX_DELAY_FACTOR);
        let allowed = self.last_fire.map(|f| f + self.min_interval);
        Some(allowed.map_or(quiet, |a| a.max(quiet)))
    }

    /// Records that the action ran at `now`.
    pub fn fired(&mut self, now: Instant) {
        self.first_pending = None;
        self.last_change = None;
        self.last_fire = Some(now);
    }
}

/// Sleeps until `deadline`, or forever when there is none (for `select!`).
pub async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------- status

#[derive(Debug, Clone, Default)]
struct SourceStatus {
    id: String,
    last_success: Option<Instant>,
    last_ok: bool,
    errors_total: u64,
    changes_total: u64,
}

#[derive(Debug, Default)]
struct StatusInner {
    sources: Vec<SourceStatus>,
    started: bool,
    restarts_total: u64,
    renders_total: u64,
    render_errors_total: u64,
    action_errors_total: u64,
    child_pid: Option<i32>,
    /// Outputs whose last render or write failed: their files hold old values.
    failed_outputs: Vec<String>,
    /// Outputs whose on_change action is owed (it failed since the file was written).
    owed_actions: Vec<String>,
}

/// Shared, cheap-to-clone view of the sidecar's state (no secret in it).
#[derive(Debug, Clone, Default)]
pub struct Status {
    inner: Arc<Mutex<StatusInner>>,
    grace: Duration,
}

/// One line of readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Sources not refreshed within the grace period.
    pub stale: Vec<String>,
}

impl Status {
    /// A status for sources with these ids; a source is stale after `grace` without success.
    pub fn new(ids: &[String], grace: Duration) -> Self {
        let sources = ids
            .iter()
            .map(|id| SourceStatus {
                id: id.clone(),
                ..SourceStatus::default()
            })
            .collect();
        Self {
            inner: Arc::new(Mutex::new(StatusInner {
                sources,
                ..StatusInner::default()
            })),
            grace,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut StatusInner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    pub fn fetched(&self, index: usize, changed: bool) {
        self.with(|s| {
            if let Some(src) = s.sources.get_mut(index) {
                src.last_success = Some(Instant::now());
                src.last_ok = true;
                if changed {
                    src.changes_total += 1;
                }
            }
        });
    }

    pub fn failed(&self, index: usize, _e: &SourceError) {
        self.with(|s| {
            if let Some(src) = s.sources.get_mut(index) {
                src.last_ok = false;
                src.errors_total += 1;
            }
        });
    }

    /// The app started or the first render is done.
    pub fn set_started(&self) {
        self.with(|s| s.started = true);
    }

    pub fn restarted(&self) {
        self.with(|s| s.restarts_total += 1);
    }

    pub fn rendered(&self, ok: bool) {
        self.with(|s| {
            if ok {
                s.renders_total += 1;
            } else {
                s.render_errors_total += 1;
            }
        });
    }

    pub fn action_failed(&self) {
        self.with(|s| s.action_errors_total += 1);
    }

    /// The outputs (paths) whose last render or write failed; empty once they all succeed.
    pub fn set_failed_outputs(&self, paths: Vec<String>) {
        self.with(|s| s.failed_outputs = paths);
    }

    /// The outputs (paths) whose on_change action is owed; empty once every action succeeded.
    pub fn set_owed_actions(&self, paths: Vec<String>) {
        self.with(|s| s.owed_actions = paths);
    }

    pub fn set_child(&self, pid: Option<i32>) {
        self.with(|s| s.child_pid = pid);
    }

    /// Ready when started, every source succeeded within the grace period, no output failed
    /// its last render or write (`output:<path>` in `stale`) and no output's on_change action
    /// is owed (`action:<path>`).
    pub fn readiness(&self) -> Readiness {
        let now = Instant::now();
        self.with(|s| {
            let stale: Vec<String> = s
                .sources
                .iter()
                .filter(|src| {
                    src.last_success
                        .is_none_or(|t| now.duration_since(t) > self.grace)
                })
                .map(|src| src.id.clone())
                .chain(s.failed_outputs.iter().map(|p| format!("output:{p}")))
                .chain(s.owed_actions.iter().map(|p| format!("action:{p}")))
                .collect();
            Readiness {
                ready: s.started && stale.is_empty(),
                stale,
            }
        })
    }

    /// A one-line summary for systemd's `STATUS=`.
    pub fn summary(&self) -> String {
        let r = self.readiness();
        self.with(|s| {
            let failing = s.sources.iter().filter(|x| !x.last_ok).count();
            format!(
                "{} sources, {} failing, {} stale, {} renders, {} restarts",
                s.sources.len(),
                failing,
                r.stale.len(),
                s.renders_total,
                s.restarts_total
            )
        })
    }

    /// Prometheus text exposition.
    pub fn metrics(&self) -> String {
        let r = self.readiness();
        let now = Instant::now();
        self.with(|s| {
            let mut out = Exposition::new();
            let mut gauge = |name: &str, help: &str, kind: &str, rows: &[(Option<&str>, f64)]| {
                out.family(name, kind, help);
                for (label, v) in rows {
                    match label {
                        Some(l) => out.sample(name, &[("source", l)], *v),
                        None => out.sample(name, &[], *v),
                    };
                }
            };
            let per = |f: &dyn Fn(&SourceStatus) -> f64| -> Vec<(Option<&str>, f64)> {
                s.sources
                    .iter()
                    .map(|x| (Some(x.id.as_str()), f(x)))
                    .collect()
            };
            gauge(
                "gantry_secrets_ready",
                "1 when every source is fresh and the outputs or child are up",
                "gauge",
                &[(None, if r.ready { 1.0 } else { 0.0 })],
            );
            gauge(
                "gantry_secrets_source_up",
                "1 when the last fetch or refresh of the source succeeded",
                "gauge",
                &per(&|x| if x.last_ok { 1.0 } else { 0.0 }),
            );
            gauge(
                "gantry_secrets_source_last_success_age_seconds",
                "seconds since the last successful fetch or refresh",
                "gauge",
                &per(&|x| {
                    x.last_success
                        .map_or(-1.0, |t| now.duration_since(t).as_secs_f64())
                }),
            );
            gauge(
                "gantry_secrets_source_errors_total",
                "failed fetches and refreshes",
                "counter",
                &per(&|x| x.errors_total as f64),
            );
            gauge(
                "gantry_secrets_source_changes_total",
                "changes of values seen",
                "counter",
                &per(&|x| x.changes_total as f64),
            );
            gauge(
                "gantry_secrets_child_restarts_total",
                "restarts of the child caused by changes",
                "counter",
                &[(None, s.restarts_total as f64)],
            );
            gauge(
                "gantry_secrets_renders_total",
                "output files written",
                "counter",
                &[(None, s.renders_total as f64)],
            );
            gauge(
                "gantry_secrets_render_errors_total",
                "outputs that could not be made or written",
                "counter",
                &[(None, s.render_errors_total as f64)],
            );
            gauge(
                "gantry_secrets_action_errors_total",
                "on_change actions that failed",
                "counter",
                &[(None, s.action_errors_total as f64)],
            );
            gauge(
                "gantry_secrets_actions_owed",
                "outputs whose on_change action has not succeeded since they were written",
                "gauge",
                &[(None, s.owed_actions.len() as f64)],
            );
            out.finish()
        })
    }
}

/// `(id, snapshot)` pairs for [`crate::render::render`].
pub fn view<'a>(
    ids: &'a [String],
    snaps: &'a [Option<Snapshot>],
) -> Vec<(&'a str, Option<&'a Snapshot>)> {
    ids.iter()
        .map(String::as_str)
        .zip(snaps.iter().map(Option::as_ref))
        .collect()
}

#[cfg(test)]
mod tests;
