//! Traffic for the edge tests: a client opening a new connection every 10 ms (counting answers
//! and failures, keeping the last body) and long-lived HTTP streams (a CGI script that prints
//! the serving container's `/www/index.html`, then `tick` every 100 ms) whose flow can be
//! checked, which say which container they reached, and which can be closed.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{ANSWER_WITHIN, http_get_within};

/// The shell line that gives busybox httpd (serving `/www` on 8080) the `/cgi-bin/stream`
/// script [`Stream`] reads.
pub const STREAM_CGI: &str = r#"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\ncat /www/index.html\nwhile true; do echo tick; sleep 0.1; done\n' > /www/cgi-bin/stream && chmod +x /www/cgi-bin/stream"#;

/// New connections every 10 ms on a thread: counts of ok and failed (no 200 within
/// [`ANSWER_WITHIN`]), and the last body.
#[derive(Debug, Default)]
pub struct Traffic {
    pub stop: AtomicBool,
    pub ok: AtomicUsize,
    pub failed: AtomicUsize,
    pub last: Mutex<String>,
}

/// Starts [`Traffic`] against `127.0.0.1:port`; set `stop` and join the handle to end it.
pub fn traffic(port: u16) -> (Arc<Traffic>, std::thread::JoinHandle<()>) {
    let t = Arc::new(Traffic::default());
    let handle = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || {
            while !t.stop.load(Ordering::Relaxed) {
                match http_get_within(&format!("http://127.0.0.1:{port}/"), ANSWER_WITHIN) {
                    Some((200, body)) => {
                        t.ok.fetch_add(1, Ordering::Relaxed);
                        *t.last.lock().unwrap() = body.trim().to_owned();
                    }
                    _ => {
                        t.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    (t, handle)
}

/// An open HTTP stream to `/cgi-bin/stream`; `ticks` grows while it flows.
#[derive(Debug)]
pub struct Stream {
    pub ticks: Arc<AtomicUsize>,
    /// The first line of the body: the serving container's `/www/index.html`.
    pub first: Arc<Mutex<Option<String>>>,
    socket: TcpStream,
}

impl Stream {
    /// Opens a stream to `127.0.0.1:port` and reads it on a thread.
    pub fn open(port: u16) -> Self {
        let ticks = Arc::new(AtomicUsize::new(0));
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect the stream");
        s.write_all(b"GET /cgi-bin/stream HTTP/1.0\r\n\r\n")
            .unwrap();
        let socket = s.try_clone().unwrap();
        let first = Arc::new(Mutex::new(None));
        let (t, f) = (Arc::clone(&ticks), Arc::clone(&first));
        std::thread::spawn(move || {
            let mut body = false;
            for line in BufReader::new(s).lines() {
                match line {
                    Ok(l) if l.trim() == "tick" => {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(l) if l.trim().is_empty() => body = true,
                    Ok(l) if body => {
                        f.lock().unwrap().get_or_insert(l.trim().to_owned());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        Self {
            ticks,
            first,
            socket,
        }
    }

    /// The first line of the body once it came (within five seconds).
    pub fn first_line(&self) -> Option<String> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Some(l) = self.first.lock().unwrap().clone() {
                return Some(l);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether the stream still flows: its count grows within two seconds.
    pub fn flowing(&self) -> bool {
        flowing(&self.ticks)
    }

    /// Closes the stream from this side.
    pub fn close(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// Whether a stream still flows: `ticks` grows within two seconds.
pub fn flowing(ticks: &AtomicUsize) -> bool {
    let before = ticks.load(Ordering::Relaxed);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        if ticks.load(Ordering::Relaxed) > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
