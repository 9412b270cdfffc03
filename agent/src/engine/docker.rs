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
//! container, and restored afterwards.
//!
//! Limits: no TLS to the daemon (`DOCKER_TLS_VERIFY`), no `ssh://`, and Docker CLI contexts
//! are not read (only `DOCKER_HOST`). Bind-mount propagation and SELinux relabel options are not
//! expressed. Network creation on API < 1.44 cannot ask the daemon to refuse duplicate names, so
//! `ensure_network` looks the name up first (safe under the per-stack deploy lock, not against a
//! concurrent `docker network create`). Removing a container keeps its anonymous volumes (`docker
//! rm` without `-v`): data is never dropped implicitly. A request waits at most 120 s for the
//! daemon's answer to start (stop adds its grace period); streamed bodies (pull, wait, logs,
//! events) are not limited.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryStateEnum, ContainerUpdateBody, DeviceMapping, EndpointIpamConfig,
    EndpointSettings, EventMessage, EventMessageTypeEnum, HealthConfig, HealthStatusEnum,
    HostConfig, HostConfigLogConfig, Ipam, IpamConfig, Mount, MountTmpfsOptions, MountType,
    MountVolumeOptions, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
    NetworkingConfig, PortBinding, PortSummaryTypeEnum, ResourcesUlimits, RestartPolicyNameEnum,
    VolumeCreateRequest,
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

use super::{
    ContainerInfo, ContainerSpec, ContainerState, ContainerStatus, EngineError, EngineVersion,
    Ensured, Event, EventAction, EventFilter, HealthProbe, HealthStatus, ImageInfo, ImageRef,
    MountKind, NetworkAttachment, NetworkSpec, Object, ObjectType, Protocol, PublishedPort,
    PullFailure, PullProgress, PullProgressFn, RegistryAuth, RestartPolicy, Result, VolumeSpec,
    labels,
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
    /// Connects to `DOCKER_HOST` (or [`DEFAULT_HOST`]) and negotiates the API version.
    pub async fn connect() -> Result<Self> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        Self::connect_to(&host).await
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
        Ok(first.map(|n| Ensured {
            id: n.id.unwrap_or_default(),
            created: false,
            labels: to_btree(n.labels),
        }))
    }

    /// Stop for daemons without `stop?signal=` (API < 1.42) when the signal differs from the
    /// container's own: kill with the signal, wait, SIGKILL; restart policy held at `no`.
    async fn stop_with_kill(&self, id: &str, signal: Signal, timeout: Duration) -> Result<()> {
        let object = || Object::Container(id.to_owned());
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.err(object(), e))?;
        if !inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false)
        {
            return Ok(());
        }
        let policy = inspect
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.clone());
        let restarts = policy.as_ref().is_some_and(|p| {
            !matches!(
                p.name,
                None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO)
            )
        });
        if restarts {
            self.set_restart_policy(
                id,
                Some(bollard::models::RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
            )
            .await?;
        }
        let outcome = self.kill_and_wait(id, signal, timeout).await;
        if restarts {
            // Restore even when the stop failed: the container must keep its declared policy.
            self.set_restart_policy(id, policy).await?;
        }
        outcome
    }

    async fn kill_and_wait(&self, id: &str, signal: Signal, timeout: Duration) -> Result<()> {
        match self.kill_signal(id, signal.as_str()).await {
            Err(EngineError::Conflict { .. }) => return Ok(()), // not running any more
            other => other?,
        }
        if tokio::time::timeout(timeout, self.wait_not_running(id))
            .await
            .is_ok()
        {
            return Ok(());
        }
        warn!(container = id, signal = signal.as_str(), timeout = %humantime::format_duration(timeout), "container ignored its stop signal; killing");
        match self.kill_signal(id, "SIGKILL").await {
            Err(EngineError::Conflict { .. }) => return Ok(()),
            other => other?,
        }
        self.wait_not_running(id).await.map(|_| ())
    }

    async fn kill_signal(&self, id: &str, signal: &str) -> Result<()> {
        self.docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: signal.to_owned(),
                }),
            )
            .await
            .map_err(|e| self.err(Object::Container(id.to_owned()), e))
    }

    async fn set_restart_policy(
        &self,
        id: &str,
        policy: Option<bollard::models::RestartPolicy>,
    ) -> Result<()> {
        self.docker
            .update_container(
                id,
                ContainerUpdateBody {
                    restart_policy: policy,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err(Object::Container(id.to_owned()), e))
    }

    async fn wait_not_running(&self, id: &str) -> Result<i64> {
        let mut stream = self.docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".to_owned(),
            }),
        );
        match stream.next().await {
            Some(Ok(resp)) => Ok(resp.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.err(Object::Container(id.to_owned()), e)),
            None => Err(EngineError::Protocol {
                object: Object::Container(id.to_owned()),
                message: "wait ended without a status".into(),
            }),
        }
    }
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
        let request = network_request(spec);
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
                return Ok(Ensured {
                    id: v.name,
                    created: false,
                    labels: v.labels.into_iter().collect(),
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

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let body = create_body(spec)?;
        let stack = spec.labels.get(labels::PROJECT).map_or("", String::as_str);
        let service = spec.labels.get(labels::SERVICE).map_or("", String::as_str);
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(
                |e| match self.err(Object::Container(spec.name.clone()), e) {
                    // The daemon answers 404 for a missing image, not a missing container.
                    EngineError::NotFound { .. } => EngineError::NotFound {
                        object: Object::Image(spec.image.to_string()),
                    },
                    other => other,
                },
            )?;
        for warning in &created.warnings {
            warn!(stack, service, container = %spec.name, warning = %warning, "docker warned on create");
        }
        for attachment in spec.networks.iter().skip(1) {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(endpoint(attachment)),
            };
            if let Err(e) = self
                .docker
                .connect_network(&attachment.network, request)
                .await
            {
                let error = self.err(Object::Network(attachment.network.clone()), e);
                // Leave nothing half-made behind; the create error is what the caller needs.
                if let Err(cleanup) = self
                    .docker
                    .remove_container(
                        &created.id,
                        Some(RemoveContainerOptions {
                            force: true,
                            ..Default::default()
                        }),
                    )
                    .await
                {
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
                parse_signal(s).ok_or_else(|| EngineError::InvalidSpec {
                    object: object(),
                    reason: format!("unknown stop signal {s:?}"),
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
                    .and_then(|s| parse_signal(&s))
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
        let options = RemoveContainerOptions {
            force,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => {
                debug!(container = id, "container removed");
                Ok(true)
            }
            Err(e) => match self.err(Object::Container(id.to_owned()), e) {
                EngineError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
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
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(endpoint(attachment)),
        };
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
        let mut text = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.err(Object::Container(id.to_owned()), e))?;
            text.extend_from_slice(&chunk.into_bytes());
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_owned())
            .collect();
        let skip = lines.len().saturating_sub(n);
        Ok(lines.into_iter().skip(skip).collect())
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
            })
            .collect())
    }

    async fn inspect_image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        match self.docker.inspect_image(image.as_str()).await {
            Ok(i) => Ok(Some(ImageInfo {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                repo_tags: i.repo_tags.unwrap_or_default(),
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
        auth: Option<&RegistryAuth>,
        progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo> {
        let registry = image.registry().to_owned();
        let pull_error = |kind, reason: String| EngineError::Pull {
            image: image.to_string(),
            registry: registry.clone(),
            kind,
            reason,
        };
        let tag = image
            .digest()
            .map_or_else(|| image.tag_or_latest().to_owned(), |d| d.to_string());
        let options = CreateImageOptions {
            from_image: Some(image.repository().to_owned()),
            tag: Some(tag),
            ..Default::default()
        };
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.expose().clone()),
            serveraddress: Some(a.server_address.clone()),
            identitytoken: a.identity_token.as_ref().map(|t| t.expose().clone()),
            ..Default::default()
        });
        debug!(image = %image, registry = %registry, authenticated = auth.is_some(), "pulling image");
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(BollardError::DockerResponseServerError {
                    status_code,
                    message,
                }) => {
                    return Err(pull_error(classify_pull(status_code, &message), message));
                }
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(pull_error(classify_pull(0, &error), error));
                }
                Err(e) => return Err(self.err(Object::Image(image.to_string()), e)),
            };
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_default();
                return Err(pull_error(classify_pull(0, &message), message));
            }
            if let Some(report) = progress {
                let detail = info.progress_detail.unwrap_or_default();
                report(&PullProgress {
                    layer: info.id,
                    status: info.status.unwrap_or_default(),
                    current: detail.current.and_then(|c| u64::try_from(c).ok()),
                    total: detail.total.and_then(|t| u64::try_from(t).ok()),
                });
            }
        }
        let info = self.inspect_image(image).await?.ok_or_else(|| {
            pull_error(
                PullFailure::Other,
                "the pull reported success but the image is not present".into(),
            )
        })?;
        debug!(image = %image, registry = %registry, id = %short_id(&info.id), "image pulled");
        Ok(info)
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
        let since = filter.since.map(|t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
        });
        let options = EventsOptions {
            since,
            until: None,
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

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn map_error(host: &str, object: Object, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => EngineError::NotFound { object },
            409 => EngineError::Conflict { object, message },
            status => EngineError::Api {
                object,
                status,
                message,
            },
        },
        BollardError::RequestTimeoutError => EngineError::Timeout {
            object,
            operation: "Docker API request",
            after: Duration::from_secs(REQUEST_TIMEOUT_SECS),
        },
        BollardError::SocketNotFoundError(_)
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. } => unreachable_error(host, &e),
        other => EngineError::Protocol {
            object,
            message: other.to_string(),
        },
    }
}

/// A transport failure: say where we tried, why it failed, and what to check.
fn unreachable_error(host: &str, e: &BollardError) -> EngineError {
    let first: &(dyn std::error::Error + 'static) = e;
    let io_kind = std::iter::successors(Some(first), |e| (*e).source())
        .find_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind));
    use std::io::ErrorKind::{ConnectionRefused, NotFound, PermissionDenied};
    let (reason, hint) = match (e, io_kind) {
        (BollardError::SocketNotFoundError(path), _) => (
            format!("no socket at {path}"),
            "is dockerd running? start it (`systemctl start docker`, or tests/env/up for the tests)",
        ),
        (_, Some(NotFound)) => (
            "no socket at that path".to_owned(),
            "is dockerd running? start it (`systemctl start docker`, or tests/env/up for the tests)",
        ),
        (_, Some(PermissionDenied)) => (
            "permission denied on the socket".to_owned(),
            "run as root or as a member of the socket's group (usually `docker`)",
        ),
        (_, Some(ConnectionRefused)) => (
            "connection refused".to_owned(),
            "is dockerd running and listening there? is DOCKER_HOST right?",
        ),
        _ => (
            e.to_string(),
            "is dockerd running and is DOCKER_HOST right?",
        ),
    };
    EngineError::Unreachable {
        host: host.to_owned(),
        reason,
        hint: hint.to_owned(),
    }
}

/// Sorts a pull failure by what the caller can do about it (refresh credentials, fix the tag).
fn classify_pull(status: u16, message: &str) -> PullFailure {
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if status == 401
        || any(&[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
            "denied",
            "401",
        ])
    {
        PullFailure::Unauthorized
    } else if status == 404 || any(&["not found", "manifest unknown", "does not exist"]) {
        PullFailure::NotFound
    } else if any(&[
        "no such host",
        "connection refused",
        "i/o timeout",
        "dial tcp",
        "tls:",
        "x509",
        "server gave http response to https client",
    ]) {
        PullFailure::Unreachable
    } else {
        PullFailure::Other
    }
}

// ---------------------------------------------------------------------------------------------
// Specs to requests
// ---------------------------------------------------------------------------------------------

fn network_request(spec: &NetworkSpec) -> NetworkCreateRequest {
    NetworkCreateRequest {
        name: spec.name.clone(),
        driver: spec.driver.clone(),
        internal: Some(spec.internal),
        attachable: Some(spec.attachable),
        enable_ipv6: spec.enable_ipv6.then_some(true),
        options: non_empty_map(&spec.options),
        labels: non_empty_map(&spec.labels),
        ipam: spec.ipam.as_ref().map(|ipam| Ipam {
            driver: ipam.driver.clone(),
            options: non_empty_map(&ipam.options),
            config: Some(
                ipam.config
                    .iter()
                    .map(|pool| IpamConfig {
                        subnet: pool.subnet.clone(),
                        ip_range: pool.ip_range.clone(),
                        gateway: pool.gateway.clone(),
                        auxiliary_addresses: non_empty_map(&pool.aux_addresses),
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
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

fn endpoint(attachment: &NetworkAttachment) -> EndpointSettings {
    let ipam =
        (attachment.ipv4_address.is_some() || attachment.ipv6_address.is_some()).then(|| {
            EndpointIpamConfig {
                ipv4_address: attachment.ipv4_address.clone(),
                ipv6_address: attachment.ipv6_address.clone(),
                link_local_ips: None,
            }
        });
    EndpointSettings {
        aliases: non_empty(&attachment.aliases),
        ipam_config: ipam,
        ..Default::default()
    }
}

fn create_body(spec: &ContainerSpec) -> Result<ContainerCreateBody> {
    let invalid = |reason: String| EngineError::InvalidSpec {
        object: Object::Container(spec.name.clone()),
        reason,
    };
    let network_mode = match (&spec.network_mode, spec.networks.first()) {
        (Some(mode), Some(first)) if *mode != first.network => {
            return Err(invalid(format!(
                "network_mode {mode:?} cannot be combined with networks"
            )));
        }
        (Some(mode), _) => Some(mode.clone()),
        (None, Some(first)) => Some(first.network.clone()),
        (None, None) => None,
    };
    let networking_config = spec.networks.first().map(|first| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(first.network.clone(), endpoint(first))])),
    });

    // Ports: every published port is exposed too.
    let mut exposed: Vec<String> = spec
        .expose
        .iter()
        .map(|(port, proto)| format!("{port}/{}", proto.as_str()))
        .collect();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &spec.ports {
        let key = format!("{}/{}", p.target, p.protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: p.host_ip.clone(),
                host_port: Some(p.host_port.map(|n| n.to_string()).unwrap_or_default()),
            });
    }

    // Mounts: binds that may create their source go the `Binds` way (like `docker run -v`),
    // everything else through `Mounts`.
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for m in &spec.mounts {
        match &m.kind {
            MountKind::Bind {
                create_host_path: true,
            } => {
                let ro = if m.read_only { ":ro" } else { "" };
                binds.push(format!("{}:{}{ro}", m.source, m.target));
            }
            MountKind::Bind {
                create_host_path: false,
            } => mounts.push(Mount {
                typ: Some(MountType::BIND),
                source: Some(m.source.clone()),
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                ..Default::default()
            }),
            MountKind::Volume { nocopy } => mounts.push(Mount {
                typ: Some(MountType::VOLUME),
                source: (!m.source.is_empty()).then(|| m.source.clone()),
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                volume_options: nocopy.then(|| MountVolumeOptions {
                    no_copy: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            MountKind::Tmpfs { size_bytes, mode } => mounts.push(Mount {
                typ: Some(MountType::TMPFS),
                target: Some(m.target.clone()),
                read_only: Some(m.read_only),
                tmpfs_options: (size_bytes.is_some() || mode.is_some()).then(|| {
                    MountTmpfsOptions {
                        size_bytes: *size_bytes,
                        mode: mode.map(i64::from),
                        ..Default::default()
                    }
                }),
                ..Default::default()
            }),
        }
    }
    let tmpfs: HashMap<String, String> = spec
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((path, opts)) => (path.to_owned(), opts.to_owned()),
            None => (t.clone(), String::new()),
        })
        .collect();

    let restart_policy = Some(match spec.restart {
        RestartPolicy::No => bollard::models::RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        },
        RestartPolicy::Always => bollard::models::RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        },
        RestartPolicy::UnlessStopped => bollard::models::RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        },
        RestartPolicy::OnFailure { max_retries } => bollard::models::RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: max_retries.map(i64::from),
        },
    });

    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(nanos),
        start_interval: None,
    });

    let host_config = HostConfig {
        binds: non_empty(&binds),
        mounts: non_empty(&mounts),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        network_mode,
        pid_mode: spec.pid.clone(),
        ipc_mode: spec.ipc.clone(),
        restart_policy,
        ulimits: non_empty(
            &spec
                .ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect::<Vec<_>>(),
        ),
        extra_hosts: non_empty(&spec.extra_hosts),
        cap_add: non_empty(&spec.cap_add),
        cap_drop: non_empty(&spec.cap_drop),
        security_opt: non_empty(&spec.security_opt),
        group_add: non_empty(&spec.group_add),
        init: spec.init,
        readonly_rootfs: spec.read_only.then_some(true),
        privileged: spec.privileged.then_some(true),
        sysctls: non_empty_map(&spec.sysctls),
        devices: non_empty(
            &spec
                .devices
                .iter()
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.host_path.clone()),
                    path_in_container: Some(d.container_path.clone()),
                    cgroup_permissions: Some(
                        d.permissions.clone().unwrap_or_else(|| "rwm".to_owned()),
                    ),
                })
                .collect::<Vec<_>>(),
        ),
        shm_size: spec.shm_size,
        log_config: spec.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: Some(l.driver.clone()),
            config: non_empty_map(&l.options),
        }),
        nano_cpus: spec.resources.nano_cpus,
        memory: spec.resources.memory_bytes,
        memory_reservation: spec.resources.memory_reservation_bytes,
        pids_limit: spec.resources.pids_limit,
        dns: non_empty(&spec.dns),
        dns_search: non_empty(&spec.dns_search),
        dns_options: non_empty(&spec.dns_opt),
        ..Default::default()
    };

    Ok(ContainerCreateBody {
        image: Some(spec.image.to_string()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: (!spec.env.is_empty())
            .then(|| spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: non_empty_map(&spec.labels),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        hostname: spec.hostname.clone(),
        domainname: spec.domainname.clone(),
        tty: spec.tty.then_some(true),
        open_stdin: spec.stdin_open.then_some(true),
        exposed_ports: non_empty(&exposed),
        healthcheck,
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: spec.stop_timeout.map(|t| {
            i64::try_from(t.as_secs() + u64::from(t.subsec_nanos() > 0)).unwrap_or(i64::MAX)
        }),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Answers to our types
// ---------------------------------------------------------------------------------------------

fn from_summary(c: ContainerSummary) -> ContainerInfo {
    let labels = to_btree(c.labels);
    let status_text = c.status.unwrap_or_default();
    let status = match c.state {
        Some(ContainerSummaryStateEnum::CREATED) => ContainerStatus::Created,
        Some(ContainerSummaryStateEnum::RUNNING) => ContainerStatus::Running,
        Some(ContainerSummaryStateEnum::PAUSED) => ContainerStatus::Paused,
        Some(ContainerSummaryStateEnum::RESTARTING) => ContainerStatus::Restarting,
        Some(ContainerSummaryStateEnum::REMOVING) => ContainerStatus::Removing,
        Some(ContainerSummaryStateEnum::EXITED) => ContainerStatus::Exited,
        Some(ContainerSummaryStateEnum::DEAD) => ContainerStatus::Dead,
        _ => ContainerStatus::Unknown,
    };
    let endpoints = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let (networks, ip_addresses) = split_endpoints(endpoints);
    let ports = c
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some(PublishedPort {
                target: p.private_port,
                protocol: match p.typ {
                    Some(PortSummaryTypeEnum::UDP) => Protocol::Udp,
                    Some(PortSummaryTypeEnum::SCTP) => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                host_ip: p.ip.filter(|ip| !ip.is_empty()),
                host_port: Some(p.public_port?),
            })
        })
        .collect();
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        project: labels.get(labels::PROJECT).cloned(),
        service: labels.get(labels::SERVICE).cloned(),
        number: labels
            .get(labels::CONTAINER_NUMBER)
            .and_then(|n| n.parse().ok()),
        oneoff: labels.get(labels::ONEOFF).is_some_and(|v| v == "True"),
        image_id: c.image_id.unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        networks,
        ip_addresses,
        ports,
        state: ContainerState {
            status,
            running: status == ContainerStatus::Running,
            health: health_from_status_text(&status_text),
            health_log: Vec::new(),
            started_at: None,
            finished_at: None,
            restart_count: None,
            exit_code: exit_code_from_status_text(&status_text),
            oom_killed: false,
        },
        labels,
    }
}

fn from_inspect(c: ContainerInspectResponse) -> ContainerInfo {
    let config = c.config.unwrap_or_default();
    let labels = to_btree(config.labels);
    let state = c.state.unwrap_or_default();
    let status = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerStatus::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerStatus::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerStatus::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerStatus::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerStatus::Removing,
        Some(ContainerStateStatusEnum::EXITED) => ContainerStatus::Exited,
        Some(ContainerStateStatusEnum::DEAD) => ContainerStatus::Dead,
        _ => ContainerStatus::Unknown,
    };
    let health = state.health.unwrap_or_default();
    let health_status = match health.status {
        Some(HealthStatusEnum::STARTING) => Some(HealthStatus::Starting),
        Some(HealthStatusEnum::HEALTHY) => Some(HealthStatus::Healthy),
        Some(HealthStatusEnum::UNHEALTHY) => Some(HealthStatus::Unhealthy),
        _ => None,
    };
    let health_log = health
        .log
        .unwrap_or_default()
        .into_iter()
        .map(|r| HealthProbe {
            start: r.start,
            exit_code: r.exit_code,
            output: r.output.unwrap_or_default(),
        })
        .collect();
    let settings = c.network_settings.unwrap_or_default();
    let (networks, ip_addresses) = split_endpoints(settings.networks.unwrap_or_default());
    let ports = bound_ports(settings.ports.unwrap_or_default());
    let started = state.started_at.filter(|s| !s.starts_with("0001-"));
    let finished = state.finished_at.filter(|s| !s.starts_with("0001-"));
    ContainerInfo {
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        project: labels.get(labels::PROJECT).cloned(),
        service: labels.get(labels::SERVICE).cloned(),
        number: labels
            .get(labels::CONTAINER_NUMBER)
            .and_then(|n| n.parse().ok()),
        oneoff: labels.get(labels::ONEOFF).is_some_and(|v| v == "True"),
        image_id: c.image.unwrap_or_default(),
        image: config.image.unwrap_or_default(),
        networks,
        ip_addresses,
        ports,
        state: ContainerState {
            status,
            running: state.running.unwrap_or(false),
            health: health_status,
            health_log,
            started_at: started,
            finished_at: finished,
            restart_count: c.restart_count.and_then(|n| u32::try_from(n).ok()),
            exit_code: (status == ContainerStatus::Exited || status == ContainerStatus::Dead)
                .then_some(state.exit_code)
                .flatten(),
            oom_killed: state.oom_killed.unwrap_or(false),
        },
        labels,
    }
}

fn from_event(e: EventMessage) -> Event {
    let actor = e.actor.unwrap_or_default();
    let time = match (e.time_nano, e.time) {
        (Some(ns), _) if ns > 0 => UNIX_EPOCH + Duration::from_nanos(ns.unsigned_abs()),
        (_, Some(s)) => UNIX_EPOCH + Duration::from_secs(s.unsigned_abs()),
        _ => SystemTime::now(),
    };
    Event {
        object_type: match e.typ {
            Some(EventMessageTypeEnum::CONTAINER) => ObjectType::Container,
            Some(EventMessageTypeEnum::IMAGE) => ObjectType::Image,
            Some(EventMessageTypeEnum::NETWORK) => ObjectType::Network,
            Some(EventMessageTypeEnum::VOLUME) => ObjectType::Volume,
            Some(EventMessageTypeEnum::DAEMON) => ObjectType::Daemon,
            _ => ObjectType::Other,
        },
        action: EventAction::parse(e.action.as_deref().unwrap_or_default()),
        id: actor.id.unwrap_or_default(),
        attributes: to_btree(actor.attributes),
        time,
    }
}

/// Sorted network names, and each network's IPv4 address where the container has one.
fn split_endpoints(
    endpoints: HashMap<String, EndpointSettings>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let mut names: Vec<String> = endpoints.keys().cloned().collect();
    names.sort();
    let addresses = endpoints
        .into_iter()
        .filter_map(|(net, ep)| Some((net, ep.ip_address.filter(|ip| !ip.is_empty())?)))
        .collect();
    (names, addresses)
}

/// `{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}` → our ports (unbound ones left out).
fn bound_ports(map: HashMap<String, Option<Vec<PortBinding>>>) -> Vec<PublishedPort> {
    let mut out = Vec::new();
    for (key, bindings) in map {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(target) = port.parse::<u16>() else {
            continue;
        };
        let protocol = match proto {
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        for b in bindings.unwrap_or_default() {
            out.push(PublishedPort {
                target,
                protocol,
                host_ip: b.host_ip.filter(|ip| !ip.is_empty()),
                host_port: b.host_port.and_then(|p| p.parse().ok()),
            });
        }
    }
    out.sort_by(|a, b| {
        (a.target, a.protocol, &a.host_ip, a.host_port).cmp(&(
            b.target,
            b.protocol,
            &b.host_ip,
            b.host_port,
        ))
    });
    out
}

/// `Up 3 minutes (healthy)`, `Up 2 seconds (health: starting)`.
fn health_from_status_text(status: &str) -> Option<HealthStatus> {
    let open = status.rfind('(')?;
    let inner = status[open + 1..].strip_suffix(')')?;
    HealthStatus::parse(inner)
}

/// `Exited (3) 2 minutes ago`.
fn exit_code_from_status_text(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

/// `SIGUSR1`, `USR1`, `usr1` or `10`.
fn parse_signal(s: &str) -> Option<Signal> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok()
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn non_empty_map(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn to_btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::MountSpec;

    #[test]
    fn status_text_parses() {
        assert_eq!(
            health_from_status_text("Up 3 minutes (healthy)"),
            Some(HealthStatus::Healthy)
        );
        assert_eq!(
            health_from_status_text("Up 2 seconds (health: starting)"),
            Some(HealthStatus::Starting)
        );
        assert_eq!(health_from_status_text("Up 2 seconds"), None);
        assert_eq!(
            exit_code_from_status_text("Exited (3) 2 minutes ago"),
            Some(3)
        );
        assert_eq!(exit_code_from_status_text("Up 1 second"), None);
    }

    #[test]
    fn signals_parse_in_every_spelling() {
        for s in ["SIGUSR1", "USR1", "usr1", "10"] {
            assert_eq!(parse_signal(s), Some(Signal::SIGUSR1), "{s}");
        }
        assert_eq!(parse_signal("SIGNOPE"), None);
    }

    #[test]
    fn pull_failures_are_classified() {
        assert_eq!(
            classify_pull(
                500,
                "Head \"https://r/v2/a/manifests/1\": no basic auth credentials"
            ),
            PullFailure::Unauthorized
        );
        assert_eq!(
            classify_pull(404, "manifest for r/a:1 not found: manifest unknown"),
            PullFailure::NotFound
        );
        assert_eq!(
            classify_pull(500, "dial tcp 127.0.0.1:1: connect: connection refused"),
            PullFailure::Unreachable
        );
    }

    #[test]
    fn spec_translates_ports_mounts_and_networks() {
        let spec = ContainerSpec {
            name: "p-web-1".into(),
            image: "img".into(),
            ports: vec![PublishedPort {
                target: 80,
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(8080),
                ..Default::default()
            }],
            expose: vec![(9000, Protocol::Udp)],
            mounts: vec![
                MountSpec {
                    kind: MountKind::Bind {
                        create_host_path: true,
                    },
                    source: "/srv".into(),
                    target: "/srv".into(),
                    read_only: true,
                },
                MountSpec {
                    kind: MountKind::Volume { nocopy: false },
                    source: "p_data".into(),
                    target: "/data".into(),
                    read_only: false,
                },
            ],
            networks: vec![
                NetworkAttachment {
                    network: "p_default".into(),
                    aliases: vec!["web".into()],
                    ..Default::default()
                },
                NetworkAttachment {
                    network: "p_back".into(),
                    ..Default::default()
                },
            ],
            stop_timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        };
        let body = create_body(&spec).unwrap();
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("p_default"));
        assert_eq!(host.binds.unwrap(), vec!["/srv:/srv:ro".to_owned()]);
        assert_eq!(host.mounts.unwrap().len(), 1);
        let binding = &host.port_bindings.unwrap()["80/tcp"];
        assert_eq!(
            binding.as_ref().unwrap()[0].host_port.as_deref(),
            Some("8080")
        );
        let mut exposed = body.exposed_ports.unwrap();
        exposed.sort();
        assert_eq!(exposed, vec!["80/tcp".to_owned(), "9000/udp".to_owned()]);
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints.len(),
            1,
            "the other networks are connected after create"
        );
        assert_eq!(
            endpoints["p_default"].aliases.as_deref(),
            Some(&["web".to_owned()][..])
        );
        assert_eq!(body.stop_timeout, Some(2));

        let bad = ContainerSpec {
            network_mode: Some("host".into()),
            ..spec
        };
        assert!(matches!(
            create_body(&bad),
            Err(EngineError::InvalidSpec { .. })
        ));
    }
}
