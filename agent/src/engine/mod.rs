//! The Docker side behind a small trait at Gantry's level of abstraction.
//!
//! What: [`Engine`] is everything deploy and supervise ask of Docker: ensure networks and
//! volumes, create/start/stop/remove/rename containers, list them by project, run a command in
//! one (hooks), wait for one-shot jobs, tail logs, inspect/pull/tag/remove images, follow events. [`DockerEngine`] implements it
//! with bollard.
//!
//! Design: the types here ([`ContainerSpec`], [`NetworkSpec`], [`VolumeSpec`], [`ContainerInfo`],
//! [`Event`], ...) know nothing of the Compose model; deploy translates the model into them, so
//! the Compose loader and the Docker API can change independently and tests can fake the engine.
//! Maps are `BTreeMap` and lists keep their order, so a spec is deterministic. Labels and names
//! follow Docker Compose exactly ([`labels`]). Errors are [`EngineError`], each naming the object
//! it failed on.
//!
//! Files: this one holds the trait; [`image`] image references and pulls, [`spec`] what is
//! created (networks, volumes, containers), [`state`] what the engine reports (containers,
//! events), [`docker`] the bollard implementation, [`bounded`] a bound on calls in flight,
//! [`labels`] and [`error`].
//!
//! Limits: one local engine (unix socket or plain tcp); no build, swarm, or TLS to the daemon;
//! exec only runs a command to its end (lifecycle hooks), no interactive sessions. See `docker.rs` for what API 1.41 (Docker 20.10) cannot do.

mod bounded;
mod docker;
pub mod error;
#[cfg(test)]
pub mod fake;
mod image;
pub mod labels;
mod spec;
mod state;
#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

pub use bounded::Bounded;
pub use docker::DockerEngine;
pub use docker::host as docker_host;
pub use error::{EngineError, Object, PullFailure, Result};
pub use image::*;
pub use spec::*;
pub use state::*;

// ---------------------------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------------------------

/// What Gantry needs from a container engine. Object arguments named `id` accept an id or a name.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Checks the daemon answers ([`EngineError::Unreachable`] if not).
    async fn ping(&self) -> Result<()>;

    async fn version(&self) -> Result<EngineVersion>;

    /// Containers labelled with [`labels::PROJECT`]` = project`, sorted by service, then number,
    /// then name. With `include_stopped`, exited and created ones too.
    async fn list_containers(
        &self,
        project: &str,
        include_stopped: bool,
    ) -> Result<Vec<ContainerInfo>>;

    /// Full detail of one container; [`EngineError::NotFound`] if it does not exist.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo>;

    /// Creates the network unless one with that name exists (which is kept as is, even if its
    /// options differ: the caller compares [`Ensured::labels`] and decides).
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Ensured>;

    /// Removes a network; `Ok(false)` if it did not exist. A network still in use is an error.
    async fn remove_network(&self, name: &str) -> Result<bool>;

    /// Creates the volume unless one with that name exists (kept as is, data untouched).
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<Ensured>;

    /// Removes a volume and its data; `Ok(false)` if it did not exist.
    async fn remove_volume(&self, name: &str) -> Result<bool>;

    /// The labels of a network or volume (`object`), `None` when it does not exist: who made
    /// it, before anything removes it. Other objects are [`EngineError::InvalidSpec`].
    async fn labels_of(
        &self,
        object: &Object,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>>;

    /// Creates (does not start) the container, attached to every network of the spec. Returns
    /// its id. A taken name is [`EngineError::Conflict`]. If attaching a network fails, the
    /// half-made container is removed again.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;

    /// Starts a created or stopped container; a running one is left alone.
    async fn start_container(&self, id: &str) -> Result<()>;

    /// Stops a container: sends `signal` (or the container's own stop signal when `None`),
    /// waits up to `timeout`, then SIGKILL. A stopped container is left alone.
    async fn stop_container(&self, id: &str, signal: Option<&str>, timeout: Duration)
    -> Result<()>;

    /// Sends a signal without waiting.
    async fn kill_container(&self, id: &str, signal: &str) -> Result<()>;

    /// Removes a container (with `force`, even a running one, killing it). Its anonymous
    /// volumes stay (`docker rm` without `-v`): the container that replaces a retired one may
    /// have inherited them. `Ok(false)` if it did not exist.
    async fn remove_container(&self, id: &str, force: bool) -> Result<bool>;

    /// [`Engine::remove_container`], its anonymous volumes with it (`docker rm -v`): for a
    /// container whose volumes nothing will use again (a one-off job's, a new container
    /// dropped before it served, an aborted canary). A volume it mounts by name (inherited
    /// from the container it was to replace) or that another container uses stays. Engines
    /// that wrap another one forward it; this default keeps the volumes.
    async fn remove_container_and_volumes(&self, id: &str, force: bool) -> Result<bool> {
        self.remove_container(id, force).await
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()>;

    /// Detaches a running container from a network: other containers stop resolving its
    /// names there at once (used to take the old container out of service before it stops).
    /// `Ok(false)` if it was not attached.
    async fn disconnect_network(&self, id: &str, network: &str) -> Result<bool>;

    /// Attaches a container to a network with the attachment's aliases and address.
    async fn connect_network(&self, id: &str, attachment: &NetworkAttachment) -> Result<()>;

    /// Runs a command in the running container `id` and waits for it to end: its exit code
    /// and the tail of its output. Put a timeout around it (dropping the future leaves the
    /// command running in the container).
    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecOutcome>;

    /// Waits until the container is not running and returns its exit code (one-shot jobs).
    /// Returns at once for a container that already exited. Put a timeout around it.
    async fn wait_container(&self, id: &str) -> Result<i64>;

    /// The last `n` lines of stdout and stderr, without trailing `\n`, in the order Docker
    /// recorded them (it copies the two streams separately, so lines written to both within a
    /// millisecond or so may swap).
    async fn logs_tail(&self, id: &str, n: usize) -> Result<Vec<String>>;

    /// Local images, all of them or those matching Docker's `reference` filter (`repo`,
    /// `repo:tag`, globs like `registry/app:*`). Untagged ones have empty `repo_tags`.
    async fn list_images(&self, reference: Option<&str>) -> Result<Vec<ImageInfo>>;

    /// `Ok(None)` if the image is not present locally.
    async fn inspect_image(&self, image: &ImageRef) -> Result<Option<ImageInfo>>;

    /// Pulls the image (for `platform`, e.g. `linux/arm64`, else the host's; with credentials
    /// for its registry, if any), reporting progress, and returns what is now local. Failures are [`EngineError::Pull`] naming the registry.
    async fn pull_image(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        auth: Option<&RegistryAuth>,
        progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo>;

    /// Tags `source` (a reference or an image id) as `target`.
    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<()>;

    /// Removes an image reference (the image goes with its last reference). `Ok(false)` if it
    /// did not exist. An image a container uses is [`EngineError::Conflict`] unless `force`.
    async fn remove_image(&self, image: &str, force: bool) -> Result<bool>;

    /// Follows Docker events matching `filter` until the stream is dropped. When the connection
    /// to the daemon breaks (dockerd restarted), the stream yields an error or simply ends:
    /// reconnect with `since` set to the last event's time so nothing is missed.
    fn events(&self, filter: &EventFilter) -> BoxStream<'static, Result<Event>>;
}
