//! Reconcile: the daemon brings a stack back to its last good release after drift.
//!
//! Design: nothing is recorded (the ledger already describes the state): heals neither grow
//! the history nor push real releases out of retention. The daemon decides to reconcile
//! before it has the stack's lock; under the lock, a rollout that `failure_action` stopped
//! where it failed, or a canary, recorded meanwhile is left as it is.
//!
//! Limits: a reconcile cut short is simply done again by the next resync.

use std::time::Instant;

use crate::ledger::Outcome;

use super::apply::{Deployer, finish};
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
            .rollback_inner(&target, &stack, &target, req, progress)
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
