//! A heal against the gated in-memory engine ([`Gated`]): a daemon gone between a heal's stop
//! and start, the container's own stop grace period, a deploy arriving during a heal, a probe
//! that passes again after the backoff.

use std::sync::Arc;
use std::time::Duration;

use super::gated::Gated;
use super::{count, deployed_file, deployed_plain, load_file, supervisor, supervisor_on};
use crate::daemon::StackPolicy;
use crate::daemon::jobs::{Job, JobKind, Origin};
use crate::daemon::supervise::Cause;
use crate::deploy::DeployRequest;
use crate::engine::HealthStatus;

fn no_reconcile() -> StackPolicy {
    StackPolicy {
        reconcile: false,
        ..StackPolicy::default()
    }
}

/// A heal of `service`'s first container (turned unhealthy) by a daemon killed between the
/// heal's stop and its start (the start held, then the daemon dropped).
async fn heal_cut_before_its_start(
    dir: &tempfile::TempDir,
    engine: &Arc<crate::engine::fake::FakeEngine>,
    ledger: &crate::ledger::Ledger,
    service: &str,
) {
    let name = format!("app-{service}-1");
    let gated = Arc::new(Gated::new(engine.clone()));
    gated.hold("start");
    let (sup, _) = supervisor_on(dir.path(), gated.clone(), ledger.clone(), no_reconcile());
    engine.set_health(&name, Some(HealthStatus::Unhealthy));
    let c = engine.containers()[&name].clone();
    let heal = tokio::spawn(sup.clone().heal(
        c.id.clone(),
        c.name.clone(),
        "app".into(),
        service.into(),
        Cause::Unhealthy,
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(gated.waiting(), vec![format!("start {name}")]);
    // The daemon dies there.
    heal.abort();
    let _ = heal.await;
    drop(sup);
}

/// A daemon killed (kill -9, a watchdog timeout, a `systemctl restart` past its wait) between
/// a heal's stop and its start: the next daemon starts the container, although its stack's
/// policy reconciles nothing.
#[tokio::test(start_paused = true)]
async fn a_container_a_dead_daemon_stopped_to_heal_is_started_by_the_next() {
    let (dir, engine, ledger) = deployed_plain().await;
    heal_cut_before_its_start(&dir, &engine, &ledger, "web").await;
    assert!(!engine.containers()["app-web-1"].state.running);

    let (next, _) = supervisor_on(dir.path(), engine.clone(), ledger, no_reconcile());
    next.clone().resync_all().await;
    let calls = engine.calls();
    assert!(
        engine.containers()["app-web-1"].state.running,
        "left stopped: {calls:#?}"
    );
    assert_eq!(count(&calls, "start app-web-1"), 1, "{calls:#?}");
    // Done once: nothing left for the next resync.
    next.clone().resync_all().await;
    assert_eq!(count(&engine.calls(), "start app-web-1"), 1);
}

/// The container a dead daemon's heal left stopped is started by the next daemon as a heal
/// would have: its `post_start` hooks run after the start.
#[tokio::test(start_paused = true)]
async fn the_next_daemon_runs_the_post_start_hooks_of_a_container_it_starts_for_a_heal() {
    let (dir, engine, ledger) = deployed_file(
        "services:\n  db:\n    image: app:1\n    post_start:\n      - command: [register, me]\n",
    )
    .await;
    heal_cut_before_its_start(&dir, &engine, &ledger, "db").await;
    engine.clear_calls();
    let (next, _) = supervisor_on(dir.path(), engine.clone(), ledger, no_reconcile());
    next.clone().resync_all().await;
    let calls = engine.calls();
    let start = calls.iter().position(|c| c == "start app-db-1");
    let hook = calls.iter().position(|c| c == "exec app-db-1 register me");
    assert!(start.is_some() && start < hook, "{calls:#?}");
}

/// What a heal of `app-db-1` (turned unhealthy) asks of the engine, on a daemon that
/// reconciles.
async fn calls_of_a_heal(
    dir: &tempfile::TempDir,
    engine: &Arc<crate::engine::fake::FakeEngine>,
    ledger: crate::ledger::Ledger,
) -> Vec<String> {
    let (sup, _) = supervisor_on(dir.path(), engine.clone(), ledger, StackPolicy::default());
    engine.set_health("app-db-1", Some(HealthStatus::Unhealthy));
    sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    engine.calls()
}

/// A heal runs the service's `pre_stop` hooks before its stop, as a rollout does (a worker
/// that hands its jobs back on pre_stop does so on a heal too).
#[tokio::test(start_paused = true)]
async fn a_heal_runs_the_pre_stop_hooks_before_the_stop() {
    let (dir, engine, ledger) = deployed_file(
        "services:\n  db:\n    image: app:1\n    pre_stop:\n      - command: [drain, now]\n",
    )
    .await;
    assert_eq!(
        calls_of_a_heal(&dir, &engine, ledger).await,
        vec![
            "exec app-db-1 drain now".to_owned(),
            "stop app-db-1".to_owned(),
            "start app-db-1".to_owned()
        ]
    );
}

/// A heal runs the service's `post_start` hooks after its start, as Compose runs them on every
/// start (a worker that registers itself on post_start does so after a heal too).
#[tokio::test(start_paused = true)]
async fn a_heal_runs_the_post_start_hooks_after_the_start() {
    let (dir, engine, ledger) = deployed_file(
        "services:\n  db:\n    image: app:1\n    post_start:\n      - command: [register, me]\n",
    )
    .await;
    assert_eq!(
        calls_of_a_heal(&dir, &engine, ledger).await,
        vec![
            "stop app-db-1".to_owned(),
            "start app-db-1".to_owned(),
            "exec app-db-1 register me".to_owned()
        ]
    );
}

/// A heal stops its container as a deploy would, within the service's `stop_grace_period`
/// (a database given 2 minutes is not killed after 10 s), and its death, however late in that
/// grace, is the heal's, not a crash.
#[tokio::test(start_paused = true)]
async fn a_heal_gives_the_container_its_stop_grace_period() {
    let (dir, engine, ledger) =
        deployed_file("services:\n  db:\n    image: app:1\n    stop_grace_period: 2m\n").await;
    let gated = Arc::new(Gated::new(engine.clone()));
    let (sup, _) = supervisor_on(dir.path(), gated.clone(), ledger, StackPolicy::default());
    engine.set_health("app-db-1", Some(HealthStatus::Unhealthy));
    sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(gated.stops(), vec!["app-db-1 120s".to_owned()]);
    assert_eq!(
        engine.calls(),
        vec!["stop app-db-1".to_owned(), "start app-db-1".to_owned()]
    );
    // Its death seen 100 s into the stop (the end of the grace) is the heal's: no death counts.
    tokio::time::advance(Duration::from_secs(95)).await;
    let c = engine.containers()["app-db-1"].clone();
    let mut attributes = c.labels.clone();
    attributes.insert("name".into(), c.name.clone());
    sup.refresh_managed();
    sup.clone().on_event(crate::engine::Event {
        object_type: crate::engine::ObjectType::Container,
        action: crate::engine::EventAction::parse("die"),
        id: c.id.clone(),
        attributes,
        time: std::time::SystemTime::now(),
    });
    let now = tokio::time::Instant::now();
    let deaths = sup
        .state()
        .tracks
        .get_mut("app-db-1")
        .unwrap()
        .deaths
        .remaining(now);
    assert_eq!(deaths, super::heal_config().crash_loop_deaths);
}

/// A deploy submitted while a heal stops the stack's container waits for the heal's stop and
/// start: the two never interleave on the stack.
#[tokio::test(start_paused = true)]
async fn a_deploy_arriving_during_a_heal_waits_for_its_stop_and_start() {
    let (dir, engine, ledger) = deployed_plain().await;
    let gated = Arc::new(Gated::new(engine.clone()));
    let (sup, _) = supervisor_on(dir.path(), gated.clone(), ledger, StackPolicy::default());
    gated.hold("stop");
    engine.set_health("app-web-1", Some(HealthStatus::Unhealthy));
    sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gated.waiting(), vec!["stop app-web-1".to_owned()]);

    let load = load_file(dir.path(), "services:\n  web:\n    image: app:2\n");
    let job = Job {
        kind: JobKind::Deploy(DeployRequest::new("app", load)),
        origin: Origin::Cli,
    };
    let (_, job) = sup.jobs.submit(job, None);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        engine.calls(),
        Vec::<String>::new(),
        "the deploy went ahead during the heal's stop"
    );
    gated.release("stop");
    let report = job.await.unwrap();
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    let calls = engine.calls();
    assert_eq!(
        calls[..2],
        ["stop app-web-1".to_owned(), "start app-web-1".to_owned()],
        "{calls:#?}"
    );
    assert!(
        engine.containers()["app-web-1"]
            .image_id
            .ends_with(&"2".repeat(64))
    );
}

/// A container whose probe failed passes again by the end of the heal's backoff: it is probed
/// once more then, and not restarted (nor is its budget spent).
#[tokio::test]
async fn a_probe_heal_leaves_a_container_that_passes_again_after_the_backoff() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nok").await;
        }
    });
    let yaml = format!(
        "services:\n  web:\n    image: app:1\n    x-gantry:\n      health: {{http: \"http://127.0.0.1:{port}/health\", passes: 1, failures: 3}}\n"
    );
    let (dir, engine, ledger) = deployed_file(&yaml).await;
    let (sup, _) = supervisor(dir.path(), engine.clone(), ledger);
    let c = engine.containers()["app-web-1"].clone();
    let healed = sup
        .clone()
        .heal(
            c.id.clone(),
            c.name.clone(),
            "app".into(),
            "web".into(),
            Cause::Probe { failures: 3 },
        )
        .await;
    assert!(!healed);
    assert_eq!(engine.calls(), Vec::<String>::new());
    let mut s = sup.state();
    let t = &mut s.tracks.get_mut("app-web-1").unwrap();
    assert_eq!((t.restarts, t.healing), (0, false));
    assert_eq!(t.budget.remaining(tokio::time::Instant::now()), 2);
    drop(s);
    server.abort();
}

/// A container marked stopped by a heal that a deploy replaced meanwhile (another id under its
/// name, stopped here) is not started: the mark is forgotten.
#[tokio::test(start_paused = true)]
async fn a_container_stopped_to_heal_and_replaced_since_is_left_alone() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _) = supervisor_on(dir.path(), engine.clone(), ledger, no_reconcile());
    let c = engine.containers()["app-web-1"].clone();
    {
        let mut s = sup.state();
        let t = sup.track(&mut s, &c.name, "an-older-container", "app", "web");
        t.stopped_by_heal = true;
    }
    sup.save();
    engine.stop_by_hand("app-web-1");
    sup.clone().resync_all().await;
    assert_eq!(count(&engine.calls(), "start app-web-1"), 0);
    assert!(!engine.containers()["app-web-1"].state.running);
    let saved =
        crate::daemon::supervise::saved::load(&crate::daemon::supervise::saved::path(dir.path()))
            .unwrap();
    assert!(
        saved.containers.values().all(|t| !t.stopped_by_heal),
        "{saved:?}"
    );
}

/// A stopping daemon waits for a heal between its stop and its start (`restarting`), and
/// begins no other restart once closed.
#[tokio::test(start_paused = true)]
async fn a_stopping_daemon_waits_for_the_heal_under_way_and_begins_no_other() {
    let (dir, engine, ledger) = deployed_plain().await;
    let gated = Arc::new(Gated::new(engine.clone()));
    gated.hold("start");
    let (sup, _) = supervisor_on(dir.path(), gated.clone(), ledger, StackPolicy::default());
    engine.set_health("app-web-1", Some(HealthStatus::Unhealthy));
    sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(gated.waiting(), vec!["start app-web-1".to_owned()]);
    assert!(sup.restarting());
    sup.close();
    assert!(sup.restarting(), "closing does not cut a restart short");
    gated.release("start");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sup.restarting());
    assert!(engine.containers()["app-web-1"].state.running);

    // Closed: a container unhealthy again is left for the next daemon.
    engine.set_health("app-web-1", Some(HealthStatus::Unhealthy));
    let c = engine.containers()["app-web-1"].clone();
    let healed = sup
        .clone()
        .heal(c.id, c.name, "app".into(), "web".into(), Cause::Unhealthy)
        .await;
    assert!(!healed);
    assert_eq!(count(&engine.calls(), "stop app-web-1"), 1);
}
