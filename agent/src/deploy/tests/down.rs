//! `gantry down` on the in-memory engine: containers, networks and volumes go (only what the
//! stack made), the release says the stack is down, and it stays down.

use crate::engine::Object;
use crate::ledger::Outcome;

use super::super::{DeployRequest, Quiet};
use super::Setup;

const STACK: &str = "services:
  db:
    image: app:${V}
    networks: [back]
    volumes: [data:/data, shared:/shared]
    x-gantry: {min_ready: 1s}
  web:
    image: app:${V}
    networks: [back, front]
    x-gantry: {min_ready: 1s}
networks:
  back: {}
  front: {name: edge-front}
volumes:
  data: {}
  shared: {external: true}
";

fn down_request() -> DeployRequest {
    DeployRequest::new("app", crate::compose::LoadOptions::default())
}

#[tokio::test(start_paused = true)]
async fn down_removes_the_stack_and_only_what_it_made_and_stays_down() {
    let s = Setup::new();
    s.engine.add_resource(&Object::Volume("shared".into()), &[]);
    let report = s.deploy(STACK, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    // A network of the same name as the stack's `front` but made by someone else is kept.
    s.engine.add_resource(
        &Object::Network("edge-front".into()),
        &[("com.docker.compose.project", "other")],
    );

    let report = s.deployer.down(&down_request(), false, &Quiet).await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::Ok,
        "{:?}",
        report.error
    );
    assert!(
        s.engine.containers().is_empty(),
        "{:?}",
        s.engine.containers()
    );
    let left = s.engine.resources();
    assert!(!left.contains("network app_back"), "{left:?}");
    assert!(
        left.contains("network edge-front"),
        "not the stack's: {left:?}"
    );
    assert!(
        left.contains("volume app_data"),
        "volumes stay without --volumes: {left:?}"
    );
    assert!(left.contains("volume shared"), "{left:?}");

    let releases = s
        .deployer
        .ledger()
        .stack("app")
        .unwrap()
        .releases()
        .unwrap();
    let last = releases.last().unwrap();
    assert!(last.outcome.is_good(), "{:?}", last.outcome);
    assert!(last.files.is_empty());
    assert_eq!(last.model["services"], serde_json::json!({}));

    // Again: nothing to do, nothing recorded.
    let again = s.deployer.down(&down_request(), false, &Quiet).await;
    assert_eq!(again.outcome, Outcome::Unchanged, "{:?}", again.error);
    let count = s
        .deployer
        .ledger()
        .stack("app")
        .unwrap()
        .releases()
        .unwrap()
        .len();
    assert_eq!(count, releases.len());

    // Supervision's reconcile brings nothing back.
    let reconcile = s.deployer.reconcile(&down_request(), &Quiet).await;
    assert!(
        reconcile.exit_code() == crate::ExitCode::Ok,
        "{:?}",
        reconcile.error
    );
    assert!(s.engine.containers().is_empty());

    // --volumes takes the stack's own named volume, never the external one.
    let report = s.deployer.down(&down_request(), true, &Quiet).await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::Ok,
        "{:?}",
        report.error
    );
    let left = s.engine.resources();
    assert!(!left.contains("volume app_data"), "{left:?}");
    assert!(left.contains("volume shared"), "{left:?}");

    // A rollback brings back the release before the down.
    let back = s.deployer.rollback(&down_request(), None, &Quiet).await;
    assert_eq!(back.exit_code(), crate::ExitCode::Ok, "{:?}", back.error);
    let names: Vec<String> = s.engine.containers().into_keys().collect();
    assert_eq!(names, ["app-db-1", "app-web-1"]);
}

#[tokio::test(start_paused = true)]
async fn down_records_even_when_the_containers_are_already_gone() {
    let s = Setup::new();
    let report = s
        .deploy(STACK.replace("{external: true}", "{}").as_str(), "1")
        .await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    for name in s.engine.containers().into_keys() {
        use crate::engine::Engine as _;
        s.engine.remove_container(&name, true).await.unwrap();
    }
    let report = s.deployer.down(&down_request(), false, &Quiet).await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::Ok,
        "{:?}",
        report.error
    );
    assert!(report.release.is_some(), "a down release is recorded");
    // Without it the daemon's reconcile would bring the last release back.
    let reconcile = s.deployer.reconcile(&down_request(), &Quiet).await;
    assert!(
        reconcile.exit_code() == crate::ExitCode::Ok,
        "{:?}",
        reconcile.error
    );
    assert!(s.engine.containers().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_network_still_in_use_is_kept_and_the_down_succeeds() {
    let s = Setup::new();
    let shared = "services:
  web:
    image: app:${V}
    networks: [front]
    x-gantry: {min_ready: 1s}
networks:
  front: {name: shared-front}
";
    assert_eq!(s.deploy(shared, "1").await.outcome, Outcome::Succeeded);
    // Another stack's container on the same network.
    let mut other = s.request(&shared.replace("web:", "api:"), "1");
    other.stack = "other".into();
    other.load.project_name = Some("other".into());
    let report = s.deployer.deploy(&other, &Quiet).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let report = s.deployer.down(&down_request(), false, &Quiet).await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::Ok,
        "{:?}",
        report.error
    );
    assert!(s.engine.resources().contains("network shared-front"));
    assert_eq!(
        s.engine.containers().into_keys().collect::<Vec<_>>(),
        ["other-api-1"]
    );
}
