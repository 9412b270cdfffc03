//! A canary survives a daemon restart at the step it had reached, against the real kernel and
//! Docker: a canary paused at 10 %, `gantryd` SIGKILLed (or stopped by SIGTERM, which does not
//! wait for the canary); the waiting `gantry deploy` exits 69
//! naming the stack, the step and `gantry promote|abort`; no established connection (to the old
//! version or to the canary) drops and no new one fails while no daemon runs; the next daemon
//! resumes the canary at 10 % (still 10 ± 3 % of new connections); then `gantry promote`
//! finishes the rollout (the old container retired, the release succeeded), or `gantry abort`
//! rolls it back (version 1 only, the release rolled back). Needs root (CAP_NET_ADMIN) and
//! `nft`.

use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::traffic::{STREAM_CGI, Stream, Traffic, traffic};
use gantry_tests::{body_on, path_str, wait_for};

/// `web` answers `version N` and streams; its canary's probe has a 5 s timeout (not the
/// default 2 s): the failures it counts add up over the step, across the restart
/// (`abort.probe_failures: 3`), and probes slowed by a loaded machine must not abort a canary
/// that serves.
const WEB: &str = r#"
services:
  web:
    image: ${IMAGE}
    ports: ["127.0.0.1:${WEB_PORT}:8080"]
    stop_grace_period: 3s
    command:
      - sh
      - -c
      - |
        STREAM_CGI
        echo "version ${VERSION:-1}" > /www/index.html && echo ok > /www/health
        exec httpd -f -p 8080 -h /www
    x-gantry:
      health: {http: /health, port: 8080, interval: 500ms, timeout: 5s, passes: 1}
      canary:
        steps: [10, 100]
        pause: 10m
        abort: {probe_failures: 3, restarts: 1}
"#;

/// How many of `n` new connections reach version 2 (every one must be answered).
fn canary_share(port: u16, n: usize) -> usize {
    (0..n)
        .filter(|_| match body_on(port).as_deref() {
            Some("version 2") => true,
            Some("version 1") => false,
            other => panic!("unexpected answer {other:?}"),
        })
        .count()
}

/// A stack whose canary at 10 % outlived its daemon and was resumed by the next.
struct Resumed {
    d: Daemon,
    stack: String,
    port: u16,
    traffic: Arc<Traffic>,
    client: std::thread::JoinHandle<()>,
    streams: Vec<Stream>,
}

/// How the daemon goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill,
    Term,
}

impl Resumed {
    fn set_up(how: Stop) -> Self {
        let mut d = Daemon::start("", &[]);
        let (stack, file) = d.stack("canr", &WEB.replace("STREAM_CGI", STREAM_CGI));
        let port = gantry_tests::free_port();
        let deploy = |d: &Daemon, v: &str| {
            let f = path_str(&file);
            let port_var = format!("WEB_PORT={port}");
            d.command(&["deploy", &stack, "-f", f, "--var", &port_var, "--var", v])
        };
        let out = deploy(&d, "VERSION=1").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "version 1: {out:?}");
        let (traffic, client) = traffic(port);
        wait_for("answers on the port", Duration::from_secs(20), || {
            (traffic.ok.load(Ordering::Relaxed) > 5).then_some(())
        });

        let rollout: Child = deploy(&d, "VERSION=2")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let record = d
            .state_dir()
            .join("stacks")
            .join(&stack)
            .join("canary.json");
        wait_for(
            "the canary at 10 %, recorded",
            Duration::from_secs(60),
            || (record.is_file() && canary_share(port, 100) > 0).then_some(()),
        );

        // Streams open to both versions.
        let mut streams = Vec::new();
        for _ in 0..200 {
            let s = Stream::open(port);
            assert!(s.first_line().is_some(), "the stream answers");
            streams.push(s);
            let on = |v: &str| {
                streams
                    .iter()
                    .filter(|s| s.first_line().as_deref() == Some(v))
                    .count()
            };
            if on("version 2") >= 2 && on("version 1") >= 2 {
                break;
            }
        }
        let on_canary = streams
            .iter()
            .filter(|s| s.first_line().as_deref() == Some("version 2"))
            .count();
        assert!(on_canary >= 2, "streams reach the canary");
        eprintln!(
            "{} streams open, {on_canary} of them to the canary",
            streams.len()
        );

        // The daemon goes: the waiting client says what goes on and how to act on it.
        match how {
            Stop::Kill => {
                let mut child = d.child.take().expect("the daemon runs");
                child.kill().unwrap();
                child.wait().unwrap();
            }
            Stop::Term => {
                d.stop();
                assert!(
                    d.log().contains("daemon stopped"),
                    "SIGTERM does not wait for the canary: the daemon stopped by itself"
                );
            }
        }
        let out = rollout.wait_with_output().unwrap();
        let err = gantry_tests::stderr(&out);
        eprintln!("{}{err}", gantry_tests::stdout(&out));
        assert_eq!(out.status.code(), Some(69), "the daemon went away: exit 69");
        assert!(
            err.contains(&format!(
                "stack {stack} was at canary step 10% (service web)"
            )) && err.contains(&format!("gantry promote {stack}"))
                && err.contains(&format!("gantry abort {stack}")),
            "the client names the stack, the step and what to do: {err}"
        );
        // No daemon: the kernel keeps serving the same shares.
        for s in &streams {
            assert!(s.flowing(), "a stream outlives the daemon");
        }

        d.spawn();
        d.wait_ready();
        wait_for(
            "the next daemon to resume the canary",
            Duration::from_secs(30),
            || {
                d.log()
                    .contains("resuming the canary of web at 10%")
                    .then_some(())
            },
        );
        let status = d.status(&stack);
        let canary = &status["stacks"][0]["canary"];
        assert!(
            canary["service"] == "web" && canary["share"] == 10,
            "`gantry status` shows the canary at its step: {status}"
        );
        let share = canary_share(port, 3000);
        eprintln!("resumed canary: {share} of 3000 new connections");
        assert!(
            (210..=390).contains(&share),
            "the resumed canary gets {share} of 3000 new connections, not 10 ± 3 %"
        );
        for s in &streams {
            assert!(
                s.flowing(),
                "no established connection dropped across the restart"
            );
        }
        assert_eq!(
            traffic.failed.load(Ordering::Relaxed),
            0,
            "no new connection failed across the restart"
        );
        Self {
            d,
            stack,
            port,
            traffic,
            client,
            streams,
        }
    }

    /// Closes the streams (the old version drains at once) and stops the client.
    fn quiet(self) -> (Daemon, String, u16, Arc<Traffic>) {
        for s in &self.streams {
            s.close();
        }
        self.traffic.stop.store(true, Ordering::Relaxed);
        self.client.join().unwrap();
        (self.d, self.stack, self.port, self.traffic)
    }

    /// Waits for the stack to be one container serving `version`, and its newest release to
    /// have `outcome`.
    fn converged(d: &Daemon, stack: &str, port: u16, version_: &str, outcome: &str) {
        let web = format!("{stack}-web-1");
        wait_for(
            &format!("{version_} alone, release {outcome}"),
            Duration::from_secs(60),
            || {
                (gantry_tests::project_containers(stack) == std::slice::from_ref(&web)
                    && d.releases(stack).first().map(|r| r["outcome"].clone())
                        == Some(serde_json::json!(outcome)))
                .then_some(())
            },
        );
        for _ in 0..100 {
            assert_eq!(body_on(port).as_deref(), Some(version_));
        }
    }
}

#[test]
fn a_canary_resumed_after_sigkill_keeps_its_step_and_promote_finishes_it() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let r = Resumed::set_up(Stop::Kill);
    let out = r.d.gantry(&["promote", &r.stack]);
    assert_eq!(out.status.code(), Some(0), "promote");
    let (d, stack, port, traffic) = r.quiet();
    Resumed::converged(&d, &stack, port, "version 2", "succeeded");
    assert_eq!(
        traffic.failed.load(Ordering::Relaxed),
        0,
        "no request failed"
    );
    assert!(
        d.log().contains("canary 10%: promoted"),
        "the resumed canary was promoted"
    );
}

#[test]
fn a_canary_resumed_after_sigterm_rolls_back_on_abort() {
    if !gantry_tests::edge_switch_available() {
        return;
    }
    let r = Resumed::set_up(Stop::Term);
    let out = r.d.gantry(&["abort", &r.stack]);
    assert_eq!(out.status.code(), Some(0), "abort");
    let (d, stack, port, _) = r.quiet();
    Resumed::converged(&d, &stack, port, "version 1", "rolled_back");
    assert!(
        d.log().contains("canary aborted at 10%: aborted by hand"),
        "the resumed canary was aborted"
    );
}
