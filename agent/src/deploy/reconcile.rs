//! Reconcile: the daemon brings a stack back to its last good release after drift.
//!
//! Design: nothing is recorded (the ledger already describes the state): heals neither grow
//! the history nor push real releases out of retention. The daemon decides to reconcile
//! before it has the stack's lock; under the lock, a rollout that `failure_action` stopped
//! where it failed, or a canary, recorded meanwhile is left as it is.
//!
//! Env files are not drift ([`env_only`]): a release records their hashes, not their values,
//! and rebuilding it reads them as they are now. A reconcile that another service's drift
//! started keeps the running containers of a service whose env files changed since (or one
//! bound to it) as they are: applying that change is the env-file watcher's job, by the
//! stack's policy, as a deploy that records a release. Only a replica missing or stopped is
//! brought back, with the files as they are now.
//!
//! Limits: a reconcile cut short is simply done again by the next resync.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::compose::Project;
use crate::ledger::{Outcome, Release};

use super::apply::{Deployer, finish};
use super::plan::{self, Action, Plan, ServicePlan};
use super::recorded::env_file_hash;
use super::{DeployError, DeployReport, DeployRequest, Progress};

impl Deployer {
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
        let (lock, releases) = self.lock_settled(&stack, "reconcile", req).await?;
        // Decided before the lock was had: a rollout `failure_action` stopped, or a canary,
        // since then is left as it is (a deploy or rollback moves it on).
        let stopped = releases.last().filter(|r| r.stopped_where_it_failed());
        if let Some(r) = stopped.or(stack.canary().and(releases.last())) {
            progress.step(
                None,
                &format!("nothing to reconcile: {} holds the stack", r.id()),
            );
            report.release = Some(r.id());
            report.outcome = Outcome::Unchanged;
            return Ok(());
        }
        let target = releases
            .into_iter()
            .rev()
            .find(|r| r.outcome.is_good())
            .ok_or_else(|| crate::ledger::LedgerError::NoSuchRelease {
                stack: req.stack.clone(),
                release: "a good release to reconcile to".into(),
            })?;
        report.release = Some(target.id());
        match self
            .rollback_inner(&target, &stack, &target, req, Some(keep_env_only), progress)
            .await
        {
            Ok(_) => report.outcome = Outcome::Succeeded,
            Err(e) => {
                report.outcome = Outcome::RollbackFailed;
                report.error = Some(e.to_string());
            }
        }
        if let Err(e) = self.sync_routes(&req.stack).await {
            tracing::warn!(stack = %req.stack, error = %e, "edge switch not in line with the containers");
        }
        drop(lock);
        Ok(())
    }
}

/// The services of `release` (rebuilt as `project`) that read an env file whose content is no
/// longer what the release recorded (changed, gone or unreadable now), and every service bound
/// to one of them, directly or not (its hash follows theirs: [`plan::bound`]). Rebuilt from the
/// release, they plan as a recreate although nobody touched their containers.
pub fn env_only(release: &Release, project: &Project) -> BTreeSet<String> {
    let changed = |path: &std::path::Path| {
        env_file_hash(path) != release.env_files.get(&path.display().to_string()).cloned()
    };
    let mut services: BTreeSet<String> = release
        .env_file_refs
        .iter()
        .filter(|(_, refs)| refs.iter().any(|f| changed(&f.path)))
        .map(|(service, _)| service.clone())
        .collect();
    loop {
        let more: Vec<String> = project
            .services
            .values()
            .filter(|svc| !services.contains(&svc.name))
            .filter(|svc| {
                plan::bound::bound_to(project, svc)
                    .keys()
                    .any(|p| services.contains(p))
            })
            .map(|svc| svc.name.clone())
            .collect();
        if more.is_empty() {
            return services;
        }
        services.extend(more);
    }
}

/// What a reconcile does to a service compared by its env files alone ([`env_only`]): scale
/// when a replica is missing, start when one is stopped, `None` when each runs.
pub fn not_running(s: &ServicePlan) -> Option<Action> {
    let replica = |n: u32| s.containers.iter().filter(move |c| c.number == Some(n));
    if (1..=s.replicas).any(|n| replica(n).next().is_none()) {
        Some(Action::Scale)
    } else if (1..=s.replicas).any(|n| replica(n).all(|c| !c.state.running)) {
        Some(Action::Start)
    } else {
        None
    }
}

/// Leaves the running containers of the services [`env_only`] names as they are: their
/// recreate becomes [`not_running`]'s action (or nothing), and each keeps a running replica
/// whatever its hash ([`ServicePlan::keep_running`]).
///
/// A service bound to another (`network_mode: service:X`, `volumes_from`, `depends_on` with
/// `restart: true`...) whose parent still gets a container this time (replaced, started anew,
/// a replica added) is recreated as the plan said: kept, it would stay in the namespace of a
/// container that is gone.
fn keep_env_only(release: &Release, project: &Project, plan: &mut Plan) {
    let env = env_only(release, project);
    for sp in &mut plan.services {
        if sp.action == Action::Recreate && env.contains(&sp.service) {
            sp.action = not_running(sp).unwrap_or(Action::Unchanged);
            sp.keep_running = true;
        }
    }
    // Undone, up the chain of bindings, where a parent still changes.
    loop {
        let changing: BTreeSet<String> = plan
            .services
            .iter()
            .filter(|s| s.action.changes())
            .map(|s| s.service.clone())
            .collect();
        let mut undone = false;
        for sp in plan.services.iter_mut().filter(|s| s.keep_running) {
            let Some(svc) = project.services.get(&sp.service) else {
                continue;
            };
            if plan::bound::bound_to(project, svc)
                .keys()
                .any(|parent| changing.contains(parent))
            {
                sp.action = Action::Recreate;
                sp.keep_running = false;
                undone = true;
            }
        }
        if !undone {
            return;
        }
    }
}
