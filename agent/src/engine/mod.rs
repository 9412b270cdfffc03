//! The Docker side behind a small trait at Gantry's level of abstraction.
//!
//! What: [`Engine`] is everything deploy and supervise ask of Docker: ensure networks and
//! volumes, create/start/stop/remove/rename containers, list them by project, wait for one-shot
//! jobs, tail logs, inspect/pull/tag/remove images, follow events. [`DockerEngine`] implements it
//! with bollard.
//!
//! Design: the types here ([`ContainerSpec`], [`NetworkSpec`], [`VolumeSpec`], [`ContainerInfo`],
//! [`Event`], ...) know nothing of the Compose model; deploy translates the model into them, so
//! the Compose loader and the Docker API can change independently and tests can fake the engine.
//! Maps are `BTreeMap` and lists keep their order, so a spec is deterministic. Labels and names
//! follow Docker Compose exactly ([`labels`]). Errors are [`EngineError`], each naming the object
//! it failed on.
//!
//! Limits: one local engine (unix socket or plain tcp); no exec, build, swarm, or TLS to the
//! daemon. See `docker.rs` for what API 1.41 (Docker 20.10) cannot do.

mod docker;
pub mod error;
#[cfg(test)]
pub mod fake;
pub mod labels;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use gantry_common::Secret;

pub use docker::DockerEngine;
pub use error::{EngineError, Object, PullFailure, Result};

// ---------------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------------

/// Docker Hub's registry host, as `docker login` and credential stores name it.
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference as written in a Compose file: `[registry/]repository[:tag][@digest]`.
///
/// Parsing follows Docker's rule: the first path component is a registry when it contains a `.`
/// or a `:` or is `localhost`; otherwise the image is on Docker Hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn new(reference: impl Into<String>) -> Self {
        Self(reference.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `registry/repository` or `repository` as written, without tag or digest.
    pub fn repository(&self) -> &str {
        let no_digest = self.0.split_once('@').map_or(self.0.as_str(), |(r, _)| r);
        // A ':' after the last '/' is a tag; one before it is a registry port.
        match no_digest.rfind(':') {
            Some(colon) if !no_digest[colon..].contains('/') => &no_digest[..colon],
            _ => no_digest,
        }
    }

    /// The tag, if one is written.
    pub fn tag(&self) -> Option<&str> {
        let repo = self.repository();
        let rest = &self.0[repo.len()..];
        let rest = rest.split_once('@').map_or(rest, |(t, _)| t);
        rest.strip_prefix(':')
    }

    /// The digest, if the reference is pinned (`repo@sha256:...`).
    pub fn digest(&self) -> Option<Digest> {
        self.0.split_once('@').map(|(_, d)| Digest(d.to_owned()))
    }

    /// The registry host (with port) the image is pulled from: `docker.io` for Hub images.
    pub fn registry(&self) -> &str {
        match self.repository().split_once('/') {
            Some((first, _))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                first
            }
            _ => DOCKER_HUB,
        }
    }

    /// The same repository pinned to `digest`: `repository@digest` (the tag is dropped, since
    /// Docker resolves a `tag@digest` reference by digest anyway).
    pub fn with_digest(&self, digest: &Digest) -> ImageRef {
        ImageRef(format!("{}@{}", self.repository(), digest.as_str()))
    }

    /// The reference Docker pulls when the tag is omitted: `:latest` is added.
    pub fn tag_or_latest(&self) -> &str {
        self.tag().unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ImageRef {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for ImageRef {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// A content digest, `sha256:<64 hex>`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Accepts `algo:hex` (e.g. `sha256:ab12...`).
    pub fn parse(s: &str) -> Option<Self> {
        let (algo, hex) = s.split_once(':')?;
        let ok = !algo.is_empty()
            && algo.bytes().all(|b| b.is_ascii_alphanumeric())
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for compact output.
    pub fn short(&self) -> &str {
        let hex = self.0.split_once(':').map_or(self.0.as_str(), |(_, h)| h);
        &hex[..hex.len().min(12)]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What Docker knows of a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id (`sha256:...` of its config): what containers record as their image.
    pub id: String,
    /// `repository@sha256:...` for every registry the image was pulled from or pushed to.
    /// Empty for images that only exist locally (built or imported).
    pub repo_digests: Vec<String>,
    pub repo_tags: Vec<String>,
}

impl ImageInfo {
    /// The registry digest of this image for `reference`'s repository, if it came from one.
    pub fn digest_for(&self, reference: &ImageRef) -> Option<Digest> {
        let wanted = normalise_repository(reference.repository());
        self.repo_digests.iter().find_map(|rd| {
            let (repo, digest) = rd.split_once('@')?;
            (normalise_repository(repo) == wanted)
                .then(|| Digest::parse(digest))
                .flatten()
        })
    }
}

/// `nginx` and `docker.io/library/nginx` name the same repository.
fn normalise_repository(repo: &str) -> String {
    let r = ImageRef::new(repo);
    let (registry, path) = match repo.split_once('/') {
        Some((first, rest)) if r.registry() == first => (first, rest),
        _ => (DOCKER_HUB, repo),
    };
    if registry == DOCKER_HUB && !path.contains('/') {
        format!("{DOCKER_HUB}/library/{path}")
    } else {
        format!("{registry}/{path}")
    }
}

/// Credentials for one registry, sent with a pull as `X-Registry-Auth`.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    /// The registry host as the credentials name it, e.g. `123.dkr.ecr.eu-west-1.amazonaws.com`.
    pub server_address: String,
    pub username: String,
    pub password: Secret<String>,
    /// An OAuth identity token instead of a password (`docker login` with some registries).
    pub identity_token: Option<Secret<String>>,
}

/// One progress message of a pull, as Docker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// Layer id, when the message is about one layer.
    pub layer: Option<String>,
    /// `Pulling fs layer`, `Downloading`, `Pull complete`, `Digest: sha256:...`, ...
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Called for every progress message of a pull (draw a bar, print a line, or nothing).
pub type PullProgressFn<'a> = &'a (dyn Fn(&PullProgress) + Send + Sync);

// ---------------------------------------------------------------------------------------------
// Networks and volumes
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The Docker name (`<project>_<key>` or the explicit `name:`).
    pub name: String,
    /// `bridge` when `None`.
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
    pub labels: BTreeMap<String, String>,
    pub ipam: Option<IpamSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamSpec {
    pub driver: Option<String>,
    pub config: Vec<IpamPool>,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamPool {
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The Docker name (`<project>_<key>` or the explicit `name:`).
    pub name: String,
    /// `local` when `None`.
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// What `ensure_network`/`ensure_volume` found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// Network id, or the volume's name (volumes have no separate id).
    pub id: String,
    /// `true` if it was created now, `false` if one with that name already existed (kept as is).
    pub created: bool,
    /// The labels of the object as it is, so the caller can warn about a foreign one.
    pub labels: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// Environment variables in order. `Debug` prints the names only: values can be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env(pub Vec<(String, String)>);

impl Env {
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=[redacted]")))
            .finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A container port published on the host (ranges are expanded by the caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedPort {
    pub target: u16,
    pub protocol: Protocol,
    /// `None` binds every address (`0.0.0.0` and `::`).
    pub host_ip: Option<String>,
    /// `None` lets Docker choose an ephemeral port.
    pub host_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A host path. With `create_host_path` (Compose's default) a missing source directory is
    /// created by the daemon, as with `docker run -v`; without it, a missing source is an error.
    Bind { create_host_path: bool },
    /// A named volume (`source` is its Docker name) or, with an empty source, an anonymous one.
    Volume { nocopy: bool },
    /// A tmpfs (`source` is ignored).
    Tmpfs {
        size_bytes: Option<i64>,
        mode: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: MountKind,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// One network to attach: the first of [`ContainerSpec::networks`] at create, the others
/// connected before start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// The Docker name of the network.
    pub network: String,
    /// DNS names other containers on this network resolve to this one (Compose: the service
    /// name plus `aliases:`).
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub ipv6_address: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthcheckSpec {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, or `["NONE"]` to disable the image's check.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure {
        max_retries: Option<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub host_path: String,
    pub container_path: String,
    /// cgroup permissions, `rwm` when `None`.
    pub permissions: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoggingSpec {
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPUs × 10⁹ (`cpus: 0.5` → 500_000_000).
    pub nano_cpus: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub memory_reservation_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// Everything needed to create one container. Built by deploy from the Compose model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Container name (see [`labels::container_name`]).
    pub name: String,
    pub image: ImageRef,
    /// Overrides the image's CMD when `Some`.
    pub command: Option<Vec<String>>,
    /// Overrides the image's ENTRYPOINT when `Some` (`Some(vec![])` clears it).
    pub entrypoint: Option<Vec<String>>,
    pub env: Env,
    pub labels: BTreeMap<String, String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub tty: bool,
    pub stdin_open: bool,
    /// Ports exposed without publishing (`expose:`).
    pub expose: Vec<(u16, Protocol)>,
    pub ports: Vec<PublishedPort>,
    pub mounts: Vec<MountSpec>,
    /// `tmpfs:` entries in Docker's short form, e.g. `/run:size=64m,mode=1777`.
    pub tmpfs: Vec<String>,
    pub networks: Vec<NetworkAttachment>,
    /// `host`, `none`, `container:<id>`, `service:` already resolved to `container:<id>`.
    /// When set, `networks` must be empty. When `None`, the first of `networks` is the mode.
    pub network_mode: Option<String>,
    pub pid: Option<String>,
    pub ipc: Option<String>,
    pub healthcheck: Option<HealthcheckSpec>,
    pub restart: RestartPolicy,
    /// e.g. `SIGTERM` (Docker's default), `SIGUSR1`, `SIGQUIT`.
    pub stop_signal: Option<String>,
    /// Compose's `stop_grace_period`: how long `docker stop` waits before SIGKILL.
    pub stop_timeout: Option<Duration>,
    pub ulimits: Vec<Ulimit>,
    /// `host:ip` entries.
    pub extra_hosts: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opt: Vec<String>,
    pub group_add: Vec<String>,
    pub init: Option<bool>,
    pub read_only: bool,
    pub privileged: bool,
    pub sysctls: BTreeMap<String, String>,
    pub devices: Vec<DeviceSpec>,
    pub shm_size: Option<i64>,
    pub logging: Option<LoggingSpec>,
    pub resources: Resources,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opt: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Removing => "removing",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
            ContainerStatus::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "starting" | "health: starting" => Some(HealthStatus::Starting),
            "healthy" => Some(HealthStatus::Healthy),
            "unhealthy" => Some(HealthStatus::Unhealthy),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One healthcheck run, as Docker keeps the last five.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthProbe {
    /// RFC 3339 as Docker writes it.
    pub start: Option<String>,
    pub exit_code: Option<i64>,
    pub output: String,
}

/// A container's state. From [`Engine::list_containers`] only `status`, `running`, `health` and
/// (for exited containers) `exit_code` are filled; [`Engine::inspect_container`] fills all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub status: ContainerStatus,
    pub running: bool,
    /// `None` when the container has no healthcheck.
    pub health: Option<HealthStatus>,
    /// The last healthcheck runs (inspect only).
    pub health_log: Vec<HealthProbe>,
    /// RFC 3339 (inspect only). Unchanged by a no-op deploy: that is how tests prove it.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// How often Docker's restart policy restarted it (inspect only).
    pub restart_count: Option<u32>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
}

/// A container as deploy and supervise see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// From [`labels::PROJECT`].
    pub project: Option<String>,
    /// From [`labels::SERVICE`].
    pub service: Option<String>,
    /// From [`labels::CONTAINER_NUMBER`].
    pub number: Option<u32>,
    /// From [`labels::ONEOFF`].
    pub oneoff: bool,
    /// The image id (`sha256:...`) the container runs.
    pub image_id: String,
    /// The image reference it was created with.
    pub image: String,
    /// Names of the networks it is attached to, sorted.
    pub networks: Vec<String>,
    /// Network name → the container's IPv4 address on it (empty while it is not running).
    pub ip_addresses: BTreeMap<String, String>,
    /// Ports published on the host, as bound (the host port Docker chose when none was asked).
    pub ports: Vec<PublishedPort>,
    pub state: ContainerState,
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    Container,
    Image,
    Network,
    Volume,
    Daemon,
    Other,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Container => "container",
            ObjectType::Image => "image",
            ObjectType::Network => "network",
            ObjectType::Volume => "volume",
            ObjectType::Daemon => "daemon",
            ObjectType::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    Create,
    Start,
    /// The main process exited (see [`Event::exit_code`]).
    Die,
    Stop,
    Kill,
    Oom,
    Destroy,
    Restart,
    HealthStatus(HealthStatus),
    /// Any other action, verbatim (`attach`, `exec_start: ...`, `connect`, `pull`, ...).
    Other(String),
}

impl EventAction {
    pub fn parse(action: &str) -> Self {
        match action {
            "create" => EventAction::Create,
            "start" => EventAction::Start,
            "die" => EventAction::Die,
            "stop" => EventAction::Stop,
            "kill" => EventAction::Kill,
            "oom" => EventAction::Oom,
            "destroy" => EventAction::Destroy,
            "restart" => EventAction::Restart,
            other => other
                .strip_prefix("health_status:")
                .and_then(HealthStatus::parse)
                .map_or_else(
                    || EventAction::Other(other.to_owned()),
                    EventAction::HealthStatus,
                ),
        }
    }
}

/// One Docker event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub object_type: ObjectType,
    pub action: EventAction,
    /// The object's id (container id, image id, network id, volume name).
    pub id: String,
    /// Actor attributes: for containers, its labels plus `name`, `image`, `exitCode`, ...
    pub attributes: BTreeMap<String, String>,
    pub time: SystemTime,
}

impl Event {
    /// The container's name (container events).
    pub fn name(&self) -> Option<&str> {
        self.attributes.get("name").map(String::as_str)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }

    /// The exit code on `die` events.
    pub fn exit_code(&self) -> Option<i64> {
        self.attributes.get("exitCode")?.parse().ok()
    }
}

/// Which events to receive. Empty lists mean "all"; within a list entries are OR-ed, lists
/// are AND-ed (Docker's filter semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub types: Vec<ObjectType>,
    /// `key` or `key=value`.
    pub labels: Vec<String>,
    /// Container ids or names.
    pub containers: Vec<String>,
    /// Docker action names: `start`, `die`, `health_status`, `oom`, `destroy`, ...
    pub actions: Vec<String>,
    /// Replay events from this time on (Docker keeps a short history).
    pub since: Option<SystemTime>,
}

impl EventFilter {
    /// Container events of one Compose project.
    pub fn project(project: &str) -> Self {
        Self {
            types: vec![ObjectType::Container],
            labels: vec![format!("{}={project}", labels::PROJECT)],
            ..Self::default()
        }
    }
}

/// Daemon identity, from `/version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// e.g. `20.10.24+dfsg1`.
    pub server: String,
    /// The API version the daemon speaks at most, e.g. `1.41`.
    pub server_api: String,
    /// The API version this client negotiated and uses.
    pub client_api: String,
}

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

    /// Removes a container (with `force`, even a running one, killing it). Anonymous volumes
    /// go with it, as with `docker compose down`. `Ok(false)` if it did not exist.
    async fn remove_container(&self, id: &str, force: bool) -> Result<bool>;

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()>;

    /// Detaches a running container from a network: other containers stop resolving its
    /// names there at once (used to take the old container out of service before it stops).
    /// `Ok(false)` if it was not attached.
    async fn disconnect_network(&self, id: &str, network: &str) -> Result<bool>;

    /// Attaches a container to a network with the attachment's aliases and address.
    async fn connect_network(&self, id: &str, attachment: &NetworkAttachment) -> Result<()>;

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

    /// Pulls the image (with credentials for its registry, if any), reporting progress, and
    /// returns what is now local. Failures are [`EngineError::Pull`] naming the registry.
    async fn pull_image(
        &self,
        image: &ImageRef,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_split_like_docker() {
        let cases = [
            ("nginx", DOCKER_HUB, "nginx", None, None),
            ("nginx:1.25", DOCKER_HUB, "nginx", Some("1.25"), None),
            (
                "127.0.0.1:5000/app:v2",
                "127.0.0.1:5000",
                "127.0.0.1:5000/app",
                Some("v2"),
                None,
            ),
            ("localhost/app", "localhost", "localhost/app", None, None),
            ("org/app:1", DOCKER_HUB, "org/app", Some("1"), None),
            (
                "ghcr.io/org/app:1@sha256:0123456789abcdef0123456789abcdef",
                "ghcr.io",
                "ghcr.io/org/app",
                Some("1"),
                Some("sha256:0123456789abcdef0123456789abcdef"),
            ),
            (
                "registry:5000/app",
                "registry:5000",
                "registry:5000/app",
                None,
                None,
            ),
        ];
        for (input, registry, repo, tag, digest) in cases {
            let r = ImageRef::from(input);
            assert_eq!(r.registry(), registry, "{input}");
            assert_eq!(r.repository(), repo, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest().as_ref().map(Digest::as_str), digest, "{input}");
        }
    }

    #[test]
    fn digest_for_matches_hub_shorthand() {
        let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let info = ImageInfo {
            id: "sha256:x".into(),
            repo_digests: vec![format!("nginx@{d}")],
            repo_tags: vec![],
        };
        let r = ImageRef::from("docker.io/library/nginx:1");
        assert_eq!(info.digest_for(&r).unwrap().as_str(), d);
        assert_eq!(
            r.with_digest(&info.digest_for(&r).unwrap()).as_str(),
            format!("docker.io/library/nginx@{d}")
        );
        assert!(info.digest_for(&ImageRef::from("other")).is_none());
    }

    #[test]
    fn env_debug_hides_values() {
        let env: Env = [("DB_PASSWORD", "hunter2")].into_iter().collect();
        let printed = format!("{env:?}");
        assert!(printed.contains("DB_PASSWORD"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn event_actions_parse() {
        assert_eq!(EventAction::parse("die"), EventAction::Die);
        assert_eq!(
            EventAction::parse("health_status: healthy"),
            EventAction::HealthStatus(HealthStatus::Healthy)
        );
        assert_eq!(
            EventAction::parse("exec_start: sh"),
            EventAction::Other("exec_start: sh".into())
        );
    }
}
