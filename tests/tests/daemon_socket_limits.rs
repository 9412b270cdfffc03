//! The daemon's socket under clients that connect and say nothing (issue 11, bounded inputs):
//! such a client is disconnected once its time to send a request line (10 s) is up, and the
//! socket serves at most 64 connections at once, so 64 silent clients make the next request
//! wait for a slot (it is not served beside them) but never starve it: the timeout frees them.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use gantry_tests::daemon::Daemon;

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
    let n = silent.read(&mut buf).unwrap_or(0);
    let waited = t0.elapsed();
    eprintln!("silent client closed after {} ms", waited.as_millis());
    assert_eq!(n, 0, "the daemon sent nothing and closed the connection");
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(30),
        "closed after its request timeout (10 s), not at once and not never: {waited:?}"
    );

    // 64 silent clients take every slot: a real request waits for one to be freed.
    let hogs: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&d.socket).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let out = d.gantry(&["status"]);
    let took = t0.elapsed();
    eprintln!(
        "status behind 64 silent clients took {} ms",
        took.as_millis()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the request is served in the end"
    );
    assert!(
        took >= Duration::from_secs(3),
        "the 65th connection waited for a slot (64 at once): served after {took:?}"
    );
    drop(hogs);
}
