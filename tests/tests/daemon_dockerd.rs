//! The daemon survives a restart of dockerd itself: its event stream breaks, it reconnects,
//! resynchronises, and keeps supervising (a container removed afterwards comes back).
//!
//! Ignored by default: it stops the machine's dockerd, which every other Docker test uses.
//! Run it alone: `cargo test -p gantry-tests --test daemon_dockerd -- --ignored --test-threads 1`.
//! How dockerd restarts depends on who runs it:
//! - systemd (a booted machine with Debian's docker.io, `docker.service` active): `systemctl
//!   restart docker`, then the test waits until the service's main pid is another one and
//!   Docker answers. Killing dockerd by pid would not stop Docker there: the unit has
//!   `Restart=always` and `docker.socket` holds the socket, so Docker never stops answering.
//! - otherwise (dockerd started by `tests/env/up docker`, as in a container): SIGTERM to the pid
//!   of /var/run/docker.pid, wait until it has exited and Docker no longer answers, then
//!   `tests/env/up docker` starts it again, the same way the test environment started it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gantry_tests::daemon::Daemon;
use gantry_tests::{docker, stderr, wait_for};
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

/// Who restarts dockerd.
enum Dockerd {
    /// `docker.service` of a machine booted with systemd.
    Systemd,
    /// A dockerd of its own (started by `tests/env/up docker`): this test stops it by pid and
    /// starts it again with `tests/env/up` (its path here).
    Pid(PathBuf),
}

impl Dockerd {
    fn of_this_machine(up: PathBuf) -> Dockerd {
        let systemd = Path::new("/run/systemd/system").is_dir()
            && Command::new("systemctl")
                .args(["is-active", "--quiet", "docker"])
                .status()
                .is_ok_and(|s| s.success());
        if systemd {
            Dockerd::Systemd
        } else {
            Dockerd::Pid(up)
        }
    }

    /// Starts dockerd when it does not answer (whatever happened in the test).
    fn restore(&self) {
        if docker_answers() {
            return;
        }
        let _ = match self {
            Dockerd::Systemd => Command::new("systemctl").args(["start", "docker"]).status(),
            Dockerd::Pid(up) => Command::new(up).arg("docker").status(),
        };
    }
}

/// The main pid of `docker.service` (0 when it has none).
fn systemd_dockerd_pid() -> u32 {
    let out = Command::new("systemctl")
        .args(["show", "--property", "MainPID", "--value", "docker"])
        .output()
        .expect("systemctl show docker");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Restarts `docker.service` and waits until a new dockerd (another main pid) answers.
fn restart_with_systemd() {
    let old = systemd_dockerd_pid();
    assert_ne!(old, 0, "docker.service is active but has no main pid");
    let out = Command::new("systemctl")
        .args(["restart", "docker"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemctl restart docker: {}",
        stderr(&out)
    );
    wait_for(
        "another dockerd of docker.service to answer",
        Duration::from_secs(90),
        || {
            let now = systemd_dockerd_pid();
            (now != 0 && now != old && docker_answers()).then_some(())
        },
    );
}

/// Stops the dockerd of /var/run/docker.pid with SIGTERM, waits until it has exited, and
/// starts Docker again with `tests/env/up docker`.
fn restart_by_pid(up: &Path) {
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("dockerd pid file");
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
    let started = Command::new(up).arg("docker").status().unwrap();
    assert!(started.success(), "tests/env/up docker");
    wait_for("dockerd to answer", Duration::from_secs(90), || {
        docker_answers().then_some(())
    });
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
    let up = Path::new(env!("CARGO_MANIFEST_DIR")).join("env/up");
    // Whatever happens below, dockerd is started again.
    struct Restore(Dockerd);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.restore();
        }
    }
    let restore = Restore(Dockerd::of_this_machine(up));
    match &restore.0 {
        Dockerd::Systemd => restart_with_systemd(),
        Dockerd::Pid(up) => restart_by_pid(up),
    }
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
