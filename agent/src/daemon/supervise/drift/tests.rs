//! Drift against the in-memory engine: an env file rewritten after the deploy (a rotated
//! secret) is not drift, for its service nor for one bound to it; a container of theirs
//! stopped by hand still is.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::drift;
use crate::compose::LoadOptions;
use crate::daemon::jobs::Jobs;
use crate::daemon::metrics::Metrics;
use crate::daemon::supervise::Supervisor;
use crate::daemon::{DaemonConfig, HealConfig, StackPolicy};
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::engine::Engine;
use crate::engine::fake::FakeEngine;
use crate::ledger::Ledger;

const COMPOSE: &str = "services:
  web:
    image: app:1
    env_file: web.env
  worker:
    image: app:1
    depends_on:
      web: {condition: service_started, restart: true}
  api:
    image: app:1
";

fn supervisor(dir: &Path, engine: Arc<FakeEngine>, ledger: Ledger) -> Arc<Supervisor> {
    let engine: Arc<dyn Engine> = engine;
    let config = DaemonConfig {
        socket: dir.join("sock"),
        socket_group: None,
        socket_group_explicit: false,
        metrics_address: None,
        heal: HealConfig::default(),
        debounce: Duration::from_millis(100),
        resync_interval: Duration::from_secs(60),
        defaults: StackPolicy {
            watch_env_files: false,
            ..StackPolicy::default()
        },
        stacks: BTreeMap::new(),
        state_dir: dir.to_owned(),
        registries: Default::default(),
        environment: BTreeMap::new(),
    };
    let metrics = Arc::new(Metrics::default());
    let jobs = Jobs::new(
        Deployer::new(engine.clone(), ledger.clone()),
        metrics.clone(),
    );
    Supervisor::new(Arc::new(config), engine, ledger, jobs, metrics)
}

/// [`COMPOSE`] deployed as stack `app` with `web.env` holding `TOKEN=a`: the directory, the
/// env file, the engine and the ledger.
async fn deployed() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Arc<FakeEngine>,
    Ledger,
) {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("web.env");
    std::fs::write(&env, "TOKEN=a\n").unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, COMPOSE).unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    let ledger = Ledger::new(&dir.path().join("state"));
    let load = LoadOptions {
        files: vec![file],
        project_name: Some("app".into()),
        ..LoadOptions::default()
    };
    let report = Deployer::new(engine.clone(), ledger.clone())
        .deploy(&DeployRequest::new("app", load), &Quiet)
        .await;
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    (dir, env, engine, ledger)
}

/// `watch_env_files: false`, the secret behind `web.env` rotated: a resync compares the stack
/// with its release and changes nothing (before, it recreated `web` and `worker` as "drift",
/// recording no release); a container stopped by hand is still brought back.
#[tokio::test(start_paused = true)]
async fn an_env_file_rewritten_after_the_deploy_is_not_drift() {
    let (dir, env, engine, ledger) = deployed().await;
    let release = ledger.stack("app").unwrap().last_good().unwrap().unwrap();
    let listed = engine.list_containers("app", true).await.unwrap();
    assert_eq!(drift(&release, &listed).unwrap(), Vec::<String>::new());

    std::fs::write(&env, "TOKEN=b\n").unwrap();
    engine.clear_calls();
    assert_eq!(drift(&release, &listed).unwrap(), Vec::<String>::new());
    let sup = supervisor(dir.path(), engine.clone(), ledger.clone());
    sup.clone().resync_all().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = engine.calls();
    assert!(calls.is_empty(), "{calls:#?}");
    assert_eq!(engine.env_of("app-web-1")["TOKEN"], "a");

    // A container stopped by hand is drift, its env file changed or not.
    engine.stop_by_hand("app-web-1");
    engine.stop_by_hand("app-api-1");
    let listed = engine.list_containers("app", true).await.unwrap();
    let mut found = drift(&release, &listed).unwrap();
    found.sort();
    assert_eq!(found, ["api start", "web start"]);
}

/// The secret behind `web.env` rotated (not applied: `watch_env_files: false`), then `api`'s
/// container removed by hand: the reconcile that drift starts brings `api` back and leaves
/// `web` and `worker` (bound to `web`) running as they are, with the old value; before, it
/// recreated them with the new file, applying the change the stack's policy keeps out.
#[tokio::test(start_paused = true)]
async fn a_reconcile_for_another_service_leaves_an_env_file_change_unapplied() {
    let (dir, env, engine, ledger) = deployed().await;
    let before = engine.containers();

    std::fs::write(&env, "TOKEN=b\n").unwrap();
    engine
        .remove_container(&before["app-api-1"].id, true)
        .await
        .unwrap();
    engine.clear_calls();
    let sup = supervisor(dir.path(), engine.clone(), ledger.clone());
    sup.clone().resync_all().await;
    tokio::time::sleep(Duration::from_secs(30)).await;

    let after = engine.containers();
    let calls = engine.calls();
    assert!(after["app-api-1"].state.running, "{calls:#?}");
    for name in ["app-web-1", "app-worker-1"] {
        assert_eq!(
            after[name].id, before[name].id,
            "{name} replaced: {calls:#?}"
        );
    }
    assert_eq!(engine.env_of("app-web-1")["TOKEN"], "a");
    // Nothing left to reconcile: the next resync changes nothing.
    engine.clear_calls();
    sup.clone().resync_all().await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = engine.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("create") || c.starts_with("stop")),
        "{calls:#?}"
    );
}

/// The secret behind `web.env` rotated (not applied), then `web`'s container stopped by hand:
/// the reconcile brings `web` back with a new container, and `worker`, bound to it
/// (`depends_on` with `restart: true`), is recreated with it, not kept beside a container that
/// is gone; `api`, bound to nothing, is left as it is.
#[tokio::test(start_paused = true)]
async fn a_service_bound_to_one_a_reconcile_replaces_is_recreated_with_it() {
    let (dir, env, engine, ledger) = deployed().await;
    let before = engine.containers();

    std::fs::write(&env, "TOKEN=b\n").unwrap();
    engine.stop_by_hand("app-web-1");
    engine.clear_calls();
    let sup = supervisor(dir.path(), engine.clone(), ledger.clone());
    sup.clone().resync_all().await;
    tokio::time::sleep(Duration::from_secs(30)).await;

    let after = engine.containers();
    let calls = engine.calls();
    assert!(after["app-web-1"].state.running, "{calls:#?}");
    assert_ne!(after["app-web-1"].id, before["app-web-1"].id, "{calls:#?}");
    assert_ne!(
        after["app-worker-1"].id, before["app-worker-1"].id,
        "worker kept beside a web container that is gone: {calls:#?}"
    );
    assert_eq!(after["app-api-1"].id, before["app-api-1"].id, "{calls:#?}");
}
