//! [`Gated`]: the in-memory engine whose container stops and starts can be held at a gate (a
//! call that waits there has not happened yet: it is not in the call log), and whose stops
//! record the timeout they were given. For the heal's tests: a daemon killed between a heal's
//! stop and start, a deploy arriving while a heal stops its container.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use crate::engine::fake::FakeEngine;
use crate::engine::{
    ContainerInfo, ContainerSpec, Engine, EngineVersion, Ensured, Event, EventFilter, ExecOutcome,
    ExecSpec, ImageInfo, ImageRef, NetworkAttachment, NetworkSpec, Object, PullProgressFn,
    RegistryAuth, Result, VolumeSpec,
};

/// [`FakeEngine`] with gates on `stop` and `start` (see the module).
#[derive(Debug)]
pub struct Gated {
    pub inner: Arc<FakeEngine>,
    /// `"stop"` / `"start"`: such calls wait until released.
    held: Mutex<BTreeSet<&'static str>>,
    /// The calls waiting at a gate now (`stop app-web-1`).
    waiting: Mutex<Vec<String>>,
    /// Each stop: `NAME SECONDSs`.
    stops: Mutex<Vec<String>>,
    open: tokio::sync::Notify,
}

impl Gated {
    pub fn new(inner: Arc<FakeEngine>) -> Self {
        Self {
            inner,
            held: Mutex::default(),
            waiting: Mutex::default(),
            stops: Mutex::default(),
            open: tokio::sync::Notify::new(),
        }
    }

    /// Calls of `kind` (`"stop"`, `"start"`) wait at the gate from now on.
    pub fn hold(&self, kind: &'static str) {
        self.held.lock().unwrap().insert(kind);
    }

    /// Calls of `kind` go through again, those waiting too.
    pub fn release(&self, kind: &'static str) {
        self.held.lock().unwrap().remove(kind);
        self.open.notify_waiters();
    }

    /// The calls waiting at a gate now.
    pub fn waiting(&self) -> Vec<String> {
        self.waiting.lock().unwrap().clone()
    }

    /// The stops so far, with their timeouts (`app-web-1 120s`).
    pub fn stops(&self) -> Vec<String> {
        self.stops.lock().unwrap().clone()
    }

    async fn gate(&self, kind: &'static str, id: &str) {
        let name = self
            .inner
            .containers()
            .into_values()
            .find(|c| c.id == id || c.name == id)
            .map_or_else(|| id.to_owned(), |c| c.name);
        let call = format!("{kind} {name}");
        let mut queued = false;
        loop {
            let opened = self.open.notified();
            if !self.held.lock().unwrap().contains(kind) {
                if queued {
                    let mut w = self.waiting.lock().unwrap();
                    if let Some(i) = w.iter().position(|c| *c == call) {
                        w.remove(i);
                    }
                }
                return;
            }
            if !queued {
                self.waiting.lock().unwrap().push(call.clone());
                queued = true;
            }
            opened.await;
        }
    }
}

#[async_trait]
impl Engine for Gated {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn version(&self) -> Result<EngineVersion> {
        self.inner.version().await
    }
    async fn list_containers(&self, project: &str, stopped: bool) -> Result<Vec<ContainerInfo>> {
        self.inner.list_containers(project, stopped).await
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        self.inner.inspect_container(id).await
    }
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Ensured> {
        self.inner.ensure_network(spec).await
    }
    async fn remove_network(&self, name: &str) -> Result<bool> {
        self.inner.remove_network(name).await
    }
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<Ensured> {
        self.inner.ensure_volume(spec).await
    }
    async fn remove_volume(&self, name: &str) -> Result<bool> {
        self.inner.remove_volume(name).await
    }
    async fn labels_of(&self, object: &Object) -> Result<Option<BTreeMap<String, String>>> {
        self.inner.labels_of(object).await
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.inner.create_container(spec).await
    }
    async fn start_container(&self, id: &str) -> Result<()> {
        self.gate("start", id).await;
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, signal: Option<&str>, t: Duration) -> Result<()> {
        self.gate("stop", id).await;
        if let Ok(c) = self.inner.inspect_container(id).await {
            let stop = format!("{} {}s", c.name, t.as_secs());
            self.stops.lock().unwrap().push(stop);
        }
        self.inner.stop_container(id, signal, t).await
    }
    async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        self.inner.kill_container(id, signal).await
    }
    async fn remove_container(&self, id: &str, force: bool) -> Result<bool> {
        self.inner.remove_container(id, force).await
    }
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        self.inner.rename_container(id, new_name).await
    }
    async fn disconnect_network(&self, id: &str, network: &str) -> Result<bool> {
        self.inner.disconnect_network(id, network).await
    }
    async fn connect_network(&self, id: &str, attachment: &NetworkAttachment) -> Result<()> {
        self.inner.connect_network(id, attachment).await
    }
    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecOutcome> {
        self.inner.exec(id, exec).await
    }
    async fn wait_container(&self, id: &str) -> Result<i64> {
        self.inner.wait_container(id).await
    }
    async fn logs_tail(&self, id: &str, n: usize) -> Result<Vec<String>> {
        self.inner.logs_tail(id, n).await
    }
    async fn list_images(&self, reference: Option<&str>) -> Result<Vec<ImageInfo>> {
        self.inner.list_images(reference).await
    }
    async fn inspect_image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        self.inner.inspect_image(image).await
    }
    async fn pull_image(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        auth: Option<&RegistryAuth>,
        progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo> {
        self.inner.pull_image(image, platform, auth, progress).await
    }
    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<()> {
        self.inner.tag_image(source, target).await
    }
    async fn remove_image(&self, image: &str, force: bool) -> Result<bool> {
        self.inner.remove_image(image, force).await
    }
    fn events(&self, filter: &EventFilter) -> BoxStream<'static, Result<Event>> {
        self.inner.events(filter)
    }
}
