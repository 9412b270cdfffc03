//! An in-memory [`Engine`] for unit tests of deploy's pure core (tests only).
//!
//! What: containers, networks, volumes and images kept in memory, every mutating call recorded
//! in order ([`FakeEngine::calls`]) as a short line naming the container by its name at the
//! time (`create app-web-1-gantry-next`, `stop app-web-1`, `disconnect app-web-1 app_default`).
//! Images come from a fake registry ([`FakeEngine::publish`]): a pull copies the image there
//! to the local store.
//!
//! Design: a started container runs until stopped, unless its image was marked to crash
//! ([`FakeEngine::crash_image`]: it exits with code 1 at once) or it is a one-off job (it
//! exits with the code set by [`FakeEngine::job_exit`], default 0). No healthchecks run:
//! `state.health` stays `None` (readiness is "running for min_ready") unless a test sets it
//! ([`FakeEngine::set_health`]).
//!
//! Containers send Docker's events (`create`, `start`, `die`, `stop`, `kill`, `destroy`,
//! `health_status: ...`), `since` included ([`events`]).
//!
//! Limits: no logs, no ports or addresses, no events but those of containers; names are
//! unique as with Docker, but nothing else Docker validates is checked.

pub mod addressed;
mod events;
mod mounts;
mod remove;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

use super::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, Engine, EngineError,
    EngineVersion, Ensured, Event, EventFilter, ExecOutcome, ExecSpec, ImageInfo, ImageRef,
    NetworkAttachment, NetworkSpec, Object, PullFailure, PullProgressFn, RegistryAuth, Result,
    VolumeSpec, labels,
};

#[derive(Debug, Default)]
struct State {
    containers: BTreeMap<String, ContainerInfo>,
    /// Networks and volumes by name, with their labels.
    networks: BTreeMap<String, BTreeMap<String, String>>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    /// Local images by id.
    images: BTreeMap<String, ImageInfo>,
    /// The fake registry: reference → image.
    registry: BTreeMap<String, ImageInfo>,
    crashing: BTreeSet<String>,
    /// Pulls never answer (a registry that accepts and stalls).
    stall_pulls: bool,
    /// Image ids whose container create panics (a bug stand-in for the daemon's job runner).
    panicking: BTreeSet<String>,
    /// Container id → the environment it was created with.
    env: BTreeMap<String, Vec<(String, String)>>,
    job_exit: BTreeMap<String, i64>,
    /// Services whose one-off containers run until stopped.
    hanging_jobs: std::collections::BTreeSet<String>,
    /// A command's first word → the exit code of an exec running it (default 0).
    exec_exit: BTreeMap<String, i64>,
    calls: Vec<String>,
    /// Containers removed, in order: (name, whether their anonymous volumes went too).
    removals: Vec<(String, bool)>,
    next_id: u64,
    /// Once this many calls are recorded, every further changing call never answers: the
    /// process that made them was killed (see [`FakeEngine::freeze_after`]).
    freeze_after: Option<usize>,
    frozen: bool,
    /// Containers created with a healthcheck turn healthy as they start (see
    /// [`FakeEngine::auto_healthy`]).
    auto_healthy: bool,
    /// Ids of the containers created with a healthcheck.
    checked: BTreeSet<String>,
    /// A container stopped by hand right after the next list of its project took its view.
    stop_after_list: Option<String>,
}

impl State {
    fn find(&self, id_or_name: &str) -> Option<String> {
        self.containers
            .values()
            .find(|c| c.id == id_or_name || c.name == id_or_name)
            .map(|c| c.id.clone())
    }

    fn container(&mut self, id_or_name: &str) -> Result<&mut ContainerInfo> {
        let id = self.find(id_or_name).ok_or_else(|| EngineError::NotFound {
            object: Object::Container(id_or_name.to_owned()),
        })?;
        Ok(self.containers.get_mut(&id).expect("found above"))
    }

    fn image(&self, reference: &str) -> Option<&ImageInfo> {
        self.images.get(reference).or_else(|| {
            self.images
                .values()
                .find(|i| i.repo_tags.iter().any(|t| t == reference))
        })
    }
}

/// The in-memory engine.
#[derive(Debug, Default)]
pub struct FakeEngine {
    state: Mutex<State>,
    events: events::Hub,
}

fn state(status: ContainerStatus, exit_code: Option<i64>) -> ContainerState {
    ContainerState {
        status,
        running: status == ContainerStatus::Running,
        health: None,
        health_log: Vec::new(),
        started_at: None,
        finished_at: None,
        restart_count: Some(0),
        exit_code,
        oom_killed: false,
        pid: None,
    }
}

impl FakeEngine {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The container named `name` stops (as [`Self::stop_by_hand`]) right after the next list
    /// of its project took its view: what a reader of that list then does, it does on a
    /// container that no longer runs.
    pub fn stop_after_next_list(&self, name: &str) {
        self.lock().stop_after_list = Some(name.to_owned());
    }

    /// After `n` recorded calls, every further changing call (create, start, stop, kill,
    /// remove, rename, connect, disconnect, pull) hangs: dropping the deploy then is a kill -9
    /// right after call `n`. `None` lets calls through again.
    pub fn freeze_after(&self, n: Option<usize>) {
        let mut s = self.lock();
        s.freeze_after = n;
        s.frozen = false;
    }

    /// From now on a container created with a healthcheck (not `NONE`) is healthy as soon as
    /// it starts, as if its check passed at once.
    pub fn auto_healthy(&self) {
        self.lock().auto_healthy = true;
    }

    /// Whether a call is hanging on [`Self::freeze_after`].
    pub fn frozen(&self) -> bool {
        self.lock().frozen
    }

    /// Runs `work` (a deploy on this engine) until the engine has recorded `n` calls from now:
    /// then it is dropped, as a process killed right after call `n` (`None`); `Some` when it
    /// ended first. The engine answers again afterwards.
    pub async fn killed_after<T>(
        &self,
        n: usize,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        self.clear_calls();
        self.freeze_after(Some(n));
        let ended = tokio::select! {
            out = work => Some(out),
            () = async {
                while !self.frozen() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } => None,
        };
        self.freeze_after(None);
        ended
    }

    async fn gate(&self) {
        let hang = {
            let mut s = self.lock();
            let hang = s.freeze_after.is_some_and(|n| s.calls.len() >= n);
            s.frozen |= hang;
            hang
        };
        if hang {
            std::future::pending::<()>().await;
        }
    }

    /// Puts an image under `reference` in the fake registry (replacing what the tag named);
    /// returns its id.
    pub fn publish(&self, reference: &str, id: &str) -> String {
        let id = format!("sha256:{id}");
        self.lock().registry.insert(
            reference.to_owned(),
            ImageInfo {
                id: id.clone(),
                repo_digests: vec![format!(
                    "{}@sha256:{:0>64}",
                    ImageRef::new(reference).repository(),
                    id.trim_start_matches("sha256:")
                )],
                repo_tags: vec![reference.to_owned()],
                volumes: Vec::new(),
            },
        );
        id
    }

    /// Containers of image `id` exit with code 1 as soon as they start.
    pub fn crash_image(&self, id: &str) {
        self.lock().crashing.insert(id.to_owned());
    }

    /// Pulls hang until dropped (`false`: they answer again).
    pub fn stall_pulls(&self, on: bool) {
        self.lock().stall_pulls = on;
    }

    /// Creating a container from image `id` panics (`false`: no longer).
    pub fn panic_on_create(&self, id: &str, on: bool) {
        let mut s = self.lock();
        if on {
            s.panicking.insert(id.to_owned());
        } else {
            s.panicking.remove(id);
        }
    }

    /// One-off containers of `service` run until stopped (a migration that takes its time).
    pub fn job_hangs(&self, service: &str) {
        self.lock().hanging_jobs.insert(service.to_owned());
    }

    /// One-off containers of `service` exit with `code`.
    pub fn job_exit(&self, service: &str, code: i64) {
        self.lock().job_exit.insert(service.to_owned(), code);
    }

    /// Makes an exec of a command whose first word is `program` end with `code`, writing
    /// `program failed` on stderr.
    pub fn exec_exit(&self, program: &str, code: i64) {
        self.lock().exec_exit.insert(program.to_owned(), code);
    }

    /// A network or volume made by someone else (`labels` as they set them).
    pub fn add_resource(&self, object: &Object, labels: &[(&str, &str)]) {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut s = self.lock();
        match object {
            Object::Network(name) => s.networks.insert(name.clone(), labels),
            Object::Volume(name) => s.volumes.insert(name.clone(), labels),
            _ => None,
        };
    }

    /// The networks and volumes there are now (`network NAME`, `volume NAME`).
    pub fn resources(&self) -> BTreeSet<String> {
        let s = self.lock();
        s.networks
            .keys()
            .map(|n| format!("network {n}"))
            .chain(s.volumes.keys().map(|v| format!("volume {v}")))
            .collect()
    }

    /// Every mutating call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Forgets the calls recorded so far.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The containers now, by name.
    /// The environment the container now named `name` was created with.
    pub fn env_of(&self, name: &str) -> BTreeMap<String, String> {
        let s = self.lock();
        s.find(name)
            .and_then(|id| s.env.get(&id))
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn containers(&self) -> BTreeMap<String, ContainerInfo> {
        self.lock()
            .containers
            .values()
            .map(|c| (c.name.clone(), c.clone()))
            .collect()
    }

    /// Sets a container's Docker health status (the fake runs no healthcheck itself).
    pub fn set_health(&self, name: &str, health: Option<super::HealthStatus>) {
        if let Ok(c) = self.lock().container(name) {
            let changed = c.state.health != health;
            c.state.health = health;
            if let Some(h) = health.filter(|_| changed) {
                self.events.emit(c, &format!("health_status: {h}"));
            }
        }
    }

    /// Stops a container behind the deploy's back (drift).
    pub fn stop_by_hand(&self, name: &str) {
        self.stop_in(&mut self.lock(), name);
    }

    fn stop_in(&self, s: &mut State, name: &str) {
        if let Ok(c) = s.container(name) {
            let was_running = c.state.running;
            c.state = state(ContainerStatus::Exited, Some(0));
            if was_running {
                self.events.emit(c, "die");
                self.events.emit(c, "stop");
            }
        }
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn version(&self) -> Result<EngineVersion> {
        Ok(EngineVersion {
            server: "fake".into(),
            server_api: "1.41".into(),
            client_api: "1.41".into(),
        })
    }

    async fn list_containers(
        &self,
        project: &str,
        include_stopped: bool,
    ) -> Result<Vec<ContainerInfo>> {
        let mut s = self.lock();
        let mut out: Vec<ContainerInfo> = s
            .containers
            .values()
            .filter(|c| c.project.as_deref() == Some(project))
            .filter(|c| include_stopped || c.state.running)
            .cloned()
            .collect();
        let due = s.stop_after_list.as_ref().and_then(|n| s.find(n));
        if let Some(id) = due.filter(|id| s.containers[id].project.as_deref() == Some(project)) {
            s.stop_after_list = None;
            self.stop_in(&mut s, &id);
        }
        drop(s);
        out.sort_by(|a, b| (&a.service, a.number, &a.name).cmp(&(&b.service, b.number, &b.name)));
        Ok(out)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        Ok(self.lock().container(id)?.clone())
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Ensured> {
        let mut s = self.lock();
        let created = !s.networks.contains_key(&spec.name);
        let labels = s
            .networks
            .entry(spec.name.clone())
            .or_insert_with(|| spec.labels.clone())
            .clone();
        Ok(Ensured {
            id: spec.name.clone(),
            created,
            labels,
        })
    }

    async fn remove_network(&self, name: &str) -> Result<bool> {
        let mut s = self.lock();
        // Docker refuses to remove a network with running containers attached (a created or
        // stopped one holds no endpoint).
        if s.containers
            .values()
            .any(|c| c.state.running && c.networks.iter().any(|n| n == name))
        {
            return Err(EngineError::Api {
                object: Object::Network(name.to_owned()),
                status: 403,
                message: format!(
                    "error while removing network: network {name} has active endpoints"
                ),
            });
        }
        let removed = s.networks.remove(name).is_some();
        if removed {
            s.calls.push(format!("remove network {name}"));
        }
        Ok(removed)
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<Ensured> {
        let mut s = self.lock();
        let created = !s.volumes.contains_key(&spec.name);
        let labels = s
            .volumes
            .entry(spec.name.clone())
            .or_insert_with(|| spec.labels.clone())
            .clone();
        Ok(Ensured {
            id: spec.name.clone(),
            created,
            labels,
        })
    }

    async fn remove_volume(&self, name: &str) -> Result<bool> {
        let mut s = self.lock();
        if s.containers.values().any(|c| {
            c.volumes
                .iter()
                .chain(c.anonymous_volumes.iter().map(|(_, n)| n))
                .any(|v| v == name)
        }) {
            return Err(EngineError::Conflict {
                object: Object::Volume(name.to_owned()),
                message: format!("remove {name}: volume is in use"),
            });
        }
        let removed = s.volumes.remove(name).is_some();
        if removed {
            s.calls.push(format!("remove volume {name}"));
        }
        Ok(removed)
    }

    async fn labels_of(&self, object: &Object) -> Result<Option<BTreeMap<String, String>>> {
        let s = self.lock();
        match object {
            Object::Network(name) => Ok(s.networks.get(name).cloned()),
            Object::Volume(name) => Ok(s.volumes.get(name).cloned()),
            other => Err(EngineError::InvalidSpec {
                object: other.clone(),
                reason: "only networks and volumes have labels here".into(),
            }),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        self.gate().await;
        let mut s = self.lock();
        if s.find(&spec.name).is_some() {
            return Err(EngineError::Conflict {
                object: Object::Container(spec.name.clone()),
                message: "name in use".into(),
            });
        }
        let image = s
            .image(spec.image.as_str())
            .ok_or_else(|| EngineError::NotFound {
                object: Object::Image(spec.image.as_str().to_owned()),
            })?
            .clone();
        if s.panicking.contains(&image.id) {
            drop(s);
            panic!(
                "fake engine: create_container panics for image {}",
                image.id
            );
        }
        s.next_id += 1;
        let id = format!("c{:04}", s.next_id);
        s.env.insert(id.clone(), spec.env.0.clone());
        let label = |k: &str| spec.labels.get(k).cloned();
        let info = ContainerInfo {
            id: id.clone(),
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            project: label(labels::PROJECT),
            service: label(labels::SERVICE),
            number: label(labels::CONTAINER_NUMBER).and_then(|n| n.parse().ok()),
            oneoff: label(labels::ONEOFF).as_deref() == Some("True"),
            image_id: image.id,
            image: spec.image.as_str().to_owned(),
            networks: spec.networks.iter().map(|n| n.network.clone()).collect(),
            ip_addresses: BTreeMap::new(),
            volumes: mounts::named(spec),
            anonymous_volumes: mounts::anonymous(spec, &image.volumes, &id),
            ports: Vec::new(),
            stop_timeout: spec.stop_timeout,
            state: state(ContainerStatus::Created, None),
        };
        if spec
            .healthcheck
            .as_ref()
            .is_some_and(|h| h.test.first().is_some_and(|t| t != "NONE"))
        {
            s.checked.insert(id.clone());
        }
        self.events.emit(&info, "create");
        for (_, name) in &info.anonymous_volumes {
            s.volumes.entry(name.clone()).or_default();
        }
        s.containers.insert(id.clone(), info);
        s.calls.push(format!("create {}", spec.name));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.gate().await;
        let mut s = self.lock();
        let crashing = s.crashing.clone();
        let job_exit = s.job_exit.clone();
        let hanging = s.hanging_jobs.clone();
        let healthy = s.auto_healthy && s.find(id).is_some_and(|id| s.checked.contains(&id));
        let c = s.container(id)?;
        let name = c.name.clone();
        if !c.state.running {
            c.state = if crashing.contains(&c.image_id) {
                state(ContainerStatus::Exited, Some(1))
            } else if c.oneoff && !c.service.as_ref().is_some_and(|svc| hanging.contains(svc)) {
                let code = c.service.as_ref().and_then(|svc| job_exit.get(svc));
                state(ContainerStatus::Exited, Some(code.copied().unwrap_or(0)))
            } else {
                let mut running = state(ContainerStatus::Running, None);
                if healthy {
                    running.health = Some(super::HealthStatus::Healthy);
                    // Passes enough for any `passes` rule.
                    running.health_log = (0..5)
                        .map(|_| super::HealthProbe {
                            start: None,
                            exit_code: Some(0),
                            output: String::new(),
                        })
                        .collect();
                }
                running
            };
            self.events.emit(c, "start");
            if !c.state.running {
                self.events.emit(c, "die");
            }
        }
        s.calls.push(format!("start {name}"));
        Ok(())
    }

    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecOutcome> {
        let mut s = self.lock();
        let c = s.container(id)?;
        let (name, running) = (c.name.clone(), c.state.running);
        s.calls
            .push(format!("exec {name} {}", exec.command.join(" ")));
        if !running {
            return Err(EngineError::Conflict {
                object: Object::Container(id.to_owned()),
                message: format!("container {id} is not running"),
            });
        }
        let program = exec.command.first().cloned().unwrap_or_default();
        let exit_code = s.exec_exit.get(&program).copied().unwrap_or(0);
        Ok(ExecOutcome {
            exit_code,
            output: if exit_code == 0 {
                Vec::new()
            } else {
                vec![format!("{program} failed")]
            },
        })
    }

    async fn stop_container(
        &self,
        id: &str,
        _signal: Option<&str>,
        _timeout: Duration,
    ) -> Result<()> {
        self.gate().await;
        let mut s = self.lock();
        let c = s.container(id)?;
        let name = c.name.clone();
        if c.state.running {
            c.state = state(ContainerStatus::Exited, Some(0));
            self.events.emit(c, "die");
            self.events.emit(c, "stop");
        }
        s.calls.push(format!("stop {name}"));
        Ok(())
    }

    async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        self.gate().await;
        let mut s = self.lock();
        let c = s.container(id)?;
        let name = c.name.clone();
        let was_running = c.state.running;
        c.state = state(ContainerStatus::Exited, Some(137));
        self.events.emit(c, "kill");
        if was_running {
            self.events.emit(c, "die");
        }
        s.calls.push(format!("kill {name} {signal}"));
        Ok(())
    }

    async fn remove_container(&self, id: &str, _force: bool) -> Result<bool> {
        self.remove(id, false).await
    }

    async fn remove_container_and_volumes(&self, id: &str, _force: bool) -> Result<bool> {
        self.remove(id, true).await
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        self.gate().await;
        let mut s = self.lock();
        if s.find(new_name).is_some() {
            return Err(EngineError::Conflict {
                object: Object::Container(new_name.to_owned()),
                message: "name in use".into(),
            });
        }
        let c = s.container(id)?;
        let old = std::mem::replace(&mut c.name, new_name.to_owned());
        s.calls.push(format!("rename {old} {new_name}"));
        Ok(())
    }

    async fn disconnect_network(&self, id: &str, network: &str) -> Result<bool> {
        self.gate().await;
        let mut s = self.lock();
        let c = s.container(id)?;
        let name = c.name.clone();
        let was = c.networks.iter().any(|n| n == network);
        c.networks.retain(|n| n != network);
        s.calls.push(format!("disconnect {name} {network}"));
        Ok(was)
    }

    async fn connect_network(&self, id: &str, attachment: &NetworkAttachment) -> Result<()> {
        self.gate().await;
        let mut s = self.lock();
        let c = s.container(id)?;
        let name = c.name.clone();
        if !c.networks.contains(&attachment.network) {
            c.networks.push(attachment.network.clone());
            c.networks.sort();
        }
        s.calls
            .push(format!("connect {name} {}", attachment.network));
        Ok(())
    }

    async fn wait_container(&self, id: &str) -> Result<i64> {
        let c = self.lock().container(id)?.clone();
        if c.state.running {
            // A running service container never exits by itself here.
            std::future::pending::<()>().await;
        }
        Ok(c.state.exit_code.unwrap_or(0))
    }

    async fn logs_tail(&self, _id: &str, _n: usize) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn list_images(&self, reference: Option<&str>) -> Result<Vec<ImageInfo>> {
        Ok(self
            .lock()
            .images
            .values()
            .filter(|i| reference.is_none_or(|r| i.repo_tags.iter().any(|t| t == r)))
            .cloned()
            .collect())
    }

    async fn inspect_image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        Ok(self.lock().image(image.as_str()).cloned())
    }

    async fn pull_image(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        _auth: Option<&RegistryAuth>,
        _progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo> {
        self.gate().await;
        let stall = {
            let mut s = self.lock();
            s.calls.push(match platform {
                Some(p) => format!("pull {} for {p}", image.as_str()),
                None => format!("pull {}", image.as_str()),
            });
            s.stall_pulls
        };
        if stall {
            std::future::pending::<()>().await;
        }
        let mut s = self.lock();
        let found = s
            .registry
            .get(image.as_str())
            .or_else(|| {
                // By digest: `repo@sha256:...`.
                s.registry
                    .values()
                    .find(|i| i.repo_digests.iter().any(|d| d == image.as_str()))
            })
            .cloned()
            .ok_or_else(|| EngineError::Pull {
                image: image.as_str().to_owned(),
                registry: image.registry().to_owned(),
                kind: PullFailure::NotFound,
                reason: "not in the fake registry".into(),
            })?;
        // The tag moves to the pulled image, as with Docker.
        for other in s.images.values_mut() {
            other.repo_tags.retain(|t| t != image.as_str());
        }
        let local = s
            .images
            .entry(found.id.clone())
            .or_insert_with(|| ImageInfo {
                id: found.id.clone(),
                repo_digests: found.repo_digests.clone(),
                repo_tags: Vec::new(),
                volumes: found.volumes.clone(),
            });
        if !image.as_str().contains('@') {
            local.repo_tags.push(image.as_str().to_owned());
        }
        Ok(local.clone())
    }

    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<()> {
        let mut s = self.lock();
        let id = s
            .image(source)
            .map(|i| i.id.clone())
            .ok_or_else(|| EngineError::NotFound {
                object: Object::Image(source.to_owned()),
            })?;
        if let Some(i) = s.images.get_mut(&id) {
            i.repo_tags.push(target.as_str().to_owned());
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str, _force: bool) -> Result<bool> {
        let mut s = self.lock();
        let Some(id) = s.image(image).map(|i| i.id.clone()) else {
            return Ok(false);
        };
        if s.containers.values().any(|c| c.image_id == id) {
            return Err(EngineError::Conflict {
                object: Object::Image(image.to_owned()),
                message: "in use by a container".into(),
            });
        }
        s.images.remove(&id);
        s.calls.push(format!("remove image {id}"));
        Ok(true)
    }

    fn events(&self, filter: &EventFilter) -> BoxStream<'static, Result<Event>> {
        self.events.stream(filter)
    }
}
