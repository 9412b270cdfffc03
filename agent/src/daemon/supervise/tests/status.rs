//! What `gantry status` and systemd's STATUS= say about healing, on a paused clock: a container
//! a deploy replaced does not inherit the state of the one before, a crash loop ends once its
//! deaths left the window, the state of a removed container goes at the next resync.

use std::time::Duration;

use super::{deployed_plain, load_file, supervisor};
use crate::deploy::{DeployRequest, Deployer, Quiet};
use crate::engine::{ContainerInfo, Engine};

use super::super::Supervisor;

/// Marks `c` given up on and crash-looping (one death in the window).
fn give_up(sup: &Supervisor, c: &ContainerInfo) {
    let mut s = sup.state();
    let t = sup.track(&mut s, &c.name, &c.id, "app", "web");
    t.gave_up = true;
    t.crash_looping = true;
    t.deaths.take(tokio::time::Instant::now());
}

#[tokio::test(start_paused = true)]
async fn a_container_a_deploy_replaced_is_not_the_one_given_up_on() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _) = supervisor(dir.path(), engine.clone(), ledger.clone());
    let old = engine.containers()["app-web-1"].clone();
    give_up(&sup, &old);
    assert!(
        sup.status_line()
            .contains("1 container(s) given up, 1 crash-looping")
    );

    let load = load_file(dir.path(), "services:\n  web:\n    image: app:2\n");
    let report = Deployer::new(engine.clone(), ledger)
        .deploy(&DeployRequest::new("app", load), &Quiet)
        .await;
    assert_eq!(report.exit_code(), crate::ExitCode::Ok, "{report:?}");
    let new = engine.containers()["app-web-1"].clone();
    assert_ne!(new.id, old.id);
    let status = sup.heal_status(&new.name, &new.id);
    assert!(!status.gave_up && !status.crash_looping, "{status:?}");
    sup.clone().resync_all().await;
    let line = sup.status_line();
    assert!(
        line.contains("0 container(s) given up, 0 crash-looping"),
        "{line}"
    );
}

#[tokio::test(start_paused = true)]
async fn crash_looping_ends_once_its_deaths_left_the_window() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _) = supervisor(dir.path(), engine.clone(), ledger);
    let c = engine.containers()["app-web-1"].clone();
    // heal_config(): 5 deaths per 10 minutes; the sixth is a loop.
    for _ in 0..6 {
        sup.record_death(&c.id, &c.name, "app", "web", Some(1));
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert!(sup.heal_status(&c.name, &c.id).crash_looping);
    tokio::time::advance(Duration::from_secs(590)).await;
    assert!(
        sup.heal_status(&c.name, &c.id).crash_looping,
        "deaths still in the window"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(!sup.heal_status(&c.name, &c.id).crash_looping);
    let line = sup.status_line();
    assert!(line.contains(", 0 crash-looping"), "{line}");
    sup.clone().resync_all().await;
    assert!(!sup.heal_status(&c.name, &c.id).crash_looping);
}

#[tokio::test(start_paused = true)]
async fn the_heal_state_of_a_removed_container_goes_at_the_next_resync() {
    let (dir, engine, ledger) = deployed_plain().await;
    let (sup, _) = supervisor(dir.path(), engine.clone(), ledger);
    let c = engine.containers()["app-web-1"].clone();
    give_up(&sup, &c);
    sup.save();
    engine.remove_container(&c.id, true).await.unwrap();
    sup.clone().resync_all().await;
    let line = sup.status_line();
    assert!(
        line.contains("0 container(s) given up, 0 crash-looping"),
        "{line}"
    );
    let saved = super::super::saved::load(&super::super::saved::path(dir.path())).unwrap();
    assert!(saved.containers.is_empty(), "{saved:?}");
}
