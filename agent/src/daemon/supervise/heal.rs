//! Healing: restarting a container in place, after its backoff, within its restart budget.
//!
//! What: [`Supervisor::heal`] serves both reasons to restart ([`Cause`]): Docker's healthcheck
//! turned `unhealthy` (from the event stream or a resync), or the `x-gantry.health` probe
//! failed `failures` times in a row after the deploy (liveness, [`super::liveness`]). Both
//! share one budget and one backoff per container ([`super::decide::heal_decision`]); when the
//! budget is spent Gantry gives up loudly (error log, `gantry_heal_giveups_total`, `status`).
//!
//! Design: the decision is taken before the backoff, the restart after it, against the
//! container's state then: a stack a deploy holds, a container that stopped, one healthy again
//! (Docker's reason) or passing its probe again (probed once more) is left alone, and the
//! budget is not spent. Events about the restart are marked as ours, so they count as no death.
//! - Excluded from deploys: the restart (inspect, probe, stop, start) holds the stack's turn
//!   between the daemon's jobs ([`crate::daemon::jobs::Jobs::between_jobs`]: a deploy or
//!   rollback submitted meanwhile waits for it) and its ledger lock (as [`heal_holder`], a
//!   brief holder: a `--local` deploy waits for it, at most 10 s (`ledger::BRIEF_WAIT`), then
//!   exits 75 naming it, whatever its `--lock-wait`; supervision does not count it as a
//!   deploy, [`is_heal`]). A stack a job or another process holds is skipped; the daemon's own
//!   brief uses of it (an edge sync) are waited for, at most [`OWN_WAIT`]. Heals of one stack
//!   restart one container at a time.
//! - The stop is a deploy's: the service's `stop_grace_period` from the last good release
//!   (Docker's 10 s for a service it does not know), on the container's own stop signal.
//! - Crash-safe: before the stop, `heal.json` records the container as stopped by a heal (an
//!   atomic replace); the mark goes once it started again. A container so marked that does not
//!   run and still has that id is started at the next resync ([`Supervisor::start_healed`]),
//!   whatever the stack's policy: by this daemon when the start failed, by the next one when
//!   this one was killed in between. One a deploy replaced or removed meanwhile is forgotten.
//! - Shutdown: [`Supervisor::close`] lets no restart begin; the daemon waits (bounded) while
//!   one is under way ([`Supervisor::restarting`]).
//! - A container behind the edge switch that a heal started is reported to the route sink
//!   again once the stack is let go (the sync its `start` event asked for may have found the
//!   stack held).
//!
//! Limits: a restart is stop then start (the container keeps its id and name); a container
//! that keeps failing after its budget is left running, given up on, until it passes again or
//! is replaced. A heal runs the service's `pre_stop` hooks before its stop and its
//! `post_start` hooks after its start (with the stack let go; one that fails is logged, the
//! container keeps running). A deploy that arrives during a heal waits up to twice the heal's
//! stop grace period (its pre_stop hooks, then the stop). A container behind the edge switch
//! leaves the rotation before its hooks and stop ([`super::RouteSink::leave`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::compose::Service;
use crate::deploy::apply::project_from_release;
use crate::deploy::health::probe_once;
use crate::deploy::translate::stop_timeout;
use crate::engine::{ContainerInfo, HealthStatus};
use crate::ledger::{Holder, LedgerError, StackLock};

use super::Supervisor;
use super::decide::{HealDecision, heal_decision};
use super::routes::is_edge_sync;

/// The stop timeout for a service the last good release does not know (Docker's default).
const STOP_DEFAULT: Duration = Duration::from_secs(10);
/// How long a restart waits for the daemon's own brief use of its stack (an edge sync).
pub const OWN_WAIT: Duration = Duration::from_secs(2);

/// How long the `post_start` hooks of a container a heal started again may take together (a
/// deploy's default readiness timeout).
const HOOK_BOUND: Duration = Duration::from_secs(120);

/// What a restart did.
struct Restart {
    /// It stopped the container to start it again (the start may have failed).
    restarted: bool,
    /// The container is behind the edge switch.
    edge: bool,
    /// The container runs again.
    started: bool,
}

/// What the lock file names while a heal restarts one of the stack's containers.
const HEAL: &str = "gantryd heal";

/// The holder of `stack`'s lock while this daemon restarts one of its containers.
pub fn heal_holder(stack: &str) -> Holder {
    Holder::brief(&format!("{HEAL} {stack}"))
}

/// Whether `holder` is this daemon healing a container (not a deploy).
pub fn is_heal(holder: &Holder) -> bool {
    holder.pid == std::process::id() && holder.command.starts_with(HEAL)
}

/// Why a container is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Docker's healthcheck says `unhealthy`.
    Unhealthy,
    /// The `x-gantry.health` probe failed this many times in a row.
    Probe { failures: u32 },
}

impl Cause {
    /// What keeps happening, for the give-up message.
    fn persists(self) -> &'static str {
        match self {
            Cause::Unhealthy => "stays unhealthy",
            Cause::Probe { .. } => "keeps failing its x-gantry.health probe",
        }
    }

    fn describe(self) -> String {
        match self {
            Cause::Unhealthy => "is unhealthy".into(),
            Cause::Probe { failures } => {
                format!("failed its x-gantry.health probe {failures} times in a row")
            }
        }
    }
}

/// The stack held across a restart: its turn between jobs and its ledger lock.
struct Held {
    _turn: OwnedMutexGuard<()>,
    _lock: Option<StackLock>,
}

/// Counts a restart in [`Supervisor::restarting`] while it lives.
pub(super) struct Restarting<'a>(&'a AtomicUsize);

impl Drop for Restarting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Supervisor {
    /// Restarts a container after its backoff, within its budget; `true` when it did.
    pub(super) async fn heal(
        self: Arc<Self>,
        id: String,
        name: String,
        stack: String,
        service: String,
        cause: Cause,
    ) -> bool {
        let decision = {
            let mut s = self.state();
            let t = self.track(&mut s, &name, &id, &stack, &service);
            let d = heal_decision(t, &self.config.heal, Instant::now());
            (d, t.restarts)
        };
        let wait = match decision {
            (HealDecision::Leave, _) => return false,
            (HealDecision::GiveUp, restarts) => {
                self.save();
                self.metrics.inc(
                    "gantry_heal_giveups_total",
                    &[("stack", &stack), ("service", &service)],
                );
                tracing::error!(
                    stack = %stack,
                    service = %service,
                    container = %name,
                    restarts,
                    budget = self.config.heal.max_restarts,
                    window = %humantime::format_duration(self.config.heal.window),
                    "container {} and its restart budget is spent; giving up (hint: docker logs {name}; gantry status {stack})",
                    cause.persists()
                );
                return false;
            }
            (HealDecision::RestartAfter(wait), _) => wait,
        };
        tokio::time::sleep(wait).await;
        let outcome = self.restart(&id, &name, &stack, &service, cause).await;
        let restarted = {
            let mut s = self.state();
            let t = s.tracks.get_mut(&name);
            let restarted = outcome == Some(true) && t.is_some();
            if let Some(t) = t {
                t.healing = false;
                if restarted {
                    t.budget.take(Instant::now());
                    t.restarts += 1;
                }
            }
            restarted
        };
        if restarted {
            self.save();
        }
        restarted
    }

    /// `Some(true)` when it restarted the container (or tried to and failed).
    async fn restart(
        &self,
        id: &str,
        name: &str,
        stack: &str,
        service: &str,
        cause: Cause,
    ) -> Option<bool> {
        let one = self.heal_turn(stack);
        let turn = one.lock().await;
        let Some(_restarting) = self.enter() else {
            tracing::info!(stack = %stack, service = %service, container = %name, "the daemon stops; restart not begun");
            return Some(false);
        };
        let Some(held) = self.hold_stack(stack).await else {
            tracing::debug!(stack = %stack, container = %name, "a deploy holds the stack; no restart");
            return Some(false);
        };
        let outcome = self.restart_held(id, name, stack, service, cause).await;
        drop(held);
        let Restart {
            restarted,
            edge,
            started,
        } = outcome?;
        if restarted && edge {
            // Its address may have changed: the edge's sync on its start may have found the
            // stack still held.
            self.route_sink().container_moved(stack, service, name);
        }
        // The stack's next heal need not wait for these hooks.
        drop(turn);
        if started {
            self.post_start(stack, service, id, name).await;
        }
        Some(restarted)
    }

    /// Runs the service's `post_start` hooks in a container a heal started again, as Compose
    /// runs them on every start, bounded by [`HOOK_BOUND`]. The stack is let go first (a hook
    /// may run for minutes; a deploy that replaces the container meanwhile ends it). A hook that
    /// fails is logged: the container runs, and its probes judge it from here.
    async fn post_start(&self, stack: &str, service: &str, id: &str, name: &str) {
        let Some(svc) = self.service_of(stack, service) else {
            return;
        };
        if svc.post_start.is_empty() {
            return;
        }
        match crate::deploy::post_start(self.engine.as_ref(), &svc, id, name, HOOK_BOUND).await {
            Ok(()) => {
                tracing::info!(stack = %stack, service = %service, container = %name, "post_start hooks done after a restart");
            }
            Err(e) => {
                tracing::error!(stack = %stack, service = %service, container = %name, error = %e, "a post_start hook failed after a restart; the container keeps running (hint: docker logs {name})");
            }
        }
    }

    /// [`Self::restart`] with the stack held.
    async fn restart_held(
        &self,
        id: &str,
        name: &str,
        stack: &str,
        service: &str,
        cause: Cause,
    ) -> Option<Restart> {
        let info = self.engine.inspect_container(id).await.ok()?;
        let edge = info.label(crate::edge::LABEL).is_some();
        let still = match cause {
            Cause::Unhealthy => info.state.health == Some(HealthStatus::Unhealthy),
            Cause::Probe { .. } => true,
        };
        let left = Restart {
            restarted: false,
            edge,
            started: false,
        };
        if !info.state.running || !still {
            return Some(left);
        }
        let svc = self.service_of(stack, service);
        if matches!(cause, Cause::Probe { .. }) && passes_now(svc.as_ref(), &info).await {
            tracing::info!(stack = %stack, service = %service, container = %name, "container passes its x-gantry.health probe again; not restarted");
            return Some(left);
        }
        let grace = svc.as_ref().map_or(STOP_DEFAULT, stop_timeout);
        let hooks = svc.as_ref().map(|s| s.pre_stop.clone()).unwrap_or_default();
        // Recorded before the stop: a daemon killed before the start leaves it to the next.
        self.mark_stopped(name, id, true);
        // Its death may come at the end of the grace period (after its pre_stop hooks, which
        // have one of their own): still ours then.
        let hooks_grace = if hooks.is_empty() {
            Duration::ZERO
        } else {
            grace
        };
        self.state()
            .ours
            .insert(id.to_owned(), Instant::now() + hooks_grace + grace);
        tracing::warn!(stack = %stack, service = %service, container = %name, grace_s = grace.as_secs(), "container {}; restarting it", cause.describe());
        if edge {
            // New connections go to the other replicas while it stops, as in a rollout.
            self.route_sink().leave(stack, id).await;
        }
        let result = async {
            // As a rollout stops it: its pre_stop hooks first, within the grace period.
            let quiet = crate::deploy::Quiet;
            let engine = self.engine.as_ref();
            crate::deploy::pre_stop(engine, &quiet, &hooks, service, id, name, grace).await;
            self.engine.stop_container(id, None, grace).await?;
            self.engine.start_container(id).await
        }
        .await;
        {
            let mut s = self.state();
            let until = s.ours.entry(id.to_owned()).or_insert_with(Instant::now);
            *until = (*until).max(Instant::now());
        }
        match result {
            Ok(()) => {
                self.mark_stopped(name, id, false);
                self.metrics.inc(
                    "gantry_heal_restarts_total",
                    &[("stack", stack), ("service", service)],
                );
                tracing::info!(stack = %stack, service = %service, container = %name, "restarted a container that {}", cause.describe());
                Some(Restart {
                    restarted: true,
                    edge,
                    started: true,
                })
            }
            Err(e) => {
                tracing::error!(stack = %stack, service = %service, container = %name, error = %e, "restarting a container that {} failed (a container left stopped is started at the next resync)", cause.describe());
                Some(Restart {
                    restarted: true,
                    edge,
                    started: false,
                })
            }
        }
    }

    /// From now on no restart begins (the daemon stops); see [`Self::restarting`].
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Whether a restart is under way (a stopping daemon waits for it).
    pub fn restarting(&self) -> bool {
        self.restarting.load(Ordering::SeqCst) > 0
    }

    /// Counts a restart about to begin; `None` once [`Self::close`]d.
    fn enter(&self) -> Option<Restarting<'_>> {
        self.restarting.fetch_add(1, Ordering::SeqCst);
        let guard = Restarting(&self.restarting);
        (!self.closing.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Heals of `stack` restart one container at a time.
    fn heal_turn(&self, stack: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.state()
            .heal_turns
            .entry(stack.to_owned())
            .or_default()
            .clone()
    }

    /// `stack` held for a restart ([`Held`]); `None` while a deploy holds it (a daemon job
    /// queued or running, another process's lock, a canary). The daemon's own brief uses
    /// (an edge sync, a release recorded between jobs) are waited for, at most [`OWN_WAIT`].
    async fn hold_stack(&self, stack: &str) -> Option<Held> {
        let until = Instant::now() + OWN_WAIT;
        loop {
            if self.paused(stack) {
                return None;
            }
            if let Some(turn) = self.jobs.between_jobs(stack) {
                let lock = self
                    .ledger
                    .stack(stack)
                    .and_then(|l| l.try_lock(&heal_holder(stack)));
                match lock {
                    Ok(lock) => {
                        return Some(Held {
                            _turn: turn,
                            _lock: Some(lock),
                        });
                    }
                    Err(LedgerError::LockBusy { holder, .. }) if !is_edge_sync(&holder) => {
                        return None;
                    }
                    Err(LedgerError::LockBusy { .. }) => {}
                    // The lock cannot be written (the state dir full or read-only): nobody can
                    // deploy the stack then.
                    Err(e) => {
                        tracing::warn!(stack, error = %e, "heal without the stack's lock");
                        return Some(Held {
                            _turn: turn,
                            _lock: None,
                        });
                    }
                }
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `service` as `stack`'s last good release describes it.
    fn service_of(&self, stack: &str, service: &str) -> Option<Service> {
        let release = self.last_good(stack)?;
        match project_from_release(&release) {
            Ok(mut p) => p.services.remove(service),
            Err(e) => {
                tracing::warn!(stack = %stack, release = %release.id(), error = %e, "cannot read the stack's release; its stop grace period is not known");
                None
            }
        }
    }

    /// Marks (or unmarks) the container `name` (`id`) as stopped by a heal, saved at once.
    fn mark_stopped(&self, name: &str, id: &str, stopped: bool) {
        let changed = match self.state().tracks.get_mut(name) {
            Some(t) if t.id == id && t.stopped_by_heal != stopped => {
                t.stopped_by_heal = stopped;
                true
            }
            _ => false,
        };
        if changed {
            self.save();
        }
    }

    /// Starts the containers of `stack` that a heal stopped and did not start again (its start
    /// failed, or the daemon was killed in between), whatever the stack's policy; forgets those
    /// a deploy replaced or removed meanwhile, or that run again. Returns `containers`, listed
    /// again when it started one; `None` when that list failed.
    pub(super) async fn start_healed(
        &self,
        stack: &str,
        containers: Vec<ContainerInfo>,
    ) -> Option<Vec<ContainerInfo>> {
        let marked: Vec<(String, String)> = self
            .state()
            .tracks
            .iter()
            .filter(|(_, t)| t.stack == stack && t.stopped_by_heal && !t.healing)
            .map(|(name, t)| (name.clone(), t.id.clone()))
            .collect();
        if marked.is_empty() {
            return Some(containers);
        }
        let (stopped, gone): (Vec<_>, Vec<_>) = marked.into_iter().partition(|(name, id)| {
            containers
                .iter()
                .any(|c| c.name == *name && c.id == *id && !c.state.running)
        });
        for (name, id) in gone {
            self.mark_stopped(&name, &id, false);
        }
        if stopped.is_empty() {
            return Some(containers);
        }
        let Some(_restarting) = self.enter() else {
            return Some(containers);
        };
        let Some(held) = self.hold_stack(stack).await else {
            return Some(containers);
        };
        let mut moved = Vec::new();
        let mut started = Vec::new();
        for (name, id) in &stopped {
            self.state().ours.insert(id.clone(), Instant::now());
            match self.engine.start_container(id).await {
                Ok(()) => {
                    self.mark_stopped(name, id, false);
                    tracing::warn!(stack = %stack, container = %name, "started a container a heal had stopped and not started again (the daemon stopped or its start failed in between)");
                    let c = containers.iter().find(|c| c.id == *id);
                    let service = c.and_then(|c| c.service.clone()).unwrap_or_default();
                    if c.is_some_and(|c| c.label(crate::edge::LABEL).is_some()) {
                        moved.push((service.clone(), name.clone()));
                    }
                    started.push((service, name.clone(), id.clone()));
                }
                Err(e) => {
                    tracing::error!(stack = %stack, container = %name, error = %e, "cannot start a container a heal stopped; trying again at the next resync");
                }
            }
            self.state().ours.insert(id.clone(), Instant::now());
        }
        drop(held);
        for (service, name) in moved {
            self.route_sink().container_moved(stack, &service, &name);
        }
        // Started as a heal would have: its post_start hooks, the stack let go.
        for (service, name, id) in started {
            self.post_start(stack, &service, &id, &name).await;
        }
        match self.engine.list_containers(stack, true).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(stack = %stack, error = %e, "cannot list the stack's containers");
                None
            }
        }
    }

    /// Supervision resumes for a container it gave up on, now healthy (or passing) again.
    pub(super) fn resume(&self, name: &str, stack: &str, service: &str) {
        let resumed = match self.state().tracks.get_mut(name) {
            Some(t) if t.gave_up => {
                t.gave_up = false;
                true
            }
            _ => false,
        };
        if resumed {
            tracing::info!(stack = %stack, service = %service, container = %name, "container is healthy again; supervision resumes");
            self.save();
        }
    }
}

/// Whether the container passes its service's `x-gantry.health` probe now (`false` without
/// one).
async fn passes_now(svc: Option<&Service>, info: &ContainerInfo) -> bool {
    let Some(probe) = svc.and_then(|s| s.gantry.health.as_ref()) else {
        return false;
    };
    let ip = info.ip_addresses.values().next().map(String::as_str);
    probe_once(&probe.target, ip, probe.timeout).await.is_ok()
}
