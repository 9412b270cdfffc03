//! `gantry daemon` against the real Docker daemon: sd_notify, jobs that outlive a SIGKILLed
//! CLI, the per-stack queue, adoption on restart, and a container removed by hand coming back.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{docker, past_first_resync, wait_for};
use gantry_tests::{inspect, path_str};

/// A service that becomes healthy 10 s after it starts; `V` changes its config. (10 s, not
/// less: a deploy of it must still be under way after the CLI runs that follow its record
/// appearing, on a loaded 2-core machine.)
const SLOW: &str = r#"
services:
  app:
    image: ${IMAGE}
    command: ["sh", "-c", "sleep 10; touch /tmp/ready; exec sleep 86400"]
    environment:
      V: ${V:-0}
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 30
"#;

#[test]
fn notify_ready_after_the_socket_answers_and_the_watchdog_pings_on() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let d = Daemon::start(
        "",
        &[
            ("NOTIFY_SOCKET", path_str(&notify_path)),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    // Daemon::start already waited for the socket; READY must have been sent by then, and the
    // daemon only sends it after answering its own health request on the socket.
    let mut buf = [0u8; 4096];
    let mut first = Vec::new();
    loop {
        let n = notify.recv(&mut buf).expect("a notification");
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        first.push(msg.clone());
        if msg.contains("READY=1") {
            break;
        }
    }
    assert!(
        std::os::unix::net::UnixStream::connect(&d.socket).is_ok(),
        "the socket answers once READY=1 is sent"
    );
    assert!(
        first.iter().any(|m| m.starts_with("STATUS=")),
        "STATUS= before READY: {first:?}"
    );
    // WATCHDOG_USEC=2s: WATCHDOG=1 comes again and again. (How often, at half the period, a
    // window of real time cannot tell without flaking: that takes a paused clock.)
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut pings = 0;
    while pings < 2 {
        let n = notify
            .recv(&mut buf)
            .expect("WATCHDOG=1 keeps coming (read timed out)");
        if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
            pings += 1;
        }
    }
}

#[test]
fn a_deploy_whose_cli_is_killed_finishes_and_three_clis_run_in_turn() {
    let mut d = Daemon::start("", &[]);
    let (stack, file) = d.stack("djobs", SLOW);
    let file = path_str(&file).to_owned();

    // Start a deploy in its own process group and SIGKILL the group mid-rollout, like SSM.
    let mut child = d
        .command(&["deploy", &stack, "-f", &file, "--id", "ci-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    // Mid-rollout: the daemon has recorded the release as in progress.
    wait_for("the rollout to start", Duration::from_secs(30), || {
        let now = d.releases(&stack);
        (now.first().map(|r| &r["outcome"]) == Some(&serde_json::json!("in_progress")))
            .then_some(())
    });
    let killed = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.wait();
    // Killed mid-rollout: the release is still in progress (the service needs 10 s to be
    // healthy).
    let now = d.releases(&stack);
    assert_eq!(
        now.first().map(|r| &r["outcome"]),
        Some(&serde_json::json!("in_progress")),
        "{now:?}"
    );
    // The job goes on in the daemon and is recorded.
    let release = wait_for("the deploy to be recorded", Duration::from_secs(60), || {
        d.releases(&stack)
            .into_iter()
            .find(|r| r["deploy_id"] == "ci-1" && r["outcome"] == "succeeded")
    });
    assert_eq!(
        inspect(&format!("{stack}-app-1"), "{{.State.Health.Status}}"),
        "healthy"
    );
    // The same id again reports the recorded result.
    let out = d.gantry(&["deploy", &stack, "-f", &file, "--id", "ci-1"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("repeated deploy id"), "{text}");
    assert!(text.contains(release["id"].as_str().unwrap()), "{text}");

    // Three CLIs at once, each changing the service: they run one after another.
    let children: Vec<_> = (1..=3)
        .map(|n| {
            let var = format!("V={n}");
            d.command(&[
                "deploy",
                &stack,
                "-f",
                &file,
                "--id",
                &format!("q-{n}"),
                "--var",
                &var,
                "--lock-wait",
                "5m",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(0));
    }
    let mut queued: Vec<serde_json::Value> = d
        .releases(&stack)
        .into_iter()
        .filter(|r| {
            r["deploy_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("q-"))
        })
        .collect();
    queued.reverse(); // oldest first
    assert_eq!(queued.len(), 3, "{queued:?}");
    for pair in queued.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a["outcome"], "succeeded");
        assert!(
            b["started_at"].as_str().unwrap() >= a["finished_at"].as_str().unwrap(),
            "jobs overlapped: {a} / {b}"
        );
    }
}

#[test]
fn restarting_the_daemon_restarts_nothing_and_a_removed_container_comes_back() {
    let mut d = Daemon::start("daemon:\n  debounce: 500ms\n", &[]);
    let (stack, file) = d.stack("dadopt", SLOW);
    let out = d.gantry(&["deploy", &stack, "-f", path_str(&file)]);
    assert_eq!(out.status.code(), Some(0));
    let (marker, marker_file) = d.stack("dmark", MARKER);
    let out = d.gantry(&["deploy", &marker, "-f", path_str(&marker_file)]);
    assert_eq!(out.status.code(), Some(0), "the marker stack");
    let snapshot = || -> BTreeMap<String, String> {
        let filter = format!("label=com.docker.compose.project={stack}");
        let out = docker(&["ps", "-aq", "--filter", &filter]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|id| (id.to_owned(), inspect(id, "{{.Id}} {{.State.StartedAt}}")))
            .collect()
    };
    let before = snapshot();
    assert!(!before.is_empty());
    d.stop();
    d.spawn();
    d.wait_ready();
    let log = past_first_resync(&d, &format!("{marker}-marker-1"));
    let decided: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("stack={stack} ")))
        .filter(|l| {
            ["stack drifted", "job started", "restarting it"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        decided.is_empty(),
        "the restarted daemon's first resync acted on the stack: {decided:#?}"
    );
    assert_eq!(
        snapshot(),
        before,
        "restarting the daemon touched a container"
    );

    // Removed by hand: reconciled from the last good release.
    let history = d.releases(&stack).len();
    let name = format!("{stack}-app-1");
    docker(&["rm", "-f", &name]);
    wait_for(
        "the removed container to come back healthy",
        Duration::from_secs(40),
        || (inspect(&name, "{{.State.Health.Status}}") == "healthy").then_some(()),
    );
    // Stopped by hand: started again.
    let id = inspect(&name, "{{.Id}}");
    docker(&["stop", "-t", "1", &name]);
    wait_for(
        "the stopped container to run again",
        Duration::from_secs(40),
        || (inspect(&name, "{{.State.Running}}") == "true").then_some(()),
    );
    assert_eq!(
        inspect(&name, "{{.Id}}"),
        id,
        "a stopped container is started, not replaced"
    );
    assert_eq!(
        d.releases(&stack).len(),
        history,
        "heals restore the recorded release and record none of their own"
    );
}

/// A second stack, of one container: its death is the marker of [`past_first_resync`].
const MARKER: &str = r#"
services:
  marker:
    image: ${IMAGE}
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
"#;
