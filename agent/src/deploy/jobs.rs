//! One-shot jobs (migrations): run to completion with the new image, env and networks, before
//! the services that wait for them.
//!
//! Design: a job runs in a container of its own (`oneoff`, restart `no`), is waited for up to
//! its `x-gantry.job.timeout` (default 10 min), and is then removed; its whole output is kept
//! with the release (`jobs/<seq>-<service>.log`) and its last lines go into the error. A job
//! that succeeded is recorded by its run hash (configuration and image id), so it runs at most
//! once per release and again only when either changes.
//!
//! Limits: a job is never run on the way back (a rollback): migrations go forward only.

use std::time::{Duration, Instant};

use crate::compose::Service;
use crate::engine::EngineError;

use super::plan::{self, Action, ServicePlan};
use super::rollout::{Rollout, record};
use super::{DeployError, ready::LOG_LINES, translate};

/// How long a one-shot job may run unless `x-gantry.job.timeout` says otherwise.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

impl Rollout<'_> {
    /// Runs a one-shot job to completion; keeps its log with the release.
    pub(super) async fn run_job(&self, svc: &Service, sp: &ServicePlan) -> Result<(), DeployError> {
        let (project, stack, release, progress) =
            (self.project, self.stack, self.release, self.progress);
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
                let hash = plan::job_run_hash(&sp.hash, sp.image_id.as_deref());
                self.applied.with(|a| a.jobs.insert(svc.name.clone(), hash));
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
        let err = result.as_ref().err().map(ToString::to_string);
        self.applied.with(|a| {
            a.records
                .push(record(&svc.name, Action::Run, t0.elapsed(), err))
        });
        result
    }
}

fn job_timeout(svc: &Service) -> Duration {
    svc.gantry
        .job
        .as_ref()
        .and_then(|j| j.timeout)
        .unwrap_or(JOB_TIMEOUT)
}
