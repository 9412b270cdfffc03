//! The job runner against the in-memory engine: a job that panics frees its stack; the
//! daemon's own use of a stack between jobs never makes a job fail as busy.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::compose::LoadOptions;
use crate::engine::fake::FakeEngine;
use crate::ledger::{Holder, Ledger};

#[tokio::test]
async fn a_panicking_job_never_leaves_its_stack_busy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: app:1\n    x-gantry: {min_ready: 0s}\n",
    )
    .unwrap();
    let engine = Arc::new(FakeEngine::new());
    let image = engine.publish("app:1", &"1".repeat(64));
    engine.panic_on_create(&image, true);
    let deployer = Deployer::new(engine.clone(), Ledger::new(&dir.path().join("state")));
    let jobs = Jobs::new(deployer, Arc::new(Metrics::default()));
    let load = LoadOptions {
        files: vec![file],
        project_name: Some("app".into()),
        environment: BTreeMap::new(),
        ..LoadOptions::default()
    };
    let job = || Job {
        kind: JobKind::Deploy(DeployRequest::new("app", load.clone())),
        origin: Origin::Cli,
    };

    let (_, handle) = jobs.submit(job(), None);
    let report = handle.await.expect("the job's own task does not panic");
    assert_eq!(report.outcome, Outcome::Failed);
    let msg = report.error.unwrap_or_default();
    assert!(
        msg.contains("panicked") && msg.contains("the stack is free again"),
        "{msg}"
    );
    assert!(!jobs.busy("app"), "the stack stays marked busy");
    assert!(jobs.running("app").is_none());

    // The next job gets the stack at once (lock_wait zero: it would fail fast if busy).
    engine.panic_on_create(&image, false);
    let (_, handle) = jobs.submit(job(), None);
    let report = handle.await.unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
}

/// A deploy with `--lock-wait 0` that arrives while the daemon itself holds the stack's lock
/// between jobs (a resync recording a release held unrecorded: its turn, then the lock, for as
/// long as it writes) waits for it and runs, instead of failing as busy (75); while a job
/// runs, the daemon gets no turn (it tries again at its next resync).
#[tokio::test(start_paused = true)]
async fn a_deploy_arriving_while_the_daemon_records_between_jobs_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  web:\n    image: app:${V}\n").unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    engine.publish("app:2", &"2".repeat(64));
    let ledger = Ledger::new(&dir.path().join("state"));
    let jobs = Jobs::new(
        Deployer::new(engine.clone(), ledger.clone()),
        Arc::new(Metrics::default()),
    );
    let deploy = |v: &str| {
        let load = LoadOptions {
            files: vec![file.clone()],
            project_name: Some("app".into()),
            environment: BTreeMap::from([("V".to_owned(), v.to_owned())]),
            ..LoadOptions::default()
        };
        let req = DeployRequest::new("app", load);
        assert!(req.lock_wait.is_zero());
        Job {
            kind: JobKind::Deploy(req),
            origin: Origin::Cli,
        }
    };

    let turn = jobs.between_jobs("app").expect("no job runs");
    let lock = ledger
        .stack("app")
        .unwrap()
        .try_lock(&Holder::me("gantry record app", None))
        .unwrap();
    let (_, handle) = jobs.submit(deploy("1"), None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!handle.is_finished(), "{:?}", handle.await.unwrap());
    assert!(jobs.busy("app"), "a job waiting for its turn is queued");
    drop((lock, turn));
    let report = handle.await.unwrap();
    assert_eq!(report.exit_code(), ExitCode::Ok, "{:?}", report.error);
    assert_eq!(report.outcome, Outcome::Succeeded);

    engine.stall_pulls(true);
    let (_, running) = jobs.submit(deploy("2"), None);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(jobs.running("app").is_some());
    assert!(jobs.between_jobs("app").is_none());
    assert!(!running.is_finished());
}

/// SIGTERM while a deploy runs and another waits behind it (a CI retry with `--lock-wait`):
/// the waiting one ends at once, exit 75, "not started", and makes no engine call, neither then
/// nor once the running one ends; a job submitted after that ends so too. The running one is
/// the only thing the stop waits for.
#[tokio::test(start_paused = true)]
async fn jobs_queued_when_the_daemon_stops_are_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, "services:\n  web:\n    image: app:${V}\n").unwrap();
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    engine.publish("app:2", &"2".repeat(64));
    let jobs = Jobs::new(
        Deployer::new(engine.clone(), Ledger::new(&dir.path().join("state"))),
        Arc::new(Metrics::default()),
    );
    let deploy = |v: &str, lock_wait: Duration| {
        let load = LoadOptions {
            files: vec![file.clone()],
            project_name: Some("app".into()),
            environment: BTreeMap::from([("V".to_owned(), v.to_owned())]),
            ..LoadOptions::default()
        };
        let mut req = DeployRequest::new("app", load);
        req.lock_wait = lock_wait;
        req.timeout = Duration::from_secs(60);
        Job {
            kind: JobKind::Deploy(req),
            origin: Origin::Cli,
        }
    };

    // A: its pull stalls until its --timeout (60 s) ends it.
    engine.stall_pulls(true);
    let (_, a) = jobs.submit(deploy("1", Duration::ZERO), None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(jobs.running("app").is_some());
    // B: queued behind A for up to 10 minutes, its client following.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (_, b) = jobs.submit_followed(deploy("2", Duration::from_secs(600)), tx);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b.is_finished());

    jobs.stop();
    engine.stall_pulls(false);
    let ended = tokio::time::timeout(Duration::from_secs(1), b)
        .await
        .expect("a queued job ends at once when the daemon stops")
        .unwrap();
    assert_eq!(ended.report.exit_code(), ExitCode::TempFail);
    let msg = ended.report.error.clone().unwrap_or_default();
    assert!(
        msg.contains("daemon stopping")
            && msg.contains("not started")
            && msg.contains("run it again"),
        "{msg}"
    );
    assert!(
        jobs.finishing(),
        "its report has not gone to its client yet"
    );
    drop(ended);
    assert!(!jobs.finishing());
    assert!(rx.recv().await.is_some_and(|l| l.contains("queued")));
    assert!(jobs.busy("app"), "A still runs");

    // Submitted during the stop: not started either.
    let (_, c) = jobs.submit(deploy("2", Duration::from_secs(600)), None);
    let c = tokio::time::timeout(Duration::from_secs(1), c)
        .await
        .expect("a job submitted during the stop ends at once")
        .unwrap();
    assert_eq!(c.exit_code(), ExitCode::TempFail);

    // A ends (its timeout); nothing of B's runs after it.
    engine.clear_calls();
    let a = a.await.unwrap();
    assert_eq!(a.exit_code(), ExitCode::Failed, "{:?}", a.error);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!jobs.busy("app"));
    let calls = engine.calls();
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("create") && !c.starts_with("pull")),
        "{calls:#?}"
    );
    assert!(engine.containers().is_empty());
}
