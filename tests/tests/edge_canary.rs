//! Weighted canaries through the edge switch (`x-gantry.canary`), against the real kernel and
//! Docker: a 10 % step gets 10 ± 3 % of 10,000 new connections; `gantry promote` finishes the
//! rollout and `gantry abort` rolls it back (exit 2); a step whose `pause` runs out moves to the
//! next by itself, up to 100 % (exit 0, nobody promoted); a canary whose probe starts failing,
//! or whose container crashes and is restarted by Docker (`abort.restarts`), is aborted by
//! itself and the deploy exits 2; bad steps are exit 65 naming the key. Needs root
//! (CAP_NET_ADMIN) and `nft`.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry_tests::stack::Stack;
use gantry_tests::{body_on, wait_for};

/// `web` answers `version N`; its canary's probe has a 5 s timeout (not the default 2 s): the
/// failures it counts add up over a step (`abort.probe_failures: 2`), and two probes slowed by a
/// loaded machine must not abort a canary that serves. The faults come well after the gate
/// (500 ms interval, one pass): `BREAK` removes `/health` 8 s after the start, `CRASH=S` exits
/// after S seconds, both within the 60 s step the tests give them.
const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 2s
    command:
      - sh
      - -c
      - |
        mkdir -p /www && echo "version ${VERSION:-1}" > /www/index.html && echo ok > /www/health
        if [ -n "${BREAK:-}" ]; then (sleep 8; rm /www/health) & fi
        if [ -n "${CRASH:-}" ]; then httpd -f -p 8080 -h /www & sleep ${CRASH:-}; exit 3; fi
        exec httpd -f -p 8080 -h /www
    restart: "${RESTART:-no}"
    x-gantry:
      health: {http: /health, port: 8080, interval: 500ms, timeout: 5s, passes: 1}
      canary:
        steps: STEPS
        pause: ${PAUSE:-5m}
        abort: {probe_failures: 2, restarts: 1}
"#;

/// Deploys version 1 of WEB with canary `steps` and returns the stack.
fn first(steps: &str) -> Stack {
    let stack = Stack::with_file(&WEB.replace("STEPS", steps));
    assert_eq!(stack.deploy(&[]).status.code(), Some(0), "version 1");
    stack
}

/// A deploy running in the background, its standard output read as it comes.
struct Deploying {
    child: std::process::Child,
    out: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Deploying {
    fn start(stack: &Stack, extra: &[&str]) -> Self {
        let mut child = stack.spawn_deploy(extra);
        let stdout = child.stdout.take().expect("piped stdout");
        let out = Arc::new(Mutex::new(String::new()));
        let reader = {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut out = out.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            })
        };
        Self { child, out, reader }
    }

    /// Waits for the deploy's exit: its code and its standard output (printed, with its
    /// standard error).
    fn finish(self) -> (Option<i32>, String) {
        let out = self.child.wait_with_output().unwrap();
        self.reader.join().unwrap();
        let text = self.out.lock().unwrap().clone();
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    }
}

/// Waits until the canary of `deploy` gets new connections and watches its first step: the
/// deploy shows `canary N%` (recorded: `gantry promote|abort` are taken from then on; before,
/// they are refused with exit 65 even though the switch already sends the canary its share).
fn wait_for_canary(stack: &Stack, deploy: &Deploying, share: u8) {
    wait_for(
        "the canary to get connections",
        Duration::from_secs(60),
        || {
            (0..200)
                .any(|_| body_on(stack.port).as_deref() == Some("version 2"))
                .then_some(())
        },
    );
    let step = format!("canary {share}%: {share}% of new connections");
    wait_for(
        &format!("the deploy to show {step:?}"),
        Duration::from_secs(20),
        || deploy.out.lock().unwrap().contains(&step).then_some(()),
    );
}

#[test]
fn a_canary_at_10_percent_gets_10_percent_and_promote_finishes_the_rollout() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = first("[10, 100]");
    let deploy = Deploying::start(&stack, &["--var", "VERSION=2"]);
    wait_for_canary(&stack, &deploy, 10);

    // 10,000 new connections, from 4 threads.
    let new = Arc::new(AtomicUsize::new(0));
    let old = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (new, old, port) = (Arc::clone(&new), Arc::clone(&old), stack.port);
            std::thread::spawn(move || {
                for _ in 0..2500 {
                    match body_on(port).as_deref() {
                        Some("version 2") => new.fetch_add(1, Ordering::Relaxed),
                        Some("version 1") => old.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected answer {other:?}"),
                    };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (new, old) = (new.load(Ordering::Relaxed), old.load(Ordering::Relaxed));
    eprintln!("canary at 10 %: {new} of {} new connections", new + old);
    assert_eq!(new + old, 10_000);
    assert!(
        (700..=1300).contains(&new),
        "the canary got {new} of 10,000 connections, not 10 ± 3 %"
    );

    let out = stack.gantry(&["promote", &stack.name]);
    assert_eq!(out.status.code(), Some(0), "promote");
    let (code, text) = deploy.finish();
    assert_eq!(code, Some(0), "the promoted deploy succeeds");
    assert!(
        text.contains("canary 10%"),
        "the output shows the step: {text}"
    );
    assert!(text.contains("promoted"), "{text}");
    assert_eq!(body_on(stack.port).as_deref(), Some("version 2"));
}

#[test]
fn abort_by_hand_sends_everything_back_and_the_deploy_exits_2() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = first("[10, 100]");
    let deploy = Deploying::start(&stack, &["--var", "VERSION=2"]);
    wait_for_canary(&stack, &deploy, 10);
    let out = stack.gantry(&["abort", &stack.name]);
    assert_eq!(out.status.code(), Some(0), "abort");
    let (code, text) = deploy.finish();
    assert_eq!(code, Some(2), "an aborted canary rolls back: exit 2");
    assert!(
        text.contains("canary aborted at 10%: aborted by hand"),
        "{text}"
    );
    for _ in 0..200 {
        assert_eq!(body_on(stack.port).as_deref(), Some("version 1"));
    }
    // Nothing to abort any more.
    assert_eq!(
        stack.gantry(&["abort", &stack.name]).status.code(),
        Some(65)
    );
}

/// After an abort: version 1 answers 100 requests in a row, and the canary is gone.
fn rolled_back_to_version_1(stack: &Stack) {
    for _ in 0..100 {
        assert_eq!(body_on(stack.port).as_deref(), Some("version 1"));
    }
    assert_eq!(
        gantry_tests::project_containers(&stack.name),
        [format!("{}-web-1", stack.name)],
        "the canary is gone"
    );
}

#[test]
fn a_canary_whose_probe_fails_is_aborted_and_the_deploy_exits_2() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = first("[50, 100]");
    let out = stack.deploy(&[
        "--var",
        "VERSION=2",
        "--var",
        "BREAK=1",
        "--var",
        "PAUSE=60s",
    ]);
    let text = gantry_tests::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(
        text.contains("canary aborted at 50%: its probe failed 2 time(s)"),
        "the output says why: {text}"
    );
    rolled_back_to_version_1(&stack);
}

#[test]
fn a_step_whose_pause_runs_out_moves_on_by_itself_and_the_deploy_succeeds() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = first("[10, 50, 100]");
    let t0 = std::time::Instant::now();
    let out = stack.deploy(&["--var", "VERSION=2", "--var", "PAUSE=2s"]);
    let took = t0.elapsed();
    let text = gantry_tests::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the canary went to 100 % without promote: {text}"
    );
    // Each step below 100 watched for its pause, then the next, in order.
    let at = |what: &str| {
        text.find(what)
            .unwrap_or_else(|| panic!("the output shows {what:?}: {text}"))
    };
    let (ten, fifty, all) = (
        at("canary 10%: 10% of new connections"),
        at("canary 50%: 50% of new connections"),
        at("canary 100%: every new connection goes to the new version"),
    );
    assert!(ten < fifty && fifty < all, "the steps in order: {text}");
    assert!(
        text.contains("watching for 2s"),
        "each step says its pause: {text}"
    );
    assert!(!text.contains("promoted"), "nobody promoted: {text}");
    // The pauses are durations, which no event marks: a lower bound on a clock started
    // before the deploy and read after it, which cannot be reached early.
    assert!(
        took >= Duration::from_secs(4),
        "two steps watched 2 s each, the deploy took {took:?}"
    );
    for _ in 0..100 {
        assert_eq!(body_on(stack.port).as_deref(), Some("version 2"));
    }
    assert_eq!(
        gantry_tests::project_containers(&stack.name),
        [format!("{}-web-1", stack.name)],
        "the old container is gone"
    );
}

/// `abort.restarts: 1`: the canary's process exits 15 s after its start (once it passed its
/// gate and serves its step) and Docker restarts it (`restart: on-failure`), so it runs again
/// and its probe may well pass: only its restart count says it crashed.
#[test]
fn a_canary_that_restarts_is_aborted_and_the_deploy_exits_2() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let stack = first("[50, 100]");
    let out = stack.deploy(&[
        "--var",
        "VERSION=2",
        "--var",
        "CRASH=15",
        "--var",
        "RESTART=on-failure",
        "--var",
        "PAUSE=60s",
    ]);
    let text = gantry_tests::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(
        text.contains("canary 50%: 50% of new connections"),
        "the canary served its step before it crashed: {text}"
    );
    assert!(
        text.contains("canary aborted at 50%: the new container restarted or exited")
            && text.contains("(abort.restarts: 1)"),
        "the output says why: {text}"
    );
    rolled_back_to_version_1(&stack);
}

#[test]
fn canary_steps_that_do_not_increase_are_exit_65_naming_the_key() {
    let stack = Stack::with_file(&WEB.replace("STEPS", "[50, 10, 100]"));
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(65));
    let err = gantry_tests::stderr(&out) + &gantry_tests::stdout(&out);
    assert!(
        err.contains("services.web.x-gantry.canary.steps") && err.contains("increase"),
        "{err}"
    );
}
