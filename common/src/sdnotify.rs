//! The systemd notification protocol, in-process (no libsystemd).
//!
//! `NOTIFY_SOCKET` names a datagram socket: a path, or `@name` for the abstract namespace.
//! When it is unset every call is a no-op, so callers need not care whether systemd runs them.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// A handle on `NOTIFY_SOCKET`, read once at start.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` from the environment.
    pub fn from_env() -> Self {
        Self::from_value(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    fn from_value(value: Option<&std::ffi::OsStr>) -> Self {
        let target = value.and_then(|v| {
            let v = v.to_str()?;
            if let Some(name) = v.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).ok()
            } else if v.starts_with('/') {
                SocketAddr::from_pathname(v).ok()
            } else {
                None
            }
        });
        Self { target }
    }

    /// Whether systemd is listening.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (`"READY=1"`, `"STATUS=..."`, several lines at once are allowed).
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(state.as_bytes(), target)?;
        Ok(())
    }

    pub fn ready(&self) -> io::Result<()> {
        self.notify("READY=1")
    }

    pub fn status(&self, status: &str) -> io::Result<()> {
        self.notify(&format!("STATUS={}", status.replace('\n', " ")))
    }

    pub fn watchdog(&self) -> io::Result<()> {
        self.notify("WATCHDOG=1")
    }

    pub fn stopping(&self) -> io::Result<()> {
        self.notify("STOPPING=1")
    }
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`, honouring `WATCHDOG_PID`), if any.
/// Ping at half of it.
pub fn watchdog_interval() -> Option<Duration> {
    let var = |name| std::env::var(name).ok();
    watchdog_period(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

/// The rule of [`watchdog_interval`] on given values (`None`: unset, or not Unicode): the
/// period `usec` names, unless it is unset, `0` or not a whole number of microseconds, or
/// `pid` is set and is not `own_pid` (another process's, or not a number).
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::from_value(Some(path.as_os_str()));
        assert!(n.enabled());
        n.ready().unwrap();
        n.status("deploying web\nnow").unwrap();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=deploying web now");
    }

    #[test]
    fn unset_is_a_no_op() {
        let n = Notifier::from_value(None);
        assert!(!n.enabled());
        n.ready().unwrap();
    }
}
