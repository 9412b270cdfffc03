//! How a deploy's rollout ends: its outcome (succeeded; failed before anything running
//! changed; stopped by `failure_action`; rolled back to the last good release, or that failed
//! too), then the switch brought in line with what runs, the canary record dropped, the release
//! recorded and old releases pruned. Shared by a deploy (`apply.rs`) and a canary resumed by a
//! new daemon (`resume.rs`). Also where a release that runs but could not be recorded is
//! written later (`flush_unrecorded`, `retry_unrecorded`).

use crate::ledger::{Holder, Outcome, Release, StackLedger, StackLock, now_rfc3339};

use super::rollout::Done;
use super::{DeployError, DeployReport, DeployRequest, Deployer, Progress};

impl Deployer {
    /// Sets `release`'s outcome from the rollout's `result`, rolling back to `previous` when
    /// the rollout failed after touching what ran.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn settle(
        &self,
        result: Result<(), DeployError>,
        applied: Done,
        previous: Option<&Release>,
        stack: &StackLedger,
        release: &mut Release,
        req: &DeployRequest,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) {
        release.jobs.extend(applied.jobs.clone());
        release.services = applied.records.clone();
        match result {
            Ok(()) => release.outcome = Outcome::Succeeded,
            // Nothing that ran was touched and the stack is where the last good release left
            // it (or there is no release to go back to: what failed is left to look at).
            Err(e)
                if !applied.touched_running && (previous.is_none() || !strayed(&applied, &e)) =>
            {
                // Where the stack sat before this deploy, it still sits: the next one knows.
                release.unsettled = applied.unsettled;
                failed_unchanged(e, release, progress, report);
            }
            // A down that failed part-way is not undone: what it removed stays removed, and
            // supervision leaves the rest (like `failure_action: pause`) until it runs again.
            Err(e) if req.down => {
                progress.step(None, "down stopped where it failed; run it again");
                release.outcome = Outcome::Failed;
                release.error = Some(e.to_string());
                report.exit_code_override = Some(crate::ExitCode::RollbackFailed);
            }
            Err(e @ (DeployError::Paused { .. } | DeployError::Continued { .. })) => {
                progress.step(None, "rollout stopped without rollback (failure_action)");
                release.outcome = Outcome::Failed;
                release.error = Some(e.to_string());
                report.exit_code_override = Some(crate::ExitCode::RollbackFailed);
            }
            Err(e) => match previous {
                Some(prev) => {
                    progress.step(
                        None,
                        &format!("rollout failed; rolling back to {}", prev.id()),
                    );
                    report.rolled_back_to = Some(prev.id());
                    match self
                        .rollback_inner(prev, stack, release, req, None, progress)
                        .await
                    {
                        // Nothing differed from the last good release after all (a replica
                        // that failed was already dropped, a killed deploy had changed nothing).
                        Ok(false) if !applied.touched_running => {
                            report.rolled_back_to = None;
                            failed_unchanged(e, release, progress, report);
                        }
                        Ok(_) => {
                            release.error = Some(e.to_string());
                            release.outcome = Outcome::RolledBack;
                        }
                        Err(re) => {
                            release.outcome = Outcome::RollbackFailed;
                            release.error = Some(format!("{e}\nrollback failed: {re}"));
                        }
                    }
                }
                None => {
                    release.outcome = Outcome::RollbackFailed;
                    release.error = Some(format!("{e}\nno earlier good release to roll back to"));
                }
            },
        }
    }

    /// Tries again to record the stack's release that runs but could not be recorded, when
    /// its lock is free (supervision calls it at each resync: a state dir freed later gets
    /// the record without waiting for the next job, before a restart of the daemon could lose
    /// it). Nothing happens while the lock cannot be taken (a job holds it, or the disk is
    /// still full).
    pub fn retry_unrecorded(&self, stack: &str) {
        if self.unrecorded(stack).is_none() {
            return;
        }
        let Ok(ledger) = self.ledger.stack(stack) else {
            return;
        };
        let holder = Holder::me(&format!("gantry record {stack}"), None);
        let Ok(_lock) = ledger.try_lock(&holder) else {
            return;
        };
        let mut releases = ledger.releases().unwrap_or_default();
        self.flush_unrecorded(&ledger, &mut releases);
    }

    /// Takes `stack`'s lock as `gantry VERB STACK` (waiting `req.lock_wait`) and reads its
    /// releases settled: an unrecorded one written, interrupted ones recovered (a rollback's
    /// and a reconcile's start).
    pub(super) async fn lock_settled(
        &self,
        stack: &StackLedger,
        verb: &str,
        req: &DeployRequest,
    ) -> Result<(StackLock, Vec<Release>), DeployError> {
        let holder = Holder::me(&format!("gantry {verb} {}", req.stack), None);
        let lock = stack.lock(&holder, req.lock_wait).await?;
        let mut releases = stack.releases()?;
        self.flush_unrecorded(stack, &mut releases);
        stack.recover_in(&lock, &mut releases)?;
        Ok((lock, releases))
    }

    /// Writes the stack's unrecorded release if there is one (kept for later if it still
    /// cannot be written) and puts it in `releases` in place of its `in_progress` record.
    pub(super) fn flush_unrecorded(&self, stack: &StackLedger, releases: &mut Vec<Release>) {
        let Some(release) = self.unrecorded(stack.name()) else {
            return;
        };
        // Another process took the stack on since (a `--local` job marked it interrupted and
        // went on): what it recorded after stands; this copy is stale.
        if releases
            .iter()
            .any(|r| r.seq == release.seq && r.outcome != Outcome::InProgress)
        {
            self.unrecorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(stack.name());
            return;
        }
        match stack.write(&release) {
            Ok(()) => {
                tracing::info!(stack = %stack.name(), release = %release.id(), "recorded the release that could not be written before");
                self.unrecorded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(stack.name());
            }
            Err(e) => {
                tracing::warn!(stack = %stack.name(), release = %release.id(), error = %e, "the release that runs still cannot be recorded");
            }
        }
        releases.retain(|r| r.seq != release.seq);
        releases.push(release);
        releases.sort_by_key(|r| r.seq);
    }

    /// Brings the switch in line with what runs in project `switched` (when it has ports
    /// through the switch), drops
    /// the canary record, records `release` as ended and prunes old releases.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn end_release(
        &self,
        stack: &StackLedger,
        lock: &StackLock,
        switched: Option<&str>,
        release: &mut Release,
        req: &DeployRequest,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) -> Result<(), DeployError> {
        if let Some(project) = switched {
            // Whatever happened, the switch follows what now runs.
            if let Err(e) = self.sync_routes(project).await {
                tracing::warn!(stack = %project, error = %e, "edge switch not in line with the containers");
                progress.step(None, &format!("warning: {e}"));
            }
        }
        stack.clear_canary();
        release.finished_at = Some(now_rfc3339());
        release.exit_code = report.exit_code_override.map(crate::ExitCode::code);
        self.record_end(stack, release, report)?;
        let pruned = stack.prune(lock, req.keep_releases)?;
        if !pruned.is_empty() {
            tracing::info!(stack = %req.stack, pruned = pruned.len(), "pruned old releases");
            self.prune_images(stack, &pruned, progress).await?;
        }
        report.outcome = release.outcome;
        report.services = release.services.clone();
        report.error = release.error.clone();
        Ok(())
    }
}

/// A deploy that failed with the stack as the last good release left it: `Failed`, with the
/// error's own exit code where it has one that says more than "failed".
fn failed_unchanged(
    e: DeployError,
    release: &mut Release,
    progress: &dyn Progress,
    report: &mut DeployReport,
) {
    progress.step(None, "failed before anything running changed");
    release.outcome = Outcome::Failed;
    release.error = Some(e.to_string());
    report.exit_code_override = Some(match e.exit_code() {
        crate::ExitCode::InvalidInput => crate::ExitCode::InvalidInput,
        crate::ExitCode::Unavailable => crate::ExitCode::Unavailable,
        crate::ExitCode::TempFail => crate::ExitCode::TempFail,
        _ => crate::ExitCode::Failed,
    });
}

/// Whether a failure that touched nothing running still leaves the stack off the last good
/// release: this deploy created a container where none was, or the stack sat between two
/// releases already and a job or a service of this rollout failed (not a stop before that: a
/// job of a killed deploy still running, or the deploy's timeout meanwhile; Docker unreachable
/// (69); a refused input (65); `failure_action`).
fn strayed(applied: &Done, e: &DeployError) -> bool {
    applied.created
        || (applied.unsettled
            && applied.under_way
            && !matches!(
                e,
                DeployError::Paused { .. } | DeployError::Continued { .. }
            )
            && e.exit_code() == crate::ExitCode::Failed)
}
