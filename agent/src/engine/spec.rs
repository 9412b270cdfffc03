//! What Gantry asks the engine to create: networks and volumes ([`NetworkSpec`],
//! [`VolumeSpec`]) and containers ([`ContainerSpec`] with its ports, mounts, healthcheck,
//! restart policy, limits and environment).
//!
//! Design: engine-level values, independent of the Compose model (deploy translates the model
//! into them); maps are `BTreeMap` and lists keep their order, so a spec is deterministic.
//! [`Env`]'s `Debug` prints names only: values can be secrets. `config` (a submodule): a
//! network's or volume's configuration as a flat map, to name what differs from Docker's.
//!
//! Limits: only what Gantry sets; anything else keeps Docker's default.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::image::ImageRef;

mod config;
pub use config::{NETWORK_CONFIG, VOLUME_CONFIG, network_differences, volume_differences};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The Docker name (`<project>_<key>` or the explicit `name:`).
    pub name: String,
    /// `bridge` when `None`.
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    /// `None`: Docker's default (IPv4 on).
    pub enable_ipv4: Option<bool>,
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
    /// The labels of the object as it is, so the caller can warn about a foreign one. For a
    /// network or volume that existed, the Docker engine puts under [`NETWORK_CONFIG`] /
    /// [`VOLUME_CONFIG`] the configuration Docker reports, to compare with the files.
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
    Bind {
        create_host_path: bool,
        /// `rprivate` (Docker's default), `private`, `rshared`, `shared`, `rslave`, `slave`.
        propagation: Option<String>,
        /// The SELinux relabel: `z` (shared between containers) or `Z` (this one only). Only
        /// Docker's bind syntax carries it: with `create_host_path` and no `recursive`.
        selinux: Option<String>,
        /// `None`: submounts are bound too, read-only with the mount (Docker's default).
        recursive: Option<BindRecursive>,
    },
    /// A named volume (`source` is its Docker name) or, with an empty source, an anonymous one.
    Volume {
        nocopy: bool,
        /// A path inside the volume to mount instead of its root (API 1.45 and later).
        subpath: Option<String>,
        /// Labels Docker gives the volume when this mount creates it (an anonymous one).
        labels: BTreeMap<String, String>,
    },
    /// A tmpfs (`source` is ignored).
    Tmpfs {
        size_bytes: Option<i64>,
        mode: Option<u32>,
    },
}

/// How a bind mount treats the mounts below its source (compose's `bind.recursive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindRecursive {
    /// Submounts are not bound at all.
    Disabled,
    /// Read-only, but submounts stay writable (API 1.44 and later).
    Writable,
    /// Read-only down to every submount, or the mount fails (API 1.44 and later).
    ReadOnly,
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
    pub link_local_ips: Vec<String>,
    /// On API 1.44 and later the endpoint's; before, the container's, which only the first
    /// network can carry.
    pub mac_address: Option<String>,
    pub driver_opts: BTreeMap<String, String>,
    /// Which network gives the default route (API 1.48 and later).
    pub gw_priority: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthcheckSpec {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, or `["NONE"]` to disable the image's check.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    /// How often to check during `start_period` (API 1.44 and later).
    pub start_interval: Option<Duration>,
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
    /// `None`: the daemon's default driver, which gets `options` (compose sends them so).
    pub driver: Option<String>,
    pub options: BTreeMap<String, String>,
}

/// A container's cgroup limits and OOM settings (`deploy.resources` and the legacy keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPUs × 10⁹ (`cpus: 0.5` → 500_000_000).
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    /// CPUs the container may run on (`0-3`, `0,1`).
    pub cpuset_cpus: Option<String>,
    pub memory_bytes: Option<i64>,
    pub memory_reservation_bytes: Option<i64>,
    /// Memory plus swap; -1: unlimited swap.
    pub memory_swap_bytes: Option<i64>,
    pub memory_swappiness: Option<i64>,
    pub pids_limit: Option<i64>,
    pub oom_score_adj: Option<i64>,
    pub oom_kill_disable: bool,
    /// Devices a driver hands out (GPUs, CDI devices), in the order compose sends them.
    pub device_requests: Vec<DeviceRequest>,
    /// Relative block I/O weight, 10 to 1000.
    pub blkio_weight: Option<u16>,
    /// Per device (path): relative block I/O weight.
    pub blkio_weight_device: Vec<(String, u16)>,
    /// Per device (path): bytes or operations per second.
    pub blkio_device_read_bps: Vec<(String, u64)>,
    pub blkio_device_read_iops: Vec<(String, u64)>,
    pub blkio_device_write_bps: Vec<(String, u64)>,
    pub blkio_device_write_iops: Vec<(String, u64)>,
    /// Device cgroup rules (`c 189:* rmw`).
    pub device_cgroup_rules: Vec<String>,
}

/// A command run in a running container and waited for (a lifecycle hook).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub user: Option<String>,
    pub privileged: bool,
    pub working_dir: Option<String>,
    /// Added to the container's environment for this command.
    pub env: Env,
}

/// How an exec ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i64,
    /// The last lines it wrote to stderr, or to stdout when stderr stayed empty: at most
    /// [`EXEC_TAIL_LINES`] lines and [`EXEC_TAIL_BYTES`] bytes, for an error message.
    pub output: Vec<String>,
}

/// How many lines of an exec's output [`ExecOutcome::output`] keeps.
pub const EXEC_TAIL_LINES: usize = 10;
/// How many bytes of an exec's output [`ExecOutcome::output`] keeps.
pub const EXEC_TAIL_BYTES: usize = 2048;

/// A request for devices a driver hands out (Docker's `DeviceRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceRequest {
    /// Empty: chosen by `capabilities`.
    pub driver: String,
    /// How many devices; -1: all; 0 with `device_ids`.
    pub count: i64,
    pub device_ids: Vec<String>,
    /// Alternatives, each a set the driver must offer (`[[gpu]]`).
    pub capabilities: Vec<Vec<String>>,
    pub options: BTreeMap<String, String>,
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
    /// `host`: the host's UTS namespace (hostname).
    pub uts: Option<String>,
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
    /// The OCI runtime (`runc`, `nvidia`, ...); `None`: the daemon's default.
    pub runtime: Option<String>,
    /// `host`: out of the daemon's user-namespace remapping.
    pub userns_mode: Option<String>,
    /// The cgroup the container's cgroup is created under.
    pub cgroup_parent: Option<String>,
    /// Containers whose volumes this one mounts too (`NAME[:ro|rw]`).
    pub volumes_from: Vec<String>,
    /// The platform of the image to run (`linux/arm64`); `None`: the host's.
    pub platform: Option<String>,
    /// The cgroup namespace: `host` or `private`; `None`: the daemon's default.
    pub cgroupns_mode: Option<String>,
    /// Storage driver options (`size`), as Docker takes them.
    pub storage_opt: BTreeMap<String, String>,
}
