//! Docker's answers as our types: container summaries and inspects to [`ContainerInfo`],
//! events to [`Event`], port maps to [`PublishedPort`]s, status texts to health and exit codes;
//! and the small conversions the other files share.
//!
//! Design: pure functions; anything Docker leaves out becomes an empty value, never a panic.
//!
//! Limits: only the fields Gantry reads.

use super::*;
use crate::engine::is_anonymous_volume;

pub(super) fn from_summary(c: ContainerSummary) -> ContainerInfo {
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
        anonymous_volumes: anonymous_volumes(c.mounts.as_deref().unwrap_or_default()),
        volumes: named_volumes(c.mounts.unwrap_or_default()),
        ports,
        stop_timeout: None,
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
            pid: None,
        },
        labels,
    }
}

pub(super) fn from_inspect(c: ContainerInspectResponse) -> ContainerInfo {
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
        anonymous_volumes: anonymous_volumes(c.mounts.as_deref().unwrap_or_default()),
        volumes: named_volumes(c.mounts.unwrap_or_default()),
        ports,
        stop_timeout: config
            .stop_timeout
            .and_then(|t| u64::try_from(t).ok())
            .map(Duration::from_secs),
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
            pid: state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
        },
        labels,
    }
}

pub(super) fn from_event(e: EventMessage) -> Event {
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
/// The Docker names of the named volumes among a container's mounts, sorted.
pub(super) fn named_volumes(mounts: Vec<MountPoint>) -> Vec<String> {
    let mut names: Vec<String> = mounts
        .into_iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| m.name.filter(|n| !n.is_empty() && !is_anonymous_volume(n)))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The anonymous volumes among a container's mounts: (target, name), sorted.
pub(super) fn anonymous_volumes(mounts: &[MountPoint]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = mounts
        .iter()
        .filter(|m| m.typ.as_deref() == Some("volume"))
        .filter_map(|m| {
            let name = m.name.as_deref().filter(|n| is_anonymous_volume(n))?;
            Some((m.destination.clone()?, name.to_owned()))
        })
        .collect();
    found.sort();
    found
}

/// An image's `VOLUME`s (Docker's `Config.Volumes`), sorted.
pub(super) fn image_volumes(volumes: Option<Vec<String>>) -> Vec<String> {
    let mut v = volumes.unwrap_or_default();
    v.sort();
    v
}

pub(super) fn split_endpoints(
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
pub(super) fn bound_ports(map: HashMap<String, Option<Vec<PortBinding>>>) -> Vec<PublishedPort> {
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
pub(super) fn health_from_status_text(status: &str) -> Option<HealthStatus> {
    let open = status.rfind('(')?;
    let inner = status[open + 1..].strip_suffix(')')?;
    HealthStatus::parse(inner)
}

/// `Exited (3) 2 minutes ago`.
pub(super) fn exit_code_from_status_text(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split_once(')')?.0.parse().ok()
}

pub(super) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub(super) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

pub(super) fn non_empty<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

pub(super) fn non_empty_map(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

pub(super) fn to_btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}
