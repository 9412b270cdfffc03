//! `gantry-edge-load`: the server and the clients of `bench/edge.sh` (std only, threads).
//!
//! - `serve PORT VERSION`: an HTTP/1.1 server with keep-alive. `GET /` answers `VERSION`;
//!   `GET /stream` answers `tick` lines every 100 ms until the connection ends. Runs inside the
//!   service's container (the bench mounts it with the host's glibc). SIGTERM ends it at once
//!   (with `init: true`), as a server without a graceful shutdown does.
//! - `watch PORT DRAIN_MS`: what a deploy does to clients, until stdin closes: a client opening a
//!   new connection per request (200/s), a keep-alive client (200/s; a request that finds its
//!   idle connection closed is retried once on a new connection, as HTTP clients do), and one
//!   long-lived stream at a time. Prints one line: `new_ok new_failed keepalive_ok
//!   keepalive_failed keepalive_retried longest_gap_ms streams streams_cut versions_seen`. A
//!   stream (one that delivered data) is cut when it ends less than DRAIN_MS after the version
//!   it was opened on was replaced (or before it was replaced at all).
//! - `throughput PORT SECONDS CONNS`: CONNS keep-alive connections sending requests back to
//!   back; prints `requests_per_s p50_us p99_us failed`.
//!
//! Clients call `EDGE_HOST` (default 127.0.0.1).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or_else(|_| usage());
    match arg(0).as_str() {
        "serve" => serve(num(1) as u16, arg(2)),
        "watch" => watch(num(1) as u16, Duration::from_millis(num(2))),
        "throughput" => throughput(num(1) as u16, Duration::from_secs(num(2)), num(3) as usize),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: gantry-edge-load serve PORT VERSION | watch PORT DRAIN_MS | throughput PORT SECONDS CONNS"
    );
    std::process::exit(64)
}

// ---------------------------------------------------------------------------------------------
// Server

fn serve(port: u16, version: String) {
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
    let body = Arc::new(format!("{version}\n"));
    for conn in listener.incoming().flatten() {
        let body = Arc::clone(&body);
        std::thread::spawn(move || {
            let _ = conn.set_nodelay(true);
            let _ = handle(conn, &body);
        });
    }
}

fn handle(conn: TcpStream, body: &str) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        let mut close = request.contains("HTTP/1.0");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let h = header.to_ascii_lowercase();
            if h.starts_with("connection: close") {
                close = true;
            }
            if header == "\r\n" || header == "\n" {
                break;
            }
        }
        if request.starts_with("GET /stream") {
            out.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            )?;
            loop {
                out.write_all(b"tick\n")?;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(head.as_bytes())?;
        out.write_all(body.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

/// One request on `conn`; the body.
fn request(conn: &mut BufReader<TcpStream>, keep_alive: bool) -> std::io::Result<String> {
    let req: &[u8] = if keep_alive {
        b"GET / HTTP/1.1\r\nHost: edge\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
    };
    conn.get_mut().write_all(req)?;
    let mut status = String::new();
    if conn.read_line(&mut status)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before an answer",
        ));
    }
    if !status.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("status {status:?}")));
    }
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed in the headers",
            ));
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if h == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body)?;
    Ok(String::from_utf8_lossy(&body).trim().to_owned())
}

/// The address clients call: `EDGE_HOST` (default 127.0.0.1).
fn host() -> std::net::Ipv4Addr {
    std::env::var("EDGE_HOST")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST)
}

fn connect(port: u16) -> std::io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(&(host(), port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_nodelay(true)?;
    Ok(BufReader::new(s))
}

#[derive(Default)]
struct Watch {
    stop: AtomicBool,
    new_ok: AtomicU64,
    new_failed: AtomicU64,
    ka_ok: AtomicU64,
    ka_failed: AtomicU64,
    ka_retried: AtomicU64,
    /// Times of successful answers (any client), ms since start.
    answers: Mutex<Vec<u64>>,
    /// (version, ms since start when first seen).
    versions: Mutex<Vec<(String, u64)>>,
    streams: AtomicU64,
    streams_cut: AtomicU64,
}

impl Watch {
    fn answered(&self, t0: Instant, body: &str) {
        let now = t0.elapsed().as_millis() as u64;
        self.answers.lock().unwrap().push(now);
        let mut v = self.versions.lock().unwrap();
        if v.last().is_none_or(|(last, _)| last != body) && !v.iter().any(|(b, _)| b == body) {
            v.push((body.to_owned(), now));
        }
    }

    fn current_version(&self) -> Option<String> {
        self.versions.lock().unwrap().last().map(|(v, _)| v.clone())
    }

    /// When `version` was replaced by a newer one, if it was.
    fn replaced_at(&self, version: &str) -> Option<u64> {
        let v = self.versions.lock().unwrap();
        let i = v.iter().position(|(b, _)| b == version)?;
        v.get(i + 1).map(|(_, t)| *t)
    }
}

fn watch(port: u16, drain: Duration) {
    let w = Arc::new(Watch::default());
    let t0 = Instant::now();
    let period = Duration::from_millis(5); // 200 requests/s per client
    let mut threads = Vec::new();
    {
        let w = Arc::clone(&w);
        threads.push(std::thread::spawn(move || {
            while !w.stop.load(Ordering::Relaxed) {
                let next = Instant::now() + period;
                match connect(port).and_then(|mut c| request(&mut c, false)) {
                    Ok(body) => {
                        w.new_ok.fetch_add(1, Ordering::Relaxed);
                        w.answered(t0, &body);
                    }
                    Err(_) => {
                        w.new_failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
    }
    {
        let w = Arc::clone(&w);
        threads.push(std::thread::spawn(move || {
            let mut conn: Option<BufReader<TcpStream>> = None;
            while !w.stop.load(Ordering::Relaxed) {
                let next = Instant::now() + period;
                let reused = conn.is_some();
                let mut result = match conn.as_mut() {
                    Some(c) => request(c, true),
                    None => connect(port).and_then(|mut c| {
                        let r = request(&mut c, true);
                        conn = Some(c);
                        r
                    }),
                };
                if result.is_err() && reused {
                    // The idle connection was closed by the server: retry once on a new one.
                    w.ka_retried.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    result = connect(port).and_then(|mut c| {
                        let r = request(&mut c, true);
                        conn = Some(c);
                        r
                    });
                }
                match result {
                    Ok(body) => {
                        w.ka_ok.fetch_add(1, Ordering::Relaxed);
                        w.answered(t0, &body);
                    }
                    Err(_) => {
                        w.ka_failed.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
    }
    {
        let w = Arc::clone(&w);
        threads.push(std::thread::spawn(move || {
            while !w.stop.load(Ordering::Relaxed) {
                let Some(version) = w.current_version() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let Ok(mut s) = TcpStream::connect((host(), port)) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if s.write_all(b"GET /stream HTTP/1.1\r\nHost: edge\r\n\r\n")
                    .is_err()
                {
                    continue;
                }
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 256];
                let mut stopped_by_us = false;
                let mut flowed = false;
                loop {
                    if w.stop.load(Ordering::Relaxed) {
                        stopped_by_us = true;
                        break;
                    }
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => flowed = true,
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                if stopped_by_us {
                    break;
                }
                if !flowed {
                    // Never opened (the port was dark): not a stream, try again.
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                w.streams.fetch_add(1, Ordering::Relaxed);
                let ended = t0.elapsed().as_millis() as u64;
                let cut = match w.replaced_at(&version) {
                    Some(at) => ended < at + drain.as_millis() as u64,
                    None => true,
                };
                if cut {
                    w.streams_cut.fetch_add(1, Ordering::Relaxed);
                    eprintln!("stream on {version} cut at {ended} ms");
                }
            }
        }));
    }
    // Until stdin closes.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    w.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let mut answers = w.answers.lock().unwrap().clone();
    answers.sort_unstable();
    let gap = answers.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0);
    println!(
        "{} {} {} {} {} {} {} {} {}",
        w.new_ok.load(Ordering::Relaxed),
        w.new_failed.load(Ordering::Relaxed),
        w.ka_ok.load(Ordering::Relaxed),
        w.ka_failed.load(Ordering::Relaxed),
        w.ka_retried.load(Ordering::Relaxed),
        gap,
        w.streams.load(Ordering::Relaxed),
        w.streams_cut.load(Ordering::Relaxed),
        w.versions.lock().unwrap().len(),
    );
}

fn throughput(port: u16, seconds: Duration, conns: usize) {
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + seconds;
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(100_000);
                let mut conn = connect(port).ok();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = match conn.as_mut() {
                        Some(c) => request(c, true),
                        None => Err(std::io::Error::other("no connection")),
                    };
                    match r {
                        Ok(_) => lat.push(t.elapsed().as_micros() as u64),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            conn = connect(port).ok();
                        }
                    }
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{:.0} {} {} {}",
        all.len() as f64 / seconds.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        failed.load(Ordering::Relaxed)
    );
}
