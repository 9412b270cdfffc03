//! The canonical per-service hash Gantry stores in a container label to decide what changed.
//!
//! What it covers: every field of the resolved [`Service`] that shapes the container, as the
//! service serialises in `docker compose config --format json` form (image, command,
//! entrypoint, environment after `env_file` merging, labels, ports, volumes, networks and their
//! options, healthcheck, restart, user, working_dir, ulimits, resources, ...).
//!
//! What it leaves out, because changing it does not need a new container: `depends_on`,
//! `profiles`, `build`, `develop`, `pull_policy`, `scale`, `attach`, `x-gantry` and other
//! `x-*` keys (rollout and probe settings), and from `deploy`: `replicas`, `update_config`,
//! `rollback_config`, `mode`, `endpoint_mode`, `placement`, `labels`. The env file *paths* are
//! left out too: their content is already in `environment`. The image *digest* is not known
//! here; the planner compares it separately. A device's default `permissions: rwm` hashes as
//! unset.
//!
//! Design: `sha256("gantry-service-v1\n" + JSON)` with every object's keys sorted and no
//! whitespace, hex-encoded. The prefix is bumped if the covered set ever changes, which makes
//! every service look changed once, on purpose.

use sha2::{Digest, Sha256};

use super::model::Service;

/// Version tag mixed into the hash.
pub const HASH_VERSION: &str = "gantry-service-v1";

/// The canonical JSON that [`config_hash`] hashes (exposed for tests and `plan` diffs).
pub fn canonical_json(service: &Service) -> serde_json::Value {
    let mut v = serde_json::to_value(service).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = v.as_object_mut() {
        for k in [
            "attach",
            "depends_on",
            "develop",
            "profiles",
            "build",
            "pull_policy",
            "scale",
        ] {
            obj.remove(k);
        }
        if let Some(deploy) = obj.get_mut("deploy").and_then(|d| d.as_object_mut()) {
            for k in [
                "replicas",
                "update_config",
                "rollback_config",
                "mode",
                "endpoint_mode",
                "placement",
                "labels",
            ] {
                deploy.remove(k);
            }
            // `deploy: {replicas: 3}` must hash like no `deploy` at all.
            if deploy
                .get("resources")
                .and_then(|r| r.as_object())
                .is_some_and(|r| r.is_empty())
            {
                deploy.remove("resources");
            }
            if let Some(rp) = deploy.get("restart_policy").and_then(|r| r.as_object())
                && rp.is_empty()
            {
                deploy.remove("restart_policy");
            }
        }
        if obj
            .get("deploy")
            .and_then(|d| d.as_object())
            .is_some_and(|d| d.is_empty())
        {
            obj.remove("deploy");
        }
        // A device's `permissions` default to `rwm` (printed since compose does); hashed as
        // unset, which is how releases before that default hashed it.
        for device in obj
            .get_mut("devices")
            .and_then(|d| d.as_array_mut())
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_object_mut())
        {
            if device.get("permissions").and_then(|p| p.as_str()) == Some("rwm") {
                device.remove("permissions");
            }
        }
    }
    sort_keys(v)
}

fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sort_keys).collect())
        }
        other => other,
    }
}

/// Hex SHA-256 of the service's canonical model.
pub fn config_hash(service: &Service) -> String {
    let json = canonical_json(service).to_string();
    let mut h = Sha256::new();
    h.update(HASH_VERSION.as_bytes());
    h.update(b"\n");
    h.update(json.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::model::{DependsCondition, DependsOn, Deploy};

    fn base() -> Service {
        Service {
            name: "web".into(),
            image: Some("nginx:1".into()),
            ..Service::default()
        }
    }

    #[test]
    fn stable_and_sensitive() {
        let a = base();
        assert_eq!(a.config_hash(), base().config_hash());
        assert_eq!(a.config_hash().len(), 64);
        let mut b = base();
        b.environment.insert("X".into(), Some("1".into()));
        assert_ne!(a.config_hash(), b.config_hash());
        let mut c = base();
        c.image = Some("nginx:2".into());
        assert_ne!(a.config_hash(), c.config_hash());
    }

    #[test]
    fn ignores_rollout_only_fields() {
        let a = base();
        let mut b = base();
        b.depends_on.insert(
            "db".into(),
            DependsOn {
                condition: DependsCondition::ServiceHealthy,
                restart: false,
                required: true,
            },
        );
        b.deploy = Some(Deploy {
            replicas: Some(3),
            ..Deploy::default()
        });
        b.x_gantry = Some(serde_json::json!({"health": {"url": "http://x"}}));
        b.profiles = vec!["p".into()];
        assert_eq!(a.config_hash(), b.config_hash());
    }

    #[test]
    fn a_device_default_permission_hashes_as_unset_and_a_gpu_request_counts() {
        use crate::compose::model::{Device, DeviceRequest};
        let device = |permissions: Option<&str>| Device {
            source: "/dev/fuse".into(),
            target: "/dev/fuse".into(),
            permissions: permissions.map(str::to_owned),
        };
        let with = |d: Device| Service {
            devices: vec![d],
            ..base()
        };
        // A release written before `rwm` was filled in keeps its hash.
        assert_eq!(
            with(device(None)).config_hash(),
            with(device(Some("rwm"))).config_hash()
        );
        assert_ne!(
            with(device(None)).config_hash(),
            with(device(Some("r"))).config_hash()
        );
        let gpus = Service {
            gpus: vec![DeviceRequest {
                count: Some(-1),
                ..DeviceRequest::default()
            }],
            ..base()
        };
        assert_ne!(base().config_hash(), gpus.config_hash());
    }
}
