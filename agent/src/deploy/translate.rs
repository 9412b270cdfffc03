//! From the Compose model to engine specs: what Docker Compose would create for a service.
//!
//! Names and labels follow Compose (`<project>-<service>-<n>`, `<project>_default`, the
//! `com.docker.compose.*` labels), plus Gantry's own hash label. Compose's `config-hash` label
//! carries Gantry's hash too, so `docker compose ls` lists the stack; a manual
//! `docker compose up` recreates each container once (its hash differs), see docs/compose.md.

use std::time::Duration;

use crate::compose::{self, Project, Restart, Service};
use crate::engine::{
    self, ContainerSpec, DeviceSpec, Env, HealthcheckSpec, ImageRef, LoggingSpec,
    NetworkAttachment, NetworkSpec, Protocol, PublishedPort, RestartPolicy, Ulimit, VolumeSpec,
    labels,
};

use super::DeployError;

/// The Docker name of the network a service's key refers to.
pub fn network_name(project: &Project, key: &str) -> String {
    project.networks.get(key).map_or_else(
        || labels::scoped_name(&project.name, key),
        |n| {
            if n.name.is_empty() {
                labels::scoped_name(&project.name, key)
            } else {
                n.name.clone()
            }
        },
    )
}

/// The Docker name of a named volume's key.
/// Docker's bridge driver option that sets where a network's containers' ports published
/// without an address are bound (a Compose file sets it to keep a whole stack on loopback).
const HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";

/// Gives each port published without an address the address Docker would bind it on: the
/// [`HOST_BINDING`] option of the service's first network (Compose's attach order: priority,
/// then name), when it names one other than every address. Docker publishes such a port the
/// same either way; the edge switch then listens where Docker would have, never on every
/// address. (`dockerd --ip` applies to Docker's default `bridge` network only, never to a
/// stack's own.)
pub fn bind_default_addresses(project: &mut Project) {
    let defaults: std::collections::BTreeMap<&String, &String> = project
        .networks
        .iter()
        .filter_map(|(k, n)| Some((k, n.driver_opts.get(HOST_BINDING)?)))
        .filter(|(_, ip)| !matches!(ip.as_str(), "" | "0.0.0.0"))
        .collect();
    if defaults.is_empty() {
        return;
    }
    for svc in project.services.values_mut() {
        let first = svc.networks.iter().min_by_key(|(k, v)| {
            (
                std::cmp::Reverse(v.as_ref().and_then(|n| n.priority).unwrap_or(0)),
                (*k).clone(),
            )
        });
        let Some(ip) = first.and_then(|(k, _)| defaults.get(k)) else {
            continue;
        };
        for p in &mut svc.ports {
            if p.host_ip.as_deref().is_none_or(str::is_empty) {
                p.host_ip = Some((*ip).clone());
            }
        }
    }
}

pub fn volume_name(project: &Project, key: &str) -> String {
    project.volumes.get(key).map_or_else(
        || labels::scoped_name(&project.name, key),
        |v| {
            if v.name.is_empty() {
                labels::scoped_name(&project.name, key)
            } else {
                v.name.clone()
            }
        },
    )
}

/// Networks to create (external ones are only checked to exist, by the caller).
pub fn network_specs(project: &Project) -> Vec<(String, NetworkSpec, bool)> {
    project
        .networks
        .iter()
        .map(|(key, n)| {
            let mut labels = n.labels.clone();
            labels.extend(labels::network_labels(&project.name, key));
            let ipam =
                (n.ipam.driver.is_some() || !n.ipam.config.is_empty()).then(|| engine::IpamSpec {
                    driver: n.ipam.driver.clone(),
                    config: n
                        .ipam
                        .config
                        .iter()
                        .map(|p| engine::IpamPool {
                            subnet: p.subnet.clone(),
                            ip_range: p.ip_range.clone(),
                            gateway: p.gateway.clone(),
                            aux_addresses: p.aux_addresses.clone(),
                        })
                        .collect(),
                    options: n.ipam.options.clone(),
                });
            let mut spec = NetworkSpec {
                name: network_name(project, key),
                driver: n.driver.clone(),
                options: n.driver_opts.clone(),
                internal: n.internal,
                attachable: n.attachable,
                enable_ipv4: n.enable_ipv4,
                enable_ipv6: n.enable_ipv6.unwrap_or(false),
                labels,
                ipam,
            };
            // What it was created with, to say what differs on a later deploy.
            spec.labels
                .insert(engine::NETWORK_CONFIG.into(), spec.config_label());
            (key.clone(), spec, n.external)
        })
        .collect()
}

/// Named volumes to create (external ones are only checked to exist, by the caller).
pub fn volume_specs(project: &Project) -> Vec<(String, VolumeSpec, bool)> {
    project
        .volumes
        .iter()
        .map(|(key, v)| {
            let mut labels = v.labels.clone();
            labels.extend(labels::volume_labels(&project.name, key));
            let mut spec = VolumeSpec {
                name: volume_name(project, key),
                driver: v.driver.clone(),
                options: v.driver_opts.clone(),
                labels,
            };
            spec.labels
                .insert(engine::VOLUME_CONFIG.into(), spec.config_label());
            (key.clone(), spec, v.external)
        })
        .collect()
}

/// The name replica `number` of a service gets.
pub fn container_name(project: &Project, service: &Service, number: u32) -> String {
    match &service.container_name {
        Some(name) => name.clone(),
        None => labels::container_name(&project.name, &service.name, number),
    }
}

/// What a container of `service` should look like.
///
/// `image` is what to create it from (a pinned image id, so a tag moving under us changes
/// nothing); `number` is the replica number, `None` for a one-off (job) container.
pub fn container_spec(
    project: &Project,
    service: &Service,
    image: &str,
    number: Option<u32>,
    hash: &str,
) -> Result<ContainerSpec, DeployError> {
    let invalid = |reason: String| DeployError::Unsupported {
        service: service.name.clone(),
        reason,
    };
    // `validate_deployable` refused services without an image; `image` may be a pinned id.
    let reference = service.image.clone().unwrap_or_else(|| image.to_owned());

    let mut labels_map = service.labels.clone();
    labels_map.extend(labels::container_labels(
        &project.name,
        &service.name,
        number,
    ));
    labels_map.insert(labels::GANTRY_HASH.into(), hash.into());
    labels_map.insert(labels::CONFIG_HASH.into(), hash.into());
    labels_map.insert(labels::IMAGE.into(), reference.clone());
    labels_map.insert(labels::VERSION.into(), "gantry".into());
    labels_map.insert(
        labels::WORKING_DIR.into(),
        project.working_dir.display().to_string(),
    );
    labels_map.insert(
        labels::CONFIG_FILES.into(),
        project
            .config_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    if !service.depends_on.is_empty() {
        let deps: Vec<String> = service
            .depends_on
            .iter()
            .map(|(name, d)| {
                let cond = serde_json::to_value(d.condition)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("{name}:{cond}:{}", d.restart)
            })
            .collect();
        labels_map.insert(labels::DEPENDS_ON.into(), deps.join(","));
    }

    let mut env = Env::default();
    for (k, v) in &service.environment {
        if let Some(v) = v {
            env.push(k.clone(), v.clone());
        }
    }

    let mut ports = Vec::new();
    for p in &service.ports {
        let protocol = match p.protocol.as_str() {
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        let host_port = match p.published.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<u16>().map_err(|_| {
                invalid(format!(
                    "ports: published port range {s:?} is not supported yet; list each port"
                ))
            })?),
        };
        ports.push(PublishedPort {
            target: p.target,
            protocol,
            host_ip: p.host_ip.clone().filter(|ip| !ip.is_empty()),
            host_port,
        });
    }
    let expose = exposed(service).map_err(invalid)?;

    let mounts = mounts::mounts(project, service).map_err(invalid)?;

    // The container another service's key refers to (`service:X`, `volumes_from: X`): its
    // first replica's, as compose picks it.
    let first_container = |other: &str, key: &str| {
        project
            .services
            .get(other)
            .map(|other_svc| container_name(project, other_svc, 1))
            .ok_or_else(|| invalid(format!("{key} refers to unknown service {other:?}")))
    };
    // `service:X` as Docker takes it, `container:<X's first container>` (Docker refuses
    // `service:` in any of the three).
    let namespace = |key: &str, mode: Option<&String>| match mode {
        Some(mode) if mode.starts_with("service:") => Ok(Some(format!(
            "container:{}",
            first_container(&mode["service:".len()..], key)?
        ))),
        other => Ok::<_, DeployError>(other.cloned()),
    };
    let network_mode = namespace("network_mode", service.network_mode.as_ref())?;
    // In another container's network namespace, Docker refuses what belongs to a network
    // namespace of its own ("conflicting options"), when the container is created.
    if let Some(mode) = network_mode
        .as_deref()
        .filter(|m| m.starts_with("container:"))
    {
        let own = [
            ("ports", !service.ports.is_empty()),
            ("expose", !service.expose.is_empty()),
            ("hostname", service.hostname.is_some()),
            ("dns", !service.dns.is_empty()),
            ("extra_hosts", !service.extra_hosts.is_empty()),
        ];
        if let Some((key, _)) = own.iter().find(|(_, set)| *set) {
            return Err(invalid(format!(
                "{key} with network_mode {:?}: Docker refuses it in another container's \
                 network namespace ({mode}); set it on the service that owns the namespace",
                service.network_mode.as_deref().unwrap_or_default()
            )));
        }
    }
    let pid = namespace("pid", service.pid.as_ref())?;
    let ipc = namespace("ipc", service.ipc.as_ref())?;
    // `SERVICE[:ro|rw]` names the service's first container; `container:NAME[:ro|rw]` any.
    let volumes_from = service
        .volumes_from
        .iter()
        .map(|entry| match entry.strip_prefix("container:") {
            Some(other) => Ok(other.to_owned()),
            None => {
                let (other, mode) = match entry.split_once(':') {
                    Some((other, mode)) => (other, Some(mode)),
                    None => (entry.as_str(), None),
                };
                let name = first_container(other, "volumes_from")?;
                Ok(match mode {
                    Some(mode) => format!("{name}:{mode}"),
                    None => name,
                })
            }
        })
        .collect::<Result<Vec<_>, DeployError>>()?;
    let mut networks = Vec::new();
    if network_mode.is_none() {
        let mut attached: Vec<(&String, Option<&compose::ServiceNetwork>)> = service
            .networks
            .iter()
            .map(|(k, v)| (k, v.as_ref()))
            .collect();
        // Compose attaches by priority (higher first), then by name.
        attached.sort_by_key(|(k, v)| {
            (
                std::cmp::Reverse(v.and_then(|n| n.priority).unwrap_or(0)),
                (*k).clone(),
            )
        });
        for (key, opts) in attached {
            let mut aliases = vec![service.name.clone()];
            if let Some(o) = opts {
                aliases.extend(o.aliases.iter().cloned());
            }
            aliases.dedup();
            let o = opts.cloned().unwrap_or_default();
            networks.push(NetworkAttachment {
                network: network_name(project, key),
                aliases,
                ipv4_address: o.ipv4_address,
                ipv6_address: o.ipv6_address,
                link_local_ips: o.link_local_ips,
                mac_address: o.mac_address,
                driver_opts: o.driver_opts,
                gw_priority: o.gw_priority,
            });
        }
    }
    // The service's `mac_address` is its first network's, as compose places it.
    if let Some(mac) = &service.mac_address {
        match networks.first_mut() {
            Some(first) if first.mac_address.as_ref().is_some_and(|m| m != mac) => {
                return Err(invalid(format!(
                    "mac_address {mac:?} differs from networks.{}.mac_address: give one of them, \
                     or the same address in both",
                    service
                        .networks
                        .keys()
                        .find(|k| network_name(project, k) == first.network)
                        .map_or(first.network.as_str(), String::as_str)
                )));
            }
            Some(first) => first.mac_address = Some(mac.clone()),
            None => {
                return Err(invalid(format!(
                    "mac_address {mac:?} with network_mode {:?}: Gantry gives a MAC address to \
                     a network of the stack; attach the service with `networks:` instead",
                    service.network_mode.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    for n in &networks {
        if let Some(mac) = n.mac_address.as_deref().filter(|m| !is_mac(m)) {
            return Err(invalid(format!(
                "mac_address {mac:?} (network {}) is not a MAC address: six pairs of hex digits \
                 separated by colons, like 02:42:ac:11:00:02",
                n.network
            )));
        }
    }

    let healthcheck = service.healthcheck.as_ref().map(|h| {
        if h.is_disabled() {
            HealthcheckSpec {
                test: vec!["NONE".into()],
                ..HealthcheckSpec::default()
            }
        } else {
            HealthcheckSpec {
                test: h.test.clone().unwrap_or_default(),
                interval: h.interval.map(|d| d.as_std()),
                timeout: h.timeout.map(|d| d.as_std()),
                retries: h.retries.map(|r| r.min(u64::from(u32::MAX)) as u32),
                start_period: h.start_period.map(|d| d.as_std()),
                start_interval: h.start_interval.map(|d| d.as_std()),
            }
        }
    });

    let restart = restart_policy(service).map_err(invalid)?;

    let limits = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.limits.as_ref());
    let reservations = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.reservations.as_ref());
    let blkio = service.blkio_config.as_ref();
    let throttles = |list: Option<&Vec<compose::ThrottleDevice>>| {
        list.into_iter()
            .flatten()
            .map(|d| (d.path.clone(), d.rate))
            .collect::<Vec<_>>()
    };
    // `deploy.resources` first, then the legacy keys (the loader refused the two when they
    // differ, so either is the same value where both are set).
    let resources = engine::Resources {
        nano_cpus: limits
            .and_then(|l| l.cpus)
            .or(service.cpus)
            .map(|c| (c * 1e9).round() as i64),
        cpu_shares: service.cpu_shares,
        cpu_period: service.cpu_period,
        cpu_quota: service.cpu_quota,
        cpuset_cpus: service.cpuset.clone(),
        memory_bytes: limits
            .and_then(|l| l.memory)
            .or(service.mem_limit)
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        memory_reservation_bytes: reservations
            .and_then(|r| r.memory)
            .or(service.mem_reservation)
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        memory_swap_bytes: service.memswap_limit,
        memory_swappiness: service.mem_swappiness.map(|n| n as i64),
        pids_limit: limits.and_then(|l| l.pids).or(service.pids_limit),
        oom_score_adj: service.oom_score_adj,
        oom_kill_disable: service.oom_kill_disable,
        device_requests: device_requests(service, reservations),
        blkio_weight: blkio.and_then(|b| b.weight),
        blkio_weight_device: blkio
            .into_iter()
            .flat_map(|b| &b.weight_device)
            .map(|d| (d.path.clone(), d.weight))
            .collect(),
        blkio_device_read_bps: throttles(blkio.map(|b| &b.device_read_bps)),
        blkio_device_read_iops: throttles(blkio.map(|b| &b.device_read_iops)),
        blkio_device_write_bps: throttles(blkio.map(|b| &b.device_write_bps)),
        blkio_device_write_iops: throttles(blkio.map(|b| &b.device_write_iops)),
        device_cgroup_rules: service.device_cgroup_rules.clone(),
    };

    Ok(ContainerSpec {
        name: match number {
            Some(n) => container_name(project, service, n),
            None => labels::oneoff_container_name(
                &project.name,
                &service.name,
                &labels::oneoff_suffix(),
            ),
        },
        image: ImageRef::new(image),
        command: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env,
        labels: labels_map,
        user: service.user.clone(),
        working_dir: service.working_dir.clone(),
        hostname: service.hostname.clone(),
        domainname: service.domainname.clone(),
        tty: service.tty,
        stdin_open: service.stdin_open,
        expose,
        ports,
        mounts,
        tmpfs: service.tmpfs.clone(),
        networks,
        network_mode,
        pid,
        ipc,
        uts: service.uts.clone(),
        healthcheck,
        restart,
        stop_signal: service.stop_signal.clone(),
        stop_timeout: service.stop_grace_period.map(|d| d.as_std()),
        ulimits: service
            .ulimits
            .iter()
            .map(|(name, u)| {
                let (soft, hard) = u.limits();
                Ulimit {
                    name: name.clone(),
                    soft,
                    hard,
                }
            })
            .collect(),
        extra_hosts: service.extra_hosts.iter().map(|h| extra_host(h)).collect(),
        runtime: service.runtime.clone(),
        userns_mode: service.userns_mode.clone(),
        cgroup_parent: service.cgroup_parent.clone(),
        volumes_from,
        platform: service.platform.clone(),
        cgroupns_mode: service.cgroup.clone(),
        storage_opt: service.storage_opt.clone(),
        cap_add: service.cap_add.clone(),
        cap_drop: service.cap_drop.clone(),
        security_opt: security_opt(service).map_err(invalid)?,
        group_add: service.group_add.clone(),
        init: service.init,
        read_only: service.read_only,
        privileged: service.privileged,
        sysctls: service.sysctls.clone(),
        devices: service
            .devices
            .iter()
            .filter(|d| !is_cdi_device(d))
            .map(|d| DeviceSpec {
                host_path: d.source.clone(),
                container_path: d.target.clone(),
                permissions: d.permissions.clone(),
            })
            .collect(),
        shm_size: service.shm_size.map(|s| s as i64),
        logging: service.logging.as_ref().map(|l| LoggingSpec {
            driver: l.driver.clone(),
            options: l.options.clone(),
        }),
        resources,
        dns: service.dns.clone(),
        dns_search: service.dns_search.clone(),
        dns_opt: service.dns_opt.clone(),
    })
}

/// The restart policy: `deploy.restart_policy` replaces `restart` when set, as in compose
/// (its `delay` and `window` are swarm's: compose ignores them, and so does Gantry). What
/// compose would send and Docker refuse, or quietly turn into no policy, is refused here.
fn restart_policy(service: &Service) -> Result<RestartPolicy, String> {
    let restart = match service.restart {
        None | Some(Restart::No) => RestartPolicy::No,
        Some(Restart::Always) => RestartPolicy::Always,
        Some(Restart::UnlessStopped) => RestartPolicy::UnlessStopped,
        Some(Restart::OnFailure(max_retries)) => RestartPolicy::OnFailure { max_retries },
    };
    let Some(policy) = service
        .deploy
        .as_ref()
        .and_then(|d| d.restart_policy.as_ref())
    else {
        return Ok(restart);
    };
    let attempts = policy.max_attempts.filter(|n| *n != 0);
    let chosen = match policy.condition.as_deref() {
        Some("none" | "no") => RestartPolicy::No,
        Some("any" | "always") => RestartPolicy::Always,
        Some("unless-stopped") => RestartPolicy::UnlessStopped,
        Some("on-failure") => RestartPolicy::OnFailure {
            max_retries: attempts.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        },
        Some(other) => {
            return Err(format!(
                "deploy.restart_policy.condition {other:?} is not a restart condition: use \
                 none, on-failure or any"
            ));
        }
        // Compose sends an empty policy then: Docker's default, no restart.
        None if restart != RestartPolicy::No => {
            return Err(format!(
                "deploy.restart_policy without condition replaces `restart: {}` with no \
                 restart policy at all (as in compose; swarm's default `any` does not apply): \
                 give a condition (any, on-failure or none) or remove deploy.restart_policy",
                service.restart.map(|r| r.to_string()).unwrap_or_default()
            ));
        }
        None => RestartPolicy::No,
    };
    match (attempts, chosen) {
        (Some(n), RestartPolicy::No | RestartPolicy::Always | RestartPolicy::UnlessStopped) => {
            Err(format!(
                "deploy.restart_policy.max_attempts {n} needs condition: on-failure (Docker \
                 counts retries after a failure only); set it, or remove max_attempts"
            ))
        }
        _ => Ok(chosen),
    }
}

/// The ports `expose:` lists, as Docker takes them: `PORT[-END][/PROTOCOL]`, a range expanded
/// and the protocol kept (`tcp` when none), as compose sends them. Anything else is refused,
/// never dropped.
fn exposed(service: &Service) -> Result<Vec<(u16, Protocol)>, String> {
    let mut out = Vec::new();
    for (i, e) in service.expose.iter().enumerate() {
        let bad = || {
            format!(
                "expose[{i}]: {e:?} is not a port: write PORT, START-END, with /tcp, /udp or \
                 /sctp after it"
            )
        };
        let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(bad()),
        };
        let (start, end) = ports.split_once('-').unwrap_or((ports, ports));
        let (Ok(start), Ok(end)) = (start.trim().parse::<u16>(), end.trim().parse::<u16>()) else {
            return Err(bad());
        };
        if start == 0 || end < start {
            return Err(bad());
        }
        out.extend((start..=end).map(|p| (p, proto)));
    }
    Ok(out)
}

/// `security_opt` as Docker takes it: a seccomp profile named by its file (made absolute when
/// the files were loaded) is sent as the file's JSON, compacted, as compose sends it (Docker
/// reads no file). A file that cannot be read or is not JSON is refused, naming it.
fn security_opt(service: &Service) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(service.security_opt.len());
    for (i, opt) in service.security_opt.iter().enumerate() {
        let Some(path) = compose::canonical::seccomp_file(opt) else {
            out.push(opt.clone());
            continue;
        };
        let refused = |e: String| format!("security_opt[{i}]: seccomp profile {path}: {e}");
        let text =
            std::fs::read_to_string(path).map_err(|e| refused(format!("cannot read it: {e}")))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| refused(format!("not a JSON seccomp profile: {e}")))?;
        out.push(format!("seccomp={json}"));
    }
    Ok(out)
}

/// How long to wait for a container to stop before SIGKILL (Compose's default is 10 s).
pub fn stop_timeout(service: &Service) -> Duration {
    service
        .stop_grace_period
        .map_or(Duration::from_secs(10), |d| d.as_std())
}

/// The service's device requests in the order compose sends them: the reserved devices, the
/// CDI devices of `devices:`, then `gpus` (each with the capability `gpu` added).
fn device_requests(
    service: &Service,
    reservations: Option<&compose::Resource>,
) -> Vec<engine::DeviceRequest> {
    let request = |r: &compose::DeviceRequest, capabilities: Vec<String>| engine::DeviceRequest {
        driver: r.driver.clone().unwrap_or_default(),
        count: r.count.unwrap_or(0),
        device_ids: r.device_ids.clone(),
        capabilities: vec![capabilities],
        options: r.options.clone(),
    };
    let reserved = reservations
        .into_iter()
        .flat_map(|r| &r.devices)
        .map(|r| request(r, r.capabilities.clone()));
    let cdi: Vec<String> = service
        .devices
        .iter()
        .filter(|d| is_cdi_device(d))
        .map(|d| d.source.clone())
        .collect();
    let cdi = (!cdi.is_empty()).then(|| engine::DeviceRequest {
        driver: "cdi".to_owned(),
        device_ids: cdi,
        ..Default::default()
    });
    let gpus = service.gpus.iter().map(|r| {
        let mut capabilities = r.capabilities.clone();
        capabilities.push("gpu".to_owned());
        request(r, capabilities)
    });
    reserved.chain(cdi).chain(gpus).collect()
}

/// A `devices:` entry naming a CDI device (`nvidia.com/gpu=all`) rather than a host path:
/// compose asks Docker's `cdi` driver for it.
fn is_cdi_device(d: &compose::Device) -> bool {
    d.source == d.target && is_cdi_name(&d.source)
}

/// `VENDOR/CLASS=NAME`: vendor and class start with a letter, end with a letter or digit and
/// hold letters, digits, `-`, `_` and `.`; the name starts and ends with a letter or digit and
/// may hold `:` too.
fn is_cdi_name(s: &str) -> bool {
    fn part(s: &str, extra: &str) -> bool {
        let ends_ok = s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
        ends_ok
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    }
    let Some((vendor, rest)) = s.split_once('/') else {
        return false;
    };
    let Some((class, name)) = rest.split_once('=') else {
        return false;
    };
    let starts_alpha = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    let starts_alnum = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    starts_alpha(vendor)
        && part(vendor, "-_.")
        && starts_alpha(class)
        && part(class, "-_.")
        && starts_alnum(name)
        && part(name, "-_.:")
}

/// An `extra_hosts` entry as Docker takes it: `HOST:IP`, the address after the first colon
/// (`v6:::1`). The model keeps it as compose prints it, `HOST=IP`, which Docker refuses.
fn extra_host(entry: &str) -> String {
    match entry.split_once('=') {
        Some((host, ip)) => format!("{host}:{ip}"),
        None => entry.to_owned(),
    }
}

/// Six pairs of hex digits separated by colons (or dashes), as Docker parses a MAC address.
fn is_mac(s: &str) -> bool {
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

mod mounts;
#[cfg(test)]
mod tests;
