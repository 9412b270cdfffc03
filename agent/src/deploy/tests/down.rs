//! `gantry down` on the in-memory engine: containers, networks and volumes go (only what the
//! stack made), the release says the stack is down, and it stays down.

use std::sync::Mutex;

use futures_util::FutureExt as _;

use crate::engine::Object;
use crate::ledger::{Holder, Outcome, StackLedger};

use super::super::{DeployRequest, Progress, Quiet};
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

/// `gantry down app [--volumes]`, which must succeed.
async fn down(s: &Setup, volumes: bool) -> super::super::DeployReport {
    let report = s.deployer.down(&down_request(), volumes, &Quiet).await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::Ok,
        "{:?}",
        report.error
    );
    report
}

/// A deploy of [`STACK`] with its `shared` volume its own (not external).
async fn deploy_own(s: &Setup, version: &str) -> super::super::DeployReport {
    s.deploy(&STACK.replace("{external: true}", "{}"), version)
        .await
}

/// A [`Progress`] that notes, as each line is said, who holds the stack's lock, whether
/// another holder could take it, and whether the ledger records the stack as down; it panics
/// (a process dying there) at the line `die_at`.
struct Watch {
    ledger: StackLedger,
    die_at: Option<&'static str>,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Debug, Clone)]
struct Seen {
    line: String,
    holder: Option<Holder>,
    lock_free: bool,
    recorded_down: bool,
}

impl Watch {
    fn new(s: &Setup, die_at: Option<&'static str>) -> Self {
        Self {
            ledger: s.deployer.ledger().stack("app").unwrap(),
            die_at,
            seen: Mutex::default(),
        }
    }

    /// What was noted at `line`.
    fn at(&self, line: &str) -> Seen {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .find(|s| s.line == line)
            .cloned()
            .unwrap_or_else(|| panic!("no line {line:?} in {seen:#?}"))
    }
}

impl Progress for Watch {
    fn step(&self, service: Option<&str>, message: &str) {
        let line = match service {
            Some(service) => format!("{service}: {message}"),
            None => message.to_owned(),
        };
        let other = Holder::me("another gantry", None);
        let recorded_down = self
            .ledger
            .releases()
            .unwrap()
            .last()
            .is_some_and(|r| r.down && r.outcome.is_good());
        self.seen.lock().unwrap().push(Seen {
            holder: self.ledger.holder(),
            lock_free: self.ledger.try_lock(&other).is_ok(),
            recorded_down,
            line: line.clone(),
        });
        if self.die_at == Some(line.as_str()) {
            panic!("killed at {line:?}");
        }
    }
}

/// The stack's releases, oldest first.
fn releases(s: &Setup) -> Vec<crate::ledger::Release> {
    s.deployer
        .ledger()
        .stack("app")
        .unwrap()
        .releases()
        .unwrap()
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

    down(&s, false).await;
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

    let all = releases(&s);
    let last = all.last().unwrap();
    assert!(last.outcome.is_good(), "{:?}", last.outcome);
    assert!(last.files.is_empty());
    assert_eq!(last.model["services"], serde_json::json!({}));

    // Again: nothing to do, nothing recorded.
    let again = s.deployer.down(&down_request(), false, &Quiet).await;
    assert_eq!(again.outcome, Outcome::Unchanged, "{:?}", again.error);
    let count = releases(&s).len();
    assert_eq!(count, all.len());

    // Supervision's reconcile brings nothing back.
    let reconcile = s.deployer.reconcile(&down_request(), &Quiet).await;
    assert!(
        reconcile.exit_code() == crate::ExitCode::Ok,
        "{:?}",
        reconcile.error
    );
    assert!(s.engine.containers().is_empty());

    // --volumes takes the stack's own named volume, never the external one.
    down(&s, true).await;
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
    let report = deploy_own(&s, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    for name in s.engine.containers().into_keys() {
        use crate::engine::Engine as _;
        s.engine.remove_container(&name, true).await.unwrap();
    }
    down(&s, false).await;
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
    down(&s, false).await;
    assert!(s.engine.resources().contains("network shared-front"));
    assert_eq!(
        s.engine.containers().into_keys().collect::<Vec<_>>(),
        ["other-api-1"]
    );
}

#[tokio::test(start_paused = true)]
async fn rollback_skips_a_down_and_a_deploy_after_a_down_runs_its_jobs_again() {
    let s = Setup::new();
    let compose = "services:
  migrate:
    image: app:${V}
    x-gantry: {job: {timeout: 1m}}
  web:
    image: app:${V}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    down(&s, true).await;
    s.engine.clear_calls();
    // As a first deploy: the migration runs again (a fresh volume needs it).
    let report = s.deploy(compose, "2").await;
    assert!(report.outcome.is_good(), "{:?}", report.error);
    let calls = s.engine.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("create app-migrate")),
        "the job did not run after the down: {calls:#?}"
    );
    // The release before the current one is version 1, not the down between them.
    let back = s.deployer.rollback(&down_request(), None, &Quiet).await;
    assert_eq!(back.exit_code(), crate::ExitCode::Ok, "{:?}", back.error);
    super::only_web_runs(&s, "1");
}

#[tokio::test(start_paused = true)]
async fn a_name_any_release_declares_external_is_never_removed() {
    let s = Setup::new();
    let own = "services:
  db:
    image: app:${V}
    volumes: [data:/data]
    x-gantry: {min_ready: 1s}
volumes:
  data: {name: pgdata}
";
    assert!(s.deploy(own, "1").await.outcome.is_good());
    // The next release takes the same volume as external (made by hand, kept on purpose).
    let external = own.replace("{name: pgdata}", "{name: pgdata, external: true}");
    assert!(s.deploy(&external, "2").await.outcome.is_good());
    down(&s, true).await;
    assert!(s.engine.resources().contains("volume pgdata"));
}

#[tokio::test(start_paused = true)]
async fn a_second_down_after_a_failed_deploy_removes_what_that_deploy_made() {
    let s = Setup::new();
    assert!(deploy_own(&s, "1").await.outcome.is_good());
    down(&s, true).await;
    assert!(!s.engine.resources().contains("network app_back"));
    // A deploy that fails (version 3 crashes) rolls back to the down, leaving its network.
    s.engine.crash_image(&format!("sha256:{}", "3".repeat(64)));
    let failed = deploy_own(&s, "3").await;
    assert_eq!(
        failed.exit_code(),
        crate::ExitCode::RolledBack,
        "{:?}",
        failed.error
    );
    assert!(s.engine.containers().is_empty());
    assert!(s.engine.resources().contains("network app_back"));
    down(&s, true).await;
    let left = s.engine.resources();
    assert!(
        !left.contains("network app_back") && !left.contains("volume app_data"),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn down_of_a_stack_never_deployed_records_nothing() {
    let s = Setup::new();
    let report = down(&s, false).await;
    assert_eq!(report.outcome, Outcome::Unchanged);
    let releases = releases(&s);
    assert!(releases.is_empty(), "{releases:?}");
}

#[tokio::test(start_paused = true)]
async fn services_go_in_reverse_dependency_order() {
    let s = Setup::new();
    let compose = "services:
  db:
    image: app:${V}
    x-gantry: {min_ready: 1s}
  web:
    image: app:${V}
    depends_on: [db]
    deploy: {replicas: 2}
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    s.engine.clear_calls();
    down(&s, false).await;
    let calls = s.calls_but_pulls();
    // db only after web (the replicas going at once shows on real Docker: deploy_down.rs).
    let at = |c: &str| super::at(&calls, c);
    assert!(
        at("remove app-web-1").max(at("remove app-web-2")) < at("stop app-db-1"),
        "{calls:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_down_cut_short_is_not_undone_and_says_so() {
    let s = Setup::new();
    assert!(deploy_own(&s, "1").await.outcome.is_good());
    // Docker stops answering after the first stop: the down runs into its timeout.
    s.engine.clear_calls();
    s.engine.freeze_after(Some(1));
    let mut req = down_request();
    req.timeout = std::time::Duration::from_secs(30);
    let report = s.deployer.down(&req, false, &Quiet).await;
    s.engine.freeze_after(None);
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::RollbackFailed,
        "{report:?}"
    );
    let calls = s.calls_but_pulls();
    assert!(
        !calls.iter().any(|c| c.starts_with("create")),
        "a down was undone: {calls:#?}"
    );
    let all = releases(&s);
    let last = all.last().unwrap();
    assert!(last.down && last.stopped_where_it_failed(), "{last:?}");
    // Nor are its networks removed: what still runs keeps them.
    assert!(s.engine.resources().contains("network app_back"));
}

#[tokio::test(start_paused = true)]
async fn the_networks_go_recorded_and_under_the_lock_that_removed_the_containers() {
    let s = Setup::new();
    assert!(deploy_own(&s, "1").await.outcome.is_good());
    let watch = Watch::new(&s, None);
    let report = s.deployer.down(&down_request(), true, &watch).await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::Ok,
        "{:?}",
        report.error
    );
    let containers = watch.at("web: removing (gantry down)");
    assert!(
        !containers.lock_free && containers.holder.is_some(),
        "{containers:?}"
    );
    // A job that finds the lock busy is told a down holds it.
    assert_eq!(
        containers.holder.as_ref().map(|h| h.command.as_str()),
        Some("gantry down app")
    );
    for line in [
        "network app_back removed",
        "network edge-front removed",
        "volume app_data removed",
        "volume app_shared removed",
    ] {
        let removal = watch.at(line);
        // The same hold of the lock: no other job could come in between, and the down did
        // not wait for the lock twice.
        assert!(!removal.lock_free, "{removal:?}");
        assert_eq!(removal.holder, containers.holder, "{removal:?}");
        // Recorded first: a down killed now leaves a ledger that says the stack is down.
        assert!(removal.recorded_down, "{removal:?}");
    }
    // The lock is released once the down returns.
    assert!(watch.ledger.try_lock(&Holder::me("next", None)).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_down_killed_while_removing_networks_is_finished_by_the_next_down() {
    let s = Setup::new();
    assert!(deploy_own(&s, "1").await.outcome.is_good());
    let watch = Watch::new(&s, Some("network app_back removed"));
    let killed = std::panic::AssertUnwindSafe(s.deployer.down(&down_request(), true, &watch))
        .catch_unwind()
        .await;
    assert!(killed.is_err(), "the down was not killed: {killed:?}");
    assert!(s.engine.containers().is_empty());
    let left = s.engine.resources();
    assert!(
        left.contains("network edge-front") && left.contains("volume app_data"),
        "{left:?}"
    );
    let recorded = releases(&s).len();
    // The next down finds the stack down, records nothing and removes the rest.
    let again = down(&s, true).await;
    assert_eq!(again.outcome, Outcome::Unchanged, "{:?}", again.error);
    assert_eq!(releases(&s).len(), recorded);
    let left = s.engine.resources();
    assert!(
        !["network edge-front", "volume app_data", "volume app_shared"]
            .iter()
            .any(|o| left.contains(*o)),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_down_that_cannot_take_the_lock_changes_nothing() {
    let s = Setup::new();
    assert!(deploy_own(&s, "1").await.outcome.is_good());
    // A stack lock another process holds: the down exits 75 and changes nothing.
    let other = s
        .deployer
        .ledger()
        .stack("app")
        .unwrap()
        .try_lock(&Holder::me("another gantry", None))
        .unwrap();
    let busy = s.deployer.down(&down_request(), true, &Quiet).await;
    assert_eq!(busy.exit_code(), crate::ExitCode::TempFail, "{busy:?}");
    drop(other);
    assert_eq!(s.engine.containers().len(), 2);
    let left = s.engine.resources();
    assert!(
        left.contains("network app_back") && left.contains("volume app_data"),
        "{left:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn down_volumes_takes_the_containers_anonymous_volumes_a_plain_down_keeps_them() {
    let s = Setup::new();
    s.engine.declare_volumes("app:1", &["/var/lib/db"]);
    let compose = "services:
  db:
    image: app:${V}
    volumes: [/scratch]
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    let anonymous: Vec<String> = s.engine.containers()["app-db-1"]
        .anonymous_volumes
        .iter()
        .map(|(_, name)| format!("volume {name}"))
        .collect();
    assert_eq!(anonymous.len(), 2);

    // A plain down keeps them, as Compose does.
    down(&s, false).await;
    let left = s.engine.resources();
    assert!(anonymous.iter().all(|v| left.contains(v)), "{left:?}");

    // --volumes: those of the containers it removes go too.
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    let second: Vec<String> = s.engine.containers()["app-db-1"]
        .anonymous_volumes
        .iter()
        .map(|(_, name)| format!("volume {name}"))
        .collect();
    down(&s, true).await;
    let left = s.engine.resources();
    assert!(second.iter().all(|v| !left.contains(v)), "{left:?}");
}
