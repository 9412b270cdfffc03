//! [`DockerEngine`]: the [`Engine`] trait over the Docker Engine API, with bollard.
//!
//! What: connection (honouring `DOCKER_HOST`: `unix://` or `tcp://`/`http://`, default
//! `unix:///var/run/docker.sock`), API version negotiation, the translation of our specs into
//! Docker's request bodies and of Docker's answers into our types, and the mapping of bollard's
//! errors into [`EngineError`].
//!
//! Design: the client negotiates down to the daemon's API version at connect (bollard 0.21
//! speaks 1.53 by default; Docker 20.10 answers only up to 1.41), so `connect` fails fast with
//! [`EngineError::Unreachable`] when nothing answers. Every call maps its errors with the object
//! it was about. Stopping with a signal other than the container's own uses `stop?signal=` on API
//! 1.42+; on older daemons it sends the signal with `kill`, waits, then SIGKILLs — with the
//! restart policy switched to `no` meanwhile, since dockerd restarts a killed (unlike a stopped)
//! container, and restored afterwards (in a task of its own, so a caller dropped on a timeout
//! does not skip the restore; the wait after SIGKILL is bounded).
//!
//! Files: this one connects and implements the trait; [`request`] builds Docker's request
//! bodies from our specs, [`convert`] reads Docker's answers into our types, [`errors`] maps
//! bollard's errors, [`pull`] pulls an image with its progress, [`stop`] is the kill-and-wait
//! stop for old daemons, [`remove`] removes a container (with its anonymous volumes or not).
//!
//! Limits: no TLS to the daemon (`DOCKER_TLS_VERIFY`), no `ssh://`, and Docker CLI contexts
//! are not read (only `DOCKER_HOST`). Bind-mount propagation and SELinux relabel options are not
//! expressed. Network creation on API < 1.44 cannot ask the daemon to refuse duplicate names, so
//! `ensure_network` looks the name up first (safe under the per-stack deploy lock, not against a
//! concurrent `docker network create`). Removing a container keeps its anonymous volumes (`docker
//! rm` without `-v`) unless the caller asks for them to go ([`remove`]). A request waits at most
//! 120 s for the daemon's answer to start (stop adds its grace period); streamed bodies (pull,
//! wait, logs, events) are not limited.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, ContainerUpdateBody, DeviceMapping, DeviceRequest,
    EndpointIpamConfig, EndpointSettings, EventMessage, EventMessageTypeEnum, HealthConfig,
    HealthStatusEnum, HostConfig, HostConfigCgroupnsModeEnum, HostConfigLogConfig, Ipam,
    IpamConfig, Mount, MountPoint, MountTmpfsOptions, MountType, MountVolumeOptions,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    PortBinding, PortSummaryTypeEnum, ResourcesBlkioWeightDevice, ResourcesUlimits,
    RestartPolicyNameEnum, ThrottleDevice, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, KillContainerOptions,
    ListContainersOptions, ListImagesOptions, ListNetworksOptions, LogsOptions,
    RemoveContainerOptions, RemoveImageOptions, RemoveVolumeOptions, RenameContainerOptions,
    StopContainerOptions, TagImageOptions, WaitContainerOptions,
};
use futures_util::stream::{BoxStream, StreamExt};
use nix::sys::signal::Signal;
use tracing::{debug, warn};

mod convert;
mod errors;
mod exec;
pub mod host;
mod pull;
mod remove;
mod request;
mod stop;
mod tail;
#[cfg(test)]
mod tests;

use convert::*;
use errors::*;
use request::*;

use super::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, EngineError, EngineVersion,
    Ensured, Event, EventAction, EventFilter, ExecOutcome, ExecSpec, HealthProbe, HealthStatus,
    ImageInfo, ImageRef, MountKind, NetworkAttachment, NetworkSpec, Object, ObjectType, Protocol,
    PublishedPort, PullFailure, PullProgress, PullProgressFn, RegistryAuth, RestartPolicy, Result,
    VolumeSpec, labels,
};

/// Where Docker listens when `DOCKER_HOST` is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Seconds bollard waits for a response's headers (streams run longer; stop extends it).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The [`Engine`](super::Engine) over a Docker daemon.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    host: String,
}

impl DockerEngine {
    /// Connects to `docker_host` (the CLI passes `DOCKER_HOST`; empty or `None`:
    /// [`DEFAULT_HOST`]) and negotiates the API version.
    pub async fn connect(docker_host: Option<&str>) -> Result<Self> {
        let host = docker_host
            .filter(|h| !h.trim().is_empty())
            .unwrap_or(DEFAULT_HOST);
        Self::connect_to(host).await
    }

    /// Connects to `host` (`unix:///path`, `/path`, `tcp://h:p`, `http://h:p`) and negotiates.
    pub async fn connect_to(host: &str) -> Result<Self> {
        let host = if host.starts_with('/') {
            format!("unix://{host}")
        } else {
            host.to_owned()
        };
        let version = bollard::API_DEFAULT_VERSION;
        let built = if host.starts_with("unix://") {
            Docker::connect_with_unix(&host, REQUEST_TIMEOUT_SECS, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECS, version)
        } else {
            return Err(EngineError::Unreachable {
                host: host.clone(),
                reason: "unsupported DOCKER_HOST scheme".into(),
                hint: "use unix:///path/to/docker.sock or tcp://host:port".into(),
            });
        };
        let docker = built.map_err(|e| unreachable_error(&host, &e))?;
        // On a unix socket the API version comes from `/_ping` (dockerd answers it at once;
        // `/version`, which bollard's negotiation uses, asks containerd and costs ~10 ms).
        let pinged = match host.strip_prefix("unix://") {
            Some(path) => ping_api_version(path).await,
            None => None,
        };
        let docker = match pinged {
            Some(server) => {
                let ours = version;
                let use_version = if (server.major_version, server.minor_version)
                    < (ours.major_version, ours.minor_version)
                {
                    server
                } else {
                    *ours
                };
                Docker::connect_with_unix(&host, REQUEST_TIMEOUT_SECS, &use_version)
                    .map_err(|e| unreachable_error(&host, &e))?
            }
            None => docker
                .negotiate_version()
                .await
                .map_err(|e| map_error(&host, Object::Daemon, e))?,
        };
        let api = docker.client_version();
        debug!(docker_host = %host, api_version = %api, "docker connected");
        Ok(Self { docker, host })
    }

    /// The daemon address in use.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The negotiated API version as (major, minor).
    pub fn api_version(&self) -> (usize, usize) {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version)
    }

    fn api_at_least(&self, major: usize, minor: usize) -> bool {
        self.api_version() >= (major, minor)
    }

    /// The request attaching container `id` as `attachment` says, or why this Docker cannot.
    fn connect_request(
        &self,
        id: &str,
        attachment: &NetworkAttachment,
    ) -> Result<NetworkConnectRequest> {
        let endpoint = endpoint(attachment, self.api_version()).map_err(|reason| {
            EngineError::InvalidSpec {
                object: Object::Container(id.to_owned()),
                reason,
            }
        })?;
        Ok(NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(endpoint),
        })
    }

    fn err(&self, object: Object, e: BollardError) -> EngineError {
        map_error(&self.host, object, e)
    }

    async fn find_network(&self, name: &str) -> Result<Option<Ensured>> {
        let filters = HashMap::from([("name".to_owned(), vec![name.to_owned()])]);
        let found = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| self.err(Object::Network(name.to_owned()), e))?;
        // The name filter matches substrings: keep exact matches only.
        let mut exact = found
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name));
        let first = exact.next();
        if exact.next().is_some() {
            warn!(
                network = name,
                "several networks share this name; using the first"
            );
        }
        Ok(first.map(|n| {
            // What Docker has, under the label Gantry writes what it asked for: the caller
            // compares it with the files (a network made before that label, too).
            let observed = observed_network(&n).config_label();
            let mut labels = to_btree(n.labels);
            labels.insert(super::NETWORK_CONFIG.to_owned(), observed);
            Ensured {
                id: n.id.unwrap_or_default(),
                created: false,
                labels,
            }
        }))
    }
}

/// The daemon's API version from the `Api-Version` header of `GET /_ping`; `None` if the
/// socket does not answer that way (the caller then negotiates through bollard).
async fn ping_api_version(socket: &str) -> Option<bollard::ClientVersion> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await.ok()?;
        stream
            .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .await
            .ok()?;
        let mut buf = Vec::with_capacity(512);
        stream.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        let value = text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("api-version")
                .then(|| v.trim().to_owned())
        })?;
        let (major, minor) = value.split_once('.')?;
        Some(bollard::ClientVersion {
            major_version: major.parse().ok()?,
            minor_version: minor.parse().ok()?,
        })
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

#[async_trait]
impl super::Engine for DockerEngine {
    async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.err(Object::Daemon, e))
    }

    async fn version(&self) -> Result<EngineVersion> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| self.err(Object::Daemon, e))?;
        Ok(EngineVersion {
            server: v.version.unwrap_or_default(),
            server_api: v.api_version.unwrap_or_default(),
            client_api: self.docker.client_version().to_string(),
        })
    }

    async fn list_containers(
        &self,
        project: &str,
        include_stopped: bool,
    ) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{}={project}", labels::PROJECT)],
        )]);
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: include_stopped,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|e| self.err(Object::Daemon, e))?;
        let mut out: Vec<ContainerInfo> = list.into_iter().map(from_summary).collect();
        out.sort_by(|a, b| (&a.service, a.number, &a.name).cmp(&(&b.service, b.number, &b.name)));
        Ok(out)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.err(Object::Container(id.to_owned()), e))?;
        Ok(from_inspect(inspect))
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<Ensured> {
        if let Some(existing) = self.find_network(&spec.name).await? {
            debug!(network = %spec.name, id = %existing.id, "network exists");
            return Ok(existing);
        }
        let request = network_request(spec, self.api_version()).map_err(|reason| {
            EngineError::InvalidSpec {
                object: Object::Network(spec.name.clone()),
                reason,
            }
        })?;
        match self.docker.create_network(request).await {
            Ok(resp) => {
                debug!(network = %spec.name, id = %resp.id, "network created");
                Ok(Ensured {
                    id: resp.id,
                    created: true,
                    labels: spec.labels.clone(),
                })
            }
            Err(e) => match self.err(Object::Network(spec.name.clone()), e) {
                // Lost a race with another creator: what exists now is the answer.
                EngineError::Conflict { .. } => {
                    self.find_network(&spec.name)
                        .await?
                        .ok_or_else(|| EngineError::Conflict {
                            object: Object::Network(spec.name.clone()),
                            message: "create conflicted but no network has that name".into(),
                        })
                }
                other => Err(other),
            },
        }
    }

    async fn remove_network(&self, name: &str) -> Result<bool> {
        match self.docker.remove_network(name).await {
            Ok(()) => {
                debug!(network = name, "network removed");
                Ok(true)
            }
            Err(e) => match self.err(Object::Network(name.to_owned()), e) {
                EngineError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<Ensured> {
        let object = || Object::Volume(spec.name.clone());
        match self.docker.inspect_volume(&spec.name).await {
            Ok(v) => {
                debug!(volume = %spec.name, "volume exists");
                // What Docker has, under Gantry's label (see `find_network`).
                let observed = VolumeSpec {
                    driver: Some(v.driver.clone()),
                    options: v.options.clone().into_iter().collect(),
                    ..VolumeSpec::default()
                };
                let mut labels: BTreeMap<String, String> = v.labels.into_iter().collect();
                labels.insert(super::VOLUME_CONFIG.to_owned(), observed.config_label());
                return Ok(Ensured {
                    id: v.name,
                    created: false,
                    labels,
                });
            }
            Err(e) => match self.err(object(), e) {
                EngineError::NotFound { .. } => {}
                other => return Err(other),
            },
        }
        let created = self
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(spec.name.clone()),
                driver: spec.driver.clone(),
                driver_opts: non_empty_map(&spec.options),
                labels: non_empty_map(&spec.labels),
                ..Default::default()
            })
            .await
            .map_err(|e| self.err(object(), e))?;
        debug!(volume = %spec.name, "volume created");
        Ok(Ensured {
            id: created.name,
            created: true,
            labels: created.labels.into_iter().collect(),
        })
    }

    async fn remove_volume(&self, name: &str) -> Result<bool> {
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => {
                debug!(volume = name, "volume removed");
                Ok(true)
            }
            Err(e) => match self.err(Object::Volume(name.to_owned()), e) {
                EngineError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn labels_of(&self, object: &Object) -> Result<Option<BTreeMap<String, String>>> {
        match object {
            Object::Network(name) => Ok(self.find_network(name).await?.map(|n| n.labels)),
            Object::Volume(name) => match self.docker.inspect_volume(name).await {
                Ok(v) => Ok(Some(v.labels.into_iter().collect())),
                Err(e) => match self.err(object.clone(), e) {
                    EngineError::NotFound { .. } => Ok(None),
                    other => Err(other),
                },
            },
            other => Err(EngineError::InvalidSpec {
                object: other.clone(),
                reason: "only networks and volumes are asked for their labels".into(),
            }),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let body = create_body(spec, self.api_version())?;
        let stack = spec.labels.get(labels::PROJECT).map_or("", String::as_str);
        let service = spec.labels.get(labels::SERVICE).map_or("", String::as_str);
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            platform: spec.platform.clone().unwrap_or_default(),
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| create_error(&self.host, &spec.name, &spec.image.to_string(), e))?;
        for warning in &created.warnings {
            warn!(stack, service, container = %spec.name, warning = %warning, "docker warned on create");
        }
        for attachment in spec.networks.iter().skip(1) {
            let request = self.connect_request(&created.id, attachment)?;
            if let Err(e) = self
                .docker
                .connect_network(&attachment.network, request)
                .await
            {
                let error = self.err(Object::Network(attachment.network.clone()), e);
                // Leave nothing half-made behind; the create error is what the caller needs.
                if let Err(cleanup) = self.remove(&created.id, true, true).await {
                    warn!(stack, service, container = %spec.name, error = %cleanup, "could not remove half-created container");
                }
                return Err(error);
            }
        }
        debug!(stack, service, container = %spec.name, id = %short_id(&created.id), "container created");
        Ok(created.id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        match self.docker.start_container(id, None).await {
            Ok(()) => {
                debug!(container = id, "container started");
                Ok(())
            }
            Err(e) => match self.err(Object::Container(id.to_owned()), e) {
                EngineError::Api { status: 304, .. } => Ok(()), // already running
                other => Err(other),
            },
        }
    }

    async fn stop_container(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        let object = || Object::Container(id.to_owned());
        let parsed = signal
            .map(|s| {
                gantry_common::signal::parse(s).map_err(|e| EngineError::InvalidSpec {
                    object: object(),
                    reason: format!("stop signal: {e}"),
                })
            })
            .transpose()?;
        let send_signal = match parsed {
            Some(sig) if !self.api_at_least(1, 42) => {
                // Plain stop only if the container's own stop signal is the one asked for.
                let inspect = self
                    .docker
                    .inspect_container(id, None)
                    .await
                    .map_err(|e| self.err(object(), e))?;
                let own = inspect
                    .config
                    .and_then(|c| c.stop_signal)
                    .and_then(|s| gantry_common::signal::parse(&s).ok())
                    .unwrap_or(Signal::SIGTERM);
                if own != sig {
                    debug!(
                        container = id,
                        signal = sig.as_str(),
                        "stopping by kill (API < 1.42)"
                    );
                    return self.stop_with_kill(id, sig, timeout).await;
                }
                None
            }
            other => other,
        };
        let secs = i32::try_from(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0))
            .unwrap_or(i32::MAX);
        // The daemon answers only when the container is down: allow for the whole grace period.
        let client = self
            .docker
            .clone()
            .with_timeout(timeout + Duration::from_secs(REQUEST_TIMEOUT_SECS));
        let options = StopContainerOptions {
            signal: send_signal.map(|s| s.as_str().to_owned()),
            t: Some(secs),
        };
        match client.stop_container(id, Some(options)).await {
            Ok(()) => {
                debug!(container = id, "container stopped");
                Ok(())
            }
            Err(e) => match self.err(object(), e) {
                EngineError::Api { status: 304, .. } => Ok(()), // already stopped
                other => Err(other),
            },
        }
    }

    async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        self.kill_signal(id, signal).await
    }

    async fn remove_container(&self, id: &str, force: bool) -> Result<bool> {
        self.remove(id, force, false).await
    }

    async fn remove_container_and_volumes(&self, id: &str, force: bool) -> Result<bool> {
        self.remove(id, force, true).await
    }

    async fn disconnect_network(&self, id: &str, network: &str) -> Result<bool> {
        let request = NetworkDisconnectRequest {
            container: id.to_owned(),
            force: Some(true),
        };
        match self.docker.disconnect_network(network, request).await {
            Ok(()) => Ok(true),
            Err(e) => match self.err(Object::Network(network.to_owned()), e) {
                EngineError::NotFound { .. } => Ok(false),
                // "is not connected to network": nothing to do.
                EngineError::Api {
                    status: 403 | 409, ..
                } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn connect_network(&self, id: &str, attachment: &NetworkAttachment) -> Result<()> {
        let request = self.connect_request(id, attachment)?;
        self.docker
            .connect_network(&attachment.network, request)
            .await
            .map_err(|e| self.err(Object::Network(attachment.network.clone()), e))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        self.docker
            .rename_container(
                id,
                RenameContainerOptions {
                    name: new_name.to_owned(),
                },
            )
            .await
            .map_err(|e| match self.err(Object::Container(id.to_owned()), e) {
                EngineError::Conflict { message, .. } => EngineError::Conflict {
                    object: Object::Container(new_name.to_owned()),
                    message,
                },
                other => other,
            })
    }

    async fn exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecOutcome> {
        self.run_exec(id, exec).await
    }

    async fn wait_container(&self, id: &str) -> Result<i64> {
        self.wait_not_running(id).await
    }

    async fn logs_tail(&self, id: &str, n: usize) -> Result<Vec<String>> {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            // Docker parses the tail as a Go int; anything huge means "all".
            tail: if n > 1_000_000 {
                "all".to_owned()
            } else {
                n.to_string()
            },
            ..Default::default()
        };
        let mut stream = self.docker.logs(id, Some(options));
        // Bounded while it streams: n lines of up to 16 KiB (Docker's longest entry) could be
        // megabytes; the last MiB is what a job's log file keeps anyway.
        let mut tail = tail::Tail::new(n, 16 << 10, 1 << 20);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(Object::Container(id.to_owned()), e))?;
            tail.push(&chunk.into_bytes());
        }
        Ok(tail.into_lines())
    }

    async fn list_images(&self, reference: Option<&str>) -> Result<Vec<ImageInfo>> {
        let filters =
            reference.map(|r| HashMap::from([("reference".to_owned(), vec![r.to_owned()])]));
        let images = self
            .docker
            .list_images(Some(ListImagesOptions {
                filters,
                ..Default::default()
            }))
            .await
            .map_err(|e| self.err(Object::Image(reference.unwrap_or("*").to_owned()), e))?;
        let real = |v: Vec<String>| -> Vec<String> {
            v.into_iter().filter(|r| !r.starts_with("<none>")).collect()
        };
        Ok(images
            .into_iter()
            .map(|i| ImageInfo {
                id: i.id,
                repo_digests: real(i.repo_digests),
                repo_tags: real(i.repo_tags),
                volumes: Vec::new(),
            })
            .collect())
    }

    async fn inspect_image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(image.as_str()).await {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                repo_tags: i.repo_tags.unwrap_or_default(),
                volumes: convert::image_volumes(i.config.and_then(|c| c.volumes)),
            })),
            Err(e) => match self.err(Object::Image(image.to_string()), e) {
                EngineError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn pull_image(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        auth: Option<&RegistryAuth>,
        progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo> {
        self.pull(image, platform, auth, progress).await
    }

    async fn tag_image(&self, source: &str, target: &ImageRef) -> Result<()> {
        let options = TagImageOptions {
            repo: Some(target.repository().to_owned()),
            tag: Some(target.tag_or_latest().to_owned()),
        };
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| self.err(Object::Image(source.to_owned()), e))
    }

    async fn remove_image(&self, image: &str, force: bool) -> Result<bool> {
        let options = RemoveImageOptions {
            force,
            ..Default::default()
        };
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_) => {
                debug!(image, "image removed");
                Ok(true)
            }
            Err(e) => match self.err(Object::Image(image.to_owned()), e) {
                EngineError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    fn events(&self, filter: &EventFilter) -> BoxStream<'static, Result<Event>> {
        let mut filters: HashMap<String, Vec<String>> = HashMap::new();
        let mut add = |key: &str, values: Vec<String>| {
            if !values.is_empty() {
                filters.insert(key.to_owned(), values);
            }
        };
        add(
            "type",
            filter.types.iter().map(|t| t.as_str().to_owned()).collect(),
        );
        add("label", filter.labels.clone());
        add("container", filter.containers.clone());
        add("event", filter.actions.clone());
        let stamp = |t: SystemTime| {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        };
        let options = EventsOptions {
            since: filter.since.map(stamp),
            until: filter.until.map(stamp),
            filters: Some(filters),
        };
        let host = self.host.clone();
        self.docker
            .events(Some(options))
            .map(move |item| {
                item.map(from_event)
                    .map_err(|e| map_error(&host, Object::Daemon, e))
            })
            .boxed()
    }
}
