//! `x-gantry.health` probes during a deploy, against real containers (busybox httpd serving a
//! file, probed from the host): a JSON pointer that does not match keeps the release from going
//! green (rolled back, exit 2) and the report carries the body's first 200 bytes, never byte
//! 201; a startup deadline lets a slow starter pass where the readiness deadline alone fails.
//! The service is replaced stop-first, so a new release that never passes is rolled back
//! (exit 2); start-first, the old container is never touched and the deploy fails with exit 1
//! (docs/exit-codes.md).

use std::time::{Duration, Instant};

use gantry_tests::stack::Stack;
use gantry_tests::{stderr, stdout};

/// `api` serves `$BODY` at /health on 8080 after `$SLOW` seconds; `health` is its
/// `x-gantry.health` (YAML flow mapping, without `http` and `port`).
fn stack_text(body: &str, health: &str) -> String {
    format!(
        r#"services:
  api:
    image: ${{IMAGE}}
    init: true
    stop_signal: SIGKILL
    command: ["sh", "-c", "mkdir -p /www && printf '%s' \"$$BODY\" > /www/health && sleep $${{SLOW:-0}} && exec httpd -f -p 8080 -h /www"]
    environment:
      BODY: '{body}'
      SLOW: ${{SLOW:-0}}
    deploy:
      update_config:
        order: stop-first
    x-gantry:
      health: {{http: /health, port: 8080, {health}}}
"#
    )
}

fn report(out: &std::process::Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

#[test]
fn json_pointer_mismatch_rolls_back_and_reports_only_the_first_200_bytes() {
    let health = "json: {pointer: /status, equals: ok}, passes: 2, interval: 200ms, deadline: 4s";
    let stack = Stack::with_file(&stack_text(r#"{"status":"ok"}"#, health));
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    let api = format!("{}-api-1", stack.name);

    // 200 with {"status":"degraded"}, padded so that byte 201 onwards is a marker.
    let head = r#"{"status":"degraded","pad":""#;
    let body = format!(
        "{head}{}TAIL-BEYOND-200{}\"}}",
        "a".repeat(200 - head.len()),
        "b".repeat(300)
    );
    assert_eq!(&body[200..215], "TAIL-BEYOND-200");
    stack.write(&stack_text(&body, health));
    let out = stack.deploy(&[]);
    let text = report(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(
        text.contains(r#"/status is "degraded", not "ok""#),
        "{text}"
    );
    assert!(
        text.contains(&body[..200]),
        "the body's first 200 bytes: {text}"
    );
    assert!(!text.contains("TAIL-BEYOND"), "byte 201 leaked: {text}");
    assert!(!text.contains("bbbb"), "{text}");
    // The previous release serves again.
    let env = gantry_tests::inspect(&api, "{{range .Config.Env}}{{println .}}{{end}}");
    assert!(env.contains(r#"BODY={"status":"ok"}"#), "{env}");
    assert_eq!(gantry_tests::inspect(&api, "{{.State.Running}}"), "true");
}

#[test]
fn a_slow_starter_passes_within_its_startup_deadline_not_without_it() {
    let readiness = "body: ok, passes: 2, interval: 250ms, deadline: 2s";
    let with_startup = format!("{readiness}, startup: {{deadline: 30s}}");
    let stack = Stack::with_file(&stack_text("ok", &with_startup));
    let t0 = Instant::now();
    let out = stack.deploy(&["--var", "SLOW=5"]);
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", report(&out));
    // httpd listens only 5 s after the container starts, which no event marks: a lower bound
    // on a clock started before the deploy and read after it, which cannot be reached early.
    assert!(
        took >= Duration::from_secs(5),
        "ready only once httpd serves, after 5 s (took {took:?})"
    );
    eprintln!("slow starter ready after {took:?} (readiness deadline 2 s, startup 30 s)");

    // The same slow start without a startup deadline misses the 2 s readiness deadline.
    stack.write(&stack_text("ok", readiness));
    let out = stack.deploy(&["--var", "SLOW=6"]);
    let text = report(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(text.contains("was not ready within 2s"), "{text}");

    // And with it, but a starter slower than the startup deadline, the message says so.
    let short = format!("{readiness}, startup: {{deadline: 3s}}");
    stack.write(&stack_text("ok", &short));
    let out = stack.deploy(&["--var", "SLOW=20"]);
    let text = report(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(text.contains("startup deadline 3s"), "{text}");
}

#[test]
fn bad_probe_settings_are_refused_naming_the_key() {
    for (health, key) in [
        (
            "json: {pointer: status, equals: ok}",
            "x-gantry.health.json.pointer",
        ),
        ("json: {pointer: /status}", "x-gantry.health.json.equals"),
        ("bdy: ok", "x-gantry.health.bdy"),
        ("startup: {dedline: 2m}", "x-gantry.health.startup.dedline"),
    ] {
        let stack = Stack::with_file(&stack_text("ok", health));
        let out = stack.deploy(&[]);
        let text = report(&out);
        assert_eq!(out.status.code(), Some(65), "{health}: {text}");
        assert!(text.contains(key), "{health}: {text}");
        assert!(stack.containers().is_empty(), "nothing started: {health}");
    }
}
