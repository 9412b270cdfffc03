//! Rollouts as fast as readiness allows, without a stall, against the real daemon.
//!
//! - A client container calls an internal service by name every 20 ms through ten start-first
//!   rollouts in a row: not one request may fail (the old container leaves Docker's DNS
//!   before its address goes away, see `agent/src/deploy/rollout.rs`).
//! - Twenty independent services deploy concurrently: each records when it started (the
//!   host's uptime, one clock for all containers) and must run `min_ready` (5 s) before it
//!   counts as ready, so one-after-another would start them at least 5 s apart; several
//!   starting within the first one's 5 s proves they were started at once (how many depends
//!   on how fast the daemon creates containers, so the test asks only for a few).

use std::time::Duration;

use gantry_tests::stack::Stack;
use gantry_tests::{docker, wait_for};

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
        ok=0; fail=0; gap=0; last=""
        while true; do
          ip=$$(nslookup api 2>/dev/null | awk '/^Address/ && !/:53$$/ {a=$$2} END {print a}')
          if [ -n "$$ip" ] && timeout 2 wget -q -O /dev/null "http://$$ip:8080/"; then
            ok=$$((ok+1))
            t=$$(cut -d' ' -f1 /proc/uptime); t=$${t%.*}$${t#*.}
            if [ -n "$$last" ] && [ $$((t-last)) -gt $$gap ]; then gap=$$((t-last)); fi
            last=$$t
          else
            fail=$$((fail+1))
          fi
          echo "$$ok $$fail $$gap" > /tmp/counts.new && mv /tmp/counts.new /tmp/counts
          sleep 0.02
        done
    depends_on:
      api:
        condition: service_healthy
"#;

/// (ok, failed, longest gap between two successes in ms) as the client counted them.
fn counts(stack: &Stack) -> (u64, u64, u64) {
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
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0) * 10,
    )
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
    let (ok0, fail0, _) = counts(&stack);
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
        let (ok, fail, gap) = counts(&stack);
        eprintln!(
            "round {round}: {} ok, {} failed so far, longest gap {gap} ms",
            ok - ok0,
            fail - fail0
        );
    }
    // The client keeps going after the last rollout, and counted every request.
    let (ok1, fail1, gap) = wait_for(
        "the client to keep answering",
        Duration::from_secs(10),
        || {
            let c = counts(&stack);
            (c.0 > ok0 + 20).then_some(c)
        },
    );
    eprintln!(
        "ten rollouts: {} requests, {} failed, longest gap {gap} ms",
        (ok1 + fail1) - (ok0 + fail0),
        fail1 - fail0
    );
    assert_eq!(
        fail1 - fail0,
        0,
        "no request may fail during start-first rollouts"
    );
}

#[test]
fn twenty_independent_services_are_started_at_once() {
    let mut compose = String::from("services:\n");
    for i in 1..=20 {
        compose.push_str(&format!(
            "  s{i}:\n    image: ${{IMAGE}}\n    init: true\n    command: [\"sh\", \"-c\", \"cut -d' ' -f1 /proc/uptime > /tmp/started; exec sleep 600\"]\n    x-gantry: {{min_ready: 5s}}\n"
        ));
    }
    let stack = Stack::with_file(&compose);
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0));
    let mut started: Vec<f64> = (1..=20)
        .map(|i| {
            let out = docker(&[
                "exec",
                &format!("{}-s{i}-1", stack.name),
                "cat",
                "/tmp/started",
            ]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("s{i}'s start time: {e}"))
        })
        .collect();
    started.sort_by(f64::total_cmp);
    // One after another, each start would come at least min_ready (5 s) after the one before:
    // one start in the first one's window. At once: several.
    let within_first = started.iter().filter(|t| **t < started[0] + 5.0).count();
    eprintln!(
        "start times (s after the first): {:?}",
        started
            .iter()
            .map(|t| ((t - started[0]) * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    assert!(
        within_first >= 3,
        "only {within_first} of 20 services started while the first was becoming ready"
    );
}
