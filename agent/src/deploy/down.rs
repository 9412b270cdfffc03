//! `gantry down`: take a stack off the host, as `docker compose down` does, and keep it off.
//!
//! Design: a down is a deploy of an empty project ([`DeployRequest::down`]): every container of
//! the stack is stopped and removed by the same rollout as a service that left the files (edge
//! routes go with them), and the release it records has no services, so supervision has nothing
//! to restore and `gantry rollback` brings back the release before it. A down that fails
//! part-way rolls back like any deploy. Then, under the stack's lock again and only when no
//! other release was recorded since, the networks (and with `--volumes` the named volumes) that
//! the stack's retained releases declared are removed, each only when its labels say this stack
//! made it (`com.docker.compose.project`): a network or volume someone else made, or declared
//! `external`, is never touched.
//!
//! Limits: a network still in use (another stack's container on it) is kept with a warning,
//! as Compose does; networks and volumes of releases already pruned from the ledger are not
//! known and stay.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

use crate::ExitCode;
use crate::compose::{LoadOptions, Project};
use crate::engine::{EngineError, Object, labels};
use crate::ledger::{Holder, Release};

use super::apply::Deployer;
use super::recorded::project_from_release;
use super::{DeployError, DeployReport, DeployRequest, Progress};

impl Deployer {
    /// Removes every container of the stack and records a release with none; then the
    /// stack's networks, and its named volumes when `volumes` (their data with them).
    pub async fn down(
        &self,
        req: &DeployRequest,
        volumes: bool,
        progress: &dyn Progress,
    ) -> DeployReport {
        let started = Instant::now();
        let mut req = req.clone();
        req.load = LoadOptions::default();
        req.preloaded = Some(empty_project(&req.stack));
        req.down = true;
        let mut report = self.deploy(&req, progress).await;
        if report.exit_code() != ExitCode::Ok {
            return report;
        }
        match self
            .remove_resources(&req, volumes, &report, progress)
            .await
        {
            Ok(failed) if failed.is_empty() => {}
            Ok(failed) => {
                report.error = Some(failed.join("; "));
                report.exit_code_override = Some(ExitCode::Failed);
            }
            Err(e) => {
                report.error = Some(e.to_string());
                report.exit_code_override = Some(e.exit_code());
            }
        }
        report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report
    }

    /// Removes what the releases declared and the stack made; returns what could not be
    /// removed (a resource in use is kept with a progress line, not a failure).
    async fn remove_resources(
        &self,
        req: &DeployRequest,
        volumes: bool,
        report: &DeployReport,
        progress: &dyn Progress,
    ) -> Result<Vec<String>, DeployError> {
        let stack = self.ledger.stack(&req.stack)?;
        let holder = Holder::me(&format!("gantry down {}", req.stack), None);
        let _lock = stack.lock(&holder, req.lock_wait).await?;
        let releases = stack.releases()?;
        // A deploy that came in between owns the stack now: its networks are in use.
        if releases.last().map(Release::id) != report.release {
            progress.step(
                None,
                "networks and volumes kept: a release was recorded since this down",
            );
            return Ok(Vec::new());
        }
        let mut objects: BTreeSet<Object> = BTreeSet::new();
        for release in &releases {
            let Ok(project) = project_from_release(release) else {
                continue;
            };
            let networks = project.networks.values().filter(|n| !n.external);
            objects.extend(networks.map(|n| Object::Network(n.name.clone())));
            if volumes {
                let named = project.volumes.values().filter(|v| !v.external);
                objects.extend(named.map(|v| Object::Volume(v.name.clone())));
            }
        }
        let mut failed = Vec::new();
        let total = objects.len();
        for object in objects {
            match self.remove_own(&object, &req.stack).await {
                Ok(Some(message)) => progress.step(None, &message),
                Ok(None) => {}
                Err(EngineError::Conflict { message, .. }) => {
                    progress.step(None, &format!("{object} kept: still in use ({message})"));
                }
                Err(e) => {
                    progress.step(None, &format!("{object} not removed: {e}"));
                    failed.push(e.to_string());
                }
            }
        }
        if !failed.is_empty() {
            failed.insert(
                0,
                format!(
                    "{} of {total} networks and volumes could not be removed",
                    failed.len()
                ),
            );
        }
        Ok(failed)
    }

    /// Removes `object` when this stack made it; says what happened, `None` when it is gone.
    async fn remove_own(
        &self,
        object: &Object,
        stack: &str,
    ) -> Result<Option<String>, EngineError> {
        let Some(found) = self.engine.labels_of(object).await? else {
            return Ok(None);
        };
        if found.get(labels::PROJECT).map(String::as_str) != Some(stack) {
            return Ok(Some(format!("{object} kept: not made by stack {stack}")));
        }
        let removed = match object {
            Object::Network(name) => self.engine.remove_network(name).await?,
            Object::Volume(name) => self.engine.remove_volume(name).await?,
            _ => false,
        };
        Ok(removed.then(|| format!("{object} removed")))
    }
}

/// A project with nothing in it, named `stack`.
fn empty_project(stack: &str) -> Project {
    Project {
        name: stack.to_owned(),
        working_dir: PathBuf::new(),
        config_files: Vec::new(),
        services: BTreeMap::new(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
        extensions: BTreeMap::new(),
        disabled_services: BTreeMap::new(),
        warnings: Vec::new(),
    }
}
