//! Rollout strategies against the real daemon: a client container on the stack's network
//! calls an internal service by name every 20 ms while the service is replaced. (The client
//! resolves `api` through Docker's DNS with busybox's own `nslookup`, then fetches by address:
//! the test image's static busybox cannot use glibc's resolver.)
//! start-first must show no failed request; stop-first shows the gap (both are printed).
//! On a host port Docker publishes (`x-gantry: {edge: false}`), stop-first serves until the old
//! container exits, whether it drains on SIGTERM or ignores it and is killed at the end of its
//! grace period, and fails no more requests a deploy than `docker compose up -d`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// The bound: stop-first must never be worse than `docker compose up -d` (issue 10). Issue 10
/// measured Compose on this path (a busybox httpd on `127.0.0.1:PORT:8080` with a
/// healthcheck, 5 deploys, a host client opening a new connection every 20 ms as the one
/// here): 44 failed requests (8.8 a deploy) and a longest gap of 1.2 s. Those figures are the
/// machine's as much as the tool's: both tools do the same (create the new container, stop the
/// old one, remove it, rename the new one, start it: the timelines of Docker's events printed
/// below match to within a few hundred ms) and the port is dark from the old container's death
/// to the new one's start, Docker's work. On the 2-core test machine under load, Compose itself
/// failed 16 to 34 requests a deploy, dark 1.3 to 1.7 s, so a fixed 9 would fail both tools.
/// Compose therefore runs beside Gantry in the test, on the same stack with the same kind of
/// client, deploys alternating between the tools, and per deploy (the median of three, so that
/// a stall of the machine during one deploy decides nothing) Gantry may be dark at most
/// [`MARGIN_GAP`] longer than Compose, and fail at most half as many requests again plus
/// [`MARGIN_REQUESTS`]: how many requests fail in one dark second depends on how long each
/// takes to fail on a loaded machine (the same 1.5 s gap cost 16 requests in one deploy and 24
/// in the next), so the count has the wider allowance; the gap is the measure. Both are far
/// below what a Gantry that darkened the port before the old container's exit would add (3 s
/// here, 11.2 s in issue 10), which each test also rules out directly, from Docker's events.
const MARGIN_REQUESTS: usize = 3;
const MARGIN_GAP: Duration = Duration::from_millis(250);
/// Deploys each tool makes (versions 2 to 4).
const DEPLOYS: u32 = 3;

/// One request of a host client: when it ended (wall clock, to set beside Docker's events)
/// and the body of a 200 answer, or `None` for a failed request.
type Answer = (SystemTime, Option<String>);

/// A host client opening a new connection every 20 ms on a thread.
struct Client {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<Answer>>,
}

impl Client {
    fn start(port: u16) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = {
            let stop = std::sync::Arc::clone(&stop);
            let url = format!("http://127.0.0.1:{port}/");
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let answer = gantry_tests::http_get(&url)
                        .filter(|(code, _)| *code == 200)
                        .map(|(_, body)| body.trim().to_string());
                    seen.push((SystemTime::now(), answer));
                    std::thread::sleep(Duration::from_millis(20));
                }
                seen
            })
        };
        Self { stop, handle }
    }

    fn finish(self) -> Vec<Answer> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Gantry,
    Compose,
}

/// One deploy of a new version: the container it replaced, when it started, and when the new
/// version answered (plus 300 ms): the window its failed requests are counted in; and Docker's
/// events of the stack's containers meanwhile.
#[derive(Debug)]
struct Deploy {
    old: String,
    started: SystemTime,
    ended: SystemTime,
    events: Vec<Event>,
}

impl Deploy {
    /// When the old container got `action` (with `signal`, "" for none).
    fn old_at(&self, action: &str, signal: &str) -> Option<SystemTime> {
        self.events
            .iter()
            .find(|e| e.id == self.old && e.action == action && e.signal == signal)
            .map(|e| e.at)
    }

    /// What Docker did, from the deploy's start: `old kill 15 +0.10s, ..., new start +4.51s`.
    fn timeline(&self) -> String {
        self.events
            .iter()
            .filter(|e| !e.action.starts_with("exec_") && !e.action.starts_with("health_"))
            .map(|e| {
                format!(
                    "{} {}{} +{:.2}s",
                    if e.id == self.old { "old" } else { "new" },
                    e.action,
                    if e.signal.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", e.signal)
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

/// A container's event: its id, the action (`kill`, `die`...), its `signal` attribute, when.
#[derive(Debug)]
struct Event {
    id: String,
    action: String,
    signal: String,
    at: SystemTime,
}

/// `docker events` of a compose project's containers from now on, until [`Events::stop`].
/// (Streamed, not read afterwards: dockerd keeps only its last 256 events, fewer than the
/// healthchecks of the tests running beside this one make in a few seconds.)
struct Events(std::process::Child);

impl Events {
    fn watch(project: &str) -> Self {
        let e = env();
        let mut cmd = Command::new(e.vars.get("DOCKER_BIN").map_or("docker", String::as_str));
        if let Some(host) = e.vars.get("DOCKER_HOST") {
            cmd.env("DOCKER_HOST", host);
        }
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let child = cmd
            .args(["events", "--since"])
            .arg(format!("{}.{:09}", since.as_secs(), since.subsec_nanos()))
            .args(["--filter", "type=container", "--filter"])
            .arg(format!("label=com.docker.compose.project={project}"))
            .args(["--format", "{{json .}}"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run docker events");
        Self(child)
    }

    fn stop(mut self) -> Vec<Event> {
        let _ = self.0.kill();
        let out = self.0.wait_with_output().expect("docker events");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| Event {
                id: e["Actor"]["ID"].as_str().unwrap_or_default().to_owned(),
                action: e["Action"].as_str().unwrap_or_default().to_owned(),
                signal: e["Actor"]["Attributes"]["signal"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                at: UNIX_EPOCH + Duration::from_nanos(e["timeNano"].as_u64().unwrap_or(0)),
            })
            .collect()
    }
}

/// One tool's copy of the service, on its own port, with a client calling it.
struct Side {
    tool: Tool,
    stack: Stack,
    port: u16,
    deploys: Vec<Deploy>,
}

impl Side {
    /// `compose` at version 1 on a fresh port, deployed by `tool`, the port published by
    /// Docker (the path Compose takes), not by the edge switch.
    fn new(tool: Tool, compose: &str) -> Self {
        let stack = Stack::new();
        std::fs::write(stack.dir.path().join("compose.yaml"), compose).unwrap();
        let side = Self {
            tool,
            stack,
            port: gantry_tests::free_port(),
            deploys: Vec::new(),
        };
        side.up(1);
        let url = format!("http://127.0.0.1:{}/", side.port);
        wait_for("the published page", Duration::from_secs(20), || {
            gantry_tests::http_get(&url).filter(|(code, _)| *code == 200)
        });
        let bindings = gantry_tests::inspect(&side.web(), "{{json .HostConfig.PortBindings}}");
        assert!(
            bindings.contains(&format!("\"HostPort\":\"{}\"", side.port)),
            "{tool:?}: Docker publishes the port: {bindings}"
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

    /// Brings the service to `version` with this side's tool.
    fn up(&self, version: u32) {
        let port = format!("PORT={}", self.port);
        let version = format!("VERSION={version}");
        match self.tool {
            Tool::Gantry => {
                let out = self.stack.deploy(&[&port, &version]);
                assert_eq!(out.status.code(), Some(0));
            }
            Tool::Compose => {
                let out = Command::new(env().get("COMPOSE_BIN"))
                    .args(["-p", &self.stack.name, "-f"])
                    .arg(self.stack.dir.path().join("compose.yaml"))
                    .args(["up", "-d"])
                    .env("DOCKER_HOST", env().get("DOCKER_HOST"))
                    .env("IMAGE", env().get("GANTRY_TEST_IMAGE"))
                    .env("PORT", &port["PORT=".len()..])
                    .env("VERSION", &version["VERSION=".len()..])
                    .output()
                    .expect("run docker compose");
                assert!(
                    out.status.success(),
                    "docker compose up -d: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    /// Deploys `version` and waits until it answers.
    fn deploy(&mut self, version: u32) {
        let old = gantry_tests::inspect(&self.web(), "{{.Id}}");
        let events = Events::watch(&self.stack.name);
        let started = SystemTime::now();
        self.up(version);
        let url = format!("http://127.0.0.1:{}/", self.port);
        let want = format!("version {version}");
        wait_for(&want, Duration::from_secs(20), || {
            gantry_tests::http_get(&url).filter(|(_, body)| body.trim() == want)
        });
        std::thread::sleep(Duration::from_millis(300));
        self.deploys.push(Deploy {
            old,
            started,
            ended: SystemTime::now(),
            events: events.stop(),
        });
    }
}

/// Deploys versions 2..=[`DEPLOYS`]+1 of `compose` with Gantry and with Compose, alternating
/// (and which goes first), each side called by its own host client; returns both sides and
/// what their clients saw.
fn side_by_side(compose: &str) -> [(Side, Vec<Answer>); 2] {
    let mut gantry = Side::new(Tool::Gantry, compose);
    let mut compose = Side::new(Tool::Compose, compose);
    let clients = [Client::start(gantry.port), Client::start(compose.port)];
    std::thread::sleep(Duration::from_millis(500));
    for v in 2..=DEPLOYS + 1 {
        if v % 2 == 0 {
            gantry.deploy(v);
            compose.deploy(v);
        } else {
            compose.deploy(v);
            gantry.deploy(v);
        }
    }
    let [g, c] = clients;
    [(gantry, g.finish()), (compose, c.finish())]
}

/// The answers of `seen` within `d`'s window.
fn during<'a>(seen: &'a [Answer], d: &Deploy) -> Vec<&'a Answer> {
    seen.iter()
        .filter(|(t, _)| *t >= d.started && *t <= d.ended)
        .collect()
}

/// Failed requests and the longest time between two answers, per deploy.
fn per_deploy(side: &Side, seen: &[Answer]) -> Vec<(usize, Duration)> {
    side.deploys
        .iter()
        .map(|d| {
            let answers = during(seen, d);
            let failed = answers.iter().filter(|(_, a)| a.is_none()).count();
            let ok: Vec<SystemTime> = answers
                .iter()
                .filter(|(_, a)| a.is_some())
                .map(|(t, _)| *t)
                .collect();
            let gap = ok
                .windows(2)
                .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
                .max()
                .unwrap_or_default();
            (failed, gap)
        })
        .collect()
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

/// Gantry no worse than Compose per deploy (see [`MARGIN_REQUESTS`]).
fn no_worse_than_compose(what: &str, sides: &[(Side, Vec<Answer>); 2]) {
    let [(gantry, g_seen), (compose, c_seen)] = sides;
    let g = per_deploy(gantry, g_seen);
    let c = per_deploy(compose, c_seen);
    let show = |v: &[(usize, Duration)]| {
        v.iter()
            .map(|(f, gap)| format!("{f} failed, gap {} ms", gap.as_millis()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    eprintln!(
        "{what}, per deploy:\n  gantry:  {}\n  compose: {}\n  (issue 10's Compose: 8.8 failed \
         a deploy, longest gap 1,200 ms)",
        show(&g),
        show(&c)
    );
    for (side, _) in sides {
        for (i, d) in side.deploys.iter().enumerate() {
            eprintln!("  {:?} deploy {i}: {}", side.tool, d.timeline());
        }
    }
    let (g_failed, c_failed) = (
        median(g.iter().map(|x| x.0).collect()),
        median(c.iter().map(|x| x.0).collect()),
    );
    let (g_gap, c_gap) = (
        median(g.iter().map(|x| x.1).collect()),
        median(c.iter().map(|x| x.1).collect()),
    );
    assert!(
        g_failed <= c_failed + c_failed / 2 + MARGIN_REQUESTS,
        "{what}: Gantry failed {g_failed} requests a deploy, Compose {c_failed} (median of \
         {DEPLOYS})"
    );
    assert!(
        g_gap <= c_gap + MARGIN_GAP,
        "{what}: the port was dark {} ms a deploy with Gantry, {} ms with Compose (median of \
         {DEPLOYS})",
        g_gap.as_millis(),
        c_gap.as_millis()
    );
}

#[test]
fn stop_first_on_a_published_port_serves_until_the_old_container_exits() {
    let sides = side_by_side(PUBLISHED);
    let (gantry, seen) = &sides[0];
    for (i, d) in gantry.deploys.iter().enumerate() {
        let draining: Vec<SystemTime> = during(seen, d)
            .iter()
            .filter(|(_, a)| a.as_deref() == Some("draining"))
            .map(|(t, _)| *t)
            .collect();
        let span = match (draining.first(), draining.last()) {
            (Some(first), Some(last)) => last.duration_since(*first).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let (term, died) = match (d.old_at("kill", "15"), d.old_at("die", "")) {
            (Some(term), Some(died)) => (term, died),
            _ => panic!("deploy {i}: the old container's stop: {}", d.timeline()),
        };
        // (It stops httpd itself a moment before it exits.)
        let failed: Vec<u128> = during(seen, d)
            .iter()
            .filter(|(t, a)| a.is_none() && *t + Duration::from_millis(250) < died)
            .map(|(t, _)| t.duration_since(term).unwrap_or_default().as_millis())
            .collect();
        eprintln!(
            "deploy {i}: {} answered while draining, over {} ms; {}",
            draining.len(),
            span.as_millis(),
            d.timeline()
        );
        assert!(
            failed.is_empty(),
            "deploy {i}: requests failed {failed:?} ms after the SIGTERM, before the old \
             container exited"
        );
        // The old container served on its published port after its stop signal, through its
        // 3 s drain (before issue 10's first step, the port was dark for the whole drain and
        // the new start).
        assert!(
            draining.len() >= 10 && span >= Duration::from_millis(2500),
            "deploy {i}: the old container served on its published port through its drain \
             ({} answers while draining, over {} ms)",
            draining.len(),
            span.as_millis()
        );
    }
    no_worse_than_compose("stop-first, a process draining 3 s", &sides);
}

#[test]
fn stop_first_on_a_published_port_a_process_ignoring_sigterm_serves_until_it_is_killed() {
    let sides = side_by_side(IGNORES_TERM);
    let (gantry, seen) = &sides[0];
    for (i, d) in gantry.deploys.iter().enumerate() {
        let at = |action: &str, signal: &str| {
            d.old_at(action, signal).unwrap_or_else(|| {
                panic!(
                    "deploy {i}: no {action} {signal} event of the old container: {}",
                    d.timeline()
                )
            })
        };
        let (term, killed) = (at("kill", "15"), at("kill", "9"));
        let held = killed.duration_since(term).unwrap_or_default();
        // It ignored its stop signal: Docker killed it at the end of its 3 s grace period.
        assert!(
            held >= Duration::from_millis(2800),
            "deploy {i}: the old container lived its 3 s grace after SIGTERM ({} ms): {}",
            held.as_millis(),
            d.timeline()
        );
        // All the while it served on its published port: no request failed from its stop
        // signal to the end of its grace, when Docker sends SIGKILL (the `kill 9` event is
        // logged a moment after the signal, so the grace's end is the bound, not the event),
        // and it answered until it was killed.
        let old_version = format!("version {}", i + 1);
        let grace_end = term + Duration::from_secs(3);
        let answers: Vec<&Answer> = seen
            .iter()
            .filter(|(t, _)| *t >= term && *t <= grace_end)
            .collect();
        let failed: Vec<u128> = answers
            .iter()
            .filter(|(_, a)| a.is_none())
            .map(|(t, _)| t.duration_since(term).unwrap_or_default().as_millis())
            .collect();
        let last_old = seen
            .iter()
            .filter(|(_, a)| a.as_deref() == Some(old_version.as_str()))
            .map(|(t, _)| *t)
            .max()
            .expect("the old version answered");
        eprintln!(
            "deploy {i}: SIGTERM to SIGKILL {} ms; within the grace {} requests, failed at \
             {failed:?} ms; the last answer of {old_version} {} ms before the grace's end; {}",
            held.as_millis(),
            answers.len(),
            grace_end
                .duration_since(last_old)
                .unwrap_or_default()
                .as_millis(),
            d.timeline()
        );
        assert!(
            failed.is_empty(),
            "deploy {i}: the old container served until it was killed, but requests failed \
             {failed:?} ms after its SIGTERM"
        );
        assert!(
            answers.len() >= 20,
            "deploy {i}: the client called it throughout its grace ({} requests)",
            answers.len()
        );
        assert!(
            last_old + Duration::from_millis(500) >= grace_end,
            "deploy {i}: {old_version} answered until it was killed"
        );
    }
    no_worse_than_compose("stop-first, a process ignoring SIGTERM", &sides);
}
