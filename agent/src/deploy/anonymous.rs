//! Anonymous volumes across a replacement, as Compose keeps them.
//!
//! What: a container's anonymous volumes (its image's `VOLUME`s, and `volumes:` entries
//! without a source, such as `- /app/node_modules`) hold data nobody named: a database image
//! run without a named volume keeps its data in one. `docker compose up` gives the container
//! that replaces another the old one's anonymous volumes; so does a rollout here: at a
//! `volumes:` entry without a source at the same target, or at a `VOLUME` of the new image
//! nothing else is mounted at (an explicit bind, named volume or tmpfs at that target wins).
//!
//! Design: two containers do not write one data directory at once unless asked: a container
//! that inherits is replaced stop-first (the old one serves until it exits, then the new one
//! starts on its volumes), as one that mounts a named volume read-write is. A service that
//! asks for old and new side by side, `deploy.update_config.order: start-first` or an
//! `x-gantry.canary`, keeps its strategy and shares them meanwhile (an image whose `VOLUME` is
//! scratch space, `/tmp`, needs no downtime). Rollbacks inherit the same way.
//!
//! Limits: a volume is taken for anonymous by its name (64 hex digits, as Docker names them).
//! There is no `--renew-anon-volumes`: to start afresh, remove the containers (`gantry down`)
//! and their volumes by hand.

use std::collections::BTreeMap;

use crate::engine::{ContainerInfo, ContainerSpec, MountKind, MountSpec};

use super::health::Strategy;
use crate::compose::{Service, UpdateOrder};

/// Mounts `old`'s anonymous volumes in `spec` (its replacement over an image declaring
/// `image_volumes`) where the replacement would get a new empty one; returns the targets.
pub(super) fn inherit(
    spec: &mut ContainerSpec,
    old: &ContainerInfo,
    image_volumes: &[String],
) -> Vec<String> {
    let mut inherited = Vec::new();
    for (target, name) in &old.anonymous_volumes {
        let target = clean(target);
        match spec.mounts.iter_mut().find(|m| clean(&m.target) == target) {
            Some(m) if matches!(m.kind, MountKind::Volume { .. }) && m.source.is_empty() => {
                m.source = name.clone();
            }
            Some(_) => continue,
            None if image_volumes.iter().any(|v| clean(v) == target) => {
                spec.mounts.push(MountSpec {
                    kind: MountKind::Volume {
                        nocopy: false,
                        subpath: None,
                        labels: BTreeMap::new(),
                    },
                    source: name.clone(),
                    target: target.to_owned(),
                    read_only: false,
                });
            }
            None => continue,
        }
        inherited.push(target.to_owned());
    }
    inherited
}

/// Whether `svc` asks for its old and new containers side by side (an explicit
/// `update_config.order: start-first`, or a canary): they then share inherited volumes.
pub(super) fn side_by_side(svc: &Service) -> bool {
    let order = svc.update_config().and_then(|u| u.order);
    order == Some(UpdateOrder::StartFirst) || svc.gantry.canary.is_some()
}

/// The strategy `gantry plan` shows for `svc` whose containers are `containers`: one that has
/// anonymous volumes is replaced stop-first (its replacement keeps them), unless it asks for
/// old and new side by side ([`side_by_side`]).
pub(super) fn strategy(
    chosen: (Strategy, String),
    svc: &Service,
    containers: &[ContainerInfo],
) -> (Strategy, String) {
    let mut targets: Vec<&str> = containers
        .iter()
        .flat_map(|c| c.anonymous_volumes.iter().map(|(t, _)| t.as_str()))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    if chosen.0 == Strategy::StopFirst || targets.is_empty() || side_by_side(svc) {
        return chosen;
    }
    let why = format!("keeps its anonymous volumes ({})", targets.join(", "));
    (Strategy::StopFirst, why)
}

/// `path` without trailing slashes (`/` stays).
fn clean(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container of the in-memory engine with these anonymous volumes: (target, name).
    async fn old(anonymous: &[(&str, &str)]) -> ContainerInfo {
        use crate::engine::Engine as _;
        let fake = crate::engine::fake::FakeEngine::new();
        fake.publish("x:1", &"1".repeat(64));
        let spec = ContainerSpec {
            name: "old".into(),
            image: crate::engine::ImageRef::new("x:1"),
            mounts: anonymous
                .iter()
                .map(|(t, n)| mount(volume(), n, t))
                .collect(),
            ..ContainerSpec::default()
        };
        fake.pull_image(&spec.image, None, None, None)
            .await
            .unwrap();
        fake.create_container(&spec).await.unwrap();
        fake.containers()["old"].clone()
    }

    fn mount(kind: MountKind, source: &str, target: &str) -> MountSpec {
        MountSpec {
            kind,
            source: source.into(),
            target: target.into(),
            read_only: false,
        }
    }

    fn volume() -> MountKind {
        MountKind::Volume {
            nocopy: false,
            subpath: None,
            labels: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn an_image_volume_and_a_sourceless_entry_are_inherited_an_explicit_mount_wins() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let c = "c".repeat(64);
        let old = old(&[
            ("/var/lib/mysql", &a),
            ("/app/node_modules", &b),
            ("/cache", &c),
        ])
        .await;
        let mut spec = ContainerSpec {
            mounts: vec![
                mount(volume(), "", "/app/node_modules/"),
                mount(volume(), "p_cache", "/cache"),
            ],
            ..ContainerSpec::default()
        };
        let inherited = inherit(&mut spec, &old, &["/var/lib/mysql/".to_owned()]);
        assert_eq!(inherited, ["/app/node_modules", "/var/lib/mysql"]);
        assert_eq!(spec.mounts[0].source, b, "the entry without a source");
        assert_eq!(spec.mounts[1].source, "p_cache", "a named volume wins");
        assert_eq!(
            (
                spec.mounts[2].source.as_str(),
                spec.mounts[2].target.as_str()
            ),
            (a.as_str(), "/var/lib/mysql"),
            "the image's VOLUME"
        );

        // A VOLUME the new image no longer declares is not carried over.
        let mut spec = ContainerSpec::default();
        assert!(inherit(&mut spec, &old, &[]).is_empty());
        assert!(spec.mounts.is_empty());
    }
}
