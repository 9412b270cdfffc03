//! [`Addressed`]: the in-memory engine with what the edge switch reads from Docker: each
//! running container gets an address on the stack's default network (`172.30.0.1 + n` for the
//! fake's n-th container, unless a test moves it) and a process id (whose open connections a
//! switch counts). For tests of the switch's callers; the kernel's
//! side is in `tests/tests/edge_*.rs`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::FakeEngine;
use crate::engine::{
    ContainerInfo, ContainerSpec, Engine, EngineVersion, Ensured, Event, EventFilter, ExecOutcome,
    ExecSpec, ImageInfo, ImageRef, NetworkAttachment, NetworkSpec, Object, PullProgressFn,
    RegistryAuth, Result, VolumeSpec,
};

/// [`FakeEngine`] with addresses and process ids (see the module).
#[derive(Debug)]
pub struct Addressed {
    inner: Arc<FakeEngine>,
    /// Container id → its address.
    ips: Mutex<BTreeMap<String, Ipv4Addr>>,
}

impl Addressed {
    pub fn new(inner: Arc<FakeEngine>) -> Self {
        Self {
            inner,
            ips: Mutex::default(),
        }
    }

    fn fill(&self, mut c: ContainerInfo) -> ContainerInfo {
        if c.state.running {
            // The fake's ids are `c0001`, `c0002`, ...: the n-th container is 172.30.0.1 + n,
            // the same in every `Addressed` over that engine (a daemon started again).
            let n: u32 = c.id.trim_start_matches('c').parse().unwrap_or(0);
            let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
            let ip = *ips
                .entry(c.id.clone())
                .or_insert(Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 30, 0, 1)) + n));
            c.ip_addresses = BTreeMap::from([("app_default".to_owned(), ip.to_string())]);
            c.state.pid = Some(1000 + n);
        }
        c
    }

    /// The address container `name` gets from now on (Docker gave it another when it started
    /// again).
    pub fn move_to(&self, name: &str, ip: Ipv4Addr) {
        let id = self.inner.containers()[name].id.clone();
        self.ips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, ip);
    }

    /// The address container `name` has.
    pub fn ip_of(&self, name: &str) -> Ipv4Addr {
        let id = self.inner.containers()[name].id.clone();
        self.ips.lock().unwrap_or_else(|e| e.into_inner())[&id]
    }
}

#[async_trait]
impl Engine for Addressed {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn version(&self) -> Result<EngineVersion> {
        self.inner.version().await
    }
    async fn list_containers(&self, project: &str, stopped: bool) -> Result<Vec<ContainerInfo>> {
        let list = self.inner.list_containers(project, stopped).await?;
        Ok(list.into_iter().map(|c| self.fill(c)).collect())
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        Ok(self.fill(self.inner.inspect_container(id).await?))
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
        self.inner.start_container(id).await
    }
    async fn stop_container(&self, id: &str, signal: Option<&str>, t: Duration) -> Result<()> {
        self.inner.stop_container(id, signal, t).await
    }
    async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        self.inner.kill_container(id, signal).await
    }
    async fn remove_container(&self, id: &str, force: bool) -> Result<bool> {
        self.inner.remove_container(id, force).await
    }
    async fn remove_container_and_volumes(&self, id: &str, force: bool) -> Result<bool> {
        self.inner.remove_container_and_volumes(id, force).await
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
