//! Services bound to another service's containers, and the hash that binds them.
//!
//! What: a service that joins another's namespace (`network_mode`, `ipc` or `pid:
//! service:X`), mounts its volumes (`volumes_from: X`) or restarts with it (`depends_on: {X:
//! {restart: true}}`, which `links` imply too) must follow X's containers: when X's container
//! is replaced, the old one's namespace is gone (a container left in it has no network) and
//! compose recreates (or restarts) the service as well. Compose gets there by hashing the
//! service with `service:X` resolved to `container:<X's id>`.
//!
//! Design: Gantry cannot know the id of a container it has not created yet, so the hash a
//! bound service's containers carry ([`bound_hash`]) mixes its own canonical hash with what
//! replaces X's containers: X's hash (itself bound when X is), the image id X runs, and the
//! Docker names of X's networks and named volumes. Whatever recreates X therefore recreates
//! the services bound to it, after X (they depend on it, so the rollout waits for X). A
//! `restart: true` dependent is recreated through the same gated rollout rather than restarted
//! in place. A service bound to nothing keeps its own hash.
//!
//! Limits: X's containers replaced outside a deploy (`docker rm -f` by hand, then a deploy
//! that creates X again) leave the hash as it was: the bound service is not recreated.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::compose::{MountKind, Project, Service};
use crate::deploy::translate;

/// Why `svc` follows each service it is bound to (`network_mode: service:vpn`), by service,
/// only services of the project. Jobs are never bound: they are not replaced, they run.
pub fn bound_to(project: &Project, svc: &Service) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |other: &str, why: String| {
        if other != svc.name && project.services.contains_key(other) {
            out.entry(other.to_owned()).or_insert(why);
        }
    };
    for (key, value) in [
        ("network_mode", &svc.network_mode),
        ("ipc", &svc.ipc),
        ("pid", &svc.pid),
    ] {
        if let Some(other) = value.as_deref().and_then(|v| v.strip_prefix("service:")) {
            add(other, format!("{key}: service:{other}"));
        }
    }
    for entry in &svc.volumes_from {
        if entry.starts_with("container:") {
            continue;
        }
        let other = entry.split(':').next().unwrap_or_default();
        add(other, format!("volumes_from: {other}"));
    }
    for (other, d) in &svc.depends_on {
        if d.restart {
            add(other, "depends_on restart: true".to_owned());
        }
    }
    out
}

/// What a bound service's hash takes from a service it is bound to.
#[derive(Debug, Clone)]
pub struct Parent {
    /// The hash its containers carry (bound itself, when it is).
    pub hash: String,
    /// The image id it runs (`None`: not known yet, it will be pulled).
    pub image_id: Option<String>,
}

/// The hash for the containers of `svc`, whose own canonical hash is `own`: `own` itself when
/// it is bound to no service in `parents`, else `own` mixed with each parent's hash, image id
/// and the Docker names of its networks and named volumes.
pub fn bound_hash(
    project: &Project,
    svc: &Service,
    own: &str,
    parents: &BTreeMap<String, Parent>,
) -> String {
    let bound: Vec<String> = bound_to(project, svc)
        .into_keys()
        .filter(|p| parents.contains_key(p))
        .collect();
    if bound.is_empty() {
        return own.to_owned();
    }
    let mut h = Sha256::new();
    h.update(b"gantry-bound-v1\n");
    h.update(own.as_bytes());
    for name in bound {
        let p = &parents[&name];
        h.update(
            format!(
                "\n{name} {} {}",
                p.hash,
                p.image_id.as_deref().unwrap_or("?")
            )
            .as_bytes(),
        );
        if let Some(other) = project.services.get(&name) {
            for key in other.networks.keys() {
                h.update(format!(" net:{}", translate::network_name(project, key)).as_bytes());
            }
            for m in &other.volumes {
                if let (MountKind::Volume, Some(key)) = (m.kind, m.source.as_deref()) {
                    h.update(format!(" vol:{}", translate::volume_name(project, key)).as_bytes());
                }
            }
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests;
