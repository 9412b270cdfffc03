//! Which process an `on_change.pid_file` action may signal.
//!
//! The sidecar often runs as root while the pid file is written by the app: without a check,
//! whoever can write the pid file picks the process that receives the signal (sshd, pid 1).
//! The check, on the pid read from the file:
//! - the pid file must not be writable by group or others (then anyone could name a process);
//! - the process is allowed when it is in the sidecar's own service cgroup (a systemd service or
//!   a container's cgroup, not the root cgroup `/`), or when it belongs (real uid) to the owner
//!   of the pid file, or when the pid file is owned by root (only root could have written it).
//!
//! Limits: Linux `/proc` only; a pid reused between the read and the `kill` is not detected
//! (the window is the same as any pid-file tool's).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// `Ok` when `pid` may be signalled on behalf of `pid_file`, else why not.
pub fn check(pid: i32, pid_file: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(pid_file).map_err(|e| format!("cannot stat it: {e}"))?;
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it is writable by group or others (mode {:04o}): anyone could name a process",
            meta.mode() & 0o7777
        ));
    }
    if let (Some(ours), Some(theirs)) = (service_cgroup("self"), service_cgroup(&pid.to_string()))
        && ours == theirs
    {
        return Ok(());
    }
    let owner = meta.uid();
    let puid = real_uid(pid).ok_or_else(|| format!("process {pid} does not exist"))?;
    if owner == 0 || owner == puid {
        return Ok(());
    }
    Err(format!(
        "process {pid} belongs to uid {puid}, the pid file to uid {owner}, and it is not in this service's cgroup"
    ))
}

/// The unified (or systemd) cgroup path of a process, `None` for the root cgroup.
fn service_cgroup(pid: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .filter(|p| !p.is_empty() && *p != "/")
            .map(str::to_owned)
    };
    path("0::").or_else(|| path("1:name=systemd:")).or_else(|| {
        text.lines()
            .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
            .filter(|p| !p.is_empty() && *p != "/")
            .map(str::to_owned)
    })
}

/// Whether `pid` is in this process's own service cgroup.
#[cfg(test)]
pub fn same_service(pid: i32) -> bool {
    service_cgroup("self").is_some() && service_cgroup("self") == service_cgroup(&pid.to_string())
}

#[cfg(test)]
pub fn real_uid_of(pid: i32) -> Option<u32> {
    real_uid(pid)
}

fn real_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|u| u.parse().ok())
}
