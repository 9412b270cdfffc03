//! The fake's volumes, as Docker makes them: a `volumes:` entry without a source, and an
//! image's `VOLUME` nothing else is mounted at, get an anonymous volume of their own (a
//! 64-hex name); a spec that names one (inherited) mounts that one.

use super::FakeEngine;
use crate::engine::{ContainerSpec, MountKind, is_anonymous_volume};

/// The named volumes `spec` mounts, sorted.
pub(super) fn named(spec: &ContainerSpec) -> Vec<String> {
    let mut v: Vec<String> = volumes(spec)
        .filter(|s| !s.is_empty() && !is_anonymous_volume(s))
        .map(str::to_owned)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The anonymous volumes of container `id` made from `spec` over an image declaring
/// `image_volumes`: (target, name), sorted. New ones are named after the container and target.
pub(super) fn anonymous(
    spec: &ContainerSpec,
    image_volumes: &[String],
    id: &str,
) -> Vec<(String, String)> {
    let fresh = |target: &str| fresh(id, target);
    let mut found: Vec<(String, String)> = spec
        .mounts
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Volume { .. }))
        .filter(|m| m.source.is_empty() || is_anonymous_volume(&m.source))
        .map(|m| {
            let name = match m.source.as_str() {
                "" => fresh(&m.target),
                s => s.to_owned(),
            };
            (m.target.clone(), name)
        })
        .collect();
    for target in image_volumes {
        if !spec.mounts.iter().any(|m| m.target == *target) {
            found.push((target.clone(), fresh(target)));
        }
    }
    found.sort();
    found
}

/// The name of the anonymous volume the fake makes for container `id` at `target`.
pub(super) fn fresh(id: &str, target: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("{id}:{target}")))
}

fn volumes(spec: &ContainerSpec) -> impl Iterator<Item = &str> {
    spec.mounts
        .iter()
        .filter(|m| matches!(m.kind, MountKind::Volume { .. }))
        .map(|m| m.source.as_str())
}

impl FakeEngine {
    /// Gives the image published under `reference` the mount points `volumes` (`VOLUME`).
    pub fn declare_volumes(&self, reference: &str, volumes: &[&str]) {
        let mut s = self.lock();
        let image = s
            .registry
            .get_mut(reference)
            .expect("fake engine: declare_volumes of an image not published");
        image.volumes = volumes.iter().map(|v| (*v).to_owned()).collect();
        image.volumes.sort();
    }
}
