//! What a release records of a project, and the project rebuilt from a release.
//!
//! Design: a release keeps the resolved model without the values env files gave
//! ([`release_model`]); each service's `env_file:` entries and each file's sha256 are kept
//! beside it. [`project_from_release`] rebuilds the project and reads the env files as they are
//! now, so a rollback or a reconcile takes the current secrets, never a recorded copy.
//!
//! Limits: interpolation inside an env file sees the release's variables, then this process's
//! environment (not the `.env` of the deploy that recorded it), then the service's environment
//! and the earlier files' values. Releases recorded before env
//! files were kept by reference carry the values in their model and are used as they are.

use std::collections::BTreeMap;

use sha2::{Digest as _, Sha256};

use crate::compose::{self, Project, xgantry::XGantry};
use crate::ledger::Release;

use super::DeployError;

/// sha256 of every env file the services read, by path.
pub(super) fn env_file_hashes(project: &Project) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for svc in project.services.values() {
        for f in &svc.env_file {
            if let Some(h) = env_file_hash(&f.path) {
                out.insert(f.path.display().to_string(), h);
            }
        }
    }
    out
}

/// sha256 (hex) of a file's content, as releases record env files; `None`: unreadable.
pub(super) fn env_file_hash(path: &std::path::Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|body| hex::encode(Sha256::digest(&body)))
}

/// The model a release records: the resolved project without the values its env files gave
/// (those may be secrets; [`project_from_release`] reads the files again).
pub(super) fn release_model(project: &Project) -> serde_json::Value {
    let mut model = serde_json::to_value(project).unwrap_or_default();
    for (name, svc) in &project.services {
        if let Some(env) = model
            .get_mut("services")
            .and_then(|s| s.get_mut(name))
            .and_then(|s| s.get_mut("environment"))
            .and_then(serde_json::Value::as_object_mut)
        {
            env.retain(|k, _| !svc.env_from_files.contains(k));
        }
    }
    model
}

/// Each service's `env_file:` entries, for the release.
pub(super) fn env_file_refs(project: &Project) -> BTreeMap<String, Vec<compose::EnvFile>> {
    project
        .services
        .iter()
        .filter(|(_, s)| !s.env_file.is_empty())
        .map(|(n, s)| (n.clone(), s.env_file.clone()))
        .collect()
}

/// The project a release recorded, rebuilt from its model, with the env files it names read
/// as they are now (interpolation inside them sees the release's variables, then this
/// process's environment, then the service's environment and the earlier files' values). A required env file that is gone is an error naming it.
pub fn project_from_release(release: &Release) -> Result<Project, DeployError> {
    let mut project: Project =
        serde_json::from_value(release.model.clone()).map_err(|e| DeployError::Unsupported {
            service: "*".into(),
            reason: format!("release {} has an unreadable model: {e}", release.id()),
        })?;
    for (name, svc) in &mut project.services {
        svc.name = name.clone();
        svc.x_gantry = release.x_gantry.get(name).cloned();
        // Releases recorded before x-gantry was validated may carry the two keys it never
        // read (now gantry.yaml's stack policy): they are dropped, not refused.
        let mut recorded = svc.x_gantry.clone();
        if let Some(map) = recorded.as_mut().and_then(|v| v.as_object_mut()) {
            map.remove("reconcile");
            map.remove("watch_compose");
        }
        svc.gantry = XGantry::parse(recorded.as_ref()).map_err(|e| DeployError::Unsupported {
            service: name.clone(),
            reason: format!("release {} records an invalid {e}", release.id()),
        })?;
    }
    let lookup = |k: &str| {
        release
            .variables
            .get(k)
            .cloned()
            .or_else(|| std::env::var(k).ok())
    };
    for (name, refs) in &release.env_file_refs {
        let Some(svc) = project.services.get_mut(name) else {
            continue;
        };
        let missing = |path: &std::path::Path| {
            compose::ComposeError::project(format!(
                "services.{name}.env_file: env file {} of release {} not found (restore it, or deploy again)",
                path.display(),
                release.id()
            ))
        };
        // Then the service's own environment, as the load that recorded it read them.
        let own = svc.environment.clone();
        let lookup = |k: &str| lookup(k).or_else(|| own.get(k).cloned().flatten());
        let from_files = compose::dotenv::read_env_files(refs, &lookup, &missing)?;
        for (k, v) in from_files {
            if !svc.environment.contains_key(&k) {
                svc.env_from_files.insert(k.clone());
                svc.environment.insert(k, Some(v));
            }
        }
        svc.env_file = refs.clone();
    }
    project.config_files = release.files.clone();
    // As a load does (a release recorded before ports were given their network's address
    // compares equal to the same files loaded now).
    super::translate::bind_default_addresses(&mut project);
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A release rebuilt reads its env files as the load did: interpolation in them sees the
    /// service's environment and the earlier files' values.
    #[test]
    fn env_files_are_read_again_as_the_load_read_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.env"), "A=1\n").unwrap();
        std::fs::write(dir.path().join("b.env"), "B=${A}-x\nD=${C}\n").unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(
            &file,
            "services:\n  web:\n    image: x\n    env_file: [a.env, b.env]\n    environment: {C: c}\n",
        )
        .unwrap();
        let loaded = compose::load(&compose::LoadOptions {
            files: vec![file],
            project_name: Some("app".into()),
            ..compose::LoadOptions::default()
        })
        .unwrap();
        let release: Release = serde_json::from_value(serde_json::json!({
            "seq": 1, "stack": "app", "started_at": "2026-01-01T00:00:00Z",
            "outcome": "succeeded", "pid": 1, "variables": {}, "files": [],
            "model": release_model(&loaded), "images": {},
            "env_file_refs": env_file_refs(&loaded),
        }))
        .unwrap();
        let rebuilt = project_from_release(&release).unwrap();
        let env = &rebuilt.services["web"].environment;
        assert_eq!(env, &loaded.services["web"].environment);
        assert_eq!(env["B"].as_deref(), Some("1-x"));
        assert_eq!(env["D"].as_deref(), Some("c"));
    }
}
