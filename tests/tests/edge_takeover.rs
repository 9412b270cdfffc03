//! The edge switch routes each container as it was created, against the real kernel and
//! Docker: a release that moves the container port (`PORT:8080` to `PORT:9090`) rolls out
//! replica by replica without a failed request (the old replicas keep getting connections at
//! their own port, not at the new one); and a service whose port Docker published until now
//! (`x-gantry.edge: false`) taken over by the switch with a canary gives the canary its step's
//! share, not everything (the old container Docker publishes for shares the rest). Needs root
//! (CAP_NET_ADMIN) and `nft`: a prerequisite (CI=true fails without them).

use std::time::{Duration, SystemTime};

use gantry_tests::stack::Stack;
use gantry_tests::{Caller, body_on, http_get, stdout, wait_for};

/// Two replicas of busybox httpd answering `version N` on container port `CPORT`, replaced
/// one at a time with a pause between them.
const REPLICAS: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:${CPORT:-8080}"]
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - |
        mkdir -p /www && echo "version ${VERSION:-1}" > /www/index.html
        exec httpd -f -p ${CPORT:-8080} -h /www
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${CPORT:-8080}/"]
      interval: 500ms
      retries: 5
    deploy:
      replicas: 2
      update_config: {parallelism: 1, delay: 3s}
"#;

#[test]
fn a_release_that_moves_the_container_port_rolls_out_without_a_failed_request() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = Stack::with_file(REPLICAS);
    assert_eq!(stack.deploy(&[]).status.code(), Some(0), "version 1");
    wait_for("version 1", Duration::from_secs(20), || {
        (body_on(stack.port)? == "version 1").then_some(())
    });
    let client = Caller::start(
        &format!("http://127.0.0.1:{}/", stack.port),
        Duration::from_millis(10),
    );
    client.wait_for(
        "the client's first answer",
        Duration::from_secs(10),
        |calls| calls.iter().any(|c| c.answer.is_some()).then_some(()),
    );
    let out = stack.deploy(&["--var", "VERSION=2", "--var", "CPORT=9090"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // Past the rollout's end: a request sent after the deploy returned was answered.
    let deployed = SystemTime::now();
    client.wait_for(
        "an answer after the rollout",
        Duration::from_secs(10),
        |calls| {
            calls
                .iter()
                .any(|c| c.sent > deployed && c.answer.is_some())
                .then_some(())
        },
    );
    let calls = client.finish();
    let answered = |version: &str| {
        calls
            .iter()
            .filter(|c| c.answer.as_deref() == Some(version))
            .count()
    };
    let failed = calls.iter().filter(|c| c.answer.is_none()).count();
    let (v1, v2) = (answered("version 1"), answered("version 2"));
    eprintln!("port move: {v1} answered by version 1, {v2} by version 2, {failed} failed");
    assert_eq!(
        failed, 0,
        "an old replica got new connections at the new container port"
    );
    assert_eq!(v1 + v2, calls.len(), "only the two versions answered");
    // The client ran through the rollout: version 1 answered, then version 2; and an old
    // replica still answered after the first new one did (replica by replica, each old one
    // reached at its own port until it went).
    let first_new = calls
        .iter()
        .position(|c| c.answer.as_deref() == Some("version 2"))
        .expect("version 2 answered");
    assert!(
        calls[..first_new]
            .iter()
            .all(|c| c.answer.as_deref() == Some("version 1"))
            && first_new > 0,
        "version 1 answered before the rollout"
    );
    assert!(
        calls[first_new..]
            .iter()
            .any(|c| c.answer.as_deref() == Some("version 1")),
        "no old replica answered once a new one did: not replica by replica ({v1} by version 1, \
         {v2} by version 2)"
    );
    assert!(
        calls
            .iter()
            .filter(|c| c.sent > deployed)
            .all(|c| c.answer.as_deref() == Some("version 2")),
        "after the rollout only version 2 answers"
    );
    assert_eq!(body_on(stack.port).as_deref(), Some("version 2"));
}

/// One httpd answering `version N`; `XGANTRY` is its `x-gantry` (a canary needs the switch).
const TAKEOVER: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - |
        mkdir -p /www && echo "version ${VERSION:-1}" > /www/index.html && echo ok > /www/health
        exec httpd -f -p 8080 -h /www
    x-gantry: XGANTRY
"#;

/// Version 2's `x-gantry`: through the switch, a canary at 50 %.
const CANARY: &str = "{health: {http: /health, port: 8080, interval: 500ms, passes: 1}, canary: {steps: [50, 100], pause: 5m}}";

#[test]
fn a_canary_over_a_port_docker_published_gets_its_share_not_everything() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    // Version 1 published by Docker (the switch left out), as before the switch owned it.
    let stack = Stack::with_file(&TAKEOVER.replace("XGANTRY", "{edge: false}"));
    assert_eq!(stack.deploy(&[]).status.code(), Some(0), "version 1");
    wait_for("version 1", Duration::from_secs(20), || {
        (body_on(stack.port)? == "version 1").then_some(())
    });
    // Version 2 through the switch, as a canary at 50 %.
    stack.write(&TAKEOVER.replace("XGANTRY", CANARY));
    let deploy = stack.spawn_deploy(&["--var", "VERSION=2"]);
    wait_for(
        "the canary to get connections",
        Duration::from_secs(60),
        || {
            (0..100)
                .any(|_| body_on(stack.port).as_deref() == Some("version 2"))
                .then_some(())
        },
    );
    let (mut new, mut old) = (0, 0);
    for _ in 0..1000 {
        match body_on(stack.port).as_deref() {
            Some("version 2") => new += 1,
            Some("version 1") => old += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    eprintln!("canary at 50 % over Docker's port: {new} of 1000 (old {old})");
    assert_eq!(new + old, 1000);
    assert!(
        (350..=650).contains(&new),
        "the canary got {new} of 1000 new connections, not 50 ± 15 %"
    );
    let out = stack.gantry(&["promote", &stack.name]);
    assert_eq!(out.status.code(), Some(0), "promote");
    let out = deploy.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(body_on(stack.port).as_deref(), Some("version 2"));
}

/// A stack whose network binds published ports on loopback (the Compose way to keep a whole
/// stack off the network): the switch listens on 127.0.0.1 for a port written without an
/// address, as Docker would have bound it, never on every address.
#[test]
fn a_network_binding_on_loopback_keeps_the_switched_port_on_loopback() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = Stack::with_file(
        r#"
services:
  web:
    image: ${IMAGE}
    ports: ["${WEB_PORT}:8080"]
    command: ["sh", "-c", "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 8080 -h /www"]
networks:
  default:
    driver_opts:
      com.docker.network.bridge.host_binding_ipv4: "127.0.0.1"
"#,
    );
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let label = gantry_tests::inspect(
        &format!("{}-web-1", stack.name),
        r#"{{index .Config.Labels "io.gantry.edge"}}"#,
    );
    assert_eq!(label, format!("127.0.0.1:{}:8080", stack.port));
    let rules = std::process::Command::new("nft")
        .args(["list", "table", "ip", "gantry"])
        .output()
        .expect("nft");
    let rules = String::from_utf8_lossy(&rules.stdout);
    let line = rules
        .lines()
        .find(|l| l.contains("dnat") && l.contains(&format!("{}/web", stack.name)))
        .unwrap_or_else(|| panic!("no route for the stack: {rules}"));
    assert!(
        line.contains("ip daddr 127.0.0.1") && !line.contains("fib daddr type local"),
        "{line}"
    );
    let body = wait_for("the port to answer", Duration::from_secs(20), || {
        http_get(&format!("http://127.0.0.1:{}/", stack.port))
    });
    assert_eq!(body.1.trim(), "up");
}
