//! Sockets as the kernel lists them in `/proc/<pid>/net/tcp` and `tcp6`: who listens on a host
//! port, and how many connections a container still has open (the drain).
//!
//! Design: `/proc/<pid>/net/*` shows the sockets of the network namespace of process `pid`, so
//! a container's connections are read from its main process without entering its namespace
//! and without any tool. Lines are parsed by hand and anything unexpected is skipped, never a
//! panic (property-tested).
//!
//! Limits: needs read access to `/proc/<pid>` of the container's process (root, without
//! `hidepid`); when it cannot be read the caller waits out the whole drain window.

use std::net::Ipv4Addr;
use std::path::Path;

/// One socket: local address (IPv4, or `None` for an IPv6 address other than `::`-mapped
/// IPv4 wildcard), local port and TCP state (`0x01` established, `0x0A` listen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    /// The local IPv4 address; `Some(0.0.0.0)` also for IPv6 `::` (dual-stack wildcard).
    pub local: Option<Ipv4Addr>,
    pub port: u16,
    pub state: u8,
}

pub const ESTABLISHED: u8 = 0x01;
pub const LISTEN: u8 = 0x0A;

/// Parses one line of `/proc/net/tcp` or `tcp6` (`None` for the header or anything odd).
pub fn parse_line(line: &str) -> Option<Socket> {
    let mut fields = line.split_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let local = fields.next()?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let local = match addr.len() {
        8 => Some(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.swap_bytes(),
        )),
        32 => {
            if addr.bytes().all(|b| b == b'0') {
                Some(Ipv4Addr::UNSPECIFIED)
            } else if let Some(v4) = addr.strip_prefix("0000000000000000FFFF0000") {
                // An IPv4-mapped address: the last 32 bits, in the kernel's byte order.
                Some(Ipv4Addr::from(
                    u32::from_str_radix(v4, 16).ok()?.swap_bytes(),
                ))
            } else {
                None
            }
        }
        _ => return None,
    };
    Some(Socket { local, port, state })
}

fn sockets(dir: &Path) -> std::io::Result<Vec<Socket>> {
    let mut out = Vec::new();
    let mut any = false;
    for file in ["tcp", "tcp6"] {
        match std::fs::read_to_string(dir.join(file)) {
            Ok(text) => {
                any = true;
                out.extend(text.lines().filter_map(parse_line));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if !any {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} has neither tcp nor tcp6", dir.display()),
        ));
    }
    Ok(out)
}

/// Established connections on local `port` in the network namespace of `pid`.
pub fn established(pid: u32, port: u16) -> std::io::Result<usize> {
    let all = sockets(Path::new(&format!("/proc/{pid}/net")))?;
    Ok(all
        .iter()
        .filter(|s| s.state == ESTABLISHED && s.port == port)
        .count())
}

/// A listener in this process's network namespace that would take connections to `ip:port`
/// (`ip: None`: any local address).
pub fn listener(ip: Option<Ipv4Addr>, port: u16) -> std::io::Result<Option<Socket>> {
    let all = sockets(Path::new("/proc/self/net"))?;
    Ok(all.into_iter().find(|s| {
        s.state == LISTEN
            && s.port == port
            && match (ip, s.local) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(want), Some(have)) => have.is_unspecified() || have == want,
            }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_ipv4_and_ipv6_lines() {
        let l = "   0: 0100007F:1489 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 850947 1 0 100 0 0 10 0";
        assert_eq!(
            parse_line(l),
            Some(Socket {
                local: Some(Ipv4Addr::LOCALHOST),
                port: 0x1489,
                state: LISTEN
            })
        );
        let l6 = "   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0";
        assert_eq!(
            parse_line(l6).and_then(|s| s.local),
            Some(Ipv4Addr::UNSPECIFIED)
        );
        let mapped = "   2: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:9C40 01 0 0";
        assert_eq!(
            parse_line(mapped),
            Some(Socket {
                local: Some(Ipv4Addr::LOCALHOST),
                port: 8080,
                state: ESTABLISHED
            })
        );
        assert_eq!(parse_line("  sl  local_address rem_address   st"), None);
    }

    #[test]
    fn this_process_sees_its_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listener(Some(Ipv4Addr::LOCALHOST), port).unwrap().is_some());
        assert!(listener(None, port).unwrap().is_some());
        assert!(
            listener(Some(Ipv4Addr::new(127, 0, 0, 2)), port)
                .unwrap()
                .is_none()
        );
        let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_s, _) = l.accept().unwrap();
        assert!(established(std::process::id(), port).unwrap() >= 1);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_line(line in ".{0,200}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn never_panics_on_near_miss_lines(
            addr in "[0-9A-Fa-f]{0,40}", port in "[0-9A-Fa-f]{0,6}", st in "[0-9A-Za-z]{0,3}"
        ) {
            let _ = parse_line(&format!("  7: {addr}:{port} 00000000:0000 {st} 0 0"));
        }
    }
}
