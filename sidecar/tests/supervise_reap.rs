//! `supervise::child::reap` in a test binary of its own: it waits for any child of the
//! process, so in a shared binary it would steal the statuses of other tests' children.
//!
//! Review item: after a restart the stragglers of the old child's group were killed with
//! `killpg(pid)` and `kill(pid)` after `waitpid` had reaped the child, when its pid (and group
//! id) could already belong to another process. `reap` now runs the caller's hook while the
//! exited child is still a zombie, and reaps it after.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gantry_sidecar::supervise::child::{self, Child, Command};
use nix::unistd::Pid;

/// The state letter of `/proc/<pid>/stat` (`Z` for a zombie), `None` once the pid is gone.
fn state(pid: Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_group_is_signalled_while_the_exited_child_is_a_zombie_then_it_is_reaped() {
    // Orphans of the child (its straggler) come to us, as they come to PID 1.
    child::become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let straggler_file = dir.path().join("straggler");
    let cmd = Command {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            "sleep 300 & echo $! > \"$1\"; exit 3".into(),
            "sh".into(),
            straggler_file.clone().into(),
        ],
    };
    let c = Child::spawn(&cmd, &BTreeMap::new()).unwrap();
    wait_until("the child exits", || state(c.pid) == Some('Z'));
    let straggler = Pid::from_raw(
        std::fs::read_to_string(&straggler_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    assert_eq!(
        state(straggler).map(|s| s != 'Z'),
        Some(true),
        "straggler runs"
    );

    let mut seen = None;
    let code = child::reap(Some(c.pid), |pid| {
        assert_eq!(pid, c.pid);
        seen = Some(state(pid));
        c.kill();
    });
    assert_eq!(code, Some(3), "the child's own status");
    assert_eq!(
        seen,
        Some(Some('Z')),
        "the hook ran while the child was still a zombie"
    );
    assert_eq!(state(c.pid), None, "reaped after the hook");
    // The SIGKILL to the group reached the straggler; it is reaped as an orphan.
    wait_until("the straggler dies", || {
        child::reap(None, |_| unreachable!("no main child"));
        state(straggler).is_none()
    });
}
