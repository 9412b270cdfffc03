//! The plan: what a deploy would do to each service, and why.
//!
//! A container is up to date when its `io.gantry.hash` label equals the service's canonical
//! hash (mixed with what replaces the containers of the services it is bound to, see
//! [`bound`]: a service in another's network namespace is recreated with it), it runs the
//! image id the deploy resolved, and every network and named volume the
//! service uses is attached under its Docker name (a top-level `name:` moves them without
//! changing the service). The fields that changed are found by
//! comparing the service with the one recorded in the last release; without a record the plan
//! says "configuration changed". A network or volume whose configuration the files changed
//! since that release is named in the reasons of the services using it ([`resources`]):
//! Docker cannot change one in place.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::compose::{DependsCondition, Project, Service, hash};
use crate::engine::{ContainerInfo, labels};
use crate::ledger::Release;

pub mod bound;
mod resources;

/// What happens to a service (the ledger records the same type).
pub use crate::ledger::Action;

/// The plan for one service.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub service: String,
    pub action: Action,
    /// Why: the fields that changed, `image`, `replicas 1 -> 3`, `container stopped`...
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image id the service will run (`None`: not present locally yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    pub replicas: u32,
    /// Whether the service runs to completion (a job) instead of staying up.
    pub job: bool,
    /// start-first or stop-first, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<super::health::Strategy>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub strategy_reason: String,
    /// When a new container counts as ready.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ready: String,
    /// The published ports that go through the edge switch (`127.0.0.1:8080->80/tcp`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edge: Vec<String>,
    #[serde(skip)]
    pub hash: String,
    /// The hash label a container created before hashes were bound may carry and still be up
    /// to date (the service's own hash, while nothing it is bound to is replaced).
    #[serde(skip)]
    pub legacy_hash: Option<String>,
    /// The service's containers now, by replica number (duplicates included).
    #[serde(skip)]
    pub containers: Vec<ContainerInfo>,
    /// A removal: the service as the last good release had it (how its containers stop:
    /// signal, grace period, `pre_stop` hooks). `None` for any other action.
    #[serde(skip)]
    pub last: Option<Box<Service>>,
    /// A reconcile's service compared by its env files alone: a running replica is kept
    /// whatever its hash (see `reconcile::env_only`). `false` in every plan `compute` makes.
    #[serde(skip)]
    pub keep_running: bool,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub stack: String,
    /// Services in dependency order, then services being removed.
    pub services: Vec<ServicePlan>,
    /// Networks and volumes whose configuration the files changed since the last good
    /// release, which Docker cannot change in place (also in the reasons of the services
    /// using them). Not a no-op: a deploy goes through its rollout, which says what differs
    /// from what Docker has, and records the release.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unapplied: Vec<String>,
}

impl Plan {
    /// Whether applying the plan changes nothing.
    pub fn is_noop(&self) -> bool {
        self.unapplied.is_empty() && self.services.iter().all(|s| !s.action.changes())
    }

    /// Whether the edge switch must be brought in line with what runs once the plan is applied:
    /// a service goes through it, or anything changed (a service may have left it: removed,
    /// its ports gone, `edge: false`, and must not keep its routes).
    pub fn syncs_edge(&self) -> bool {
        self.services
            .iter()
            .any(|s| !s.edge.is_empty() || s.action.changes())
    }

    pub fn get(&self, service: &str) -> Option<&ServicePlan> {
        self.services.iter().find(|s| s.service == service)
    }

    /// Says which services go through the edge switch (`edge`: whether it is available, and
    /// why not), and their strategy with it: a port the switch owns does not force stop-first.
    pub fn with_edge(mut self, project: &Project, edge: Result<(), String>) -> Self {
        for sp in &mut self.services {
            let Some(svc) = project.services.get(&sp.service) else {
                continue;
            };
            if sp.job {
                continue;
            }
            let ports = crate::edge::switched_ports(svc);
            if ports.is_empty() {
                continue;
            }
            match &edge {
                Ok(()) => {
                    sp.edge = ports.iter().map(ToString::to_string).collect();
                    let chosen = super::health::strategy(svc, true);
                    let (s, why) = super::anonymous::strategy(chosen, svc, &sp.containers);
                    sp.strategy = Some(s);
                    sp.strategy_reason = why;
                }
                Err(why_not) => {
                    sp.strategy_reason = format!(
                        "{} (edge switch unavailable: {why_not})",
                        sp.strategy_reason
                    );
                }
            }
        }
        self
    }
}

/// Services that run to completion: the ones others wait on with
/// `condition: service_completed_successfully`, or marked `x-gantry: {job: pre-deploy}`.
pub fn job_services(project: &Project) -> BTreeSet<String> {
    let mut jobs = BTreeSet::new();
    for svc in project.services.values() {
        for (dep, d) in &svc.depends_on {
            // An optional dependency (`required: false`) may not be active: no job then.
            if d.condition == DependsCondition::ServiceCompletedSuccessfully
                && project.services.contains_key(dep)
            {
                jobs.insert(dep.clone());
            }
        }
        if svc.gantry.job.is_some() {
            jobs.insert(svc.name.clone());
        }
    }
    jobs
}

/// Top-level fields of a service that differ between two canonical forms.
pub fn changed_fields(old: &Service, new: &Service) -> Vec<String> {
    let (a, b) = (hash::canonical_json(old), hash::canonical_json(new));
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// A service as a release recorded it, its env files read as they are now.
pub fn recorded_service(release: &Release, service: &str) -> Option<Service> {
    super::apply::project_from_release(release)
        .ok()?
        .services
        .remove(service)
}

/// The env files of `svc` whose content differs from what `release` recorded.
fn env_files_changed(release: &Release, svc: &Service) -> Vec<String> {
    svc.env_file
        .iter()
        .map(|f| f.path.display().to_string())
        .filter(|p| {
            release.env_files.get(p).cloned() != super::recorded::env_file_hash(Path::new(p))
        })
        .collect()
}

/// Computes the plan.
///
/// `containers`: every container of the project (stopped ones too). `image_ids`: service →
/// the image id it should run, for the images present locally. `previous`: the last release
/// (for the list of changed fields). `last_job_runs`: job service → hash of its last
/// successful run.
pub fn compute(
    project: &Project,
    containers: &[ContainerInfo],
    image_ids: &BTreeMap<String, String>,
    previous: Option<&Release>,
    last_job_runs: &BTreeMap<String, String>,
) -> Plan {
    let jobs = job_services(project);
    let mut by_service: BTreeMap<&str, Vec<&ContainerInfo>> = BTreeMap::new();
    for c in containers.iter().filter(|c| !c.oneoff) {
        if let Some(s) = c.service.as_deref() {
            by_service.entry(s).or_default().push(c);
        }
    }

    let mut services = Vec::new();
    // What the services bound to another's containers take from it, and the services whose
    // containers this plan replaces (see `bound`).
    let mut parents: BTreeMap<String, bound::Parent> = BTreeMap::new();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    for svc in project.services_in_dependency_order() {
        let own = svc.config_hash();
        let job = jobs.contains(&svc.name);
        let (hash, bound) = if job {
            (own.clone(), BTreeMap::new())
        } else {
            (
                bound::bound_hash(project, svc, &own, &parents),
                bound::bound_to(project, svc),
            )
        };
        // The services bound to one this plan replaces follow it, and say why.
        let with_parents: Vec<String> = bound
            .iter()
            .filter(|(p, _)| replaced.contains(p.as_str()))
            .map(|(p, why)| format!("{p} recreated ({why})"))
            .collect();
        // A container created before hashes were bound (its label is the service's own hash)
        // is up to date as long as nothing it is bound to is replaced: an upgrade of Gantry
        // alone recreates nothing.
        let unbound_label_ok = hash != own && with_parents.is_empty();
        let image_id = image_ids.get(&svc.name).cloned();
        let existing: Vec<ContainerInfo> = by_service
            .remove(svc.name.as_str())
            .unwrap_or_default()
            .into_iter()
            .cloned()
            .collect();
        let replicas = if job { 1 } else { svc.replicas() };
        let mut reasons = Vec::new();

        let action = if job {
            let run_hash = job_run_hash(&hash, image_id.as_deref());
            match last_job_runs.get(&svc.name) {
                Some(h) if *h == run_hash => Action::Unchanged,
                Some(_) => {
                    reasons.push("job changed since its last successful run".into());
                    Action::Run
                }
                None => {
                    reasons.push("job has not run for this configuration".into());
                    Action::Run
                }
            }
        } else {
            let wanted: Vec<u32> = (1..=replicas).collect();
            let mut stale_config = false;
            let mut stale_image = false;
            let mut stopped = false;
            let mut detached = BTreeSet::new();
            let mut misnamed = Vec::new();
            let mut missing = 0;
            for n in &wanted {
                let mine: Vec<&ContainerInfo> =
                    existing.iter().filter(|c| c.number == Some(*n)).collect();
                let legacy = unbound_label_ok.then_some(own.as_str());
                match best_container(project, svc, &mine, &hash, legacy, image_id.as_deref()) {
                    None => missing += 1,
                    Some(c) => {
                        let label = c.label(labels::GANTRY_HASH);
                        if label != Some(hash.as_str())
                            && !(unbound_label_ok && label == Some(own.as_str()))
                        {
                            stale_config = true;
                        } else if let Some(gone) = not_attached(project, svc, c) {
                            detached.extend(gone);
                        } else if image_id.as_deref().is_some_and(|id| id != c.image_id) {
                            stale_image = true;
                        } else {
                            stopped |= !c.state.running;
                            // A replacement killed before its rename: up to date, serving,
                            // under the temporary name (and maybe without its aliases).
                            let name = super::translate::container_name(project, svc, *n);
                            if c.name == format!("{name}{NEXT_SUFFIX}") {
                                misnamed.push(c.name.clone());
                            }
                        }
                    }
                }
            }
            let extra = existing
                .iter()
                .filter(|c| c.number.is_none_or(|n| n > replicas))
                .count();
            let duplicates = existing
                .iter()
                .filter(|c| c.number.is_some_and(|n| n <= replicas))
                .count()
                .saturating_sub(replicas as usize - missing);
            if stale_config {
                let fields = previous
                    .and_then(|r| recorded_service(r, &svc.name))
                    .map(|old| changed_fields(&old, svc))
                    .unwrap_or_default();
                let env_files = previous
                    .map(|r| {
                        env_files_changed(r, svc)
                            .into_iter()
                            .map(|p| format!("env file {p} changed since {}", r.id()))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if fields.is_empty() && env_files.is_empty() && with_parents.is_empty() {
                    reasons.push("configuration changed".into());
                } else {
                    reasons.extend(fields);
                }
                reasons.extend(env_files);
                reasons.extend(with_parents);
            }
            reasons.extend(detached.iter().cloned());
            if stale_image {
                reasons.push("image".into());
            }
            if image_id.is_none() {
                reasons.push("image not present locally: will pull".into());
            }
            if stopped {
                reasons.push("container stopped".into());
            }
            for name in &misnamed {
                reasons.push(format!("container left under the temporary name {name}"));
            }
            if duplicates > 0 {
                reasons.push(format!("{duplicates} duplicate container(s) to clean up"));
            }
            if missing > 0 && missing < replicas as usize || extra > 0 {
                reasons.push(format!(
                    "replicas {} -> {replicas}",
                    existing.len().saturating_sub(duplicates)
                ));
            }
            if existing.is_empty() {
                Action::Create
            } else if stale_config || !detached.is_empty() || stale_image || duplicates > 0 {
                Action::Recreate
            } else if missing > 0 || extra > 0 {
                Action::Scale
            } else if stopped || !misnamed.is_empty() {
                Action::Start
            } else if image_id.is_none() {
                Action::Recreate
            } else {
                Action::Unchanged
            }
        };
        let (strategy, strategy_reason) = if job {
            (None, String::new())
        } else {
            let (s, why) =
                super::anonymous::strategy(super::health::strategy(svc, false), svc, &existing);
            (Some(s), why)
        };
        let ready = if job {
            String::new()
        } else {
            super::health::rule(svc).describe()
        };
        if !job {
            parents.insert(
                svc.name.clone(),
                bound::Parent {
                    hash: hash.clone(),
                    image_id: image_id.clone(),
                },
            );
            if action == Action::Recreate {
                replaced.insert(svc.name.clone());
            }
        }
        services.push(ServicePlan {
            service: svc.name.clone(),
            action,
            reasons,
            image: svc.image.clone(),
            image_id,
            replicas,
            job,
            strategy,
            strategy_reason,
            ready,
            edge: Vec::new(),
            legacy_hash: unbound_label_ok.then(|| own.clone()),
            hash,
            containers: existing,
            last: None,
            keep_running: false,
        });
    }
    // Networks and volumes the files changed, which Docker cannot change in place.
    let changed = resources::changed_since(project, previous);
    for (service, lines) in changed.by_service {
        if let Some(sp) = services.iter_mut().find(|sp| sp.service == service) {
            sp.reasons.extend(lines);
        }
    }
    for (name, left) in by_service {
        services.push(ServicePlan {
            service: name.to_owned(),
            action: Action::Remove,
            reasons: vec!["no longer in the compose files".into()],
            image: None,
            image_id: None,
            replicas: 0,
            job: false,
            strategy: None,
            strategy_reason: String::new(),
            ready: String::new(),
            edge: Vec::new(),
            hash: String::new(),
            legacy_hash: None,
            containers: left.into_iter().cloned().collect(),
            last: previous
                .and_then(|r| r.model.get("services")?.get(name))
                .and_then(|v| serde_json::from_value::<Service>(v.clone()).ok())
                .map(Box::new),
            keep_running: false,
        });
    }
    Plan {
        stack: project.name.clone(),
        services,
        unapplied: changed.lines,
    }
}

/// What the service's configuration attaches that `c` lacks: a network or named volume whose
/// Docker name changed (a top-level `name:`) leaves the hash alone, as Compose's does, and
/// Compose recreates the container for it too. Extra attachments (a `docker network connect`
/// by hand) are not a difference. `None` when nothing is missing.
fn not_attached(project: &Project, svc: &Service, c: &ContainerInfo) -> Option<Vec<String>> {
    let mut gone = Vec::new();
    if svc.network_mode.is_none() {
        for key in svc.networks.keys() {
            let name = super::translate::network_name(project, key);
            if !c.networks.contains(&name) {
                gone.push(format!("network {name} not attached"));
            }
        }
    }
    for m in &svc.volumes {
        if let (crate::compose::MountKind::Volume, Some(key)) = (m.kind, m.source.as_deref()) {
            let name = super::translate::volume_name(project, key);
            if !c.volumes.contains(&name) {
                gone.push(format!("volume {name} not mounted"));
            }
        }
    }
    (!gone.is_empty()).then_some(gone)
}

/// The hash a job run is recorded under.
pub fn job_run_hash(hash: &str, image_id: Option<&str>) -> String {
    format!("{hash}@{}", image_id.unwrap_or("?"))
}

/// The suffix of the temporary name a replacement is created under, beside the container it
/// replaces, until that one is retired.
pub const NEXT_SUFFIX: &str = "-gantry-next";

/// Of several containers claiming one replica number, the one to keep: up to date and running
/// first, then up to date, then running, then any; among equals, the one under its own name
/// rather than a replacement's temporary one (a replacement cut short: the other one is what
/// served).
pub fn best_container<'a>(
    project: &Project,
    svc: &Service,
    candidates: &[&'a ContainerInfo],
    hash: &str,
    legacy: Option<&str>,
    image_id: Option<&str>,
) -> Option<&'a ContainerInfo> {
    candidates.iter().copied().max_by_key(|c| {
        let current = is_current(project, svc, c, hash, legacy, image_id);
        (current, c.state.running, !c.name.ends_with(NEXT_SUFFIX))
    })
}

/// Whether `c` is what the service asks for: created from its configuration (`hash`, or the
/// `legacy` hash an older Gantry labelled it with, see [`ServicePlan::legacy_hash`]), running
/// the image resolved (`image_id`, when known), with every network and named volume attached.
pub fn is_current(
    project: &Project,
    svc: &Service,
    c: &ContainerInfo,
    hash: &str,
    legacy: Option<&str>,
    image_id: Option<&str>,
) -> bool {
    let label = c.label(labels::GANTRY_HASH);
    (label == Some(hash) || (legacy.is_some() && label == legacy))
        && image_id.is_none_or(|id| id == c.image_id)
        && not_attached(project, svc, c).is_none()
}
