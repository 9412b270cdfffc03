//! The rollout scheduler: which service converges when, several at once.
//!
//! Design: [`Rollout::run`] first refuses what could only fail part-way ([`Rollout::preflight`]:
//! a secret that is not a file, a container Docker could not be asked for), then prepares the
//! stack (leftover one-off containers removed, networks
//! and volumes ensured, jobs whose dependencies need no change run first), then walks the plan
//! as a dependency graph: every service whose `depends_on` services (those in the plan) have
//! finished is started at once, in plan order among those eligible. What is bounded is the
//! work Docker does: the rollout's engine lets [`super::DeployRequest::concurrency`] calls in
//! flight ([`crate::engine::Bounded`]), so a service that only waits for its readiness or its
//! `min_ready` holds nothing back (a hundred services with a 2 s `min_ready` each wait their
//! 2 s side by side, not sixteen at a time). Each service is one task ([`Rollout::service_task`]) that waits for
//! its dependencies' conditions (`service_healthy` still waits for health), converges the
//! service by its strategy (`rollout.rs`) and returns its result; the scheduler records it.
//! Services leaving the files are removed last, after everything else, as before.
//!
//! On the first failure that stops the rollout (failure_action `rollback` or `pause`, or any
//! failure on the way back) no new service starts; the ones in flight finish (each is careful
//! on its own: a start-first replacement that fails drops its new container), then the first
//! error is returned and the caller rolls back as before. `failure_action: continue` records
//! the failure and goes on; the services waiting for it then fail on their dependency.
//!
//! Limits: replicas of one service still go batch by batch (`update_config.parallelism`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::compose::FailureAction;

use super::plan::{Action, ServicePlan};
use super::rollout::{Mode, Rollout, record, verb};
use super::{DeployError, translate};
use crate::engine;

/// Docker calls in flight at once unless [`super::DeployRequest::concurrency`] says otherwise.
/// Docker's create and start wait on much besides the CPU (mounts, network namespaces): a
/// hundred services cold took 19.0 s with 16 in flight and 16.0 s with 64 (release build,
/// `bench/deploy.sh`, 2 cores).
pub const DEFAULT_CONCURRENCY: usize = 64;

/// How one service task ended, for the scheduler.
enum Ended {
    Done,
    /// Failed under `failure_action: continue`: recorded, the rollout goes on.
    Continued(String),
    /// Failed: nothing new starts, the rollout ends with this error.
    Stop(DeployError),
}

impl Rollout<'_> {
    /// Applies the plan: leftovers of interrupted jobs removed, networks and volumes ensured,
    /// jobs run (early when nothing they depend on changes), then every service converged as
    /// soon as what it depends on is done, several at once.
    pub(super) async fn run(&self) -> Result<(), DeployError> {
        let result = self.run_inner().await;
        // Records in plan order, whatever order the services finished in.
        let position = |service: &str| {
            self.plan
                .services
                .iter()
                .position(|s| s.service == service)
                .unwrap_or(usize::MAX)
        };
        self.applied
            .with(|a| a.records.sort_by_key(|r| position(&r.service)));
        result
    }

    async fn run_inner(&self) -> Result<(), DeployError> {
        let (project, plan, mode) = (self.project, self.plan, self.mode);
        self.preflight()?;
        // Leftovers of interrupted job runs: a finished one goes. One still running is a
        // migration half-way, never killed: a deploy waits for it to end (at most its job
        // timeout, else it stops before anything changed); a rollback, which runs no job,
        // leaves it be.
        for c in self.engine.list_containers(&project.name, true).await? {
            if c.oneoff && c.state.running {
                let service = c.service.clone().unwrap_or_default();
                if mode != Mode::Deploy {
                    tracing::warn!(stack = %project.name, container = %c.name, "a job container of an earlier deploy is still running; left as it is");
                    continue;
                }
                let limit = project
                    .services
                    .get(&service)
                    .map_or(super::jobs::JOB_TIMEOUT, super::jobs::job_timeout);
                self.progress.step(
                    Some(&service),
                    &format!(
                        "waiting for {} of an earlier deploy to finish (at most {})",
                        c.name,
                        humantime::format_duration(limit)
                    ),
                );
                let ended = tokio::time::timeout(limit, self.engine.wait_container(&c.id)).await;
                if ended.is_err() {
                    return Err(DeployError::JobStillRunning {
                        service,
                        container: c.name.clone(),
                    });
                }
            }
            if c.oneoff {
                tracing::info!(stack = %project.name, container = %c.name, "removing leftover one-off container");
                self.engine
                    .remove_container_and_volumes(&c.id, true)
                    .await?;
            }
        }
        // Docker cannot change a network or volume in place: one that exists is used as it
        // is, and the deploy says what differs from the files.
        for (key, spec, external) in translate::network_specs(project) {
            if !external {
                let ensured = self.engine.ensure_network(&spec).await?;
                if let Some(found) = ensured.labels.get(engine::NETWORK_CONFIG)
                    && !ensured.created
                {
                    let differs = engine::network_differences(&spec, found, "on the network");
                    self.kept_as_it_is("network", &key, &spec.name, &differs);
                }
            }
        }
        for (key, spec, external) in translate::volume_specs(project) {
            if !external {
                let ensured = self.engine.ensure_volume(&spec).await?;
                if let Some(found) = ensured.labels.get(engine::VOLUME_CONFIG)
                    && !ensured.created
                {
                    let differs = engine::volume_differences(&spec, found, "on the volume");
                    self.kept_as_it_is("volume", &key, &spec.name, &differs);
                }
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
        self.applied.with(|a| a.under_way = true);
        // What needs no change is ready from the start: a job that runs first may wait on it.
        self.applied.with(|a| {
            for sp in plan
                .services
                .iter()
                .filter(|s| s.action == Action::Unchanged && !s.job)
            {
                a.ready.insert(
                    sp.service.clone(),
                    sp.containers.iter().map(|c| c.id.clone()).collect(),
                );
            }
        });
        let mut done: BTreeSet<&str> = BTreeSet::new();
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
                    done.insert(sp.service.as_str());
                }
            }
        }

        let mut waiting: Vec<&ServicePlan> = plan
            .services
            .iter()
            .filter(|sp| !done.contains(sp.service.as_str()))
            .collect();
        let mut running = FuturesUnordered::new();
        // Services in flight that stay, and those leaving (removed).
        let mut staying = 0_usize;
        let mut leaving: BTreeSet<&str> = BTreeSet::new();
        let mut stop: Option<DeployError> = None;
        let mut continued = Vec::new();
        loop {
            if stop.is_none() {
                let mut i = 0;
                while i < waiting.len() {
                    let sp = waiting[i];
                    let eligible = if sp.action == Action::Remove {
                        // Leaving services go last, after everything else, all at once but in
                        // reverse dependency order, as `docker compose down` stops them.
                        staying == 0
                            && waiting.iter().all(|w| w.action == Action::Remove)
                            && !depended_on(sp, &waiting, &leaving, plan)
                    } else {
                        self.dependencies_done(sp, &done)
                    };
                    if eligible {
                        waiting.remove(i);
                        if sp.action == Action::Remove {
                            leaving.insert(sp.service.as_str());
                        } else {
                            staying += 1;
                        }
                        running.push(async move { (sp, self.service_task(sp).await) });
                    } else {
                        i += 1;
                    }
                }
            }
            let Some((sp, ended)) = running.next().await else {
                break;
            };
            if sp.action == Action::Remove {
                leaving.remove(sp.service.as_str());
            } else {
                staying -= 1;
            }
            done.insert(sp.service.as_str());
            match ended {
                Ended::Done => {}
                Ended::Continued(failure) => continued.push(failure),
                Ended::Stop(e) => {
                    if stop.is_none() {
                        if !running.is_empty() {
                            self.progress.step(
                                Some(&sp.service),
                                "failed; waiting for the services in flight to finish",
                            );
                        }
                        stop = Some(e);
                    }
                }
            }
        }
        if let Some(e) = stop {
            return Err(e);
        }
        if !waiting.is_empty() {
            // Only possible with a dependency cycle, which the loader rejects.
            return Err(DeployError::Dependency {
                service: waiting[0].service.clone(),
                dependency: "(cycle)".into(),
                problem: "is never done".into(),
            });
        }
        // Created containers watched together: none may have exited meanwhile.
        self.check_together().await?;
        self.applied
            .with(|a| a.continued.extend(continued.iter().cloned()));
        if !continued.is_empty() {
            return Err(DeployError::Continued {
                failures: continued,
            });
        }
        Ok(())
    }

    /// Says that the existing network or volume `name` (key `key` in the files) differs from
    /// the files in `differs` and is used as it is, and what to do.
    fn kept_as_it_is(&self, what: &str, key: &str, name: &str, differs: &[String]) {
        if differs.is_empty() {
            return;
        }
        let stack = &self.project.name;
        let todo = match what {
            "network" => format!(
                "to apply it, `gantry down {stack}`, then deploy (the stack stops meanwhile)"
            ),
            _ => format!(
                "to apply it, `gantry down {stack} --volumes` (its data is lost: back it up), \
                 then deploy"
            ),
        };
        let message = format!(
            "warning: {what} {name} ({what}s.{key}) differs from the files: {}; Docker cannot \
             change a {what} in place, so it is used as it is; {todo}",
            differs.join("; ")
        );
        self.progress.step(None, &message);
    }

    /// Refuses, before anything changes, what would otherwise fail when its service is
    /// reached, after earlier services were replaced: a secret or config that is not a file
    /// (naming the compose file and the key, exit 65), then any container the rollout will
    /// create that cannot be translated for Docker. Says which `uid`/`gid`/`mode` of the
    /// services that change are not applied.
    fn preflight(&self) -> Result<(), DeployError> {
        let project = self.project;
        crate::compose::mounted::check_sources(project)?;
        for sp in &self.plan.services {
            if matches!(sp.action, Action::Unchanged | Action::Remove) {
                continue;
            }
            let Some(svc) = project.services.get(&sp.service) else {
                continue;
            };
            for warning in crate::compose::mounted::ignored_options_of(svc) {
                self.progress
                    .step(Some(&sp.service), &format!("warning: {warning}"));
            }
            let image = sp
                .image_id
                .clone()
                .or_else(|| svc.image.clone())
                .unwrap_or_default();
            translate::container_spec(project, svc, &image, (!sp.job).then_some(1), &sp.hash)?;
        }
        Ok(())
    }

    /// Whether every service `sp` depends on that is in the plan is done (one leaving the
    /// stack, an optional dependency, goes last and holds nothing up).
    fn dependencies_done(&self, sp: &ServicePlan, done: &BTreeSet<&str>) -> bool {
        let Some(svc) = self.project.services.get(&sp.service) else {
            return true;
        };
        svc.depends_on.keys().all(|d| {
            done.contains(d.as_str()) || self.plan.get(d).is_none_or(|p| p.action == Action::Remove)
        })
    }

    /// One service's part of the rollout, from waiting for its dependencies to its record.
    async fn service_task(&self, sp: &ServicePlan) -> Ended {
        let (project, mode, progress) = (self.project, self.mode, self.progress);
        let t0 = Instant::now();
        let _busy = (sp.action != Action::Unchanged).then(|| self.activity.task(&project.name));
        match sp.action {
            Action::Unchanged => {
                // Its containers are in `ready` since the start (see `run_inner`).
                self.applied.with(|a| {
                    a.records
                        .push(record(&sp.service, Action::Unchanged, Duration::ZERO, None));
                });
                Ended::Done
            }
            Action::Run => {
                let result = match mode {
                    Mode::Deploy => {
                        let svc = &project.services[&sp.service];
                        match self.wait_dependencies(svc).await {
                            Ok(()) => self.run_job(svc, sp).await,
                            Err(e) => Err(e),
                        }
                    }
                    Mode::Rollback => Ok(()),
                };
                result.map_or_else(Ended::Stop, |()| Ended::Done)
            }
            Action::Remove => {
                let why = match (self.req.down, self.mode) {
                    (true, _) => "removing (gantry down)",
                    (false, Mode::Deploy) => "removing (no longer in the files)",
                    (false, Mode::Rollback) => "removing (not in the release rolled back to)",
                };
                progress.step(Some(&sp.service), why);
                // Like `docker compose down`: each container serves until it exits on the
                // service's stop signal within its grace period, its `pre_stop` hooks first
                // (a service the last good release does not have: the container's own).
                let result = futures_util::future::join_all(sp.containers.iter().map(|c| {
                    match sp.last.as_deref() {
                        Some(svc) => {
                            futures_util::future::Either::Left(self.retire_serving(svc, c))
                        }
                        None => futures_util::future::Either::Right(self.retire_own(c)),
                    }
                }))
                .await
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(drop);
                match result {
                    Ok(()) => {
                        self.applied.with(|a| {
                            a.records
                                .push(record(&sp.service, Action::Remove, t0.elapsed(), None));
                        });
                        Ended::Done
                    }
                    Err(e) => Ended::Stop(e),
                }
            }
            Action::Create | Action::Recreate | Action::Start | Action::Scale => {
                let svc = &project.services[&sp.service];
                let why = if sp.reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", sp.reasons.join(", "))
                };
                progress.step(Some(&sp.service), &format!("{}{why}", verb(sp.action)));
                let result = match self.wait_dependencies(svc).await {
                    Ok(()) => self.converge_service(svc, sp).await,
                    Err(e) => Err(e),
                };
                let err = result.as_ref().err().map(ToString::to_string);
                self.applied.with(|a| {
                    a.records
                        .push(record(&sp.service, sp.action, t0.elapsed(), err))
                });
                match result {
                    Ok(()) => Ended::Done,
                    Err(e) => {
                        let action = svc
                            .update_config()
                            .and_then(|u| u.failure_action)
                            .unwrap_or(FailureAction::Rollback);
                        match (mode, action) {
                            (Mode::Deploy, FailureAction::Pause) => {
                                Ended::Stop(DeployError::Paused {
                                    service: sp.service.clone(),
                                    source: Box::new(e),
                                })
                            }
                            (Mode::Deploy, FailureAction::Continue) => {
                                progress.step(
                                    Some(&sp.service),
                                    "failed; continuing (failure_action: continue)",
                                );
                                Ended::Continued(format!("{}: {e}", sp.service))
                            }
                            _ => Ended::Stop(match e {
                                DeployError::Engine(source) => DeployError::ServiceEngine {
                                    service: sp.service.clone(),
                                    source,
                                },
                                e => e,
                            }),
                        }
                    }
                }
            }
        }
    }
}

/// Whether a leaving service that depended on `sp` (as the last good release had it) is still
/// waiting or leaving: `sp` goes after it.
fn depended_on(
    sp: &ServicePlan,
    waiting: &[&ServicePlan],
    leaving: &BTreeSet<&str>,
    plan: &super::plan::Plan,
) -> bool {
    let needs = |other: &ServicePlan| {
        other.service != sp.service
            && other
                .last
                .as_deref()
                .is_some_and(|svc| svc.depends_on.contains_key(&sp.service))
    };
    waiting.iter().any(|w| needs(w)) || leaving.iter().filter_map(|name| plan.get(name)).any(needs)
}

#[cfg(test)]
mod tests;
