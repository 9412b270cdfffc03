//! Orchestration and ledger transitions: deploy, rollback and reconcile as whole jobs.
//!
//! Design: [`Deployer`] holds the engine, the ledger and the registries. Each job takes the
//! stack's lock, reads the ledger once, decides (the plan; the release to return to), records
//! the release `in_progress`, hands the plan to a `Rollout`, and records how it ended:
//! succeeded, failed before anything running changed, stopped by `failure_action`, rolled back
//! to the last good release, rollback failed, or `not_recorded` (good, but the write failed:
//! kept in memory as what runs). Env-file values never enter a release (`recorded.rs`).
//! Images are resolved in `images.rs`, rollout `rollout.rs`, jobs `jobs.rs`, readiness `ready.rs`.
//!
//! Limits: one job per stack at a time (the lock); a deploy that fails with no earlier good
//! release cannot roll back and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::compose::{self, Project};
use crate::engine::{Bounded, Engine, ImageRef};
use crate::ledger::{Holder, ImageRecord, Ledger, Outcome, Release, StackLedger, now_rfc3339};

use super::plan::{self, Action, Plan};
pub use super::recorded::project_from_release;
use super::recorded::{env_file_hashes, env_file_refs, release_model};
use super::rollout::{Applied, Mode, Rollout, record};
use super::{DeployError, DeployReport, DeployRequest, Progress};

/// Runs deploys against one engine and one ledger.
#[derive(Clone)]
pub struct Deployer {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) ledger: Ledger,
    pub(super) registries: Arc<dyn crate::registry::Registries>,
    /// stack → a release that ended well but could not be written (state dir full or
    /// read-only). It is what runs: the next job of the stack writes it first, reconcile and
    /// supervision take it as the last good release until then.
    pub(super) unrecorded: Arc<Mutex<BTreeMap<String, Release>>>,
    pub(super) edge: Arc<dyn crate::edge::Edge>,
    /// The replicas out of rotation as not ready (the daemon's probes; empty elsewhere).
    pub(super) unready: crate::edge::Unready,
    /// What the rollouts are doing now (read by the daemon when it stops).
    pub(super) activity: super::Activity,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl Deployer {
    pub fn new(engine: Arc<dyn Engine>, ledger: Ledger) -> Self {
        Self {
            engine,
            ledger,
            registries: Arc::new(crate::registry::Anonymous),
            unrecorded: Arc::default(),
            edge: Arc::new(crate::edge::Unavailable("not set up".into())),
            unready: crate::edge::Unready::default(),
            activity: super::Activity::default(),
        }
    }

    /// What this deployer's rollouts are doing now ([`super::Activity`]).
    pub fn activity(&self) -> &super::Activity {
        &self.activity
    }

    /// Publishes fixed TCP host ports through `edge` (see [`crate::edge`]).
    pub fn with_edge(mut self, edge: Arc<dyn crate::edge::Edge>) -> Self {
        self.edge = edge;
        self
    }

    /// Leaves the replicas `unready` names out of rotation (the daemon's readiness probes).
    pub fn with_unready(mut self, unready: crate::edge::Unready) -> Self {
        self.unready = unready;
        self
    }

    pub fn edge(&self) -> &Arc<dyn crate::edge::Edge> {
        &self.edge
    }

    /// The release of `stack` that runs but could not be recorded, if any.
    pub fn unrecorded(&self, stack: &str) -> Option<Release> {
        self.unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stack)
            .cloned()
    }

    /// Writes a finished release; when that fails, a release that ended well becomes the
    /// report's `not_recorded` outcome (what runs is the new release, not "nothing changed")
    /// and is kept in memory for the next job to write.
    pub(super) fn record_end(
        &self,
        stack: &StackLedger,
        release: &Release,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        let Err(e) = stack.write(release) else {
            return Ok(());
        };
        tracing::error!(stack = %stack.name(), release = %release.id(), outcome = %release.outcome, error = %e, "the job ended but its release could not be recorded");
        if !release.outcome.is_good() {
            // What happened still decides the report and the exit code (a rollback that
            // worked is still exit 2); the write error is added to it, not put in its place.
            report.outcome = release.outcome;
            report.services = release.services.clone();
            let what = release.error.as_deref().unwrap_or("the job failed");
            report.error = Some(format!(
                "{what}\n{} could not be recorded: {e} (hint: free space in the state dir)",
                release.id()
            ));
            return Err(DeployError::NotRecorded);
        }
        self.unrecorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stack.name().to_owned(), release.clone());
        report.outcome = Outcome::NotRecorded;
        report.services = release.services.clone();
        report.error = Some(format!(
            "the rollout succeeded and {} is running, but its release could not be recorded: {e} (hint: free space in the state dir; the next deploy, rollback or reconcile of the stack records it)",
            release.id()
        ));
        Err(DeployError::NotRecorded)
    }

    /// Uses `registries` for pull credentials.
    pub fn with_registries(mut self, registries: Arc<dyn crate::registry::Registries>) -> Self {
        self.registries = registries;
        self
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Loads the project and checks it can be deployed at all (or takes the one the request
    /// carries already loaded).
    pub fn load(&self, req: &DeployRequest) -> Result<Project, DeployError> {
        preloaded_or_load(req.preloaded.clone(), &req.load)
    }

    /// What a deploy would do, without doing it (nothing is pulled).
    pub async fn plan(&self, req: &DeployRequest) -> Result<Plan, DeployError> {
        let project = self.load(req)?;
        let stack = self.ledger.stack(&req.stack)?;
        let references: BTreeSet<&String> = project
            .services
            .values()
            .filter_map(|s| s.image.as_ref())
            .collect();
        let (containers, images) = futures_util::future::join(
            self.engine.list_containers(&project.name, true),
            join_all(references.iter().map(|r| async move {
                let info = self
                    .engine
                    .inspect_image(&ImageRef::new(r.as_str()))
                    .await?;
                Ok::<_, DeployError>((*r, info))
            })),
        )
        .await;
        let containers = containers?;
        let mut by_ref = BTreeMap::new();
        for found in images {
            let (reference, info) = found?;
            if let Some(info) = info {
                by_ref.insert(reference, info.id);
            }
        }
        let image_ids: BTreeMap<String, String> = project
            .services
            .values()
            .filter_map(|s| Some((s.name.clone(), by_ref.get(s.image.as_ref()?)?.clone())))
            .collect();
        let releases = stack.releases()?;
        let previous = releases.iter().rev().find(|r| r.outcome.is_good());
        let jobs = releases.last().map(|r| r.jobs.clone()).unwrap_or_default();
        Ok(
            plan::compute(&project, &containers, &image_ids, previous, &jobs)
                .with_edge(&project, self.edge.available()),
        )
    }

    /// Deploys. Never fails: the report says how it ended and carries the error.
    pub async fn deploy(&self, req: &DeployRequest, progress: &dyn Progress) -> DeployReport {
        let started = Instant::now();
        let mut report = DeployReport::failed(&req.stack);
        let result = self.deploy_inner(req, progress, &mut report).await;
        finish(report, result, started)
    }

    async fn deploy_inner(
        &self,
        req: &DeployRequest,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        let deadline = tokio::time::Instant::now() + req.timeout;
        let stack = self.ledger.stack(&req.stack)?;
        let verb = if req.down { "down" } else { "deploy" };
        let holder = Holder::me(
            &format!("gantry {verb} {}", req.stack),
            req.deploy_id.as_deref(),
        );
        // A stack lock that is free at once lets Docker list the containers while the files
        // load and the ledger is read, off the worker (a no-op deploy is mostly that wait). A
        // busy lock is waited for first: whoever holds it (`gantry fetch-bundle` installing
        // the stack's next files, the first ones included, another deploy) may be changing
        // them. The files are read only under the lock, so never half of one bundle and half
        // of another.
        let (project, lock, mut releases, listing) = match stack.try_lock(&holder) {
            Ok(lock) => {
                let engine = self.engine.clone();
                let name = req.stack.clone();
                let listing =
                    tokio::spawn(async move { engine.list_containers(&name, true).await });
                let load = req.load.clone();
                let preloaded = req.preloaded.clone();
                let ledger = stack.clone();
                let (project, releases) = tokio::task::spawn_blocking(move || {
                    let project = preloaded_or_load(preloaded, &load)?;
                    Ok::<_, DeployError>((project, ledger.releases()?))
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
                (project, lock, releases, Some(listing))
            }
            Err(_) => {
                let lock = stack.lock(&holder, req.lock_wait).await?;
                let project = self.load(req)?;
                // The ledger is read once per deploy.
                let releases = stack.releases()?;
                (project, lock, releases, None)
            }
        };
        self.flush_unrecorded(&stack, &mut releases);
        // A canary left by a daemon that stopped is resumed by the next daemon before any
        // other job; a deploy that gets here instead (`--local`) converges as after any
        // interruption, and the canary's record goes.
        stack.clear_canary();
        let recovered = stack.recover_in(&lock, &mut releases)?;
        // A deploy before this one that was killed, or whose rollback failed, may have left the
        // stack anywhere between two releases (and so may one that failed after such a deploy
        // without rolling back): a failure now goes back to the last good one.
        let unsettled = releases.last().is_some_and(|r| {
            matches!(r.outcome, Outcome::Interrupted | Outcome::RollbackFailed) || r.unsettled
        });
        if !recovered.is_empty() {
            progress.step(
                None,
                &format!("recovered interrupted release(s) {recovered:?}; converging"),
            );
        }
        // A deploy id is answered from the ledger while its release is the last one with a
        // deploy id; a later deploy under another id superseded it, and the id asks for its
        // files again (a CI re-run). A rollback, a down or the env-file watcher since does not
        // (a retried job must not undo a rollback). A deploy that failed before anything
        // running changed because of something passing (Docker unreachable, 69; a job of a
        // killed deploy still running, 75: "deploy again") answers nothing: its retry applies.
        let passing = |r: &Release| {
            r.outcome == Outcome::Failed
                && matches!(
                    r.exit_code.and_then(crate::ExitCode::from_code),
                    Some(crate::ExitCode::Unavailable | crate::ExitCode::TempFail)
                )
        };
        let last = releases
            .iter()
            .rev()
            .find(|r| r.outcome != Outcome::Interrupted && !passing(r) && r.deploy_id.is_some());
        if let Some(id) = &req.deploy_id
            && let Some(done) = last.filter(|r| r.deploy_id.as_deref() == Some(id.as_str()))
        {
            progress.step(
                None,
                &format!("deploy id {id} was already applied as {}", done.id()),
            );
            report.release = Some(done.id());
            report.outcome = done.outcome;
            report.exit_code_override = done.exit_code.and_then(crate::ExitCode::from_code);
            report.repeated = true;
            report.services = done.services.clone();
            report.error = done.error.clone();
            return Ok(());
        }
        if let Some(id) = &req.deploy_id
            && let Some(old) = releases.iter().rev().find(|r| r.deploy_id == req.deploy_id)
        {
            let old = old.id();
            progress.step(None, &format!("deploy id {id} was applied as {old}; a later release superseded it: applying it again"));
        }

        // Images and containers are asked for together (a no-op deploy is these two calls);
        // the containers are listed again if a pull took time in which they could change.
        let listed = async {
            match listing {
                Some(task) if project.name == req.stack => task.await.ok(),
                _ => Some(self.engine.list_containers(&project.name, true).await),
            }
        };
        // --timeout bounds the pulls too: a stalled pull is dropped (its request cancelled)
        // and the stack freed, before anything running changed.
        let (resolved, containers) = tokio::time::timeout_at(
            deadline,
            futures_util::future::join(self.resolve_images(&project, progress), listed),
        )
        .await
        .map_err(|_| DeployError::Timeout { after: req.timeout })?;
        let (images, pulled) = resolved?;
        let containers = match (pulled, containers) {
            (false, Some(Ok(c))) => c,
            _ => self.engine.list_containers(&project.name, true).await?,
        };
        let image_ids: BTreeMap<String, String> = images
            .iter()
            .map(|(svc, (_, info))| (svc.clone(), info.id.clone()))
            .collect();
        let previous = releases.iter().rev().find(|r| r.outcome.is_good()).cloned();
        let jobs_done = releases.last().map(|r| r.jobs.clone()).unwrap_or_default();
        let plan = plan::compute(
            &project,
            &containers,
            &image_ids,
            previous.as_ref(),
            &jobs_done,
        )
        .with_edge(&project, self.edge.available());

        // A no-op with no deploy id to remember leaves the ledger as it is: nothing happened.
        // A down records one anyway when the last good release still had services: the
        // ledger must say the stack is down, or supervision would bring them back.
        let down_to_record = req.down && previous.as_ref().is_some_and(|p| !p.runs_nothing());
        // A down of a stack never deployed here (a typo) records nothing either.
        let never_deployed = req.down && previous.is_none();
        if plan.is_noop()
            && req.deploy_id.is_none()
            && (previous.is_some() || never_deployed)
            && !down_to_record
        {
            progress.step(
                None,
                if never_deployed {
                    "nothing to do: the stack was never deployed here"
                } else if req.down {
                    "nothing to do: the stack is down"
                } else {
                    "nothing to do: every service is up to date"
                },
            );
            if plan.services.iter().any(|s| !s.edge.is_empty()) {
                // The switch is not persistent (a reboot clears it): routes follow what runs.
                self.sync_routes(&project.name).await?;
            }
            report.release = previous.as_ref().map(Release::id);
            report.outcome = Outcome::Unchanged;
            report.services = plan
                .services
                .iter()
                .map(|s| record(&s.service, Action::Unchanged, Duration::ZERO, None))
                .collect();
            // A down of a stack down already removes what is left of its networks.
            self.after_down(&stack, &lock, req, deadline, progress, report)
                .await;
            return Ok(());
        }

        // A canary needs the switch and a start-first rollout (old and new side by side);
        // every port the switch is to own must be free. All are checked before anything
        // changes.
        for sp in plan.services.iter().filter(|s| s.action.changes()) {
            let canary = project
                .services
                .get(&sp.service)
                .is_some_and(|s| s.gantry.canary.is_some());
            if !canary {
                continue;
            }
            let why = if sp.strategy_reason.is_empty() {
                "the service publishes none".to_owned()
            } else {
                sp.strategy_reason.clone()
            };
            if sp.edge.is_empty() {
                return Err(DeployError::Unsupported {
                    service: sp.service.clone(),
                    reason: format!(
                        "x-gantry.canary needs a published TCP port through the edge switch \
                         ({why})"
                    ),
                });
            }
            if sp.strategy == Some(super::health::Strategy::StopFirst) {
                return Err(DeployError::Unsupported {
                    service: sp.service.clone(),
                    reason: format!(
                        "x-gantry.canary runs the new version beside the old one, but this \
                         service is replaced stop-first ({why}); remove the canary or what \
                         makes it stop-first"
                    ),
                });
            }
        }
        for sp in plan
            .services
            .iter()
            .filter(|s| s.action.changes() && !s.edge.is_empty())
        {
            if let Some(svc) = project.services.get(&sp.service) {
                super::edge::Rotation::of(self.edge.as_ref(), &project.name, svc, &sp.containers)
                    .check_ports(&sp.containers)
                    .await?;
            }
        }

        let mut release = stack.begin_after(
            &lock,
            &releases,
            Release {
                seq: 0,
                stack: req.stack.clone(),
                deploy_id: req.deploy_id.clone(),
                started_at: now_rfc3339(),
                finished_at: None,
                outcome: Outcome::InProgress,
                pid: 0,
                variables: req.variables.clone(),
                files: project.config_files.clone(),
                model: release_model(&project),
                x_gantry: project
                    .services
                    .iter()
                    .filter_map(|(n, s)| s.x_gantry.clone().map(|x| (n.clone(), x)))
                    .collect(),
                images: images
                    .iter()
                    .map(|(svc, (reference, info))| {
                        let digest = info.digest_for(&ImageRef::new(reference)).map(|d| {
                            format!("{}@{}", ImageRef::new(reference).repository(), d.as_str())
                        });
                        (
                            svc.clone(),
                            ImageRecord {
                                reference: reference.clone(),
                                id: info.id.clone(),
                                digest,
                            },
                        )
                    })
                    .collect(),
                env_files: env_file_hashes(&project),
                env_file_refs: env_file_refs(&project),
                services: Vec::new(),
                // After a down the next deploy runs its jobs again, as a first deploy does.
                jobs: if req.down { BTreeMap::new() } else { jobs_done },
                error: None,
                exit_code: None,
                unsettled: false,
                down: req.down,
            },
        )?;
        report.release = Some(release.id());

        if plan.is_noop() {
            progress.step(None, "nothing to do: every service is up to date");
            release.services = plan
                .services
                .iter()
                .map(|s| record(&s.service, Action::Unchanged, Duration::ZERO, None))
                .collect();
            release.outcome = Outcome::Unchanged;
        } else {
            let engine = Bounded::new(self.engine.as_ref(), req.concurrency);
            let rollout = Rollout {
                engine: &engine,
                project: &project,
                plan: &plan,
                stack: &stack,
                release: &release,
                req,
                mode: Mode::Deploy,
                progress,
                edge: self.edge.as_ref(),
                unready: &self.unready,
                activity: &self.activity,
                resume: None,
                applied: Applied::default(),
            };
            let result = tokio::time::timeout_at(deadline, rollout.run())
                .await
                .unwrap_or(Err(DeployError::Timeout { after: req.timeout }));
            let mut applied = rollout.applied.into_inner();
            applied.unsettled = unsettled;
            self.settle(
                result,
                applied,
                previous.as_ref(),
                &stack,
                &mut release,
                req,
                progress,
                report,
            )
            .await;
        }
        let switched = plan.syncs_edge().then_some(project.name.as_str());
        self.end_release(&stack, &lock, switched, &mut release, req, progress, report)
            .await?;
        // A down's networks go once it is recorded, before the lock is released.
        self.after_down(&stack, &lock, req, deadline, progress, report)
            .await;
        Ok(())
    }

    /// Re-applies a recorded release exactly: its model, its images by id.
    pub async fn rollback(
        &self,
        req: &DeployRequest,
        to: Option<&str>,
        progress: &dyn Progress,
    ) -> DeployReport {
        let started = Instant::now();
        let mut report = DeployReport::failed(&req.stack);
        let result = self.rollback_inner_to(req, to, progress, &mut report).await;
        finish(report, result, started)
    }

    async fn rollback_inner_to(
        &self,
        req: &DeployRequest,
        to: Option<&str>,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        let stack = self.ledger.stack(&req.stack)?;
        let (lock, releases) = self.lock_settled(&stack, "rollback", req).await?;
        let target = match to {
            Some(id) => stack.resolve_release(id)?,
            None => {
                // The good release before the newest good one.
                let good: Vec<&Release> = releases.iter().filter(|r| r.outcome.is_good()).collect();
                let newest = good.last().map(|r| r.model.clone());
                // A down is skipped: `--to` names one to go back to it.
                good.iter()
                    .rev()
                    .find(|r| Some(&r.model) != newest.as_ref() && !r.down)
                    .map(|r| (*r).clone())
                    .ok_or_else(|| crate::ledger::LedgerError::NoSuchRelease {
                        stack: req.stack.clone(),
                        release: "before the current one".into(),
                    })?
            }
        };
        self.engine.ping().await?;
        // The env files are read as they are now (their values were never recorded).
        let now = project_from_release(&target)?;
        let mut release = stack.begin(
            &lock,
            Release {
                env_files: env_file_hashes(&now),
                deploy_id: None,
                started_at: now_rfc3339(),
                finished_at: None,
                services: Vec::new(),
                error: None,
                exit_code: None,
                unsettled: false,
                down: false,
                jobs: releases.last().map(|r| r.jobs.clone()).unwrap_or_default(),
                ..target.clone()
            },
        )?;
        report.release = Some(release.id());
        report.rolled_back_to = Some(target.id());
        progress.step(None, &format!("rolling back to {}", target.id()));
        let outcome = tokio::time::timeout(
            req.timeout,
            self.rollback_inner(&target, &stack, &release, req, None, progress),
        )
        .await
        .unwrap_or(Err(DeployError::Timeout { after: req.timeout }))
        .map(|_| ());
        if let Err(e) = self.sync_routes(&req.stack).await {
            tracing::warn!(stack = %req.stack, error = %e, "edge switch not in line with the containers");
        }
        release.finished_at = Some(now_rfc3339());
        match outcome {
            Ok(()) => release.outcome = Outcome::Succeeded,
            Err(e) => {
                release.outcome = Outcome::RollbackFailed;
                release.error = Some(e.to_string());
            }
        }
        self.record_end(&stack, &release, report)?;
        let pruned = stack.prune(&lock, req.keep_releases)?;
        if !pruned.is_empty() {
            self.prune_images(&stack, &pruned, progress).await?;
        }
        report.outcome = release.outcome;
        report.error = release.error.clone();
        Ok(())
    }

    pub(super) async fn rollback_inner(
        &self,
        target: &Release,
        stack: &StackLedger,
        release: &Release,
        req: &DeployRequest,
        adjust: Option<AdjustPlan>,
        progress: &dyn Progress,
    ) -> Result<bool, DeployError> {
        let project = project_from_release(target)?;
        // The exact images the release ran, by id; re-tag nothing, create from the id when the
        // tag has moved since.
        let mut image_ids = BTreeMap::new();
        for (svc, img) in &target.images {
            let present = self
                .engine
                .inspect_image(&ImageRef::new(&img.id))
                .await?
                .is_some();
            if !present {
                let source = img.digest.clone().ok_or_else(|| DeployError::Unsupported {
                    service: svc.clone(),
                    reason: format!(
                        "image {} ({}) of {} is gone and has no registry digest to pull it by",
                        img.reference,
                        img.id,
                        target.id()
                    ),
                })?;
                progress.step(Some(svc), &format!("pulling {source}"));
                let platform = project
                    .services
                    .get(svc)
                    .and_then(|s| s.platform.as_deref());
                self.pull_with(&ImageRef::new(&source), platform, progress)
                    .await?;
            }
            image_ids.insert(svc.clone(), img.id.clone());
        }
        let containers = self.engine.list_containers(&project.name, true).await?;
        // Jobs do not run again on the way back: migrations go forward only.
        let jobs: BTreeMap<String, String> = plan::job_services(&project)
            .into_iter()
            .map(|j| {
                let svc = &project.services[&j];
                let h =
                    plan::job_run_hash(&svc.config_hash(), image_ids.get(&j).map(String::as_str));
                (j, h)
            })
            .collect();
        let mut plan = plan::compute(&project, &containers, &image_ids, Some(target), &jobs)
            .with_edge(&project, self.edge.available());
        if let Some(adjust) = adjust {
            adjust(target, &project, &mut plan);
        }
        let changes = plan.services.iter().any(|s| !s.job && s.action.changes());
        let engine = Bounded::new(self.engine.as_ref(), req.concurrency);
        Rollout {
            engine: &engine,
            project: &project,
            plan: &plan,
            stack,
            release,
            req,
            mode: Mode::Rollback,
            progress,
            edge: self.edge.as_ref(),
            unready: &self.unready,
            activity: &self.activity,
            resume: None,
            applied: Applied::default(),
        }
        .run()
        .await
        .map(|()| changes)
    }
}

/// A change a caller makes to the plan of a rollback before it runs (a reconcile's:
/// `reconcile::keep_env_only`).
pub(super) type AdjustPlan = fn(&Release, &Project, &mut Plan);

/// Ends a job's report: an error that stopped it goes into the report (with its own exit code
/// while nothing had run yet), never out as a failure of the call.
pub(super) fn finish(
    mut report: DeployReport,
    result: Result<(), DeployError>,
    started: Instant,
) -> DeployReport {
    if let Err(e) = result {
        if matches!(e, DeployError::NotRecorded) {
            // record_end has said it all in the report.
            report.duration_ms = started.elapsed().as_millis() as u64;
            return report;
        }
        tracing::info!(stack = %report.stack, error = %e, "job stopped with an error");
        if report.outcome == Outcome::Failed {
            report.exit_code_override = Some(e.exit_code());
        }
        report.error = Some(e.to_string());
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The project a request carries already loaded, else its files loaded now.
fn preloaded_or_load(
    preloaded: Option<Project>,
    load: &compose::LoadOptions,
) -> Result<Project, DeployError> {
    let mut project = match preloaded {
        Some(project) => project,
        None => load_project(load)?,
    };
    super::translate::bind_default_addresses(&mut project);
    Ok(project)
}

/// Loads the stack's files into a project Gantry can deploy.
fn load_project(load: &compose::LoadOptions) -> Result<Project, DeployError> {
    let project = compose::load(load)?;
    validate_deployable(&project)?;
    Ok(project)
}

/// Refuses what cannot be deployed, naming the service.
fn validate_deployable(project: &Project) -> Result<(), DeployError> {
    for svc in project.services.values() {
        if svc.image.is_none() {
            return Err(DeployError::Unsupported {
                service: svc.name.clone(),
                reason: "has `build` and no `image`: Gantry does not build; build and push the image in CI, then set `image`".into(),
            });
        }
        if svc.container_name.is_some() && svc.replicas() > 1 {
            return Err(DeployError::Unsupported {
                service: svc.name.clone(),
                reason: "sets container_name and more than one replica (deploy.replicas or scale): names must be unique".into(),
            });
        }
        // A link is a dependency and, on the stack's network, a name the service already
        // answers to; an alias other than the service's name would need Docker's legacy links.
        if let Some(link) = svc.links.iter().find(|l| {
            l.split_once(':')
                .is_some_and(|(service, alias)| service != alias)
        }) {
            return Err(DeployError::Unsupported {
                service: svc.name.clone(),
                reason: format!(
                    "links: {link:?} gives the linked service another name, which Gantry does not \
                     apply: services on a shared network reach each other by service name; for \
                     another name, give the linked service a network alias \
                     (networks: {{default: {{aliases: [ALIAS]}}}})"
                ),
            });
        }
    }
    Ok(())
}
