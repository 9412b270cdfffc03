//! `gantry down` against the real Docker daemon, through `gantryd`: a stack with a port
//! through the edge switch, a network and a named volume goes (containers, routes, network;
//! the volume only with `--volumes`), stays down across a daemon restart (its adoption and
//! resync restore nothing), and `gantry rollback` brings it back. Needs root and `nft` for the
//! edge switch.

use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{
    DockerEvent, EventWatch, docker, http_get, path_str, project_containers, wait_for,
};

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

/// A second stack, the marker of a resync in the restart test.
const MARKER: &str = r#"
services:
  idle:
    image: ${IMAGE}
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
    x-gantry: {min_ready: 0s}
"#;

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

    // It stays down: a restarted daemon adopts and resyncs, and restores nothing. The marker
    // that the resync went past this stack: a second stack, after this one in the resync's
    // (sorted) order, whose container goes while the daemon is stopped; the resync re-applies
    // it. Had this stack drifted, its re-apply would have been logged before.
    let (marker, marker_file) = d.stack("zmark", MARKER);
    assert!(stack < marker, "the marker stack comes later in the resync");
    let out = d.gantry(&["deploy", &marker, "-f", path_str(&marker_file)]);
    assert_eq!(out.status.code(), Some(0));
    d.stop();
    assert!(
        docker(&["rm", "-f", &format!("{marker}-idle-1")])
            .status
            .success()
    );
    d.spawn();
    d.wait_ready();
    wait_for(
        "the resync to re-apply the marker stack",
        Duration::from_secs(60),
        || {
            let log = d.log();
            let restart = log.rsplit("--- restart ---").next().unwrap_or_default();
            restart
                .lines()
                .any(|l| l.contains(" reconciled") && l.contains(&marker))
                .then_some(())
        },
    );
    assert_eq!(
        project_containers(&marker),
        vec![format!("{marker}-idle-1")]
    );
    let log = d.log();
    let restart = log.rsplit("--- restart ---").next().unwrap_or_default();
    assert!(
        !restart
            .lines()
            .any(|l| l.contains("drifted") && l.contains(&stack)),
        "the restarted daemon re-applied the stack taken down:\n{restart}"
    );
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

/// `web` (two replicas) answers until it exits: on SIGTERM its shell waits 8 s before it
/// exits, and httpd serves meanwhile (as under `docker compose down`, which leaves the
/// networks be). `stubborn` ignores SIGTERM: its 3 s grace period, not Docker's 10 s, ends it.
/// (3 s and 8 s, not less: the three stop signals, sent at once, must all come before
/// stubborn's death, and its death before the replicas' exits, on a loaded 2-core machine.)
const DRAINING: &str = r#"
services:
  stubborn:
    image: ${IMAGE}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
    stop_grace_period: 3s
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
        trap 'sleep 8; exit 0' TERM
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
    let (stubborn, web1, web2) = (
        format!("{stack}-stubborn-1"),
        format!("{stack}-web-1"),
        format!("{stack}-web-2"),
    );
    let watch = EventWatch::start(&[&format!("label=com.docker.compose.project={stack}")]);
    let mut down = d.command(&["down", &stack]).spawn().unwrap();
    // Wait until Docker has sent the stop signal (the container is still running: its
    // trap sleeps), then ask: it still answers.
    watch.wait_for("the stop signal", Duration::from_secs(10), |events| {
        events
            .iter()
            .any(|e| e.name == web2 && e.action == "kill")
            .then_some(())
    });
    let during = http_get(&url);
    let status = down.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        during.is_some_and(|(code, _)| code == 200),
        "a container being taken down stopped serving before it exited"
    );
    assert_eq!(project_containers(&stack), Vec::<String>::new());
    // The down is over, so are its containers: their events are Docker's to send now.
    let names = [&stubborn, &web1, &web2];
    watch.wait_for(
        "every container's death",
        Duration::from_secs(10),
        |events| {
            names
                .iter()
                .all(|n| events.iter().any(|e| e.name == **n && e.action == "die"))
                .then_some(())
        },
    );
    let events = watch.stop();
    let of = |name: &str, action: &str| -> Vec<&DockerEvent> {
        events
            .iter()
            .filter(|e| e.name == name && e.action == action)
            .collect()
    };
    let timeline = DockerEvent::kill_die_timeline(&events);
    // The down waited for each web replica to exit on its own: SIGTERM only, then its trap's
    // 8 s and `exit 0` (a forced removal would SIGKILL it: exit 137).
    for web in [&web1, &web2] {
        let signals: Vec<&str> = of(web, "kill").iter().map(|e| e.signal.as_str()).collect();
        assert_eq!(signals, ["15"], "{web} got SIGTERM alone: {timeline}");
        let died: Vec<&str> = of(web, "die")
            .iter()
            .map(|e| e.exit_code.as_str())
            .collect();
        assert_eq!(died, ["0"], "{web} exited by its trap: {timeline}");
    }
    // `stubborn` ignores SIGTERM: SIGKILL at the end of its grace.
    let signals: Vec<&str> = of(&stubborn, "kill")
        .iter()
        .map(|e| e.signal.as_str())
        .collect();
    assert_eq!(signals, ["15", "9"], "{stubborn}: {timeline}");
    // Replicas and services go at once: every container had its stop signal before the first
    // of them died (one after another, each would die before the next one's signal).
    let last_signalled = names
        .iter()
        .map(|n| of(n, "kill")[0].at)
        .max()
        .expect("three containers");
    let first_died = names
        .iter()
        .map(|n| of(n, "die")[0].at)
        .min()
        .expect("three containers");
    assert!(
        last_signalled < first_died,
        "the containers were stopped one after another: {timeline}"
    );
    // And `stubborn` within its own 3 s grace, not Docker's 10 s: killed, and dead, while the
    // web replicas, signalled at the same time, were still in their trap's 8 s.
    let stubborn_died = of(&stubborn, "die")[0].at;
    for web in [&web1, &web2] {
        assert!(
            of(&stubborn, "kill")[1].at < of(web, "die")[0].at
                && stubborn_died < of(web, "die")[0].at,
            "{stubborn} outlived {web}'s 8 s drain: not killed at the end of its 3 s grace: \
             {timeline}"
        );
    }
}
