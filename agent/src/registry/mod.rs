//! Registry credentials for pulls.
//!
//! What: the deploy asks [`Registries::auth_for`] before each pull and, when a registry answers
//! 401, calls [`Registries::invalidate`] and retries once (an ECR token may have expired early).
//! [`configured`] builds the implementation Gantry uses, [`ConfiguredRegistries`]:
//! - Amazon ECR hosts (`<account>.dkr.ecr.<region>.amazonaws.com`, the dual-stack
//!   `<account>.dkr-ecr.<region>.on.aws`, plus the hosts listed in `registries.ecr` /
//!   `GANTRY_ECR_REGISTRIES`) get a token from GetAuthorizationToken with the standard AWS
//!   credential chain, cached until shortly before it expires ([`ecr`]);
//! - every other registry gets what docker's `config.json` holds for it: `credHelpers`,
//!   `credsStore` (the `docker-credential-*` helper protocol) or `auths` ([`docker_config`]);
//! - a registry nothing matches is pulled anonymously.
//!
//! Design: configuration is layered like the rest of `gantry.yaml`: the file's `registries:`
//! section ([`RawRegistriesConfig`]), then the environment (`GANTRY_DOCKER_CONFIG`,
//! `GANTRY_ECR_REGISTRIES`, `DOCKER_CONFIG`, `HOME`), validated into [`RegistriesConfig`] by
//! [`RegistriesConfig::resolve`], which the CLI calls once with the process environment.
//! Registry names are compared after [`normalise_registry`] (docker's rules: `docker.io`,
//! `index.docker.io` and `https://index.docker.io/v1/` are one registry).
//!
//! Secrets: credentials never reach argv, logs, error messages or `~/.docker/config.json` (it is
//! only read). They travel as [`RegistryAuth`] (password in a [`gantry_common::Secret`]) to the
//! engine, which sends them as `X-Registry-Auth`. Errors ([`RegistryError`]) name the registry,
//! the reason and a hint, never a credential.
//!
//! Limits: the docker config is read again on every lookup (so a `docker login` is seen
//! without a restart) and helper answers are not cached; `credHelpers`/`credsStore` entries
//! are ignored for ECR hosts (the native ECR path serves them).

pub mod docker_config;
pub mod ecr;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{DOCKER_HUB, ImageRef, RegistryAuth};

pub use docker_config::DockerConfigCredentials;
pub use ecr::{Clock, EcrCredentials, SystemClock};

/// Environment variable naming docker's config file (or its directory) for Gantry only.
pub const ENV_DOCKER_CONFIG: &str = "GANTRY_DOCKER_CONFIG";
/// Environment variable listing more ECR registry hosts, comma-separated.
pub const ENV_ECR_REGISTRIES: &str = "GANTRY_ECR_REGISTRIES";

/// The `registries:` section of gantry.yaml, as written.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistriesConfig {
    /// Docker's `config.json` (or the directory holding it); absolute path.
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
    /// Registry hosts (`host[:port]`) served through Amazon ECR besides
    /// `*.dkr.ecr.*.amazonaws.com` and `*.dkr-ecr.*.on.aws`.
    #[serde(default)]
    pub ecr: Vec<String>,
    /// The AWS region for ECR hosts whose name carries none (default: the AWS chain's region).
    #[serde(default)]
    pub ecr_region: Option<String>,
}

/// The validated `registries:` section, with the environment applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistriesConfig {
    /// The docker config file to read, if any could be located.
    pub docker_config: Option<PathBuf>,
    /// Extra ECR hosts, normalised.
    pub ecr_hosts: BTreeSet<String>,
    /// Region for ECR hosts whose name carries none.
    pub ecr_region: Option<String>,
}

/// A `registries:` setting (or its environment variable) that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RegistriesConfigError {
    /// `registries.ecr[1]`, `GANTRY_ECR_REGISTRIES`, ...
    pub key: String,
    pub message: String,
}

impl RegistriesConfig {
    /// Validates `raw` and applies the environment, read through `env` (the process
    /// environment, read by the CLI; a map in tests).
    ///
    /// Docker config: `GANTRY_DOCKER_CONFIG` > `registries.docker_config` >
    /// `$DOCKER_CONFIG/config.json` > `$HOME/.docker/config.json`. A directory means its
    /// `config.json`. ECR hosts: `GANTRY_ECR_REGISTRIES`, when set, replaces `registries.ecr`.
    pub fn resolve(
        raw: &RawRegistriesConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, RegistriesConfigError> {
        let invalid = |key: String, message: String| RegistriesConfigError { key, message };
        let explicit = match env(ENV_DOCKER_CONFIG).filter(|v| !v.is_empty()) {
            Some(v) => Some((ENV_DOCKER_CONFIG.to_owned(), PathBuf::from(v))),
            None => raw
                .docker_config
                .clone()
                .map(|p| ("registries.docker_config".to_owned(), p)),
        };
        let docker_config = match explicit {
            Some((key, path)) => {
                if !path.is_absolute() {
                    return Err(invalid(
                        key,
                        format!("{} is not an absolute path", path.display()),
                    ));
                }
                Some(config_file(path))
            }
            None => env("DOCKER_CONFIG")
                .filter(|v| !v.is_empty())
                .map(|d| Path::new(&d).join("config.json"))
                .or_else(|| {
                    env("HOME")
                        .filter(|v| !v.is_empty())
                        .map(|h| Path::new(&h).join(".docker/config.json"))
                }),
        };

        let (key, hosts): (String, Vec<String>) = match env(ENV_ECR_REGISTRIES) {
            Some(v) => (
                ENV_ECR_REGISTRIES.to_owned(),
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            None => ("registries.ecr".to_owned(), raw.ecr.clone()),
        };
        let mut ecr_hosts = BTreeSet::new();
        for (i, host) in hosts.iter().enumerate() {
            let norm = normalise_registry(host);
            let bad = norm.is_empty()
                || norm.contains(['/', '@', '?', '#'])
                || norm.chars().any(|c| c.is_whitespace() || c.is_control());
            if bad {
                return Err(invalid(
                    format!("{key}[{i}]"),
                    format!("{host:?} is not a registry host (expected host[:port])"),
                ));
            }
            if ecr::is_ecr_public(&norm) {
                return Err(invalid(
                    format!("{key}[{i}]"),
                    format!(
                        "{host:?} is Amazon ECR Public: it refuses the private-ECR token given to \
                         the hosts listed here, and its public images pull anonymously; remove it \
                         from {key} (for logged-in pulls, with higher rate limits, run docker \
                         login {} instead)",
                        ecr::ECR_PUBLIC_HOST
                    ),
                ));
            }
            ecr_hosts.insert(norm);
        }

        let ecr_region = match &raw.ecr_region {
            Some(r)
                if r.is_empty()
                    || !r
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                return Err(invalid(
                    "registries.ecr_region".into(),
                    format!("{r:?} is not an AWS region (e.g. eu-west-1)"),
                ));
            }
            other => other.clone(),
        };
        Ok(Self {
            docker_config,
            ecr_hosts,
            ecr_region,
        })
    }

    /// Whether `registry` is served through Amazon ECR.
    pub fn is_ecr(&self, registry: &str) -> bool {
        let host = normalise_registry(registry);
        ecr::parse_ecr_host(&host).is_some() || self.ecr_hosts.contains(&host)
    }
}

/// `path` itself, or its `config.json` when it names a directory.
fn config_file(path: PathBuf) -> PathBuf {
    if path.is_dir() {
        path.join("config.json")
    } else {
        path
    }
}

/// A registry name as docker compares them: scheme and path dropped, lowercased, and Docker
/// Hub's aliases (`index.docker.io`, `registry-1.docker.io`, `https://index.docker.io/v1/`)
/// folded into `docker.io`.
pub fn normalise_registry(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    let rest = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(&name);
    let host = rest.split('/').next().unwrap_or_default().to_owned();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_owned()
        }
        _ => host,
    }
}

/// Why credentials for a registry could not be had. Each variant names the registry, the
/// reason and what to do; none carries a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "registry {registry}: docker config {}: {reason}; hint: fix the file, or point registries.docker_config / GANTRY_DOCKER_CONFIG at another one",
        path.display()
    )]
    DockerConfig {
        registry: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "registry {registry}: credential helper docker-credential-{helper}: {reason}; hint: check that the helper is installed in PATH and works: echo {registry} | docker-credential-{helper} get"
    )]
    Helper {
        registry: String,
        helper: String,
        reason: String,
    },
    #[error(
        "registry {registry}: Amazon ECR GetAuthorizationToken failed: {reason}; hint: the AWS credentials (environment, container credentials or the instance role) need ecr:GetAuthorizationToken, and AWS_ENDPOINT_URL / the region must be right"
    )]
    Ecr { registry: String, reason: String },
    #[error(
        "registry {registry}: no AWS region for Amazon ECR; hint: set registries.ecr_region in gantry.yaml or AWS_REGION"
    )]
    EcrRegion { registry: String },
}

impl RegistryError {
    /// The registry the error is about.
    pub fn registry(&self) -> &str {
        match self {
            Self::DockerConfig { registry, .. }
            | Self::Helper { registry, .. }
            | Self::Ecr { registry, .. }
            | Self::EcrRegion { registry } => registry,
        }
    }
}

/// Where pull credentials come from.
#[async_trait::async_trait]
pub trait Registries: Send + Sync + std::fmt::Debug {
    /// Credentials for the registry of `image`; `None` pulls anonymously.
    async fn auth_for(&self, image: &ImageRef) -> Result<Option<RegistryAuth>, RegistryError>;
    /// Forgets cached credentials for `registry` (after a 401).
    fn invalidate(&self, registry: &str);
}

/// Anonymous pulls only.
#[derive(Debug, Default)]
pub struct Anonymous;

#[async_trait::async_trait]
impl Registries for Anonymous {
    async fn auth_for(&self, _image: &ImageRef) -> Result<Option<RegistryAuth>, RegistryError> {
        Ok(None)
    }

    fn invalidate(&self, _registry: &str) {}
}

/// ECR for ECR hosts, the docker config otherwise, anonymous when nothing matches.
#[derive(Debug)]
pub struct ConfiguredRegistries {
    config: RegistriesConfig,
    docker: DockerConfigCredentials,
    ecr: EcrCredentials,
}

impl ConfiguredRegistries {
    /// Credentials as `config` says, AWS credentials from the standard chain, helpers from
    /// the process's `PATH`.
    pub fn new(config: RegistriesConfig) -> Self {
        let docker = DockerConfigCredentials::new(config.docker_config.clone());
        let ecr = EcrCredentials::standard_chain(config.ecr_region.clone());
        Self::with_parts(config, docker, ecr)
    }

    /// Assembles explicitly built parts (tests inject a clock, AWS config or helper path).
    pub fn with_parts(
        config: RegistriesConfig,
        docker: DockerConfigCredentials,
        ecr: EcrCredentials,
    ) -> Self {
        Self {
            config,
            docker,
            ecr,
        }
    }

    pub fn config(&self) -> &RegistriesConfig {
        &self.config
    }

    /// The ECR part (token cache, fetch count).
    pub fn ecr(&self) -> &EcrCredentials {
        &self.ecr
    }
}

#[async_trait::async_trait]
impl Registries for ConfiguredRegistries {
    async fn auth_for(&self, image: &ImageRef) -> Result<Option<RegistryAuth>, RegistryError> {
        let registry = normalise_registry(image.registry());
        if self.config.is_ecr(&registry) {
            return self.ecr.auth(&registry).await.map(Some);
        }
        let auth = self.docker.auth(&registry).await?;
        if auth.is_none() {
            tracing::debug!(registry = %registry, "no credentials for registry: pulling anonymously");
        }
        Ok(auth)
    }

    fn invalidate(&self, registry: &str) {
        let registry = normalise_registry(registry);
        if self.config.is_ecr(&registry) {
            self.ecr.invalidate(&registry);
        }
    }
}

/// The registries `config` (the validated `registries:` section with its environment)
/// configures.
pub fn configured(config: RegistriesConfig) -> Arc<dyn Registries> {
    tracing::debug!(
        docker_config = ?config.docker_config,
        ecr_hosts = ?config.ecr_hosts,
        ecr_region = ?config.ecr_region,
        "registry credentials configured"
    );
    Arc::new(ConfiguredRegistries::new(config))
}

#[cfg(test)]
mod tests;
