//! Our specs as Docker request bodies: network create, endpoint settings, container create
//! (host config, mounts, ports, healthcheck, restart policy, limits, logging).
//!
//! Design: pure translation of [`NetworkSpec`] / [`ContainerSpec`] into bollard's types; empty
//! maps and lists are left out so Docker applies its defaults, as compose does.
//!
//! Limits: a bind mount's SELinux relabel exists only in Docker's bind syntax (`Binds`), so it
//! cannot go with what needs the mount API (no `create_host_path`, `recursive`): refused.

use bollard::models::{MountBindOptions, MountBindOptionsPropagationEnum};

use super::*;
use crate::engine::{BindRecursive, MountSpec};

/// The network create request for a Docker speaking `api`. `enable_ipv4: false` is refused
/// before API 1.48 (Docker 28.0), where Docker drops the field and gives the network IPv4
/// anyway; `true` is every Docker's default and is sent only where it is understood.
pub(super) fn network_request(
    spec: &NetworkSpec,
    api: (usize, usize),
) -> std::result::Result<NetworkCreateRequest, String> {
    if spec.enable_ipv4 == Some(false) && api < (1, 48) {
        return Err(format!(
            "enable_ipv4: false on network {} needs Docker API 1.48 (Docker 28.0) or later; \
             this Docker speaks {}.{} and would give it IPv4 anyway: remove it or upgrade Docker",
            spec.name, api.0, api.1
        ));
    }
    Ok(NetworkCreateRequest {
        name: spec.name.clone(),
        driver: spec.driver.clone(),
        internal: Some(spec.internal),
        attachable: Some(spec.attachable),
        enable_ipv4: spec.enable_ipv4.filter(|_| api >= (1, 48)),
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
    })
}

/// A network as Docker reports it, in our terms: what [`NetworkSpec::config`] compares with
/// what the files ask for (labels left out).
pub(super) fn observed_network(n: &bollard::models::Network) -> NetworkSpec {
    let map = |m: &Option<std::collections::HashMap<String, String>>| {
        m.clone().unwrap_or_default().into_iter().collect()
    };
    NetworkSpec {
        name: n.name.clone().unwrap_or_default(),
        driver: n.driver.clone(),
        options: map(&n.options),
        internal: n.internal.unwrap_or(false),
        attachable: n.attachable.unwrap_or(false),
        enable_ipv4: n.enable_ipv4,
        enable_ipv6: n.enable_ipv6.unwrap_or(false),
        labels: Default::default(),
        ipam: n.ipam.as_ref().map(|ipam| crate::engine::IpamSpec {
            driver: ipam.driver.clone(),
            config: ipam
                .config
                .iter()
                .flatten()
                .map(|pool| crate::engine::IpamPool {
                    subnet: pool.subnet.clone(),
                    ip_range: pool.ip_range.clone(),
                    gateway: pool.gateway.clone(),
                    aux_addresses: map(&pool.auxiliary_addresses),
                })
                .collect(),
            options: map(&ipam.options),
        }),
    }
}

/// The endpoint settings of one attachment for a Docker speaking `api`. What that API cannot
/// carry is refused rather than dropped: Docker before 1.44 takes a MAC address on the
/// container only (which bollard's create body no longer has), and before 1.48 no gateway
/// priority; both would be ignored without a word.
pub(super) fn endpoint(
    attachment: &NetworkAttachment,
    api: (usize, usize),
) -> std::result::Result<EndpointSettings, String> {
    let needs = |key: &str, min: (usize, usize), docker: &str| {
        format!(
            "{key} on network {} needs Docker API {}.{} (Docker {docker}) or later; this \
             Docker speaks {}.{}: remove it or upgrade Docker",
            attachment.network, min.0, min.1, api.0, api.1
        )
    };
    if attachment.mac_address.is_some() && api < (1, 44) {
        return Err(needs("mac_address", (1, 44), "25.0"));
    }
    if attachment.gw_priority.is_some_and(|p| p != 0) && api < (1, 48) {
        return Err(needs("gw_priority", (1, 48), "28.0"));
    }
    let ipam = (attachment.ipv4_address.is_some()
        || attachment.ipv6_address.is_some()
        || !attachment.link_local_ips.is_empty())
    .then(|| EndpointIpamConfig {
        ipv4_address: attachment.ipv4_address.clone(),
        ipv6_address: attachment.ipv6_address.clone(),
        link_local_ips: non_empty(&attachment.link_local_ips),
    });
    Ok(EndpointSettings {
        aliases: non_empty(&attachment.aliases),
        ipam_config: ipam,
        mac_address: attachment.mac_address.clone(),
        driver_opts: non_empty_map(&attachment.driver_opts),
        gw_priority: attachment.gw_priority.filter(|p| *p != 0),
        ..Default::default()
    })
}

pub(super) fn create_body(
    spec: &ContainerSpec,
    api: (usize, usize),
) -> Result<ContainerCreateBody> {
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
    // The other networks are connected after the create: refused now if they cannot be,
    // before a container exists.
    for other in spec.networks.iter().skip(1) {
        endpoint(other, api).map_err(invalid)?;
    }
    let networking_config = match spec.networks.first() {
        Some(first) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                first.network.clone(),
                endpoint(first, api).map_err(invalid)?,
            )])),
        }),
        None => None,
    };

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

    let (binds, mounts) = mount_requests(&spec.mounts, api).map_err(invalid)?;
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

    // 0 is Docker's default; before API 1.44 Docker ignores the key without a word.
    let start_interval = spec
        .healthcheck
        .as_ref()
        .and_then(|h| h.start_interval)
        .filter(|d| !d.is_zero());
    if start_interval.is_some() && api < (1, 44) {
        return Err(invalid(format!(
            "healthcheck.start_interval needs Docker API 1.44 (Docker 25.0) or later; this \
             Docker speaks {}.{}: remove it or upgrade Docker",
            api.0, api.1
        )));
    }
    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(nanos),
        start_interval: start_interval.map(nanos),
    });

    // `systempaths=unconfined` is the Docker CLI's (and compose's) own option, not Docker's:
    // it means no masked and no read-only paths, sent as two empty lists.
    let (unconfined, security_opt): (Vec<String>, Vec<String>) = spec
        .security_opt
        .iter()
        .cloned()
        .partition(|o| o == "systempaths=unconfined");
    let unconfined_paths = (!unconfined.is_empty()).then(Vec::new);
    let host_config = HostConfig {
        binds: non_empty(&binds),
        mounts: non_empty(&mounts),
        tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        network_mode,
        pid_mode: spec.pid.clone(),
        ipc_mode: spec.ipc.clone(),
        uts_mode: spec.uts.clone(),
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
        security_opt: non_empty(&security_opt),
        masked_paths: unconfined_paths.clone(),
        readonly_paths: unconfined_paths,
        group_add: non_empty(&spec.group_add),
        init: spec.init,
        runtime: spec.runtime.clone(),
        cgroupns_mode: spec.cgroupns_mode.as_deref().map(|m| match m {
            "host" => HostConfigCgroupnsModeEnum::HOST,
            _ => HostConfigCgroupnsModeEnum::PRIVATE,
        }),
        storage_opt: non_empty_map(&spec.storage_opt),
        blkio_weight: spec.resources.blkio_weight,
        blkio_weight_device: non_empty(
            &spec
                .resources
                .blkio_weight_device
                .iter()
                .map(|(path, weight)| ResourcesBlkioWeightDevice {
                    path: Some(path.clone()),
                    weight: Some(usize::from(*weight)),
                })
                .collect::<Vec<_>>(),
        ),
        blkio_device_read_bps: throttles(&spec.resources.blkio_device_read_bps),
        blkio_device_read_iops: throttles(&spec.resources.blkio_device_read_iops),
        blkio_device_write_bps: throttles(&spec.resources.blkio_device_write_bps),
        blkio_device_write_iops: throttles(&spec.resources.blkio_device_write_iops),
        device_cgroup_rules: non_empty(&spec.resources.device_cgroup_rules),
        userns_mode: spec.userns_mode.clone(),
        cgroup_parent: spec.cgroup_parent.clone(),
        volumes_from: non_empty(&spec.volumes_from),
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
            typ: l.driver.clone(),
            config: non_empty_map(&l.options),
        }),
        nano_cpus: spec.resources.nano_cpus,
        cpu_shares: spec.resources.cpu_shares,
        cpu_period: spec.resources.cpu_period,
        cpu_quota: spec.resources.cpu_quota,
        cpuset_cpus: spec.resources.cpuset_cpus.clone(),
        memory: spec.resources.memory_bytes,
        memory_reservation: spec.resources.memory_reservation_bytes,
        memory_swap: spec.resources.memory_swap_bytes,
        memory_swappiness: spec.resources.memory_swappiness,
        pids_limit: spec.resources.pids_limit,
        oom_score_adj: spec.resources.oom_score_adj,
        oom_kill_disable: spec.resources.oom_kill_disable.then_some(true),
        device_requests: non_empty(
            &spec
                .resources
                .device_requests
                .iter()
                .map(|r| DeviceRequest {
                    driver: (!r.driver.is_empty()).then(|| r.driver.clone()),
                    count: Some(r.count),
                    device_ids: non_empty(&r.device_ids),
                    capabilities: Some(r.capabilities.clone()),
                    options: non_empty_map(&r.options),
                })
                .collect::<Vec<_>>(),
        ),
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

/// Per-device block I/O limits as Docker takes them (`None` when there are none).
fn throttles(list: &[(String, u64)]) -> Option<Vec<ThrottleDevice>> {
    non_empty(
        &list
            .iter()
            .map(|(path, rate)| ThrottleDevice {
                path: Some(path.clone()),
                rate: Some(i64::try_from(*rate).unwrap_or(i64::MAX)),
            })
            .collect::<Vec<_>>(),
    )
}

/// The mounts as Docker takes them: binds that may create their source go the `Binds` way
/// (like `docker run -v`, which also carries the SELinux relabel and the propagation),
/// everything else through `Mounts`. What this Docker's API cannot carry is refused.
fn mount_requests(
    specs: &[MountSpec],
    api: (usize, usize),
) -> std::result::Result<(Vec<String>, Vec<Mount>), String> {
    let needs = |what: String, min: (usize, usize), docker: &str| {
        format!(
            "{what} needs Docker API {}.{} (Docker {docker}) or later; this Docker speaks \
             {}.{}: remove it or upgrade Docker",
            min.0, min.1, api.0, api.1
        )
    };
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for m in specs {
        match &m.kind {
            MountKind::Bind {
                create_host_path: true,
                propagation,
                selinux,
                recursive: None,
            } => {
                let options: Vec<&str> = [
                    m.read_only.then_some("ro"),
                    selinux.as_deref(),
                    propagation.as_deref(),
                ]
                .into_iter()
                .flatten()
                .collect();
                binds.push(if options.is_empty() {
                    format!("{}:{}", m.source, m.target)
                } else {
                    format!("{}:{}:{}", m.source, m.target, options.join(","))
                });
            }
            MountKind::Bind {
                create_host_path,
                propagation,
                selinux,
                recursive,
            } => {
                if let Some(label) = selinux {
                    return Err(format!(
                        "bind mount {}: the SELinux relabel {label:?} goes only with \
                         create_host_path and no recursive",
                        m.target
                    ));
                }
                let propagation = propagation
                    .as_deref()
                    .map(|p| {
                        p.parse::<MountBindOptionsPropagationEnum>()
                            .ok()
                            .filter(|e| *e != MountBindOptionsPropagationEnum::EMPTY)
                            .ok_or_else(|| {
                                format!("bind mount {}: unknown propagation {p:?}", m.target)
                            })
                    })
                    .transpose()?;
                if matches!(
                    recursive,
                    Some(BindRecursive::Writable | BindRecursive::ReadOnly)
                ) && api < (1, 44)
                {
                    return Err(needs(
                        format!("bind.recursive on {}", m.target),
                        (1, 44),
                        "25.0",
                    ));
                }
                let options = MountBindOptions {
                    propagation,
                    non_recursive: (*recursive == Some(BindRecursive::Disabled)).then_some(true),
                    create_mountpoint: create_host_path.then_some(true),
                    read_only_non_recursive: (*recursive == Some(BindRecursive::Writable))
                        .then_some(true),
                    read_only_force_recursive: (*recursive == Some(BindRecursive::ReadOnly))
                        .then_some(true),
                };
                mounts.push(Mount {
                    typ: Some(MountType::BIND),
                    source: Some(m.source.clone()),
                    target: Some(m.target.clone()),
                    read_only: Some(m.read_only),
                    bind_options: (options != MountBindOptions::default()).then_some(options),
                    ..Default::default()
                });
            }
            MountKind::Volume {
                nocopy,
                subpath,
                labels,
            } => {
                if subpath.is_some() && api < (1, 45) {
                    return Err(needs(
                        format!("volume.subpath on {}", m.target),
                        (1, 45),
                        "26.0",
                    ));
                }
                let options = MountVolumeOptions {
                    no_copy: nocopy.then_some(true),
                    labels: non_empty_map(labels),
                    subpath: subpath.clone(),
                    ..Default::default()
                };
                mounts.push(Mount {
                    typ: Some(MountType::VOLUME),
                    source: (!m.source.is_empty()).then(|| m.source.clone()),
                    target: Some(m.target.clone()),
                    read_only: Some(m.read_only),
                    volume_options: (options != MountVolumeOptions::default()).then_some(options),
                    ..Default::default()
                });
            }
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
    Ok((binds, mounts))
}
