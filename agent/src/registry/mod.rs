//! Registry credentials for pulls.
//!
//! The deploy asks [`Registries::auth_for`] before each pull and, when a registry answers 401,
//! calls [`Registries::invalidate`] and retries once (an ECR token may have expired early).
//! Credentials never reach argv, logs or `~/.docker/config.json`: they travel as
//! [`RegistryAuth`] (password in a [`gantry_common::Secret`]) to the engine, which sends them
//! as `X-Registry-Auth`.

use crate::engine::{ImageRef, RegistryAuth};

/// The `registries:` section of gantry.yaml, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistriesConfig {}

/// Why credentials for a registry could not be had.
#[derive(Debug, thiserror::Error)]
#[error("credentials for registry {registry}: {reason}")]
pub struct RegistryError {
    pub registry: String,
    pub reason: String,
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
