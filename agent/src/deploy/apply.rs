//! Applying a plan: jobs, ordered and health-gated replacement, removal, rollback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use sha2::{Digest as _, Sha256};

use crate::compose::{self, DependsCondition, FailureAction, Project, Service};
use crate::engine::{ContainerInfo, Engine, EngineError, HealthStatus, ImageInfo, ImageRef};
use crate::ledger::{
    Holder, ImageRecord, Ledger, Outcome, Release, ServiceRecord, StackLedger, now_rfc3339,
};

use super::plan::{self, Action, Plan, ServicePlan};
use super::{DeployError, DeployReport, DeployRequest, Progress, health, translate};

/// Lines of a failing container's or job's log carried in the error.
const LOG_LINES: usize = 50;
/// How long a one-shot job may run unless `x-gantry.job.timeout` says otherwise.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(250);

/// Runs deploys against one engine and one ledger.
#[derive(Clone)]
pub struct Deployer {
    engine: Arc<dyn Engine>,
    ledger: Ledger,
    registries: Arc<dyn crate::registry::Registries>,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

/// Whether jobs run (a deploy) or not (a rollback: migrations only go forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Deploy,
    Rollback,
}

/// What was applied so far, for the report and for rollback.
#[derive(Debug, Default)]
struct Applied {
    records: Vec<ServiceRecord>,
    /// Whether a running container was stopped, replaced or removed.
    touched_running: bool,
    /// service → its ready containers' ids.
    ready: BTreeMap<String, Vec<String>>,
    /// jobs that succeeded in this run (service → run hash).
    jobs: BTreeMap<String, String>,
    /// Services that failed under `failure_action: continue`.
    continued: Vec<String>,
}

impl Deployer {
    pub fn new(engine: Arc<dyn Engine>, ledger: Ledger) -> Self {
        Self {
            engine,
            ledger,
            registries: Arc::new(crate::registry::Anonymous),
        }
    }

    /// Uses `registries` for pull credentials.
    pub fn with_registries(mut self, registries: Arc<dyn crate::registry::Registries>) -> Self {
        self.registries = registries;
        self
    }

    /// Pulls an image with the registry's credentials, asking for fresh ones once on a 401.
    pub async fn pull(&self, image: &ImageRef) -> Result<ImageInfo, DeployError> {
        self.pull_with(image, &super::Quiet).await
    }

    /// [`Deployer::pull`], reporting the bytes of all layers to [`Progress::pull`].
    pub async fn pull_with(
        &self,
        image: &ImageRef,
        progress: &dyn Progress,
    ) -> Result<ImageInfo, DeployError> {
        let layers: std::sync::Mutex<BTreeMap<String, (u64, u64)>> = Default::default();
        let report = |p: &crate::engine::PullProgress| {
            let Some(layer) = &p.layer else { return };
            let Ok(mut layers) = layers.lock() else {
                return;
            };
            let entry = layers.entry(layer.clone()).or_default();
            match (p.status.as_str(), p.current, p.total) {
                ("Downloading", Some(c), Some(t)) => *entry = (c, t),
                ("Download complete" | "Pull complete" | "Already exists", _, _) => {
                    entry.0 = entry.1;
                }
                _ => return,
            }
            let (done, total) = layers
                .values()
                .fold((0, 0), |(d, t), (c, n)| (d + c, t + n));
            progress.pull(image.as_str(), done, total);
        };
        let auth_err = |e: crate::registry::RegistryError| DeployError::Registry(e);
        let auth = self.registries.auth_for(image).await.map_err(auth_err)?;
        match self
            .engine
            .pull_image(image, auth.as_ref(), Some(&report))
            .await
        {
            Err(EngineError::Pull {
                kind: crate::engine::PullFailure::Unauthorized,
                ..
            }) if auth.is_some() => {
                self.registries.invalidate(image.registry());
                let auth = self.registries.auth_for(image).await.map_err(auth_err)?;
                Ok(self
                    .engine
                    .pull_image(image, auth.as_ref(), Some(&report))
                    .await?)
            }
            other => Ok(other?),
        }
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Loads the project and checks it can be deployed at all.
    pub fn load(&self, req: &DeployRequest) -> Result<Project, DeployError> {
        load_project(&req.load)
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
        Ok(plan::compute(
            &project,
            &containers,
            &image_ids,
            previous,
            &jobs,
        ))
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
        let stack = self.ledger.stack(&req.stack)?;
        let holder = Holder::me(
            &format!("gantry deploy {}", req.stack),
            req.deploy_id.as_deref(),
        );
        // A stack lock that is free at once lets Docker list the containers while the files
        // load and the ledger is read, off the worker (a no-op deploy is mostly that wait). A
        // busy lock is waited for after loading, so a bad file fails fast either way.
        let (project, lock, mut releases, listing) = match stack.try_lock(&holder) {
            Ok(lock) => {
                let engine = self.engine.clone();
                let name = req.stack.clone();
                let listing =
                    tokio::spawn(async move { engine.list_containers(&name, true).await });
                let load = req.load.clone();
                let ledger = stack.clone();
                let (project, releases) = tokio::task::spawn_blocking(move || {
                    Ok::<_, DeployError>((load_project(&load)?, ledger.releases()?))
                })
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
                (project, lock, releases, Some(listing))
            }
            Err(_) => {
                let project = self.load(req)?;
                let lock = stack.lock(&holder, req.lock_wait).await?;
                // The ledger is read once per deploy.
                let releases = stack.releases()?;
                (project, lock, releases, None)
            }
        };
        let recovered = stack.recover_in(&lock, &mut releases)?;
        if !recovered.is_empty() {
            progress.step(
                None,
                &format!("recovered interrupted release(s) {recovered:?}; converging"),
            );
        }
        if let Some(id) = &req.deploy_id
            && let Some(done) = releases.iter().rev().find(|r| {
                r.deploy_id.as_deref() == Some(id.as_str()) && r.outcome != Outcome::Interrupted
            })
        {
            progress.step(
                None,
                &format!("deploy id {id} was already applied as {}", done.id()),
            );
            report.release = Some(done.id());
            report.outcome = done.outcome;
            report.repeated = true;
            report.services = done.services.clone();
            report.error = done.error.clone();
            return Ok(());
        }

        // Images and containers are asked for together (a no-op deploy is these two calls);
        // the containers are listed again if a pull took time in which they could change.
        let listed = async {
            match listing {
                Some(task) if project.name == req.stack => task.await.ok(),
                _ => Some(self.engine.list_containers(&project.name, true).await),
            }
        };
        let (resolved, containers) =
            futures_util::future::join(self.resolve_images(&project, progress), listed).await;
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
        );

        // A no-op with no deploy id to remember leaves the ledger as it is: nothing happened.
        if plan.is_noop() && req.deploy_id.is_none() && previous.is_some() {
            progress.step(None, "nothing to do: every service is up to date");
            report.release = previous.as_ref().map(Release::id);
            report.outcome = Outcome::Unchanged;
            report.services = plan
                .services
                .iter()
                .map(|s| record(&s.service, Action::Unchanged, Duration::ZERO, None))
                .collect();
            return Ok(());
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
                model: serde_json::to_value(&project).unwrap_or_default(),
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
                services: Vec::new(),
                jobs: jobs_done,
                error: None,
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
            let mut applied = Applied::default();
            let result = tokio::time::timeout(
                req.timeout,
                self.apply(
                    &project,
                    &plan,
                    &stack,
                    &release,
                    req,
                    Mode::Deploy,
                    progress,
                    &mut applied,
                ),
            )
            .await
            .unwrap_or(Err(DeployError::Timeout { after: req.timeout }));
            release.jobs.extend(applied.jobs.clone());
            release.services = applied.records.clone();
            match result {
                Ok(()) => release.outcome = Outcome::Succeeded,
                Err(e) if !applied.touched_running => {
                    progress.step(None, "failed before anything running changed");
                    release.outcome = Outcome::Failed;
                    release.error = Some(e.to_string());
                    report.exit_code_override = Some(match e.exit_code() {
                        crate::ExitCode::InvalidInput => crate::ExitCode::InvalidInput,
                        crate::ExitCode::Unavailable => crate::ExitCode::Unavailable,
                        _ => crate::ExitCode::Failed,
                    });
                }
                Err(e @ (DeployError::Paused { .. } | DeployError::Continued { .. })) => {
                    progress.step(None, "rollout stopped without rollback (failure_action)");
                    release.outcome = Outcome::Failed;
                    release.error = Some(e.to_string());
                    report.exit_code_override = Some(crate::ExitCode::RollbackFailed);
                }
                Err(e) => {
                    release.error = Some(e.to_string());
                    match &previous {
                        Some(prev) => {
                            progress.step(
                                None,
                                &format!("rollout failed; rolling back to {}", prev.id()),
                            );
                            report.rolled_back_to = Some(prev.id());
                            match self
                                .rollback_inner(prev, &stack, &release, req, progress)
                                .await
                            {
                                Ok(()) => release.outcome = Outcome::RolledBack,
                                Err(re) => {
                                    release.outcome = Outcome::RollbackFailed;
                                    release.error = Some(format!("{e}\nrollback failed: {re}"));
                                }
                            }
                        }
                        None => {
                            release.outcome = Outcome::RollbackFailed;
                            release.error =
                                Some(format!("{e}\nno earlier good release to roll back to"));
                        }
                    }
                }
            }
        }
        release.finished_at = Some(now_rfc3339());
        stack.write(&release)?;
        let pruned = stack.prune(&lock, req.keep_releases)?;
        if !pruned.is_empty() {
            tracing::info!(stack = %req.stack, pruned = pruned.len(), "pruned old releases");
            self.prune_images(&stack, &pruned, progress).await?;
        }
        report.outcome = release.outcome;
        report.services = release.services.clone();
        report.error = release.error.clone();
        Ok(())
    }

    /// Removes the images that only pruned releases used. An image a kept release pins, or
    /// that any container still uses (of any stack), stays: Docker refuses to remove an image
    /// in use, and that refusal is taken as "keep".
    async fn prune_images(
        &self,
        stack: &StackLedger,
        pruned: &[Release],
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
        let kept: BTreeSet<String> = stack
            .releases()?
            .iter()
            .flat_map(|r| r.images.values().map(|i| i.id.clone()))
            .collect();
        let candidates: BTreeSet<&str> = pruned
            .iter()
            .flat_map(|r| r.images.values().map(|i| i.id.as_str()))
            .filter(|id| !kept.contains(*id))
            .collect();
        for id in candidates {
            match self.engine.remove_image(id, false).await {
                Ok(true) => progress.step(None, &format!("pruned image {}", short_id(id))),
                Ok(false) => {}
                Err(e) => {
                    tracing::info!(stack = %stack.name(), image = %id, reason = %e, "image kept");
                }
            }
        }
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
        let lock = stack
            .lock(
                &Holder::me(&format!("gantry rollback {}", req.stack), None),
                req.lock_wait,
            )
            .await?;
        stack.recover(&lock)?;
        let releases = stack.releases()?;
        let target = match to {
            Some(id) => stack.resolve_release(id)?,
            None => {
                // The good release before the newest good one.
                let good: Vec<&Release> = releases.iter().filter(|r| r.outcome.is_good()).collect();
                let newest = good.last().map(|r| r.model.clone());
                good.iter()
                    .rev()
                    .find(|r| Some(&r.model) != newest.as_ref())
                    .map(|r| (*r).clone())
                    .ok_or_else(|| crate::ledger::LedgerError::NoSuchRelease {
                        stack: req.stack.clone(),
                        release: "before the current one".into(),
                    })?
            }
        };
        self.engine.ping().await?;
        let mut release = stack.begin(
            &lock,
            Release {
                deploy_id: None,
                started_at: now_rfc3339(),
                finished_at: None,
                services: Vec::new(),
                error: None,
                jobs: releases.last().map(|r| r.jobs.clone()).unwrap_or_default(),
                ..target.clone()
            },
        )?;
        report.release = Some(release.id());
        report.rolled_back_to = Some(target.id());
        progress.step(None, &format!("rolling back to {}", target.id()));
        let outcome = self
            .rollback_inner(&target, &stack, &release, req, progress)
            .await;
        release.finished_at = Some(now_rfc3339());
        match outcome {
            Ok(()) => release.outcome = Outcome::Succeeded,
            Err(e) => {
                release.outcome = Outcome::RollbackFailed;
                release.error = Some(e.to_string());
            }
        }
        stack.write(&release)?;
        let pruned = stack.prune(&lock, req.keep_releases)?;
        if !pruned.is_empty() {
            self.prune_images(&stack, &pruned, progress).await?;
        }
        report.outcome = release.outcome;
        report.error = release.error.clone();
        Ok(())
    }

    /// Brings the stack back to its last good release after drift (a container removed,
    /// stopped or replaced by hand). The ledger already describes that state, so nothing is
    /// recorded: heals neither grow the history nor push real releases out of retention. A
    /// reconcile cut short is simply done again by the next resync.
    pub async fn reconcile(&self, req: &DeployRequest, progress: &dyn Progress) -> DeployReport {
        let started = Instant::now();
        let mut report = DeployReport::failed(&req.stack);
        let result = self.reconcile_inner(req, progress, &mut report).await;
        finish(report, result, started)
    }

    async fn reconcile_inner(
        &self,
        req: &DeployRequest,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        let stack = self.ledger.stack(&req.stack)?;
        let lock = stack
            .lock(
                &Holder::me(&format!("gantry reconcile {}", req.stack), None),
                req.lock_wait,
            )
            .await?;
        stack.recover(&lock)?;
        let target = stack
            .releases()?
            .into_iter()
            .rev()
            .find(|r| r.outcome.is_good())
            .ok_or_else(|| crate::ledger::LedgerError::NoSuchRelease {
                stack: req.stack.clone(),
                release: "a good release to reconcile to".into(),
            })?;
        report.release = Some(target.id());
        match self
            .rollback_inner(&target, &stack, &target, req, progress)
            .await
        {
            Ok(()) => report.outcome = Outcome::Succeeded,
            Err(e) => {
                report.outcome = Outcome::RollbackFailed;
                report.error = Some(e.to_string());
            }
        }
        drop(lock);
        Ok(())
    }

    async fn rollback_inner(
        &self,
        target: &Release,
        stack: &StackLedger,
        release: &Release,
        req: &DeployRequest,
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
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
                self.pull_with(&ImageRef::new(&source), progress).await?;
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
        let plan = plan::compute(&project, &containers, &image_ids, Some(target), &jobs);
        let mut applied = Applied::default();
        self.apply(
            &project,
            &plan,
            stack,
            release,
            req,
            Mode::Rollback,
            progress,
            &mut applied,
        )
        .await
    }

    /// Pulls what is missing (or everything with `pull_policy: always`), in parallel.
    /// Returns service → (reference, image), and whether anything was pulled.
    async fn resolve_images(
        &self,
        project: &Project,
        progress: &dyn Progress,
    ) -> Result<(BTreeMap<String, (String, ImageInfo)>, bool), DeployError> {
        let mut by_ref: BTreeMap<String, Vec<&Service>> = BTreeMap::new();
        for svc in project.services.values() {
            if let Some(image) = &svc.image {
                by_ref.entry(image.clone()).or_default().push(svc);
            }
        }
        let engine = &self.engine;
        let this = self;
        let lookups = by_ref.iter().map(|(reference, services)| async move {
            let image = ImageRef::new(reference);
            let policy = services
                .iter()
                .find_map(|s| s.pull_policy.as_deref())
                .unwrap_or("missing");
            let local = engine.inspect_image(&image).await?;
            let info = match (policy, local) {
                ("always", _) | ("missing" | "if_not_present" | "build", None) => {
                    (this.pull_with(&image, progress).await?, true)
                }
                ("never", None) => {
                    return Err(DeployError::Unsupported {
                        service: services[0].name.clone(),
                        reason: format!(
                            "image {reference} is not present and pull_policy is never"
                        ),
                    });
                }
                (_, Some(info)) => (info, false),
                (_, None) => (this.pull_with(&image, progress).await?, true),
            };
            Ok::<_, DeployError>((reference.clone(), info))
        });
        let mut out = BTreeMap::new();
        let mut any_pulled = false;
        for result in join_all(lookups).await {
            let (reference, (info, pulled)) = result?;
            any_pulled |= pulled;
            if pulled {
                progress.step(
                    None,
                    &format!("pulled {reference} ({})", short_id(&info.id)),
                );
            }
            for svc in &by_ref[&reference] {
                out.insert(svc.name.clone(), (reference.clone(), info.clone()));
            }
        }
        Ok((out, any_pulled))
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        project: &Project,
        plan: &Plan,
        stack: &StackLedger,
        release: &Release,
        req: &DeployRequest,
        mode: Mode,
        progress: &dyn Progress,
        applied: &mut Applied,
    ) -> Result<(), DeployError> {
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
                    self.wait_dependencies(project, svc, plan, applied, req)
                        .await?;
                    self.run_job(project, svc, sp, stack, release, progress, applied)
                        .await?;
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
                        applied.ready.insert(
                            sp.service.clone(),
                            sp.containers.iter().map(|c| c.id.clone()).collect(),
                        );
                    }
                    applied.records.push(record(
                        &sp.service,
                        Action::Unchanged,
                        Duration::ZERO,
                        None,
                    ));
                }
                Action::Run => {
                    if mode == Mode::Deploy {
                        let svc = &project.services[&sp.service];
                        self.wait_dependencies(project, svc, plan, applied, req)
                            .await?;
                        self.run_job(project, svc, sp, stack, release, progress, applied)
                            .await?;
                    }
                }
                Action::Remove => {
                    progress.step(Some(&sp.service), "removing (no longer in the files)");
                    for c in &sp.containers {
                        self.retire(
                            c,
                            None,
                            Duration::from_secs(10),
                            Leave::OffNetworksFirst,
                            applied,
                        )
                        .await?;
                    }
                    applied
                        .records
                        .push(record(&sp.service, Action::Remove, t0.elapsed(), None));
                }
                Action::Create | Action::Recreate | Action::Start | Action::Scale => {
                    let svc = &project.services[&sp.service];
                    let why = if sp.reasons.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", sp.reasons.join(", "))
                    };
                    progress.step(Some(&sp.service), &format!("{}{why}", verb(sp.action)));
                    self.wait_dependencies(project, svc, plan, applied, req)
                        .await?;
                    let result = self
                        .converge_service(project, svc, sp, req, mode, progress, applied)
                        .await;
                    let err = result.as_ref().err().map(ToString::to_string);
                    applied
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
                                applied.continued.push(format!("{}: {e}", sp.service));
                            }
                            _ => return Err(e),
                        }
                    }
                }
            }
        }
        if !applied.continued.is_empty() {
            return Err(DeployError::Continued {
                failures: applied.continued.clone(),
            });
        }
        Ok(())
    }

    /// Waits until every dependency of `svc` meets its condition.
    async fn wait_dependencies(
        &self,
        project: &Project,
        svc: &Service,
        plan: &Plan,
        applied: &Applied,
        req: &DeployRequest,
    ) -> Result<(), DeployError> {
        for (dep, d) in &svc.depends_on {
            let Some(dep_plan) = plan.get(dep) else {
                if d.required {
                    return Err(DeployError::Dependency {
                        service: svc.name.clone(),
                        dependency: dep.clone(),
                        problem: "is not an active service of the stack".into(),
                    });
                }
                continue;
            };
            match d.condition {
                DependsCondition::ServiceCompletedSuccessfully => {
                    if dep_plan.job
                        && !(dep_plan.action == Action::Unchanged || applied.jobs.contains_key(dep))
                    {
                        return Err(DeployError::Dependency {
                            service: svc.name.clone(),
                            dependency: dep.clone(),
                            problem: "has not completed successfully".into(),
                        });
                    }
                }
                DependsCondition::ServiceHealthy | DependsCondition::ServiceStarted => {
                    let ids = applied.ready.get(dep).cloned().unwrap_or_default();
                    if ids.is_empty() && !dep_plan.job {
                        return Err(DeployError::Dependency {
                            service: svc.name.clone(),
                            dependency: dep.clone(),
                            problem: "has no running container".into(),
                        });
                    }
                    if d.condition == DependsCondition::ServiceHealthy {
                        // Healthy means: passes its readiness gate, by a Docker healthcheck
                        // or by Gantry's own probe.
                        let dep_svc = &project.services[dep];
                        let has_check = dep_svc
                            .healthcheck
                            .as_ref()
                            .is_some_and(|h| !h.is_disabled())
                            || matches!(health::rule(dep_svc)?, health::Rule::Probe(_));
                        for id in ids {
                            let info = self.engine.inspect_container(&id).await?;
                            if info.state.health.is_none() && !has_check {
                                return Err(DeployError::Dependency {
                                    service: svc.name.clone(),
                                    dependency: dep.clone(),
                                    problem: "has no healthcheck nor x-gantry.health probe \
                                              (condition: service_healthy needs one)"
                                        .into(),
                                });
                            }
                            let rule = health::rule(dep_svc)?;
                            self.wait_ready(dep_svc, &rule, &id, req.ready_timeout)
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs a one-shot job to completion; keeps its log with the release.
    #[allow(clippy::too_many_arguments)]
    async fn run_job(
        &self,
        project: &Project,
        svc: &Service,
        sp: &ServicePlan,
        stack: &StackLedger,
        release: &Release,
        progress: &dyn Progress,
        applied: &mut Applied,
    ) -> Result<(), DeployError> {
        let t0 = Instant::now();
        let image = sp.image.clone().unwrap_or_default();
        let mut spec = translate::container_spec(project, svc, &image, None, &sp.hash)?;
        spec.restart = crate::engine::RestartPolicy::No;
        progress.step(Some(&svc.name), &format!("running job in {}", spec.name));
        let timeout = job_timeout(svc);
        let id = self.engine.create_container(&spec).await?;
        let outcome = async {
            self.engine.start_container(&id).await?;
            match tokio::time::timeout(timeout, self.engine.wait_container(&id)).await {
                Ok(code) => Ok(Some(code?)),
                Err(_) => Ok::<_, EngineError>(None),
            }
        }
        .await;
        let logs = self.engine.logs_tail(&id, 2000).await.unwrap_or_default();
        let log_path = stack.job_log_path(release.seq, &svc.name);
        let _ = gantry_common::fsx::write_atomic(
            &log_path,
            (logs.join("\n") + "\n").as_bytes(),
            0o600,
            gantry_common::fsx::Owner::default(),
        );
        let _ = self.engine.remove_container(&id, true).await;
        let last: Vec<String> = logs[logs.len().saturating_sub(LOG_LINES)..].to_vec();
        let result = match outcome? {
            Some(0) => {
                applied.jobs.insert(
                    svc.name.clone(),
                    plan::job_run_hash(&sp.hash, sp.image_id.as_deref()),
                );
                progress.step(
                    Some(&svc.name),
                    &format!("job succeeded in {:.1}s", t0.elapsed().as_secs_f64()),
                );
                Ok(())
            }
            Some(code) => Err(DeployError::JobFailed {
                service: svc.name.clone(),
                exit_code: code,
                logs: last,
            }),
            None => Err(DeployError::JobTimeout {
                service: svc.name.clone(),
                after: timeout,
                logs: last,
            }),
        };
        applied.records.push(record(
            &svc.name,
            Action::Run,
            t0.elapsed(),
            result.as_ref().err().map(ToString::to_string),
        ));
        result
    }

    /// Brings one service's containers to the plan: replicas 1..=n up to date and ready,
    /// duplicates and extra replicas removed. Replacement follows the service's strategy:
    /// start-first (the new container ready before the old one leaves the network and stops)
    /// or stop-first; in batches of `update_config.parallelism`, `delay` apart, each batch
    /// watched for `monitor` before the next.
    #[allow(clippy::too_many_arguments)]
    async fn converge_service(
        &self,
        project: &Project,
        svc: &Service,
        sp: &ServicePlan,
        req: &DeployRequest,
        mode: Mode,
        progress: &dyn Progress,
        applied: &mut Applied,
    ) -> Result<(), DeployError> {
        let image_id = sp.image_id.clone().unwrap_or_default();
        let image = self.create_image_ref(svc, &image_id).await?;
        let rule = health::rule(svc)?;
        let (strategy, _) = health::strategy(svc);
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
                self.retire(
                    other,
                    signal,
                    stop_timeout,
                    Leave::OffNetworksFirst,
                    applied,
                )
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
                        self.wait_ready(svc, &rule, &c.id, req.ready_timeout)
                            .await?;
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
                let spec = translate::container_spec(project, svc, &image, Some(*n), &sp.hash)?;
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
                        if let Err(e) = self.wait_ready(svc, &rule, &id, req.ready_timeout).await {
                            // The old container never stopped serving: just drop the new one.
                            let _ = self.engine.remove_container(&id, true).await;
                            return Err(e);
                        }
                        self.give_aliases(&id, &attachments).await?;
                        self.retire(old, signal, stop_timeout, Leave::OffNetworksFirst, applied)
                            .await?;
                        self.engine.rename_container(&id, &name).await?;
                    }
                    old => {
                        // Stop-first: nothing else serves yet, so the old container keeps its
                        // networks and published ports until it exits on its stop signal (or
                        // is killed at the end of its grace period), as Compose does.
                        if let Some(old) = old {
                            self.retire(old, signal, stop_timeout, Leave::ServeUntilExit, applied)
                                .await?;
                        }
                        self.engine.rename_container(&id, &name).await?;
                        self.engine.start_container(&id).await?;
                        self.wait_ready(svc, &rule, &id, req.ready_timeout).await?;
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
                self.monitor(svc, &started, watch).await?;
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
            self.retire(
                extra,
                signal,
                stop_timeout,
                Leave::OffNetworksFirst,
                applied,
            )
            .await?;
        }
        applied.ready.insert(svc.name.clone(), ready);
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

    /// Takes a container out of service, then removes it. `leave` says whether it first leaves
    /// its networks (something else already serves) or keeps serving until it exits.
    async fn retire(
        &self,
        c: &ContainerInfo,
        signal: Option<&str>,
        timeout: Duration,
        leave: Leave,
        applied: &mut Applied,
    ) -> Result<(), DeployError> {
        if c.state.running {
            applied.touched_running = true;
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

    /// Watches freshly started containers for `watch`: they must keep running (and healthy).
    async fn monitor(
        &self,
        svc: &Service,
        ids: &[String],
        watch: Duration,
    ) -> Result<(), DeployError> {
        let until = Instant::now() + watch;
        while Instant::now() < until {
            for id in ids {
                let info = self.engine.inspect_container(id).await?;
                let bad = if !info.state.running {
                    Some("stopped during the monitor period".to_owned())
                } else if info.state.health == Some(HealthStatus::Unhealthy) {
                    Some("turned unhealthy during the monitor period".to_owned())
                } else {
                    None
                };
                if let Some(problem) = bad {
                    return Err(self.not_ready(svc, &info, problem).await);
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// What to create a container from: the tag when it still names `image_id`, else the id
    /// itself (a rollback after the tag moved).
    async fn create_image_ref(&self, svc: &Service, image_id: &str) -> Result<String, DeployError> {
        let reference = svc.image.clone().unwrap_or_default();
        if image_id.is_empty() {
            return Ok(reference);
        }
        let resolved = self
            .engine
            .inspect_image(&ImageRef::new(&reference))
            .await?;
        Ok(match resolved {
            Some(info) if info.id == image_id => reference,
            _ => image_id.to_owned(),
        })
    }

    /// Waits until a container is ready by its service's rule.
    async fn wait_ready(
        &self,
        svc: &Service,
        rule: &health::Rule,
        id: &str,
        timeout: Duration,
    ) -> Result<(), DeployError> {
        let started = Instant::now();
        let deadline = match rule {
            health::Rule::Probe(p) => started + p.deadline.unwrap_or(timeout),
            _ => started + timeout,
        };
        let mut passes = 0u32;
        let mut probe_log: Vec<String> = Vec::new();
        let mut restarts: Option<u32> = None;
        loop {
            let info = self.engine.inspect_container(id).await?;
            let status = info.state.status;
            let exited = !info.state.running
                && !matches!(
                    status,
                    crate::engine::ContainerStatus::Created
                        | crate::engine::ContainerStatus::Restarting
                );
            if exited {
                let problem = format!("exited with code {}", info.state.exit_code.unwrap_or(-1));
                return Err(self.not_ready_with(svc, &info, problem, probe_log).await);
            }
            let restarted = match (restarts, info.state.restart_count) {
                (Some(before), Some(now)) => now > before,
                _ => false,
            };
            if restarts.is_none() {
                restarts = info.state.restart_count;
            }
            if restarted || status == crate::engine::ContainerStatus::Restarting {
                return Err(self
                    .not_ready_with(svc, &info, "restarted while starting".into(), probe_log)
                    .await);
            }
            let wait = match rule {
                health::Rule::Docker { passes: want } => match info.state.health {
                    Some(HealthStatus::Healthy) => {
                        let ok = info.state.health_log.iter().rev().take(*want as usize);
                        if ok.clone().count() >= *want as usize
                            && ok.clone().all(|p| p.exit_code == Some(0))
                        {
                            return Ok(());
                        }
                        POLL
                    }
                    Some(HealthStatus::Unhealthy) => {
                        return Err(self
                            .not_ready_with(svc, &info, "is unhealthy".into(), probe_log)
                            .await);
                    }
                    // No healthcheck after all (the image had none): running is ready.
                    None if info.state.running => return Ok(()),
                    _ => POLL,
                },
                health::Rule::MinReady(min) => {
                    if info.state.running && started.elapsed() >= *min {
                        return Ok(());
                    }
                    POLL
                }
                health::Rule::Probe(p) => {
                    if started.elapsed() < p.start_period || !info.state.running {
                        POLL
                    } else {
                        let ip = info.ip_addresses.values().next().map(String::as_str);
                        match health::probe_once(&p.target, ip, p.timeout).await {
                            Ok(()) => {
                                passes += 1;
                                probe_log.push(format!("pass {passes}/{}", p.passes));
                                if passes >= p.passes {
                                    return Ok(());
                                }
                            }
                            Err(e) => {
                                passes = 0;
                                probe_log.push(format!("fail: {e}"));
                            }
                        }
                        p.interval
                    }
                }
            };
            if Instant::now() >= deadline {
                let problem = format!(
                    "was not ready within {} ({})",
                    humantime::format_duration(deadline - started),
                    rule.describe()
                );
                return Err(self.not_ready_with(svc, &info, problem, probe_log).await);
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn not_ready(&self, svc: &Service, info: &ContainerInfo, problem: String) -> DeployError {
        self.not_ready_with(svc, info, problem, Vec::new()).await
    }

    /// The error for a container that did not become ready: its health or probe log and its
    /// last log lines.
    async fn not_ready_with(
        &self,
        svc: &Service,
        info: &ContainerInfo,
        problem: String,
        probe_log: Vec<String>,
    ) -> DeployError {
        let logs = self
            .engine
            .logs_tail(&info.id, LOG_LINES)
            .await
            .unwrap_or_default();
        let mut health_log: Vec<String> = info
            .state
            .health_log
            .iter()
            .map(|p| format!("exit {}: {}", p.exit_code.unwrap_or(-1), p.output.trim()))
            .collect();
        health_log.extend(
            probe_log
                .into_iter()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev(),
        );
        DeployError::NotReady {
            service: svc.name.clone(),
            container: info.name.clone(),
            problem,
            health_log,
            logs,
        }
    }
}

/// How a container being retired leaves service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    /// Off its networks first, so other containers stop resolving it at once: for a container
    /// whose replacement (or another replica) already serves.
    OffNetworksFirst,
    /// Keeps its networks and published ports and serves until it exits: stop-first, where
    /// the replacement starts only after it.
    ServeUntilExit,
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

fn record(service: &str, action: Action, took: Duration, error: Option<String>) -> ServiceRecord {
    ServiceRecord {
        service: service.to_owned(),
        action: action.as_str().to_owned(),
        duration_ms: took.as_millis() as u64,
        error,
    }
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

fn job_timeout(svc: &Service) -> Duration {
    svc.x_gantry
        .as_ref()
        .and_then(|x| x.get("job"))
        .and_then(|j| j.get("timeout"))
        .and_then(|t| t.as_str())
        .and_then(|t| humantime::parse_duration(t).ok())
        .unwrap_or(JOB_TIMEOUT)
}

/// Ends a job's report: an error that stopped it goes into the report (with its own exit code
/// while nothing had run yet), never out as a failure of the call.
fn finish(
    mut report: DeployReport,
    result: Result<(), DeployError>,
    started: Instant,
) -> DeployReport {
    if let Err(e) = result {
        tracing::info!(stack = %report.stack, error = %e, "job stopped with an error");
        if report.outcome == Outcome::Failed {
            report.exit_code_override = Some(e.exit_code());
        }
        report.error = Some(e.to_string());
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
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
        if svc.container_name.is_some() && translate::replicas(svc) > 1 {
            return Err(DeployError::Unsupported {
                service: svc.name.clone(),
                reason: "sets container_name and deploy.replicas > 1: names must be unique".into(),
            });
        }
        let unapplied = [
            ("cgroup_parent", svc.cgroup_parent.is_some()),
            ("mac_address", svc.mac_address.is_some()),
            ("platform", svc.platform.is_some()),
            ("runtime", svc.runtime.is_some()),
            ("userns_mode", svc.userns_mode.is_some()),
            ("links", !svc.links.is_empty()),
        ];
        if let Some((key, _)) = unapplied.iter().find(|(_, set)| *set) {
            return Err(DeployError::Unsupported {
                service: svc.name.clone(),
                reason: format!(
                    "`{key}` is read but not applied by Gantry's deploy yet: remove it{}",
                    if *key == "links" {
                        " (services on a shared network reach each other by name)"
                    } else {
                        ""
                    }
                ),
            });
        }
        if !svc.volumes_from.is_empty() {
            return Err(DeployError::Unsupported {
                service: svc.name.clone(),
                reason: "volumes_from is not supported yet: use a named volume".into(),
            });
        }
    }
    Ok(())
}

/// sha256 of every env file the services read, by path.
fn env_file_hashes(project: &Project) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for svc in project.services.values() {
        for f in &svc.env_file {
            if let Ok(body) = std::fs::read(&f.path) {
                out.insert(
                    f.path.display().to_string(),
                    hex::encode(Sha256::digest(&body)),
                );
            }
        }
    }
    out
}

/// The project a release recorded, rebuilt from its model.
pub fn project_from_release(release: &Release) -> Result<Project, DeployError> {
    let mut project: Project =
        serde_json::from_value(release.model.clone()).map_err(|e| DeployError::Unsupported {
            service: "*".into(),
            reason: format!("release {} has an unreadable model: {e}", release.id()),
        })?;
    for (name, svc) in &mut project.services {
        svc.name = name.clone();
        svc.x_gantry = release.x_gantry.get(name).cloned();
    }
    project.config_files = release.files.clone();
    Ok(project)
}
