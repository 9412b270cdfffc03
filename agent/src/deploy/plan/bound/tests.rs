//! Services bound to another's containers (`network_mode`/`ipc`/`pid: service:X`,
//! `volumes_from: X`, `depends_on` with `restart: true`) follow it: recreated after it.

use crate::deploy::plan::Action;
use crate::deploy::tests::{Setup, actions, at};
use crate::deploy::translate;
use crate::engine::Engine;
use crate::ledger::{Ledger, Outcome};

const BOUND: &str = "services:
  vpn:
    image: app:${V}
    x-gantry: {min_ready: 1s}
  app:
    image: app:1
    network_mode: service:vpn
    x-gantry: {min_ready: 1s}
  files:
    image: app:1
    volumes_from: ['vpn:ro']
    x-gantry: {min_ready: 1s}
  shared:
    image: app:1
    ipc: service:vpn
    pid: service:vpn
    x-gantry: {min_ready: 1s}
  restarts:
    image: app:1
    depends_on: {vpn: {condition: service_started, restart: true}}
    x-gantry: {min_ready: 1s}
  other:
    image: app:1
    depends_on: [vpn]
    x-gantry: {min_ready: 1s}
";

#[tokio::test(start_paused = true)]
async fn services_bound_to_a_recreated_service_are_recreated_after_it() {
    let s = Setup::new();
    let report = s.deploy(BOUND, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let same = s.plan(BOUND, "1").await;
    assert!(same.is_noop(), "{:?}", actions(&same));

    let plan = s.plan(BOUND, "2").await;
    let reasons = |name: &str| {
        let sp = plan.get(name).unwrap();
        (sp.action, sp.reasons.clone())
    };
    assert_eq!(reasons("vpn").0, Action::Recreate);
    for (name, why) in [
        ("app", "vpn recreated (network_mode: service:vpn)"),
        ("files", "vpn recreated (volumes_from: vpn)"),
        ("shared", "vpn recreated (ipc: service:vpn)"),
        ("restarts", "vpn recreated (depends_on restart: true)"),
    ] {
        assert_eq!(reasons(name), (Action::Recreate, vec![why.to_owned()]));
    }
    assert_eq!(reasons("other").0, Action::Unchanged);

    s.engine.clear_calls();
    let report = s.deploy(BOUND, "2").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let mut calls = s.engine.calls();
    calls.retain(|c| !c.starts_with("pull"));
    // Each follows vpn's new container, once it has its name.
    let vpn_done = at(&calls, "rename app-vpn-1-gantry-next app-vpn-1");
    for name in ["app", "files", "shared", "restarts"] {
        assert!(
            vpn_done < at(&calls, &format!("create app-{name}-1-gantry-next")),
            "{name}: {calls:#?}"
        );
    }
    assert!(
        !calls.iter().any(|c| c.contains("app-other-1")),
        "{calls:#?}"
    );
    let again = s.plan(BOUND, "2").await;
    assert!(again.is_noop(), "{:?}", actions(&again));
    // The daemon's drift check, from the release alone, agrees: nothing to reconcile.
    let release = Ledger::new(&s.dir.path().join("state"))
        .stack("app")
        .unwrap()
        .releases()
        .unwrap()
        .pop()
        .unwrap();
    let containers = s.engine.list_containers("app", true).await.unwrap();
    let drift = crate::daemon::supervise::drift(&release, &containers).unwrap();
    assert!(drift.is_empty(), "{drift:?}");
}

/// Containers labelled with the service's own hash (by a Gantry that did not bind hashes) are
/// left as they are while what they are bound to stays.
#[tokio::test(start_paused = true)]
async fn containers_labelled_with_their_own_hash_stay_until_their_parent_is_replaced() {
    let s = Setup::new();
    let report = s.deploy(BOUND, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let project = crate::compose::load(&s.request(BOUND, "1").load).unwrap();
    let engine: &dyn Engine = s.engine.as_ref();
    for name in ["app", "files", "shared", "restarts"] {
        let container = format!("app-{name}-1");
        let old = engine.inspect_container(&container).await.unwrap();
        engine.remove_container(&old.id, true).await.unwrap();
        let svc = &project.services[name];
        let own = svc.config_hash();
        let spec = translate::container_spec(&project, svc, &old.image_id, Some(1), &own).unwrap();
        let id = engine.create_container(&spec).await.unwrap();
        engine.start_container(&id).await.unwrap();
    }
    let plan = s.plan(BOUND, "1").await;
    assert!(plan.is_noop(), "{:?}", actions(&plan));

    // One of them stopped by hand: the deploy starts it again, it does not replace it (the
    // rollout takes the older label as up to date too).
    let files = engine.inspect_container("app-files-1").await.unwrap();
    engine
        .stop_container(&files.id, None, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        s.plan(BOUND, "1").await.get("files").unwrap().action,
        Action::Start
    );
    let report = s.deploy(BOUND, "1").await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    let now = engine.inspect_container("app-files-1").await.unwrap();
    assert_eq!(now.id, files.id, "started, not replaced");
    assert!(now.state.running);

    let plan = s.plan(BOUND, "2").await;
    assert_eq!(plan.get("app").unwrap().action, Action::Recreate);
}
