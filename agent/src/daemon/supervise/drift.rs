//! Drift: how a stack's containers differ from its last good release.
//!
//! What: the release is rebuilt ([`project_from_release`]) and planned against the containers
//! there are ([`plan::compute`] with the recorded image ids); a service to create, recreate,
//! start or scale has drifted (removed or stopped by hand, replaced by a manual
//! `docker compose up`), unless Docker's restart policy is restarting its container, or it is a
//! one-shot job.
//!
//! Design: env files are not drift. A release records its env files' hashes, not their values,
//! and rebuilding it reads the files as they are now: after a rotation a service would plan as
//! a recreate although nobody touched it. Applying an env-file change is the watcher's job
//! ([`super::watch`]), by the stack's policy (`watch_env_files`), after its debounce, as a
//! deploy that records a release. So a service that reads an env file changed since the release
//! (or is bound to such a service: `network_mode: service:X`...) counts only when one of its
//! replicas is missing or stopped.
//!
//! Limits: such a service replaced by hand is not seen as drift until its env-file change has
//! been deployed (its containers' hashes can no longer be compared); when one of its containers
//! is brought back, the reconcile gives it the env files as they are now.

use crate::deploy::apply::project_from_release;
use crate::deploy::plan::{self, Action};
use crate::deploy::{env_only, not_running};
use crate::engine::{ContainerInfo, ContainerStatus};
use crate::ledger::Release;

/// The services of `release` whose containers differ from it (missing, stopped, replaced by
/// hand), ignoring containers Docker's restart policy is restarting, one-shot jobs, and
/// differences in env files alone (see the module's documentation).
pub fn drift(
    release: &Release,
    containers: &[ContainerInfo],
) -> Result<Vec<String>, crate::deploy::DeployError> {
    let project = project_from_release(release)?;
    let image_ids = release
        .images
        .iter()
        .map(|(s, i)| (s.clone(), i.id.clone()))
        .collect();
    let plan = plan::compute(
        &project,
        containers,
        &image_ids,
        Some(release),
        &release.jobs,
    );
    let env_changed = env_only(release, &project);
    Ok(plan
        .services
        .iter()
        .filter(|s| !s.job)
        .filter(|s| {
            !s.containers
                .iter()
                .any(|c| c.state.status == ContainerStatus::Restarting)
        })
        .filter_map(|s| {
            let action = if s.action == Action::Recreate && env_changed.contains(&s.service) {
                not_running(s)?
            } else {
                s.action
            };
            matches!(
                action,
                Action::Create | Action::Recreate | Action::Start | Action::Scale
            )
            .then(|| format!("{} {}", s.service, action.as_str()))
        })
        .collect())
}

#[cfg(test)]
mod tests;
