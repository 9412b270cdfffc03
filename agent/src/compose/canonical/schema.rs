//! The Compose schema as data: each mapping Gantry reads, its keys and their
//! [`Kind`](super::walk::Kind)s.
//!
//! Design: a table per mapping of the Compose Specification, walked by
//! [`super::walk::walk`]. Adding a key that differs from its neighbours only in type is one
//! line here; a key that needs more (a short syntax, a default, a cross-key rule) names a
//! small function in [`super::service`], [`super::refs`] or [`super::mounts`]. Keys of the
//! specification that Gantry refuses are listed as `Unsupported`, so their error says so
//! instead of "unknown key".
//!
//! Limits: the top level and `include:` are read by hand in [`super`] (they build Rust values,
//! not JSON); `build:` is kept loosely (Gantry never builds).

use super::mounts::{
    config_mounts, device_mounts, file_mode, port_target, ports, secret_mounts, tmpfs_mode,
    ulimits, volumes,
};
use super::refs::{depends_on, env_file, extends, label_file, service_networks};
use super::service::{
    blkio_weight, build, command, container_name, cpus, deploy_mode, develop_watch, device_count,
    environment, extra_hosts, gpus, health_test, hooks, ipam_pools, limit_devices, mem_swappiness,
    memswap_limit, oom_score_adj, placement, pull_policy, replicas, reserved_devices, restart,
    security_opt, throttle_devices, weight_devices,
};
use super::walk::{Kind::*, Schema};

/// A service.
pub(super) const SERVICE: Schema = &[
    ("attach", Bool),
    ("blkio_config", Map(BLKIO)),
    ("build", Special(build)),
    ("cap_add", StrList),
    ("cap_drop", StrList),
    ("cgroup", OneOf(&["host", "private"], "host, private")),
    ("cgroup_parent", Str),
    ("command", Special(command)),
    ("configs", Special(config_mounts)),
    ("container_name", Special(container_name)),
    ("cpu_period", Int),
    ("cpu_quota", Int),
    ("cpu_shares", Int),
    ("cpus", Special(cpus)),
    ("cpuset", Str),
    ("depends_on", Special(depends_on)),
    ("deploy", Map(DEPLOY)),
    ("develop", Map(DEVELOP)),
    ("device_cgroup_rules", StrList),
    ("devices", Special(device_mounts)),
    ("dns", StrOrList),
    ("dns_opt", StrOrList),
    ("dns_search", StrOrList),
    ("domainname", Str),
    ("entrypoint", Special(command)),
    ("env_file", Special(env_file)),
    ("environment", Special(environment)),
    ("expose", StrList),
    ("extends", Special(extends)),
    ("extra_hosts", Special(extra_hosts)),
    ("gpus", Special(gpus)),
    ("group_add", StrList),
    ("healthcheck", Map(HEALTHCHECK)),
    ("hostname", Str),
    ("image", Str),
    ("init", Bool),
    ("ipc", Str),
    ("label_file", Special(label_file)),
    ("labels", Labels),
    ("links", StrList),
    ("logging", Map(LOGGING)),
    ("mac_address", Str),
    ("mem_limit", Bytes),
    ("mem_reservation", Bytes),
    ("mem_swappiness", Special(mem_swappiness)),
    ("memswap_limit", Special(memswap_limit)),
    ("network_mode", Str),
    ("networks", Special(service_networks)),
    ("oom_kill_disable", TrueOnly),
    ("oom_score_adj", Special(oom_score_adj)),
    ("pid", Str),
    ("pids_limit", Int),
    ("platform", Str),
    ("ports", Special(ports)),
    ("post_start", Special(hooks)),
    ("pre_stop", Special(hooks)),
    ("privileged", Bool),
    ("profiles", StrList),
    ("pull_policy", Special(pull_policy)),
    ("read_only", Bool),
    ("restart", Special(restart)),
    ("runtime", Str),
    ("scale", Special(replicas)),
    ("secrets", Special(secret_mounts)),
    ("security_opt", Special(security_opt)),
    ("shm_size", Bytes),
    ("stdin_open", Bool),
    ("stop_grace_period", Duration),
    ("stop_signal", Str),
    ("storage_opt", StrMap),
    ("sysctls", Labels),
    ("tmpfs", StrOrList),
    ("tty", Bool),
    ("ulimits", Special(ulimits)),
    ("user", Str),
    ("userns_mode", Str),
    ("uts", Str),
    ("volumes", Special(volumes)),
    ("volumes_from", StrList),
    ("working_dir", Str),
    // The specification's service keys Gantry refuses.
    ("annotations", Unsupported),
    ("cpu_count", Unsupported),
    ("cpu_percent", Unsupported),
    ("cpu_rt_period", Unsupported),
    ("cpu_rt_runtime", Unsupported),
    ("credential_spec", Unsupported),
    ("external_links", Unsupported),
    ("isolation", Unsupported),
    ("lifecycle", Unsupported),
    ("models", Unsupported),
    ("provider", Unsupported),
    ("use_api_socket", Unsupported),
    ("volume_driver", Unsupported),
];

/// `develop`: what `docker compose watch` syncs into a running container during development.
/// Kept and printed as compose does; a deploy never watches.
const DEVELOP: Schema = &[("watch", Special(develop_watch))];

/// One `develop.watch` entry.
pub(super) const WATCH: Schema = &[
    ("path", Path),
    (
        "action",
        OneOf(
            &["rebuild", "sync", "restart", "sync+restart", "sync+exec"],
            "rebuild, sync, restart, sync+restart, sync+exec",
        ),
    ),
    ("target", Str),
    ("ignore", StrList),
    ("include", StrList),
    ("initial_sync", Bool),
    ("exec", Map(WATCH_EXEC)),
];

const WATCH_EXEC: Schema = &[
    ("command", Special(command)),
    ("user", Str),
    ("privileged", Bool),
    ("working_dir", Str),
    ("environment", Special(environment)),
];

/// A top-level network.
pub(super) const NETWORK: Schema = &[
    ("name", Str),
    ("driver", Str),
    ("driver_opts", StrMap),
    ("ipam", Map(IPAM)),
    ("external", External),
    ("internal", Bool),
    ("attachable", Bool),
    ("labels", Labels),
    ("enable_ipv6", Bool),
    ("enable_ipv4", Bool),
];

const IPAM: Schema = &[
    ("driver", Str),
    ("config", Special(ipam_pools)),
    ("options", StrMap),
];

/// One `ipam.config` pool.
pub(super) const IPAM_POOL: Schema = &[
    ("subnet", Str),
    ("ip_range", Str),
    ("gateway", Str),
    ("aux_addresses", StrMap),
];

/// A top-level volume.
pub(super) const VOLUME: Schema = &[
    ("name", Str),
    ("driver", Str),
    ("driver_opts", StrMap),
    ("external", External),
    ("labels", Labels),
];

/// A top-level secret or config.
pub(super) const FILE_OBJECT: Schema = &[
    ("name", Str),
    ("file", Path),
    ("environment", Str),
    ("content", Str),
    ("external", External),
    ("labels", Labels),
    ("driver", Unsupported),
    ("driver_opts", Unsupported),
    ("template_driver", Unsupported),
];

/// One long-form `include:` entry (read by hand: it builds an [`super::Include`]).
pub(super) const INCLUDE: Schema = &[
    ("path", StrOrList),
    ("project_directory", Path),
    ("env_file", StrOrList),
];

/// One long-form `env_file` entry.
pub(super) const ENV_FILE: Schema = &[("path", Path), ("required", Bool), ("format", Str)];

const HEALTHCHECK: Schema = &[
    ("test", Special(health_test)),
    ("interval", Duration),
    ("timeout", Duration),
    ("retries", UInt),
    ("start_period", Duration),
    ("start_interval", Duration),
    ("disable", Bool),
];

/// One long-form `depends_on` entry.
pub(super) const DEPENDS_ON: Schema = &[
    (
        "condition",
        OneOf(
            &[
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            ],
            "service_started, service_healthy, service_completed_successfully",
        ),
    ),
    ("restart", TrueOnly),
    ("required", Bool),
];

/// One long-form entry of a service's `networks`.
pub(super) const SERVICE_NETWORK: Schema = &[
    ("aliases", StrList),
    ("ipv4_address", Str),
    ("ipv6_address", Str),
    ("link_local_ips", StrList),
    ("mac_address", Str),
    ("driver_opts", StrMap),
    ("priority", Int),
    ("gw_priority", Int),
];

/// One long-form port.
pub(super) const PORT: Schema = &[
    ("name", Str),
    ("mode", OneOf(&["ingress", "host"], "ingress or host")),
    ("host_ip", Str),
    ("target", Special(port_target)),
    ("published", Str),
    ("protocol", Str),
    ("app_protocol", Str),
];

/// One long-form volume mount (`source` made absolute afterwards when the type is bind).
pub(super) const MOUNT: Schema = &[
    ("type", Str),
    ("source", Str),
    ("target", Str),
    ("read_only", TrueOnly),
    ("consistency", Str),
    ("bind", Map(BIND)),
    ("volume", Map(VOLUME_OPTIONS)),
    ("tmpfs", Map(TMPFS)),
];

const BIND: Schema = &[
    ("propagation", Str),
    ("create_host_path", TrueOnly),
    ("selinux", Str),
    (
        "recursive",
        OneOf(
            &["enabled", "disabled", "writable", "readonly"],
            "enabled, disabled, writable or readonly",
        ),
    ),
];

const VOLUME_OPTIONS: Schema = &[("nocopy", TrueOnly), ("subpath", Str), ("labels", Labels)];

const TMPFS: Schema = &[("size", Bytes), ("mode", Special(tmpfs_mode))];

/// One long-form secret or config mount.
pub(super) const FILE_MOUNT: Schema = &[
    ("source", Str),
    ("target", Str),
    ("uid", Str),
    ("gid", Str),
    ("mode", Special(file_mode)),
];

/// One long-form device.
pub(super) const DEVICE: Schema = &[("source", Str), ("target", Str), ("permissions", Str)];

/// One long-form ulimit.
pub(super) const ULIMIT: Schema = &[("soft", Int), ("hard", Int)];

/// `extends` in long form.
pub(super) const EXTENDS: Schema = &[("service", Str), ("file", Path)];

const LOGGING: Schema = &[("driver", Str), ("options", StrMap)];

const DEPLOY: Schema = &[
    ("mode", Special(deploy_mode)),
    ("replicas", Special(replicas)),
    ("labels", Labels),
    ("update_config", Map(UPDATE_CONFIG)),
    ("rollback_config", Map(UPDATE_CONFIG)),
    ("resources", Map(RESOURCES)),
    ("restart_policy", Map(RESTART_POLICY)),
    ("placement", Special(placement)),
    ("endpoint_mode", Str),
];

const UPDATE_CONFIG: Schema = &[
    ("parallelism", UInt),
    ("delay", Duration),
    (
        "failure_action",
        OneOf(
            &["continue", "rollback", "pause"],
            "continue, rollback, pause",
        ),
    ),
    ("monitor", Duration),
    ("max_failure_ratio", Float),
    (
        "order",
        OneOf(&["start-first", "stop-first"], "start-first, stop-first"),
    ),
];

const RESOURCES: Schema = &[("limits", Map(LIMITS)), ("reservations", Map(RESERVATIONS))];

const LIMITS: Schema = &[
    ("cpus", Special(cpus)),
    ("memory", Bytes),
    ("pids", Int),
    ("devices", Special(limit_devices)),
    ("generic_resources", Unsupported),
];

const RESERVATIONS: Schema = &[
    ("cpus", Special(cpus)),
    ("memory", Bytes),
    ("pids", Int),
    ("devices", Special(reserved_devices)),
    ("generic_resources", Unsupported),
];

/// `blkio_config`.
const BLKIO: Schema = &[
    ("weight", Special(blkio_weight)),
    ("weight_device", Special(weight_devices)),
    ("device_read_bps", Special(throttle_devices)),
    ("device_read_iops", Special(throttle_devices)),
    ("device_write_bps", Special(throttle_devices)),
    ("device_write_iops", Special(throttle_devices)),
];

/// A `post_start` / `pre_stop` hook.
pub(super) const HOOK: Schema = &[
    ("command", Special(command)),
    ("user", Str),
    ("privileged", Bool),
    ("working_dir", Str),
    ("environment", Special(environment)),
];

/// One device request: a `gpus:` entry or one of `deploy.resources.reservations.devices`.
pub(super) const DEVICE_REQUEST: Schema = &[
    ("capabilities", StrList),
    ("driver", Str),
    ("count", Special(device_count)),
    ("device_ids", StrList),
    ("options", StrMap),
];

const RESTART_POLICY: Schema = &[
    ("condition", Str),
    ("delay", Duration),
    ("max_attempts", UInt),
    ("window", Duration),
];
