//! A canary resumed by a new daemon at the step it had reached.
//!
//! What: a daemon that stops during a canary (SIGTERM, a crash, `kill -9`) leaves the canary's
//! record (`canary.json`, [`crate::ledger::CanaryState`]), its release `in_progress`, both
//! versions running and the switch's shares as they were (the kernel keeps serving them). The
//! next daemon restores those shares, then [`Deployer::resume_canary`], its first job on the
//! stack, takes the stack's lock and continues the deploy from that record: the release's
//! model and images, the step reached with the rest of its pause and its probe failures, the
//! restarts counted from the canary's start; then, like `gantry deploy`, it finishes the
//! rollout (promote by hand, or the pause ends) or rolls back (abort by hand, probe failures,
//! restarts), and records the release.
//!
//! Design: the resumption is the same [`Rollout`] as a deploy, with [`Rollout::resume`] set:
//! the canary's replica is not created again, its canary starts at the recorded step. The
//! deploy's `--timeout` still counts from the release's start. One-shot jobs recorded as done
//! do not run again.
//!
//! Limits: the client that waited for the deploy lost its connection with the old daemon; the
//! resumed job's progress goes to the daemon's log, its end to the ledger (`gantry releases`).
//! A canary whose container no longer runs is not resumed: the deploy rolls back (exit 2 in
//! the ledger's terms: `rolled_back`); so too one whose abort was recorded and whose old
//! containers no longer run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::engine::Bounded;
use crate::ledger::{Holder, Outcome, Release, unix_ms};

use super::apply::{finish, project_from_release};
use super::rollout::{Applied, Mode, Rollout};
use super::{DeployError, DeployReport, DeployRequest, Deployer, Progress, plan};

/// The deploy's `--timeout` when the record does not tell (the default of `gantry deploy`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl Deployer {
    /// Resumes the canary recorded for `req.stack` (see the module header). Never fails: the
    /// report says how it ended; with no canary to resume, the outcome is `unchanged`.
    pub async fn resume_canary(
        &self,
        req: &DeployRequest,
        progress: &dyn Progress,
    ) -> DeployReport {
        let started = Instant::now();
        let mut report = DeployReport::failed(&req.stack);
        let result = self.resume_inner(req, progress, &mut report).await;
        finish(report, result, started)
    }

    async fn resume_inner(
        &self,
        req: &DeployRequest,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        let stack = self.ledger.stack(&req.stack)?;
        let nothing = |report: &mut DeployReport, progress: &dyn Progress, why: &str| {
            progress.step(None, &format!("no canary to resume: {why}"));
            report.outcome = Outcome::Unchanged;
        };
        let Some(state) = stack.canary() else {
            nothing(report, progress, "none recorded");
            return Ok(());
        };
        let holder = Holder::me(
            &format!("gantry deploy {} (canary resumed)", req.stack),
            None,
        );
        let lock = stack.lock(&holder, req.lock_wait).await?;
        let mut releases = stack.releases()?;
        self.flush_unrecorded(&stack, &mut releases);
        let Some(mut release) = releases
            .iter()
            .find(|r| r.seq == state.release && r.outcome == Outcome::InProgress)
            .cloned()
        else {
            stack.clear_canary();
            nothing(report, progress, "its release is no longer in progress");
            return Ok(());
        };
        // Any other release left in progress was interrupted.
        let mut others: Vec<Release> = releases
            .iter()
            .filter(|r| r.seq != release.seq)
            .cloned()
            .collect();
        stack.recover_in(&lock, &mut others)?;
        release.pid = std::process::id();
        stack.write(&release)?;
        report.release = Some(release.id());
        progress.step(
            None,
            &format!(
                "resuming the canary of {} at {}% ({}), left by a daemon that stopped",
                state.service,
                state.share(),
                release.id()
            ),
        );

        let project = project_from_release(&release)?;
        let image_ids: BTreeMap<String, String> = release
            .images
            .iter()
            .map(|(s, i)| (s.clone(), i.id.clone()))
            .collect();
        let previous = releases
            .iter()
            .rev()
            .find(|r| r.seq < release.seq && r.outcome.is_good())
            .cloned();
        let mut jobs = release.jobs.clone();
        jobs.extend(state.jobs.clone());
        let containers = self.engine.list_containers(&project.name, true).await?;
        let plan = plan::compute(&project, &containers, &image_ids, previous.as_ref(), &jobs)
            .with_edge(&project, self.edge.available());

        let (timeout, left) = match humantime::parse_rfc3339(&release.started_at) {
            Ok(t) if state.deadline_ms > 0 => (
                Duration::from_millis(state.deadline_ms.saturating_sub(unix_ms(t))),
                Duration::from_millis(state.deadline_ms.saturating_sub(unix_ms(SystemTime::now()))),
            ),
            _ => (DEFAULT_TIMEOUT, DEFAULT_TIMEOUT),
        };
        let mut req = req.clone();
        req.deploy_id = release.deploy_id.clone();
        req.ready_timeout = Duration::from_millis(state.ready_timeout_ms);
        req.timeout = timeout;
        let engine = Bounded::new(self.engine.as_ref(), req.concurrency);
        let rollout = Rollout {
            engine: &engine,
            project: &project,
            plan: &plan,
            stack: &stack,
            release: &release,
            req: &req,
            mode: Mode::Deploy,
            progress,
            edge: self.edge.as_ref(),
            unready: &self.unready,
            activity: &self.activity,
            resume: Some(state.clone()),
            applied: Applied::default(),
        };
        let runs = |id: &str| containers.iter().any(|c| c.id == id && c.state.running);
        let canary_runs = runs(&state.new.id);
        let old_runs = state.old.iter().any(|o| runs(&o.id));
        let result = if let (Some(reason), false) = (&state.aborted, old_runs) {
            // Aborted before the daemon stopped, and the old version stopped too: nothing to
            // step back to in place (the rollout would keep the canary as current): a rollback.
            rollout.applied.with(|a| a.touched_running = true);
            Err(DeployError::CanaryAborted {
                service: state.service.clone(),
                share: state.step_share(),
                reason: format!("{reason} (decided before the daemon stopped)"),
            })
        } else if canary_runs {
            tokio::time::timeout(left, rollout.run())
                .await
                .unwrap_or(Err(DeployError::Timeout { after: timeout }))
        } else {
            // Serving real traffic until it stopped: a rollback, as an abort would be.
            rollout.applied.with(|a| a.touched_running = true);
            Err(DeployError::CanaryAborted {
                service: state.service.clone(),
                share: state.share(),
                reason: format!(
                    "its container {} no longer runs after the daemon restart",
                    state.new.name
                ),
            })
        };
        let applied = rollout.applied.into_inner();
        self.settle(
            result,
            applied,
            previous.as_ref(),
            &stack,
            &mut release,
            &req,
            progress,
            report,
        )
        .await;
        let switched = plan.syncs_edge().then_some(project.name.as_str());
        self.end_release(
            &stack,
            &lock,
            switched,
            &mut release,
            &req,
            progress,
            report,
        )
        .await
    }
}
