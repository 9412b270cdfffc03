//! The job runner against the in-memory engine: a job that panics frees its stack.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::compose::LoadOptions;
use crate::engine::fake::FakeEngine;
use crate::ledger::Ledger;

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
