//! Probes that keep running after the deploy, against the real daemon and Docker: a container
//! whose `x-gantry.health` probe starts failing (its health file changed with `docker exec`;
//! no Docker healthcheck at all) is restarted in place after `failures` failures, within the
//! restart budget; one that never recovers gets exactly its budget, then is given up on; each
//! readiness change is logged.

use std::time::{Duration, Instant};

use gantry_tests::daemon::Daemon;
use gantry_tests::{docker, inspect, path_str, wait_for};

/// `web` writes `ok` to its health file at every start; `stuck` only at its first start.
const STACK: &str = r#"
services:
  web:
    image: ${IMAGE}
    init: true
    stop_signal: SIGKILL
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/health && exec httpd -f -p 8080 -h /www"]
    x-gantry:
      health: {http: /health, port: 8080, body: ok, passes: 1, interval: 500ms, failures: 3}
  stuck:
    image: ${IMAGE}
    init: true
    stop_signal: SIGKILL
    command: ["sh", "-c", "mkdir -p /www && if [ ! -f /started ]; then touch /started; echo ok > /www/health; fi; exec httpd -f -p 8080 -h /www"]
    x-gantry:
      health: {http: /health, port: 8080, body: ok, passes: 1, interval: 500ms, failures: 3}
"#;

#[test]
fn a_failing_probe_restarts_the_container_within_its_budget() {
    let config = "daemon:\n  heal:\n    max_restarts: 2\n    window: 10m\n    backoff: 200ms\n";
    let mut d = Daemon::start(config, &[]);
    let (stack, file) = d.stack("dlive", STACK);
    let out = d.gantry(&["deploy", &stack, "-f", path_str(&file)]);
    assert_eq!(out.status.code(), Some(0));

    // web: its probe fails from now on, until a restart rewrites the file.
    let web = format!("{stack}-web-1");
    let (id, started) = (
        inspect(&web, "{{.Id}}"),
        inspect(&web, "{{.State.StartedAt}}"),
    );
    // The daemon's probe task sees it passing first (it logs the container ready).
    wait_for(
        "the daemon's probe to find web ready",
        Duration::from_secs(60),
        || {
            d.log()
                .lines()
                .any(|l| {
                    l.contains("readiness changed")
                        && l.contains(&format!("container={web} "))
                        && l.contains("ready=true")
                })
                .then_some(())
        },
    );
    let flip = docker(&["exec", &web, "sh", "-c", "echo down > /www/health"]);
    assert!(flip.status.success(), "{flip:?}");
    let t0 = Instant::now();
    // 3 failures at 500 ms + 200 ms backoff take about 2 s; the wait is long enough for a
    // loaded machine, not a speed target (the restart's count is checked below).
    wait_for("web to be restarted", Duration::from_secs(30), || {
        (inspect(&web, "{{.State.StartedAt}}") != started).then_some(())
    });
    eprintln!(
        "web restarted {:?} after its probe began to fail",
        t0.elapsed()
    );
    assert_eq!(inspect(&web, "{{.Id}}"), id, "restarted in place");
    let c = wait_for("web's restart in status", Duration::from_secs(10), || {
        let c = container_status(&d, &stack, &web)?;
        (c["heal"]["restarts"] == 1).then_some(c)
    });
    assert_eq!(c["heal"]["gave_up"], false, "{c}");
    // Passing again after the restart: ready again (logged once its probe passes: waited
    // for, a loaded machine takes its time), and no more restarts for at least 4 s.
    let after = inspect(&web, "{{.State.StartedAt}}");
    let restarted = Instant::now();
    let readiness_changes = || -> Vec<String> {
        d.log()
            .lines()
            .filter(|l| l.contains("readiness changed") && l.contains(&web))
            .map(str::to_owned)
            .collect()
    };
    let ready_again = |changes: &[String]| {
        changes.iter().any(|l| l.contains("ready=false"))
            && changes.last().is_some_and(|l| l.contains("ready=true"))
    };
    wait_for(
        "web's readiness to be logged true again",
        Duration::from_secs(20),
        || ready_again(&readiness_changes()).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(4).saturating_sub(restarted.elapsed()));
    assert_eq!(inspect(&web, "{{.State.StartedAt}}"), after);
    let changes = readiness_changes();
    assert!(
        ready_again(&changes),
        "readiness changes of {web} logged: {changes:#?}"
    );

    // stuck: failing for good; exactly the budget, then given up.
    let stuck = format!("{stack}-stuck-1");
    let flip = docker(&["exec", &stuck, "sh", "-c", "echo down > /www/health"]);
    assert!(flip.status.success(), "{flip:?}");
    let c = wait_for("stuck to be given up on", Duration::from_secs(60), || {
        let c = container_status(&d, &stack, &stuck)?;
        (c["heal"]["gave_up"] == true).then_some(c)
    });
    assert_eq!(c["heal"]["restarts"], 2, "{c}");
    let after = inspect(&stuck, "{{.State.StartedAt}}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        inspect(&stuck, "{{.State.StartedAt}}"),
        after,
        "no restart after giving up"
    );
    assert!(d.log().contains("giving up"), "the give-up is logged");
}

/// One container's entry in `gantry status STACK --output json`.
fn container_status(d: &Daemon, stack: &str, name: &str) -> Option<serde_json::Value> {
    d.status(stack)["stacks"][0]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}
