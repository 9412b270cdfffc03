//! Crash safety of the daemon: `gantryd daemon` (not the CLI) is SIGKILLed in the middle of a
//! rollout, while the replacement container exists beside the old one. The next daemon
//! converges by itself on the last good release: one container (no duplicate), none left under
//! a temporary name (no orphan), the interrupted release no longer `in_progress`; the deploy
//! that was cut short then goes through, leaving again exactly one container, with the new
//! configuration.
//!
//! Also: a temp file left by a writer killed between create and rename (it can hold a secret)
//! is gone once the daemon has started again.
//!
//! Design: the service becomes healthy only 4 s after it starts, so a rollout spends seconds
//! between "replacement created" and "old container removed"; the test waits until it sees the
//! replacement (a container of the project besides the old one) and then kills the daemon's
//! process (the `gantry daemon` process becomes `gantryd`: same pid) with SIGKILL.

use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{docker, this_start, wait_for};
use gantry_tests::{inspect, path_str};

const COMPOSE: &str = r#"
services:
  app:
    image: ${IMAGE}
    command: ["sh", "-c", "sleep 4; touch /tmp/ready; exec sleep 3600"]
    environment:
      VERSION: ${VERSION}
    stop_signal: SIGKILL
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 1s
      retries: 30
"#;

fn version_of(container: &str) -> String {
    let env = inspect(container, "{{json .Config.Env}}");
    let v: Vec<String> = serde_json::from_str(&env).unwrap_or_default();
    v.iter()
        .find_map(|e| e.strip_prefix("VERSION=").map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn sigkill_of_the_daemon_mid_rollout_then_the_next_daemon_converges() {
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack("hcrash", COMPOSE);
    let f = path_str(&file).to_owned();
    let out = d.gantry(&["deploy", &stack, "-f", &f, "--var", "VERSION=one"]);
    assert_eq!(out.status.code(), Some(0), "first deploy");
    let app = format!("{stack}-app-1");
    assert_eq!(
        gantry_tests::project_containers(&stack),
        std::slice::from_ref(&app)
    );
    let first_id = inspect(&app, "{{.Id}}");

    // The second deploy: kill the daemon once the replacement exists beside the old one.
    let client = d
        .command(&["deploy", &stack, "-f", &f, "--var", "VERSION=two"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let during = wait_for(
        "the replacement container beside the old one",
        Duration::from_secs(60),
        || {
            let names = gantry_tests::project_containers(&stack);
            (names.len() >= 2).then_some(names)
        },
    );
    let daemon_pid = d.child.as_ref().unwrap().id();
    let mut daemon = d.child.take().unwrap();
    daemon.kill().unwrap(); // SIGKILL
    let status = daemon.wait().unwrap();
    eprintln!("killed the daemon (pid {daemon_pid}, {status:?}) with containers {during:?}");
    let client_out = client.wait_with_output().unwrap();
    assert_ne!(
        client_out.status.code(),
        Some(0),
        "the client saw its deploy cut short"
    );
    assert!(
        inspect(&app, "{{.Id}}") == first_id || gantry_tests::project_containers(&stack).len() >= 2,
        "the kill came mid-rollout"
    );
    let releases = d.releases(&stack);
    assert_eq!(
        releases[0]["outcome"], "in_progress",
        "the killed rollout is on record as in progress: {releases:?}"
    );

    // The next daemon converges by itself: it re-applies the last good release (the old
    // container stays or comes back, the replacement is removed), with no deploy asked.
    d.spawn();
    d.wait_ready();
    wait_for(
        "the next daemon to converge on the last good release",
        Duration::from_secs(60),
        || {
            let names = gantry_tests::project_containers(&stack);
            (names == std::slice::from_ref(&app)
                && version_of(&app) == "one"
                && inspect(&app, "{{.State.Running}}") == "true")
                .then_some(())
        },
    );
    // The interrupted release is no longer on record as running.
    wait_for(
        "the interrupted release to be recovered",
        Duration::from_secs(30),
        || {
            let releases = d.releases(&stack);
            releases
                .iter()
                .all(|r| r["outcome"] != "in_progress")
                .then_some(releases)
        },
    );

    // And the deploy that was cut short goes through on the new daemon.
    let out = d.gantry(&[
        "deploy",
        &stack,
        "-f",
        &f,
        "--var",
        "VERSION=two",
        "--lock-wait",
        "60s",
    ]);
    assert_eq!(out.status.code(), Some(0), "the deploy after the crash");
    assert_eq!(
        gantry_tests::project_containers(&stack),
        std::slice::from_ref(&app),
        "one container, no duplicate, no orphan"
    );
    assert_eq!(version_of(&app), "two");
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");
    let releases = d.releases(&stack);
    let outcomes: Vec<&str> = releases
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    eprintln!("outcomes, newest first: {outcomes:?}");
    assert_eq!(outcomes.first(), Some(&"succeeded"), "{outcomes:?}");
    assert!(
        outcomes.contains(&"interrupted"),
        "the killed rollout is on record as interrupted: {outcomes:?}"
    );

    // Nothing more happens afterwards: no late duplicate from the killed rollout. Checked once
    // the daemon has acted on the stack since the deploy, which a hand stop of its container
    // makes it do: a check of the stack after the debounce, then a reconcile job. A check the
    // deploy's own events asked for is that one, or began before it; jobs on a stack run one
    // after another; so whatever those did is done once the reconcile is logged.
    let reconciled = || {
        this_start(&d)
            .matches(&format!("reconciled stack={stack} "))
            .count()
    };
    let before = reconciled();
    let id = inspect(&app, "{{.Id}}");
    let stop = docker(&["stop", &app]);
    assert!(stop.status.success(), "{stop:?}");
    wait_for(
        "the daemon to reconcile the stopped container",
        Duration::from_secs(60),
        || (reconciled() > before).then_some(()),
    );
    assert_eq!(
        gantry_tests::project_containers(&stack),
        std::slice::from_ref(&app),
        "one container, no late duplicate"
    );
    assert_eq!(inspect(&app, "{{.Id}}"), id, "started again, not replaced");
    assert_eq!(version_of(&app), "two");
    assert_eq!(inspect(&app, "{{.State.Running}}"), "true");
}

#[test]
fn a_restarted_daemon_removes_leftover_temp_files_of_its_state() {
    // Needs the daemon to call `gantry_common::fsx::remove_leftover_temps` on its state dir
    // at start (see docs/security.md).
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack("hcrashtmp", COMPOSE);
    let out = d.gantry(&[
        "deploy",
        &stack,
        "-f",
        path_str(&file),
        "--var",
        "VERSION=one",
    ]);
    assert_eq!(out.status.code(), Some(0));
    d.stop();
    // What a writer killed between create and rename leaves: `.<name>.tmp.<pid>.<n>`, with a
    // pid no process has (above any pid_max).
    let releases = d.state_dir().join("stacks").join(&stack).join("releases");
    let dir = if releases.is_dir() {
        releases
    } else {
        d.state_dir()
    };
    let leftover = dir.join(".000002.json.tmp.4194305.0");
    std::fs::write(
        &leftover,
        "{\"environment\": {\"API_TOKEN\": \"leftover\"}}",
    )
    .unwrap();
    d.spawn();
    d.wait_ready();
    assert!(
        !leftover.exists(),
        "{} is still there after the daemon started",
        leftover.display()
    );
}
