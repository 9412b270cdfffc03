//! One-shot jobs (migrations): run to completion with the new image, env and networks, before
//! the services that wait for them.
//!
//! Design: a job runs in a container of its own (`oneoff`, restart `no`), is waited for up to
//! its `x-gantry.job.timeout` (default 10 min), and is then removed; its whole output is kept
//! with the release (`jobs/<seq>-<service>.log`) and its last lines go into the error. A job
//! that succeeded is recorded by its run hash (configuration and image id) in the release in
//! progress at once, so it runs at most once per release (a deploy killed after it included)
//! and again only when either changes.
//!
//! Limits: a job is never run on the way back (a rollback): migrations go forward only.

use std::time::{Duration, Instant};

use crate::compose::Service;
use crate::engine::EngineError;

use super::plan::{self, Action, ServicePlan};
use super::rollout::{Rollout, record};
use super::{DeployError, translate};

/// How long a one-shot job may run unless `x-gantry.job.timeout` says otherwise.
pub(super) const JOB_TIMEOUT: Duration = Duration::from_secs(600);

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
            &job_log_file(&logs),
            0o600,
            gantry_common::fsx::Owner::default(),
        );
        // Its anonymous volumes go with it: the next run gets new ones, nothing inherits them.
        let _ = self.engine.remove_container_and_volumes(&id, true).await;
        let last: Vec<String> = super::capped_tail(&logs);
        let result = match outcome? {
            Some(0) => {
                let hash = plan::job_run_hash(&sp.hash, sp.image_id.as_deref());
                // Recorded at once in the release in progress: a deploy killed after this
                // point does not run the migration again (the next one carries the jobs of
                // the interrupted release). Under the lock of what was applied, so two jobs
                // ending together cannot write an older set last.
                self.applied.with(|a| {
                    a.jobs.insert(svc.name.clone(), hash);
                    let mut saved = release.clone();
                    saved.jobs.extend(a.jobs.clone());
                    if let Err(e) = stack.write(&saved) {
                        tracing::warn!(stack = %stack.name(), service = %svc.name, error = %e, "job succeeded but the release in progress could not be updated");
                    }
                });
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

pub(super) fn job_timeout(svc: &Service) -> Duration {
    svc.gantry
        .job
        .as_ref()
        .and_then(|j| j.timeout)
        .unwrap_or(JOB_TIMEOUT)
}

/// The most a job's log file keeps (its last bytes, whole lines).
pub(super) const JOB_LOG_BYTES: usize = 1 << 20;

/// A job's kept log: its output's last [`JOB_LOG_BYTES`] at most, from a line start.
pub(super) fn job_log_file(lines: &[String]) -> Vec<u8> {
    let mut body = lines.join("\n").into_bytes();
    body.push(b'\n');
    if body.len() > JOB_LOG_BYTES {
        let cut = body.len() - JOB_LOG_BYTES;
        let start = body[cut..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(body.len(), |p| cut + p + 1);
        body.drain(..start);
    }
    body
}
