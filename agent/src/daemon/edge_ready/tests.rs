//! The daemon's side of the edge switch against the in-memory engine, given addresses
//! ([`crate::engine::fake::addressed`]), and a switch that records its routes ([`FakeEdge`]): a container that comes
//! back at another address is routed there; a resync catches a missed move; readiness
//! exclusions survive a deploy; a stack a deploy holds (a daemon job, another process) is left
//! alone, and every sync holds the stack's lock. The kernel's side is in
//! `tests/tests/edge_*.rs`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{EdgeReadiness, HELD_RETRY, MOVED_DEBOUNCE, SyncError};
use crate::compose::LoadOptions;
use crate::daemon::jobs::{Job, JobKind, Jobs, Origin};
use crate::daemon::metrics::Metrics;
use crate::daemon::supervise::{ReadinessSink, RouteSink};
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::edge::{Edge, EdgeError, Listen, Routes, Unready};
use crate::engine::Engine as _;
use crate::engine::fake::FakeEngine;
use crate::engine::fake::addressed::Addressed;
use crate::ledger::{Holder, Ledger};

/// A switch that keeps its routes in memory: (stack, service) → backends (container, address)
/// in order, and every `set_routes` in a history. Each `set_routes` also records whether the
/// stack's ledger lock was held then (by anyone).
/// (stack, service) → backends (container name, address).
type Table = BTreeMap<(String, String), Backends>;
/// Backends of one service: (container name, address).
type Backends = Vec<(String, Ipv4Addr)>;

#[derive(Debug)]
struct FakeEdge {
    ledger: Ledger,
    routes: Mutex<Table>,
    history: Mutex<Vec<(String, Backends)>>,
    lock_held: Mutex<Vec<bool>>,
}

impl FakeEdge {
    fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            routes: Mutex::default(),
            history: Mutex::default(),
            lock_held: Mutex::default(),
        }
    }

    /// The containers (names) `service` of `app` routes to.
    fn backends(&self, service: &str) -> Vec<String> {
        self.routes
            .lock()
            .unwrap()
            .get(&("app".to_owned(), service.to_owned()))
            .map(|b| b.iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    }

    fn addresses(&self, service: &str) -> Vec<Ipv4Addr> {
        self.routes
            .lock()
            .unwrap()
            .get(&("app".to_owned(), service.to_owned()))
            .map(|b| b.iter().map(|(_, ip)| *ip).collect())
            .unwrap_or_default()
    }

    /// Routes set as another process's rollout would have set them.
    fn seed(&self, service: &str, backends: &[(&str, Ipv4Addr)]) {
        self.routes.lock().unwrap().insert(
            ("app".to_owned(), service.to_owned()),
            backends
                .iter()
                .map(|(c, ip)| (c.to_string(), *ip))
                .collect(),
        );
    }

    fn sets(&self) -> usize {
        self.history.lock().unwrap().len()
    }
}

#[async_trait]
impl Edge for FakeEdge {
    fn available(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    async fn set_routes(&self, routes: &Routes) -> std::result::Result<(), EdgeError> {
        let held = self
            .ledger
            .stack(&routes.stack)
            .unwrap()
            .try_lock(&Holder::me("probe", None))
            .is_err();
        self.lock_held.lock().unwrap().push(held);
        let backends: Vec<(String, Ipv4Addr)> = routes
            .backends
            .iter()
            .filter(|b| b.weight > 0)
            .map(|b| (b.container.clone(), b.ip))
            .collect();
        self.history
            .lock()
            .unwrap()
            .push((routes.service.clone(), backends.clone()));
        self.routes
            .lock()
            .unwrap()
            .insert((routes.stack.clone(), routes.service.clone()), backends);
        Ok(())
    }

    async fn retain_services(
        &self,
        stack: &str,
        keep: &[String],
    ) -> std::result::Result<(), EdgeError> {
        self.routes
            .lock()
            .unwrap()
            .retain(|(s, svc), _| s != stack || keep.contains(svc));
        Ok(())
    }

    async fn open_connections(&self, _: u32, _: u16) -> Option<usize> {
        Some(0)
    }

    async fn check_free(&self, _: &str, _: &str, _: Listen) -> std::result::Result<(), EdgeError> {
        Ok(())
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    fake: Arc<FakeEngine>,
    engine: Arc<Addressed>,
    edge: Arc<FakeEdge>,
    ledger: Ledger,
    jobs: Arc<Jobs>,
    follower: EdgeReadiness,
    load: LoadOptions,
}

impl Setup {
    fn id(&self, name: &str) -> String {
        self.fake.containers()[name].id.clone()
    }

    /// The stack's files again, as a daemon job. Returns with the job's report.
    async fn redeploy(&self) {
        let job = Job {
            kind: JobKind::Deploy(DeployRequest::new("app", self.load.clone())),
            origin: Origin::Cli,
        };
        let (_, handle) = self.jobs.submit(job, None);
        let report = handle.await.unwrap();
        assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    }
}

/// Stack `app`: `web`, two replicas behind the switch on port 8080, deployed (real clock),
/// then the follower as the daemon starts it (routes restored, run after each job), on a
/// paused clock.
async fn deployed() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeEngine::new());
    fake.publish("app:1", &"1".repeat(64));
    let engine = Arc::new(Addressed::new(fake.clone()));
    let ledger = Ledger::new(&dir.path().join("state"));
    let edge = Arc::new(FakeEdge::new(ledger.clone()));
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: app:1\n    ports: [\"8080:80\"]\n    deploy: {replicas: 2}\n    x-gantry: {min_ready: 0s}\n",
    )
    .unwrap();
    let load = LoadOptions {
        files: vec![file],
        project_name: Some("app".into()),
        environment: BTreeMap::new(),
        ..LoadOptions::default()
    };
    let unready = Unready::default();
    let deployer = Deployer::new(engine.clone(), ledger.clone())
        .with_edge(edge.clone())
        .with_unready(unready.clone());
    let report = deployer
        .deploy(&DeployRequest::new("app", load.clone()), &Quiet)
        .await;
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    tokio::time::pause();
    let jobs = Jobs::new(deployer, Arc::new(Metrics::default()));
    let follower = EdgeReadiness::new(
        engine.clone(),
        edge.clone(),
        ledger.clone(),
        jobs.clone(),
        unready,
    );
    follower.restore(&["app".to_owned()]).await;
    jobs.set_after_job(Arc::new(follower.clone()));
    let s = Setup {
        _dir: dir,
        fake,
        engine,
        edge,
        ledger,
        jobs,
        follower,
        load,
    };
    assert_eq!(s.edge.backends("web"), ["app-web-1", "app-web-2"]);
    s
}

/// Lets the follower's tasks run: past the debounce, on the paused clock.
async fn settle() {
    tokio::time::sleep(MOVED_DEBOUNCE * 4).await;
}

#[tokio::test]
async fn a_container_that_comes_back_at_another_address_is_routed_there() {
    let s = deployed().await;
    let old = s.engine.ip_of("app-web-1");
    let sets = s.edge.sets();

    // Docker's restart policy after a crash: it dies, and starts at another address (its own
    // went to another container meanwhile). Supervision reports both events.
    s.fake.stop_by_hand("app-web-1");
    s.follower.container_moved("app", "web", "app-web-1");
    let moved = Ipv4Addr::new(172, 30, 0, 99);
    s.engine.move_to("app-web-1", moved);
    s.fake.start_container("app-web-1").await.unwrap();
    s.follower.container_moved("app", "web", "app-web-1");
    tokio::time::sleep(MOVED_DEBOUNCE / 2).await;
    assert_eq!(
        s.edge.sets(),
        sets,
        "the moves are gathered for the debounce"
    );
    settle().await;

    assert_eq!(
        s.edge.sets(),
        sets + 1,
        "one sync for the death and the start"
    );
    assert_eq!(s.edge.backends("web"), ["app-web-1", "app-web-2"]);
    let ips = s.edge.addresses("web");
    assert!(
        ips.contains(&moved) && !ips.contains(&old),
        "routed to the new address: {ips:?}"
    );

    // A death alone (no restart): the dead address leaves the routes.
    s.fake.stop_by_hand("app-web-2");
    s.follower.container_moved("app", "web", "app-web-2");
    settle().await;
    assert_eq!(s.edge.backends("web"), ["app-web-1"]);
    assert!(
        s.edge.lock_held.lock().unwrap().iter().all(|h| *h),
        "every sync held the stack's lock"
    );
}

#[tokio::test]
async fn a_resync_catches_a_move_whose_events_were_missed() {
    let s = deployed().await;
    let listed = || async { s.engine.list_containers("app", true).await.unwrap() };
    let sets = s.edge.sets();
    s.follower.stack_listed("app", &listed().await);
    settle().await;
    assert_eq!(s.edge.sets(), sets, "nothing moved: nothing is rebuilt");

    // dockerd restarted while the event stream was down: web-2 came back elsewhere.
    let moved = Ipv4Addr::new(172, 30, 0, 77);
    s.engine.move_to("app-web-2", moved);
    s.follower.stack_listed("app", &listed().await);
    settle().await;
    assert_eq!(s.edge.sets(), sets + 1);
    assert!(s.edge.addresses("web").contains(&moved));
    s.follower.stack_listed("app", &listed().await);
    settle().await;
    assert_eq!(s.edge.sets(), sets + 1, "in line again: nothing more");
}

#[tokio::test]
async fn readiness_exclusions_survive_a_deploy_of_the_stack() {
    let s = deployed().await;
    let web1 = s.id("app-web-1");
    s.follower.readiness_changed("app", "web", &web1, false);
    settle().await;
    assert_eq!(s.edge.backends("web"), ["app-web-2"], "out while not ready");

    // An unchanged deploy (its end syncs the routes), then the step after the job: neither
    // puts it back, not even for a moment.
    let before = s.edge.sets();
    s.redeploy().await;
    let history = s.edge.history.lock().unwrap().clone();
    assert!(history.len() > before, "the deploy synced: {history:?}");
    for (service, backends) in &history[before..] {
        let names: Vec<&str> = backends.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            (service.as_str(), names),
            ("web", vec!["app-web-2"]),
            "{history:?}"
        );
    }

    s.follower.readiness_changed("app", "web", &web1, true);
    settle().await;
    assert_eq!(s.edge.backends("web"), ["app-web-1", "app-web-2"]);
    // A container that went away leaves the set.
    s.follower.readiness_changed("app", "web", "gone", false);
    settle().await;
    assert!(s.follower.unready("app").is_empty());
}

#[tokio::test]
async fn a_rollout_by_the_daemon_never_routes_a_replica_that_is_not_ready() {
    let s = deployed().await;
    // The replica the rollout replaces last is not ready.
    let web2 = s.id("app-web-2");
    let old_ip = s.engine.ip_of("app-web-2");
    s.follower.readiness_changed("app", "web", &web2, false);
    settle().await;
    assert_eq!(s.edge.backends("web"), ["app-web-1"]);

    // A new version of web, replaced one replica at a time by a daemon job: web-1 first.
    let file = s.load.files[0].clone();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("image: app:1", "image: app:1\n    environment: {V: \"2\"}"),
    )
    .unwrap();
    let before = s.edge.sets();
    s.redeploy().await;
    let history = s.edge.history.lock().unwrap().clone();
    assert!(
        history.len() > before + 1,
        "the rollout switched: {history:?}"
    );
    for (_, backends) in &history[before..] {
        assert!(
            backends.iter().all(|(_, ip)| *ip != old_ip),
            "the replica that was not ready was routed during the rollout: {history:?}"
        );
        assert!(!backends.is_empty(), "{history:?}");
    }
    assert_eq!(s.edge.backends("web"), ["app-web-1", "app-web-2"]);
    assert!(
        s.edge.addresses("web").iter().all(|ip| *ip != old_ip),
        "both replaced"
    );
}

#[tokio::test]
async fn a_stack_another_process_deploys_is_left_to_it() {
    let s = deployed().await;
    // A `gantry deploy --local` mid-rollout: it switched web to its new container.
    let next = Ipv4Addr::new(172, 30, 0, 50);
    s.edge.seed("web", &[("app-web-1-gantry-next", next)]);
    let lock = s
        .ledger
        .stack("app")
        .unwrap()
        .try_lock(&Holder::me("gantry deploy app", None))
        .unwrap();
    let sets = s.edge.sets();

    // The daemon starts: the stack's routes stay as the rollout set them.
    s.follower.restore(&["app".to_owned()]).await;
    match s.follower.sync("app").await {
        Err(SyncError::Held { holder, .. }) => assert_eq!(holder.command, "gantry deploy app"),
        other => panic!("a held stack is left alone: {other:?}"),
    }
    // Nor does a readiness change or a move touch them.
    s.follower
        .readiness_changed("app", "web", &s.id("app-web-2"), false);
    s.follower.container_moved("app", "web", "app-web-1");
    settle().await;
    assert_eq!(s.edge.sets(), sets);
    assert_eq!(s.edge.backends("web"), ["app-web-1-gantry-next"]);

    // Tried again meanwhile, still left alone.
    tokio::time::sleep(HELD_RETRY * 5).await;
    assert_eq!(s.edge.sets(), sets);

    // Once it is done, within a retry, the routes are in line (no resync needed).
    drop(lock);
    tokio::time::sleep(HELD_RETRY + MOVED_DEBOUNCE).await;
    assert_eq!(s.edge.backends("web"), ["app-web-1"], "web-2 is not ready");
    let sets = s.edge.sets();
    tokio::time::sleep(HELD_RETRY * 5).await;
    assert_eq!(s.edge.sets(), sets, "and no more tries");
}

#[tokio::test]
async fn a_stack_a_daemon_job_holds_is_left_to_the_job() {
    let s = deployed().await;
    let turn = s.jobs.between_jobs("app").expect("no job runs");
    let sets = s.edge.sets();
    assert!(matches!(
        s.follower.sync("app").await,
        Err(SyncError::JobHolds { .. })
    ));
    s.follower
        .readiness_changed("app", "web", &s.id("app-web-1"), false);
    settle().await;
    assert_eq!(s.edge.sets(), sets);
    drop(turn);

    // The job's end applies what changed meanwhile.
    s.redeploy().await;
    assert_eq!(s.edge.backends("web"), ["app-web-2"]);
}

#[tokio::test]
async fn a_sync_a_heal_kept_out_runs_once_it_lets_go() {
    // A heal holds the stack's turn between jobs (minutes, for a database's grace period) but
    // is no job: nothing syncs at its end, so a readiness change meanwhile must not be lost.
    let s = deployed().await;
    let turn = s.jobs.between_jobs("app").expect("no job runs");
    let sets = s.edge.sets();
    s.follower
        .readiness_changed("app", "web", &s.id("app-web-1"), false);
    tokio::time::sleep(HELD_RETRY * 5).await;
    assert_eq!(s.edge.sets(), sets, "left alone while held");
    drop(turn);
    tokio::time::sleep(HELD_RETRY + MOVED_DEBOUNCE).await;
    assert_eq!(
        s.edge.backends("web"),
        ["app-web-2"],
        "applied without a job"
    );
}

/// A heal about to stop a replica takes it out of rotation first (it holds the stack: no lock
/// is taken), as a rollout does before it drains and stops one; its start puts it back.
#[tokio::test]
async fn a_replica_a_heal_stops_leaves_the_rotation_first_and_its_start_brings_it_back() {
    use crate::daemon::supervise::RouteSink as _;
    let s = deployed().await;
    let turn = s.jobs.between_jobs("app").expect("no job runs");
    s.follower.leave("app", &s.id("app-web-1")).await;
    assert_eq!(s.edge.backends("web"), ["app-web-2"]);
    drop(turn);
    s.follower.container_moved("app", "web", "app-web-1");
    tokio::time::sleep(HELD_RETRY + MOVED_DEBOUNCE * 4).await;
    assert_eq!(s.edge.backends("web"), ["app-web-1", "app-web-2"]);
}
