//! Rollout: applying a plan to the engine, service by service.
//!
//! Design: a [`Rollout`] carries everything one apply of a plan needs (the project, the plan,
//! the release it records into, the request, the mode, where progress goes) and what it has
//! done so far ([`Applied`]: records, ready containers, jobs run, whether anything running was
//! touched; behind a lock, as several services converge at once). `Rollout::run`
//! (`schedule.rs`) starts every service whose dependencies are done; [`Rollout::converge_service`]
//! brings one service to its plan by the service's strategy: start-first (the new container
//! ready, then given its aliases, before the old one leaves its networks and stops) or
//! stop-first (the old container keeps its networks and published ports until it exits, see
//! [`Leave`]), in batches of `update_config.parallelism`, `delay` apart, each watched for
//! `monitor`. One-shot jobs are in `jobs.rs`, readiness waits in `ready.rs`.
//!
//! Start-first behind Docker's DNS, without a stall. Docker's DNS is not health-aware, so the
//! new container starts without its aliases and gets them by a reconnect once ready
//! (`give_aliases`). Measured on Docker 20.10 (a client resolving the service and fetching
//! from it every 20 ms, `bench/deploy.sh`, and probes of each address from the client's
//! network namespace): Docker's DNS names an address for a moment while it does not answer:
//! the new container's, during its reconnect, before its interface is up; the old one's, when
//! it leaves. A connection opened to it then waits for the client's SYN retransmission (about
//! 1 s: 14 rounds of 20). With the edge switch on the host, the replacement hands the address
//! over in the kernel ([`crate::edge::Edge::hand_over`]): new connections to the new address go
//! to the old container during the reconnect, then new connections to the old address go to
//! the new container while the old one, on its networks, serves what it has until it exits
//! (0 failed; 1 to 3 rounds of 20 at 250 ms or more under load, the first among them). Without the switch, the old
//! container first leaves DNS by a reconnect without its aliases (`drop_aliases`; it comes
//! back on the address just freed, so a request caught in the gap is retransmitted to it and
//! answered), serves what was already sent its way for [`DNS_DRAIN`], then is stopped.
//!
//! Limits: replicas of one service are replaced one batch after another; start-first
//! reconnects a new container to its networks once to give it its aliases (connections it
//! opened while starting are reset). A client that never talked to the new address must
//! resolve its MAC first, which fails until the new interface is up: that connection still
//! waits about 1 s (the first replacement after a cold deploy). Without the switch, a
//! connection opened to the old container during its reconnect waits the same way, and a
//! client that caches a DNS answer longer than the drain reaches the old container until it
//! stops.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::compose::{Hook, Project, Service};
use crate::engine::{ContainerInfo, Engine, EngineError};
use crate::ledger::{CanaryState, Release, ServiceRecord, StackLedger};

use super::edge::Rotation;
use super::plan::{self, Action, Plan, ServicePlan};
use super::{DeployError, DeployRequest, Progress, health, hooks, images, ready, translate};

/// Whether jobs run (a deploy) or not (a rollback: migrations only go forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Deploy,
    Rollback,
}

/// What was applied so far, shared by the service tasks running at once (each holds the lock
/// only to record a result). It outlives a rollout cut short by the deploy's timeout.
#[derive(Debug, Default)]
pub(super) struct Applied(std::sync::Mutex<Done>);

impl Applied {
    /// Runs `f` on what was applied so far.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Done) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn into_inner(self) -> Done {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// What was applied so far, for the report and for rollback.
#[derive(Debug, Default)]
pub(super) struct Done {
    pub(super) records: Vec<ServiceRecord>,
    /// Whether a running container was stopped, replaced or removed.
    pub(super) touched_running: bool,
    /// Whether a container was created where none was (a new service, an added replica): not
    /// in the last good release, so a failure goes back to that release.
    pub(super) created: bool,
    /// Whether the stack may sit between two releases before this deploy (one killed, or
    /// whose rollback failed): a failure once the rollout is under way goes back to the last
    /// good release.
    pub(super) unsettled: bool,
    /// Whether the rollout got past its preamble (an earlier deploy's job waited for,
    /// networks and volumes in place) to the jobs and services.
    pub(super) under_way: bool,
    /// service → its ready containers' ids.
    pub(super) ready: BTreeMap<String, Vec<String>>,
    /// jobs that succeeded in this run (service → run hash).
    pub(super) jobs: BTreeMap<String, String>,
    /// Services that failed under `failure_action: continue`.
    pub(super) continued: Vec<String>,
    /// Containers created where none ran, watched together ([`super::ready::Together`]).
    pub(super) together: super::ready::Together,
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
    /// The replicas out of rotation as not ready ([`crate::edge::Unready`]).
    pub(super) unready: &'a crate::edge::Unready,
    /// What the rollouts are doing now ([`super::Activity`]).
    pub(super) activity: &'a super::Activity,
    /// A canary a daemon left at a step, to resume there (`resume.rs`).
    pub(super) resume: Option<CanaryState>,
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
    /// Brings one service's containers to the plan: replicas 1..=n up to date and ready,
    /// duplicates and extra replicas removed. Replacement follows the service's strategy:
    /// start-first (the new container ready before the old one leaves the network and stops)
    /// or stop-first; in batches of `update_config.parallelism`, `delay` apart, each batch
    /// watched for `monitor` before the next.
    pub(super) async fn converge_service(
        &self,
        svc: &Service,
        sp: &ServicePlan,
    ) -> Result<(), DeployError> {
        let (project, req, mode, progress) = (self.project, self.req, self.mode, self.progress);
        let image_id = sp.image_id.clone().unwrap_or_default();
        let image = images::create_image_ref(self.engine, svc, &image_id).await?;
        let rule = health::rule(svc);
        let mut rotation = Rotation::of(self.edge, &project.name, svc, &sp.containers)
            .without(&self.unready.of(&project.name));
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
        // A canary resumed after a daemon restart: replica → its new container, already ready
        // and in rotation beside the old one.
        let mut resumed: BTreeMap<u32, ContainerInfo> = BTreeMap::new();
        for n in 1..=sp.replicas {
            let name = translate::container_name(project, svc, n);
            let mine: Vec<&ContainerInfo> = sp
                .containers
                .iter()
                .filter(|c| c.number == Some(n))
                .collect();
            if let Some((old, new)) = self.resumed_canary(svc, &mine) {
                replace.push((n, Some(old.clone())));
                resumed.insert(n, new.clone());
                continue;
            }
            let legacy = sp.legacy_hash.as_deref();
            let wanted = sp.image_id.as_deref();
            let keep = plan::best_container(project, svc, &mine, &sp.hash, legacy, wanted);
            for other in mine
                .iter()
                .filter(|c| Some(c.id.as_str()) != keep.map(|k| k.id.as_str()))
            {
                progress.step(
                    Some(&svc.name),
                    &format!("removing duplicate {}", other.name),
                );
                self.retire_from(&mut rotation, other, &svc.pre_stop, signal, stop_timeout)
                    .await?;
            }
            let current = keep.is_some_and(|c| {
                (sp.keep_running && c.state.running)
                    || plan::is_current(project, svc, c, &sp.hash, legacy, Some(image_id.as_str()))
            });
            match keep {
                Some(c) if current => {
                    // A container renamed by hand keeps its name (the plan leaves it be too).
                    if c.name == format!("{name}{}", plan::NEXT_SUFFIX) {
                        // A replacement cut short (kill -9): the new container may not have
                        // its aliases yet. Give them, then its name.
                        let spec =
                            translate::container_spec(project, svc, &image, Some(n), &sp.hash)?;
                        self.give_aliases(&c.id, &spec.networks).await?;
                        self.engine.rename_container(&c.id, &name).await?;
                    }
                    if !c.state.running {
                        let requested = tokio::time::Instant::now();
                        self.engine.start_container(&c.id).await?;
                        hooks::post_start(self.engine, svc, &c.id, &name, req.ready_timeout)
                            .await?;
                        ready::wait_ready(
                            self.engine,
                            svc,
                            &rule,
                            &c.id,
                            req.ready_timeout,
                            Some(requested),
                            None,
                        )
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
                rotation.hand_back().await?;
                let inherited = match old {
                    Some(o) if !o.anonymous_volumes.is_empty() => {
                        let declared = self.engine.inspect_image(&image.as_str().into()).await?;
                        let declared = declared.map(|i| i.volumes).unwrap_or_default();
                        super::anonymous::inherit(&mut spec, o, &declared)
                    }
                    _ => Vec::new(),
                };
                // Created under a temporary name: the old container keeps its name (and keeps
                // serving) until it is retired. Without an old container, under its own name
                // (one call less per container, which counts at a hundred services); so too
                // when the old one still has the temporary name (a replacement killed before
                // its rename: its own name is free, duplicates are gone).
                let next = format!("{name}{}", plan::NEXT_SUFFIX);
                let temp = match old {
                    Some(o) if o.name != next => next,
                    _ => name.clone(),
                };
                let resuming = resumed.get(n);
                if let Some(old) = old
                    && resuming.is_none()
                    && temp != name
                    && let Ok(stale) = self.engine.inspect_container(&temp).await
                    && stale.id != old.id
                {
                    // Out of the switch first, should it be routed (it was the only one).
                    rotation.leave(&stale.id).await?;
                    // With the volumes made for it (inherited ones, mounted by name, stay).
                    self.engine
                        .remove_container_and_volumes(&stale.id, true)
                        .await?;
                }
                let start_first = strategy == health::Strategy::StartFirst
                    && old.as_ref().is_some_and(|o| o.state.running)
                    && (inherited.is_empty() || super::anonymous::side_by_side(svc));
                if strategy == health::Strategy::StartFirst
                    && !inherited.is_empty()
                    && !super::anonymous::side_by_side(svc)
                {
                    progress.step(
                        Some(&svc.name),
                        &format!(
                            "keeps its anonymous volumes ({}): replaced stop-first",
                            inherited.join(", ")
                        ),
                    );
                }
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
                let id = match resuming {
                    Some(c) => c.id.clone(),
                    None => self.engine.create_container(&create).await?,
                };
                if old.is_none() {
                    self.applied.with(|a| a.created = true);
                }
                let t = Instant::now();
                match old {
                    Some(old) if start_first && resuming.is_some() => {
                        // Started, ready and given its aliases before the daemon stopped.
                        progress.step(
                            Some(&svc.name),
                            &format!("{} still serving beside {}", create.name, old.name),
                        );
                    }
                    Some(old) if start_first => {
                        let requested = tokio::time::Instant::now();
                        self.engine.start_container(&id).await?;
                        let up = match hooks::post_start(
                            self.engine,
                            svc,
                            &id,
                            &create.name,
                            req.ready_timeout,
                        )
                        .await
                        {
                            Ok(()) => {
                                ready::wait_ready(
                                    self.engine,
                                    svc,
                                    &rule,
                                    &id,
                                    req.ready_timeout,
                                    Some(requested),
                                    None,
                                )
                                .await
                            }
                            Err(e) => Err(e),
                        };
                        if let Err(e) = up {
                            // The old container never stopped serving: just drop the new one
                            // (and the volumes made for it; inherited ones stay with the old).
                            let _ = self.engine.remove_container_and_volumes(&id, true).await;
                            return Err(e);
                        }
                        // Docker's DNS may name the new address before its interface answers:
                        // meanwhile, new connections to it go to the old container.
                        let new = self.engine.inspect_container(&id).await?;
                        let pairs = hand_over_pairs(&new, old, &attachments);
                        self.hand_over(&pairs, true, HAND_OVER).await;
                        let given = self.give_aliases(&id, &attachments).await;
                        self.hand_over(&pairs, false, HAND_OVER).await;
                        given?;
                        serving(progress, svc, &name, t);
                    }
                    _ => {}
                }
                match old {
                    Some(old) if start_first => {
                        let mut r = Instant::now();
                        if rotation.active() {
                            // New connections to the published ports go to the new container
                            // at once (or step by step, a canary); the old one drains, then
                            // stops. It keeps its networks (its open connections finish).
                            let new = self.engine.inspect_container(&id).await?;
                            if let (Some(canary), Mode::Deploy, false) =
                                (svc.gantry.canary.as_ref(), mode, canaried)
                            {
                                canaried = true;
                                self.canary(svc, canary, &mut rotation, &new).await?;
                                r = Instant::now();
                            }
                            rotation.swap(Some(&old.id), &new).await?;
                            self.retire_from(
                                &mut rotation,
                                old,
                                &svc.pre_stop,
                                signal,
                                stop_timeout,
                            )
                            .await?;
                        } else {
                            let new = self.engine.inspect_container(&id).await?;
                            let pairs = hand_over_pairs(old, &new, &attachments);
                            if self.edge.available().is_ok() && !pairs.is_empty() {
                                // New connections to its address go to the new container
                                // (whatever DNS answered); it serves what it has until it
                                // exits, on its networks.
                                // (pre_stop hooks run first, within the grace period too.)
                                let hooks = if svc.pre_stop.is_empty() { 1 } else { 2 };
                                let bound = stop_timeout * hooks + HAND_OVER;
                                self.hand_over(&pairs, true, bound).await;
                                let retired = self.retire_serving(svc, old).await;
                                self.hand_over(&pairs, false, bound).await;
                                retired?;
                            } else {
                                // Out of DNS first, serving what was already sent its way,
                                // then stopped (see `drop_aliases`).
                                self.drop_aliases(old).await?;
                                tokio::time::sleep(DNS_DRAIN).await;
                                self.retire_serving(svc, old).await?;
                            }
                        }
                        retired(progress, svc, &old.name, r);
                        if create.name != name {
                            self.engine.rename_container(&id, &name).await?;
                        }
                    }
                    old => {
                        // Stop-first: nothing else serves yet, so the old container keeps its
                        // networks and published ports until it exits on its stop signal (or
                        // is killed at the end of its grace period), as Compose does.
                        if let Some(old) = old {
                            let r = Instant::now();
                            self.retire_serving(svc, old).await?;
                            retired(progress, svc, &old.name, r);
                            // Gone: the switch refuses at once rather than sending new
                            // connections to an address nobody answers.
                            rotation.leave(&old.id).await?;
                        }
                        if create.name != name {
                            self.engine.rename_container(&id, &name).await?;
                        }
                        let requested = tokio::time::Instant::now();
                        let up = async {
                            self.engine.start_container(&id).await?;
                            hooks::post_start(self.engine, svc, &id, &name, req.ready_timeout)
                                .await?;
                            let timeout = req.ready_timeout;
                            ready::wait_ready(
                                self.engine,
                                svc,
                                &rule,
                                &id,
                                timeout,
                                Some(requested),
                                old.is_none().then_some(&self.applied),
                            )
                            .await
                        };
                        if let Err(e) = up.await {
                            // An added replica of a service whose others serve: dropped, so
                            // Docker's DNS does not keep sending a share of the calls to it
                            // (what served is as it was).
                            if old.is_none() && sp.containers.iter().any(|c| c.state.running) {
                                let _ = self.engine.remove_container_and_volumes(&id, true).await;
                            }
                            return Err(e);
                        }
                        if rotation.active() {
                            let new = self.engine.inspect_container(&id).await?;
                            rotation
                                .swap(old.as_ref().map(|o| o.id.as_str()), &new)
                                .await?;
                        }
                        serving(progress, svc, &name, t);
                    }
                }
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
            self.retire_from(&mut rotation, extra, &svc.pre_stop, signal, stop_timeout)
                .await?;
        }
        self.applied
            .with(|a| a.ready.insert(svc.name.clone(), ready));
        Ok(())
    }

    /// The (old, new) containers of a replica whose canary [`Rollout::resume`] continues: both
    /// still run, as recorded when the daemon stopped.
    fn resumed_canary<'c>(
        &self,
        svc: &Service,
        mine: &[&'c ContainerInfo],
    ) -> Option<(&'c ContainerInfo, &'c ContainerInfo)> {
        let r = self.resume.as_ref().filter(|r| r.service == svc.name)?;
        let running = |id: &str| mine.iter().copied().find(|c| c.id == id && c.state.running);
        let new = running(&r.new.id)?;
        let old = r.old.iter().find_map(|o| running(&o.id))?;
        Some((old, new))
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

    /// Starts (`on`) or ends the hand-over of each (from, to) address pair through the edge
    /// switch's kernel rules ([`crate::edge::Edge::hand_over`]); a failure is logged (the
    /// replacement goes on, as without the switch).
    /// `at_most` bounds it should this process die before it ends it.
    async fn hand_over(&self, pairs: &[(Ipv4Addr, Ipv4Addr)], on: bool, at_most: Duration) {
        for (from, to) in pairs {
            if let Err(e) = self.edge.hand_over(*from, on.then_some(*to), at_most).await {
                tracing::warn!(%from, %to, on, error = %e, "edge hand-over not applied");
            }
        }
    }

    /// Takes a container that serves under its service's name out of Docker's DNS while it
    /// keeps its address: reconnected without its aliases to the networks where it has them.
    /// Docker gives the address just freed back (with the MAC derived from it), so a request
    /// that hits the short gap is retransmitted to the same container and answered.
    async fn drop_aliases(&self, old: &ContainerInfo) -> Result<(), DeployError> {
        if !old.state.running {
            return Ok(());
        }
        for network in &old.networks {
            self.engine.disconnect_network(&old.id, network).await?;
            let attachment = crate::engine::NetworkAttachment {
                network: network.clone(),
                ..Default::default()
            };
            self.engine.connect_network(&old.id, &attachment).await?;
        }
        Ok(())
    }

    /// Retires a container of a service that may be behind the edge switch: out of rotation
    /// first, its open connections drained (up to `timeout`, its grace period), then stopped
    /// while it keeps its networks. Without the switch: off its networks, then stopped.
    async fn retire_from(
        &self,
        rotation: &mut Rotation<'_>,
        c: &ContainerInfo,
        pre_stop: &[Hook],
        signal: Option<&str>,
        timeout: Duration,
    ) -> Result<(), DeployError> {
        if !rotation.active() || !c.state.running {
            return self
                .retire(c, pre_stop, signal, timeout, Leave::OffNetworksFirst)
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
        let rest = rest_of_grace(timeout, waited);
        self.retire(c, pre_stop, signal, rest, Leave::ServeUntilExit)
            .await
    }

    /// Retires a replaced container of `svc` that keeps its networks and serves until it exits
    /// on the service's stop signal (its `pre_stop` hooks first, see [`Self::retire`]).
    pub(super) async fn retire_serving(
        &self,
        svc: &Service,
        c: &ContainerInfo,
    ) -> Result<(), DeployError> {
        let (signal, timeout) = (svc.stop_signal.as_deref(), translate::stop_timeout(svc));
        self.retire(c, &svc.pre_stop, signal, timeout, Leave::ServeUntilExit)
            .await
    }

    /// Retires a container whose service Gantry has no description of (the last good
    /// release lacks it: a rollback removing the new service of the failed deploy): serving
    /// until it exits on its own stop signal (Docker's choice when none is given) within the
    /// grace period it was created with (10 s if none, or if Docker cannot say).
    pub(super) async fn retire_own(&self, c: &ContainerInfo) -> Result<(), DeployError> {
        let own = match self.engine.inspect_container(&c.id).await {
            Ok(info) => info.stop_timeout,
            Err(EngineError::NotFound { .. }) => return Ok(()),
            Err(e) => {
                tracing::warn!(container = %c.name, error = %e, "grace period unknown: 10 s");
                None
            }
        };
        let timeout = own.unwrap_or(Duration::from_secs(10));
        self.retire(c, &[], None, timeout, Leave::ServeUntilExit)
            .await
    }

    /// Takes a container out of service, then removes it. Its `pre_stop` hooks run first (at
    /// most its grace period, see [`hooks::pre_stop`]); `leave` says whether it then leaves
    /// its networks (something else already serves) or keeps serving until it exits.
    pub(super) async fn retire(
        &self,
        c: &ContainerInfo,
        pre_stop: &[Hook],
        signal: Option<&str>,
        timeout: Duration,
        leave: Leave,
    ) -> Result<(), DeployError> {
        if c.state.running {
            self.applied.with(|a| a.touched_running = true);
            if !pre_stop.is_empty() {
                let service = c.service.as_deref().unwrap_or_default();
                hooks::pre_stop(
                    self.engine,
                    self.progress,
                    pre_stop,
                    service,
                    &c.id,
                    &c.name,
                    timeout,
                )
                .await;
            }
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

/// What is left of a grace period `grace` after a drain of `drained`, for the stop that follows
/// (its `pre_stop` hooks and stop signal): the drain and the stop share one grace period, as a
/// Kubernetes pod's preStop and SIGTERM share its termination grace period; at least
/// [`STOP_FLOOR`] (never more than `grace`), so a process whose connections held the drain to
/// its end still gets a moment to exit on its signal.
pub(super) fn rest_of_grace(grace: Duration, drained: Duration) -> Duration {
    grace.saturating_sub(drained).max(STOP_FLOOR.min(grace))
}

/// The least time a drained container gets between its stop signal and its kill.
const STOP_FLOOR: Duration = Duration::from_secs(2);

/// The (address of `from`, address of `to`) pairs on the networks where `attachments` give
/// aliases: what a hand-over between the two redirects.
fn hand_over_pairs(
    from: &ContainerInfo,
    to: &ContainerInfo,
    attachments: &[crate::engine::NetworkAttachment],
) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    attachments
        .iter()
        .filter(|a| !a.aliases.is_empty())
        .filter_map(|a| {
            let ip = |c: &ContainerInfo| c.ip_addresses.get(&a.network)?.parse().ok();
            Some((ip(from)?, ip(to)?))
        })
        .collect()
}

/// How long a hand-over of addresses may outlive its rollout (a process killed in the middle),
/// beyond the stop grace period of the container leaving.
const HAND_OVER: Duration = Duration::from_secs(60);

/// How long a container taken out of DNS keeps serving before its stop signal: clients
/// that resolved its address just before still reach it.
const DNS_DRAIN: Duration = Duration::from_secs(1);

/// Reports the moment a new container serves.
fn serving(progress: &dyn Progress, svc: &Service, name: &str, since: Instant) {
    progress.step(
        Some(&svc.name),
        &format!("{name} serving after {:.1}s", since.elapsed().as_secs_f64()),
    );
}

/// Reports an old container's retirement, apart from when the new one served.
fn retired(progress: &dyn Progress, svc: &Service, name: &str, since: Instant) {
    progress.step(
        Some(&svc.name),
        &format!("{name} retired in {:.1}s", since.elapsed().as_secs_f64()),
    );
}

pub(super) fn verb(action: Action) -> &'static str {
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
