//! The daemon's socket under clients that connect and say nothing (issue 11, bounded inputs):
//! such a client is disconnected once its time to send a request line (10 s) is up, and the
//! socket serves at most 64 connections at once, so 64 silent clients make the next request
//! wait for a slot (it is not served beside them) but never starve it: the timeout frees them.
//!
//! Proved by order, not by the clock: the request behind 64 silent clients is answered only
//! once the daemon has closed one of them (the daemon closes a silent client before its slot
//! is free, and accepts the next connection only then).

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gantry_tests::daemon::Daemon;
use gantry_tests::wait_for;

#[test]
fn a_silent_client_is_disconnected_and_64_of_them_only_delay_the_next_request() {
    let d = Daemon::start("", &[]);

    // One silent client: the daemon closes it (read ends) after its request timeout.
    let mut silent = UnixStream::connect(&d.socket).expect("connect to the daemon socket");
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 16];
    let n = silent
        .read(&mut buf)
        .expect("EOF from the daemon, not our read timeout");
    let waited = t0.elapsed();
    eprintln!("silent client closed after {} ms", waited.as_millis());
    assert_eq!(n, 0, "the daemon sent nothing and closed the connection");
    // A lower bound on the real clock cannot be reached early: the daemon held the connection.
    assert!(
        waited >= Duration::from_secs(5),
        "closed after its request timeout (10 s), not at once: {waited:?}"
    );
    // Logged before the close: it was the request timeout that ended it.
    assert!(
        d.log()
            .contains("a client sent no request within 10s: disconnected"),
        "the daemon says why it closed the silent client"
    );

    // 64 silent clients take every slot (the daemon accepts connections in the order they
    // came, one per free slot): a real request waits for one to be freed.
    let hogs: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    let mut status = d
        .command(&["status"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gantry status");
    let exit = wait_for(
        "status behind 64 silent clients to be served",
        Duration::from_secs(60),
        || status.try_wait().expect("wait for gantry status"),
    );
    // Which silent clients had the daemon closed by the time status was answered.
    let closed = hogs
        .iter()
        .filter(|hog| {
            let mut hog: &UnixStream = hog;
            hog.set_nonblocking(true).unwrap();
            match hog.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => panic!("the daemon sent {n} bytes to a silent client"),
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(e) => panic!("reading a silent client's connection: {e}"),
            }
        })
        .count();
    let out = status.wait_with_output().unwrap();
    eprintln!(
        "status behind 64 silent clients: exit {exit:?}, answered once {closed} of them were \
         closed\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(exit.code(), Some(0), "the request is served in the end");
    assert!(
        closed >= 1,
        "the 65th connection was served while all 64 silent clients held their slots"
    );
    // And every silent client is let go by its timeout.
    for mut hog in hogs {
        hog.set_nonblocking(false).unwrap();
        hog.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let n = hog
            .read(&mut buf)
            .expect("EOF from the daemon, not our read timeout");
        assert_eq!(n, 0, "the daemon sent nothing to a silent client");
    }
}
