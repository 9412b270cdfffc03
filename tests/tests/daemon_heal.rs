//! Supervision against the real Docker daemon: an unhealthy container (its httpd killed, its
//! main process alive) is restarted in place (how long the heal takes from Docker's
//! `unhealthy` event to the container's `start`, on Docker's clock, is printed; its backoff is
//! held to the millisecond by `daemon::supervise`'s unit tests on a paused clock, as a test
//! here asserts no wall-clock speed); one that never recovers
//! gets exactly the restart budget, then is reported (status, metric), and stays given up
//! across a daemon restart.

use std::time::{Duration, Instant};

use gantry_tests::daemon::Daemon;
use gantry_tests::{DockerEvent, EventWatch, docker, http_get, past_first_resync, wait_for};
use gantry_tests::{free_port, inspect, path_str};

/// `web` runs httpd in the background under a shell that stays alive; `stuck` is healthy only
/// on its first start (the marker survives a restart), so once made unhealthy it never recovers.
const STACK: &str = r#"
services:
  web:
    image: ${IMAGE}
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -p 8080 -h /www; exec sleep 86400"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 1s
      retries: 2
  stuck:
    image: ${IMAGE}
    command: ["sh", "-c", "if [ ! -f /started ]; then touch /started /ok; fi; exec sleep 86400"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "test", "-f", "/ok"]
      interval: 1s
      timeout: 1s
      retries: 2
"#;

#[test]
fn unhealthy_is_restarted_in_time_and_a_hopeless_one_gets_exactly_its_budget() {
    let port = free_port();
    let config = format!(
        "daemon:\n  metrics_address: 127.0.0.1:{port}\n  heal:\n    max_restarts: 3\n    window: 10m\n    backoff: 200ms\n"
    );
    let mut d = Daemon::start(&config, &[]);
    let (stack, file) = d.stack("dheal", STACK);
    let out = d.gantry(&["deploy", &stack, "-f", path_str(&file)]);
    assert_eq!(out.status.code(), Some(0));

    // web: kill httpd; sh (PID 1) stays alive, so only the healthcheck notices.
    let web = format!("{stack}-web-1");
    let started = inspect(&web, "{{.State.StartedAt}}");
    let id = inspect(&web, "{{.Id}}");
    let watch = EventWatch::start(&[&format!("container={id}")]);
    let killed = docker(&["exec", &web, "killall", "httpd"]);
    assert!(killed.status.success(), "{killed:?}");
    let t0 = Instant::now();
    // The healthchecks are Docker's (interval 1s × retries 2), then the heal's: the event
    // reaching the daemon, the 200 ms backoff, the stop and the start. This test's own clock
    // only bounds how long it waits.
    let (unhealthy, restarted) = watch.wait_for(
        "web to be found unhealthy and restarted",
        Duration::from_secs(20),
        |events| {
            let at = events
                .iter()
                .position(|e| e.action == "health_status: unhealthy")?;
            let start = events[at..].iter().find(|e| e.action == "start")?;
            Some((events[at].at, start.at))
        },
    );
    let timeline = DockerEvent::kill_die_timeline(&watch.stop());
    let heal = restarted.duration_since(unhealthy).unwrap_or_default();
    eprintln!(
        "web restarted {heal:?} after Docker found it unhealthy ({:?} after its httpd was \
         killed, by this test's clock)",
        t0.elapsed()
    );
    eprintln!("web's stop and start: {timeline}");
    wait_for("web's new StartedAt", Duration::from_secs(20), || {
        (inspect(&web, "{{.State.StartedAt}}") != started).then_some(())
    });
    assert_eq!(
        inspect(&web, "{{.Id}}"),
        id,
        "restarted in place, not replaced"
    );
    wait_for("web healthy again", Duration::from_secs(20), || {
        (inspect(&web, "{{.State.Health.Status}}") == "healthy").then_some(())
    });

    // stuck: unhealthy for good.
    let stuck = format!("{stack}-stuck-1");
    docker(&["exec", &stuck, "rm", "/ok"]);
    let status = wait_for("stuck to be given up on", Duration::from_secs(90), || {
        let c = container_status(&d, &stack, &stuck)?;
        (c["heal"]["gave_up"] == true).then_some(c)
    });
    assert_eq!(status["heal"]["restarts"], 3, "{status}");
    // No more restarts after giving up.
    let after = inspect(&stuck, "{{.State.StartedAt}}");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(inspect(&stuck, "{{.State.StartedAt}}"), after);
    let c = container_status(&d, &stack, &stuck).expect("stuck in status");
    assert_eq!(c["heal"]["restarts"], 3, "{c}");
    // Reported: metric and log.
    let (_, metrics) = http_get(&format!("http://127.0.0.1:{port}/metrics")).unwrap();
    let giveups = format!("gantry_heal_giveups_total{{stack=\"{stack}\",service=\"stuck\"}} 1");
    assert!(metrics.contains(&giveups), "{metrics}");
    let restarts = format!("gantry_heal_restarts_total{{stack=\"{stack}\",service=\"stuck\"}} 3");
    assert!(metrics.contains(&restarts), "{metrics}");
    assert!(d.log().contains("giving up"), "the give-up is logged");

    // A daemon restart (systemd after a crash, an upgrade) keeps the spent budget: the resync
    // sees stuck still unhealthy and leaves it alone. Checked once that resync is over (web's
    // death, handled after it, is the marker): no restart of stuck begun, and its track (what
    // a heal decides by) still given up with its 3 restarts.
    d.stop();
    d.spawn();
    d.wait_ready();
    let log = past_first_resync(&d, &web);
    assert!(
        !log.lines()
            .any(|l| l.contains("restarting it") && l.contains(&format!("container={stuck} "))),
        "the restarted daemon restarts stuck:\n{log}"
    );
    assert_eq!(
        inspect(&stuck, "{{.State.StartedAt}}"),
        after,
        "a restarted daemon gave a container it had given up on a new budget"
    );
    let c = container_status(&d, &stack, &stuck).expect("stuck in status");
    assert_eq!(c["heal"]["gave_up"], true, "{c}");
    assert_eq!(c["heal"]["restarts"], 3, "{c}");
}

/// One container's entry in `gantry status STACK --output json`.
fn container_status(d: &Daemon, stack: &str, name: &str) -> Option<serde_json::Value> {
    d.status(stack)["stacks"][0]["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
}
