//! Unit tests of a canary interrupted by a daemon that stops (`kill -9`, SIGTERM) right after
//! an operator's `gantry promote|abort` was taken: the in-memory engine, given addresses, and
//! an in-memory switch whose route changes can hang (the daemon dies there).
//! What only the kernel and Docker can show stays in `tests/tests/edge_canary*.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::ExitCode;
use crate::compose::LoadOptions;
use crate::edge::{Edge, EdgeError, Listen, Routes};
use crate::engine::Engine as _;
use crate::engine::fake::FakeEngine;
use crate::engine::fake::addressed::Addressed;
use crate::ledger::{CanaryCommand, Ledger, Outcome, StackLedger};

use crate::deploy::{DeployReport, DeployRequest, Deployer, Quiet};

/// An in-memory switch: the routes of each service as last set. With [`FakeEdge::hang`] on,
/// the next route change never returns (the daemon dies in it) and is not applied.
#[derive(Debug, Default)]
struct FakeEdge {
    routes: Mutex<BTreeMap<String, Routes>>,
    hang: AtomicBool,
    hung: AtomicBool,
    /// Until then every container has one connection open.
    open_until: Mutex<Option<tokio::time::Instant>>,
    /// An operator's `gantry abort` on this ledger, taken as soon as the switch gives the
    /// canary a share.
    abort_at_share: Mutex<Option<Ledger>>,
}

impl FakeEdge {
    /// Container name → weight, for service `web`.
    fn web(&self) -> BTreeMap<String, u8> {
        let routes = self.routes.lock().unwrap();
        routes.get("web").map_or_else(BTreeMap::new, |r| {
            r.backends
                .iter()
                .map(|b| (b.container.clone(), b.weight))
                .collect()
        })
    }
}

#[async_trait]
impl Edge for FakeEdge {
    fn available(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    async fn set_routes(&self, routes: &Routes) -> std::result::Result<(), EdgeError> {
        if self.hang.swap(false, Ordering::SeqCst) {
            self.hung.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let shared = routes
            .backends
            .iter()
            .any(|b| b.container == NEXT && b.weight > 0);
        let abort = self.abort_at_share.lock().unwrap().take_if(|_| shared);
        if let Some(ledger) = abort {
            crate::ledger::canary_request(&ledger, "app", CanaryCommand::Abort).unwrap();
        }
        self.routes
            .lock()
            .unwrap()
            .insert(routes.service.clone(), routes.clone());
        Ok(())
    }
    async fn retain_services(
        &self,
        _: &str,
        keep: &[String],
    ) -> std::result::Result<(), EdgeError> {
        self.routes.lock().unwrap().retain(|s, _| keep.contains(s));
        Ok(())
    }
    async fn open_connections(&self, _: u32, _: u16) -> Option<usize> {
        let until = *self.open_until.lock().unwrap();
        Some(usize::from(
            until.is_some_and(|t| tokio::time::Instant::now() < t),
        ))
    }
    async fn check_free(&self, _: &str, _: &str, _: Listen) -> std::result::Result<(), EdgeError> {
        Ok(())
    }
}

struct Setup {
    dir: tempfile::TempDir,
    file: PathBuf,
    engine: Arc<FakeEngine>,
    edge: Arc<FakeEdge>,
    deployer: Deployer,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        let engine = Arc::new(FakeEngine::new());
        for v in ["1", "2"] {
            engine.publish(&format!("app:{v}"), &v.repeat(64));
        }
        let edge = Arc::new(FakeEdge::default());
        let deployer = Deployer::new(
            Arc::new(Addressed::new(engine.clone())),
            Ledger::new(&dir.path().join("state")),
        )
        .with_edge(edge.clone());
        Self {
            dir,
            file,
            engine,
            edge,
            deployer,
        }
    }

    fn stack(&self) -> StackLedger {
        Ledger::new(&self.dir.path().join("state"))
            .stack("app")
            .unwrap()
    }

    fn request(&self, compose: &str, version: &str) -> DeployRequest {
        std::fs::write(&self.file, compose).unwrap();
        let load = LoadOptions {
            files: vec![self.file.clone()],
            project_name: Some("app".into()),
            environment: BTreeMap::from([("V".to_owned(), version.to_owned())]),
            ..LoadOptions::default()
        };
        DeployRequest::new("app", load)
    }

    /// Deploys version 2 with a canary of `steps`; once its first step is recorded, leaves
    /// `command` and drops the deploy (the daemon dies) in the next route change, the one
    /// that acts on the command.
    async fn killed_acting_on(&self, steps: &str, command: CanaryCommand) {
        let v1 = self.request(&web(steps), "1");
        let v1 = self.deployer.deploy(&v1, &Quiet).await;
        assert_eq!(v1.outcome, Outcome::Succeeded, "{:?}", v1.error);
        let stack = self.stack();
        let req = self.request(&web(steps), "2");
        let ended = tokio::select! {
            report = self.deployer.deploy(&req, &Quiet) => Some(report),
            () = async {
                until(|| stack.canary().is_some()).await;
                self.edge.hang.store(true, Ordering::SeqCst);
                stack.request_canary(command).unwrap();
                until(|| self.edge.hung.load(Ordering::SeqCst)).await;
            } => None,
        };
        assert!(ended.is_none(), "the deploy ended: {ended:?}");
    }

    /// What the next daemon does: restores the switch with the recorded canary, then resumes
    /// it (`None`: it did not end within an hour).
    async fn next_daemon(&self) -> Option<DeployReport> {
        let state = self.stack().canary().expect("a canary record");
        let engine = Addressed::new(self.engine.clone());
        crate::deploy::sync_edge_canary(&engine, self.edge.as_ref(), "app", &state)
            .await
            .unwrap();
        let req = DeployRequest::new("app", LoadOptions::default());
        let resume = self.deployer.resume_canary(&req, &Print);
        tokio::time::timeout(Duration::from_secs(3600), resume)
            .await
            .ok()
    }

    /// The names of the running containers with their image's version.
    fn running(&self) -> Vec<(String, char)> {
        self.engine
            .containers()
            .into_values()
            .filter(|c| c.state.running)
            .map(|c| (c.name, c.image_id.chars().last().unwrap_or('?')))
            .collect()
    }
}

/// Service `web` on port 8080 through the switch, with a canary of `steps`, paused an hour.
fn web(steps: &str) -> String {
    format!(
        "services:
  web:
    image: app:${{V}}
    ports: [\"8080:80\"]
    x-gantry:
      canary: {{steps: {steps}, pause: 1h}}
"
    )
}

async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const NEXT: &str = "app-web-1-gantry-next";

#[tokio::test(start_paused = true)]
async fn an_abort_taken_before_the_daemon_died_is_finished_by_the_next_not_promoted() {
    let s = Setup::new();
    s.killed_acting_on("[10, 100]", CanaryCommand::Abort).await;
    // Died with the canary still in rotation and running: the abort is recorded, the command
    // it came from is gone.
    let state = s.stack().canary().expect("the canary's record stays");
    assert_eq!(state.aborted.as_deref(), Some("aborted by hand"));
    assert!(s.stack().canary_command().is_none());
    assert_eq!(s.edge.web().get(NEXT), Some(&10), "{:?}", s.edge.web());
    assert!(s.running().contains(&(NEXT.to_owned(), '2')));

    s.edge.hang.store(false, Ordering::SeqCst);
    let report = s
        .next_daemon()
        .await
        .expect("the abort was resumed as a canary");
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.error);
    assert_eq!(report.exit_code(), ExitCode::RolledBack);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("canary aborted at 10%: aborted by hand"),
        "{error}"
    );
    assert_eq!(s.running(), [("app-web-1".to_owned(), '1')]);
    assert_eq!(
        s.edge.web(),
        BTreeMap::from([("app-web-1".to_owned(), 100)])
    );
    assert!(s.stack().canary().is_none());
}

/// An abort recorded, then the old version stops too while no daemon runs: the next daemon
/// rolls the deploy back, never keeps the aborted version as current.
#[tokio::test(start_paused = true)]
async fn a_recorded_abort_whose_old_container_stopped_is_rolled_back_not_kept() {
    let s = Setup::new();
    s.killed_acting_on("[10, 100]", CanaryCommand::Abort).await;
    s.edge.hang.store(false, Ordering::SeqCst);
    let old = s.engine.containers()["app-web-1"].id.clone();
    s.engine.kill_container(&old, "SIGKILL").await.unwrap();
    let report = s.next_daemon().await.expect("the resumption ended");
    assert_eq!(report.outcome, Outcome::RolledBack, "{:?}", report.error);
    let error = report.error.unwrap_or_default();
    assert!(error.contains("aborted by hand"), "{error}");
    assert_eq!(s.running(), [("app-web-1".to_owned(), '1')]);
    assert!(s.stack().canary().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_recorded_abort_gets_no_connection_from_the_next_daemon() {
    let s = Setup::new();
    s.killed_acting_on("[10, 100]", CanaryCommand::Abort).await;
    s.edge.hang.store(false, Ordering::SeqCst);
    let state = s.stack().canary().unwrap();
    let engine = Addressed::new(s.engine.clone());
    crate::deploy::sync_edge_canary(&engine, s.edge.as_ref(), "app", &state)
        .await
        .unwrap();
    // Weight 0 is out of rotation: every new connection to the old version.
    assert_eq!(
        s.edge.web(),
        BTreeMap::from([("app-web-1".to_owned(), 100), (NEXT.to_owned(), 0)])
    );
}

#[tokio::test(start_paused = true)]
async fn a_promote_taken_before_the_daemon_died_is_not_lost_nor_acted_on_twice() {
    let s = Setup::new();
    s.killed_acting_on("[10, 50, 100]", CanaryCommand::Promote)
        .await;
    // Died switching to 50%: the record is at 50% already, the command is done with.
    let state = s.stack().canary().expect("the canary's record stays");
    assert_eq!((state.step, state.share()), (1, 50));
    assert!(state.aborted.is_none());
    let id = state.command.clone().expect("the promote's id is recorded");
    assert!(s.stack().canary_command().is_none());
    // As if the daemon had died before it removed the command: the file is back.
    let file = s.dir.path().join("state/stacks/app/canary-command");
    std::fs::write(&file, format!("promote {id}\n")).unwrap();

    let stack = s.stack();
    let driver = async {
        // The resumed canary drops the command it already acted on and stays at 50%.
        until(|| !file.exists()).await;
        assert_eq!(s.edge.web().get(NEXT), Some(&50), "{:?}", s.edge.web());
        assert_eq!(stack.canary().map(|c| c.step), Some(1));
        stack.request_canary(CanaryCommand::Promote).unwrap();
    };
    let (report, ()) = tokio::join!(s.next_daemon(), driver);
    let report = report.expect("the resumed canary ended");
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    assert_eq!(s.running(), [("app-web-1".to_owned(), '2')]);
    assert!(s.stack().canary().is_none());
}

struct Print;
impl crate::deploy::Progress for Print {
    fn step(&self, service: Option<&str>, message: &str) {
        eprintln!("{service:?}: {message}");
    }
}

/// A canary on a service replaced stop-first (here a read-write named volume: two containers
/// do not write one data directory) cannot run old and new side by side: refused before
/// anything changes (exit 65), where the canary was skipped without a word and the new
/// version got every connection at once.
#[tokio::test(start_paused = true)]
async fn a_canary_on_a_stop_first_service_is_refused_before_anything_changes() {
    let s = Setup::new();
    let compose = "services:
  web:
    image: app:${V}
    ports: [\"8080:80\"]
    volumes: [\"data:/data\"]
    x-gantry:
      canary: {steps: [10, 100], pause: 1h}
volumes:
  data: {}
";
    let plain = compose.replace(
        "    x-gantry:\n      canary: {steps: [10, 100], pause: 1h}\n",
        "",
    );
    let v1 = s.deployer.deploy(&s.request(&plain, "1"), &Quiet).await;
    assert_eq!(v1.outcome, Outcome::Succeeded, "{:?}", v1.error);
    s.engine.clear_calls();
    let v2 = s.deployer.deploy(&s.request(compose, "2"), &Quiet).await;
    assert_eq!(v2.exit_code(), ExitCode::InvalidInput, "{v2:?}");
    let error = v2.error.unwrap_or_default();
    assert!(error.contains("stop-first"), "{error}");
    assert!(error.contains("volume"), "{error}");
    let calls = s.engine.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("create") || c.starts_with("stop")),
        "{calls:#?}"
    );
    assert_eq!(s.running(), vec![("app-web-1".to_owned(), '1')]);
}

/// `gantry abort` at step 50: the canary leaves the rotation, then its open connections finish
/// (drained up to its grace period) and it gets its stop signal before it is removed; it was
/// force-removed at once, resetting every connection it held.
#[tokio::test(start_paused = true)]
async fn an_aborted_canary_drains_its_open_connections_before_it_goes() {
    let s = Setup::new();
    let v1 = s
        .deployer
        .deploy(&s.request(&web("[50, 100]"), "1"), &Quiet)
        .await;
    assert_eq!(v1.outcome, Outcome::Succeeded, "{:?}", v1.error);
    let stack = s.stack();
    let req = s.request(&web("[50, 100]"), "2");
    let aborted_at = Mutex::new(None);
    let (report, ()) = tokio::join!(s.deployer.deploy(&req, &Quiet), async {
        until(|| stack.canary().is_some()).await;
        s.engine.clear_calls();
        let now = tokio::time::Instant::now();
        *s.edge.open_until.lock().unwrap() = Some(now + Duration::from_secs(3));
        *aborted_at.lock().unwrap() = Some(now);
        stack.request_canary(CanaryCommand::Abort).unwrap();
    });
    assert_eq!(report.exit_code(), ExitCode::RolledBack, "{report:?}");
    let took = aborted_at.lock().unwrap().unwrap().elapsed();
    assert!(took >= Duration::from_secs(3), "not drained: {took:?}");
    let calls = s.engine.calls();
    let at = |call: &str| calls.iter().position(|c| c == call);
    let stop = at(&format!("stop {NEXT}"));
    let remove = calls
        .iter()
        .position(|c| c.starts_with("remove") && c.contains(NEXT));
    assert!(stop.is_some() && stop < remove, "{calls:#?}");
    assert_eq!(s.running(), vec![("app-web-1".to_owned(), '1')]);
}

/// `gantry abort` taken the moment the canary gets its first share (a script that reacts to
/// the canary's traffic): accepted, since the step is recorded before the switch moves (it was
/// refused, exit 65, until the record caught up), and acted on: exit 2, the old version serves.
#[tokio::test(start_paused = true)]
async fn an_abort_taken_as_soon_as_the_canary_gets_its_share_is_acted_on() {
    let s = Setup::new();
    let compose = web("[10, 100]").replace("pause: 1h", "pause: 2s");
    let v1 = s.deployer.deploy(&s.request(&compose, "1"), &Quiet).await;
    assert_eq!(v1.outcome, Outcome::Succeeded, "{:?}", v1.error);
    *s.edge.abort_at_share.lock().unwrap() = Some(Ledger::new(&s.dir.path().join("state")));
    let report = s.deployer.deploy(&s.request(&compose, "2"), &Quiet).await;
    assert!(
        s.edge.abort_at_share.lock().unwrap().is_none(),
        "the canary never got a share: {report:?}"
    );
    assert_eq!(report.exit_code(), ExitCode::RolledBack, "{report:?}");
    assert!(s.stack().canary_command().is_none());
    assert_eq!(s.running(), vec![("app-web-1".to_owned(), '1')]);
}
