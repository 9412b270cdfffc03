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
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let out = docker(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        docker(&["network", "rm", &format!("{}_default", self.name)]);
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
    std::thread::sleep(Duration::from_millis(500));
    let (ok1, fail1, gap1) = stack.counts();
    // The client itself was not touched by the deploy.
    assert!(ok1 > ok0, "client kept running");
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
