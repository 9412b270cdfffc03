//! Supervision's decisions on a paused clock, against the in-memory engine ([`FakeEngine`]):
//! restart or not, backoff, budget spent → give up, a stack a deploy holds left alone, the
//! liveness count, probe tasks that stop with their container. Docker-only behaviour (events,
//! real healthchecks, real probes against containers) stays in `tests/tests/daemon_*.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::decide::{Budget, HealDecision, Liveness, Step, backoff, heal_decision, started_before};
use super::liveness::{self, ReadinessSink};
use super::routes::RouteSink;
use super::{Supervisor, Track};
use crate::compose::LoadOptions;
use crate::compose::xgantry::XGantry;
use crate::daemon::jobs::Jobs;
use crate::daemon::metrics::Metrics;
use crate::daemon::{DaemonConfig, HealConfig, StackPolicy};
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::engine::fake::FakeEngine;
use crate::engine::{Engine, HealthStatus};
use crate::ledger::{Holder, Ledger};

mod gated;
mod healing;
mod status;

fn heal_config() -> HealConfig {
    HealConfig {
        max_restarts: 2,
        window: Duration::from_secs(600),
        backoff: Duration::from_secs(1),
        backoff_max: Duration::from_secs(10),
        crash_loop_deaths: 5,
    }
}

fn probe(x: serde_json::Value) -> crate::compose::xgantry::Probe {
    XGantry::parse(Some(&serde_json::json!({ "health": x })))
        .unwrap()
        .health
        .unwrap()
}

fn track() -> Track {
    let h = heal_config();
    Track {
        stack: "app".into(),
        service: "web".into(),
        id: "c1".into(),
        budget: Budget::new(h.max_restarts, h.window),
        deaths: Budget::new(h.crash_loop_deaths, h.window),
        restarts: 0,
        gave_up: false,
        crash_looping: false,
        healing: false,
        stopped_by_heal: false,
    }
}

#[tokio::test(start_paused = true)]
async fn budget_refills_as_the_window_slides() {
    let mut b = Budget::new(2, Duration::from_secs(600));
    assert_eq!(b.take(Instant::now()), Some(0));
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(b.take(Instant::now()), Some(1));
    assert_eq!(b.take(Instant::now()), None);
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(b.remaining(Instant::now()), 1);
    assert_eq!(b.take(Instant::now()), Some(1));
    assert_eq!(b.take(Instant::now()), None);
}

#[test]
fn backoff_doubles_up_to_its_ceiling() {
    let c = HealConfig {
        backoff: Duration::from_secs(1),
        backoff_max: Duration::from_secs(10),
        ..HealConfig::default()
    };
    let d: Vec<u64> = (0..6).map(|n| backoff(&c, n).as_secs()).collect();
    assert_eq!(d, vec![1, 2, 4, 8, 10, 10]);
    assert_eq!(backoff(&c, 400), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn heal_backs_off_once_at_a_time_then_gives_up_when_the_budget_is_spent() {
    let h = heal_config();
    let mut t = track();
    let now = Instant::now();
    assert_eq!(
        heal_decision(&mut t, &h, now),
        HealDecision::RestartAfter(Duration::from_secs(1))
    );
    // A heal under way: a second trigger does nothing.
    assert_eq!(heal_decision(&mut t, &h, now), HealDecision::Leave);
    t.healing = false;
    t.budget.take(now);
    assert_eq!(
        heal_decision(&mut t, &h, now),
        HealDecision::RestartAfter(Duration::from_secs(2))
    );
    t.healing = false;
    t.budget.take(now);
    assert_eq!(heal_decision(&mut t, &h, now), HealDecision::GiveUp);
    assert!(t.gave_up);
    // Given up: quiet until resumed, even after the window refills the budget.
    tokio::time::advance(h.window).await;
    assert_eq!(
        heal_decision(&mut t, &h, Instant::now()),
        HealDecision::Leave
    );
    t.gave_up = false;
    assert_eq!(
        heal_decision(&mut t, &h, Instant::now()),
        HealDecision::RestartAfter(Duration::from_secs(1))
    );
}

#[tokio::test(start_paused = true)]
async fn liveness_restarts_after_failures_in_a_row_only() {
    let p = probe(serde_json::json!({"tcp": 80, "failures": 3, "passes": 2}));
    let mut l = Liveness::new(&p, Instant::now());
    let now = Instant::now();
    let restart = |s: Step| s.restart;
    assert!(!restart(l.observe(false, now)));
    assert!(!restart(l.observe(false, now)));
    // A pass in between starts the count over.
    assert!(!restart(l.observe(true, now)));
    assert!(!restart(l.observe(false, now)));
    assert!(!restart(l.observe(false, now)));
    assert!(restart(l.observe(false, now)));
    assert_eq!(l.failures(), 3);
    // A deploy holding the stack: the count starts over.
    l.hold();
    assert!(!restart(l.observe(false, now)));
    l.restarted(now);
    assert_eq!(l.failures(), 0);
}

#[tokio::test(start_paused = true)]
async fn readiness_leaves_at_the_first_failure_and_returns_after_passes_in_a_row() {
    let p = probe(serde_json::json!({"tcp": 80, "failures": 3, "passes": 2}));
    let mut l = Liveness::new(&p, Instant::now());
    let now = Instant::now();
    // The first result after the deploy's gate is reported as it is.
    assert_eq!(l.observe(true, now).ready, Some(true));
    assert_eq!(l.observe(true, now).ready, None);
    assert_eq!(l.observe(false, now).ready, Some(false));
    assert_eq!(l.observe(false, now).ready, None);
    assert_eq!(l.observe(true, now).ready, None, "one pass of two");
    assert_eq!(l.observe(true, now).ready, Some(true));
    assert_eq!(l.ready(), Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_container_is_not_ready_and_starts_over() {
    let p = probe(serde_json::json!({"tcp": 80, "failures": 2, "passes": 2}));
    let mut l = Liveness::new(&p, Instant::now());
    assert_eq!(l.observe(true, Instant::now()).ready, Some(true));
    l.observe(false, Instant::now());
    l.observe(true, Instant::now());
    l.observe(true, Instant::now());
    assert_eq!(l.down(Instant::now()).ready, Some(false));
    assert_eq!(l.down(Instant::now()).ready, None, "reported once");
    assert_eq!(l.failures(), 0);
    assert!(!l.observe(false, Instant::now()).restart);
}

#[tokio::test(start_paused = true)]
async fn startup_deadline_holds_restarts_until_it_passes_or_expires() {
    let p = probe(
        serde_json::json!({"tcp": 80, "failures": 2, "start_period": "5s",
                                     "startup": {"deadline": "60s"}}),
    );
    let mut l = Liveness::new(&p, Instant::now());
    assert!(!l.due(Instant::now()), "within start_period");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(l.due(Instant::now()));
    for _ in 0..10 {
        assert!(!l.observe(false, Instant::now()).restart, "within startup");
    }
    // Past the startup deadline without a pass: failures count.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(l.observe(false, Instant::now()).restart);
    // Restarted: the startup deadline applies again; once passed, it no longer shields.
    l.restarted(Instant::now());
    assert!(!l.observe(false, Instant::now()).restart);
    assert!(!l.observe(false, Instant::now()).restart);
    l.observe(true, Instant::now());
    assert!(!l.observe(false, Instant::now()).restart);
    assert!(l.observe(false, Instant::now()).restart);
}

/// Records readiness changes.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, bool)>>);

impl ReadinessSink for Recorder {
    fn readiness_changed(&self, stack: &str, service: &str, _id: &str, ready: bool) {
        self.0
            .lock()
            .unwrap()
            .push((stack.into(), service.into(), ready));
    }
}

struct Setup {
    dir: tempfile::TempDir,
    engine: Arc<FakeEngine>,
    sup: Arc<Supervisor>,
    sink: Arc<Recorder>,
    ledger: Ledger,
}

/// Stack `app`, service `web`, deployed with a probe that passed while the deploy ran (a local
/// listener, stopped once the deploy is done: every later probe fails). The clock is real
/// during the deploy and paused after it.
async fn deployed(health: serde_json::Value) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    let ledger = Ledger::new(&dir.path().join("state"));
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
    let mut health = health;
    health["http"] = format!("http://127.0.0.1:{port}/health").into();
    let compose = serde_json::json!({"services": {"web": {"image": "app:1",
        "x-gantry": {"health": health}}}});
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, serde_json::to_string(&compose).unwrap()).unwrap();
    let load = LoadOptions {
        files: vec![file],
        project_name: Some("app".into()),
        ..LoadOptions::default()
    };
    let engine_dyn: Arc<dyn Engine> = engine.clone();
    let report = Deployer::new(engine_dyn.clone(), ledger.clone())
        .deploy(&DeployRequest::new("app", load), &Quiet)
        .await;
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    server.abort();
    let _ = server.await;
    engine.clear_calls();
    tokio::time::pause();
    let (sup, sink) = supervisor(dir.path(), engine.clone(), ledger.clone());
    Setup {
        dir,
        engine,
        sup,
        sink,
        ledger,
    }
}

/// A supervisor of the stacks in `ledger`, on `engine`, configured under `dir`.
fn supervisor(
    dir: &std::path::Path,
    engine: Arc<FakeEngine>,
    ledger: Ledger,
) -> (Arc<Supervisor>, Arc<Recorder>) {
    supervisor_on(dir, engine, ledger, StackPolicy::default())
}

/// [`supervisor`] on any engine, with `policy` for every stack.
fn supervisor_on(
    dir: &std::path::Path,
    engine_dyn: Arc<dyn Engine>,
    ledger: Ledger,
    policy: StackPolicy,
) -> (Arc<Supervisor>, Arc<Recorder>) {
    let config = DaemonConfig {
        socket: dir.join("sock"),
        socket_group: None,
        socket_group_explicit: false,
        metrics_address: None,
        heal: heal_config(),
        debounce: Duration::from_millis(100),
        resync_interval: Duration::from_secs(3600),
        defaults: policy,
        stacks: BTreeMap::new(),
        state_dir: PathBuf::from(dir),
        registries: Default::default(),
        environment: BTreeMap::new(),
    };
    let metrics = Arc::new(Metrics::default());
    let jobs = Jobs::new(
        Deployer::new(engine_dyn.clone(), ledger.clone()),
        metrics.clone(),
    );
    let sup = Supervisor::new(Arc::new(config), engine_dyn, ledger, jobs, metrics);
    let sink = Arc::new(Recorder::default());
    sup.set_readiness_sink(sink.clone());
    (sup, sink)
}

fn count(calls: &[String], call: &str) -> usize {
    calls.iter().filter(|c| *c == call).count()
}

#[tokio::test]
async fn failing_probe_restarts_within_the_budget_then_gives_up() {
    let s = deployed(serde_json::json!({"passes": 1, "interval": "1s", "failures": 3})).await;
    let run = tokio::spawn(liveness::run(s.sup.clone()));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let calls = s.engine.calls();
    assert_eq!(count(&calls, "stop app-web-1"), 2, "{calls:#?}");
    assert_eq!(count(&calls, "start app-web-1"), 2, "{calls:#?}");
    let id = s.engine.containers()["app-web-1"].id.clone();
    let status = s.sup.heal_status("app-web-1", &id);
    assert!(status.gave_up && status.restarts == 2, "{status:?}");
    // Reported not ready once (the first failure), with its stack and service.
    assert_eq!(
        s.sink.0.lock().unwrap().clone(),
        vec![("app".to_owned(), "web".to_owned(), false)]
    );
    // No restart before three failures at 1 s and the first backoff (1 s).
    assert!(t0.elapsed() >= Duration::from_secs(4));
    run.abort();
    drop(s.dir);
}

#[tokio::test]
async fn a_stack_held_by_a_deploy_is_not_restarted() {
    let s = deployed(serde_json::json!({"passes": 1, "interval": "1s", "failures": 2})).await;
    let run = tokio::spawn(liveness::run(s.sup.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A `--local` deploy of this process holds the stack's lock.
    let holder = Holder {
        pid: std::process::id(),
        deploy_id: None,
        started_at: "now".into(),
        command: "gantry deploy app".into(),
        brief: false,
    };
    let lock = s.ledger.stack("app").unwrap().try_lock(&holder).unwrap();
    assert!(s.sup.paused("app"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(count(&s.engine.calls(), "stop app-web-1"), 0);
    // Readiness is still followed while the deploy runs.
    assert_eq!(s.sink.0.lock().unwrap().len(), 1);
    // Released: two failures at 1 s, then the first backoff (1 s), then the restart.
    drop(lock);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&s.engine.calls(), "stop app-web-1"), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&s.engine.calls(), "stop app-web-1"), 1);
    run.abort();
}

#[tokio::test]
async fn probe_tasks_stop_when_their_container_goes_away() {
    let s = deployed(serde_json::json!({"passes": 1, "interval": "1s", "failures": 3})).await;
    let (mut tasks, mut cache) = (HashMap::new(), HashMap::new());
    liveness::scan(&s.sup, &mut tasks, &mut cache).await;
    assert_eq!(tasks.len(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let id = s.engine.containers()["app-web-1"].id.clone();
    s.engine.remove_container(&id, true).await.unwrap();
    liveness::scan(&s.sup, &mut tasks, &mut cache).await;
    assert!(tasks.is_empty());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(count(&s.engine.calls(), "stop app-web-1"), 0);
}

#[tokio::test]
async fn unhealthy_container_is_restarted_after_its_backoff() {
    let s = deployed(serde_json::json!({"passes": 1, "interval": "1s"})).await;
    s.engine
        .set_health("app-web-1", Some(HealthStatus::Unhealthy));
    let t0 = Instant::now();
    s.sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        count(&s.engine.calls(), "stop app-web-1"),
        0,
        "within backoff"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = s.engine.calls();
    assert_eq!(
        calls,
        vec!["stop app-web-1".to_owned(), "start app-web-1".to_owned()],
        "after {:?}",
        t0.elapsed()
    );
    let id = s.engine.containers()["app-web-1"].id.clone();
    assert_eq!(s.sup.heal_status("app-web-1", &id).restarts, 1);
    // Healthy again (the fake's restart clears it): nothing more.
    s.sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(s.engine.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_container_that_passed_its_gate_is_past_its_startup_deadline() {
    let p = probe(serde_json::json!({"tcp": 80, "failures": 2, "startup": {"deadline": "60s"}}));
    // Not known to have passed: failures within the startup deadline do not count.
    let mut fresh = Liveness::new(&p, Instant::now());
    assert!(!fresh.observe(false, Instant::now()).restart);
    assert!(!fresh.observe(false, Instant::now()).restart);
    // Gated by its deploy: the same failures restart it.
    let mut gated = Liveness::new(&p, Instant::now());
    gated.gated();
    assert!(!gated.observe(false, Instant::now()).restart);
    assert!(gated.observe(false, Instant::now()).restart);
    // A restart starts the startup deadline over.
    gated.restarted(Instant::now());
    assert!(!gated.observe(false, Instant::now()).restart);
    assert!(!gated.observe(false, Instant::now()).restart);
}

#[test]
fn started_before_compares_dockers_nanoseconds_with_the_ledgers_seconds() {
    let recorded = "2026-12-02T14:25:19Z";
    assert!(started_before("2026-12-02T14:25:12.934193123Z", recorded));
    assert!(started_before("2026-12-02T14:25:19Z", recorded));
    assert!(
        !started_before("2026-12-02T14:25:19.5Z", recorded),
        "restarted after"
    );
    assert!(!started_before("2026-12-02T14:26:01.1Z", recorded));
    assert!(!started_before("0001-01-01T00:00:00Z-garbage", recorded));
    assert!(!started_before("2026-12-02T14:25:12Z", "not a time"));
}

#[tokio::test(start_paused = true)]
async fn a_rollout_stopped_by_failure_action_is_left_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    for v in ["1", "2", "3"] {
        engine.publish(&format!("app:{v}"), &v.repeat(64));
    }
    let ledger = Ledger::new(&dir.path().join("state"));
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:
  a:
    image: app:${A}
    x-gantry: {min_ready: 1s}
  b:
    image: app:${B}
    depends_on: [a]
    deploy: {update_config: {failure_action: pause, order: stop-first}}
    x-gantry: {min_ready: 1s}
",
    )
    .unwrap();
    let engine_dyn: Arc<dyn Engine> = engine.clone();
    let deployer = Deployer::new(engine_dyn, ledger.clone());
    let deploy = |a: &str, b: &str, id: &str| {
        let load = LoadOptions {
            files: vec![file.clone()],
            project_name: Some("app".into()),
            environment: BTreeMap::from([("A".into(), a.into()), ("B".into(), b.into())]),
            ..LoadOptions::default()
        };
        let mut req = DeployRequest::new("app", load);
        req.deploy_id = Some(id.to_owned());
        req
    };
    let first = deployer.deploy(&deploy("1", "1", "one"), &Quiet).await;
    assert_eq!(first.exit_code(), crate::ExitCode::Ok, "{first:?}");
    // b's new image exits at once: the rollout stops there, a stays on its new version.
    engine.crash_image(&format!("sha256:{}", "3".repeat(64)));
    let paused = deployer.deploy(&deploy("2", "3", "two"), &Quiet).await;
    assert_eq!(
        paused.exit_code(),
        crate::ExitCode::RollbackFailed,
        "{paused:?}"
    );
    // Its deploy id again (an SSM retry): the same exit code, nothing done.
    let again = deployer.deploy(&deploy("2", "3", "two"), &Quiet).await;
    assert!(again.repeated);
    assert_eq!(
        again.exit_code(),
        crate::ExitCode::RollbackFailed,
        "{again:?}"
    );

    engine.clear_calls();
    let (sup, _sink) = supervisor(dir.path(), engine.clone(), ledger);
    sup.clone().check_stack("app").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = engine.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("create") || c.starts_with("stop")),
        "the stack was reconciled back to its last good release: {calls:#?}"
    );
    assert!(
        engine.containers()["app-a-1"]
            .image_id
            .ends_with(&"2".repeat(64))
    );
}

/// Stack `app`, service `web` on `app:1`, deployed.
async fn deployed_plain() -> (tempfile::TempDir, Arc<FakeEngine>, Ledger) {
    deployed_file("services:\n  web:\n    image: app:1\n").await
}

/// Stack `app` of the compose file `yaml` (`app:1` and `app:2` are published), deployed.
async fn deployed_file(yaml: &str) -> (tempfile::TempDir, Arc<FakeEngine>, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    engine.publish("app:2", &"2".repeat(64));
    let ledger = Ledger::new(&dir.path().join("state"));
    let load = load_file(dir.path(), yaml);
    let engine_dyn: Arc<dyn Engine> = engine.clone();
    let report = Deployer::new(engine_dyn, ledger.clone())
        .deploy(&DeployRequest::new("app", load), &Quiet)
        .await;
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    engine.clear_calls();
    (dir, engine, ledger)
}

/// Writes `yaml` as `dir/compose.yaml` and loads it as stack `app`.
fn load_file(dir: &std::path::Path, yaml: &str) -> LoadOptions {
    let file = dir.join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    LoadOptions {
        files: vec![file],
        project_name: Some("app".into()),
        ..LoadOptions::default()
    }
}

/// A container stopped by hand after supervision's resync listed its stack, but before the
/// events request reached Docker (it goes at the stream's first poll, after the resync): the
/// stream asks for the events since before the resync, so the stop is seen and the stack is
/// reconciled at once, not at the next resync an hour later.
#[tokio::test(start_paused = true)]
async fn a_container_stopped_while_supervision_resyncs_is_reconciled() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _sink) = supervisor(dir.path(), engine.clone(), ledger);
    engine.stop_after_next_list("app-web-1");
    let run = tokio::spawn(sup.clone().run());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = engine.calls();
    assert_eq!(count(&calls, "start app-web-1"), 1, "{calls:#?}");
    assert!(engine.containers()["app-web-1"].state.running);
    run.abort();
}

/// Records what supervision tells the edge switch.
#[derive(Default)]
struct Routes {
    moved: Mutex<Vec<String>>,
    listed: Mutex<Vec<(String, usize)>>,
}

impl RouteSink for Routes {
    fn container_moved(&self, stack: &str, service: &str, container: &str) {
        self.moved
            .lock()
            .unwrap()
            .push(format!("{stack} {service} {container}"));
    }

    fn stack_listed(&self, stack: &str, containers: &[crate::engine::ContainerInfo]) {
        self.listed
            .lock()
            .unwrap()
            .push((stack.to_owned(), containers.len()));
    }

    fn leave<'a>(&'a self, _: &'a str, _: &'a str) -> futures_util::future::BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A container behind the switch that starts or dies (Docker's restart policy, a heal of
/// supervision's own) may come back at another address: the route sink hears of it, and of
/// each resync's listing of the stack; other events and containers the switch does not route
/// to are not reported.
#[tokio::test(start_paused = true)]
async fn starts_and_deaths_behind_the_switch_and_resyncs_go_to_the_route_sink() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _sink) = supervisor(dir.path(), engine.clone(), ledger);
    let routes = Arc::new(Routes::default());
    sup.set_route_sink(routes.clone());
    sup.refresh_managed();
    let c = engine.containers()["app-web-1"].clone();
    let event = |action: &str, edge: bool| {
        let mut attributes = c.labels.clone();
        attributes.insert("name".into(), c.name.clone());
        if edge {
            attributes.insert(crate::edge::LABEL.into(), "0.0.0.0:8080:80".into());
        }
        crate::engine::Event {
            object_type: crate::engine::ObjectType::Container,
            action: crate::engine::EventAction::parse(action),
            id: c.id.clone(),
            attributes,
            time: std::time::SystemTime::now(),
        }
    };
    for (action, edge) in [
        ("start", true),
        ("die", true),
        ("health_status: healthy", true),
        ("kill", true),
        ("start", false),
        ("die", false),
    ] {
        sup.clone().on_event(event(action, edge));
    }
    // Supervision's own restart (a heal) counts too.
    sup.state().ours.insert(c.id.clone(), Instant::now());
    sup.clone().on_event(event("start", true));
    assert_eq!(
        routes.moved.lock().unwrap().clone(),
        vec!["app web app-web-1"; 3]
    );

    sup.clone().resync_all().await;
    assert_eq!(
        routes.listed.lock().unwrap().clone(),
        vec![("app".to_owned(), 1)]
    );
}

/// The daemon's own edge sync holds the stack's lock for a moment: that is no deploy, and
/// supervision goes on (a death then still counts); a deploy in another process pauses it.
#[tokio::test]
async fn the_daemons_edge_sync_does_not_pause_supervision() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _sink) = supervisor(dir.path(), engine, ledger.clone());
    let stack = ledger.stack("app").unwrap();
    let sync = stack
        .try_lock(&super::routes::edge_sync_holder("app"))
        .unwrap();
    assert!(!sup.paused("app"));
    drop(sync);
    let deploy = stack
        .try_lock(&Holder::me("gantry deploy app", None))
        .unwrap();
    assert!(sup.paused("app"));
    drop(deploy);
}
