//! Rollout strategies against the real daemon: a client container on the stack's network
//! calls an internal service by name every 20 ms while the service is replaced. (The client
//! resolves `api` through Docker's DNS with busybox's own `nslookup`, then fetches by address:
//! the test image's static busybox cannot use glibc's resolver.)
//! start-first must show no failed request; stop-first shows the gap (both are printed).
//! On a host port Docker publishes (`x-gantry: {edge: false}`), stop-first serves until the old
//! container exits, whether it drains on SIGTERM or ignores it and is killed at the end of its
//! grace period: proved by the order of a host client's requests and Docker's events (how
//! Gantry compares with `docker compose up -d` in failed requests and dark time is a speed
//! figure, not this test's).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use gantry_tests::{Call, Caller, DockerEvent, EventWatch, bin, docker, env, unique, wait_for};

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
          if [ -n "$$ip" ] && timeout 10 wget -q -O /dev/null "http://$$ip:8080/"; then
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
    assert_eq!(
        client["ready"],
        "running 2s without restart (Gantry's default: new containers count from the deploy's first start)"
    );
}

/// A service on a host port Docker publishes (`x-gantry: {edge: false}`: not the edge switch,
/// so a fixed port means stop-first, the path issue 10 compares with `docker compose up -d`)
/// whose process drains slowly on SIGTERM: it answers `draining` for 3 s before it exits.
/// Replaced stop-first, the old container must keep its networks and published port and serve
/// until it exits, as Compose does; only then does the new one start.
const PUBLISHED: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${PORT}:8080"]
    stop_grace_period: 10s
    x-gantry: {edge: false}
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

/// The same service whose PID 1 ignores SIGTERM (`trap '' TERM`, then `exec httpd`: the
/// ignored signal stays ignored across exec), as a JVM without a shutdown hook or a shell
/// without a handler: it serves until Docker kills it at the end of its 3 s grace period.
const IGNORES_TERM: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${PORT}:8080"]
    stop_grace_period: 3s
    x-gantry: {edge: false}
    command: ["sh", "-c", "trap '' TERM; mkdir -p /www && echo \"version ${VERSION:-1}\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 3
    deploy:
      update_config:
        order: stop-first
"#;

/// Deploys each published-port test makes (versions 2 to 4).
const DEPLOYS: u32 = 3;

/// How long after its stop signal the old container must still have answered: its process
/// lives 3 s after the signal (the drain's trap, Docker's grace period); a second of that is
/// left for the stamp of Docker's `kill` event, a moment after the signal, and the client's
/// pace on a loaded machine. A tolerance of the ordering, not a speed target.
const HELD: Duration = Duration::from_secs(2);

/// One stop-first deploy of a new version on a port Docker publishes: the containers replaced
/// and replacing, when it began and when the new version had answered (the window of the
/// client's requests it owns), and Docker's events of the stack's containers meanwhile.
#[derive(Debug)]
struct Deploy {
    version: u32,
    old: String,
    new: String,
    started: SystemTime,
    ended: SystemTime,
    events: Vec<DockerEvent>,
}

impl Deploy {
    /// When the old container got `action` (with `signal`, "" for none).
    fn old_at(&self, action: &str, signal: &str) -> Option<SystemTime> {
        self.events
            .iter()
            .find(|e| e.id == self.old && e.action == action && e.signal == signal)
            .map(|e| e.at)
    }

    /// The old container's event of `action` (with `signal`); panics with the timeline.
    fn old(&self, action: &str, signal: &str) -> SystemTime {
        self.old_at(action, signal).unwrap_or_else(|| {
            panic!(
                "version {}: no {action} {signal} event of the old container: {}",
                self.version,
                self.timeline()
            )
        })
    }

    /// Ends of the old container's healthchecks that passed (Docker runs them every second
    /// until it dies; one passes only while its httpd answers): a clock of Docker's own,
    /// beside the client's requests.
    fn old_passing_probes(&self) -> Vec<SystemTime> {
        self.events
            .iter()
            .filter(|e| e.id == self.old && e.action == "exec_die" && e.exit_code == "0")
            .map(|e| e.at)
            .collect()
    }

    /// What Docker did, from the deploy's start: `old kill 15 +0.10s, ..., new start +4.51s`.
    /// The old container's exit code, from its `die` event.
    fn old_exit(&self) -> Option<&str> {
        self.events
            .iter()
            .find(|e| e.id == self.old && e.action == "die")
            .map(|e| e.exit_code.as_str())
    }

    fn timeline(&self) -> String {
        self.events
            .iter()
            .filter(|e| !e.action.starts_with("exec_") && !e.action.starts_with("health_"))
            .map(|e| {
                format!(
                    "{} {}{}{} +{:.2}s",
                    if e.id == self.old { "old" } else { "new" },
                    e.action,
                    if e.signal.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", e.signal)
                    },
                    if e.exit_code.is_empty() {
                        String::new()
                    } else {
                        format!(" exit {}", e.exit_code)
                    },
                    e.at.duration_since(self.started)
                        .unwrap_or_default()
                        .as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The service on a fresh port Docker publishes (`x-gantry: {edge: false}`), deployed by
/// Gantry.
struct Published {
    stack: Stack,
    port: u16,
}

impl Published {
    /// `compose` at version 1, answering on its port, published by Docker, not by the edge
    /// switch.
    fn new(compose: &str) -> Self {
        let stack = Stack::new();
        std::fs::write(stack.dir.path().join("compose.yaml"), compose).unwrap();
        let side = Self {
            stack,
            port: gantry_tests::free_port(),
        };
        side.up(1);
        let url = format!("http://127.0.0.1:{}/", side.port);
        wait_for("the published page", Duration::from_secs(20), || {
            gantry_tests::http_get(&url).filter(|(code, _)| *code == 200)
        });
        let bindings = gantry_tests::inspect(&side.web(), "{{json .HostConfig.PortBindings}}");
        assert!(
            bindings.contains(&format!("\"HostPort\":\"{}\"", side.port)),
            "Docker publishes the port: {bindings}"
        );
        let routed = Command::new("nft")
            .args([
                "list",
                "chain",
                "ip",
                "gantry",
                &format!("g/{}/web", side.stack.name),
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(!routed, "x-gantry.edge: false leaves the port to Docker");
        side
    }

    fn web(&self) -> String {
        format!("{}-web-1", self.stack.name)
    }

    /// Deploys `version`.
    fn up(&self, version: u32) {
        let port = format!("PORT={}", self.port);
        let version = format!("VERSION={version}");
        let out = self.stack.deploy(&[&port, &version]);
        assert_eq!(out.status.code(), Some(0));
    }

    /// Deploys `version` while `client` calls; returns once Docker reported the old
    /// container's death and the new one's start, and the new version answered a request
    /// sent after that death.
    fn deploy(&self, version: u32, client: &Caller) -> Deploy {
        let old = gantry_tests::inspect(&self.web(), "{{.Id}}");
        let watch = EventWatch::start(&[&format!(
            "label=com.docker.compose.project={}",
            self.stack.name
        )]);
        let started = SystemTime::now();
        self.up(version);
        let new = gantry_tests::inspect(&self.web(), "{{.Id}}");
        assert_ne!(new, old, "version {version}: the container was replaced");
        let died = watch.wait_for(
            "the old container's death and the new one's start",
            Duration::from_secs(20),
            |events| {
                let died = events.iter().find(|e| e.id == old && e.action == "die")?;
                events
                    .iter()
                    .any(|e| e.id == new && e.action == "start")
                    .then_some(died.at)
            },
        );
        let want = format!("version {version}");
        client.wait_for(&want, Duration::from_secs(20), |calls| {
            calls
                .iter()
                .any(|c| c.sent > died && c.answer.as_deref() == Some(want.as_str()))
                .then_some(())
        });
        Deploy {
            version,
            old,
            new,
            started,
            ended: SystemTime::now(),
            events: watch.stop(),
        }
    }
}

/// Deploys versions 2..=[`DEPLOYS`]+1 of `compose` with Gantry, a host client opening a new
/// connection every 20 ms throughout; returns the deploys and the client's requests.
fn deploys(compose: &str) -> (Vec<Deploy>, Vec<Call>) {
    let side = Published::new(compose);
    let client = Caller::start(
        &format!("http://127.0.0.1:{}/", side.port),
        Duration::from_millis(20),
    );
    client.wait_for(
        "the client's first answer",
        Duration::from_secs(10),
        |calls| {
            calls
                .iter()
                .any(|c| c.answer.as_deref() == Some("version 1"))
                .then_some(())
        },
    );
    let deploys: Vec<Deploy> = (2..=DEPLOYS + 1).map(|v| side.deploy(v, &client)).collect();
    (deploys, client.finish())
}

/// What every stop-first deploy on a published port must show, from the order of the client's
/// requests (one thread, one request at a time) and Docker's events, where `old_body` says
/// whether an answer is the old container's:
/// - it kept its published port and served until its process was gone: every request of the
///   deploy before its last answer was answered, by it, and that last answer came at least
///   [`HELD`] after its stop signal (its process lives 3 s after it: the drain's trap, or
///   Docker's grace period). The client's own order is the clock here, not Docker's events:
///   Docker stamps `die`, a probe's `exec_die` or its SIGKILL when it handles them, a moment
///   after the process they speak of, which under load let a request cut by the kill look
///   earlier than the event;
/// - it answered throughout: after its stop signal, and between every two of its passing
///   healthchecks from then on (Docker's probes, a second apart, are the clock);
/// - the new container started only after the old one died (stop-first), and only the new
///   version answers requests sent after that death.
fn served_until_it_exited(d: &Deploy, calls: &[Call], old_body: impl Fn(&str) -> bool) {
    let v = d.version;
    let (term, died) = (d.old("kill", "15"), d.old("die", ""));
    let new_start = d
        .events
        .iter()
        .find(|e| e.id == d.new && e.action == "start")
        .map(|e| e.at)
        .unwrap_or_else(|| panic!("version {v}: the new container's start: {}", d.timeline()));
    assert!(
        died < new_start,
        "version {v}: the new container started before the old one died: {}",
        d.timeline()
    );
    let probes: Vec<SystemTime> = d
        .old_passing_probes()
        .into_iter()
        .filter(|t| *t > term)
        .collect();
    let mine: Vec<&Call> = calls
        .iter()
        .filter(|c| c.sent >= d.started && c.sent <= d.ended)
        .collect();
    let last_old = mine
        .iter()
        .rposition(|c| c.answer.as_deref().is_some_and(&old_body))
        .unwrap_or_else(|| {
            panic!(
                "version {v}: no answer from the old container: {}",
                d.timeline()
            )
        });
    let after_term = |t: SystemTime| t.duration_since(term).map_or(0, |t| t.as_millis());
    assert!(
        mine[last_old].sent >= term + HELD,
        "version {v}: the old container's last answer came {} ms after its SIGTERM, it stopped \
         serving before its process was gone: {}",
        after_term(mine[last_old].sent),
        d.timeline()
    );
    let failed: Vec<u128> = mine[..last_old]
        .iter()
        .filter(|c| c.answer.is_none())
        .map(|c| after_term(c.ended))
        .collect();
    assert!(
        failed.is_empty(),
        "version {v}: requests failed {failed:?} ms after the SIGTERM, while the old container \
         still served: {}",
        d.timeline()
    );
    let foreign: Vec<&str> = mine[..last_old]
        .iter()
        .filter_map(|c| c.answer.as_deref())
        .filter(|a| !old_body(a))
        .collect();
    assert!(
        foreign.is_empty(),
        "version {v}: answers not from the old container while it served: {foreign:?}"
    );
    let old_answers: Vec<SystemTime> = mine
        .iter()
        .filter(|c| c.sent > term && c.answer.as_deref().is_some_and(&old_body))
        .map(|c| c.ended)
        .collect();
    eprintln!(
        "version {v}: {} answers of the old container after its SIGTERM, {} passing healthchecks \
         of it meanwhile; {}",
        old_answers.len(),
        probes.len(),
        d.timeline()
    );
    assert!(
        !old_answers.is_empty(),
        "version {v}: no answer from the old container after its stop signal: {}",
        d.timeline()
    );
    for pair in probes.windows(2) {
        assert!(
            old_answers.iter().any(|t| *t > pair[0] && *t < pair[1]),
            "version {v}: the old container did not answer between two of its healthchecks \
             after its SIGTERM: {}",
            d.timeline()
        );
    }
    let new = format!("version {v}");
    let after: Vec<&str> = mine
        .iter()
        .filter(|c| c.sent > died)
        .filter_map(|c| c.answer.as_deref())
        .filter(|a| *a != new)
        .collect();
    assert!(
        after.is_empty(),
        "version {v}: requests sent after the old container died were answered by {after:?}"
    );
}

#[test]
fn stop_first_on_a_published_port_serves_until_the_old_container_exits() {
    let (deploys, calls) = deploys(PUBLISHED);
    for d in &deploys {
        let v = d.version;
        // It drained to its end: SIGTERM alone, then `exit 0` from its trap after 3 s (killed
        // at the end of a grace cut short, it would exit 137).
        let signals: Vec<&str> = d
            .events
            .iter()
            .filter(|e| e.id == d.old && e.action == "kill")
            .map(|e| e.signal.as_str())
            .collect();
        assert_eq!(signals, ["15"], "version {v}: {}", d.timeline());
        let exit = d.old_exit();
        assert_eq!(exit, Some("0"), "version {v}: {}", d.timeline());
        // Throughout its drain it served on its published port, answering `draining`
        // (before issue 10's first step, the port was dark for the whole drain and the new
        // start).
        let old = format!("version {}", v - 1);
        served_until_it_exited(d, &calls, |a| a == old || a == "draining");
        let draining = calls
            .iter()
            .filter(|c| c.sent >= d.started && c.sent <= d.ended)
            .filter(|c| c.answer.as_deref() == Some("draining"))
            .count();
        assert!(
            draining > 0,
            "version {v}: the old container never answered while it drained: {}",
            d.timeline()
        );
    }
}

#[test]
fn stop_first_on_a_published_port_a_process_ignoring_sigterm_serves_until_it_is_killed() {
    let (deploys, calls) = deploys(IGNORES_TERM);
    for d in &deploys {
        let v = d.version;
        let (term, killed) = (d.old("kill", "15"), d.old("kill", "9"));
        // It ignored its stop signal: Docker killed it at the end of its 3 s grace period
        // (both times Docker's, from its events).
        let held = killed.duration_since(term).unwrap_or_default();
        assert!(
            held >= Duration::from_millis(2800),
            "version {v}: the old container lived its 3 s grace after SIGTERM ({} ms): {}",
            held.as_millis(),
            d.timeline()
        );
        let exit = d.old_exit();
        assert_eq!(exit, Some("137"), "version {v}: {}", d.timeline());
        // All the while it served on its published port, version `v - 1`, until it was
        // killed.
        let old = format!("version {}", v - 1);
        served_until_it_exited(d, &calls, |a| a == old);
    }
}
