//! `gantry-edge-load`: the server and the clients of `bench/edge.sh` (std only, threads).
//!
//! - `serve PORT VERSION`: an HTTP/1.1 server with keep-alive. `GET /` answers `VERSION`;
//!   `GET /stream` answers `tick` lines every 100 ms until the connection ends. Runs inside the
//!   service's container (the bench mounts it with the host's glibc). SIGTERM ends it at once
//!   (with `init: true`), as a server without a graceful shutdown does.
//! - `watch PORT DRAIN_MS`: what a deploy does to clients, until stdin closes: a client opening a
//!   new connection per request, a keep-alive client (each paced at 200 requests/s on a fixed
//!   schedule; one more than 50 ms behind does not catch up), and one long-lived stream at a time.
//!   Prints one line:
//!
//!   `new_ok new_failed new_per_s new_gap_ms ka_ok ka_failed ka_retried ka_per_s ka_gap_ms
//!   streams streams_cut versions_seen`
//!
//!   - `*_per_s`: requests sent per second over the whole window (answered or failed; a retry
//!     counts once), to check the load the bench promises.
//!   - `*_gap_ms`: that client's longest time without an answer, the window's start and end
//!     included. Per client: while new connections fail, the keep-alive connection may still be
//!     answered by the old container, and one figure for both would hide the outage.
//!   - `ka_retried`: the keep-alive client sends a request again, once, on a new connection
//!     only when its reused connection ended (end of stream, reset) before one byte of the
//!     answer came: the server closed it while idle, which HTTP clients retry. Any other error
//!     (a timeout, a partial answer, a status other than 200) is a failure, never retried; a
//!     retry that fails is a failure too.
//!   - A stream (one that delivered data) is cut when it ends less than DRAIN_MS after the
//!     version it was opened on was replaced (or before it was replaced at all).
//! - `throughput PORT SECONDS CONNS`: CONNS keep-alive connections sending requests back to
//!   back; prints `requests_per_s p50_us p99_us failed`.
//!
//! Clients call `EDGE_HOST` (default 127.0.0.1).

use std::collections::BTreeMap;
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
        // The whole answer in one write, as HTTP servers send a small one (nginx's writev,
        // Go's and hyper's buffered writers): a SIGTERM that ends this server cuts it between
        // two answers, never between the head and the body of one.
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        out.write_all(answer.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

/// Why a request got no answer.
#[derive(Debug)]
enum Failure {
    /// The connection ended (end of stream, reset, broken pipe) before one byte of the answer
    /// came: on a reused keep-alive connection, the server closed it while it was idle, and HTTP
    /// clients send the request again on a new connection.
    ClosedBeforeAnswer,
    /// Anything else: no connection, a timeout, a partial answer, a status other than 200.
    Other(std::io::Error),
}

impl Failure {
    /// What went wrong, in a few words (failures are counted by this).
    fn reason(&self) -> String {
        use std::io::ErrorKind::{Other, TimedOut, WouldBlock};
        match self {
            Failure::ClosedBeforeAnswer => "closed before an answer".to_owned(),
            Failure::Other(e) if matches!(e.kind(), WouldBlock | TimedOut) => {
                "timed out".to_owned()
            }
            Failure::Other(e) if e.kind() == Other => e.to_string(),
            Failure::Other(e) => e.kind().to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e)
    }
}

/// An error that means the peer closed or reset the connection.
fn is_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}

/// One request on `conn`; the body of a complete `200` answer.
fn request(conn: &mut BufReader<TcpStream>, keep_alive: bool) -> Result<String, Failure> {
    if !conn.buffer().is_empty() {
        return Err(std::io::Error::other("bytes before the request was sent").into());
    }
    let req: &[u8] = if keep_alive {
        b"GET / HTTP/1.1\r\nHost: edge\r\n\r\n"
    } else {
        b"GET / HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n"
    };
    match conn.get_mut().write_all(req) {
        Ok(()) => {}
        Err(e) if is_close(&e) => return Err(Failure::ClosedBeforeAnswer),
        Err(e) => return Err(e.into()),
    }
    // The first bytes of the answer; none at all is the only close a client may retry.
    match conn.fill_buf() {
        Ok([]) => return Err(Failure::ClosedBeforeAnswer),
        Ok(_) => {}
        Err(e) if is_close(&e) => return Err(Failure::ClosedBeforeAnswer),
        Err(e) => return Err(e.into()),
    }
    // From here on, anything short of a whole 200 answer is a failure.
    let mut status = String::new();
    conn.read_line(&mut status)?;
    if !status.starts_with("HTTP/1.1 200 ") || !status.ends_with('\n') {
        return Err(std::io::Error::other(format!("status {status:?}")).into());
    }
    let mut length = None;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed in the headers",
            )
            .into());
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if h == "\r\n" {
            break;
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("no Content-Length"))?;
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

/// A request on a new keep-alive connection, which stays in `conn` for the next ones.
fn on_new_connection(
    conn: &mut Option<BufReader<TcpStream>>,
    port: u16,
) -> Result<String, Failure> {
    let mut c = connect(port)?;
    let r = request(&mut c, true);
    *conn = Some(c);
    r
}

/// What `watch`'s clients share: the stop flag, the versions seen, the streams.
#[derive(Default)]
struct Watch {
    stop: AtomicBool,
    /// (version, ms since start when first seen).
    versions: Mutex<Vec<(String, u64)>>,
    streams: AtomicU64,
    streams_cut: AtomicU64,
}

impl Watch {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records the version an answer named; when it came, ms since the start.
    fn answered(&self, t0: Instant, body: &str) -> u64 {
        let now = t0.elapsed().as_millis() as u64;
        let mut v = self.versions.lock().unwrap();
        if v.last().is_none_or(|(last, _)| last != body) && !v.iter().any(|(b, _)| b == body) {
            v.push((body.to_owned(), now));
        }
        now
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

/// One request client's figures.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    /// Requests sent again on a new connection after the server closed the idle one.
    retried: u64,
    /// When each answer came, ms since the start (in order: one thread per client).
    answers: Vec<u64>,
    /// Failures by reason.
    reasons: BTreeMap<String, u64>,
}

impl Tally {
    fn answered(&mut self, w: &Watch, t0: Instant, body: &str) {
        self.ok += 1;
        self.answers.push(w.answered(t0, body));
    }

    fn fail(&mut self, f: &Failure) {
        self.failed += 1;
        *self.reasons.entry(f.reason()).or_default() += 1;
    }

    /// `NAME failures: N reason, M reason` (nothing when none failed).
    fn report_reasons(&self, name: &str) {
        if !self.reasons.is_empty() {
            let list: Vec<String> = self
                .reasons
                .iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect();
            eprintln!("{name} failures: {}", list.join(", "));
        }
    }

    /// Requests (answered or failed; a retry counts once) per second over `end_ms`.
    fn per_s(&self, end_ms: u64) -> f64 {
        (self.ok + self.failed) as f64 * 1000.0 / end_ms.max(1) as f64
    }

    /// The longest time without an answer, the window's start and end (`end_ms`) included:
    /// a client that never got an answer again shows the rest of the window.
    fn longest_gap(&self, end_ms: u64) -> u64 {
        let mut last = 0;
        let mut gap = 0;
        for &t in self.answers.iter().chain([end_ms].iter()) {
            gap = gap.max(t.saturating_sub(last));
            last = last.max(t);
        }
        gap
    }
}

/// 200 requests/s per client.
const PERIOD: Duration = Duration::from_millis(5);

/// How late a client may fall behind its schedule and still catch up.
const CATCH_UP: Duration = Duration::from_millis(50);

/// Paces a client on a fixed schedule of one request per [`PERIOD`], so oversleeping does not
/// add up. A client that fell behind by up to [`CATCH_UP`] (the thread waited for a core on a
/// busy machine) sends the requests it owes back to back; one further behind (a request that
/// waited for a timeout) goes on from now rather than sending a burst, so its rate shows what
/// it lost.
struct Pace(Instant);

impl Pace {
    fn start() -> Self {
        Pace(Instant::now())
    }

    fn wait(&mut self) {
        self.0 += PERIOD;
        let now = Instant::now();
        if let Some(d) = self.0.checked_duration_since(now) {
            std::thread::sleep(d);
        } else if now - self.0 > CATCH_UP {
            self.0 = now;
        }
    }
}

/// A new connection per request.
fn new_connection_client(w: &Watch, port: u16, t0: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut pace = Pace::start();
    while !w.stopped() {
        let result = connect(port)
            .map_err(Failure::from)
            .and_then(|mut c| request(&mut c, false));
        match result {
            Ok(body) => tally.answered(w, t0, &body),
            Err(f) => tally.fail(&f),
        }
        pace.wait();
    }
    tally
}

/// Requests on one keep-alive connection, a new one after a failure.
fn keep_alive_client(w: &Watch, port: u16, t0: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut pace = Pace::start();
    while !w.stopped() {
        let reused = conn.is_some();
        let mut result = match conn.as_mut() {
            Some(c) => request(c, true),
            None => on_new_connection(&mut conn, port),
        };
        if reused && matches!(result, Err(Failure::ClosedBeforeAnswer)) {
            // The server closed the idle connection: sent again once, on a new one. A timeout,
            // a partial answer or a bad status is not retried: it fails.
            tally.retried += 1;
            conn = None;
            result = on_new_connection(&mut conn, port);
        }
        match result {
            Ok(body) => tally.answered(w, t0, &body),
            Err(f) => {
                tally.fail(&f);
                conn = None;
            }
        }
        pace.wait();
    }
    tally
}

/// One long-lived stream at a time.
fn stream_client(w: &Watch, port: u16, t0: Instant, drain: Duration) {
    while !w.stopped() {
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
            if w.stopped() {
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
}

fn watch(port: u16, drain: Duration) {
    let w = Arc::new(Watch::default());
    let t0 = Instant::now();
    let spawn = |client: fn(&Watch, u16, Instant) -> Tally| {
        let w = Arc::clone(&w);
        std::thread::spawn(move || client(&w, port, t0))
    };
    let new_connection = spawn(new_connection_client);
    let keep_alive = spawn(keep_alive_client);
    let streams = {
        let w = Arc::clone(&w);
        std::thread::spawn(move || stream_client(&w, port, t0, drain))
    };
    // Until stdin closes.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let end = t0.elapsed().as_millis() as u64;
    w.stop.store(true, Ordering::Relaxed);
    let new = new_connection.join().expect("the new-connection client");
    let ka = keep_alive.join().expect("the keep-alive client");
    let _ = streams.join();
    new.report_reasons("new-connection");
    ka.report_reasons("keep-alive");
    println!(
        "{} {} {:.1} {} {} {} {} {:.1} {} {} {} {}",
        new.ok,
        new.failed,
        new.per_s(end),
        new.longest_gap(end),
        ka.ok,
        ka.failed,
        ka.retried,
        ka.per_s(end),
        ka.longest_gap(end),
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
                        None => Err(std::io::Error::other("no connection").into()),
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
