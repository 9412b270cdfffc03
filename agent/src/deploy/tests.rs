//! Unit tests of the deploy core against the in-memory engine ([`FakeEngine`]), on a paused
//! clock: plan, dependency order, stop-first and start-first call order, rollback choice.
//! What only Docker can show (networks, DNS, signals, ports) stays in `tests/tests/deploy_*.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::compose::LoadOptions;
use crate::engine::fake::FakeEngine;
use crate::ledger::{Ledger, Outcome};

use super::plan::Action;
use super::{DeployRequest, Deployer, Quiet};

/// A stack `app` on the in-memory engine, images `app:1` to `app:3` published (also used by
/// the tests of the plan's bound services and of the scheduler).
pub(in crate::deploy) struct Setup {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
    pub engine: Arc<FakeEngine>,
    pub deployer: Deployer,
}

impl Setup {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        let engine = Arc::new(FakeEngine::new());
        for v in ["1", "2", "3"] {
            engine.publish(&format!("app:{v}"), &v.repeat(64));
        }
        let deployer = Deployer::new(engine.clone(), Ledger::new(&dir.path().join("state")));
        Self {
            dir,
            file,
            engine,
            deployer,
        }
    }

    /// A request for stack `app` with the compose text and `V` (the image tag).
    pub fn request(&self, compose: &str, version: &str) -> DeployRequest {
        write(&self.file, compose);
        let load = LoadOptions {
            files: vec![self.file.clone()],
            project_name: Some("app".into()),
            environment: BTreeMap::from([("V".to_owned(), version.to_owned())]),
            ..LoadOptions::default()
        };
        DeployRequest::new("app", load)
    }

    /// The engine calls so far, pulls left out.
    pub fn calls_but_pulls(&self) -> Vec<String> {
        let mut calls = self.engine.calls();
        calls.retain(|c| !c.starts_with("pull"));
        calls
    }

    pub async fn deploy(&self, compose: &str, version: &str) -> super::DeployReport {
        self.deployer
            .deploy(&self.request(compose, version), &Quiet)
            .await
    }

    pub async fn plan(&self, compose: &str, version: &str) -> super::Plan {
        self.deployer
            .plan(&self.request(compose, version))
            .await
            .unwrap()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

pub(in crate::deploy) fn actions(plan: &super::Plan) -> Vec<(String, Action)> {
    plan.services
        .iter()
        .map(|s| (s.service.clone(), s.action))
        .collect()
}

/// The stack is one container, `app-web-1`, running image `app:version`.
fn only_web_runs(s: &Setup, version: &str) {
    let left = s.engine.containers();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["app-web-1"]);
    assert!(
        left["app-web-1"].state.running
            && left["app-web-1"].image_id.ends_with(&version.repeat(64))
    );
}

/// The position of the first call equal to `call`.
pub(in crate::deploy) fn at(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no call {call:?} in {calls:#?}"))
}

const TWO: &str = "services:
  db:
    image: app:${V}
    x-gantry: {min_ready: 1s}
  api:
    image: app:${V}
    environment: {MODE: one}
    depends_on: [db]
    x-gantry: {min_ready: 1s}
";

#[tokio::test(start_paused = true)]
async fn plan_says_create_recreate_with_reasons_remove_and_unchanged() {
    let s = Setup::new();
    let plan = s.deployer.plan(&s.request(TWO, "1")).await.unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("db".into(), Action::Create),
            ("api".into(), Action::Create)
        ]
    );
    let report = s.deploy(TWO, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);

    let plan = s.deployer.plan(&s.request(TWO, "1")).await.unwrap();
    assert!(plan.is_noop(), "{:?}", actions(&plan));

    // api's environment changes, db leaves the files, cache arrives.
    let next = "services:
  api:
    image: app:${V}
    environment: {MODE: two}
    x-gantry: {min_ready: 1s}
  cache:
    image: app:${V}
";
    let plan = s.deployer.plan(&s.request(next, "1")).await.unwrap();
    let got: BTreeMap<String, Action> = actions(&plan).into_iter().collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("api".into(), Action::Recreate),
            ("cache".into(), Action::Create),
            ("db".into(), Action::Remove),
        ])
    );
    let api = plan.get("api").unwrap();
    assert!(
        api.reasons.iter().any(|r| r == "environment"),
        "{:?}",
        api.reasons
    );
    assert_eq!(
        plan.get("db").unwrap().reasons,
        ["no longer in the compose files"]
    );

    // A new image is a reason of its own: app:2 is not local yet, the plan says it will pull.
    let plan = s.deployer.plan(&s.request(TWO, "2")).await.unwrap();
    assert!(
        plan.get("api")
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.contains("will pull")),
        "{:?}",
        plan.get("api").unwrap().reasons
    );
}

#[tokio::test(start_paused = true)]
async fn services_roll_out_in_dependency_order() {
    let s = Setup::new();
    // Written dependent first: the order comes from depends_on, not from the file.
    let compose = "services:
  web:
    image: app:${V}
    depends_on: [api]
    x-gantry: {min_ready: 1s}
  api:
    image: app:${V}
    depends_on: [db]
    x-gantry: {min_ready: 1s}
  db:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    let report = s.deploy(compose, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.engine.calls();
    assert!(at(&calls, "start app-db-1") < at(&calls, "create app-api-1"));
    assert!(at(&calls, "start app-api-1") < at(&calls, "create app-web-1"));
    let order: Vec<&str> = report.services.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(order, ["db", "api", "web"]);
}

#[tokio::test(start_paused = true)]
async fn stop_first_keeps_the_old_container_on_its_networks_until_it_stops() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {order: stop-first}}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    s.engine.clear_calls();
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.calls_but_pulls();
    assert_eq!(
        calls,
        [
            "create app-web-1-gantry-next",
            "stop app-web-1",
            "remove app-web-1",
            "rename app-web-1-gantry-next app-web-1",
            "start app-web-1",
        ],
        "stop-first: the old container is stopped on its networks, then the new one starts"
    );
}

#[tokio::test(start_paused = true)]
async fn start_first_has_the_new_container_ready_before_the_old_one_leaves() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    s.engine.clear_calls();
    let started = tokio::time::Instant::now();
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    // The new container had to run min_ready (1 s, on the paused clock) before anything else.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let calls = s.calls_but_pulls();
    assert_eq!(
        calls,
        [
            "create app-web-1-gantry-next",
            "start app-web-1-gantry-next",
            // ready: given its aliases
            "disconnect app-web-1-gantry-next app_default",
            "connect app-web-1-gantry-next app_default",
            // then the old one leaves DNS (reconnected without its aliases), keeps serving
            // what was sent its way for a moment, and stops
            "disconnect app-web-1 app_default",
            "connect app-web-1 app_default",
            "stop app-web-1",
            "remove app-web-1",
            "rename app-web-1-gantry-next app-web-1",
        ]
    );
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.state.running && web.image_id.ends_with(&"2".repeat(64)));
}

#[tokio::test(start_paused = true)]
async fn the_stacks_min_ready_gates_every_service_that_sets_none() {
    // On the paused clock a cold deploy takes as long as its longest min_ready.
    let worker = "  worker:\n    image: app:${V}\n    x-gantry: {min_ready: 1s}\n";
    let web = "  web:\n    image: app:${V}\n";
    for (services, at_least, below) in [(worker.to_owned(), 1, 2), (format!("{web}{worker}"), 7, 8)]
    {
        let s = Setup::new();
        let compose = format!("x-gantry: {{min_ready: 7s}}\nservices:\n{services}");
        let started = tokio::time::Instant::now();
        let report = s.deploy(&compose, "1").await;
        assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(at_least) && took < Duration::from_secs(below),
            "worker keeps its own 1 s, web waits the stack's 7 s: {took:?} for\n{compose}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_platform_is_what_its_image_is_pulled_for() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    platform: linux/arm64
    x-gantry: {min_ready: 0s}
";
    let report = s.deploy(compose, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let pulls: Vec<String> = s
        .engine
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("pull"))
        .collect();
    assert_eq!(pulls, ["pull app:1 for linux/arm64"]);
}

#[tokio::test(start_paused = true)]
async fn hooks_run_after_the_start_and_before_the_stop_and_a_failing_post_start_rolls_back() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {order: stop-first}}
    x-gantry: {min_ready: 1s}
    post_start: [{command: warm-up}]
    pre_stop: [{command: drain}]
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    s.engine.clear_calls();
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.calls_but_pulls();
    assert_eq!(
        calls,
        [
            "create app-web-1-gantry-next",
            "exec app-web-1 drain",
            "stop app-web-1",
            "remove app-web-1",
            "rename app-web-1-gantry-next app-web-1",
            "start app-web-1",
            "exec app-web-1 warm-up",
        ],
        "pre_stop before the stop, post_start after the start (before the readiness gate)"
    );

    // A pre_stop hook that fails only delays the stop: the deploy goes on.
    s.engine.exec_exit("drain", 1);
    let report = s.deploy(compose, "3").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);

    // A post_start hook that fails fails the start: rolled back to the last good release,
    // the error names the service, the container, the command and its last output.
    // (The release rolled back to keeps its own hook, which works.)
    s.engine.exec_exit("check-schema", 3);
    let report = s
        .deploy(&compose.replace("warm-up", "check-schema"), "1")
        .await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.error);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains(
            "service web: container app-web-1: post_start hook `check-schema` exited with status 3"
        ) && error.contains("check-schema failed"),
        "{error}"
    );
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.state.running && web.image_id.ends_with(&"3".repeat(64)));
}

#[tokio::test(start_paused = true)]
async fn a_failed_rollout_returns_to_the_last_good_release_and_rollback_picks_the_one_before() {
    let s = Setup::new();
    let start_first = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {order: stop-first}}
    x-gantry: {min_ready: 1s}
";
    let r1 = s.deploy(compose, "1").await;
    let r2 = s.deploy(compose, "2").await;
    assert_eq!(
        (r1.outcome, r2.outcome),
        (Outcome::Succeeded, Outcome::Succeeded)
    );
    assert_eq!(
        (r1.release.as_deref(), r2.release.as_deref()),
        (Some("r1"), Some("r2"))
    );

    // Version 3 crashes on start. Start-first: the old container never stopped serving, so
    // there is nothing to roll back; the deploy just fails.
    s.engine.crash_image(&format!("sha256:{}", "3".repeat(64)));
    let failed = s.deploy(start_first, "3").await;
    assert_eq!(failed.outcome, Outcome::Failed, "{:?}", failed.error);
    assert_eq!(failed.rolled_back_to, None);
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.state.running && web.image_id.ends_with(&"2".repeat(64)));

    // Stop-first: the old container was stopped, so the deploy rolls back to r2, the last
    // good release (not to the failed one just before).
    let r3 = s.deploy(compose, "3").await;
    assert_eq!(r3.outcome, Outcome::RolledBack, "{:?}", r3.error);
    assert_eq!(r3.rolled_back_to.as_deref(), Some("r2"));
    assert!(
        r3.error
            .as_deref()
            .unwrap_or_default()
            .contains("exited with code 1"),
        "{:?}",
        r3.error
    );
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.state.running && web.image_id.ends_with(&"2".repeat(64)));

    // `rollback` with no target: the good release before the newest good one (r2) is r1.
    let req = s.request(compose, "3");
    let back = s.deployer.rollback(&req, None, &Quiet).await;
    assert_eq!(back.outcome, Outcome::Succeeded, "{:?}", back.error);
    assert_eq!(back.rolled_back_to.as_deref(), Some("r1"));
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.image_id.ends_with(&"1".repeat(64)));

    // `rollback --to r2` returns to exactly that release.
    let to = s.deployer.rollback(&req, Some("r2"), &Quiet).await;
    assert_eq!(to.outcome, Outcome::Succeeded, "{:?}", to.error);
    assert_eq!(to.rolled_back_to.as_deref(), Some("r2"));
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.image_id.ends_with(&"2".repeat(64)));

    // A first deploy that fails has nothing running to return to: failed, no rollback.
    let fresh = Setup::new();
    fresh
        .engine
        .crash_image(&format!("sha256:{}", "1".repeat(64)));
    let first = fresh.deploy(compose, "1").await;
    assert_eq!(first.outcome, Outcome::Failed, "{:?}", first.error);
    assert_eq!(first.rolled_back_to, None);
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_stops_the_deploy_before_anything_running_changes() {
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
    let r1 = s.deploy(compose, "1").await;
    assert_eq!(r1.outcome, Outcome::Succeeded, "{:?}", r1.error);
    let ran = r1.services.iter().find(|r| r.service == "migrate").unwrap();
    assert_eq!(ran.action, Action::Run);

    s.engine.job_exit("migrate", 3);
    s.engine.clear_calls();
    let r2 = s.deploy(compose, "2").await;
    assert_eq!(r2.outcome, Outcome::Failed, "{:?}", r2.error);
    assert!(
        r2.error
            .as_deref()
            .unwrap_or_default()
            .contains("exited with code 3"),
        "{:?}",
        r2.error
    );
    let calls = s.engine.calls();
    assert!(
        !calls.iter().any(|c| c.contains("app-web-1")),
        "web was touched: {calls:#?}"
    );
}

/// Every file under `dir`, read as bytes, that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                hits.push(p);
            }
        }
    }
    hits
}

#[tokio::test(start_paused = true)]
async fn the_ledger_keeps_no_env_file_value_and_a_rollback_reads_the_file_as_it_is_now() {
    let s = Setup::new();
    let env = s.dir.path().join("app.env");
    let state = s.dir.path().join("state");
    write(&env, "DB_PASSWORD=first-secret-4f1c\nMODE=from-file\n");
    let compose = format!(
        "services:
  web:
    image: app:${{V}}
    env_file: {}
    environment: {{MODE: explicit, TAG: v$V}}
    x-gantry: {{min_ready: 1s}}
",
        env.display()
    );
    for v in ["1", "2"] {
        let r = s.deploy(&compose, v).await;
        assert_eq!(r.outcome, Outcome::Succeeded, "{:?}", r.error);
        let got = s.engine.env_of("app-web-1");
        assert_eq!(got["DB_PASSWORD"], "first-secret-4f1c");
        assert_eq!(got["MODE"], "explicit", "environment: wins over the file");
        assert_eq!(got["TAG"], format!("v{v}"));
    }
    assert_eq!(
        files_containing(&state, "first-secret-4f1c"),
        Vec::<PathBuf>::new()
    );
    // What `environment:` and interpolation gave is recorded: a rollback re-applies it.
    assert!(!files_containing(&state, "explicit").is_empty());

    // The secret rotates: plan says the env file changed since the release it compares to.
    write(&env, "DB_PASSWORD=rotated-secret-9b2e\nMODE=from-file\n");
    let plan = s.deployer.plan(&s.request(&compose, "2")).await.unwrap();
    let web = plan.get("web").unwrap();
    assert_eq!(web.action, Action::Recreate);
    let want = format!("env file {} changed since r2", env.display());
    assert!(web.reasons.contains(&want), "{:?}", web.reasons);

    // A rollback to r1 takes the current secret, not the one r1 ran with.
    let back = s
        .deployer
        .rollback(&s.request(&compose, "2"), Some("r1"), &Quiet)
        .await;
    assert_eq!(back.outcome, Outcome::Succeeded, "{:?}", back.error);
    let got = s.engine.env_of("app-web-1");
    assert_eq!(got["DB_PASSWORD"], "rotated-secret-9b2e");
    assert_eq!(got["TAG"], "v1");
    assert!(
        s.engine.containers()["app-web-1"]
            .image_id
            .ends_with(&"1".repeat(64))
    );
    assert_eq!(
        files_containing(&state, "rotated-secret-9b2e"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(&state, "first-secret-4f1c"),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn a_release_recorded_with_env_file_values_still_loads() {
    // Before env files were recorded by reference, the model held their values.
    let old = serde_json::json!({
        "seq": 3, "stack": "app", "started_at": "2026-01-01T00:00:00Z", "outcome": "succeeded",
        "pid": 1, "variables": {}, "files": ["/srv/app/compose.yaml"],
        "model": {"name": "app", "services": {"web": {
            "image": "app:1", "command": null, "entrypoint": null,
            "environment": {"DB_PASSWORD": "old-value"}}}},
        "images": {}, "env_files": {"/srv/app/app.env": "00"}
    });
    let release: crate::ledger::Release = serde_json::from_value(old).unwrap();
    let project = super::apply::project_from_release(&release).unwrap();
    assert_eq!(
        project.services["web"].environment["DB_PASSWORD"].as_deref(),
        Some("old-value")
    );
}

/// A tmpfs mounted on a fresh directory (root only), unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        gantry_tests::prerequisite(ok, "mounting a tmpfs (needs root)").then(|| Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// Fills the file system of `fill` (writes until ENOSPC) when the rollout starts on a service.
struct FillDisk {
    fill: PathBuf,
    done: std::sync::atomic::AtomicBool,
}

impl super::Progress for FillDisk {
    fn step(&self, service: Option<&str>, _message: &str) {
        if service.is_some() && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&self.fill).unwrap();
            while f.write_all(&[0u8; 4096]).is_ok() {}
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_whose_release_cannot_be_written_says_so_and_supervision_keeps_it() {
    let Some(disk) = Tmpfs::mount("256k") else {
        return;
    };
    let s = Setup::new();
    let deployer = Deployer::new(s.engine.clone(), Ledger::new(disk.0.path()));
    let compose = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    let r1 = deployer.deploy(&s.request(compose, "1"), &Quiet).await;
    assert_eq!(r1.outcome, Outcome::Succeeded, "{:?}", r1.error);

    // The state dir fills up while v2 rolls out: the rollout is good, its record is not.
    let fill = disk.0.path().join("filler");
    let filler = FillDisk {
        fill: fill.clone(),
        done: Default::default(),
    };
    let r2 = deployer.deploy(&s.request(compose, "2"), &filler).await;
    assert_eq!(r2.outcome, Outcome::NotRecorded, "{:?}", r2.error);
    assert_eq!(r2.exit_code(), crate::ExitCode::NotRecorded);
    assert_eq!(r2.exit_code().code(), 6);
    let msg = r2.error.clone().unwrap_or_default();
    assert!(
        msg.contains("the rollout succeeded and r2 is running")
            && msg.contains("could not be recorded"),
        "{msg}"
    );
    let on_disk = |d: &Deployer| {
        d.ledger()
            .stack("app")
            .unwrap()
            .releases()
            .unwrap()
            .iter()
            .map(|r| (r.seq, r.outcome))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        on_disk(&deployer),
        vec![(1, Outcome::Succeeded), (2, Outcome::InProgress)]
    );
    let running = || s.engine.containers()["app-web-1"].image_id.clone();
    assert!(running().ends_with(&"2".repeat(64)));

    // Supervision's reconcile keeps what runs (r2), not the last release on disk (r1).
    assert_eq!(deployer.unrecorded("app").map(|r| r.seq), Some(2));
    let healed = deployer.reconcile(&s.request(compose, "2"), &Quiet).await;
    assert_eq!(healed.release.as_deref(), Some("r2"), "{:?}", healed.error);
    assert!(running().ends_with(&"2".repeat(64)));

    // While the disk is full, trying again records nothing and keeps it.
    deployer.retry_unrecorded("app");
    assert_eq!(deployer.unrecorded("app").map(|r| r.seq), Some(2));
    // Space comes back: supervision's next resync records r2, no job needed.
    std::fs::remove_file(&fill).unwrap();
    deployer.retry_unrecorded("app");
    assert!(deployer.unrecorded("app").is_none());
    let again = deployer.reconcile(&s.request(compose, "2"), &Quiet).await;
    assert_eq!(again.outcome, Outcome::Succeeded, "{:?}", again.error);
    assert_eq!(
        on_disk(&deployer),
        vec![(1, Outcome::Succeeded), (2, Outcome::Succeeded)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_plan_of_a_new_stack_creates_no_directory() {
    let s = Setup::new();
    let plan = s.deployer.plan(&s.request(TWO, "1")).await.unwrap();
    assert!(!plan.services.is_empty());
    let stacks = s.dir.path().join("state/stacks");
    assert!(!stacks.exists(), "plan made a phantom stack dir");
}

#[test]
fn log_tails_in_errors_and_job_logs_are_capped_in_lines_and_bytes() {
    use super::{DeployError, TAIL_BYTES, TAIL_LINE_BYTES, TAIL_LINES};
    let long: Vec<String> = (0..500)
        .map(|i| format!("line {i} {}", "x".repeat(10_000)))
        .collect();
    let failed = |logs: Vec<String>| DeployError::JobFailed {
        service: "migrate".into(),
        exit_code: 1,
        logs,
    };
    let msg = failed(long.clone()).to_string();
    assert!(msg.len() <= TAIL_BYTES + 100, "{} bytes", msg.len());
    assert!(msg.contains("line 499 ") && !msg.contains("line 0 "));
    assert!(msg.lines().all(|l| l.len() <= TAIL_LINE_BYTES + 10));
    let short: Vec<String> = (0..500).map(|i| format!("l{i}")).collect();
    let msg = failed(short).to_string();
    assert_eq!(msg.lines().count(), 2 + TAIL_LINES, "{msg}");
    assert!(msg.ends_with("\nl499") && msg.contains("\nl450\n") && !msg.contains("\nl449\n"));
    // The same cap holds for a container's tail and health log.
    let not_ready = DeployError::NotReady {
        service: "web".into(),
        container: "app-web-1".into(),
        problem: "is unhealthy".into(),
        health_log: long.clone(),
        logs: long.clone(),
    };
    assert!(not_ready.to_string().len() <= 2 * TAIL_BYTES + 200);
    // A job's kept log file: its last MiB, from a line start.
    let body = super::jobs::job_log_file(&long);
    assert!(body.len() <= super::jobs::JOB_LOG_BYTES);
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with("line ") && text.ends_with(&format!("{}\n", "x".repeat(10))));
}

#[tokio::test(start_paused = true)]
async fn timeout_covers_a_stalled_pull_and_frees_the_stack() {
    let s = Setup::new();
    let compose = "services:\n  web:\n    image: app:${V}\n    x-gantry: {min_ready: 1s}\n";
    s.engine.stall_pulls(true);
    let mut req = s.request(compose, "1");
    req.timeout = std::time::Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    let r = s.deployer.deploy(&req, &Quiet).await;
    assert_eq!(r.outcome, Outcome::Failed, "{:?}", r.error);
    assert_eq!(r.exit_code(), crate::ExitCode::Failed);
    let msg = r.error.unwrap_or_default();
    assert!(
        msg.contains("did not finish within 30s (--timeout)"),
        "{msg}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(31));
    assert!(s.engine.calls().iter().any(|c| c == "pull app:1"));
    // The stack is free at once: the next deploy (no lock wait) runs and succeeds.
    s.engine.stall_pulls(false);
    let r = s.deploy(compose, "1").await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}", r.error);
}

/// `n` independent services (`s1`..), each running 1 s before it counts as ready.
fn independent(n: usize) -> String {
    let mut compose = String::from("services:\n");
    for i in 1..=n {
        compose.push_str(&format!(
            "  s{i}:\n    image: app:1\n    environment: {{V: \"${{V}}\"}}\n    x-gantry: {{min_ready: 1s}}\n"
        ));
    }
    compose
}

#[tokio::test(start_paused = true)]
async fn independent_services_wait_for_readiness_side_by_side() {
    let s = Setup::new();
    let mut req = s.request(&independent(20), "1");
    // Bounds Docker calls in flight, not services waiting for readiness.
    req.concurrency = 8;
    let started = tokio::time::Instant::now();
    let report = s.deployer.deploy(&req, &Quiet).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    // 20 services of 1 s each wait side by side: one second on the paused clock, not twenty
    // (one at a time) nor three (eight at a time).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "{took:?}"
    );
    // Each service started once.
    let calls = s.engine.calls();
    let starts: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("start app-s"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 20, "{calls:#?}");
    // The report lists the services in plan order, whatever order they finished in.
    let order: Vec<&str> = report.services.iter().map(|r| r.service.as_str()).collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(
        order, sorted,
        "plan order is by name among independent services"
    );
    assert_eq!(order.len(), 20);

    // A change to all of them replaces them start-first, side by side as well: 1 s ready
    // plus the DNS drain of the old containers, once.
    let req = s.request(&independent(20), "2");
    let started = tokio::time::Instant::now();
    let report = s.deployer.deploy(&req, &Quiet).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn dependents_wait_while_independent_services_go_ahead() {
    let s = Setup::new();
    let compose = "services:
  db:
    image: app:${V}
    x-gantry: {min_ready: 2s}
  api:
    image: app:${V}
    depends_on: [db]
    x-gantry: {min_ready: 1s}
  cache:
    image: app:${V}
    x-gantry: {min_ready: 1s}
  web:
    image: app:${V}
    depends_on:
      api: {condition: service_started}
    x-gantry: {min_ready: 1s}
";
    let started = tokio::time::Instant::now();
    let report = s.deploy(compose, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.engine.calls();
    // cache starts beside db, not after it; api only once db is ready; web after api.
    assert!(at(&calls, "start app-cache-1") < at(&calls, "create app-api-1"));
    assert!(at(&calls, "start app-db-1") < at(&calls, "create app-api-1"));
    assert!(at(&calls, "start app-api-1") < at(&calls, "create app-web-1"));
    // db 2 s, then api 1 s, then web 1 s; cache in the shadow of db.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let order: Vec<&str> = report.services.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(order.len(), 4);
    assert!(order.iter().position(|s| *s == "db") < order.iter().position(|s| *s == "api"));
}

#[tokio::test(start_paused = true)]
async fn a_failure_stops_new_work_lets_work_in_flight_finish_and_rolls_back() {
    let s = Setup::new();
    // bad is replaced stop-first and crashes in version 3; slow is replaced beside it and
    // takes 3 s; after waits for bad and must not start once bad failed.
    let compose = "services:
  bad:
    image: app:${V}
    deploy: {update_config: {order: stop-first}}
    x-gantry: {min_ready: 1s}
  slow:
    image: app:1
    environment: {V: \"${V}\"}
    x-gantry: {min_ready: 3s}
  after:
    image: app:1
    environment: {V: \"${V}\"}
    depends_on: [bad]
    x-gantry: {min_ready: 1s}
";
    let r1 = s.deploy(compose, "2").await;
    assert_eq!(r1.outcome, Outcome::Succeeded, "{:?}", r1.error);
    s.engine.crash_image(&format!("sha256:{}", "3".repeat(64)));
    s.engine.clear_calls();
    let r2 = s.deploy(compose, "3").await;
    assert_eq!(r2.outcome, Outcome::RolledBack, "{:?}", r2.error);
    assert_eq!(r2.rolled_back_to.as_deref(), Some("r1"));
    let calls = s.engine.calls();
    // slow was in flight when bad failed: it finished its replacement (then was rolled back).
    let slow_done = at(&calls, "rename app-slow-1-gantry-next app-slow-1");
    assert!(slow_done > at(&calls, "start app-bad-1"), "{calls:#?}");
    // after never started in version 3: the only after container created is none at all
    // (it is unchanged on the way back).
    assert!(
        !calls.iter().any(|c| c.starts_with("create app-after")),
        "{calls:#?}"
    );
    // Everything is back on version 2.
    let containers = s.engine.containers();
    for name in ["app-bad-1", "app-slow-1", "app-after-1"] {
        let c = &containers[name];
        assert!(c.state.running, "{name}");
    }
    assert!(containers["app-bad-1"].image_id.ends_with(&"2".repeat(64)));
}

#[tokio::test(start_paused = true)]
async fn a_replacement_cut_short_then_another_version_keeps_the_serving_container_until_ready() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 10s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    // Version 2 is cut short in its readiness wait (a kill -9, an SSM timeout): its
    // `-gantry-next` container runs beside the old one, which still serves.
    let cut = tokio::time::timeout(Duration::from_secs(5), s.deploy(compose, "2")).await;
    assert!(cut.is_err(), "the deploy of 2 was to be cut short");
    let names: Vec<String> = s.engine.containers().into_keys().collect();
    assert_eq!(names, ["app-web-1", "app-web-1-gantry-next"]);

    s.engine.clear_calls();
    let report = s.deploy(compose, "3").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.calls_but_pulls();
    // The container that served is kept until 3 is ready; the half-done one goes first.
    let gone = at(&calls, "remove app-web-1");
    for call in [
        "remove app-web-1-gantry-next",
        "start app-web-1-gantry-next",
        "connect app-web-1-gantry-next app_default",
    ] {
        assert!(
            at(&calls, call) < gone,
            "{call} before the old one goes: {calls:#?}"
        );
    }
    only_web_runs(&s, "3");
}

#[tokio::test(start_paused = true)]
async fn a_service_left_under_its_temporary_name_is_replaced_without_removing_it_first() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    // A replacement killed between the old container's removal and the rename: only the
    // new container runs, under its temporary name.
    use crate::engine::Engine as _;
    s.engine
        .rename_container("app-web-1", "app-web-1-gantry-next")
        .await
        .unwrap();
    s.engine.clear_calls();
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.calls_but_pulls();
    let gone = at(&calls, "remove app-web-1-gantry-next");
    assert!(at(&calls, "start app-web-1") < gone, "{calls:#?}");
    only_web_runs(&s, "2");
}

#[tokio::test(start_paused = true)]
async fn optional_dependencies_that_are_absent_or_leaving_hold_nothing_up() {
    // A job dependency that is optional and not active (its profile is off): deploys and the
    // rollback after a failure go on without it.
    let s = Setup::new();
    let compose = "services:
  migrate:
    image: app:${V}
    profiles: [tools]
  web:
    image: app:${V}
    deploy: {update_config: {order: stop-first}}
    depends_on: {migrate: {condition: service_completed_successfully, required: false}}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    s.engine.crash_image(&format!("sha256:{}", "2".repeat(64)));
    let r2 = s.deploy(compose, "2").await;
    assert_eq!(r2.outcome, Outcome::RolledBack, "{:?}", r2.error);
    let web = &s.engine.containers()["app-web-1"];
    assert!(web.state.running && web.image_id.ends_with(&"1".repeat(64)));

    // An optional dependency that leaves the files while its container still runs: the
    // dependant is not held waiting for it (it is removed after everything else).
    let s = Setup::new();
    let with_cache = "services:
  cache:
    image: app:${V}
    x-gantry: {min_ready: 1s}
  web:
    image: app:${V}
    depends_on: {cache: {condition: service_started, required: false}}
    x-gantry: {min_ready: 1s}
";
    let without = "services:
  web:
    image: app:${V}
    depends_on: {cache: {condition: service_started, required: false}}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(with_cache, "1").await.outcome, Outcome::Succeeded);
    let r2 = s.deploy(without, "2").await;
    assert_eq!(r2.outcome, Outcome::Succeeded, "{:?}", r2.error);
    let left = s.engine.containers();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["app-web-1"]);
    assert!(left["app-web-1"].image_id.ends_with(&"2".repeat(64)));
}

#[tokio::test(start_paused = true)]
async fn an_added_replica_that_fails_its_gate_leaves_the_service_as_it_was() {
    let s = Setup::new();
    let one = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    let two = "services:
  web:
    image: app:${V}
    deploy: {replicas: 2}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(one, "1").await.outcome, Outcome::Succeeded);
    // From now on a container of this image exits at once: the running one is not affected.
    s.engine.crash_image(&format!("sha256:{}", "1".repeat(64)));
    let report = s.deploy(two, "1").await;
    assert_eq!(report.outcome, Outcome::Failed, "{:?}", report.error);
    let left = s.engine.containers();
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        ["app-web-1"],
        "the failed replica does not stay in the service's DNS"
    );
    assert!(left["app-web-1"].state.running);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_release_cannot_be_written_still_reports_the_rollback() {
    let Some(disk) = Tmpfs::mount("256k") else {
        return;
    };
    let s = Setup::new();
    let deployer = Deployer::new(s.engine.clone(), Ledger::new(disk.0.path()));
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {order: stop-first}}
    x-gantry: {min_ready: 1s}
";
    let r1 = deployer.deploy(&s.request(compose, "1"), &Quiet).await;
    assert_eq!(r1.outcome, Outcome::Succeeded, "{:?}", r1.error);
    // v2 exits at once and the state dir fills up meanwhile: rolled back, not recorded.
    s.engine.crash_image(&format!("sha256:{}", "2".repeat(64)));
    let filler = FillDisk {
        fill: disk.0.path().join("filler"),
        done: Default::default(),
    };
    let r2 = deployer.deploy(&s.request(compose, "2"), &filler).await;
    assert_eq!(r2.outcome, Outcome::RolledBack, "{:?}", r2.error);
    assert_eq!(r2.exit_code(), crate::ExitCode::RolledBack);
    let msg = r2.error.clone().unwrap_or_default();
    assert!(
        msg.contains("exited with code 1") && msg.contains("r2 could not be recorded"),
        "the rollout's error and the write error: {msg}"
    );
    assert!(
        s.engine.containers()["app-web-1"]
            .image_id
            .ends_with(&"1".repeat(64))
    );
}

#[tokio::test(start_paused = true)]
async fn a_job_that_succeeded_does_not_run_again_after_its_deploy_was_killed() {
    let s = Setup::new();
    let compose = "services:
  migrate:
    image: app:${V}
    x-gantry: {job: {timeout: 1m}}
  web:
    image: app:${V}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-gantry: {min_ready: 10s}
";
    // Killed while web waits to be ready, after the migration succeeded.
    let cut = tokio::time::timeout(Duration::from_secs(5), s.deploy(compose, "1")).await;
    assert!(cut.is_err(), "the deploy was to be cut short");
    assert!(
        s.engine
            .calls()
            .iter()
            .any(|c| c.starts_with("create app-migrate"))
    );
    s.engine.clear_calls();
    let report = s.deploy(compose, "1").await;
    assert!(report.outcome.is_good(), "{report:?}");
    let calls = s.engine.calls();
    assert!(
        !calls.iter().any(|c| c.contains("migrate")),
        "the migration ran again: {calls:#?}"
    );
}

/// A migration job that web waits for.
const MIGRATE_THEN_WEB: &str = "services:
  migrate:
    image: app:${V}
    x-gantry: {job: {timeout: 10m}}
  web:
    image: app:${V}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-gantry: {min_ready: 1s}
";

/// [`MIGRATE_THEN_WEB`] at v1, then a deploy of v2 cut (killed, or its --timeout) while its
/// migration still runs (and keeps running).
async fn cut_during_a_long_job(s: &Setup) {
    assert!(s.deploy(MIGRATE_THEN_WEB, "1").await.outcome.is_good());
    s.engine.job_hangs("migrate");
    let cut = tokio::time::timeout(Duration::from_secs(60), s.deploy(MIGRATE_THEN_WEB, "2")).await;
    assert!(cut.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_job_still_running_from_an_earlier_deploy_is_not_killed() {
    let s = Setup::new();
    // v2's migration takes long; its deploy is killed (or cut by --timeout) meanwhile.
    cut_during_a_long_job(&s).await;
    let compose = MIGRATE_THEN_WEB;
    s.engine.clear_calls();
    // The next deploy waits for it, at most its job timeout, then stops with nothing changed.
    let started = tokio::time::Instant::now();
    let again = s.deploy(compose, "2").await;
    assert!(started.elapsed() >= Duration::from_secs(600));
    assert_eq!(again.exit_code(), crate::ExitCode::TempFail, "{again:?}");
    let msg = again.error.clone().unwrap_or_default();
    assert!(
        msg.contains("is still running") && msg.contains("app-migrate"),
        "{msg}"
    );
    let calls = s.engine.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("remove") || c.starts_with("stop")),
        "the migration or a service was touched: {calls:#?}"
    );
}

/// A deploy under an id that stopped with nothing changed for something passing (here a job of
/// a killed deploy still running: 75, "deploy again") answers nothing to its retry: the retry
/// applies (it was answered "already applied" with the same 75 forever).
#[tokio::test(start_paused = true)]
async fn a_deploy_id_that_failed_for_something_passing_is_applied_again() {
    let s = Setup::new();
    cut_during_a_long_job(&s).await;
    let compose = MIGRATE_THEN_WEB;
    let with_id = || {
        let mut req = s.request(compose, "2");
        req.deploy_id = Some("42".to_owned());
        req
    };
    let first = s.deployer.deploy(&with_id(), &Quiet).await;
    assert_eq!(first.exit_code(), crate::ExitCode::TempFail, "{first:?}");
    let retry = s.deployer.deploy(&with_id(), &Quiet).await;
    assert!(!retry.repeated, "answered from the ledger: {retry:?}");
    assert_ne!(retry.release, first.release, "{retry:?}");
}

#[tokio::test(start_paused = true)]
async fn a_renamed_network_or_volume_recreates_the_containers_that_use_it() {
    let s = Setup::new();
    let compose = |net: &str, vol: &str| {
        format!(
            "services:
  web:
    image: app:${{V}}
    networks: [front]
    volumes: [data:/data]
    x-gantry: {{min_ready: 1s}}
  other:
    image: app:${{V}}
    x-gantry: {{min_ready: 1s}}
networks:
  front: {{name: {net}}}
volumes:
  data: {{name: {vol}}}
"
        )
    };
    assert!(
        s.deploy(&compose("shop-front", "shop-data"), "1")
            .await
            .outcome
            .is_good()
    );
    let same = s
        .deployer
        .plan(&s.request(&compose("shop-front", "shop-data"), "1"))
        .await
        .unwrap();
    assert!(same.is_noop(), "{:?}", actions(&same));

    // The service's own keys are the same (its hash too): only the Docker names moved.
    for (next, why) in [
        (
            compose("shop-edge", "shop-data"),
            "network shop-edge not attached",
        ),
        (
            compose("shop-front", "shop-files"),
            "volume shop-files not mounted",
        ),
    ] {
        let plan = s.deployer.plan(&s.request(&next, "1")).await.unwrap();
        let web = plan.get("web").unwrap();
        assert_eq!(web.action, Action::Recreate, "{:?}", web.reasons);
        assert_eq!(web.reasons, [why]);
        assert_eq!(plan.get("other").unwrap().action, Action::Unchanged);
    }
    let next = compose("shop-edge", "shop-files");
    assert!(s.deploy(&next, "1").await.outcome.is_good());
    let web = s.engine.containers().remove("app-web-1").unwrap();
    assert_eq!(web.networks, ["shop-edge"]);
    assert_eq!(web.volumes, ["shop-files"]);
    let plan = s.deployer.plan(&s.request(&next, "1")).await.unwrap();
    assert!(plan.is_noop(), "{:?}", actions(&plan));
}

const KILLED_STACK: &str = "services:
  db:
    image: app:${V}
    volumes: [data:/var/lib/db]
    x-gantry: {min_ready: 1s}
  migrate:
    image: app:${V}
    depends_on: {db: {condition: service_started}}
    x-gantry: {job: {timeout: 1m}}
  web:
    image: app:${V}
    deploy: {replicas: 2}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-gantry: {min_ready: 1s}
  worker:
    image: app:${V}
    x-gantry: {min_ready: 1s}
volumes:
  data: {}
";

/// Kill -9 at every step of a deploy of version 2 that runs `KILLED_STACK` from version 1:
/// the deploy is cut right after each of its engine calls in turn (the engine stops
/// answering, the deploy is dropped: what a killed process leaves), and the next deploy (of 2
/// again, or of 3) must converge: every service on that version, one container per replica
/// under its own name, the job's container gone, the release succeeded. `prepare` readies the
/// engine for version 2 (e.g. makes it crash). Returns how many cuts there were.
async fn killed_after_every_call(prepare: impl Fn(&Setup)) -> usize {
    for n in 1.. {
        let s = Setup::new();
        assert!(s.deploy(KILLED_STACK, "1").await.outcome.is_good());
        prepare(&s);
        let killed = s
            .engine
            .killed_after(n, s.deploy(KILLED_STACK, "2"))
            .await
            .is_none();
        if !killed {
            return n - 1;
        }
        let cut_after = s.engine.calls().last().cloned().unwrap_or_default();
        let next = if n % 2 == 0 { "1" } else { "3" };
        let report = s.deploy(KILLED_STACK, next).await;
        let case = format!("killed after call {n} ({cut_after}), then deploying {next}");
        assert_eq!(
            report.outcome,
            Outcome::Succeeded,
            "{case}: {:?}",
            report.error
        );
        let left = s.engine.containers();
        assert_eq!(
            left.keys().collect::<Vec<_>>(),
            ["app-db-1", "app-web-1", "app-web-2", "app-worker-1"],
            "{case}"
        );
        for (name, c) in &left {
            assert!(
                c.state.running && c.image_id.ends_with(&next.repeat(64)),
                "{case}: {name} {c:?}"
            );
        }
        let again = s
            .deployer
            .plan(&s.request(KILLED_STACK, next))
            .await
            .unwrap();
        assert!(again.is_noop(), "{case}: {:?}", actions(&again));
    }
    unreachable!()
}

#[tokio::test(start_paused = true)]
async fn a_deploy_killed_after_any_engine_call_is_converged_by_the_next() {
    let cuts = killed_after_every_call(|_| {}).await;
    assert!(cuts > 20, "only {cuts} calls to cut after");
}

/// The same for a deploy whose version 2 crashes: the kill lands in the rollout, then in the
/// rollback to version 1.
#[tokio::test(start_paused = true)]
async fn a_rollback_killed_after_any_engine_call_is_converged_by_the_next_deploy() {
    let crash = |s: &Setup| s.engine.crash_image(&format!("sha256:{}", "2".repeat(64)));
    let cuts = killed_after_every_call(crash).await;
    assert!(cuts > 10, "only {cuts} calls to cut after");
}

#[tokio::test(start_paused = true)]
async fn a_job_that_depends_on_an_unchanged_service_runs_first() {
    let s = Setup::new();
    let compose = "services:
  db:
    image: app:1
    x-gantry: {min_ready: 1s}
  migrate:
    image: app:${V}
    depends_on: {db: {condition: service_started}}
    x-gantry: {job: {timeout: 1m}}
  web:
    image: app:${V}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
}

mod down;
mod model;
mod together;

/// A replacement killed between the old container's removal and its own rename serves under
/// its temporary name: the same deploy again says so and renames it (and gives its aliases),
/// it does not call the stack unchanged.
#[tokio::test(start_paused = true)]
async fn a_replacement_killed_before_its_rename_is_renamed_by_the_same_deploy_again() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    deploy: {replicas: 2}
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "3").await.outcome.is_good());
    // Killed right after `remove app-web-2` (the 18th call), before the rename.
    let ended = s.engine.killed_after(18, s.deploy(compose, "1")).await;
    assert!(ended.is_none(), "the deploy was to be killed");
    assert_eq!(s.engine.calls().last().unwrap(), "remove app-web-2");
    let plan = s.deployer.plan(&s.request(compose, "1")).await.unwrap();
    let web = plan.get("web").unwrap();
    assert_eq!(web.action, Action::Start, "{:?}", web.reasons);
    assert_eq!(
        web.reasons,
        ["container left under the temporary name app-web-2-gantry-next"]
    );
    s.engine.clear_calls();
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    let calls = s.calls_but_pulls();
    assert!(
        calls.contains(&"rename app-web-2-gantry-next app-web-2".to_owned())
            && !calls
                .iter()
                .any(|c| c.starts_with("create") || c.starts_with("remove")),
        "{calls:#?}"
    );
    let names: Vec<String> = s.engine.containers().into_keys().collect();
    assert_eq!(names, ["app-web-1", "app-web-2"]);
}

/// A new service that fails its gate is not left beside the last good release: the deploy
/// rolls back (exit 2) and its container goes; on a stack's first deploy, it stays (exit 1).
#[tokio::test(start_paused = true)]
async fn a_new_service_that_fails_goes_with_a_rollback_unless_the_stack_is_new() {
    let s = Setup::new();
    let one = "services:
  web:
    image: app:1
    x-gantry: {min_ready: 1s}
";
    let two = "services:
  web:
    image: app:1
    x-gantry: {min_ready: 1s}
  worker:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    s.engine.crash_image(&format!("sha256:{}", "2".repeat(64)));
    assert!(s.deploy(one, "1").await.outcome.is_good());
    let web = s.engine.containers()["app-web-1"].id.clone();
    let report = s.deploy(two, "2").await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.error);
    assert_eq!(report.exit_code(), crate::ExitCode::RolledBack);
    let left = s.engine.containers();
    assert_eq!(left.keys().collect::<Vec<_>>(), ["app-web-1"]);
    assert_eq!(left["app-web-1"].id, web, "web was not touched");

    let fresh = Setup::new();
    fresh
        .engine
        .crash_image(&format!("sha256:{}", "2".repeat(64)));
    let report = fresh.deploy(two, "2").await;
    assert_eq!(report.outcome, Outcome::Failed, "{:?}", report.error);
    let left = fresh.engine.containers();
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        ["app-web-1", "app-worker-1"]
    );
}

/// A migration job and a 2-replica web, deployed at version 1; then version 2's deploy is
/// killed once web-1 runs it (pull, the job's 3 calls, 9 for web-1): the stack sits half-way.
const HALF_WAY: &str = "services:
  migrate:
    image: app:${V}
    x-gantry: {job: {timeout: 1m}}
  web:
    image: app:${V}
    deploy: {replicas: 2}
    depends_on: {migrate: {condition: service_completed_successfully}}
    x-gantry: {min_ready: 1s}
";

async fn half_way() -> Setup {
    let s = Setup::new();
    assert!(s.deploy(HALF_WAY, "1").await.outcome.is_good());
    let ended = s.engine.killed_after(13, s.deploy(HALF_WAY, "2")).await;
    assert!(ended.is_none(), "the deploy was to be killed");
    s
}

/// A deploy killed half-way, then a deploy whose migration fails (before it touches anything
/// that runs): the stack goes back to the last good release, not left half-way.
#[tokio::test(start_paused = true)]
async fn a_failure_after_a_killed_deploy_returns_to_the_last_good_release() {
    let s = half_way().await;
    let compose = HALF_WAY;
    let mixed = s.engine.containers();
    assert!(
        mixed["app-web-1"].image_id.ends_with(&"2".repeat(64))
            && mixed["app-web-2"].image_id.ends_with(&"1".repeat(64)),
        "{:#?}",
        s.engine.calls()
    );
    s.engine.job_exit("migrate", 1);
    let report = s.deploy(compose, "3").await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.error);
    for (name, c) in s.engine.containers() {
        assert!(c.image_id.ends_with(&"1".repeat(64)), "{name} {c:?}");
    }
}

/// A container renamed by hand (not a replacement's temporary name) is the operator's
/// business: the plan leaves it be.
#[tokio::test(start_paused = true)]
async fn a_container_renamed_by_hand_is_left_alone() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    use crate::engine::Engine as _;
    s.engine
        .rename_container("app-web-1", "web-by-hand")
        .await
        .unwrap();
    let plan = s.deployer.plan(&s.request(compose, "1")).await.unwrap();
    assert!(plan.is_noop(), "{:?}", plan.get("web").unwrap().reasons);
}

/// After a killed deploy, a stop that is not a service's failure keeps its own exit code and
/// rolls nothing back: `failure_action: pause` that dropped only its new container is exit 1
/// (nothing changed by this deploy), not 3.
#[tokio::test(start_paused = true)]
async fn after_a_killed_deploy_a_paused_rollout_that_changed_nothing_exits_1() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    deploy:
      replicas: 2
      update_config: {failure_action: pause}
    x-gantry: {min_ready: 1s}
";
    assert!(s.deploy(compose, "1").await.outcome.is_good());
    // Killed once web-1 is replaced (its rename, the 10th call): no duplicate is left.
    let ended = s.engine.killed_after(10, s.deploy(compose, "2")).await;
    assert!(ended.is_none(), "the deploy was to be killed");
    s.engine.crash_image(&format!("sha256:{}", "3".repeat(64)));
    let report = s.deploy(compose, "3").await;
    assert_eq!(report.exit_code(), crate::ExitCode::Failed, "{report:?}");
    assert_eq!(report.outcome, Outcome::Failed);
}

/// After a killed deploy, a deploy that stops with its own code (65 here) leaves the stack
/// where it was, and says so in its release: the deploy after it still knows the stack sits
/// between two releases, and its failure goes back to the last good one.
#[tokio::test(start_paused = true)]
async fn a_stack_left_half_way_is_remembered_across_a_deploy_that_stops_early() {
    let s = half_way().await;
    let compose = HALF_WAY;
    // A port range Gantry cannot publish: exit 65 before anything changes.
    let refused = compose.replace(
        "    deploy: {replicas: 2}\n",
        "    deploy: {replicas: 2}\n    ports: [\"8000-8001:80\"]\n",
    );
    let report = s.deploy(&refused, "2").await;
    assert_eq!(
        report.exit_code(),
        crate::ExitCode::InvalidInput,
        "{report:?}"
    );
    // Then a failing migration: back to version 1, every replica.
    s.engine.job_exit("migrate", 1);
    let report = s.deploy(compose, "3").await;
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.error);
    for (name, c) in s.engine.containers() {
        assert!(c.image_id.ends_with(&"1".repeat(64)), "{name} {c:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_deploy_id_a_later_release_superseded_is_applied_again() {
    // A CI re-run of an older pipeline's deploy job (GitLab's "re-deploy"): its id was applied,
    // then another release came; answering "already applied" would leave the other version
    // running behind a green job.
    let s = Setup::new();
    let compose = "services:\n  web:\n    image: app:${V}\n    x-gantry: {min_ready: 1s}\n";
    let deploy = |version: &str, id: &str| {
        let mut req = s.request(compose, version);
        req.deploy_id = Some(id.to_owned());
        req
    };
    let a = s.deployer.deploy(&deploy("1", "A"), &Quiet).await;
    assert_eq!(a.exit_code(), crate::ExitCode::Ok, "{a:?}");
    let b = s.deployer.deploy(&deploy("2", "B"), &Quiet).await;
    assert_eq!(b.exit_code(), crate::ExitCode::Ok, "{b:?}");
    // B again (an SSM or CI retry while B is the last release): answered, nothing done.
    let again = s.deployer.deploy(&deploy("2", "B"), &Quiet).await;
    assert!(again.repeated, "{again:?}");
    assert_eq!(again.release, b.release);
    // A rollback since does not supersede B: its retried job must not undo the rollback.
    let back = s
        .deployer
        .rollback(&s.request(compose, "2"), None, &Quiet)
        .await;
    assert_eq!(back.exit_code(), crate::ExitCode::Ok, "{back:?}");
    let again = s.deployer.deploy(&deploy("2", "B"), &Quiet).await;
    assert!(again.repeated, "{again:?}");
    assert!(
        s.engine.containers()["app-web-1"]
            .image_id
            .ends_with(&"1".repeat(64)),
        "the rollback stays"
    );

    let rerun = s.deployer.deploy(&deploy("1", "A"), &Quiet).await;
    assert!(!rerun.repeated, "{rerun:?}");
    assert_eq!(rerun.exit_code(), crate::ExitCode::Ok, "{rerun:?}");
    assert_ne!(rerun.release, a.release, "a new release");
    assert_eq!(
        s.engine.containers()["app-web-1"].image_id,
        format!("sha256:{}", "1".repeat(64)),
        "A's version runs again"
    );
    // And now A is the last release: its id is answered again.
    let again = s.deployer.deploy(&deploy("1", "A"), &Quiet).await;
    assert!(again.repeated, "{again:?}");
    assert_eq!(again.release, rerun.release);
}

#[tokio::test(start_paused = true)]
async fn a_replacement_keeps_the_anonymous_volumes_and_is_stop_first() {
    // A database image run without a named volume keeps its data in its VOLUME; Compose gives
    // the replacement the same volume. A fresh one would be an empty database, gated green.
    let s = Setup::new();
    for v in ["1", "2"] {
        s.engine
            .declare_volumes(&format!("app:{v}"), &["/var/lib/mysql"]);
    }
    let compose = "services:
  web:
    image: app:${V}
    volumes: [/scratch]
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    let before = s.engine.containers()["app-web-1"].anonymous_volumes.clone();
    let targets: Vec<&str> = before.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(targets, ["/scratch", "/var/lib/mysql"]);
    let plan = s.deployer.plan(&s.request(compose, "2")).await.unwrap();
    let web = plan.get("web").unwrap();
    assert_eq!(
        (web.strategy, web.strategy_reason.as_str()),
        (
            Some(super::health::Strategy::StopFirst),
            "keeps its anonymous volumes (/scratch, /var/lib/mysql)"
        ),
        "gantry plan says so"
    );
    s.engine.clear_calls();

    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let after = &s.engine.containers()["app-web-1"];
    assert!(after.image_id.ends_with(&"2".repeat(64)));
    assert_eq!(after.anonymous_volumes, before, "the same volumes");
    assert_eq!(
        s.calls_but_pulls(),
        [
            "create app-web-1-gantry-next",
            "stop app-web-1",
            "remove app-web-1",
            "rename app-web-1-gantry-next app-web-1",
            "start app-web-1",
        ],
        "never two containers on one data directory"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reconcile_leaves_a_rollout_stopped_where_it_failed_after_it_was_decided() {
    // The daemon decided to reconcile (drift) before it had the lock; meanwhile a deploy with
    // `failure_action: pause` stopped where it failed, on purpose. The reconcile must not
    // undo it.
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {failure_action: pause, order: stop-first}}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    s.engine.crash_image(&format!("sha256:{}", "2".repeat(64)));
    let paused = s.deploy(compose, "2").await;
    assert_eq!(
        paused.exit_code(),
        crate::ExitCode::RollbackFailed,
        "{paused:?}"
    );
    s.engine.clear_calls();

    let mut req = s.request(compose, "1");
    req.lock_wait = std::time::Duration::from_secs(1);
    let report = s.deployer.reconcile(&req, &Quiet).await;
    assert_eq!(report.outcome, Outcome::Unchanged, "{report:?}");
    assert_eq!(report.release, paused.release);
    let calls = s.calls_but_pulls();
    assert!(
        calls.iter().all(|c| !c.starts_with("create")
            && !c.starts_with("stop")
            && !c.starts_with("remove")),
        "{calls:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_explicit_start_first_shares_the_anonymous_volumes_without_downtime() {
    // An image whose VOLUME is scratch space (`/tmp`): the service asks for start-first, and
    // gets it; the new container mounts the old one's volume beside it.
    let s = Setup::new();
    for v in ["1", "2"] {
        s.engine.declare_volumes(&format!("app:{v}"), &["/tmp"]);
    }
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {order: start-first}}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    let before = s.engine.containers()["app-web-1"].anonymous_volumes.clone();
    let plan = s.deployer.plan(&s.request(compose, "2")).await.unwrap();
    assert_eq!(
        plan.get("web").unwrap().strategy,
        Some(super::health::Strategy::StartFirst)
    );
    s.engine.clear_calls();
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let calls = s.calls_but_pulls();
    assert!(
        at(&calls, "start app-web-1-gantry-next") < at(&calls, "stop app-web-1"),
        "start-first: {calls:#?}"
    );
    assert_eq!(s.engine.containers()["app-web-1"].anonymous_volumes, before);
}

/// The names of the anonymous volumes that exist now (sorted).
fn anonymous_volumes(s: &Setup) -> Vec<String> {
    s.engine
        .resources()
        .into_iter()
        .filter_map(|r| r.strip_prefix("volume ").map(str::to_owned))
        .filter(|v| crate::engine::is_anonymous_volume(v))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_job_container_goes_with_its_anonymous_volumes_and_a_retired_one_keeps_them() {
    // A job run every release must not leave a volume per run; a retired container's
    // volumes live on in its replacement.
    let s = Setup::new();
    let compose = "services:
  migrate:
    image: app:${V}
    volumes: [/scratch]
    x-gantry: {job: {timeout: 1m}}
  web:
    image: app:${V}
    depends_on: {migrate: {condition: service_completed_successfully}}
    volumes: [/data]
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    let web = s.engine.containers()["app-web-1"].anonymous_volumes.clone();
    let web: Vec<String> = web.into_iter().map(|(_, name)| name).collect();
    assert_eq!(anonymous_volumes(&s), web, "the job's volume went with it");
    let report = s.deploy(compose, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(anonymous_volumes(&s), web, "no volume per run; web's kept");

    let removals = s.engine.removals();
    let jobs: Vec<_> = removals
        .iter()
        .filter(|(name, _)| name.starts_with("app-migrate"))
        .collect();
    assert_eq!(jobs.len(), 2, "{removals:?}");
    assert!(jobs.iter().all(|(_, volumes)| *volumes), "{removals:?}");
    assert!(
        removals.contains(&("app-web-1".to_owned(), false)),
        "the retired web container keeps its volumes: {removals:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_container_dropped_before_it_served_takes_only_the_volumes_made_for_it() {
    // Start-first, sharing the old container's `/tmp`; the new image declares one more
    // VOLUME. The new container never turns ready: dropped with what was made for it only.
    let s = Setup::new();
    s.engine.declare_volumes("app:1", &["/tmp"]);
    s.engine.declare_volumes("app:2", &["/tmp", "/cache"]);
    s.engine.crash_image(&format!("sha256:{}", "2".repeat(64)));
    let compose = "services:
  web:
    image: app:${V}
    deploy: {update_config: {order: start-first}}
    x-gantry: {min_ready: 1s}
";
    assert_eq!(s.deploy(compose, "1").await.outcome, Outcome::Succeeded);
    let before = anonymous_volumes(&s);
    assert_eq!(before.len(), 1);
    let report = s.deploy(compose, "2").await;
    assert!(!report.outcome.is_good(), "{report:?}");
    assert!(
        s.engine
            .removals()
            .contains(&("app-web-1-gantry-next".to_owned(), true)),
        "{:?}",
        s.engine.removals()
    );
    assert_eq!(
        anonymous_volumes(&s),
        before,
        "the shared /tmp stays, /cache went"
    );
    assert!(s.engine.containers()["app-web-1"].state.running);
}

/// A retired container's drain and stop share its grace period (docs/edge.md: "the rest of
/// its grace period"): a 20 s grace drained for 20 s was then given 20 s more to stop.
#[test]
fn the_stop_after_a_drain_gets_the_rest_of_the_grace_period() {
    use super::rollout::rest_of_grace;
    let s = Duration::from_secs;
    assert_eq!(rest_of_grace(s(20), Duration::ZERO), s(20));
    assert_eq!(rest_of_grace(s(20), s(5)), s(15));
    assert_eq!(
        rest_of_grace(s(20), s(20)),
        s(2),
        "a moment to exit on its signal"
    );
    assert_eq!(rest_of_grace(s(20), s(30)), s(2));
    assert_eq!(rest_of_grace(s(1), s(1)), s(1), "never more than the grace");
    assert_eq!(
        rest_of_grace(Duration::ZERO, Duration::ZERO),
        Duration::ZERO
    );
}

/// A deploy that waits for the stack's lock loads the files again once it holds it: whoever
/// held it (`gantry fetch-bundle` installing the next bundle) may have rewritten them, and
/// what was read before the wait must not be applied.
#[tokio::test(start_paused = true)]
async fn a_deploy_that_waited_for_the_lock_applies_the_files_as_they_are_then() {
    let s = Setup::new();
    let one = "services:\n  web:\n    image: app:1\n    x-gantry: {min_ready: 0s}\n";
    let mut req = s.request(one, "1");
    // Half-way through the install the files do not load (a bundle's first install): the
    // deploy waits for the lock rather than failing on them.
    write(&s.file, "services:\n  web:\n    image: [half\n");
    req.lock_wait = Duration::from_secs(60);
    let ledger = Ledger::new(&s.dir.path().join("state"));
    let stack = ledger.stack("app").unwrap();
    let held = stack
        .try_lock(&crate::ledger::Holder::me("gantry fetch-bundle app", None))
        .unwrap();
    let install = async {
        // The deploy has loaded version 1 and waits; the bundle's install rewrites the file.
        tokio::time::sleep(Duration::from_secs(2)).await;
        write(&s.file, &one.replace("app:1", "app:2"));
        drop(held);
    };
    let (report, ()) = tokio::join!(s.deployer.deploy(&req, &Quiet), install);
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    only_web_runs(&s, "2");
}
