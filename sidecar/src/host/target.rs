//! Which process an `on_change.pid_file` action may signal.
//!
//! The sidecar often runs as root while the pid file is written by the app: without a check,
//! whoever can write the pid file (or its directory) picks the process that receives the signal
//! (sshd, pid 1), or makes the sidecar wait forever (a FIFO) or read without end (a link to
//! `/dev/zero`).
//!
//! [`read_pid_file`] opens the pid file once (`O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`), requires a
//! regular file of at most [`PID_FILE_MAX`] bytes, and returns the pid with the metadata of that
//! open file (`fstat`): a symbolic link is refused, not followed, a FIFO or device is refused
//! without waiting, and the checks below are made on the file the pid was read from, not on
//! whatever the path names a moment later (no second lookup).
//!
//! [`check`], on that metadata and the pid:
//! - the pid file must not be writable by group or others (then anyone could name a process),
//!   and must have one hard link (a link made elsewhere would lend it another owner);
//! - the process is allowed when it is in the sidecar's own service cgroup (a systemd service or
//!   a container's cgroup, not the root cgroup `/`), or when it belongs (real uid) to the owner
//!   of the pid file, or when the pid file is owned by root (only root could have written it).
//!
//! Limits: Linux `/proc` only; a pid reused between the read and the `kill` is not detected
//! (the window is the same as any pid-file tool's).

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// Longest pid file read: a pid and a newline, with room for spaces.
pub const PID_FILE_MAX: u64 = 32;

/// Why a pid file cannot be read, and what to do about it (no content: a pid file holds none,
/// but a wrong path could name a file that does).
#[derive(Debug)]
pub struct PidFileError {
    pub message: String,
    pub hint: &'static str,
}

/// The pid in `pid_file`, read through one descriptor, and that descriptor's metadata.
pub fn read_pid_file(pid_file: &Path) -> Result<(i32, Metadata), PidFileError> {
    let (text, meta) =
        gantry_common::fsx::read_bounded_nofollow(pid_file, PID_FILE_MAX).map_err(|e| {
            let hint = match e.kind() {
                io::ErrorKind::InvalidInput => {
                    "set pid_file to the regular file the app writes its pid to: symbolic links, FIFOs and devices are refused"
                }
                io::ErrorKind::FileTooLarge | io::ErrorKind::InvalidData => {
                    "a pid file holds one process id: check that pid_file names the app's pid file"
                }
                io::ErrorKind::NotFound => "is the app running, and does it write its pid there?",
                io::ErrorKind::PermissionDenied => {
                    "check the mode of the pid file and of its directory"
                }
                _ => "check the pid file",
            };
            PidFileError {
                message: e.to_string(),
                hint,
            }
        })?;
    let pid = text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| PidFileError {
            message: "does not hold a process id".to_owned(),
            hint: "a pid file holds one process id (above 1): check that pid_file names the app's pid file",
        })?;
    Ok((pid, meta))
}

/// `Ok` when `pid` may be signalled on behalf of the pid file whose (open file's) metadata is
/// `meta`, else why not.
pub fn check(pid: i32, meta: &Metadata) -> Result<(), String> {
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "it is writable by group or others (mode {:04o}): anyone could name a process",
            meta.mode() & 0o7777
        ));
    }
    if meta.nlink() != 1 {
        return Err(format!(
            "it has {} hard links: whoever linked it could lend it another owner (hint: let the app write its own pid file)",
            meta.nlink()
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
