//! Rollout: applying a plan to the engine, one service at a time.
//!
//! Design: a [`Rollout`] carries everything one apply of a plan needs (the project, the plan,
//! the release it records into, the request, the mode, where progress goes) and what it has
//! done so far ([`Applied`]: records, ready containers, jobs run, whether anything running was
//! touched). [`Rollout::run`] walks the plan in dependency order; [`Rollout::converge_service`]
//! brings one service to its plan by the service's strategy: start-first (the new container
//! ready, then given its aliases, before the old one leaves its networks and stops) or
//! stop-first (the old container keeps its networks and published ports until it exits, see
//! [`Leave`]), in batches of `update_config.parallelism`, `delay` apart, each watched for
//! `monitor`. One-shot jobs are in `jobs.rs`, readiness waits in `ready.rs`.
//!
//! Limits: replicas of one service are replaced one batch after another, never two services
//! at once; start-first reconnects a new container to its networks once to give it its
//! aliases (connections it opened while starting are reset).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::compose::{FailureAction, Project, Service};
use crate::engine::{ContainerInfo, Engine};
use crate::ledger::{Release, ServiceRecord, StackLedger};

use super::edge::Rotation;
use super::plan::{self, Action, Plan, ServicePlan};
use super::{DeployError, DeployRequest, Progress, health, images, ready, translate};

/// Whether jobs run (a deploy) or not (a rollback: migrations only go forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Deploy,
    Rollback,
}

/// What was applied so far, for the report and for rollback.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub(super) records: Vec<ServiceRecord>,
    /// Whether a running container was stopped, replaced or removed.
    pub(super) touched_running: bool,
    /// service → its ready containers' ids.
    pub(super) ready: BTreeMap<String, Vec<String>>,
    /// jobs that succeeded in this run (service → run hash).
    pub(super) jobs: BTreeMap<String, String>,
    /// Services that failed under `failure_action: continue`.
    pub(super) continued: Vec<String>,
}

/// One apply of a plan: what every step needs, and what was done so far.
pub(super) struct Rollout<'a> {
    pub(super) engine: &'a dyn Engine,
    pub(super) project: &'a Project,
    pub(super) plan: &'a Plan,
    /// The ledger of the stack (one-shot job logs go there).
    pub(super) stack: &'a StackLedger,
    /// The release being recorded.
    pub(super) release: &'a Release,
    pub(super) req: &'a DeployRequest,
    pub(super) mode: Mode,
    pub(super) progress: &'a dyn Progress,
    /// The published-port switch ([`crate::edge`]).
    pub(super) edge: &'a dyn crate::edge::Edge,
    pub(super) applied: Applied,
}

/// How a container being retired leaves service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leave {
    /// Off its networks first, so other containers stop resolving it at once: for a container
    /// whose replacement (or another replica) already serves.
    OffNetworksFirst,
    /// Keeps its networks and published ports and serves until it exits: stop-first, where
    /// the replacement starts only after it.
    ServeUntilExit,
}

impl Rollout<'_> {
    /// Applies the plan: leftovers of interrupted jobs removed, networks and volumes ensured,
    /// jobs run (early when nothing they depend on changes), then every service converged in
    /// the plan's (dependency) order.
    pub(super) async fn run(&mut self) -> Result<(), DeployError> {
        let (project, plan, mode, progress) = (self.project, self.plan, self.mode, self.progress);
        // Leftovers of interrupted job runs.
        for c in self.engine.list_containers(&project.name, true).await? {
            if c.oneoff {
                tracing::info!(stack = %project.name, container = %c.name, "removing leftover one-off container");
                self.engine.remove_container(&c.id, true).await?;
            }
        }
        for (_, spec, external) in translate::network_specs(project) {
            if !external {
                self.engine.ensure_network(&spec).await?;
            }
        }
        for (_, spec, external) in translate::volume_specs(project) {
            if !external {
                self.engine.ensure_volume(&spec).await?;
            }
        }

        // Jobs whose dependencies need no change run first, before anything running is
        // replaced: a failing migration then leaves the old version serving untouched.
        let unchanged: BTreeSet<&str> = plan
            .services
            .iter()
            .filter(|s| !s.action.changes())
            .map(|s| s.service.as_str())
            .collect();
        let mut ran_early = BTreeSet::new();
        if mode == Mode::Deploy {
            for sp in plan
                .services
                .iter()
                .filter(|s| s.job && s.action == Action::Run)
            {
                let svc = &project.services[&sp.service];
                if svc
                    .depends_on
                    .keys()
                    .all(|d| unchanged.contains(d.as_str()))
                {
                    self.wait_dependencies(svc).await?;
                    self.run_job(svc, sp).await?;
                    ran_early.insert(sp.service.clone());
                }
            }
        }

        for sp in &plan.services {
            let t0 = Instant::now();
            if ran_early.contains(&sp.service) {
                continue;
            }
            match sp.action {
                Action::Unchanged => {
                    if !sp.job {
                        self.applied.ready.insert(
                            sp.service.clone(),
                            sp.containers.iter().map(|c| c.id.clone()).collect(),
                        );
                    }
                    self.applied.records.push(record(
                        &sp.service,
                        Action::Unchanged,
                        Duration::ZERO,
                        None,
                    ));
                }
                Action::Run => {
                    if mode == Mode::Deploy {
                        let svc = &project.services[&sp.service];
                        self.wait_dependencies(svc).await?;
                        self.run_job(svc, sp).await?;
                    }
                }
                Action::Remove => {
                    progress.step(Some(&sp.service), "removing (no longer in the files)");
                    for c in &sp.containers {
                        self.retire(c, None, Duration::from_secs(10), Leave::OffNetworksFirst)
                            .await?;
                    }
                    self.applied.records.push(record(
                        &sp.service,
                        Action::Remove,
                        t0.elapsed(),
                        None,
                    ));
                }
                Action::Create | Action::Recreate | Action::Start | Action::Scale => {
                    let svc = &project.services[&sp.service];
                    let why = if sp.reasons.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", sp.reasons.join(", "))
                    };
                    progress.step(Some(&sp.service), &format!("{}{why}", verb(sp.action)));
                    self.wait_dependencies(svc).await?;
                    let result = self.converge_service(svc, sp).await;
                    let err = result.as_ref().err().map(ToString::to_string);
                    self.applied
                        .records
                        .push(record(&sp.service, sp.action, t0.elapsed(), err));
                    if let Err(e) = result {
                        let action = svc
                            .update_config()
                            .and_then(|u| u.failure_action)
                            .unwrap_or(FailureAction::Rollback);
                        match (mode, action) {
                            (Mode::Deploy, FailureAction::Pause) => {
                                return Err(DeployError::Paused {
                                    service: sp.service.clone(),
                                    source: Box::new(e),
                                });
                            }
                            (Mode::Deploy, FailureAction::Continue) => {
                                progress.step(
                                    Some(&sp.service),
                                    "failed; continuing (failure_action: continue)",
                                );
                                self.applied.continued.push(format!("{}: {e}", sp.service));
                            }
                            _ => return Err(e),
                        }
                    }
                }
            }
        }
        if !self.applied.continued.is_empty() {
            return Err(DeployError::Continued {
                failures: self.applied.continued.clone(),
            });
        }
        Ok(())
    }

    /// Brings one service's containers to the plan: replicas 1..=n up to date and ready,
    /// duplicates and extra replicas removed. Replacement follows the service's strategy:
    /// start-first (the new container ready before the old one leaves the network and stops)
    /// or stop-first; in batches of `update_config.parallelism`, `delay` apart, each batch
    /// watched for `monitor` before the next.
    async fn converge_service(
        &mut self,
        svc: &Service,
        sp: &ServicePlan,
    ) -> Result<(), DeployError> {
        let (project, req, mode, progress) = (self.project, self.req, self.mode, self.progress);
        let image_id = sp.image_id.clone().unwrap_or_default();
        let image = images::create_image_ref(self.engine, svc, &image_id).await?;
        let rule = health::rule(svc);
        let mut rotation = Rotation::of(self.edge, &project.name, svc, &sp.containers);
        let mut canaried = false;
        let (strategy, _) = health::strategy(svc, rotation.active());
        let update = match mode {
            Mode::Deploy => svc.update_config(),
            Mode::Rollback => svc.rollback_config().or(svc.update_config()),
        };
        let parallelism = match update.and_then(|u| u.parallelism) {
            None => 1,
            Some(0) => sp.replicas.max(1) as usize,
            Some(n) => n as usize,
        };
        let delay = update.and_then(|u| u.delay).map(|d| d.as_std());
        let monitor = update.and_then(|u| u.monitor).map(|d| d.as_std());
        let stop_timeout = translate::stop_timeout(svc);
        let signal = svc.stop_signal.as_deref();

        // Per replica: what to keep, what to replace.
        let mut ready = Vec::new();
        let mut replace: Vec<(u32, Option<ContainerInfo>)> = Vec::new();
        for n in 1..=sp.replicas {
            let name = translate::container_name(project, svc, n);
            let mine: Vec<&ContainerInfo> = sp
                .containers
                .iter()
                .filter(|c| c.number == Some(n))
                .collect();
            let keep = plan::best_container(&mine, &sp.hash, sp.image_id.as_deref());
            for other in mine
                .iter()
                .filter(|c| Some(c.id.as_str()) != keep.map(|k| k.id.as_str()))
            {
                progress.step(
                    Some(&svc.name),
                    &format!("removing duplicate {}", other.name),
                );
                self.retire_from(&mut rotation, other, signal, stop_timeout)
                    .await?;
            }
            let current = keep.is_some_and(|c| {
                c.label(crate::engine::labels::GANTRY_HASH) == Some(sp.hash.as_str())
                    && c.image_id == image_id
            });
            match keep {
                Some(c) if current => {
                    if c.name != name {
                        // A replacement cut short (kill -9): the new container may not have
                        // its aliases yet. Give them, then its name.
                        let spec =
                            translate::container_spec(project, svc, &image, Some(n), &sp.hash)?;
                        self.give_aliases(&c.id, &spec.networks).await?;
                        self.engine.rename_container(&c.id, &name).await?;
                    }
                    if !c.state.running {
                        self.engine.start_container(&c.id).await?;
                        ready::wait_ready(self.engine, svc, &rule, &c.id, req.ready_timeout)
                            .await?;
                        if c.labels.contains_key(crate::edge::LABEL) {
                            let info = self.engine.inspect_container(&c.id).await?;
                            rotation.join(&info).await?;
                        }
                    }
                    ready.push(c.id.clone());
                }
                other => replace.push((n, other.cloned())),
            }
        }

        for (i, batch) in replace.chunks(parallelism).enumerate() {
            if i > 0
                && let Some(d) = delay
            {
                tokio::time::sleep(d).await;
            }
            let mut started = Vec::new();
            for (n, old) in batch {
                let name = translate::container_name(project, svc, *n);
                let mut spec = translate::container_spec(project, svc, &image, Some(*n), &sp.hash)?;
                rotation.adapt(&mut spec);
                // Created under a temporary name: the old container keeps its name (and keeps
                // serving) until it is retired.
                let temp = format!("{name}-gantry-next");
                if let Ok(stale) = self.engine.inspect_container(&temp).await {
                    self.engine.remove_container(&stale.id, true).await?;
                }
                let start_first = strategy == health::Strategy::StartFirst
                    && old.as_ref().is_some_and(|o| o.state.running);
                // Docker's DNS is not health-aware: a container resolves under the service's
                // name as soon as it starts. Start-first therefore starts the new container
                // without its aliases and gives them to it only once it is ready.
                let attachments = spec.networks.clone();
                let mut create = crate::engine::ContainerSpec { name: temp, ..spec };
                if start_first {
                    for a in &mut create.networks {
                        a.aliases.clear();
                    }
                }
                let id = self.engine.create_container(&create).await?;
                let t = Instant::now();
                match old {
                    Some(old) if start_first => {
                        self.engine.start_container(&id).await?;
                        if let Err(e) =
                            ready::wait_ready(self.engine, svc, &rule, &id, req.ready_timeout).await
                        {
                            // The old container never stopped serving: just drop the new one.
                            let _ = self.engine.remove_container(&id, true).await;
                            return Err(e);
                        }
                        self.give_aliases(&id, &attachments).await?;
                        if rotation.active() {
                            // New connections to the published ports go to the new container
                            // at once (or step by step, a canary); the old one drains, then
                            // stops.
                            let new = self.engine.inspect_container(&id).await?;
                            if let (Some(canary), Mode::Deploy, false) =
                                (svc.gantry.canary.as_ref(), mode, canaried)
                            {
                                canaried = true;
                                self.canary(svc, canary, &mut rotation, &new).await?;
                            }
                            rotation.swap(Some(&old.id), &new).await?;
                            self.retire_from(&mut rotation, old, signal, stop_timeout)
                                .await?;
                        } else {
                            self.retire(old, signal, stop_timeout, Leave::OffNetworksFirst)
                                .await?;
                        }
                        self.engine.rename_container(&id, &name).await?;
                    }
                    old => {
                        // Stop-first: nothing else serves yet, so the old container keeps its
                        // networks and published ports until it exits on its stop signal (or
                        // is killed at the end of its grace period), as Compose does.
                        if let Some(old) = old {
                            self.retire(old, signal, stop_timeout, Leave::ServeUntilExit)
                                .await?;
                            // Gone: the switch refuses at once rather than sending new
                            // connections to an address nobody answers.
                            rotation.leave(&old.id).await?;
                        }
                        self.engine.rename_container(&id, &name).await?;
                        self.engine.start_container(&id).await?;
                        ready::wait_ready(self.engine, svc, &rule, &id, req.ready_timeout).await?;
                        if rotation.active() {
                            let new = self.engine.inspect_container(&id).await?;
                            rotation
                                .swap(old.as_ref().map(|o| o.id.as_str()), &new)
                                .await?;
                        }
                    }
                }
                progress.step(
                    Some(&svc.name),
                    &format!("{name} ready in {:.1}s", t.elapsed().as_secs_f64()),
                );
                started.push(id.clone());
                ready.push(id);
            }
            if let Some(watch) = monitor {
                ready::monitor(self.engine, svc, &started, watch).await?;
            }
        }
        for extra in sp
            .containers
            .iter()
            .filter(|c| c.number.is_none_or(|n| n > sp.replicas))
        {
            progress.step(
                Some(&svc.name),
                &format!("removing extra replica {}", extra.name),
            );
            self.retire_from(&mut rotation, extra, signal, stop_timeout)
                .await?;
        }
        self.applied.ready.insert(svc.name.clone(), ready);
        Ok(())
    }

    /// Reconnects a container to the networks of `attachments` that carry aliases, with them:
    /// the moment other containers start resolving it under its service's name.
    async fn give_aliases(
        &self,
        id: &str,
        attachments: &[crate::engine::NetworkAttachment],
    ) -> Result<(), DeployError> {
        for a in attachments.iter().filter(|a| !a.aliases.is_empty()) {
            self.engine.disconnect_network(id, &a.network).await?;
            self.engine.connect_network(id, a).await?;
        }
        Ok(())
    }

    /// Retires a container of a service that may be behind the edge switch: out of rotation
    /// first, its open connections drained (up to `timeout`, its grace period), then stopped
    /// while it keeps its networks. Without the switch: off its networks, then stopped.
    async fn retire_from(
        &mut self,
        rotation: &mut Rotation<'_>,
        c: &ContainerInfo,
        signal: Option<&str>,
        timeout: Duration,
    ) -> Result<(), DeployError> {
        if !rotation.active() || !c.state.running {
            return self
                .retire(c, signal, timeout, Leave::OffNetworksFirst)
                .await;
        }
        rotation.leave(&c.id).await?;
        let live = self.engine.inspect_container(&c.id).await?;
        let waited = rotation.drain(&live, timeout).await;
        if waited >= Duration::from_millis(500) {
            self.progress.step(
                Some(&rotation.service),
                &format!("{} drained in {:.1}s", c.name, waited.as_secs_f64()),
            );
        }
        self.retire(c, signal, timeout, Leave::ServeUntilExit).await
    }

    /// Takes a container out of service, then removes it. `leave` says whether it first leaves
    /// its networks (something else already serves) or keeps serving until it exits.
    async fn retire(
        &mut self,
        c: &ContainerInfo,
        signal: Option<&str>,
        timeout: Duration,
        leave: Leave,
    ) -> Result<(), DeployError> {
        if c.state.running {
            self.applied.touched_running = true;
            if leave == Leave::OffNetworksFirst {
                for network in &c.networks {
                    self.engine.disconnect_network(&c.id, network).await?;
                }
            }
            self.engine.stop_container(&c.id, signal, timeout).await?;
        }
        self.engine.remove_container(&c.id, true).await?;
        Ok(())
    }
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Create => "creating",
        Action::Recreate => "recreating",
        Action::Start => "starting",
        Action::Scale => "scaling",
        Action::Run => "running",
        Action::Remove => "removing",
        Action::Unchanged => "unchanged",
    }
}

/// What happened to one service, for the release.
pub(super) fn record(
    service: &str,
    action: Action,
    took: Duration,
    error: Option<String>,
) -> ServiceRecord {
    ServiceRecord {
        service: service.to_owned(),
        action,
        duration_ms: took.as_millis() as u64,
        error,
    }
}
