//! `gantry-test-probe HOST:PORT FILE`: a client that calls a service by name the way an
//! application does, for the rollout tests. Every 20 ms it resolves HOST through the system
//! resolver (Docker's DNS inside a container), connects to the first address, sends `GET /` and
//! reads the answer; it keeps "answers failures" in FILE (replaced atomically) and logs each
//! failure with the address and the error on stderr.
//!
//! It runs inside a busybox container with the host's glibc bind-mounted: the test image's
//! static busybox cannot resolve names in its own `wget`, and a resolve-then-spawn shell loop
//! widens the gap between resolving and connecting far beyond what a real client has.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

fn call(target: &str, last: &mut Option<SocketAddr>) -> Result<(), (Option<SocketAddr>, String)> {
    let addr = target
        .to_socket_addrs()
        .map_err(|e| (None, format!("resolve: {e}")))?
        .next()
        .ok_or((None, "resolve: no address".to_owned()))?;
    if *last != Some(addr) {
        eprintln!("now calling {addr}");
        *last = Some(addr);
    }
    let fail = |what: &str, e: std::io::Error| (Some(addr), format!("{what}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| fail("connect", e))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| fail("timeout", e))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
        .map_err(|e| fail("send", e))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| fail("read", e))?;
    if answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err((
            Some(addr),
            format!(
                "answer: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(40)])
            ),
        ))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, file] = args.as_slice() else {
        eprintln!("usage: gantry-test-probe HOST:PORT FILE");
        std::process::exit(64);
    };
    let tmp = format!("{file}.new");
    let (mut good, mut bad) = (0u64, 0u64);
    let ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    };
    let mut last = None;
    loop {
        let started = ms();
        match call(target, &mut last) {
            Ok(()) => good += 1,
            Err((addr, e)) => {
                bad += 1;
                eprintln!(
                    "{started} failed after {} ms: {addr:?}: {e}",
                    ms() - started
                );
            }
        }
        if std::fs::write(&tmp, format!("{good} {bad}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, file);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
