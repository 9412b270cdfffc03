//! `cli::settings` → `deploy::deployer`: the `registries:` section of a real `gantry.yaml` is
//! validated once at the edge and reaches the deployer; an invalid one is a configuration
//! error naming the file and the key.
//!
//! Limits: needs the Docker daemon only to build an engine (nothing is deployed).

use std::sync::Arc;

use gantry_agent::cli::settings::{ConfigError, Settings};
use gantry_agent::deploy;
use gantry_agent::engine::DockerEngine;

async fn engine() -> Arc<DockerEngine> {
    Arc::new(
        DockerEngine::connect(std::env::var("DOCKER_HOST").ok().as_deref())
            .await
            .unwrap_or_else(|e| panic!("the Docker daemon is needed: {e}; run tests/env/up")),
    )
}

#[tokio::test]
async fn a_valid_section_builds_a_deployer_and_an_invalid_one_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gantry.yaml"),
        "registries:\n  ecr: [127.0.0.1:5551]\n  ecr_region: us-east-1\n  docker_config: /etc/gantry/docker\n",
    )
    .unwrap();
    let registries = Settings::load(dir.path())
        .and_then(|s| s.registries())
        .unwrap();
    assert!(registries.is_ecr("127.0.0.1:5551"));
    deploy::deployer(engine().await, state.path(), registries);

    std::fs::write(
        dir.path().join("gantry.yaml"),
        "registries:\n  ecr: [ok.example.com, 'bad host']\n",
    )
    .unwrap();
    let err = Settings::load(dir.path())
        .and_then(|s| s.registries())
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::Key { key, .. } if key == "registries.ecr[1]"),
        "{err:?}"
    );
    assert!(err.to_string().contains("gantry.yaml"), "{err}");

    std::fs::write(
        dir.path().join("gantry.yaml"),
        "registries:\n  ecr_hosts: [a]\n",
    )
    .unwrap();
    let err = Settings::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("gantry.yaml") && err.contains("ecr_hosts"),
        "{err}"
    );
}
