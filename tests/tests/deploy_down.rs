//! `gantry down` against the real Docker daemon, through `gantryd`: a stack with a port
//! through the edge switch, a network and a named volume goes (containers, routes, network;
//! the volume only with `--volumes`), stays down across a daemon restart (its adoption and
//! resync restore nothing), and `gantry rollback` brings it back. Needs root and `nft` for the
//! edge switch.

use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{docker, http_get, path_str, project_containers, wait_for};

const STACK: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    command: ["sh", "-c", "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www"]
    stop_signal: SIGKILL
    networks: [back]
    x-gantry: {min_ready: 0s}
  db:
    image: ${IMAGE}
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
    networks: [back]
    volumes: [data:/data, /scratch]
    x-gantry: {min_ready: 0s}
networks:
  back: {}
volumes:
  data: {}
"#;

fn exists(kind: &str, name: &str) -> bool {
    docker(&[kind, "inspect", name]).status.success()
}

fn routed(stack: &str) -> bool {
    std::process::Command::new("nft")
        .args(["list", "chain", "ip", "gantry", &format!("g/{stack}/web")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A daemon and a stack named `prefix`-… deployed from `compose` with `WEB_PORT` free, `web`
/// answering on it: (daemon, stack, its URL). `None` where the edge switch cannot run.
fn deployed(prefix: &str, compose: &str) -> Option<(Daemon, String, String)> {
    if !gantry_tests::edge_switch_available() {
        return None;
    }
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack(prefix, compose);
    let port = gantry_tests::free_port();
    let port_var = format!("WEB_PORT={port}");
    let out = d.gantry(&["deploy", &stack, "-f", path_str(&file), "--var", &port_var]);
    assert_eq!(out.status.code(), Some(0));
    let url = format!("http://127.0.0.1:{port}/");
    wait_for("web answers", Duration::from_secs(20), || http_get(&url));
    Some((d, stack, url))
}

#[test]
fn down_takes_the_stack_off_keeps_it_off_and_rollback_brings_it_back() {
    let Some((mut d, stack, url)) = deployed("down", STACK) else {
        return;
    };
    let (network, volume) = (format!("{stack}_back"), format!("{stack}_data"));
    assert!(exists("network", &network) && exists("volume", &volume));
    assert!(routed(&stack), "the port goes through the switch");

    let out = d.gantry(&["down", &stack]);
    assert_eq!(out.status.code(), Some(0));
    let text = gantry_tests::stdout(&out);
    assert!(text.contains("web: removing (gantry down)"), "{text}");
    assert!(
        text.contains(&format!("network {network} removed")),
        "{text}"
    );
    assert_eq!(project_containers(&stack), Vec::<String>::new());
    assert!(!exists("network", &network), "the stack's network goes");
    assert!(exists("volume", &volume), "volumes stay without --volumes");
    assert!(!routed(&stack), "the switch's routes go");
    assert!(http_get(&url).is_none(), "nothing answers on the port");

    // It stays down: a restarted daemon adopts and resyncs, and restores nothing.
    d.stop();
    d.spawn();
    d.wait_ready();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(project_containers(&stack), Vec::<String>::new());
    // A second down has no container to remove (its networks are gone already).
    let again = d.gantry(&["down", &stack]);
    assert_eq!(again.status.code(), Some(0));

    // `gantry rollback` brings back the release before the down (its network too).
    let back = d.gantry(&["rollback", &stack]);
    assert_eq!(back.status.code(), Some(0));
    wait_for("web answers again", Duration::from_secs(20), || {
        http_get(&url)
    });
    assert!(exists("network", &network));

    // --local, --volumes: the named volume goes too, and db's anonymous one.
    let anonymous = gantry_tests::inspect(
        &format!("{stack}-db-1"),
        "{{range .Mounts}}{{if eq .Destination \"/scratch\"}}{{.Name}}{{end}}{{end}}",
    );
    assert_eq!(anonymous.trim().len(), 64, "{anonymous:?}");
    let out = d.gantry(&["down", &stack, "--volumes", "--local"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(project_containers(&stack), Vec::<String>::new());
    assert!(
        !exists("volume", &volume),
        "--volumes removes the stack's volume"
    );
    assert!(
        !exists("volume", anonymous.trim()),
        "--volumes removes the containers' anonymous volumes"
    );
    let releases = d.releases(&stack);
    assert_eq!(
        releases.len(),
        4,
        "deploy, down, rollback, down: {releases:#?}"
    );
}

/// `web` (two replicas) answers until it exits: on SIGTERM its shell waits 3 s before it
/// exits, and httpd serves meanwhile (as under `docker compose down`, which leaves the
/// networks be). `stubborn` ignores SIGTERM: its 1 s grace period, not Docker's 10 s, ends it.
const DRAINING: &str = r#"
services:
  stubborn:
    image: ${IMAGE}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
    stop_grace_period: 1s
    x-gantry: {min_ready: 0s}
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    deploy: {replicas: 2}
    stop_grace_period: 20s
    command:
      - sh
      - -c
      - |
        trap 'sleep 3; exit 0' TERM
        mkdir -p /www && echo up > /www/index.html
        httpd -p 8080 -h /www
        while true; do sleep 0.1; done
    x-gantry: {min_ready: 0s}
"#;

#[test]
fn containers_taken_down_serve_until_they_exit_all_at_once_within_their_grace() {
    let Some((d, stack, url)) = deployed("downdrain", DRAINING) else {
        return;
    };

    let started = std::time::Instant::now();
    let mut down = d.command(&["down", &stack]).spawn().unwrap();
    let web = format!("{stack}-web-2");
    // Wait until Docker has sent the stop signal (the container is still running: its
    // trap sleeps), then ask: it still answers.
    wait_for("the stop signal", Duration::from_secs(10), || {
        let log = docker(&[
            "events",
            "--since",
            "30s",
            "--until",
            "0s",
            "--filter",
            &format!("container={web}"),
            "--filter",
            "event=kill",
            "--format",
            "{{.Action}}",
        ]);
        (!gantry_tests::stdout(&log).trim().is_empty()).then_some(())
    });
    let during = http_get(&url);
    let status = down.wait().unwrap();
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        during.is_some_and(|(code, _)| code == 200),
        "a container being taken down stopped serving before it exited"
    );
    assert!(
        took >= Duration::from_secs(3),
        "the down waited for the exit: {took:?}"
    );
    // Replicas and services go at once, and `stubborn` within its own grace period: one
    // after another, or with Docker's default 10 s, it would take 7 s or more.
    assert!(took < Duration::from_secs(6), "the down took {took:?}");
    assert_eq!(project_containers(&stack), Vec::<String>::new());
}
