//! Rollouts as fast as readiness allows, without a stall, against the real daemon.
//!
//! - A client container calls an internal service by name every 20 ms through ten start-first
//!   rollouts in a row: not one request may fail (the old container leaves Docker's DNS
//!   before its address goes away, see `agent/src/deploy/rollout.rs`), and no round may stall
//!   the client for a second (the longest time between two answers, per round).
//! - Twenty independent services deploy concurrently: each records when it started (the
//!   host's uptime, one clock for all containers) and must run `min_ready` (10 s) before it
//!   counts as ready, so one-after-another would start them at least 10 s apart: one start in
//!   the first one's 10 s. Started at once, at least 15 of the 20 start in it (how fast Docker
//!   creates and starts twenty containers on a busy machine decides the rest, see the test).

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
          if [ -f /tmp/reset ]; then gap=0; rm -f /tmp/reset; fi
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

/// (ok, failed, longest gap between two successes in ms since the last [`reset_gap`]) as the
/// client counted them.
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

/// Starts the client's longest gap over (its counts of requests go on); returns once the client
/// took it. The gap then still spans from the last answer before it, so a stall is never lost
/// between two rounds.
fn reset_gap(stack: &Stack) {
    let client = format!("{}-client-1", stack.name);
    assert!(
        docker(&["exec", &client, "touch", "/tmp/reset"])
            .status
            .success()
    );
    wait_for(
        "the client to reset its gap",
        Duration::from_secs(10),
        || {
            (!docker(&["exec", &client, "test", "-e", "/tmp/reset"])
                .status
                .success())
            .then_some(())
        },
    );
}

/// The longest gap a round may show between two answers. Issue 10's goal is 250 ms (checked by
/// `bench/deploy.sh` on a release build); this test runs the debug build, often on a loaded
/// 2-core CI machine, where a round without any stall still shows 60-300 ms (the client's
/// `nslookup` and `wget` processes, Docker's DNS answering slowly while dockerd reconnects
/// containers; docs/edge.md "Measured"). The stalls the issue is about are a connection to an
/// address that does not answer yet or any more waiting for its SYN to be sent again (the
/// kernel's first retransmission comes after 1 s): 1-2 s. A round under 1 s had none.
const MAX_GAP_MS: u64 = 1000;
/// The first round's bound: the first replacement after a cold deploy can still make the
/// client resolve the new address's MAC first, and nothing answers that before the new
/// interface is up, so that connection waits for the ARP request to be sent again, 1 s later
/// (the known limit in docs/edge.md, "Limits"; 1,040-1,050 ms in two of three debug-build runs
/// of `bench/deploy.sh` under load, 1,050 ms in one of three runs of this test, 2026-12-05,
/// where every other round stayed under 250 ms). A stall on top of it, or a 2 s one, still
/// fails.
const MAX_FIRST_GAP_MS: u64 = 1500;

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
    let mut gaps = Vec::new();
    for round in 1..=10 {
        reset_gap(&stack);
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
        // A few answers after the rollout, so a stall at its end counts in this round.
        let done = counts(&stack).0;
        let (ok, fail, gap) = wait_for(
            "the client's answers after the rollout",
            Duration::from_secs(10),
            || {
                let c = counts(&stack);
                (c.0 >= done + 5).then_some(c)
            },
        );
        eprintln!(
            "round {round}: {} ok, {} failed so far, longest gap {gap} ms",
            ok - ok0,
            fail - fail0
        );
        gaps.push(gap);
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
    // The last round's figure again, now that the client went on: a stall still open when the
    // round was read shows here.
    *gaps.last_mut().expect("ten rounds") = gap;
    let stalled: Vec<String> = gaps
        .iter()
        .enumerate()
        .filter(|&(i, &g)| g >= if i == 0 { MAX_FIRST_GAP_MS } else { MAX_GAP_MS })
        .map(|(i, g)| format!("round {}: {g} ms", i + 1))
        .collect();
    assert!(
        stalled.is_empty(),
        "the client stalled (a gap of {MAX_GAP_MS} ms or more; {MAX_FIRST_GAP_MS} ms in the first \
         round): {stalled:?}; every round's longest gap: {gaps:?}"
    );
}

/// `min_ready` of the twenty services: the window in which they must start.
const MIN_READY_S: u32 = 10;

#[test]
fn twenty_independent_services_are_started_at_once() {
    let mut compose = String::from("services:\n");
    for i in 1..=20 {
        compose.push_str(&format!(
            "  s{i}:\n    image: ${{IMAGE}}\n    init: true\n    command: [\"sh\", \"-c\", \"cut -d' ' -f1 /proc/uptime > /tmp/started; exec sleep 600\"]\n    x-gantry: {{min_ready: {MIN_READY_S}s}}\n"
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
    // One after another, each start would come at least min_ready after the one before: one
    // start in the first one's window (two if services went two at a time, and so on). At once,
    // only Docker spaces them: on the 2-core test machine at load 3, with the other test of
    // this file deploying beside it, the 20 started within 4.1 s, the 15th after 3.7 s; the
    // window is 10 s so a machine twice as slow still passes.
    let within_first = started
        .iter()
        .filter(|t| **t < started[0] + f64::from(MIN_READY_S))
        .count();
    eprintln!(
        "start times (s after the first): {:?}",
        started
            .iter()
            .map(|t| ((t - started[0]) * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    assert!(
        within_first >= 15,
        "only {within_first} of 20 services started while the first was becoming ready \
         ({MIN_READY_S} s)"
    );
}
