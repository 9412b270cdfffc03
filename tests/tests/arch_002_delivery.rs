//! Architecture 002 (the Kubernetes delivery-service), its team's day on `compose/delivery`,
//! against real Docker and the kernel's edge switch (root and `nft`: the canary needs it).
//!
//! The document runs delivery-api (replicas behind a Service, liveness/readiness/startup
//! probes), delivery-outbox-relay and delivery-event-projector, ships through Argo Rollouts with
//! a canary (5 % for 30 min, auto-rollback on errors, then 25 %, 50 %, 100 %), keeps database
//! migrations forward-only and rolls back by re-pinning the previous image in one command. Here:
//! the three Deployments are services of one stack (`api` with 3 replicas, staging's count);
//! readiness and startup are the `x-gantry.health` probe on `/readyz` (`startup.deadline: 60s`
//! for 30 × 2 s), liveness the Docker healthcheck on `/healthz` (15 s, timeout 3 s); the
//! rolling update is `parallelism: 1`, start-first (maxUnavailable 0, maxSurge 1); the canary is
//! `x-gantry.canary` with the document's steps, its 30-minute pause moved on by `gantry promote`
//! as a release manager would; the migration is a one-shot job.
//!
//! What is a stand-in, and why: the apps are busybox `sh` scripts (`compose/delivery/app/`) and
//! a release is the `RELEASE` variable instead of a new image tag (the apps answer `/` with it);
//! the migration's schema history is a file on a bind mount instead of PostgreSQL's
//! `schema_migrations` table; "elevated error rate" is the canary's `/readyz` failing
//! (Gantry watches the canary's probe and restarts, not request metrics); one host, not a
//! cluster (HPA, NetworkPolicy, Istio and the regions have no counterpart here).
//!
//! The day: deploy r1 (the migration runs once; a no-op redeploy runs nothing); release r2 as a
//! canary, promoted 5 → 25 → 50 → 100 %, then the other replicas one at a time; a release that
//! fails to boot (rolled back, exit 2, its forward migration stays applied); a canary whose
//! readiness fails is aborted by itself (exit 2), another by hand (`gantry abort`, exit 2);
//! `gantry rollback` to r1 (no migration runs).
//! Throughout, a watcher checks that never fewer than N-1 replicas are ready and never more
//! than N+1 run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use gantry_tests::arch_exec::{copy_dir, example_dir, example_stack, get_from};
use gantry_tests::daemon::Daemon;
use gantry_tests::stack::Stack;
use gantry_tests::{docker, free_port, http_get, inspect, path_str, stderr, stdout, wait_for};

const REPLICAS: usize = 3;

/// Samples of the api replicas around a rollout: (running, ready) pairs, one taken before it
/// starts, as many as the machine allows while it runs, and one once it has ended.
struct Watch {
    project: String,
    /// Taken by [`Watch::start`], so before the caller starts the rollout.
    before: (usize, usize),
    stop: Arc<AtomicBool>,
    during: Arc<Mutex<Vec<(usize, usize)>>>,
    thread: Option<JoinHandle<()>>,
}

/// The timeout of the watch's `/readyz` probes: on a loaded machine an answer may take more
/// than a second, and a probe timing out counts a ready replica as unready.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Running api containers of `project` and how many answer `/readyz` with 200 right now. The
/// containers are probed at once, each on its own thread, so a sample shows them at one moment
/// (one after the other, a slow answer would put the next probe seconds later, after the
/// rollout moved on).
fn replicas(project: &str) -> (usize, usize) {
    let out = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=api",
    ]);
    let ids: Vec<String> = stdout(&out).split_whitespace().map(str::to_owned).collect();
    if ids.is_empty() {
        return (0, 0);
    }
    let mut args = vec![
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
    ];
    args.extend(ids.iter().map(String::as_str));
    let ips = stdout(&docker(&args));
    let ready = std::thread::scope(|scope| {
        let probes: Vec<_> = ips
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(|ip| {
                scope.spawn(move || {
                    matches!(get_from(ip, 8080, "/readyz", PROBE_TIMEOUT), Some((200, _)))
                })
            })
            .collect();
        probes
            .into_iter()
            .map(|p| p.join().unwrap())
            .filter(|ready| *ready)
            .count()
    });
    (ids.len(), ready)
}

impl Watch {
    /// Takes the first sample, then samples on a thread until [`Watch::check`]. Called before
    /// the rollout starts.
    fn start(project: &str) -> Self {
        let before = replicas(project);
        let stop = Arc::new(AtomicBool::new(false));
        let during = Arc::new(Mutex::new(Vec::new()));
        let (s, v, p) = (Arc::clone(&stop), Arc::clone(&during), project.to_owned());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let sample = replicas(&p);
                v.lock().unwrap().push(sample);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            project: project.to_owned(),
            before,
            stop,
            during,
            thread: Some(thread),
        }
    }

    /// Called once the rollout has ended: stops the sampling, takes the last sample, and
    /// checks every sample: never fewer than N-1 ready, never more than N+1 running. The
    /// samples span the whole rollout whatever their number (on a loaded machine a sample
    /// takes long): the first was taken before it started, the last after it ended.
    fn check(mut self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let during = self.during.lock().unwrap().clone();
        let after = replicas(&self.project);
        let samples: Vec<(usize, usize)> = std::iter::once(self.before)
            .chain(during.iter().copied())
            .chain(std::iter::once(after))
            .collect();
        let min_ready = samples.iter().map(|s| s.1).min().unwrap_or(0);
        let max_running = samples.iter().map(|s| s.0).max().unwrap_or(0);
        eprintln!(
            "{what}: {} samples (before {:?}, {} during, after {after:?}), ready replicas at \
             least {min_ready}, running at most {max_running}",
            samples.len(),
            self.before,
            during.len()
        );
        assert!(
            !during.is_empty(),
            "{what}: no sample while the rollout ran (a sample takes a `docker ps`, an inspect \
             and a probe per replica)"
        );
        assert!(
            min_ready >= REPLICAS - 1,
            "{what}: only {min_ready} ready replicas at one point: {samples:?}"
        );
        assert!(
            max_running <= REPLICAS + 1,
            "{what}: {max_running} replicas ran at once (one at a time): {samples:?}"
        );
    }
}

/// What the service answers on its published port: the release and the hostname of the
/// replica that got the connection.
fn answer(port: u16) -> Option<(String, String)> {
    let (code, body) = http_get(&format!("http://127.0.0.1:{port}/"))?;
    let (release, host) = body.trim().split_once(' ')?;
    (code == 200).then(|| (release.to_owned(), host.to_owned()))
}

/// The release of the replica that answered.
fn release(port: u16) -> Option<String> {
    answer(port).map(|(r, _)| r)
}

/// The share (percent) of `n` new connections answered by `new`.
fn share(port: u16, new: &str, n: usize) -> usize {
    let hits = (0..n)
        .filter(|_| release(port).as_deref() == Some(new))
        .count();
    hits * 100 / n
}

fn lines(stack: &Stack, file: &str) -> Vec<String> {
    std::fs::read_to_string(stack.dir.path().join("state").join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn delivery_day() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = example_stack("delivery");
    let api_port = format!("API_PORT={}", stack.port);
    let deploy_args = |extra: &[&'static str]| -> Vec<String> {
        let mut a = vec!["--var".to_owned(), api_port.clone()];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let deploy = |extra: &[&'static str]| {
        let a = deploy_args(extra);
        stack.deploy(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let all_serve = |r: &str| {
        wait_for(
            &format!("every replica to serve {r}"),
            Duration::from_secs(30),
            || {
                (0..30)
                    .all(|_| release(stack.port).as_deref() == Some(r))
                    .then_some(())
            },
        )
    };

    // A release deployed in the background, once its canary gets new connections.
    let start_canary = |rel: &str| {
        let var = format!("RELEASE={rel}");
        let mut a = deploy_args(&["--var"]);
        a.push(var);
        let child = stack.spawn_deploy(&a.iter().map(String::as_str).collect::<Vec<_>>());
        wait_for(
            &format!("{rel}'s canary to get connections"),
            Duration::from_secs(60),
            || {
                (0..100)
                    .any(|_| release(stack.port).as_deref() == Some(rel))
                    .then_some(())
            },
        );
        child
    };

    // 1. r1: the migration runs, then three replicas; a no-op redeploy runs nothing.
    let out = deploy(&["--var", "RELEASE=r1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    all_serve("r1");
    assert_eq!(replicas(&stack.name), (REPLICAS, REPLICAS));
    let api1 = format!("{}-api-1", stack.name);
    assert_eq!(
        inspect(
            &api1,
            "{{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Timeout}}"
        ),
        "15s 3s",
        "liveness: the Docker healthcheck every 15 s, timeout 3 s"
    );
    assert_eq!(lines(&stack, "schema_migrations"), ["r1"]);
    let out = deploy(&["--var", "RELEASE=r1", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged");
    assert_eq!(lines(&stack, "migrate_runs"), ["r1"], "no run for r1 again");

    // 2. r2 as a canary: 5 %, promoted to 25 %, 50 %, 100 %; then the other replicas.
    let watch = Watch::start(&stack.name);
    let child = start_canary("r2");
    // Each step's share of 400 new connections, within about 3 standard deviations (a
    // measurement that straddles the promotion, which takes effect within a second, is taken
    // again); then `gantry promote`.
    for (step, range) in [(5, 1..=10), (25, 18..=32), (50, 40..=60)] {
        let got = wait_for(
            &format!("the {step} % step"),
            Duration::from_secs(15),
            || {
                let s = share(stack.port, "r2", 400);
                eprintln!("canary step {step} %: measured {s} %");
                range.contains(&s).then_some(s)
            },
        );
        eprintln!("canary step {step} %: {got} % of 400 new connections");
        let promote = stack.gantry(&["promote", &stack.name]);
        assert_eq!(promote.status.code(), Some(0), "promote at {step} %");
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "r2 promoted: {text}");
    for step in ["canary 5%", "canary 25%", "canary 50%", "promoted"] {
        assert!(text.contains(step), "the output shows {step:?}: {text}");
    }
    watch.check("r2 canary and rolling update");
    all_serve("r2");
    assert_eq!(lines(&stack, "schema_migrations"), ["r1", "r2"]);

    // 3. r3 fails to boot: rolled back, exit 2; its forward migration stays applied.
    let watch = Watch::start(&stack.name);
    let out = deploy(&["--var", "RELEASE=r3", "--var", "BOOT_FAIL=1"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(text.contains("boot failed"), "the app's own error: {text}");
    watch.check("r3 failed and rolled back");
    all_serve("r2");
    assert_eq!(lines(&stack, "schema_migrations"), ["r1", "r2", "r3"]);

    // 4. r4's canary turns unready at 5 % (the document's elevated error rate): aborted by
    // itself, every connection back on r2, exit 2. Its /readyz goes 12 s after its start: its
    // gate (a probe every 5 s, the first often before httpd listens) passes by the 2nd probe,
    // 5 s and an inspect after the 1st, with margin on a loaded machine; the canary's 3 failing
    // probes 5 s apart then abort it about 15 to 25 s after its start, well within its pause.
    let out = deploy(&[
        "--var",
        "RELEASE=r4",
        "--var",
        "READY_FAIL_AFTER=12",
        "--var",
        "CANARY_PAUSE=2m",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "aborted: {text}");
    assert!(
        text.contains("canary aborted at 5%: its probe failed 3 time(s)"),
        "the output says why: {text}"
    );
    all_serve("r2");
    assert_eq!(replicas(&stack.name), (REPLICAS, REPLICAS));

    // 5. r5's canary is stopped by hand during its 30-minute watch (`gantry abort`): back on
    // r2, exit 2.
    let child = start_canary("r5");
    assert_eq!(stack.gantry(&["abort", &stack.name]).status.code(), Some(0));
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "aborted by hand: {text}");
    assert!(
        text.contains("canary aborted at 5%: aborted by hand"),
        "{text}"
    );
    all_serve("r2");

    // 6. `gantry rollback` (re-pin the previous release): r1 again, one replica at a time,
    // and no migration runs (forward-only: r2..r5 stay applied).
    let runs = lines(&stack, "migrate_runs");
    assert_eq!(
        runs,
        ["r1", "r2", "r3", "r4", "r5"],
        "one run per new release"
    );
    let watch = Watch::start(&stack.name);
    let out = stack.gantry(&["rollback", &stack.name]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    watch.check("gantry rollback");
    all_serve("r1");
    assert_eq!(
        lines(&stack, "migrate_runs"),
        runs,
        "no migration on rollback"
    );
    assert_eq!(
        lines(&stack, "schema_migrations"),
        ["r1", "r2", "r3", "r4", "r5"],
        "forward-only"
    );
}

/// After the deploy, through the daemon (as the team runs it): a replica whose `/readyz`
/// fails leaves the edge switch's rotation at once (the Kubernetes readiness probe taking a pod
/// out of its Service's endpoints); since Gantry has one probe for readiness and liveness,
/// `failures: 3` failures in a row then restart it in place, and once it passes again it is
/// back in rotation. Every request in between is answered by a ready replica.
#[test]
fn delivery_readiness_after_deploy() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let mut d = Daemon::start("daemon:\n  heal:\n    backoff: 200ms\n", &[]);
    let text = std::fs::read_to_string(example_dir("delivery").join("compose.yaml")).unwrap();
    let (stack, file) = d.stack("delivery", &text);
    copy_dir(&example_dir("delivery"), file.parent().unwrap());
    let port = free_port();
    let api_port = format!("API_PORT={port}");
    let out = d.gantry(&["deploy", &stack, "-f", path_str(&file), "--var", &api_port]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let api2 = format!("{stack}-api-2");
    let host2 = inspect(&api2, "{{.Config.Hostname}}");
    let started = inspect(&api2, "{{.Id}} {{.State.StartedAt}}");
    // Replica 2 is in rotation to begin with.
    wait_for(
        "replica 2 to get connections",
        Duration::from_secs(20),
        || {
            (0..60)
                .any(|_| answer(port).is_some_and(|(_, h)| h == host2))
                .then_some(())
        },
    );

    // Its dependencies go away: /readyz fails.
    let rm = docker(&["exec", &api2, "rm", "/www/readyz"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let mut answered = 0;
    wait_for(
        "replica 2 to leave the rotation",
        Duration::from_secs(15),
        || {
            let hits = (0..60)
                .filter(|_| {
                    let a = answer(port).expect("every request is answered");
                    answered += 1;
                    a.1 == host2
                })
                .count();
            (hits == 0).then_some(())
        },
    );
    for _ in 0..100 {
        let (_, host) = answer(port).expect("every request is answered");
        assert_ne!(host, host2, "an unready replica got a new connection");
    }
    answered += 100;

    // Liveness: the same probe's 3 failures restart it in place; it is ready and back.
    wait_for("replica 2 to be restarted", Duration::from_secs(40), || {
        let now = inspect(&api2, "{{.Id}} {{.State.StartedAt}}");
        (now != started).then_some(())
    });
    assert_eq!(
        inspect(&api2, "{{.Id}}"),
        started.split(' ').next().unwrap(),
        "restarted in place, not replaced"
    );
    wait_for(
        "replica 2 back in rotation",
        Duration::from_secs(30),
        || {
            (0..60)
                .any(|_| {
                    answered += 1;
                    answer(port).expect("every request is answered").1 == host2
                })
                .then_some(())
        },
    );
    eprintln!("{answered} requests, all answered");
    let log = d.log();
    assert!(log.contains("edge: rotation follows readiness"), "{log}");
}
