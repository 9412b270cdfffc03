//! Rollout strategies against the real daemon: a client container on the stack's network
//! calls an internal service by name every 20 ms while the service is replaced. (The client
//! resolves `api` through Docker's DNS with busybox's own `nslookup`, then fetches by address:
//! the test image's static busybox cannot use glibc's resolver.)
//! start-first must show no failed request; stop-first shows the gap (both are printed).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use gantry_tests::{bin, docker, env, unique, wait_for};

const STACK: &str = r#"
services:
  api:
    image: ${IMAGE}
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo \"version ${VERSION:-1}\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
    deploy:
      update_config:
        order: ${ORDER:-start-first}
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

struct Stack {
    name: String,
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Stack {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), STACK).unwrap();
        Self {
            name: unique("roll"),
            dir,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn deploy(&self, vars: &[&str]) -> Output {
        let file = self.dir.path().join("compose.yaml");
        let mut cmd = Command::new(bin("gantry"));
        cmd.args(["deploy", &self.name, "-f"])
            .arg(&file)
            .env("DOCKER_HOST", env().get("DOCKER_HOST"))
            .env("GANTRY_STATE_DIR", self.state.path())
            .env("GANTRY_LOCAL", "1")
            .env("IMAGE", env().get("GANTRY_TEST_IMAGE"));
        for v in vars {
            cmd.args(["--var", v]);
        }
        let out = cmd.output().expect("run gantry");
        eprintln!(
            "--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// (ok, failed, longest gap between successes in ms) the client has counted so far.
    fn counts(&self) -> (u64, u64, u64) {
        let client = format!("{}-client-1", self.name);
        let out = docker(&["exec", &client, "cat", "/tmp/counts"]);
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
}

impl Drop for Stack {
    fn drop(&mut self) {
        gantry_tests::remove_project(&self.name);
    }
}

/// Deploys v1, lets the client run, deploys v2 with `order`; returns the failed requests
/// counted across the v2 deploy, the requests made meanwhile, and the longest gap between
/// two successful responses (ms).
fn failed_requests_during_deploy(order: &str) -> (u64, u64, u64) {
    let stack = Stack::new();
    let order_var = format!("ORDER={order}");
    assert_eq!(stack.deploy(&[&order_var]).status.code(), Some(0));
    wait_for(
        "the client's first requests",
        Duration::from_secs(20),
        || (stack.counts().0 > 10).then_some(()),
    );
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
            (docker(&["exec", &client, "test", "-f", "/tmp/reset"])
                .status
                .code()
                == Some(1))
            .then_some(())
        },
    );
    let (ok0, fail0, _) = stack.counts();
    let out = stack.deploy(&[&order_var, "VERSION=2"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("api: recreating"), "{text}");
    // The client itself was not touched by the deploy: it goes on answering.
    let (ok1, fail1, gap1) = wait_for(
        "the client to keep running",
        Duration::from_secs(10),
        || {
            let c = stack.counts();
            (c.0 > ok0).then_some(c)
        },
    );
    let api = format!("{}-api-1", stack.name);
    let page = docker(&["exec", &api, "cat", "/www/index.html"]);
    assert_eq!(String::from_utf8_lossy(&page.stdout).trim(), "version 2");
    (fail1 - fail0, (ok1 + fail1) - (ok0 + fail0), gap1)
}

#[test]
fn start_first_serves_every_request_and_stop_first_shows_the_gap() {
    assert!(Path::new(&bin("gantry")).exists());
    let (start_failed, start_total, start_gap) = failed_requests_during_deploy("start-first");
    let (stop_failed, stop_total, stop_gap) = failed_requests_during_deploy("stop-first");
    eprintln!(
        "start-first: {start_failed} failed of {start_total} requests, longest gap {start_gap} ms; \
         stop-first: {stop_failed} failed of {stop_total}, longest gap {stop_gap} ms"
    );
    assert_eq!(start_failed, 0, "start-first: no failed request");
    assert!(
        stop_failed > 0 || stop_gap > start_gap + 500,
        "stop-first leaves a gap the client sees"
    );
}

#[test]
fn plan_says_which_strategy_and_readiness_rule_apply_and_why() {
    let stack = Stack::new();
    let file = stack.dir.path().join("compose.yaml");
    let out = Command::new(bin("gantry"))
        .args(["plan", &stack.name, "--output", "json", "-f"])
        .arg(&file)
        .env("DOCKER_HOST", env().get("DOCKER_HOST"))
        .env("GANTRY_STATE_DIR", stack.state.path())
        .env("GANTRY_LOCAL", "1")
        .env("IMAGE", env().get("GANTRY_TEST_IMAGE"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let api = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "api")
        .unwrap()
        .clone();
    assert_eq!(api["strategy"], "start-first");
    assert_eq!(api["strategy_reason"], "deploy.update_config.order");
    assert_eq!(api["ready"], "docker healthcheck, 1 pass(es)");
    let client = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "client")
        .unwrap()
        .clone();
    assert_eq!(client["ready"], "running 2s without restart");
}

/// A service on a published host port whose process drains slowly on SIGTERM (it answers
/// `draining` for 3 s before it exits). Replaced stop-first, the old container must keep its
/// networks and published port and serve until it exits, as `docker compose up -d` does; only
/// then does the new one start.
const PUBLISHED: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${PORT}:8080"]
    stop_grace_period: 10s
    command:
      - sh
      - -c
      - |
        mkdir -p /www && echo "version ${VERSION:-1}" > /www/index.html
        httpd -f -p 8080 -h /www & pid=$$!
        trap 'echo draining > /www/index.html; sleep 3; kill $$pid; exit 0' TERM
        wait $$pid
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
    deploy:
      update_config:
        order: stop-first
"#;

#[test]
fn stop_first_on_a_published_port_serves_until_the_old_container_exits() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;

    let stack = Stack::new();
    std::fs::write(stack.dir.path().join("compose.yaml"), PUBLISHED).unwrap();
    let port = gantry_tests::free_port();
    let port_var = format!("PORT={port}");
    assert_eq!(stack.deploy(&[&port_var]).status.code(), Some(0));
    let url = format!("http://127.0.0.1:{port}/");
    wait_for("the published page", Duration::from_secs(20), || {
        gantry_tests::http_get(&url).filter(|(code, _)| *code == 200)
    });

    // A host client opening a new connection every 20 ms: (when, body or None).
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        let url = url.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = gantry_tests::http_get(&url)
                    .filter(|(code, _)| *code == 200)
                    .map(|(_, body)| body.trim().to_string());
                seen.push((t0.elapsed(), answer));
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    let out = stack.deploy(&[&port_var, "VERSION=2"]);
    assert_eq!(out.status.code(), Some(0));
    wait_for("version 2 on the port", Duration::from_secs(10), || {
        gantry_tests::http_get(&url).filter(|(_, body)| body.trim() == "version 2")
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = client.join().unwrap();

    let draining = seen
        .iter()
        .filter(|(_, a)| a.as_deref() == Some("draining"))
        .count();
    let failed = seen.iter().filter(|(_, a)| a.is_none()).count();
    let ok: Vec<Duration> = seen
        .iter()
        .filter(|(_, a)| a.is_some())
        .map(|(t, _)| *t)
        .collect();
    let gap = ok.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    eprintln!(
        "stop-first on a published port: {} requests, {failed} failed, {draining} answered \
         while draining, longest gap {} ms",
        seen.len(),
        gap.as_millis()
    );
    assert!(
        draining >= 10,
        "the old container served on its published port after its stop signal \
         ({draining} answers while draining)"
    );
    // Before this was fixed the port was dark for the whole drain (3 s) and the new start.
    assert!(
        gap < Duration::from_millis(2500),
        "longest gap {} ms: only the new container's start, not the old one's drain",
        gap.as_millis()
    );
}
