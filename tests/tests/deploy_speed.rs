//! Rollouts as fast as readiness allows, without a failed request, against the real daemon.
//!
//! - A client container calls an internal service by name every 20 ms through ten start-first
//!   rollouts in a row: not one request may fail (the old container leaves Docker's DNS
//!   before its address goes away, see `agent/src/deploy/rollout.rs`). How long the client
//!   waits between two answers is a speed target: `bench/deploy.sh` measures it (250 ms goal).
//! - Twenty independent services deploy concurrently, each running `min_ready` (30 s) before it
//!   counts as ready: in gantry's own output (its progress lines and its debug log, one stream)
//!   all twenty containers were started before the first of them was ready. One after another,
//!   a service would start only once the one before served. (30 s, not less: twenty creates and
//!   starts on a loaded 2-core machine, beside another test, must fit in it.)
//! - A new container that exits after it was found ready, before the deploy ends, fails the
//!   deploy (Gantry's own `min_ready` watches new containers together).

use std::time::Duration;

use gantry_tests::stack::Stack;
use gantry_tests::{docker, path_str, stderr, stdout, wait_for};

/// `client` counts a request as failed when it gets an error or no answer within 10 s (a lost
/// SYN is sent again 1 s, then 3 s, later: a loaded machine's stall, not a failure; a request
/// to a container that went away fails or hangs). How long it waited is `bench/deploy.sh`'s
/// measure.
const CALLED_BY_NAME: &str = r#"
services:
  api:
    image: ${IMAGE}
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo \"version ${VERSION:-0}\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
  client:
    image: ${IMAGE}
    init: true
    command:
      - sh
      - -c
      - |
        ok=0; fail=0
        while true; do
          ip=$$(nslookup api 2>/dev/null | awk '/^Address/ && !/:53$$/ {a=$$2} END {print a}')
          if [ -n "$$ip" ] && timeout 10 wget -q -O /dev/null "http://$$ip:8080/"; then
            ok=$$((ok+1))
          else
            fail=$$((fail+1))
          fi
          echo "$$ok $$fail" > /tmp/counts.new && mv /tmp/counts.new /tmp/counts
          sleep 0.02
        done
    depends_on:
      api:
        condition: service_healthy
"#;

/// (ok, failed) as the client counted them.
fn counts(stack: &Stack) -> (u64, u64) {
    let out = docker(&[
        "exec",
        &format!("{}-client-1", stack.name),
        "cat",
        "/tmp/counts",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[test]
fn a_client_calling_by_name_loses_nothing_through_ten_start_first_rollouts() {
    let stack = Stack::with_file(CALLED_BY_NAME);
    assert_eq!(stack.deploy(&["--var", "VERSION=0"]).status.code(), Some(0));
    wait_for(
        "the client's first requests",
        Duration::from_secs(30),
        || (counts(&stack).0 > 10).then_some(()),
    );
    let (ok0, fail0) = counts(&stack);
    for round in 1..=10 {
        let var = format!("VERSION={round}");
        let out = stack.deploy(&["--var", &var]);
        assert_eq!(out.status.code(), Some(0), "round {round}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("serving after"), "{text}");
        assert!(text.contains("retired in"), "{text}");
        let page = docker(&[
            "exec",
            &format!("{}-api-1", stack.name),
            "cat",
            "/www/index.html",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&page.stdout).trim(),
            format!("version {round}")
        );
        // A few answers after the rollout, so a failure at its end counts in this round.
        let done = counts(&stack).0;
        let (ok, fail) = wait_for(
            "the client's answers after the rollout",
            Duration::from_secs(30),
            || {
                let c = counts(&stack);
                (c.0 >= done + 5).then_some(c)
            },
        );
        eprintln!(
            "round {round}: {} ok, {} failed so far",
            ok - ok0,
            fail - fail0
        );
    }
    // The client keeps going after the last rollout, and counted every request.
    let (ok1, fail1) = wait_for(
        "the client to keep answering",
        Duration::from_secs(30),
        || {
            let c = counts(&stack);
            (c.0 > ok0 + 20).then_some(c)
        },
    );
    eprintln!(
        "ten rollouts: {} requests, {} failed",
        (ok1 + fail1) - (ok0 + fail0),
        fail1 - fail0
    );
    assert_eq!(
        fail1 - fail0,
        0,
        "no request may fail during start-first rollouts"
    );
}

/// `min_ready` of the twenty services: how long each runs before it counts as ready. The
/// twenty creates and starts must all fit in it (10 s is too thin a margin for a debug build on
/// a loaded 2-core CI machine running another test beside); one after another, the twenty
/// would take 20 × 30 s.
const MIN_READY_S: u32 = 30;

#[test]
fn twenty_independent_services_are_started_at_once() {
    let mut compose = String::from("services:\n");
    for i in 1..=20 {
        compose.push_str(&format!(
            "  s{i}:\n    image: ${{IMAGE}}\n    init: true\n    command: [\"sleep\", \"600\"]\n    x-gantry: {{min_ready: {MIN_READY_S}s}}\n"
        ));
    }
    let stack = Stack::with_file(&compose);
    // `--output json` puts the progress lines on stderr, beside the debug log: one stream, in
    // the order gantry wrote it.
    let file = stack.file();
    let out = stack
        .command(&[
            "deploy",
            &stack.name,
            "-f",
            path_str(&file),
            "--output",
            "json",
        ])
        .env("GANTRY_LOG", "gantry_agent=debug,warn")
        .output()
        .expect("run gantry");
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    let started = |lines: &[&str]| {
        lines
            .iter()
            .filter(|l| l.contains("container started"))
            .count()
    };
    assert_eq!(started(&lines), 20, "twenty containers started:\n{log}");
    let serving = lines
        .iter()
        .filter(|l| l.contains(" serving after "))
        .count();
    assert_eq!(serving, 20, "twenty services became ready:\n{log}");
    // Every container was started before the first service was ready (one after another,
    // the second would start only after the first served, MIN_READY_S later).
    let first_ready = lines
        .iter()
        .position(|l| l.contains(" serving after "))
        .expect("a service became ready");
    assert_eq!(
        started(&lines[..first_ready]),
        20,
        "services started one after another, not at once:\n{log}"
    );
}

/// Gantry's own `min_ready` watches the containers a deploy creates where none ran together
/// (docs/deploy.md, Readiness): `api` is ready 2 s after its start, `web` starts then and keeps
/// the deploy going for its own 20 s; `api` exits 8 s after its start, found ready but gone
/// before the deploy ends. The check at the end (Docker's event history) fails the deploy,
/// naming the container. (Margins: `api` has 6 s to be found ready, the deploy runs 12 s past
/// its exit.)
#[test]
fn a_new_container_that_exits_before_the_deploy_ends_fails_it() {
    let stack = Stack::with_file(
        r#"
services:
  api:
    image: ${IMAGE}
    init: true
    command: ["sh", "-c", "sleep 8; exit 4"]
  web:
    image: ${IMAGE}
    init: true
    command: ["sleep", "600"]
    depends_on: [api]
    x-gantry: {min_ready: 20s}
"#,
    );
    let out = stack.deploy(&[]);
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{err}");
    let api = format!("{}-api-1", stack.name);
    assert!(
        err.contains(&format!(
            "container {api} exited after it started, before the deploy ended"
        )),
        "{err}"
    );
    // It was found ready first: the gate let `web` start.
    assert!(err.contains(&format!("{api} serving after")), "{err}");
}
