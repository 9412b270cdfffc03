//! Gantry's own `min_ready` (2 s when the files set none) on the paused clock: containers a
//! deploy creates where none ran are watched together (ready once 2 s have passed since the
//! first of them started, and none may exit before the deploy ends); replacements and a
//! `min_ready` set in the files count per container.

use std::time::Duration;

use tokio::time::Instant;

use crate::ledger::Outcome;

use super::Setup;

/// `web` starts only once `api` is ready (the scheduler waits for what it depends on).
const CHAIN: &str = "services:
  api:
    image: app:${V}
  web:
    image: app:${V}
    depends_on: [api]
";

/// [`CHAIN`] with `web` running 3 s of its own: a cold deploy ends at 5 s.
fn web_for_five_seconds() -> String {
    CHAIN.replace(
        "    depends_on: [api]\n",
        "    depends_on: [api]\n    x-gantry: {min_ready: 3s}\n",
    )
}

async fn timed(s: &Setup, compose: &str, version: &str) -> Duration {
    let started = Instant::now();
    let report = s.deploy(compose, version).await;
    assert_eq!(report.outcome, Outcome::Succeeded, "{:?}", report.error);
    started.elapsed()
}

#[tokio::test(start_paused = true)]
async fn new_containers_share_the_built_in_two_seconds_and_replacements_wait_their_own() {
    let s = Setup::new();
    // Cold: `api` runs 2 s, then `web` starts 2 s after the first start and is ready at once.
    let cold = timed(&s, CHAIN, "1").await;
    assert!(
        cold >= Duration::from_secs(2) && cold < Duration::from_secs(3),
        "{cold:?}"
    );
    // A change replaces both: each new container runs its own 2 s before its old one goes.
    let change = timed(&s, CHAIN, "2").await;
    assert!(change >= Duration::from_secs(4), "{change:?}");
}

#[tokio::test(start_paused = true)]
async fn a_min_ready_set_in_the_files_counts_per_new_container() {
    for compose in [
        format!("x-gantry: {{min_ready: 2s}}\n{CHAIN}"),
        CHAIN.replace(
            "image: app:${V}\n",
            "image: app:${V}\n    x-gantry: {min_ready: 2s}\n",
        ),
    ] {
        let s = Setup::new();
        let cold = timed(&s, &compose, "1").await;
        assert!(cold >= Duration::from_secs(4), "{cold:?} for\n{compose}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_container_that_exits_before_the_deploy_ends_fails_it() {
    // `api` is ready at 2 s; `web` keeps the deploy going to 5 s; `api` dies at 3 s.
    let compose = web_for_five_seconds();
    let s = Setup::new();
    let engine = s.engine.clone();
    let crash = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        engine.stop_by_hand("app-api-1");
    });
    let report = s.deploy(&compose, "1").await;
    crash.await.unwrap();
    assert_ne!(report.outcome, Outcome::Succeeded);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("app-api-1") && error.contains("before the deploy ended"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_container_that_stays_up_passes_the_check_at_the_end() {
    // The same stack with nobody stopping `api`: the check at the end finds no exit.
    let compose = web_for_five_seconds();
    let s = Setup::new();
    let took = timed(&s, &compose, "1").await;
    assert!(took >= Duration::from_secs(5), "{took:?}");
    assert!(s.engine.containers()["app-api-1"].state.running);
}
