//! The resolved, validated Compose model: strong types the rest of Gantry works with.
//!
//! What: [`Project`] and [`Service`] after interpolation, merging, `extends`, profiles and
//! normalisation. Every value is already in its canonical form (ports and volumes in long syntax,
//! environment as a map, durations as [`Duration`], sizes in bytes, paths absolute).
//!
//! Design: the types serialise (serde) to exactly the shape `docker compose config --format json`
//! prints for the keys Gantry supports, so [`Project::to_compose_json`](super::Project) is mostly
//! `serde_json::to_value`, and a release can store the model and read it back (`Deserialize`).
//! Field names are stable: other modules (deploy, engine, ledger) are written against them.
//! This file holds the project and the service; [`parts`] the pieces of a service (ports,
//! mounts, healthcheck, deploy...), [`resources`] the top-level networks, volumes, secrets and
//! configs, [`values`] the value types (restart policy, durations, sizes). All are re-exported
//! here.
//!
//! Limits: `build` is kept loosely typed (Gantry never builds); `x-gantry` is kept raw next to
//! its typed form ([`Service::gantry`], see [`super::xgantry`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod parts;
mod resources;
#[cfg(test)]
mod tests;
mod values;

use parts::cpus_number;
pub use parts::*;
pub use resources::*;
pub use values::{Duration, Restart, parse_bytes};
use values::{opt_bytes_string, opt_signed_string};

/// A resolved Compose project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Normalised project name (`[a-z0-9_-]`, starts with a letter or digit).
    pub name: String,
    /// The project directory: relative paths were resolved against it.
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The compose files, absolute, in merge order.
    #[serde(skip)]
    pub config_files: Vec<PathBuf>,
    /// Active services (profiles applied), by name.
    pub services: BTreeMap<String, Service>,
    /// Networks used by the active services, by key (`default` included when used).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Named volumes used by the active services, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// File/environment/content based secrets used by the active services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Configs used by the active services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-*` keys, kept as compose does.
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
    /// Services present in the files but disabled by `profiles` (not deployed).
    #[serde(skip)]
    pub disabled_services: BTreeMap<String, Service>,
    /// Non-fatal findings (unset variables, obsolete `version`...), in the order found.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// One resolved service. Fields follow the Compose Specification names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    /// The service's key in `services:` (not serialised: it is the map key).
    #[serde(skip)]
    pub name: String,
    /// Whether `docker compose up` (in the foreground) follows the service's logs. Gantry
    /// never attaches: kept for printing, left out of the hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// The cgroup namespace: `host` or `private`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `None`: the image's CMD. Always printed (as `null`) like compose does.
    pub command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileMount>,
    /// The legacy resource keys (`cpus`, `mem_limit`, ... before `deploy.resources`): the same
    /// container settings; a value also set under `deploy.resources` must be equal there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "cpus_number"
    )]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependsOn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// `docker compose watch`'s rules, as compose prints them. A deploy never watches: kept
    /// for printing, left out of the hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub develop: Option<serde_json::Value>,
    /// Device cgroup rules (`c 189:* rmw`): devices the container may use once they appear.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// `None`: the image's ENTRYPOINT. Always printed (as `null`) like compose does.
    pub entrypoint: Option<Vec<String>>,
    /// The container's environment: `environment:` merged over the `env_file` contents.
    /// `None` value: `KEY` listed without a value and not set in the environment.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// The env files that fed `environment` (absolute). Not printed (compose drops them once
    /// read); kept so the agent can watch them.
    #[serde(skip)]
    pub env_file: Vec<EnvFile>,
    /// The keys of `environment` whose value came from an env file (not set by
    /// `environment:` itself). Not printed; the ledger records these by file, not by value.
    #[serde(skip)]
    pub env_from_files: BTreeSet<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// `host=ip` entries, sorted like compose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// GPUs the container gets (`gpus: all` or device requests); sent with the capability
    /// `gpu` added, as compose does.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes_string")]
    pub mem_limit: Option<u64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes_string")]
    pub mem_reservation: Option<u64>,
    /// 0 to 100 (a string in compose's output).
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes_string")]
    pub mem_swappiness: Option<u64>,
    /// Bytes of memory plus swap; -1: unlimited swap.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_signed_string")]
    pub memswap_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Networks the service joins; `None`: joined with no options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// -1: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Commands run in each new container once it started (before its readiness gate); one
    /// failing fails the start, as in compose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    /// Commands run in a container before Gantry stops it (bounded by its stop grace period).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
    #[serde(skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<super::PullPolicy>,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart: Option<Restart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// compose's own replica count: `deploy.replicas` when that is unset (the loader refuses
    /// the two when they differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_bytes_string")]
    pub shm_size: Option<u64>,
    #[serde(skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Storage driver options (`size: 20G`), as Docker takes them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// The UTS namespace: `host` shares the host's hostname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-gantry` as written (after interpolation), for `gantry config` and the release record.
    /// Not in compose's JSON.
    #[serde(skip)]
    pub x_gantry: Option<serde_json::Value>,
    /// `x-gantry`, validated when the files load ([`super::xgantry`]): what deploy reads.
    #[serde(skip)]
    pub gantry: super::xgantry::XGantry,
    /// Other `x-*` keys of the service. Not in compose's JSON output (it drops them too).
    #[serde(skip)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
