//! `gantry down`: take a stack off the host, as `docker compose down` does, and keep it off.
//!
//! Design: a down is a deploy of an empty project ([`DeployRequest::down`]): every container of
//! the stack is stopped and removed by the same rollout as a service that left the files (edge
//! routes go with them), and the release it records has no services, so supervision has nothing
//! to restore and `gantry rollback` brings back the release before it. A down that fails
//! part-way is not undone and removes nothing more. Once the down's release is recorded, and
//! still under the lock the deploy took ([`Deployer::after_down`], called by the deploy), the
//! networks (and with `--volumes` the named volumes) of the last release that ran something are
//! removed, each only when its labels say this stack made it (`com.docker.compose.project`): a
//! network or volume someone else made, or that any retained release declares `external`, is
//! never touched. No other job can come between the containers going and the networks going.
//!
//! Crash safety: the release is recorded before anything else goes, so a down killed during the
//! removal leaves a ledger that says the stack is down; the next `gantry down` finds nothing to
//! deploy and removes what is still there (as it does for a stack that is down already).
//!
//! With `--volumes`, the anonymous volumes of the stack's containers go too, once the down
//! succeeded, as with `docker compose down --volumes` (listed before the containers go).
//!
//! Limits: a network still in use (another stack's container on it) is kept with a warning,
//! as Compose does; networks and volumes of releases already pruned from the ledger are not
//! known and stay; nor are the anonymous volumes of containers a plain down already removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::ExitCode;
use crate::compose::{LoadOptions, Project};
use crate::engine::{EngineError, Object, labels};
use crate::ledger::{Release, StackLedger, StackLock};

use super::apply::Deployer;
use super::{DeployError, DeployReport, DeployRequest, Progress};

impl Deployer {
    /// Removes every container of the stack and records a release with none; then, under the
    /// same lock, the stack's networks, and its named volumes when `volumes` (their data with
    /// them).
    pub async fn down(
        &self,
        req: &DeployRequest,
        volumes: bool,
        progress: &dyn Progress,
    ) -> DeployReport {
        let mut req = req.clone();
        req.load = LoadOptions::default();
        req.preloaded = Some(empty_project(&req.stack));
        req.down = true;
        req.down_volumes = volumes;
        // `docker compose down --volumes` takes the containers' anonymous volumes too.
        let anonymous = match volumes {
            true => self.anonymous_volumes(&req.stack).await,
            false => Ok(Vec::new()),
        };
        let mut report = self.deploy(&req, progress).await;
        if report.exit_code() == ExitCode::Ok {
            let failed = match anonymous {
                Ok(names) => self.remove_anonymous(&names, progress).await,
                Err(e) => vec![format!(
                    "anonymous volumes not removed: the stack's containers could not be listed \
                     before they went ({e}); remove them by hand (docker volume ls -f dangling=true)"
                )],
            };
            if !failed.is_empty() {
                let error = report.error.take().into_iter().chain(failed);
                report.error = Some(error.collect::<Vec<_>>().join("; "));
                report.exit_code_override = Some(ExitCode::Failed);
            }
        }
        report
    }

    /// The anonymous volumes of the stack's containers.
    async fn anonymous_volumes(&self, stack: &str) -> Result<Vec<String>, EngineError> {
        let containers = self.engine.list_containers(stack, true).await?;
        let mut names: Vec<String> = containers
            .into_iter()
            .flat_map(|c| c.anonymous_volumes.into_iter().map(|(_, name)| name))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Removes the anonymous volumes `names` (their containers gone); returns what could not
    /// be removed (one still in use is kept with a progress line).
    async fn remove_anonymous(&self, names: &[String], progress: &dyn Progress) -> Vec<String> {
        let mut failed = Vec::new();
        for name in names {
            let object = Object::Volume(name.clone());
            match self.engine.remove_volume(name).await {
                Ok(true) => progress.step(None, &format!("anonymous {object} removed")),
                Ok(false) => {}
                Err(e) if in_use(&e) => {
                    progress.step(
                        None,
                        &format!("anonymous {object} kept: still in use ({e})"),
                    );
                }
                Err(e) => {
                    progress.step(None, &format!("anonymous {object} not removed: {e}"));
                    failed.push(e.to_string());
                }
            }
        }
        if !failed.is_empty() {
            let n = failed.len();
            failed.insert(
                0,
                format!(
                    "{n} of {} anonymous volumes could not be removed",
                    names.len()
                ),
            );
        }
        failed
    }

    /// The end of a down that went well (its release recorded, or the stack down already),
    /// while the deploy still holds `_lock`: removes the networks and volumes of
    /// [`Self::remove_resources`] by `deadline` (`--timeout`), and puts what could not be
    /// removed in the report (exit 1). Does nothing for any other deploy.
    pub(super) async fn after_down(
        &self,
        stack: &StackLedger,
        _lock: &StackLock,
        req: &DeployRequest,
        deadline: tokio::time::Instant,
        progress: &dyn Progress,
        report: &mut DeployReport,
    ) {
        if !req.down || report.exit_code() != ExitCode::Ok {
            return;
        }
        let removal = self.remove_resources(stack, req.down_volumes, progress);
        let failed = match tokio::time::timeout_at(deadline, removal).await {
            Ok(Ok(failed)) => failed,
            Ok(Err(e)) => {
                report.error = Some(e.to_string());
                report.exit_code_override = Some(e.exit_code());
                return;
            }
            Err(_) => vec![format!(
                "networks and volumes not all removed: --timeout ({}) passed; run gantry down again",
                humantime::format_duration(req.timeout)
            )],
        };
        if !failed.is_empty() {
            report.error = Some(failed.join("; "));
            report.exit_code_override = Some(ExitCode::Failed);
        }
    }

    /// Removes the networks (and with `volumes` the named volumes) of the last release of
    /// `stack` that ran something, those the stack made; returns what could not be removed
    /// (one still in use is kept with a progress line, not a failure).
    async fn remove_resources(
        &self,
        stack: &StackLedger,
        volumes: bool,
        progress: &dyn Progress,
    ) -> Result<Vec<String>, DeployError> {
        let releases = stack.releases()?;
        let good: Vec<&Release> = releases.iter().filter(|r| r.outcome.is_good()).collect();
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
            match self.remove_own(&object, stack.name()).await {
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
