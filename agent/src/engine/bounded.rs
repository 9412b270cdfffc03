//! An [`Engine`] that lets at most N calls reach the engine at once.
//!
//! Design: a rollout converges many services at once; what has to be bounded is the work
//! Docker does (creating, starting, renaming, re-plugging containers), not the number of
//! services in flight: a service that only waits for its readiness (or its `min_ready`) costs
//! nothing and must not hold back the next one. [`Bounded`] wraps the engine for the rollout
//! and takes one permit of a semaphore around each short call. Calls that wait by design are
//! not counted: `stop_container` (the grace period), `wait_container`, `pull_image` and the
//! event stream; holding a permit through them would stall the others for seconds.
//!
//! Limits: the bound is per rollout (one stack's job), not per daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use tokio::sync::Semaphore;

use super::{
    ContainerInfo, ContainerSpec, Engine, EngineVersion, Ensured, Event, EventFilter, ExecOutcome,
    ExecSpec, ImageInfo, ImageRef, NetworkAttachment, NetworkSpec, Object, PullProgressFn,
    RegistryAuth, Result, VolumeSpec,
};

/// `inner`, with at most `limit` short calls in flight.
pub struct Bounded<'a> {
    inner: &'a dyn Engine,
    permits: Semaphore,
}

impl std::fmt::Debug for Bounded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl<'a> Bounded<'a> {
    /// Wraps `inner`; a `limit` of 0 counts as 1.
    pub fn new(inner: &'a dyn Engine, limit: usize) -> Self {
        Self {
            inner,
            permits: Semaphore::new(limit.max(1)),
        }
    }

    /// Runs one short call under a permit.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        // The semaphore is never closed: acquiring only waits.
        let _permit = self.permits.acquire().await;
        call.await
    }
}

#[async_trait]
impl Engine for Bounded<'_> {
    async fn ping(&self) -> Result<()> {
        self.bounded(self.inner.ping()).await
    }

    async fn version(&self) -> Result<EngineVersion> {
        self.bounded(self.inner.version()).await
    }

    async fn list_containers(
        &self,
        project: &str,
        include_stopped: bool,
    ) -> Result<Vec<ContainerInfo>> {
        self.bounded(self.inner.list_containers(project, include_stopped))
            .await
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        self.bounded(self.inner.inspect_container(id)).await
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Ensured> {
        self.bounded(self.inner.ensure_network(spec)).await
    }

    async fn remove_network(&self, name: &str) -> Result<bool> {
        self.bounded(self.inner.remove_network(name)).await
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<Ensured> {
        self.bounded(self.inner.ensure_volume(spec)).await
    }

    async fn remove_volume(&self, name: &str) -> Result<bool> {
        self.bounded(self.inner.remove_volume(name)).await
    }

    async fn labels_of(&self, object: &Object) -> Result<Option<BTreeMap<String, String>>> {
        self.bounded(self.inner.labels_of(object)).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.bounded(self.inner.create_container(spec)).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.bounded(self.inner.start_container(id)).await
    }

    async fn stop_container(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        // Waits out the grace period: not counted.
        self.inner.stop_container(id, signal, timeout).await
    }

    async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        self.bounded(self.inner.kill_container(id, signal)).await
    }

    async fn remove_container(&self, id: &str, force: bool) -> Result<bool> {
        self.bounded(self.inner.remove_container(id, force)).await
    }

    async fn remove_container_and_volumes(&self, id: &str, force: bool) -> Result<bool> {
        self.bounded(self.inner.remove_container_and_volumes(id, force))
            .await
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        self.bounded(self.inner.rename_container(id, new_name))
            .await
    }

    async fn disconnect_network(&self, id: &str, network: &str) -> Result<bool> {
        self.bounded(self.inner.disconnect_network(id, network))
            .await
    }

    async fn connect_network(&self, id: &str, attachment: &NetworkAttachment) -> Result<()> {
        self.bounded(self.inner.connect_network(id, attachment))
            .await
    }

    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecOutcome> {
        // Waits for a command in a container to end: not counted.
        self.inner.exec(id, exec).await
    }

    async fn wait_container(&self, id: &str) -> Result<i64> {
        // Waits for a job to end: not counted.
        self.inner.wait_container(id).await
    }

    async fn logs_tail(&self, id: &str, n: usize) -> Result<Vec<String>> {
        self.bounded(self.inner.logs_tail(id, n)).await
    }

    async fn list_images(&self, reference: Option<&str>) -> Result<Vec<ImageInfo>> {
        self.bounded(self.inner.list_images(reference)).await
    }

    async fn inspect_image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        self.bounded(self.inner.inspect_image(image)).await
    }

    async fn pull_image(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        auth: Option<&RegistryAuth>,
        progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo> {
        // Bounded by the network, and by Docker per layer: not counted.
        self.inner.pull_image(image, platform, auth, progress).await
    }

    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<()> {
        self.bounded(self.inner.tag_image(source, target)).await
    }

    async fn remove_image(&self, image: &str, force: bool) -> Result<bool> {
        self.bounded(self.inner.remove_image(image, force)).await
    }

    fn events(&self, filter: &EventFilter) -> BoxStream<'static, Result<Event>> {
        self.inner.events(filter)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_the_limit_runs_at_once_and_every_call_runs() {
        let fake = crate::engine::fake::FakeEngine::new();
        let bounded = Bounded::new(&fake, 3);
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let calls = (0..10).map(|_| {
            bounded.bounded(async {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            })
        });
        let started = tokio::time::Instant::now();
        let results = futures_util::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(most.load(Ordering::SeqCst), 3);
        // Ten calls of 100 ms, three at a time: four rounds.
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }
}
