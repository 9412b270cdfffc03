//! The edge switch: a service's published host ports, owned by Gantry instead of its container.
//!
//! What: a service that publishes a fixed TCP host port (`ports: ["127.0.0.1:8080:80"]`) is
//! not published by Docker. Its containers only expose the port; the switch sends each *new*
//! connection to `host address:port` to one of the service's current containers, by weight.
//! Connections already open stay on the container they reached. A rollout therefore starts
//! the new container beside the old one, gates it, moves new connections to it
//! ([`Edge::set_routes`]), lets the old one drain ([`Edge::open_connections`]) and only then
//! stops it. The same routes carry weighted canaries.
//!
//! Design: one trait at our level ([`Edge`]): "these backends, these weights, for this
//! service's ports" and "how many connections are still open on that container". The kernel
//! implementation ([`nft::NftEdge`]) writes nftables DNAT rules, one chain per service, each
//! change one atomic `nft -f` transaction. Traffic never passes through the daemon, so a
//! restart or a crash of `gantryd` drops nothing, and conntrack keeps every established flow
//! on the backend it started with, which is exactly what draining needs. Which containers are
//! behind a service is derived from Docker (the [`LABEL`] on containers whose ports the switch
//! owns), so a new daemon (or a reboot, which clears nftables) rebuilds the rules from what
//! runs ([`crate::deploy::sync_edge_except`]). See docs/edge.md for the data plane and why.
//!
//! Limits: IPv4 and TCP. A port published on an IPv6 address, a UDP/SCTP port, a port range,
//! an ephemeral port or a service on `network_mode: host` is published by Docker as before
//! (and replaced stop-first when the port is fixed). `x-gantry.edge: false` keeps Docker's
//! publishing for a service. When the switch is not available (no `nft`, no CAP_NET_ADMIN, a
//! remote Docker), published ports fall back to Docker, and `gantry plan` says why.

pub mod drain;
pub mod nft;
mod unready;

pub use unready::Unready;

use std::fmt;
use std::net::Ipv4Addr;

use async_trait::async_trait;

use crate::compose::Service;

/// The container label that says which of its ports the switch owns, e.g.
/// `127.0.0.1:18080:8080,0.0.0.0:9000:9000` (listen address, host port, container port).
pub const LABEL: &str = "io.gantry.edge";

/// Why the switch failed.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("edge switch: `{command}` failed: {message}")]
    Command { command: String, message: String },
    /// `key`: the `ports:` entry asking for it (`services.web.ports[0]`), when known.
    #[error(
        "edge switch: {}port {listen} is taken by {by}; free it, or publish the service on \
         another port (x-gantry.edge: false keeps Docker's publishing)",
        key.as_deref().map(|k| format!("{k}: ")).unwrap_or_default()
    )]
    PortTaken {
        listen: Listen,
        by: String,
        key: Option<String>,
    },
    #[error("edge switch: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the switch listens: an IPv4 host address (`None`: every local address) and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listen {
    pub ip: Option<Ipv4Addr>,
    pub port: u16,
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{ip}:{}", self.port),
            None => write!(f, "0.0.0.0:{}", self.port),
        }
    }
}

/// One switched port of a service: where it listens and the container port it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SwitchedPort {
    pub listen: Listen,
    pub target: u16,
}

impl fmt::Display for SwitchedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}/tcp", self.listen, self.target)
    }
}

/// A container the switch can send a service's new connections to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The container's name or id, for messages.
    pub container: String,
    pub ip: Ipv4Addr,
    /// The switched ports it serves, as it was created: a container of an earlier release may
    /// reach another container port (`8080:80` then `8080:8080`) or lack a host port the
    /// release added. Empty: the routes' own ports.
    pub ports: Vec<SwitchedPort>,
}

/// A container behind a service, with its share of new connections (of 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The container's name or id, for messages.
    pub container: String,
    pub ip: Ipv4Addr,
    pub weight: u8,
    /// As [`Member::ports`].
    pub ports: Vec<SwitchedPort>,
}

impl Backend {
    /// The container port that `port`'s new connections reach on this backend; `None` when it
    /// does not serve that host port (it gets none of them).
    pub fn target(&self, port: &SwitchedPort) -> Option<u16> {
        if self.ports.is_empty() {
            return Some(port.target);
        }
        self.ports
            .iter()
            .find(|p| p.listen == port.listen)
            .or_else(|| {
                self.ports
                    .iter()
                    .find(|p| p.listen.port == port.listen.port)
            })
            .map(|p| p.target)
    }
}

/// What the switch does for one service: its ports, spread over its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub stack: String,
    pub service: String,
    pub ports: Vec<SwitchedPort>,
    pub backends: Vec<Backend>,
}

impl Routes {
    /// Equal shares for `members` (what a service without a canary gets).
    pub fn equal(
        stack: &str,
        service: &str,
        ports: Vec<SwitchedPort>,
        members: Vec<Member>,
    ) -> Self {
        let n = members.len();
        let backends = members
            .into_iter()
            .enumerate()
            .map(|(i, m)| Backend {
                container: m.container,
                ip: m.ip,
                weight: part(i, n, 100),
                ports: m.ports,
            })
            .collect();
        Self {
            stack: stack.to_owned(),
            service: service.to_owned(),
            ports,
            backends,
        }
    }
}

/// `ports` and, after them, every host port a member still serves that `ports` lack (a
/// release that dropped a port: the containers of the one before keep getting its new
/// connections until they leave).
pub fn with_members_ports<'a>(
    ports: &[SwitchedPort],
    members: impl IntoIterator<Item = &'a Member>,
) -> Vec<SwitchedPort> {
    let mut out = ports.to_vec();
    for m in members {
        for p in &m.ports {
            if !out.iter().any(|o| o.listen == p.listen) {
                out.push(*p);
            }
        }
    }
    out
}

/// The i-th of n equal parts of `total` (the first ones get the remainder, so the n parts add
/// up to `total` exactly).
pub fn part(i: usize, n: usize, total: u8) -> u8 {
    let (n, total) = (n.max(1), usize::from(total));
    let extra = usize::from(i < total % n);
    u8::try_from(total / n + extra).unwrap_or(u8::MAX)
}

/// The published ports of a data plane that can switch them.
#[async_trait]
pub trait Edge: Send + Sync + fmt::Debug {
    /// `Ok` when published ports go through the switch; otherwise why not (Docker publishes
    /// them, as before).
    fn available(&self) -> Result<(), String>;

    /// Sends new connections to `routes.ports` to `routes.backends`, by weight, at once;
    /// established connections keep their backend. No backends: the service's ports are closed.
    async fn set_routes(&self, routes: &Routes) -> Result<(), EdgeError>;

    /// Removes every route of `stack` whose service is not in `keep`.
    async fn retain_services(&self, stack: &str, keep: &[String]) -> Result<(), EdgeError>;

    /// Connections still established to `port` inside the network namespace of the process
    /// `pid` (a container's main process). `None` when that cannot be read.
    async fn open_connections(&self, pid: u32, port: u16) -> Option<usize>;

    /// Whether `listen` is free for `stack`'s `service` to own: no process on this host
    /// listens on it and no other service's route uses it.
    /// (A port Docker publishes for the service's own current container is not asked about:
    /// the switch takes over from it on the next replacement.)
    async fn check_free(&self, stack: &str, service: &str, listen: Listen)
    -> Result<(), EdgeError>;

    /// While a container hands its service name over to another on a Docker network: new
    /// connections to address `from` go to `to` instead (`None`: no longer), whatever the
    /// port, for `at_most` (a process that dies leaves nothing behind for longer);
    /// established ones keep their way. Without a switch, nothing happens.
    async fn hand_over(
        &self,
        _from: Ipv4Addr,
        _to: Option<Ipv4Addr>,
        _at_most: std::time::Duration,
    ) -> Result<(), EdgeError> {
        Ok(())
    }
}

/// No switch: Docker publishes every port, as before.
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

#[async_trait]
impl Edge for Unavailable {
    fn available(&self) -> Result<(), String> {
        Err(self.0.clone())
    }
    async fn set_routes(&self, _: &Routes) -> Result<(), EdgeError> {
        Ok(())
    }
    async fn retain_services(&self, _: &str, _: &[String]) -> Result<(), EdgeError> {
        Ok(())
    }
    async fn open_connections(&self, _: u32, _: u16) -> Option<usize> {
        None
    }
    async fn check_free(&self, _: &str, _: &str, _: Listen) -> Result<(), EdgeError> {
        Ok(())
    }
}

/// The switch for a Docker engine at `docker_host` (`None`: the local default): the kernel's,
/// when Docker runs on this host and this process can drive it; otherwise [`Unavailable`],
/// saying why.
pub fn setup(docker_host: Option<&str>) -> std::sync::Arc<dyn Edge> {
    if let Some(host) = docker_host.filter(|h| !h.is_empty() && !h.starts_with("unix://")) {
        return std::sync::Arc::new(Unavailable(format!(
            "Docker runs elsewhere ({host}): the switch works on the Docker host only"
        )));
    }
    match nft::NftEdge::detect() {
        Ok(edge) => std::sync::Arc::new(edge),
        Err(why) => {
            tracing::info!(reason = %why, "edge switch unavailable: Docker publishes ports");
            std::sync::Arc::new(Unavailable(why))
        }
    }
}

/// The ports of `service` that go through the switch (when it is available): fixed, single,
/// TCP host ports on an IPv4 address or every address, on a bridge network. Empty when the
/// service opts out (`x-gantry.edge: false`).
pub fn switched_ports(service: &Service) -> Vec<SwitchedPort> {
    if service.gantry.edge == Some(false) {
        return Vec::new();
    }
    if service.network_mode.as_deref().is_some_and(|m| {
        m == "host" || m == "none" || m.starts_with("container:") || m.starts_with("service:")
    }) {
        return Vec::new();
    }
    let mut out: Vec<SwitchedPort> = service.ports.iter().filter_map(switched_port).collect();
    out.sort();
    out.dedup();
    out
}

/// The switched port one `ports:` entry is, if it can be one: a fixed, single, TCP host port
/// on an IPv4 address or every address (an IPv6 address, a range or UDP stays Docker's).
pub fn switched_port(p: &crate::compose::Port) -> Option<SwitchedPort> {
    if p.protocol != "tcp" {
        return None;
    }
    let port = p.published.as_deref()?.parse::<u16>().ok()?;
    if port == 0 {
        return None;
    }
    let ip = match p.host_ip.as_deref() {
        None | Some("") | Some("0.0.0.0") => None,
        Some(ip) => Some(ip.parse::<Ipv4Addr>().ok()?),
    };
    Some(SwitchedPort {
        listen: Listen { ip, port },
        target: p.target,
    })
}

/// The label value for `ports`.
pub fn label_value(ports: &[SwitchedPort]) -> String {
    ports
        .iter()
        .map(|p| {
            let ip = p.listen.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            format!("{ip}:{}:{}", p.listen.port, p.target)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a [`LABEL`] value back (unknown parts are skipped).
pub fn parse_label(value: &str) -> Vec<SwitchedPort> {
    let mut out = Vec::new();
    for part in value.split(',').filter(|s| !s.is_empty()) {
        let mut it = part.rsplitn(3, ':');
        let (Some(target), Some(port), Some(ip)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (Ok(target), Ok(port), Ok(ip)) = (
            target.parse::<u16>(),
            port.parse::<u16>(),
            ip.parse::<Ipv4Addr>(),
        ) else {
            continue;
        };
        out.push(SwitchedPort {
            listen: Listen {
                ip: (!ip.is_unspecified()).then_some(ip),
                port,
            },
            target,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn equal_parts_add_up_to_the_total() {
        for total in [100, 99, 95, 90, 50, 0] {
            for n in 1..=12 {
                let parts: Vec<u8> = (0..n).map(|i| part(i, n, total)).collect();
                let sum: u32 = parts.iter().map(|p| u32::from(*p)).sum();
                assert_eq!(sum, u32::from(total), "{n} parts of {total}");
                let (lo, hi) = (parts.iter().min(), parts.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{parts:?}");
            }
        }
    }

    #[test]
    fn label_round_trips() {
        let ports = vec![
            SwitchedPort {
                listen: Listen {
                    ip: Some(Ipv4Addr::LOCALHOST),
                    port: 18080,
                },
                target: 8080,
            },
            SwitchedPort {
                listen: Listen {
                    ip: None,
                    port: 9000,
                },
                target: 80,
            },
        ];
        let v = label_value(&ports);
        assert_eq!(v, "127.0.0.1:18080:8080,0.0.0.0:9000:80");
        assert_eq!(parse_label(&v), ports);
        assert!(parse_label("junk,1.2.3.4:x:1").is_empty());
    }

    /// A switched port as [`switched_port`] makes one: every address is `None`, never
    /// `Some(0.0.0.0)`.
    fn switched() -> impl Strategy<Value = SwitchedPort> {
        let ip = prop_oneof![
            Just(None),
            any::<[u8; 4]>()
                .prop_map(|b| Some(Ipv4Addr::from(b)).filter(|ip| !ip.is_unspecified())),
        ];
        (ip, any::<u16>(), any::<u16>()).prop_map(|(ip, port, target)| SwitchedPort {
            listen: Listen { ip, port },
            target,
        })
    }

    proptest! {
        #[test]
        fn label_round_trips_any_ports(ports in prop::collection::vec(switched(), 0..8)) {
            prop_assert_eq!(parse_label(&label_value(&ports)), ports);
        }

        /// Any text reads as some ports (never a panic), and what it reads as is written
        /// back to a label that reads the same.
        #[test]
        fn any_label_reads_as_ports_that_round_trip(
            value in prop_oneof![any::<String>(), "([0-9.]{0,16}:[0-9]{0,6}:[0-9]{0,6},?){0,4}"],
        ) {
            let ports = parse_label(&value);
            prop_assert_eq!(parse_label(&label_value(&ports)), ports);
        }
    }
}
