//! A service's mounts as engine specs: `volumes:` (binds, volumes, tmpfs) with their options,
//! then its secrets and configs as read-only binds.
//!
//! Design: every option the model keeps either reaches the spec or is refused with what to do;
//! `consistency` alone is left out, as Docker on Linux ignores it.

use crate::compose::{MountKind as CMount, Project, Service, VolumeMount};
use crate::engine::{BindRecursive, MountKind, MountSpec};

use super::volume_name;

/// The propagation modes Docker knows.
const PROPAGATIONS: &[&str] = &[
    "rprivate", "private", "rshared", "shared", "rslave", "slave",
];

/// The mounts of a container of `service`, or why one cannot be made (the reason names the
/// key).
pub(super) fn mounts(project: &Project, service: &Service) -> Result<Vec<MountSpec>, String> {
    let mut mounts = Vec::new();
    for (i, v) in service.volumes.iter().enumerate() {
        let kind = kind(v).map_err(|reason| format!("volumes[{i}] ({}): {reason}", v.target))?;
        let source = match (&kind, &v.source) {
            (MountKind::Volume { .. }, Some(key)) => volume_name(project, key),
            (_, Some(s)) => s.clone(),
            (_, None) => String::new(),
        };
        mounts.push(MountSpec {
            kind,
            source,
            target: v.target.clone(),
            read_only: v.read_only,
        });
    }
    for (mounts_of, objects, dir) in [
        (&service.secrets, &project.secrets, "/run/secrets/"),
        (&service.configs, &project.configs, "/"),
    ] {
        for m in mounts_of {
            let obj = objects
                .get(&m.source)
                .ok_or_else(|| format!("refers to undefined secret or config {:?}", m.source))?;
            let file = obj.file.as_ref().ok_or_else(|| {
                format!(
                    "secret/config {:?}: only `file:` sources are supported",
                    m.source
                )
            })?;
            let target = match &m.target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) => format!("{dir}{t}"),
                None => format!("{dir}{}", m.source),
            };
            mounts.push(MountSpec {
                kind: MountKind::Bind {
                    create_host_path: false,
                    propagation: None,
                    selinux: None,
                    recursive: None,
                },
                source: file.display().to_string(),
                target,
                read_only: true,
            });
        }
    }
    Ok(mounts)
}

/// One `volumes:` entry's kind with its options.
fn kind(v: &VolumeMount) -> Result<MountKind, String> {
    let misplaced = [
        ("bind", v.bind.is_some(), CMount::Bind),
        ("volume", v.volume.is_some(), CMount::Volume),
        ("tmpfs", v.tmpfs.is_some(), CMount::Tmpfs),
    ]
    .into_iter()
    .find(|(_, given, kind)| *given && *kind != v.kind);
    if let Some((key, _, _)) = misplaced {
        return Err(format!(
            "`{key}:` options on a mount of type {}: they would not apply; remove them or \
             change the type",
            serde_json::to_value(v.kind)
                .ok()
                .and_then(|t| t.as_str().map(str::to_owned))
                .unwrap_or_default()
        ));
    }
    Ok(match v.kind {
        CMount::Bind => bind(v)?,
        CMount::Volume => {
            let options = v.volume.clone().unwrap_or_default();
            MountKind::Volume {
                nocopy: options.nocopy,
                subpath: options.subpath.filter(|s| !s.is_empty()),
                labels: options.labels,
            }
        }
        CMount::Tmpfs => MountKind::Tmpfs {
            size_bytes: v.tmpfs.as_ref().and_then(|t| t.size).map(|s| s as i64),
            mode: v.tmpfs.as_ref().and_then(|t| t.mode),
        },
        other => return Err(format!("mount type {other:?} is not supported")),
    })
}

/// A bind mount. Compose creates a missing host path for the short syntax and a long one
/// without `bind:` options; with them, only when `create_host_path: true` says so.
fn bind(v: &VolumeMount) -> Result<MountKind, String> {
    let options = v.bind.clone().unwrap_or_default();
    let create_host_path = v.bind.is_none() || options.create_host_path == Some(true);
    let propagation = options.propagation.filter(|p| !p.is_empty());
    if let Some(p) = propagation.as_deref().filter(|p| !PROPAGATIONS.contains(p)) {
        return Err(format!(
            "bind.propagation {p:?} is not a propagation mode: use {}",
            PROPAGATIONS.join(", ")
        ));
    }
    let selinux = options.selinux.filter(|s| !s.is_empty());
    if let Some(s) = selinux.as_deref().filter(|s| !["z", "Z"].contains(s)) {
        return Err(format!(
            "bind.selinux {s:?} is not a relabel option: use z (shared) or Z (private)"
        ));
    }
    let recursive = match options.recursive.as_deref() {
        None | Some("enabled") => None,
        Some("disabled") => Some(BindRecursive::Disabled),
        Some("writable") => Some(BindRecursive::Writable),
        Some("readonly") => Some(BindRecursive::ReadOnly),
        Some(other) => {
            return Err(format!(
                "bind.recursive {other:?}: use enabled, disabled, writable or readonly"
            ));
        }
    };
    if let Some(label) = &selinux {
        let why = if recursive.is_some() {
            "with bind.recursive"
        } else if create_host_path {
            ""
        } else {
            "without bind.create_host_path: true"
        };
        if !why.is_empty() {
            return Err(format!(
                "bind.selinux {label:?} {why}: Docker relabels only in its bind syntax \
                 (`SOURCE:TARGET:{label}`), which creates a missing host path and binds \
                 submounts; set bind.create_host_path: true and remove bind.recursive, or \
                 relabel the host path yourself (chcon) and remove bind.selinux"
            ));
        }
    }
    Ok(MountKind::Bind {
        create_host_path,
        propagation,
        selinux,
        recursive,
    })
}
