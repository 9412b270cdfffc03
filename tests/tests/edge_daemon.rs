//! The edge switch does not depend on the daemon: `gantryd` is SIGKILLed under steady traffic
//! and in the middle of a rollout (after the switch moved, while the old container drains), and
//! no established connection drops and no request fails; the next daemon converges the switch
//! on the last good release, and a connection the new container took before the kill flows on
//! through that container's drain window. Lost routes (what a reboot does to nftables) are
//! rebuilt by the next daemon from the running containers. A container that starts again at
//! another address is routed there by the daemon, without a deploy. Needs root (CAP_NET_ADMIN)
//! and `nft`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gantry_tests::daemon::Daemon;
use gantry_tests::traffic::{STREAM_CGI, Stream, traffic};
use gantry_tests::{ANSWER_WITHIN, http_get, http_get_within, path_str, wait_for};

const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 20s
    command:
      - sh
      - -c
      - |
        STREAM_CGI
        echo "version ${VERSION:-1}" > /www/index.html
        exec httpd -f -p 8080 -h /www
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
"#;

/// Waits until `ticks` has not grown for 2 s (at most `timeout`); returns when it last grew.
fn last_tick(ticks: &AtomicUsize, timeout: Duration) -> Instant {
    let t0 = Instant::now();
    let (mut count, mut at) = (ticks.load(Ordering::Relaxed), Instant::now());
    while at.elapsed() < Duration::from_secs(2) {
        assert!(
            t0.elapsed() < timeout,
            "the stream still flows after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = ticks.load(Ordering::Relaxed);
        if now != count {
            (count, at) = (now, Instant::now());
        }
    }
    at
}

fn kill_daemon(d: &mut Daemon) {
    let mut child = d.child.take().expect("the daemon runs");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn sigkill_of_the_daemon_drops_no_connection_and_the_next_converges_the_switch() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack("edged", &WEB.replace("STREAM_CGI", STREAM_CGI));
    let f = path_str(&file).to_owned();
    let port = gantry_tests::free_port();
    let port_var = format!("WEB_PORT={port}");
    let deploy = |d: &Daemon, v: &str| {
        d.command(&["deploy", &stack, "-f", &f, "--var", &port_var, "--var", v])
    };
    assert_eq!(
        deploy(&d, "VERSION=1").output().unwrap().status.code(),
        Some(0)
    );
    let (t, client) = traffic(port);
    wait_for("answers on the port", Duration::from_secs(20), || {
        (t.ok.load(Ordering::Relaxed) > 5).then_some(())
    });

    // 1. Steady traffic, SIGKILL: nothing passes through the daemon.
    let stream = Stream::open(port);
    assert!(stream.flowing(), "the stream flows");
    kill_daemon(&mut d);
    std::thread::sleep(Duration::from_secs(1));
    assert!(stream.flowing(), "the stream outlives the daemon");
    assert_eq!(t.failed.load(Ordering::Relaxed), 0, "no request failed");
    d.spawn();
    d.wait_ready();

    // 2. SIGKILL mid-rollout: once new connections reach version 2 and the old container
    //    drains (the stream holds it for up to its 20 s grace), with a second stream opened
    //    after the switch moved, so that it reaches the new container.
    let mut rollout = deploy(&d, "VERSION=2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "version 2 behind the switch",
        Duration::from_secs(60),
        || (*t.last.lock().unwrap() == "version 2").then_some(()),
    );
    let on_new = Stream::open(port);
    assert_eq!(
        on_new.first_line().as_deref(),
        Some("version 2"),
        "a stream opened after the switch reaches the new container"
    );
    assert!(on_new.flowing(), "the stream to the new container flows");
    kill_daemon(&mut d);
    let _ = rollout.wait();
    assert!(stream.flowing(), "the stream to the old container survives");
    assert!(on_new.flowing(), "the stream to the new container survives");
    // The switch moves back only once the next daemon runs: after this.
    let spawned = Instant::now();
    d.spawn();
    d.wait_ready();
    // The next daemon converges on the last good release (version 1): new connections go back
    // to the old container, and the new one, out of rotation, drains: its stream keeps
    // flowing until its grace period (20 s) ends, as any container leaving the switch.
    // `before_back`: when the last request that version 2 still answered was sent (a
    // connection goes where the rules sent its first packet: the switch moved back after).
    let mut before_back = spawned;
    wait_for(
        "new connections back on version 1",
        Duration::from_secs(60),
        || {
            let sent = Instant::now();
            match http_get(&format!("http://127.0.0.1:{port}/"))?.1.trim() {
                "version 1" => Some(()),
                "version 2" => {
                    before_back = sent;
                    None
                }
                _ => None,
            }
        },
    );
    let ticks_back = on_new.ticks.load(Ordering::Relaxed);
    let ended = last_tick(&on_new.ticks, Duration::from_secs(90));
    assert!(
        on_new.ticks.load(Ordering::Relaxed) > ticks_back,
        "the stream to the new container stopped when new connections went back to version 1"
    );
    // How long it flowed is the claim (its drain window): a lower bound, timed from a moment
    // before the switch moved back, which a real clock cannot reach early.
    let lasted = ended.saturating_duration_since(before_back);
    eprintln!(
        "the stream to the new container flowed {} ms after the last request version 2 \
         answered",
        lasted.as_millis()
    );
    assert!(
        lasted >= Duration::from_secs(18),
        "the stream to the new container was cut {} ms after the switch moved back: it must \
         flow through its drain window (20 s grace)",
        lasted.as_millis()
    );
    let web = format!("{stack}-web-1");
    wait_for(
        "the next daemon to converge on version 1",
        Duration::from_secs(60),
        || {
            (gantry_tests::project_containers(&stack) == std::slice::from_ref(&web)
                && *t.last.lock().unwrap() == "version 1")
                .then_some(())
        },
    );
    assert_eq!(
        gantry_tests::inspect(&web, "{{.State.Running}}"),
        "true",
        "the old container serves on"
    );
    assert!(
        stream.flowing(),
        "the stream to the old container still flows after the convergence"
    );
    assert_eq!(
        t.failed.load(Ordering::Relaxed),
        0,
        "no request failed through both kills"
    );

    // 3. The table is lost (a reboot clears nftables): the next daemon rebuilds it.
    t.stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    kill_daemon(&mut d);
    // (Only this stack's routes, so that other tests running now keep theirs.)
    gantry_tests::remove_edge_routes(&stack);
    assert_eq!(
        http_get(&format!("http://127.0.0.1:{port}/")),
        None,
        "without the table nothing answers"
    );
    d.spawn();
    d.wait_ready();
    let body = wait_for("the rebuilt switch", Duration::from_secs(20), || {
        http_get(&format!("http://127.0.0.1:{port}/"))
    });
    assert_eq!(body, (200, "version 1\n".to_owned()));
}

const RESTARTED: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
"#;

fn address(container: &str) -> String {
    gantry_tests::inspect(
        container,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    )
}

/// A container behind the switch that starts again at another address (Docker gave its own to
/// another container while it was stopped) is routed there by the daemon alone, without a
/// deploy: its death and its start re-sync the stack's routes. (Supervision's heal and
/// reconcile are off: only the switch acts.)
#[test]
fn a_container_restarted_at_another_address_is_routed_there() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let mut d = Daemon::start(
        "daemon:\n  defaults:\n    heal: false\n    reconcile: false\n",
        &[],
    );
    let (stack, file) = d.stack("edgemv", RESTARTED);
    let port = gantry_tests::free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = d.gantry(&[
        "deploy",
        &stack,
        "-f",
        path_str(&file),
        "--var",
        &format!("WEB_PORT={port}"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        http_get_within(&url, ANSWER_WITHIN),
        Some((200, "ok\n".to_owned()))
    );
    let web = format!("{stack}-web-1");
    let old = address(&web);

    let stop = gantry_tests::docker(&["stop", "-t", "1", &web]);
    assert!(stop.status.success(), "{stop:?}");
    // Another container on the stack's network takes the address (it belongs to the project,
    // so the daemon's clean-up removes it; it is no service of the release).
    let image = gantry_tests::env().get("GANTRY_TEST_IMAGE");
    let filler = gantry_tests::docker(&[
        "run",
        "-d",
        "--name",
        &format!("{stack}-filler"),
        "--network",
        &format!("{stack}_default"),
        "--label",
        &format!("com.docker.compose.project={stack}"),
        image,
        "sleep",
        "300",
    ]);
    assert!(filler.status.success(), "{filler:?}");
    let start = gantry_tests::docker(&["start", &web]);
    assert!(start.status.success(), "{start:?}");
    let new = address(&web);
    // (`docker run --ip` cannot force it: it needs a network with a subnet of its own.)
    assert_ne!(
        new,
        old,
        "the setup did not move {web}: Docker gave it its old address again although the \
         filler (at {}) started on the network while it was stopped",
        address(&format!("{stack}-filler"))
    );
    eprintln!("{web}: {old} -> {new}");

    let body = wait_for(
        "the switch to follow the new address",
        Duration::from_secs(10),
        || http_get(&url).filter(|(status, _)| *status == 200),
    );
    assert_eq!(body.1, "ok\n");
    let rules = std::process::Command::new("nft")
        .args(["list", "chain", "ip", "gantry", &format!("g/{stack}/web")])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    let addresses: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|t| t.matches('.').count() == 3)
        .collect();
    assert!(
        addresses.contains(&new.as_str()) && !addresses.contains(&old.as_str()),
        "the route names the new address only:\n{rules}"
    );
    // (Logged once the sync returns, a moment after the route answers.)
    wait_for(
        "the daemon's log of the sync on the container's start",
        Duration::from_secs(10),
        || {
            d.log()
                .lines()
                .any(|l| {
                    l.contains("edge: routes follow the containers")
                        && l.contains("reasons=moved")
                        && l.contains("services=web")
                })
                .then_some(())
        },
    );
}
