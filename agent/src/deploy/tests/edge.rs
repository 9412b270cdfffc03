//! Unit tests of deploy's side of the edge switch (`deploy/edge.rs`): the canary's shares as
//! the kernel gets them, the drain of a container leaving, the routes rebuilt from what runs,
//! a service leaving the switch, a port taken. Against the in-memory engine, given addresses,
//! and an in-memory switch; what only the kernel and Docker can show is in
//! `tests/tests/edge_*.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::*;
use crate::ExitCode;
use crate::compose::{LoadOptions, Port};
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::edge::{EdgeError, Listen};
use crate::engine::fake::FakeEngine;
use crate::engine::fake::addressed::Addressed;
use crate::engine::{ContainerSpec, labels};
use crate::ledger::{Ledger, Outcome};

/// An in-memory switch: each service's routes as last set, and every change in order with how
/// many engine calls had been made by then. `open` gives the connections open on a container
/// port (none when not given); `taken` the ports another service routes.
#[derive(Debug, Default)]
struct FakeEdge {
    engine: Option<Arc<FakeEngine>>,
    routes: Mutex<BTreeMap<String, Routes>>,
    /// (service, container names routed, engine calls made before).
    history: Mutex<Vec<(String, Vec<String>, usize)>>,
    open: BTreeMap<u16, usize>,
    taken: Vec<Listen>,
}

impl FakeEdge {
    /// The containers (names) `service` is routed to.
    fn backends(&self, service: &str) -> Vec<String> {
        let routes = self.routes.lock().unwrap();
        routes.get(service).map_or_else(Vec::new, |r| {
            r.backends.iter().map(|b| b.container.clone()).collect()
        })
    }
}

#[async_trait]
impl Edge for FakeEdge {
    fn available(&self) -> Result<(), String> {
        Ok(())
    }
    async fn set_routes(&self, routes: &Routes) -> Result<(), EdgeError> {
        let calls = self.engine.as_ref().map_or(0, |e| e.calls().len());
        let names = routes
            .backends
            .iter()
            .map(|b| b.container.clone())
            .collect();
        self.history
            .lock()
            .unwrap()
            .push((routes.service.clone(), names, calls));
        self.routes
            .lock()
            .unwrap()
            .insert(routes.service.clone(), routes.clone());
        Ok(())
    }
    async fn retain_services(&self, _: &str, keep: &[String]) -> Result<(), EdgeError> {
        self.routes.lock().unwrap().retain(|s, _| keep.contains(s));
        Ok(())
    }
    async fn open_connections(&self, _: u32, port: u16) -> Option<usize> {
        Some(self.open.get(&port).copied().unwrap_or(0))
    }
    async fn check_free(&self, _: &str, _: &str, listen: Listen) -> Result<(), EdgeError> {
        match self.taken.contains(&listen) {
            true => Err(EdgeError::PortTaken {
                listen,
                by: "service other/api (its edge route)".into(),
                key: None,
            }),
            false => Ok(()),
        }
    }
}

fn m(name: &str, last: u8) -> Member {
    Member {
        container: name.into(),
        ip: Ipv4Addr::new(172, 18, 0, last),
        ports: Vec::new(),
    }
}

/// A `ports:` entry, `host_ip:published:target/tcp`.
fn port(host_ip: Option<&str>, published: u16, target: u16) -> Port {
    Port {
        name: None,
        mode: "ingress".into(),
        host_ip: host_ip.map(str::to_owned),
        target,
        published: Some(published.to_string()),
        protocol: "tcp".into(),
        app_protocol: None,
    }
}

fn web(ports: Vec<Port>) -> Service {
    Service {
        name: "web".into(),
        ports,
        ..Service::default()
    }
}

/// Creates and starts container `name` of service `web` of stack `app` (replica `number`),
/// carrying `label` as its [`edge::LABEL`]; returns it as Docker inspects it (addressed).
async fn running(engine: &Arc<FakeEngine>, name: &str, number: u32, label: &str) -> ContainerInfo {
    let spec = ContainerSpec {
        name: name.into(),
        image: "app:1".into(),
        labels: BTreeMap::from([
            (labels::PROJECT.to_owned(), "app".to_owned()),
            (labels::SERVICE.to_owned(), "web".to_owned()),
            (labels::CONTAINER_NUMBER.to_owned(), number.to_string()),
            (edge::LABEL.to_owned(), label.to_owned()),
        ]),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await.unwrap();
    engine.start_container(&id).await.unwrap();
    Addressed::new(engine.clone())
        .inspect_container(&id)
        .await
        .unwrap()
}

/// The in-memory engine with images `app:1` and `app:2` in its registry; `app:1` is pulled.
async fn engine() -> Arc<FakeEngine> {
    let engine = Arc::new(FakeEngine::new());
    engine.publish("app:1", &"1".repeat(64));
    engine.publish("app:2", &"2".repeat(64));
    let image = crate::engine::ImageRef::new("app:1");
    engine.pull_image(&image, None, None, None).await.unwrap();
    engine
}

/// Alone, a canary gets every new connection, unless its share is none (an aborted one).
#[test]
fn a_canary_alone_gets_all_or_nothing_when_aborted() {
    let weights = |r: Routes| r.backends.iter().map(|b| b.weight).collect::<Vec<_>>();
    let alone = split_routes("s", "web", Vec::new(), Vec::new(), m("next", 3), 10);
    assert_eq!(weights(alone), vec![100]);
    let aborted = split_routes("s", "web", Vec::new(), Vec::new(), m("next", 3), 0);
    assert_eq!(weights(aborted), vec![0]);
    let beside = split_routes("s", "web", Vec::new(), vec![m("old", 2)], m("next", 3), 10);
    assert_eq!(weights(beside), vec![90, 10]);
}

/// The canary gets its step's share of new connections in the kernel's rule, whatever the
/// number of old replicas beside it (3 old ones at step 1 once gave it 3 %, at step 10, 12 %):
/// its range of `numgen random mod 100` is the step wide, the old ones' within one of each other.
#[test]
fn a_canary_gets_its_steps_share_beside_any_number_of_old_replicas() {
    let listen = Listen {
        ip: Some(Ipv4Addr::LOCALHOST),
        port: 8080,
    };
    let ports = vec![SwitchedPort { listen, target: 80 }];
    for n in 1..=12u8 {
        for step in [1u8, 5, 10, 50] {
            let old: Vec<Member> = (0..n).map(|i| m(&format!("old{i}"), 10 + i)).collect();
            let routes = split_routes("app", "web", ports.clone(), old, m("next", 3), step);
            let total: u32 = routes.backends.iter().map(|b| u32::from(b.weight)).sum();
            assert_eq!(total, 100, "{n} old replicas, step {step}");
            let rules = crate::edge::nft::render_rules(&routes);
            // `numgen random mod 100 map { 0-32 : 172.18.0.10 . 80, ... }`
            let map = rules[0].split_once("map { ").unwrap().1;
            let map = map.split_once(" }").unwrap().0;
            let mut widths: BTreeMap<String, u32> = BTreeMap::new();
            for element in map.split(", ") {
                let (range, to) = element.split_once(" : ").unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                let width = hi.parse::<u32>().unwrap() - lo.parse::<u32>().unwrap() + 1;
                let ip = to.split_once(" . ").unwrap().0.to_owned();
                *widths.entry(ip).or_default() += width;
            }
            let canary = widths.remove("172.18.0.3").unwrap_or(0);
            assert_eq!(canary, u32::from(step), "{n} old replicas: {map}");
            assert_eq!(widths.len(), usize::from(n), "{map}");
            let (lo, hi) = (widths.values().min(), widths.values().max());
            assert!(hi.unwrap() - lo.unwrap() <= 1, "{n} old replicas: {map}");
        }
    }
}

/// A release that moves the container port (`8080:80`, then `8080:8080`): the old container's
/// open connections are on its own port 80, and its drain waits for them (here: the whole
/// window, as they stay open), not for the new release's 8080.
#[tokio::test(start_paused = true)]
async fn a_drain_counts_the_old_containers_own_port() {
    let engine = engine().await;
    let old = running(&engine, "app-web-1", 1, "0.0.0.0:8080:80").await;
    let moved = running(&engine, "app-web-2", 2, "0.0.0.0:8080:8080").await;
    let edge = FakeEdge {
        open: BTreeMap::from([(80, 1)]),
        ..FakeEdge::default()
    };
    let svc = web(vec![port(None, 8080, 8080)]);
    let rotation = Rotation::of(&edge, "app", &svc, &[old.clone(), moved.clone()]);
    assert_eq!(rotation.ports[0].target, 8080);
    let window = Duration::from_secs(30);
    assert!(rotation.drain(&old, window).await >= window);
    // One created at 8080 has nothing open there: it goes at once.
    assert!(rotation.drain(&moved, window).await < Duration::from_secs(1));
}

/// A rollout killed (`kill -9`) between an old container's removal and its replacement's
/// rename leaves `app-web-2-gantry-next` as the only container of replica 2: the daemon's sync
/// routes it beside replica 1. A `-gantry-next` beside a running container of its own replica
/// number stays out (that one serves it).
#[tokio::test]
async fn a_replacement_alone_in_its_replica_stays_in_rotation() {
    let engine = engine().await;
    let label = "0.0.0.0:8080:80";
    running(&engine, "app-web-1", 1, label).await;
    running(&engine, "app-web-1-gantry-next", 1, label).await;
    running(&engine, "app-web-2-gantry-next", 2, label).await;
    let edge = FakeEdge::default();
    let addressed = Addressed::new(engine.clone());
    let routed = sync_edge_except(&addressed, &edge, "app", &BTreeSet::new())
        .await
        .unwrap();
    assert_eq!(routed, ["web"]);
    assert_eq!(edge.backends("web"), ["app-web-1", "app-web-2-gantry-next"]);
}

/// A port another service routes is exit 65, naming the `ports:` entry that asks for it (and
/// the address), so the operator knows which line to change.
#[tokio::test]
async fn a_port_taken_names_its_ports_entry() {
    let listen = Listen {
        ip: Some(Ipv4Addr::LOCALHOST),
        port: 8080,
    };
    let edge = FakeEdge {
        taken: vec![listen],
        ..FakeEdge::default()
    };
    let svc = web(vec![
        port(None, 9000, 90),
        port(Some("127.0.0.1"), 8080, 80),
    ]);
    let rotation = Rotation::of(&edge, "app", &svc, &[]);
    let err = rotation.check_ports(&[]).await.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::InvalidInput);
    let said = err.to_string();
    assert!(
        said.contains("services.web.ports[1]: port 127.0.0.1:8080 is taken by service other/api"),
        "{said}"
    );
}

struct Setup {
    _dir: tempfile::TempDir,
    file: PathBuf,
    engine: Arc<FakeEngine>,
    edge: Arc<FakeEdge>,
    deployer: Deployer,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        let engine = engine().await;
        let edge = Arc::new(FakeEdge {
            engine: Some(engine.clone()),
            ..FakeEdge::default()
        });
        let deployer = Deployer::new(
            Arc::new(Addressed::new(engine.clone())),
            Ledger::new(&dir.path().join("state")),
        )
        .with_edge(edge.clone());
        Self {
            _dir: dir,
            file,
            engine,
            edge,
            deployer,
        }
    }

    async fn deploy(&self, compose: &str, version: &str) {
        std::fs::write(&self.file, compose).unwrap();
        let load = LoadOptions {
            files: vec![self.file.clone()],
            project_name: Some("app".into()),
            environment: BTreeMap::from([("V".to_owned(), version.to_owned())]),
            ..LoadOptions::default()
        };
        let report = self
            .deployer
            .deploy(&DeployRequest::new("app", load), &Quiet)
            .await;
        assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    }
}

/// A service leaving the switch (`x-gantry.edge: false`, replaced stop-first as Docker then
/// publishes its port; or its port dropped, replaced start-first): its routes go before its
/// new container starts, so new connections no longer go to the old container (gone, or
/// going) until the deploy's end.
#[tokio::test(start_paused = true)]
async fn a_service_leaving_the_switch_loses_its_routes_before_its_new_container_starts() {
    let switched = "services:
  web:
    image: app:${V}
    ports: [\"8080:80\"]
";
    let left = [
        "services:
  web:
    image: app:${V}
    ports: [\"8080:80\"]
    x-gantry: {edge: false}
",
        "services:
  web:
    image: app:${V}
",
    ];
    for compose in left {
        let s = Setup::new().await;
        s.deploy(switched, "1").await;
        assert_eq!(s.edge.backends("web"), ["app-web-1"]);
        s.engine.clear_calls();
        s.edge.history.lock().unwrap().clear();
        s.deploy(compose, "2").await;
        let calls = s.engine.calls();
        let start = calls
            .iter()
            .position(|c| c.starts_with("start "))
            .expect("the new container started");
        let history = s.edge.history.lock().unwrap().clone();
        let cleared = history
            .iter()
            .find(|(svc, names, _)| svc == "web" && names.is_empty());
        assert!(
            cleared.is_some_and(|(_, _, at)| *at <= start),
            "routes {history:?}, engine calls {calls:?}"
        );
        // No route sent anything to the old container after that.
        assert!(history.iter().all(|(_, names, _)| names.is_empty()));
        assert!(s.edge.backends("web").is_empty(), "{compose}");
    }
}
