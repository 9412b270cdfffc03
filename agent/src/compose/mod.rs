//! The Compose model (pure: no Docker, no network).
//!
//! What: reads one or more Compose files the way `docker compose` (v2) does and returns a
//! resolved, validated [`Project`]: YAML anchors and `<<` merge keys, interpolation (`$V`,
//! `${V:-d}`, `${V:?err}`, ... from the environment, `.env` and `--env-file`), `extends`,
//! multi-file merging by the Compose Specification's rules (`!reset` / `!override` included),
//! profiles, short syntax turned into long syntax, relative paths made absolute.
//!
//! Design: a pipeline of small pure stages, one module each:
//! - [`yaml`]: parse a file (errors with line and column) and resolve `<<` merge keys;
//! - [`interpolate`] and [`dotenv`]: variables; [`written`]: the names and paths they made,
//!   with their text as written, for the errors after merging (never quoting a variable's value);
//! - [`canonical`]: per file, validate every key (unsupported keys are errors naming file,
//!   service and key) and rewrite each value into its long form, as JSON;
//! - [`extends`] and [`merge`]: combine services and files on that canonical JSON;
//! - [`model`]: the strong types, built from the merged canonical JSON; their serde shape *is*
//!   `docker compose config --format json`'s for every supported key ([`Project::to_compose_json`]);
//! - [`hash`]: the canonical per-service hash stored in a container label;
//! - [`xgantry`]: a service's `x-gantry`, validated into its typed form as the service is built;
//! - [`mounted`]: secrets and configs as a deploy mounts them (files only; what it ignores).
//!
//! Public API (used by deploy, plan, ledger):
//! ```no_run
//! use gantry_agent::compose::{load, LoadOptions};
//! let opts = LoadOptions {
//!     files: vec!["compose.yaml".into()],
//!     environment: std::env::vars().collect(),
//!     ..LoadOptions::default()
//! };
//! let project = load(&opts)?;
//! for svc in project.services_in_dependency_order() {
//!     println!("{} {} {}", svc.name, svc.image.as_deref().unwrap_or("-"), svc.config_hash());
//! }
//! # Ok::<(), gantry_agent::compose::ComposeError>(())
//! ```
//!
//! Limits: pure and synchronous; reads only the compose files, `.env`/`--env-file` files,
//! `env_file:` files, `extends` and `include` files. Swarm-only keys are refused; see
//! `docs/compose.md` for the full list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub mod canonical;
pub mod dotenv;
pub mod error;
pub mod extends;
pub mod hash;
pub mod interpolate;
pub mod json;
mod loader;
pub mod merge;
pub mod model;
pub mod mounted;
pub mod name;
pub mod pull_policy;
#[cfg(test)]
mod tests;
pub mod written;
pub mod xgantry;
pub mod yaml;

pub use error::{ComposeError, UnreadableComposeFile};
pub use loader::discover;
pub use model::*;
pub use name::{BadStackName, StackName};
pub use pull_policy::PullPolicy;

/// The most replicas a service may ask for (`deploy.replicas`, `scale`); a file asking for
/// more is refused when it loads (see docs/compose.md).
pub const MAX_REPLICAS: u32 = 1000;

/// What to load and with which variables.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Compose files in merge order. Empty: `COMPOSE_FILE` from `environment` (split on
    /// `COMPOSE_PATH_SEPARATOR`, default `:`), else `compose.yaml`, `compose.yml`,
    /// `docker-compose.yaml` or `docker-compose.yml` in `project_dir` (or the current dir).
    pub files: Vec<PathBuf>,
    /// `-p`: wins over `name:` and `COMPOSE_PROJECT_NAME`.
    pub project_name: Option<String>,
    /// `--project-directory`; default: the first file's directory.
    pub project_dir: Option<PathBuf>,
    /// `--env-file` files, in order (later wins). Empty: `<project_dir>/.env` if it exists.
    pub env_files: Vec<PathBuf>,
    /// Enabled profiles (`--profile`); `COMPOSE_PROFILES` from the environment adds to them.
    pub profiles: Vec<String>,
    /// The process environment plus `--var K=V`; the caller fills it. Wins over env files.
    pub environment: BTreeMap<String, String>,
}

/// Loads, merges, interpolates and validates a Compose project.
pub fn load(opts: &LoadOptions) -> Result<Project, ComposeError> {
    loader::load(opts)
}

impl Project {
    /// The project name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Active services, by name (alphabetical).
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    /// A service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Active services ordered so every service comes after the ones it `depends_on`
    /// (ties broken by name). The loader rejects cycles, so this is total.
    pub fn services_in_dependency_order(&self) -> Vec<&Service> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::with_capacity(self.services.len());
        while out.len() < self.services.len() {
            let before = out.len();
            for (name, svc) in &self.services {
                if done.contains(name.as_str()) {
                    continue;
                }
                let ready = svc
                    .depends_on
                    .keys()
                    .all(|d| done.contains(d.as_str()) || !self.services.contains_key(d));
                if ready {
                    done.insert(name);
                    out.push(svc);
                }
            }
            if out.len() == before {
                // A cycle (only possible on a hand-built Project): append the rest by name.
                for (name, svc) in &self.services {
                    if done.insert(name) {
                        out.push(svc);
                    }
                }
            }
        }
        out
    }

    /// The model as `docker compose config --format json` prints it.
    pub fn to_compose_json(&self) -> serde_json::Value {
        json::to_compose_json(self)
    }

    /// The model as `docker compose config` (YAML) prints it, service `x-*` keys included.
    pub fn to_yaml(&self) -> String {
        json::to_yaml(self)
    }
}

impl Service {
    /// SHA-256 (hex) of the service's canonical model; see [`hash`] for what it covers.
    pub fn config_hash(&self) -> String {
        hash::config_hash(self)
    }

    /// `deploy.replicas`, else `scale`, 1 when neither is set.
    pub fn replicas(&self) -> u32 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
    }

    /// `deploy.update_config`, if any.
    pub fn update_config(&self) -> Option<&UpdateConfig> {
        self.deploy.as_ref().and_then(|d| d.update_config.as_ref())
    }

    /// `deploy.rollback_config`, if any.
    pub fn rollback_config(&self) -> Option<&UpdateConfig> {
        self.deploy
            .as_ref()
            .and_then(|d| d.rollback_config.as_ref())
    }
}
