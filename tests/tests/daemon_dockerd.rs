//! The daemon survives a restart of dockerd itself: its event stream breaks, it reconnects,
//! resynchronises, and keeps supervising (a container removed afterwards comes back).
//!
//! Ignored by default: it stops the machine's dockerd, which every other Docker test uses.
//! Run it alone: `cargo test -p gantry-tests --test daemon_dockerd -- --ignored --test-threads 1`.
//! It stops dockerd with SIGTERM (pid from /var/run/docker.pid) and starts it again with
//! `tests/env/up docker`, the same way the test environment started it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{docker, wait_for};
use gantry_tests::{inspect, path_str};

const STACK: &str = r#"
services:
  app:
    image: ${IMAGE}
    command: ["sleep", "86400"]
    stop_signal: SIGKILL
    restart: unless-stopped
"#;

fn docker_answers() -> bool {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .status
        .success()
}

#[test]
#[ignore = "restarts dockerd; run alone: cargo test -p gantry-tests --test daemon_dockerd -- --ignored"]
fn the_daemon_survives_a_dockerd_restart() {
    let mut d = Daemon::start("daemon:\n  debounce: 500ms\n", &[]);
    let (stack, file) = d.stack("ddockerd", STACK);
    assert_eq!(
        d.gantry(&["deploy", &stack, "-f", path_str(&file)])
            .status
            .code(),
        Some(0)
    );
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("dockerd pid file");
    let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("env/up");
    // Whatever happens below, dockerd is started again.
    struct Restore(std::path::PathBuf);
    impl Drop for Restore {
        fn drop(&mut self) {
            if !docker_answers() {
                let _ = Command::new(&self.0).arg("docker").status();
            }
        }
    }
    let _restore = Restore(up.clone());
    Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .unwrap();
    // Not answering comes before exiting (dockerd first stops its containers): wait for the
    // process itself, or the new dockerd would find the old one's pid file.
    let proc_dir = Path::new("/proc").join(pid.trim());
    wait_for("dockerd to exit", Duration::from_secs(90), || {
        (!proc_dir.exists() && !docker_answers()).then_some(())
    });
    let started = Command::new(&up).arg("docker").status().unwrap();
    assert!(started.success(), "tests/env/up docker");
    wait_for("dockerd to answer", Duration::from_secs(90), || {
        docker_answers().then_some(())
    });
    // Still supervising: a container removed by hand comes back.
    let name = format!("{stack}-app-1");
    wait_for(
        "the container to run again",
        Duration::from_secs(60),
        || (inspect(&name, "{{.State.Running}}") == "true").then_some(()),
    );
    docker(&["rm", "-f", &name]);
    wait_for(
        "the removed container to come back",
        Duration::from_secs(60),
        || (inspect(&name, "{{.State.Running}}") == "true").then_some(()),
    );
    assert!(d.log().contains("docker event stream broke"));
}
