//! What the engine reports: containers ([`ContainerInfo`] with status, health and bound
//! ports), events ([`Event`], [`EventFilter`]) and the engine's version.
//!
//! Design: engine-level values read from list, inspect and event answers; labels are kept
//! whole so callers find Compose's and Gantry's own (see [`super::labels`]).
//!
//! Limits: only the fields Gantry reads.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use super::labels;
use super::spec::PublishedPort;

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
    /// The main process on the host while running (inspect only).
    pub pid: Option<u32>,
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
    /// Docker names of the named volumes mounted (anonymous ones left out), sorted.
    pub volumes: Vec<String>,
    /// The anonymous volumes mounted (an image's `VOLUME`, a `volumes:` entry without a
    /// source): (mount target, Docker's name for the volume), sorted. A replacement inherits
    /// them, as with Compose.
    pub anonymous_volumes: Vec<(String, String)>,
    /// Ports published on the host, as bound (the host port Docker chose when none was asked).
    pub ports: Vec<PublishedPort>,
    /// The grace period it was created with (`docker create --stop-timeout`; inspect only,
    /// `None`: Docker's 10 s).
    pub stop_timeout: Option<std::time::Duration>,
    pub state: ContainerState,
}

/// Whether `name` is one Docker gave an anonymous volume: 64 lowercase hex digits (a volume
/// someone named so is taken for one).
pub fn is_anonymous_volume(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ContainerInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

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

/// Which events to receive. Empty lists mean "all"; lists are AND-ed; within `types`,
/// `containers` and `actions` entries are OR-ed, while every `labels` entry must match
/// (Docker's filter semantics).
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
    /// Events up to this time only: the stream ends there instead of following what comes.
    pub until: Option<SystemTime>,
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
