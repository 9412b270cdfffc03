//! Removing a container, with its anonymous volumes (`docker rm -v`) or without.
//!
//! Design: a method of [`DockerEngine`] behind `remove_container` (volumes kept: a retired
//! container's may live on in its replacement) and `remove_container_and_volumes` (a one-off
//! job's, a new container dropped before it served, an aborted canary, a half-created one).
//!
//! Limits: Docker removes only the volumes it made for this container (a `VOLUME` or a
//! `volumes:` entry without a source): one mounted by name, an inherited anonymous volume
//! included, stays, as does one another container still uses.

use super::*;

impl DockerEngine {
    /// Removes container `id` (with `force`, even a running one); with `volumes`, its
    /// anonymous volumes too. `Ok(false)` if it did not exist.
    pub(super) async fn remove(&self, id: &str, force: bool, volumes: bool) -> Result<bool> {
        let options = RemoveContainerOptions {
            force,
            v: volumes,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => {
                debug!(container = id, volumes, "container removed");
                Ok(true)
            }
            Err(e) => match self.err(Object::Container(id.to_owned()), e) {
                EngineError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}
