//! Secrets and configs as a deploy can mount them: from files only.
//!
//! What: Gantry bind-mounts a secret's or config's `file:` read-only into the container (as
//! compose does for a file). Compose copies an `environment:` or `content:` source into the
//! container after creating it; Gantry does not, so [`check_sources`] refuses them, naming the
//! first compose file and the key, before a deploy changes anything (`gantry config` still
//! prints them as compose does). A service's `uid`, `gid` and `mode` on such a mount are not
//! applied (a bind mount keeps the file's own owner and mode, compose ignores them too):
//! [`ignored_options`] names each, for the load's warnings and the deploy's output.
//!
//! Design: pure checks on the resolved [`Project`]; they never read or print a value (an
//! `environment:` source names a variable; a `content:` is never quoted).

use super::error::ComposeError;
use super::model::{Project, Service};

/// Refuses a secret or config used by an active service whose source is not a file
/// (`secrets.tok.environment`, `configs.app.content`, `secrets.x.external`).
pub fn check_sources(project: &Project) -> Result<(), ComposeError> {
    for (kind, objects) in [("secrets", &project.secrets), ("configs", &project.configs)] {
        for (key, obj) in objects {
            if obj.file.is_some() {
                continue;
            }
            let source = if obj.environment.is_some() {
                "environment"
            } else if obj.content.is_some() {
                "content"
            } else if obj.external {
                "external"
            } else {
                "file"
            };
            let message = match source {
                "external" => "an external secret or config is swarm's: Gantry mounts files \
                               only; give it `file:` instead"
                    .to_owned(),
                "file" => "no source: give it `file:`".to_owned(),
                _ => format!(
                    "Gantry mounts secrets and configs from files only (compose copies a \
                     `{source}:` source into the container; Gantry does not): write the value to \
                     a file readable only by its owner (gantry-secrets renders one, mode 0600) \
                     and use `file:`"
                ),
            };
            return Err(ComposeError::Invalid {
                file: project.config_files.first().cloned().unwrap_or_default(),
                path: format!("{kind}.{key}.{source}"),
                message,
            });
        }
    }
    Ok(())
}

/// Each service's secret or config mount that sets `uid`, `gid` or `mode`, which a bind mount
/// does not apply: one warning per mount, naming its key and the options.
pub fn ignored_options(project: &Project) -> Vec<String> {
    project
        .services
        .values()
        .flat_map(ignored_options_of)
        .collect()
}

/// [`ignored_options`] of one service.
pub fn ignored_options_of(svc: &Service) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, mounts) in [("secrets", &svc.secrets), ("configs", &svc.configs)] {
        for (i, m) in mounts.iter().enumerate() {
            let set: Vec<&str> = [
                ("uid", m.uid.is_some()),
                ("gid", m.gid.is_some()),
                ("mode", m.mode.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, set)| set.then_some(k))
            .collect();
            if set.is_empty() {
                continue;
            }
            out.push(format!(
                "services.{}.{kind}[{i}]: {} not applied: the file is bind-mounted with its own \
                 owner and mode (set them on the host file); compose ignores them too",
                svc.name,
                set.join(", ")
            ));
        }
    }
    out
}
