//! What `gantry plan` says about networks and volumes whose configuration the files changed
//! since the last good release: Docker cannot change one in place, so a deploy uses it as it
//! is (and says so again, against what Docker has, when it ensures it: `schedule.rs`).
//!
//! Limits: compared with the release, not with Docker (the plan reads no network): a change
//! deployed once is not named again by the plan, only by each deploy.

use std::collections::BTreeMap;

use crate::compose::{MountKind, Project};
use crate::deploy::translate;
use crate::engine::{self, NetworkSpec, VolumeSpec};
use crate::ledger::Release;

/// What the files changed, by network or volume.
#[derive(Debug, Default)]
pub struct Changed {
    /// One line per network or volume whose configuration differs from the release's (same
    /// Docker name), naming the keys and what to do.
    pub lines: Vec<String>,
    /// Service → the lines of the networks and volumes it uses.
    pub by_service: BTreeMap<String, Vec<String>>,
}

/// The networks and volumes whose configuration in `project` differs from `previous`'s.
pub fn changed_since(project: &Project, previous: Option<&Release>) -> Changed {
    let mut out = Changed::default();
    let Some(release) = previous else {
        return out;
    };
    let Ok(before) = crate::deploy::apply::project_from_release(release) else {
        return out;
    };
    let found_in = format!("in {}", release.id());
    let stack = &project.name;
    let line = |what: &str, name: &str, differs: Vec<String>, todo: &str| {
        format!(
            "{what} {name} changed in the files since {}: {}; Docker cannot change a {what} in \
             place: a deploy keeps it as it is and says what differs from it ({todo}, then \
             deploy, to apply a change)",
            release.id(),
            differs.join("; ")
        )
    };

    let owned = |specs: Vec<(String, NetworkSpec, bool)>| {
        specs
            .into_iter()
            .filter(|(_, _, external)| !external)
            .map(|(key, spec, _)| (key, spec))
            .collect::<Vec<_>>()
    };
    let earlier: BTreeMap<String, NetworkSpec> = owned(translate::network_specs(&before))
        .into_iter()
        .map(|(_, s)| (s.name.clone(), s))
        .collect();
    let mut networks: BTreeMap<String, String> = BTreeMap::new();
    for (key, spec) in owned(translate::network_specs(project)) {
        let Some(old) = earlier.get(&spec.name) else {
            continue;
        };
        let differs = engine::network_differences(&spec, &old.config_label(), &found_in);
        if !differs.is_empty() {
            let todo = format!("`gantry down {stack}`");
            networks.insert(key, line("network", &spec.name, differs, &todo));
        }
    }
    let volume_specs = |p: &Project| {
        translate::volume_specs(p)
            .into_iter()
            .filter(|(_, _, external)| !external)
            .map(|(key, spec, _)| (key, spec))
            .collect::<Vec<(String, VolumeSpec)>>()
    };
    let earlier: BTreeMap<String, VolumeSpec> = volume_specs(&before)
        .into_iter()
        .map(|(_, s)| (s.name.clone(), s))
        .collect();
    let mut volumes: BTreeMap<String, String> = BTreeMap::new();
    for (key, spec) in volume_specs(project) {
        let Some(old) = earlier.get(&spec.name) else {
            continue;
        };
        let differs = engine::volume_differences(&spec, &old.config_label(), &found_in);
        if !differs.is_empty() {
            let todo = format!("`gantry down {stack} --volumes` (its data is lost: back it up)");
            volumes.insert(key, line("volume", &spec.name, differs, &todo));
        }
    }
    out.lines = networks.values().chain(volumes.values()).cloned().collect();
    if out.lines.is_empty() {
        return out;
    }
    for svc in project.services.values() {
        let mut lines: Vec<String> = Vec::new();
        if svc.network_mode.is_none() {
            lines.extend(svc.networks.keys().filter_map(|k| networks.get(k).cloned()));
        }
        for m in &svc.volumes {
            if let (MountKind::Volume, Some(key)) = (m.kind, m.source.as_deref())
                && let Some(l) = volumes.get(key)
                && !lines.contains(l)
            {
                lines.push(l.clone());
            }
        }
        if !lines.is_empty() {
            out.by_service.insert(svc.name.clone(), lines);
        }
    }
    out
}
