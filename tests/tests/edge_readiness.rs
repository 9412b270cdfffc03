//! Readiness after the deploy takes a replica out of the edge switch, against the real daemon,
//! kernel and Docker: of two replicas behind a published port, the one whose `x-gantry.health`
//! probe starts failing gets no new connection while it fails (the other answers every one),
//! and gets its share again once it passes; a deploy of the stack meanwhile does not put it
//! back. Restarts are off (`heal: false`), so only
//! readiness acts. Needs root (CAP_NET_ADMIN) and `nft`.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{ANSWER_WITHIN, docker, http_get_within, inspect, path_str, wait_for};

/// Two replicas answering their hostname. The probe's 5 s timeout (not the default 2 s) keeps
/// two probes slowed by a loaded machine from taking a serving replica out; the failure the
/// test causes (`/health` removed: 404) is as quick either way.
const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    deploy: {replicas: 2}
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/health && exec httpd -f -p 8080 -h /www"]
    x-gantry:
      health: {http: /health, port: 8080, interval: 300ms, timeout: 5s, passes: 1, failures: 2}
"#;

/// Which replica (by hostname) answered each of `n` new connections; every one must answer
/// (within [`ANSWER_WITHIN`]: a slow answer on a loaded machine is an answer).
fn spread(port: u16, n: usize) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for _ in 0..n {
        let (status, body) = http_get_within(&format!("http://127.0.0.1:{port}/"), ANSWER_WITHIN)
            .expect("every new connection is answered");
        assert_eq!(status, 200);
        *by.entry(body.trim().to_owned()).or_default() += 1;
    }
    by
}

#[test]
fn a_replica_failing_its_probe_leaves_the_switch_and_comes_back_when_it_passes() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let mut d = Daemon::start("daemon:\n  defaults:\n    heal: false\n", &[]);
    let (stack, file) = d.stack("edgerdy", WEB);
    let port = gantry_tests::free_port();
    let out = d.gantry(&[
        "deploy",
        &stack,
        "-f",
        path_str(&file),
        "--var",
        &format!("WEB_PORT={port}"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let (one, two) = (format!("{stack}-web-1"), format!("{stack}-web-2"));
    let (host1, host2) = (
        inspect(&one, "{{.Config.Hostname}}"),
        inspect(&two, "{{.Config.Hostname}}"),
    );
    let both = spread(port, 200);
    assert!(
        both.get(&host1).is_some_and(|n| *n > 40) && both.get(&host2).is_some_and(|n| *n > 40),
        "both replicas share new connections: {both:?}"
    );
    // The daemon's probe tasks have seen both ready.
    wait_for(
        "both replicas probed ready",
        Duration::from_secs(20),
        || {
            let log = d.log();
            [&one, &two]
                .iter()
                .all(|c| {
                    log.lines().any(|l| {
                        l.contains("readiness changed")
                            && l.contains(c.as_str())
                            && l.contains("ready=true")
                    })
                })
                .then_some(())
        },
    );

    // web-1 fails its probe: out of the switch while it fails.
    let flip = docker(&["exec", &one, "rm", "/www/health"]);
    assert!(flip.status.success(), "{flip:?}");
    wait_for("web-1 out of the switch", Duration::from_secs(20), || {
        (!spread(port, 50).contains_key(&host1)).then_some(())
    });
    let out_of_rotation = spread(port, 500);
    assert_eq!(
        out_of_rotation.get(&host2),
        Some(&500),
        "while web-1 fails, every new connection goes to web-2: {out_of_rotation:?}"
    );
    assert_eq!(
        inspect(&one, "{{.State.Running}}"),
        "true",
        "readiness only: web-1 still runs (heal: false)"
    );

    // A deploy of the stack (nothing changed: it rebuilds the routes from every running
    // container) does not put it back: the daemon applies readiness again after the job.
    let out = d.gantry(&[
        "deploy",
        &stack,
        "-f",
        path_str(&file),
        "--var",
        &format!("WEB_PORT={port}"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let after_deploy = spread(port, 300);
    assert_eq!(
        after_deploy.get(&host2),
        Some(&300),
        "after a deploy, web-1 stays out while it fails: {after_deploy:?}"
    );

    // Passing again: back in the switch.
    let flip = docker(&["exec", &one, "sh", "-c", "echo ok > /www/health"]);
    assert!(flip.status.success(), "{flip:?}");
    let back = wait_for("web-1 back in the switch", Duration::from_secs(20), || {
        let s = spread(port, 100);
        s.get(&host1).is_some_and(|n| *n > 20).then_some(s)
    });
    eprintln!("before {both:?}, while failing {out_of_rotation:?}, back {back:?}");
    assert!(
        d.log().contains("edge: rotation follows readiness"),
        "the switch followed readiness"
    );
}
