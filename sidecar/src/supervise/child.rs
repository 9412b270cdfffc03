//! The child process and the PID 1 chores: start it in its own process group, signal that
//! group, reap every exited process without losing the child's own status.
//!
//! Design: the child is started with `std::process::Command` (no shell, `process_group(0)`),
//! and its `Child` handle is never waited on: all reaping goes through one loop ([`reap`]):
//! `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)` finds an exited process without reaping it,
//! then `waitpid` on that pid reaps it. It recognises the child's pid and reports its status
//! while it silently collects orphans re-parented to us (as PID 1 or subreaper). When the child
//! has exited, the caller's hook runs before it is reaped: while the child is a zombie its pid
//! (and so its process group id) cannot be given to another process, so signalling its group
//! there (the stragglers of a restart) can never reach a stranger. No pid is signalled after it
//! was reaped. Nothing else in exec mode spawns processes, so no other waiter can steal a
//! status.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use gantry_common::Secret;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
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
    /// The child with this pid (one [`Child::spawn`] started).
    pub fn of(pid: i32) -> Self {
        Self {
            pid: Pid::from_raw(pid),
        }
    }

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

    /// SIGKILL to the whole group (and the child itself). Only before the child was reaped
    /// (see [`reap`]): after that its pid may belong to another process.
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

/// Collects every exited process. Returns the exit code of `main` if it was among them; then
/// `before_reaping_main` ran first, with `main` still a zombie (its pid and process group id
/// not reusable yet): the place to signal what is left of its group.
pub fn reap(main: Option<Pid>, before_reaping_main: impl FnOnce(Pid)) -> Option<i32> {
    let mut main_code = None;
    let mut hook = Some(before_reaping_main);
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        let pid = match waitid(Id::All, peek) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "waitid failed");
                break;
            }
            Ok(status) => match status.pid() {
                Some(pid) => pid,
                None => break,
            },
        };
        if Some(pid) == main
            && let Some(hook) = hook.take()
        {
            hook(pid);
        }
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(status) if Some(pid) == main => main_code = exit_code(status),
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    tracing::debug!(pid = pid.as_raw(), code, "reaped an orphan");
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(pid = pid.as_raw(), error = %e, "waitpid failed");
                break;
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
