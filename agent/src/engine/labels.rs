//! Docker Compose's label keys and naming rules, in one place.
//!
//! What: the label constants Docker Compose v2 puts on containers, networks and volumes
//! (`pkg/api/labels.go`), Gantry's own labels, and the helpers that build Compose's names
//! (`<project>-<service>-<n>`, `<project>-<service>-run-<12 hex>`, `<project>_default`,
//! `<project>_<key>`).
//!
//! Design: Gantry writes exactly the labels Compose writes, so `docker ps`, `docker compose -p X
//! ps/logs` and `docker compose ls` keep working on stacks Gantry applied. Compose's
//! `config-hash` cannot be reproduced from Rust (it hashes Go's JSON of Compose's own model), so
//! change detection uses [`GANTRY_HASH`] instead; a manual `docker compose up` recreates once.
//!
//! Limits: names are not normalised here (lower-casing and the allowed character set of a
//! project name belong to the Compose model); these helpers only join the parts.

use std::collections::BTreeMap;

/// Project name (`docker compose -p`). Every object Gantry creates carries it.
pub const PROJECT: &str = "com.docker.compose.project";
/// Service name, on containers.
pub const SERVICE: &str = "com.docker.compose.service";
/// Replica number (1-based), on service containers; absent on one-off containers.
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
/// `"True"` on one-off containers (`run`, jobs), `"False"` otherwise.
pub const ONEOFF: &str = "com.docker.compose.oneoff";
/// Compose's own hash of the service config; `docker compose ls` needs it to be present.
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// Version of the tool that created the object.
pub const VERSION: &str = "com.docker.compose.version";
/// The service's dependencies, `service:condition:restart` joined with commas.
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
/// Absolute project directory.
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// Compose files, absolute paths joined with commas.
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// The image digest the container was created from.
pub const IMAGE: &str = "com.docker.compose.image";
/// On networks: the network's key in the Compose file.
pub const NETWORK: &str = "com.docker.compose.network";
/// On volumes: the volume's key in the Compose file.
pub const VOLUME: &str = "com.docker.compose.volume";

/// Gantry's hash of its canonical model of the service: what decides "changed".
pub const GANTRY_HASH: &str = "io.gantry.hash";
/// The Gantry release a container belongs to.
pub const GANTRY_RELEASE: &str = "io.gantry.release";
/// The deploy id (from CI/SSM) that created the container.
pub const GANTRY_DEPLOY_ID: &str = "io.gantry.deploy-id";

/// Compose's spelling of booleans in labels.
pub fn compose_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// `<project>-<service>-<n>`: the name of replica `n` (1-based) of a service.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// `<project>-<service>-run-<suffix>`: the name of a one-off container (jobs).
/// Use [`oneoff_suffix`] for a fresh random suffix, as Compose does.
pub fn oneoff_container_name(project: &str, service: &str, suffix: &str) -> String {
    format!("{project}-{service}-run-{suffix}")
}

/// 12 random lower-case hex digits for [`oneoff_container_name`].
pub fn oneoff_suffix() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 6];
    // /dev/urandom never blocks and never runs dry on Linux; fall back to time and pid if the
    // sandbox hides it, since uniqueness (not secrecy) is what matters for a container name.
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mixed = nanos ^ (u128::from(std::process::id()) << 64);
        bytes.copy_from_slice(&mixed.to_le_bytes()[..6]);
    }
    hex::encode(bytes)
}

/// `<project>_default`: the network every service joins when it lists none.
pub fn default_network(project: &str) -> String {
    scoped_name(project, "default")
}

/// `<project>_<key>`: the Docker name of a network or volume declared under `key`, unless the
/// Compose file sets `name:` (then that name is used as is).
pub fn scoped_name(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

/// The Docker name of a network or volume: its explicit `name:` or `<project>_<key>`.
pub fn resource_name(project: &str, key: &str, explicit_name: Option<&str>) -> String {
    explicit_name.map_or_else(|| scoped_name(project, key), str::to_owned)
}

/// The labels Compose puts on a service container (replica `number`) or, with `number: None`,
/// on a one-off container. The caller adds hashes, image, depends_on and the user's labels.
pub fn container_labels(
    project: &str,
    service: &str,
    number: Option<u32>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(PROJECT.to_owned(), project.to_owned());
    labels.insert(SERVICE.to_owned(), service.to_owned());
    labels.insert(ONEOFF.to_owned(), compose_bool(number.is_none()).to_owned());
    if let Some(n) = number {
        labels.insert(CONTAINER_NUMBER.to_owned(), n.to_string());
    }
    labels
}

/// The labels Compose puts on a network declared under `key`.
pub fn network_labels(project: &str, key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PROJECT.to_owned(), project.to_owned()),
        (NETWORK.to_owned(), key.to_owned()),
    ])
}

/// The labels Compose puts on a volume declared under `key`.
pub fn volume_labels(project: &str, key: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PROJECT.to_owned(), project.to_owned()),
        (VOLUME.to_owned(), key.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_compose() {
        assert_eq!(container_name("shop", "web", 2), "shop-web-2");
        assert_eq!(default_network("shop"), "shop_default");
        assert_eq!(resource_name("shop", "data", None), "shop_data");
        assert_eq!(resource_name("shop", "data", Some("pgdata")), "pgdata");
        let suffix = oneoff_suffix();
        assert_eq!(suffix.len(), 12);
        assert!(suffix.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(suffix, oneoff_suffix());
        assert_eq!(
            oneoff_container_name("shop", "migrate", &suffix),
            format!("shop-migrate-run-{suffix}")
        );
    }

    #[test]
    fn container_labels_mark_oneoff() {
        let service = container_labels("shop", "web", Some(1));
        assert_eq!(service[ONEOFF], "False");
        assert_eq!(service[CONTAINER_NUMBER], "1");
        let job = container_labels("shop", "migrate", None);
        assert_eq!(job[ONEOFF], "True");
        assert!(!job.contains_key(CONTAINER_NUMBER));
    }
}
