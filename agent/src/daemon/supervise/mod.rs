//! Supervision: Docker's event stream for Gantry-managed containers, autoheal with a budget,
//! probes that keep running after the deploy, drift reconcile against the last good release,
//! and env-file watching ([`watch`]).
//!
//! What: a container labelled `io.gantry.hash` of a stack this daemon's ledger knows is
//! - restarted when it turns unhealthy, or when its service's `x-gantry.health` probe fails
//!   `failures` times in a row ([`liveness`]), after an exponential backoff, at most
//!   `heal.max_restarts` times per `heal.window` ([`heal`], decisions in [`decide`]); then
//!   Gantry gives up loudly (error log, `gantry_heal_giveups_total`, `status`) until the
//!   container is healthy (or passing) again or replaced;
//! - followed for readiness by the same probe: each change is logged and reported to a
//!   [`ReadinessSink`] (no-op by default);
//! - followed behind the edge switch: a start or death of a container carrying
//!   `io.gantry.edge`, and each resync's view of its stack, go to a [`RouteSink`] (no-op by
//!   default), which re-syncs the stack's routes when its addresses moved ([`routes`]);
//! - reported crash-looping after `heal.crash_loop_deaths` deaths within the window (Docker's
//!   restart policy restarts crashed containers; Gantry does not fight it);
//! - brought back when removed or stopped by hand, if the stack's policy says reconcile: the
//!   stack is compared with its last good release ([`drift`]: the plan of the recorded model
//!   and image ids; env-file changes are not drift, they are the watcher's) and,
//!   on drift, that release is re-applied as a job through the Deployer, which creates what is
//!   missing and starts what is stopped.
//!
//! Design: events only trigger work; decisions are always taken against the current state
//! (inspect, list), so a missed or duplicated event costs nothing: after a broken stream or a
//! dockerd restart the loop reconnects with backoff and resynchronises every stack. A stack with
//! a job running or queued (or whose ledger lock a live `--local` process holds) is left alone.
//! Adoption: at start the daemon only resynchronises; a stack that matches its release is not
//! touched, so restarting the daemon restarts no container.
//!
//! Heal counters and budgets are saved in `<state-dir>/heal.json` ([`saved`]), so restarting the
//! daemon gives no container a fresh budget, with the containers a heal stopped and has not
//! started again (the next resync starts them, whatever the policy: [`heal`]). A restart holds
//! the stack against deploys. Status compares ids (a container a deploy replaced starts
//! afresh), a crash loop ends once its deaths left the window, and each resync forgets the
//! containers gone. A reconcile records no release.
//!
//! Limits: a service with neither a healthcheck nor an `x-gantry.health` probe is only
//! supervised for deaths and drift.

pub mod decide;
mod drift;
mod heal;
pub mod liveness;
pub mod routes;
pub mod saved;
#[cfg(test)]
mod tests;
pub mod watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use crate::daemon::DaemonConfig;
use crate::daemon::jobs::{Job, JobKind, Jobs, Origin};
use crate::daemon::metrics::Metrics;
use crate::deploy::DeployRequest;
use crate::engine::{
    ContainerInfo, Engine, Event, EventAction, EventFilter, HealthStatus, ObjectType, labels,
};
use crate::ledger::{Ledger, Release};

pub use decide::{Budget, backoff};
pub use drift::drift;
pub use heal::Cause;
pub use liveness::{NoReadiness, ReadinessSink};
pub use routes::{NoRoutes, RouteSink};

/// How long a `--local` or reconcile job may wait for its stack.
const JOB_WAIT: Duration = Duration::from_secs(600);
/// Reconnect backoff ceiling for the event stream.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How long events about a container the supervisor itself restarted are ignored.
const OURS_FOR: Duration = Duration::from_secs(30);

/// What supervision knows about one container (by name: a heal keeps the name and the id;
/// another id under the name is another container, with a fresh track).
#[derive(Debug, Clone)]
pub struct Track {
    pub stack: String,
    pub service: String,
    pub id: String,
    budget: Budget,
    deaths: Budget,
    pub restarts: u64,
    pub gave_up: bool,
    pub crash_looping: bool,
    healing: bool,
    /// A heal stopped it and has not started it again yet (saved: see [`heal`]).
    stopped_by_heal: bool,
}

impl Track {
    /// Whether it is crash-looping at `now`: a loop ends once its deaths left the window.
    fn looping(&mut self, now: Instant) -> bool {
        if self.crash_looping && self.deaths.remaining(now) == self.deaths.max {
            self.crash_looping = false;
        }
        self.crash_looping
    }
}

/// A container's supervision state as `status` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HealStatus {
    pub restarts: u64,
    pub gave_up: bool,
    pub crash_looping: bool,
}

#[derive(Debug, Default)]
struct State {
    tracks: HashMap<String, Track>,
    ours: HashMap<String, Instant>,
    checking: HashSet<String>,
    reconciling: HashSet<String>,
    reconciles: HashMap<String, Budget>,
    managed: HashSet<String>,
    connected: bool,
    /// Per stack: heals restart one container at a time.
    heal_turns: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// The supervisor. Cheap to share.
pub struct Supervisor {
    pub config: Arc<DaemonConfig>,
    pub engine: Arc<dyn Engine>,
    pub ledger: Ledger,
    pub jobs: Arc<Jobs>,
    pub metrics: Arc<Metrics>,
    state: Mutex<State>,
    heal_path: std::path::PathBuf,
    /// Held from a save's snapshot to its write: two saves never write in the other order
    /// (an older snapshot over a newer one would lose a heal's "stopped" mark).
    saving: Mutex<()>,
    readiness: Mutex<Arc<dyn ReadinessSink>>,
    routes: Mutex<Arc<dyn RouteSink>>,
    /// Restarts under way ([`Supervisor::restarting`]).
    restarting: AtomicUsize,
    /// The daemon stops: no restart begins ([`Supervisor::close`]).
    closing: AtomicBool,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    pub fn new(
        config: Arc<DaemonConfig>,
        engine: Arc<dyn Engine>,
        ledger: Ledger,
        jobs: Arc<Jobs>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let heal_path = saved::path(&config.state_dir);
        let this = Self {
            config,
            engine,
            ledger,
            jobs,
            metrics,
            state: Mutex::default(),
            heal_path,
            saving: Mutex::new(()),
            readiness: Mutex::new(Arc::new(NoReadiness)),
            routes: Mutex::new(Arc::new(NoRoutes)),
            restarting: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        };
        this.restore();
        Arc::new(this)
    }

    /// Loads the heal state a previous run saved.
    fn restore(&self) {
        let saved = match saved::load(&self.heal_path) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "heal state not restored; budgets start fresh");
                return;
            }
        };
        let h = self.config.heal;
        let (now, wall) = (Instant::now(), saved::wall_now_ms());
        let mut s = self.state();
        for (name, t) in saved.containers {
            s.tracks.insert(
                name,
                Track {
                    budget: Budget::from_wall(h.max_restarts, h.window, &t.restarts_at, now, wall),
                    deaths: Budget::from_wall(
                        h.crash_loop_deaths,
                        h.window,
                        &t.deaths_at,
                        now,
                        wall,
                    ),
                    stack: t.stack,
                    service: t.service,
                    id: t.id,
                    restarts: t.restarts,
                    gave_up: t.gave_up,
                    crash_looping: t.crash_looping,
                    healing: false,
                    stopped_by_heal: t.stopped_by_heal,
                },
            );
        }
        for (stack, uses) in saved.reconciles {
            let budget = Budget::from_wall(h.max_restarts, h.window, &uses, now, wall);
            s.reconciles.insert(stack, budget);
        }
    }

    /// Saves the heal state (after each change to it).
    fn save(&self) {
        let _saving = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let (now, wall) = (Instant::now(), saved::wall_now_ms());
        let snapshot = {
            let mut s = self.state();
            let containers = s
                .tracks
                .iter_mut()
                .map(|(name, t)| {
                    let track = saved::SavedTrack {
                        stack: t.stack.clone(),
                        service: t.service.clone(),
                        id: t.id.clone(),
                        restarts: t.restarts,
                        gave_up: t.gave_up,
                        crash_looping: t.crash_looping,
                        restarts_at: t.budget.wall_times(now, wall),
                        deaths_at: t.deaths.wall_times(now, wall),
                        stopped_by_heal: t.stopped_by_heal,
                    };
                    (name.clone(), track)
                })
                .collect();
            let reconciles = s
                .reconciles
                .iter_mut()
                .map(|(stack, b)| (stack.clone(), b.wall_times(now, wall)))
                .collect();
            saved::Saved {
                containers,
                reconciles,
            }
        };
        if let Err(e) = saved::store(&self.heal_path, &snapshot) {
            tracing::warn!(path = %self.heal_path.display(), error = %e, "cannot save the heal state");
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The heal state of the container named `name` whose id is `id` (another container
    /// under that name, one a deploy replaced, has none).
    pub fn heal_status(&self, name: &str, id: &str) -> HealStatus {
        let now = Instant::now();
        self.state()
            .tracks
            .get_mut(name)
            .filter(|t| t.id == id)
            .map(|t| HealStatus {
                restarts: t.restarts,
                gave_up: t.gave_up,
                crash_looping: t.looping(now),
            })
            .unwrap_or_default()
    }

    /// Forgets the tracks of `stack`'s containers gone from `containers` or replaced (another
    /// id under the name), at each resync.
    fn prune(&self, stack: &str, containers: &[ContainerInfo]) {
        let pruned = {
            let mut s = self.state();
            let before = s.tracks.len();
            s.tracks.retain(|name, t| {
                t.stack != stack
                    || t.healing
                    || containers.iter().any(|c| c.name == *name && c.id == t.id)
            });
            before != s.tracks.len()
        };
        if pruned {
            self.save();
        }
    }

    /// One line for systemd's STATUS=.
    pub fn status_line(&self) -> String {
        let now = Instant::now();
        let mut s = self.state();
        let gave_up = s.tracks.values().filter(|t| t.gave_up).count();
        let looping = s
            .tracks
            .values_mut()
            .map(|t| t.looping(now))
            .filter(|l| *l)
            .count();
        format!(
            "supervising {} stack(s); docker {}; {} container(s) given up, {} crash-looping",
            s.managed.len(),
            if s.connected {
                "connected"
            } else {
                "DISCONNECTED"
            },
            gave_up,
            looping
        )
    }

    /// Whether a job, queued or running, or a live `--local` deploy holds `stack`, or a
    /// canary is recorded in progress on it (its resumption owns the stack).
    pub fn paused(&self, stack: &str) -> bool {
        if self.jobs.busy(stack) {
            return true;
        }
        let ledger = self.ledger.stack(stack).ok();
        if ledger.as_ref().is_some_and(|s| s.canary().is_some()) {
            return true;
        }
        // The daemon's own edge sync holds the lock for milliseconds, a heal for a restart: no
        // deploy.
        ledger
            .and_then(|s| s.live_holder())
            .is_some_and(|h| !routes::is_edge_sync(&h) && !heal::is_heal(&h))
    }

    fn last_good(&self, stack: &str) -> Option<Release> {
        // A release that runs but could not be recorded is the last good one: supervision
        // must not return to the one before it.
        if let Some(r) = self.jobs.deployer().unrecorded(stack) {
            return Some(r);
        }
        self.ledger.stack(stack).ok()?.last_good().ok().flatten()
    }

    /// Re-reads which stacks have a good release (the ones supervised).
    pub fn refresh_managed(&self) -> Vec<String> {
        let stacks: Vec<String> = self
            .ledger
            .stacks()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| self.last_good(s).is_some())
            .collect();
        self.state().managed = stacks.iter().cloned().collect();
        stacks
    }

    /// The events loop: connect, resync, follow; on a break reconnect with backoff.
    pub async fn run(self: Arc<Self>) {
        let filter = EventFilter {
            types: vec![ObjectType::Container],
            labels: vec![labels::GANTRY_HASH.to_owned()],
            actions: ["health_status", "die", "stop", "destroy", "start"]
                .map(str::to_owned)
                .to_vec(),
            ..EventFilter::default()
        };
        let mut delay = Duration::from_millis(500);
        let mut finished = self.jobs.finished();
        loop {
            if let Err(e) = self.engine.ping().await {
                self.set_connected(false);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "docker is unreachable; supervision waits");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RECONNECT_MAX);
                continue;
            }
            // From now on: the request goes out at the first poll, after the resync, and an
            // event in between (a container dying while its stack is read) must not be lost.
            let since = EventFilter {
                since: Some(std::time::SystemTime::now()),
                ..filter.clone()
            };
            let mut events = self.engine.events(&since);
            self.set_connected(true);
            self.clone().resync_all().await;
            let connected_at = Instant::now();
            let mut tick = tokio::time::interval(self.config.resync_interval);
            tick.tick().await;
            let reason = loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(Ok(e)) => self.clone().on_event(e),
                        Some(Err(e)) => break e.to_string(),
                        None => break "the event stream ended".to_owned(),
                    },
                    _ = tick.tick() => self.clone().resync_all().await,
                    _ = finished.changed() => { self.refresh_managed(); }
                }
            };
            self.set_connected(false);
            self.metrics
                .inc("gantry_event_stream_reconnects_total", &[]);
            if connected_at.elapsed() > Duration::from_secs(60) {
                delay = Duration::from_millis(500);
            }
            tracing::warn!(reason = %reason, retry_in_ms = delay.as_millis() as u64, "docker event stream broke; reconnecting and resynchronising");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_MAX);
        }
    }

    fn set_connected(&self, up: bool) {
        self.state().connected = up;
        self.metrics
            .docker_connected
            .store(up, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compares every managed stack with its last good release.
    pub async fn resync_all(self: Arc<Self>) {
        for stack in self.refresh_managed() {
            self.clone().check_stack(&stack).await;
        }
    }

    fn on_event(self: Arc<Self>, e: Event) {
        if e.object_type != ObjectType::Container || e.label(labels::ONEOFF) == Some("True") {
            return;
        }
        let (Some(stack), Some(service), Some(name)) = (
            e.label(labels::PROJECT).map(str::to_owned),
            e.label(labels::SERVICE).map(str::to_owned),
            e.name().map(str::to_owned),
        ) else {
            return;
        };
        if !self.state().managed.contains(&stack) {
            return;
        }
        // Its address may have changed, whoever stopped or started it (a heal too).
        if matches!(e.action, EventAction::Start | EventAction::Die)
            && e.label(crate::edge::LABEL).is_some()
        {
            self.route_sink().container_moved(&stack, &service, &name);
        }
        let ours = {
            let mut s = self.state();
            let now = Instant::now();
            s.ours.retain(|_, t| now.duration_since(*t) < OURS_FOR);
            s.ours.contains_key(&e.id)
        };
        tracing::debug!(stack = %stack, service = %service, container = %name, action = ?e.action, "docker event");
        let policy = self.config.policy(&stack);
        match e.action {
            EventAction::HealthStatus(HealthStatus::Unhealthy)
                if policy.heal && !self.paused(&stack) =>
            {
                tokio::spawn(self.heal(e.id.clone(), name, stack, service, Cause::Unhealthy));
            }
            EventAction::HealthStatus(HealthStatus::Healthy) => {
                self.resume(&name, &stack, &service);
            }
            EventAction::Die if !ours && !self.paused(&stack) => {
                self.record_death(&e.id, &name, &stack, &service, e.exit_code());
            }
            EventAction::Stop | EventAction::Destroy if !ours && policy.reconcile => {
                tokio::spawn(self.clone().check_later(stack));
            }
            _ => {}
        }
    }

    fn track<'a>(
        &self,
        s: &'a mut State,
        name: &str,
        id: &str,
        stack: &str,
        service: &str,
    ) -> &'a mut Track {
        let h = &self.config.heal;
        let t = s.tracks.entry(name.to_owned()).or_insert_with(|| Track {
            stack: stack.to_owned(),
            service: service.to_owned(),
            id: id.to_owned(),
            budget: Budget::new(h.max_restarts, h.window),
            deaths: Budget::new(h.crash_loop_deaths, h.window),
            restarts: 0,
            gave_up: false,
            crash_looping: false,
            healing: false,
            stopped_by_heal: false,
        });
        if t.id != id {
            // Replaced by a deploy: a new container, a fresh budget.
            t.id = id.to_owned();
            t.budget = Budget::new(h.max_restarts, h.window);
            t.deaths = Budget::new(h.crash_loop_deaths, h.window);
            t.restarts = 0;
            t.gave_up = false;
            t.crash_looping = false;
            t.stopped_by_heal = false;
        }
        t
    }

    fn record_death(&self, id: &str, name: &str, stack: &str, service: &str, code: Option<i64>) {
        let mut s = self.state();
        let t = self.track(&mut s, name, id, stack, service);
        let now = Instant::now();
        let was_looping = t.looping(now);
        let newly_looping = t.deaths.take(now).is_none() && !was_looping;
        if newly_looping {
            t.crash_looping = true;
        }
        drop(s);
        self.save();
        if newly_looping {
            self.metrics.inc(
                "gantry_crash_loops_total",
                &[("stack", stack), ("service", service)],
            );
            tracing::error!(
                stack = %stack,
                service = %service,
                container = %name,
                exit_code = code.unwrap_or(-1),
                deaths = self.config.heal.crash_loop_deaths,
                window = %humantime::format_duration(self.config.heal.window),
                "container is crash-looping"
            );
        }
    }

    /// A check of `stack` after the debounce; several requests in a row make one check.
    pub async fn check_later(self: Arc<Self>, stack: String) {
        if !self.state().checking.insert(stack.clone()) {
            return;
        }
        tokio::time::sleep(self.config.debounce).await;
        self.state().checking.remove(&stack);
        self.check_stack(&stack).await;
    }

    /// Heals unhealthy containers and reconciles drift of one stack.
    pub async fn check_stack(self: Arc<Self>, stack: &str) {
        if self.paused(stack) {
            return;
        }
        self.jobs.retry_unrecorded(stack).await;
        let Some(release) = self.last_good(stack) else {
            return;
        };
        let containers = match self.engine.list_containers(stack, true).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(stack = %stack, error = %e, "cannot list the stack's containers");
                return;
            }
        };
        // What a heal stopped and did not start again; what is gone.
        let Some(containers) = self.start_healed(stack, containers).await else {
            return;
        };
        self.prune(stack, &containers);
        self.route_sink().stack_listed(stack, &containers);
        let managed: Vec<&ContainerInfo> = containers
            .iter()
            .filter(|c| !c.oneoff && c.label(labels::GANTRY_HASH).is_some())
            .collect();
        let mut by_state: BTreeMap<&'static str, f64> = BTreeMap::new();
        for c in &managed {
            *by_state.entry(c.state.status.as_str()).or_default() += 1.0;
        }
        let gauges: Vec<(&'static str, String, f64)> = by_state
            .into_iter()
            .map(|(k, v)| ("state", k.to_owned(), v))
            .collect();
        self.metrics
            .set_gauges("gantry_containers", ("stack", stack), &gauges);
        let policy = self.config.policy(stack);
        if policy.heal {
            for c in &managed {
                if c.state.running && c.state.health == Some(HealthStatus::Unhealthy) {
                    let service = c.service.clone().unwrap_or_default();
                    tokio::spawn(self.clone().heal(
                        c.id.clone(),
                        c.name.clone(),
                        stack.to_owned(),
                        service,
                        Cause::Unhealthy,
                    ));
                }
            }
        }
        if !policy.reconcile {
            return;
        }
        let drift = match drift(&release, &containers) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(stack = %stack, release = %release.id(), error = %e, "cannot compare the stack with its release");
                return;
            }
        };
        if drift.is_empty() {
            return;
        }
        let newest = self
            .ledger
            .stack(stack)
            .ok()
            .and_then(|s| s.newest().ok().flatten());
        if let Some(stopped) = newest.filter(Release::stopped_where_it_failed) {
            // `failure_action: pause` / `continue` left the stack where it failed, on purpose:
            // it stays so until the next deploy or rollback (healing still applies).
            tracing::debug!(stack = %stack, release = %stopped.id(), "drift left as the stopped rollout left it");
            return;
        }
        self.reconcile(stack, &release, drift);
    }

    fn reconcile(self: &Arc<Self>, stack: &str, release: &Release, drift: Vec<String>) {
        {
            let mut s = self.state();
            if s.reconciling.contains(stack) {
                return;
            }
            let h = self.config.heal;
            let budget = s
                .reconciles
                .entry(stack.to_owned())
                .or_insert_with(|| Budget::new(h.max_restarts, h.window));
            if budget.take(Instant::now()).is_none() {
                tracing::error!(stack = %stack, drift = ?drift, "the stack keeps drifting from its release and the reconcile budget is spent; giving up until the window passes");
                return;
            }
            s.reconciling.insert(stack.to_owned());
        }
        self.save();
        tracing::warn!(stack = %stack, release = %release.id(), drift = ?drift, "stack drifted from its last good release; re-applying it");
        let mut req = DeployRequest::new(stack, crate::compose::LoadOptions::default());
        req.lock_wait = JOB_WAIT;
        let job = Job {
            kind: JobKind::Reconcile(req),
            origin: Origin::Reconcile,
        };
        let (_, handle) = self.jobs.submit(job, None);
        let this = self.clone();
        let stack = stack.to_owned();
        tokio::spawn(async move {
            let report = handle.await;
            this.state().reconciling.remove(&stack);
            match report {
                Ok(r) if r.exit_code() == crate::ExitCode::Ok => {
                    tracing::info!(stack = %stack, release = ?r.release, "reconciled")
                }
                Ok(r) => {
                    tracing::error!(stack = %stack, outcome = %r.outcome, error = r.error.as_deref().unwrap_or(""), "reconcile failed")
                }
                Err(e) => tracing::error!(stack = %stack, error = %e, "reconcile job panicked"),
            }
        });
    }
}
