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
use std::time::{Duration, Instant};

use crate::ExitCode;
use crate::compose::{LoadOptions, Project};
use crate::engine::{EngineError, Object, labels};
use crate::ledger::{Holder, Release};

use super::apply::Deployer;
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

    /// Removes the networks (and with `volumes` the named volumes) of the last release that
    /// ran something, those the stack made; returns what could not be removed (one still in
    /// use is kept with a progress line, not a failure).
    async fn remove_resources(
        &self,
        req: &DeployRequest,
        volumes: bool,
        report: &DeployReport,
        progress: &dyn Progress,
    ) -> Result<Vec<String>, DeployError> {
        let stack = self.ledger.stack(&req.stack)?;
        let holder = Holder::me(&format!("gantry down {}", req.stack), None);
        // The containers are gone already: a lock held by another process is waited for a
        // while rather than failing as if nothing had changed.
        let wait = req.lock_wait.max(RELOCK_WAIT);
        let _lock = match stack.lock(&holder, wait).await {
            Ok(lock) => lock,
            Err(e) => {
                return Ok(vec![format!(
                    "networks and volumes not removed: {e}; run gantry down again"
                )]);
            }
        };
        let releases = stack.releases()?;
        let good: Vec<&Release> = releases.iter().filter(|r| r.outcome.is_good()).collect();
        // A deploy that succeeded since owns the stack now: its networks are in use.
        if good.last().map(|r| r.id()) != report.release {
            progress.step(
                None,
                "networks and volumes kept: a release was recorded since this down",
            );
            return Ok(Vec::new());
        }
        // What the last release that ran something declared, as `docker compose down` takes
        // the file's; a name any retained release declares external is never the stack's.
        let models: Vec<Project> = releases
            .iter()
            .filter_map(|r| serde_json::from_value::<Project>(r.model.clone()).ok())
            .collect();
        let external: BTreeSet<Object> = models
            .iter()
            .flat_map(|p| {
                let networks = p.networks.values().filter(|n| n.external);
                let named = p.volumes.values().filter(|v| v.external);
                networks
                    .map(|n| Object::Network(n.name.clone()))
                    .chain(named.map(|v| Object::Volume(v.name.clone())))
                    .collect::<Vec<_>>()
            })
            .collect();
        let last = good
            .iter()
            .rev()
            .find(|r| !r.runs_nothing())
            .map(|r| serde_json::from_value::<Project>(r.model.clone()));
        let last = match last {
            Some(Ok(project)) => project,
            Some(Err(e)) => {
                return Ok(vec![format!(
                    "networks and volumes not removed: the last release's model cannot be read ({e})"
                )]);
            }
            None => return Ok(Vec::new()),
        };
        let mut objects: Vec<Object> = last
            .networks
            .values()
            .map(|n| Object::Network(n.name.clone()))
            .collect();
        if volumes {
            objects.extend(
                last.volumes
                    .values()
                    .map(|v| Object::Volume(v.name.clone())),
            );
        }
        objects.retain(|o| !external.contains(o));
        let mut failed = Vec::new();
        let total = objects.len();
        for object in objects {
            match self.remove_own(&object, &req.stack).await {
                Ok(Some(message)) => progress.step(None, &message),
                Ok(None) => {}
                Err(e) if in_use(&e) => {
                    progress.step(None, &format!("{object} kept: still in use ({e})"));
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

/// How long the removal of networks and volumes waits for the stack's lock at least.
const RELOCK_WAIT: Duration = Duration::from_secs(60);

/// Whether Docker refused because something still uses the network or volume: 409 for a
/// volume, 403 ("has active endpoints") for a network.
fn in_use(e: &EngineError) -> bool {
    match e {
        EngineError::Conflict { .. } => true,
        EngineError::Api { object, status, .. } => {
            *status == 403 && matches!(object, Object::Network(_))
        }
        _ => false,
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
