//! The child process and the PID 1 chores: start it in its own process group, signal that
//! group, reap every exited process without losing the child's own status.
//!
//! Design: the child is started with `std::process::Command` (no shell, `process_group(0)`),
//! and its `Child` handle is never waited on: all reaping goes through one
//! `waitpid(-1, WNOHANG)` loop ([`reap`]), which recognises the child's pid and reports its
//! status while it silently collects orphans re-parented to us (as PID 1 or subreaper).
//! Nothing else in exec mode spawns processes, so no other waiter can steal a status.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use gantry_common::Secret;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::credentials;

/// The command to supervise.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// The child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {program}: {source}{}", hint(source))]
pub struct SpawnError {
    pub program: String,
    #[source]
    pub source: std::io::Error,
}

fn hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            " (hint: give the full path, or check PATH; no shell is used)"
        }
        std::io::ErrorKind::PermissionDenied => " (hint: is it executable?)",
        _ => "",
    }
}

/// A running child (leader of its own process group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    pub pid: Pid,
}

impl Child {
    /// Starts `cmd` with our environment (less [`credentials::for_child`]) plus `secrets`.
    pub fn spawn(
        cmd: &Command,
        secrets: &BTreeMap<String, Secret<String>>,
    ) -> Result<Self, SpawnError> {
        let mut c = std::process::Command::new(&cmd.program);
        c.args(&cmd.args).process_group(0);
        for var in credentials::for_child() {
            c.env_remove(var);
        }
        for (k, v) in secrets {
            c.env(k, v.expose());
        }
        let child = c.spawn().map_err(|source| SpawnError {
            program: cmd.program.to_string_lossy().into_owned(),
            source,
        })?;
        // The handle is dropped without waiting: `reap` collects the status.
        let pid = Pid::from_raw(child.id() as i32);
        Ok(Self { pid })
    }

    /// Sends `sig` to the child's process group, or to the child alone if it left its group.
    pub fn signal(&self, sig: Signal) {
        match killpg(self.pid, sig) {
            Ok(()) => {}
            Err(Errno::ESRCH) | Err(Errno::EPERM) => {
                let _ = kill(self.pid, sig);
            }
            Err(e) => {
                tracing::warn!(pid = self.pid.as_raw(), signal = %sig, error = %e, "cannot signal the child")
            }
        }
    }

    /// SIGKILL to the whole group (and the child itself).
    pub fn kill(&self) {
        let _ = killpg(self.pid, Signal::SIGKILL);
        let _ = kill(self.pid, Signal::SIGKILL);
    }
}

/// Exit code for a wait status: the code, or 128+n for signal n.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Collects every exited process. Returns the exit code of `main` if it was among them.
pub fn reap(main: Option<Pid>) -> Option<i32> {
    let mut main_code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "waitpid failed");
                break;
            }
            Ok(status) => {
                let pid = status.pid();
                if pid.is_some() && pid == main {
                    main_code = exit_code(status);
                } else if let (Some(pid), Some(code)) = (pid, exit_code(status)) {
                    tracing::debug!(pid = pid.as_raw(), code, "reaped an orphan");
                }
            }
        }
    }
    main_code
}

/// Makes us the reaper of our descendants' orphans when we are not PID 1 (no-op as PID 1).
pub fn become_subreaper() {
    if std::process::id() != 1
        && let Err(e) = nix::sys::prctl::set_child_subreaper(true)
    {
        tracing::debug!(error = %e, "cannot become child subreaper");
    }
}
