//! Deploy's side of the edge switch: which containers are behind a service's published ports,
//! the drain of a container leaving them, and bringing the switch in line with what runs.
//!
//! Design: the switch's truth is Docker: a running container carrying [`edge::LABEL`] is
//! behind its service's ports. [`sync_edge_except`] rebuilds a stack's routes from that alone, so a
//! new daemon, a reboot (nftables is not persistent) or an interrupted rollout converges
//! without any state of its own (but a canary in progress: [`sync_edge_canary`] keeps its
//! recorded share while a new daemon resumes it). During a rollout, [`Rotation`] is the set being switched:
//! the new container joins once it is ready, the old one leaves, then [`drain`] waits for its
//! open connections to end (up to the grace period) before it is stopped.
//!
//! Limits: the backend address is the container's address on its first network (any of them
//! reaches it from the host). A drain that cannot read the container's sockets waits out the
//! whole window.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::compose::Service;
use crate::edge::{self, Edge, Member, Routes, SwitchedPort};
use crate::engine::{ContainerInfo, ContainerSpec, Engine, Protocol, PublishedPort};
use crate::ledger::CanaryState;

use super::DeployError;

/// The containers behind one service's switched ports during its rollout.
#[derive(Debug)]
pub(super) struct Rotation<'a> {
    pub edge: &'a dyn Edge,
    pub stack: String,
    pub service: String,
    pub ports: Vec<SwitchedPort>,
    /// Container id → the container as the switch routes to it.
    pub members: BTreeMap<String, Member>,
    /// Where each switched port is asked for: its `ports:` key (`services.web.ports[0]`).
    pub keys: BTreeMap<edge::Listen, String>,
    /// The switch still routes the service although it no longer has a port through it
    /// (`x-gantry.edge: false`, its switched ports dropped): containers carrying
    /// [`edge::LABEL`] run. Its routes go before a new container starts ([`Self::hand_back`]).
    pub unswitched: bool,
}

impl<'a> Rotation<'a> {
    /// The rotation of `svc`: empty (no switch) when the switch is unavailable or the service
    /// publishes nothing it can own; otherwise its running containers: those the switch owns,
    /// each at the ports it was created with, and those Docker still publishes the ports for
    /// (a service taken over from Docker: they share new connections with the new ones, a
    /// canary's too, until they are replaced). A replacement's `-gantry-next` container left by
    /// a rollout cut short is a member as the switch may route it (the rollout keeps it when
    /// it is current, or takes it out of the switch before removing it). A service that left
    /// the switch but whose containers it still routes is marked [`Self::unswitched`].
    pub fn of(
        edge: &'a dyn Edge,
        stack: &str,
        svc: &Service,
        containers: &[ContainerInfo],
    ) -> Self {
        let ports = if edge.available().is_ok() {
            edge::switched_ports(svc)
        } else {
            Vec::new()
        };
        let running = || containers.iter().filter(|c| c.state.running && !c.oneoff);
        let mut members = BTreeMap::new();
        if !ports.is_empty() {
            for c in running() {
                if let Some(m) = member(c, &ports) {
                    members.insert(c.id.clone(), m);
                }
            }
        }
        let unswitched = ports.is_empty()
            && edge.available().is_ok()
            && running().any(|c| c.labels.contains_key(edge::LABEL));
        let mut keys = BTreeMap::new();
        for (i, p) in svc.ports.iter().enumerate() {
            if let Some(s) = edge::switched_port(p) {
                keys.entry(s.listen)
                    .or_insert_with(|| format!("services.{}.ports[{i}]", svc.name));
            }
        }
        Self {
            edge,
            stack: stack.to_owned(),
            service: svc.name.clone(),
            ports,
            members,
            keys,
            unswitched,
        }
    }

    /// For a service the switch still routes though it has no port through it any more
    /// ([`Self::unswitched`]): its routes go (new connections are no longer sent to its old
    /// containers, and Docker's publishing of the ports for a new one takes over), once,
    /// before a new container starts. Otherwise nothing.
    pub async fn hand_back(&mut self) -> Result<(), DeployError> {
        if !self.unswitched {
            return Ok(());
        }
        let none = Routes::equal(&self.stack, &self.service, Vec::new(), Vec::new());
        self.edge
            .set_routes(&none)
            .await
            .map_err(|source| self.error(source))?;
        self.unswitched = false;
        tracing::info!(
            stack = %self.stack,
            service = %self.service,
            "edge routes cleared: the service's ports no longer go through the switch"
        );
        Ok(())
    }

    /// The rotation without the containers (ids) in `unready` (their readiness probe fails
    /// now), while another member is left to route to.
    pub fn without(mut self, unready: &BTreeSet<String>) -> Self {
        if self.members.keys().any(|id| !unready.contains(id)) {
            self.members.retain(|id, _| !unready.contains(id));
        }
        self
    }

    pub fn active(&self) -> bool {
        !self.ports.is_empty()
    }

    /// The container spec with the switched ports left to the switch: not published by
    /// Docker, exposed (so `docker ps` lists them), and named in [`edge::LABEL`].
    pub fn adapt(&self, spec: &mut ContainerSpec) {
        if !self.active() {
            return;
        }
        spec.ports.retain(|p| !self.owns(p));
        for p in &self.ports {
            if !spec.expose.contains(&(p.target, Protocol::Tcp)) {
                spec.expose.push((p.target, Protocol::Tcp));
            }
        }
        spec.labels
            .insert(edge::LABEL.into(), edge::label_value(&self.ports));
    }

    fn owns(&self, p: &PublishedPort) -> bool {
        p.protocol == Protocol::Tcp
            && self.ports.iter().any(|s| {
                Some(s.listen.port) == p.host_port
                    && s.target == p.target
                    && match (&p.host_ip, s.listen.ip) {
                        (None, None) => true,
                        (Some(a), None) => a == "0.0.0.0",
                        (Some(a), Some(b)) => a.parse::<Ipv4Addr>().ok() == Some(b),
                        (None, Some(_)) => false,
                    }
            })
    }

    /// Checks, before anything changes, that every switched port is the switch's to own: no
    /// other process listens on it, and no other service routes it. A port Docker publishes
    /// for one of this service's own containers is being taken over, not taken.
    pub async fn check_ports(&self, containers: &[ContainerInfo]) -> Result<(), DeployError> {
        for p in &self.ports {
            let published_by_us = containers.iter().any(|c| {
                c.ports
                    .iter()
                    .any(|b| b.host_port == Some(p.listen.port) && b.protocol == Protocol::Tcp)
            });
            if published_by_us {
                continue;
            }
            self.edge
                .check_free(&self.stack, &self.service, p.listen)
                .await
                .map_err(|source| self.error(source))?;
        }
        Ok(())
    }

    /// Puts `c` (just inspected, ready) in rotation and switches at once.
    pub async fn join(&mut self, c: &ContainerInfo) -> Result<(), DeployError> {
        if !self.active() {
            return Ok(());
        }
        let m = self.member_of(c)?;
        self.members.insert(c.id.clone(), m);
        self.apply().await
    }

    /// Switches from `old` (if any) to `new` (just inspected, ready) in one change.
    pub async fn swap(
        &mut self,
        old: Option<&str>,
        new: &ContainerInfo,
    ) -> Result<(), DeployError> {
        if let Some(old) = old {
            self.members.remove(old);
        }
        self.join(new).await
    }

    /// Puts `new` in rotation with `share` percent of new connections; the other members share
    /// the rest equally (a canary step).
    pub async fn split(&mut self, new: &ContainerInfo, share: u8) -> Result<(), DeployError> {
        let m = self.member_of(new)?;
        self.members.insert(new.id.clone(), m.clone());
        let others: Vec<Member> = self
            .members
            .iter()
            .filter(|(id, _)| **id != new.id)
            .map(|(_, m)| m.clone())
            .collect();
        let ports = edge::with_members_ports(&self.ports, self.members.values());
        let routes = split_routes(&self.stack, &self.service, ports, others, m, share);
        self.edge
            .set_routes(&routes)
            .await
            .map_err(|source| self.error(source))
    }

    /// Takes `id` out of rotation (new connections stop reaching it at once).
    pub async fn leave(&mut self, id: &str) -> Result<(), DeployError> {
        if !self.active() || self.members.remove(id).is_none() {
            return Ok(());
        }
        self.apply().await
    }

    /// Switches to the current members, equal shares.
    pub async fn apply(&self) -> Result<(), DeployError> {
        let routes = Routes::equal(
            &self.stack,
            &self.service,
            edge::with_members_ports(&self.ports, self.members.values()),
            self.members.values().cloned().collect(),
        );
        self.edge
            .set_routes(&routes)
            .await
            .map_err(|source| self.error(source))
    }

    /// Waits until `c`, out of rotation, has no connection open on a switched port (its own:
    /// the container ports it was created with, which a release may have moved), or `window`
    /// has passed. Returns how long it waited.
    pub async fn drain(&self, c: &ContainerInfo, window: Duration) -> Duration {
        let t0 = tokio::time::Instant::now();
        if !self.active() || !c.state.running || window.is_zero() {
            return Duration::ZERO;
        }
        let targets: BTreeSet<u16> = member_ports(c, &self.ports)
            .iter()
            .map(|p| p.target)
            .collect();
        if targets.is_empty() {
            // The switch never sent it anything.
            return Duration::ZERO;
        }
        let pid = c.state.pid;
        loop {
            let open = match pid {
                Some(pid) => {
                    let mut total = Some(0usize);
                    for port in &targets {
                        total = match (total, self.edge.open_connections(pid, *port).await) {
                            (Some(t), Some(n)) => Some(t + n),
                            _ => None,
                        };
                    }
                    total
                }
                None => None,
            };
            if open == Some(0) || t0.elapsed() >= window {
                tracing::info!(
                    stack = %self.stack,
                    service = %self.service,
                    container = %c.name,
                    open = open.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
                    waited_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "edge drain done"
                );
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `c` (a new container: the switch owns its ports) as a member; an error when it has no
    /// address.
    fn member_of(&self, c: &ContainerInfo) -> Result<Member, DeployError> {
        member(c, &self.ports).ok_or_else(|| {
            self.error(edge::EdgeError::Command {
                command: format!("inspect {}", c.name),
                message: "the container has no IPv4 address to switch to".into(),
            })
        })
    }

    /// `source` as the service's error; a port taken names the `ports:` entry asking for it.
    fn error(&self, source: edge::EdgeError) -> DeployError {
        let source = match source {
            edge::EdgeError::PortTaken {
                listen,
                by,
                key: None,
            } => edge::EdgeError::PortTaken {
                key: self.keys.get(&listen).cloned(),
                listen,
                by,
            },
            other => other,
        };
        DeployError::Edge {
            service: self.service.clone(),
            source,
        }
    }
}

/// `new` with `share` percent of new connections, `others` sharing the rest equally, within one
/// (all of them to `new` when there are no others). The weights add up to 100.
fn split_routes(
    stack: &str,
    service: &str,
    ports: Vec<SwitchedPort>,
    others: Vec<Member>,
    new: Member,
    share: u8,
) -> Routes {
    // Alone, the new container gets everything, unless its share is none (an aborted canary:
    // nothing then, rather than the version aborted).
    let share = if others.is_empty() && share > 0 {
        100
    } else {
        share.min(100)
    };
    let n = others.len();
    let mut backends: Vec<edge::Backend> = others
        .into_iter()
        .enumerate()
        .map(|(i, m)| edge::Backend {
            container: m.container,
            ip: m.ip,
            weight: edge::part(i, n, 100 - share),
            ports: m.ports,
        })
        .collect();
    backends.push(edge::Backend {
        container: new.container,
        ip: new.ip,
        weight: share,
        ports: new.ports,
    });
    Routes {
        stack: stack.to_owned(),
        service: service.to_owned(),
        ports,
        backends,
    }
}

/// The address the switch sends a container's connections to.
fn address(c: &ContainerInfo) -> Option<Ipv4Addr> {
    c.ip_addresses.values().find_map(|ip| ip.parse().ok())
}

/// `c` as a member of its service's routes, with the switched ports it serves
/// ([`member_ports`]). `None`: no address, or none of them.
fn member(c: &ContainerInfo, switched: &[SwitchedPort]) -> Option<Member> {
    let ports = member_ports(c, switched);
    if ports.is_empty() {
        return None;
    }
    Some(Member {
        container: c.name.clone(),
        ip: address(c)?,
        ports,
    })
}

/// The switched ports `c` serves, as it was created: those its [`edge::LABEL`] names, or,
/// without one, those of `switched` that Docker publishes for it (their host port) at the
/// container port it publishes.
fn member_ports(c: &ContainerInfo, switched: &[SwitchedPort]) -> Vec<SwitchedPort> {
    let ports: Vec<SwitchedPort> = match c.labels.get(edge::LABEL) {
        Some(label) => edge::parse_label(label),
        None => c
            .ports
            .iter()
            .filter(|b| b.protocol == Protocol::Tcp)
            .filter_map(|b| {
                let s = switched
                    .iter()
                    .find(|s| Some(s.listen.port) == b.host_port)?;
                Some(SwitchedPort {
                    listen: s.listen,
                    target: b.target,
                })
            })
            .collect(),
    };
    let mut ports = ports;
    // Docker lists a port bound on 0.0.0.0 and on :: twice.
    ports.sort();
    ports.dedup();
    ports
}

impl super::apply::Deployer {
    /// [`sync_edge_except`] leaving out the replicas the daemon's probes find not ready: a
    /// deploy's end never puts them back in rotation.
    pub(super) async fn sync_routes(&self, stack: &str) -> Result<Vec<String>, DeployError> {
        let unready = self.unready.of(stack);
        sync_edge_except(self.engine.as_ref(), self.edge.as_ref(), stack, &unready).await
    }
}

/// Brings the switch in line with what runs in `stack`: every service with running containers
/// that carry [`edge::LABEL`] is routed to them (a replacement's temporary `-gantry-next`
/// container only while no other container of its replica number runs), leaving out the
/// containers (ids) in `unready` (their readiness probe fails now) while their service has
/// another one to route to; routes of services with none are removed. Returns the services
/// routed.
pub async fn sync_edge_except(
    engine: &dyn Engine,
    edge: &dyn Edge,
    stack: &str,
    unready: &BTreeSet<String>,
) -> Result<Vec<String>, DeployError> {
    sync_edge_with(engine, edge, stack, unready, None).await
}

/// [`sync_edge_except`] for a stack with a canary in progress (a daemon that starts and will resume
/// it): its service keeps the canary's share of new connections, the canary's temporary
/// `-gantry-next` container included, while that container runs.
pub async fn sync_edge_canary(
    engine: &dyn Engine,
    edge: &dyn Edge,
    stack: &str,
    canary: &CanaryState,
) -> Result<Vec<String>, DeployError> {
    sync_edge_with(engine, edge, stack, &BTreeSet::new(), Some(canary)).await
}

async fn sync_edge_with(
    engine: &dyn Engine,
    edge: &dyn Edge,
    stack: &str,
    unready: &BTreeSet<String>,
    canary: Option<&CanaryState>,
) -> Result<Vec<String>, DeployError> {
    if edge.available().is_err() {
        return Ok(Vec::new());
    }
    let containers = engine.list_containers(stack, false).await?;
    let running: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| c.state.running && !c.oneoff)
        .collect();
    let mut by_service: BTreeMap<String, Vec<&ContainerInfo>> = BTreeMap::new();
    for c in &running {
        if let (Some(svc), true) = (&c.service, c.labels.contains_key(edge::LABEL)) {
            by_service.entry(svc.clone()).or_default().push(c);
        }
    }
    let mut routed = Vec::new();
    let mut failed: Vec<(String, edge::EdgeError)> = Vec::new();
    let total = by_service.len();
    for (service, mut list) in by_service {
        // The switched ports the service's containers were created with; its containers that
        // Docker still publishes them for (a take-over cut short) are routed beside them.
        let switched = edge::with_members_ports(
            &[],
            &list
                .iter()
                .filter_map(|c| member(c, &[]))
                .collect::<Vec<_>>(),
        );
        for c in &running {
            if c.service.as_deref() == Some(service.as_str())
                && !c.labels.contains_key(edge::LABEL)
                && member(c, &switched).is_some()
            {
                list.push(c);
            }
        }
        let members = |list: &[&ContainerInfo]| -> Vec<Member> {
            list.iter().filter_map(|c| member(c, &switched)).collect()
        };
        let canary = canary.filter(|k| k.service == service).and_then(|k| {
            let new = list.iter().find(|c| c.id == k.new.id)?;
            Some((k, new.id.clone(), member(new, &[])?))
        });
        let routes = if let Some((canary, id, new)) = canary {
            // The canary keeps its share, beside every other running container.
            list.retain(|c| c.id != id);
            let others = members(&list);
            let ports = edge::with_members_ports(&new.ports, &others);
            split_routes(stack, &service, ports, others, new, canary.share())
        } else {
            // A replacement's temporary container (a rollout cut short) is routed only while
            // no other container of its replica number runs: after a `kill -9` between the old
            // one's removal and its rename, it is the one serving that replica.
            let next = |c: &ContainerInfo| c.name.ends_with(super::plan::NEXT_SUFFIX);
            let replaced: BTreeSet<Option<u32>> =
                list.iter().filter(|c| !next(c)).map(|c| c.number).collect();
            list.retain(|c| !next(c) || !replaced.contains(&c.number));
            // Out of rotation while not ready; a service with no ready container keeps them
            // all (a failing answer beats no answer; supervision restarts them).
            if list.iter().any(|c| !unready.contains(&c.id)) {
                list.retain(|c| !unready.contains(&c.id));
            }
            let backends = members(&list);
            let ports = edge::with_members_ports(&[], &backends);
            if ports.is_empty() || backends.is_empty() {
                continue;
            }
            Routes::equal(stack, &service, ports, backends)
        };
        // One service's failure (its port taken meanwhile) leaves the others routed; its own
        // chain is kept as it was.
        match edge.set_routes(&routes).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(stack, service = %service, error = %e, "edge routes not set");
                failed.push((service.clone(), e));
            }
        }
        routed.push(service);
    }
    edge.retain_services(stack, &routed)
        .await
        .map_err(|source| DeployError::Edge {
            service: "*".into(),
            source,
        })?;
    if !failed.is_empty() {
        tracing::warn!(
            stack,
            "{} of {total} services' edge routes not set",
            failed.len()
        );
    }
    match failed.into_iter().next() {
        Some((service, source)) => Err(DeployError::Edge { service, source }),
        None => Ok(routed),
    }
}

#[cfg(test)]
#[path = "tests/edge.rs"]
mod tests;
