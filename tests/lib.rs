//! Helpers for Gantry's integration tests: paths of the built binaries, the services that
//! `tests/env/up` started (read from its `KEY=VALUE` env file), unique names, the docker CLI,
//! polling, and a tiny loopback-only HTTP client.
//!
//! The env file is `/var/cache/gantry/test-env/env` unless `GANTRY_TEST_ENV_FILE` names another.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default location of the file written by `tests/env/up`.
pub const DEFAULT_ENV_FILE: &str = "/var/cache/gantry/test-env/env";

/// The services started by `tests/env/up`, as the `KEY=VALUE` pairs of its env file.
#[derive(Debug, Clone, Default)]
pub struct TestEnv {
    pub vars: BTreeMap<String, String>,
}

impl TestEnv {
    /// The value of `key`; panics naming the file and the `tests/env/up` service that sets it.
    pub fn get(&self, key: &str) -> &str {
        match self.vars.get(key) {
            Some(v) => v,
            None => panic!(
                "{key} missing from {}: run tests/env/up {}",
                env_file_path().display(),
                service_for(key)
            ),
        }
    }
}

/// Path of the env file: `$GANTRY_TEST_ENV_FILE` or [`DEFAULT_ENV_FILE`].
fn env_file_path() -> PathBuf {
    std::env::var_os("GANTRY_TEST_ENV_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ENV_FILE))
}

/// Which `tests/env/up` service writes `key` (for error messages).
fn service_for(key: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("DOCKER", "docker"),
        ("GANTRY_TEST_IMAGE", "images"),
        ("COMPOSE", "compose"),
        ("GANTRY_TEST_REGISTRY", "registry"),
        ("VAULT", "openbao"),
        ("GANTRY_TEST_VAULT", "openbao"),
        ("BAO", "openbao"),
        ("GANTRY_TEST_AWS", "moto"),
        ("GANTRY_TEST_PYTHON", "moto"),
        ("AWS", "moto"),
        ("GANTRY_TEST_PG", "postgres"),
    ];
    TABLE
        .iter()
        .find(|(prefix, _)| key.starts_with(prefix))
        .map(|(_, service)| *service)
        .unwrap_or("")
}

/// Parses the env file: `KEY=VALUE` lines, optional `export `, `#` comments, values optionally
/// in single quotes (bash style, `'\''` for a quote) or double quotes.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        vars.insert(key.trim().to_string(), unquote(value.trim()));
    }
    vars
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value[1..value.len() - 1].replace("'\\''", "'");
    }
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let inner = &value[1..value.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    value.to_string()
}

/// The test environment, loaded once; panics telling to run `tests/env/up` when it is missing.
pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = env_file_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => TestEnv {
                vars: parse_env(&text),
            },
            Err(e) => panic!(
                "cannot read the test environment file {}: {e}; \
                 run tests/env/up (or ./scripts/test) first",
                path.display()
            ),
        }
    })
}

/// Path of a built binary of the workspace (`gantry`, `gantry-secrets`): in `$GANTRY_BIN_DIR`
/// if set, else next to the test executable's profile dir (`target/debug/deps/x` →
/// `target/debug/NAME`). Panics when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("GANTRY_BIN_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(name);
    if !path.is_file() {
        panic!(
            "{} not found: build it first: cargo build --workspace --bins",
            path.display()
        );
    }
    path
}

/// A short unique name (lowercase `[a-z0-9-]`, starting with a letter or digit) for compose
/// projects, containers, secrets and the like: `<prefix>-<pid><counter><time>`, all base 36.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut clean: String = prefix
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    clean = clean.trim_matches('-').to_string();
    clean.truncate(24);
    if clean.is_empty() {
        clean.push('t');
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    format!(
        "{clean}-{}{}{}",
        base36(u64::from(std::process::id())),
        base36(u64::from(n)),
        base36(micros % 36u64.pow(4))
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

/// Runs the docker CLI (`$DOCKER_BIN` from the env file, else `docker`) with the env's
/// `DOCKER_HOST` and returns its output; panics only if the CLI cannot be started.
pub fn docker(args: &[&str]) -> Output {
    let e = env();
    let program = e
        .vars
        .get("DOCKER_BIN")
        .map(String::as_str)
        .unwrap_or("docker");
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(host) = e.vars.get("DOCKER_HOST") {
        cmd.env("DOCKER_HOST", host);
    }
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {program} {args:?}: {err}"))
}

/// Calls `f` every 100 ms until it returns `Some`, for at most `timeout`; panics naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A tiny blocking HTTP/1.0 GET of `http://HOST[:PORT]/PATH` on a loopback address, with a 2 s
/// timeout. Returns the status code and the body (lossy UTF-8), or `None` when nothing answers
/// or the answer is not HTTP. Panics on a non-loopback or malformed URL.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("http_get: only http:// URLs: {url}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = loopback_addr(authority).unwrap_or_else(|| {
        panic!("http_get: {url} is not a loopback address (127.0.0.0/8, localhost, [::1])")
    });
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    parse_response(&raw)
}

/// Resolves `host[:port]` to a loopback socket address (port 80 by default).
fn loopback_addr(authority: &str) -> Option<SocketAddr> {
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addrs: Vec<SocketAddr> = with_port.to_socket_addrs().ok()?.collect();
    addrs.into_iter().find(|a| match a.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    })
}

fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match head_end {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (raw, &raw[raw.len()..]),
    };
    let head = String::from_utf8_lossy(head);
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?.parse().ok()?;
    Some((code, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_file() {
        let vars = parse_env(
            "# comment\nA=1\nexport B='x y'\nC=\"q\\\"z\"\nD='it'\\''s'\nE=a=b\n\nbad line\n",
        );
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "x y");
        assert_eq!(vars["C"], "q\"z");
        assert_eq!(vars["D"], "it's");
        assert_eq!(vars["E"], "a=b");
        assert_eq!(vars.len(), 5);
    }

    #[test]
    fn unique_names_are_short_distinct_and_clean() {
        let a = unique("My_Stack!");
        let b = unique("My_Stack!");
        assert_ne!(a, b);
        assert!(a.starts_with("my-stack-"), "{a}");
        assert!(a.len() <= 40, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert!(unique("").starts_with("t-"));
    }

    #[test]
    fn parses_http_responses() {
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\nhello"),
            Some((200, "hello".to_string()))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Some((404, String::new()))
        );
        assert_eq!(parse_response(b"garbage"), None);
    }

    #[test]
    fn only_loopback_addresses() {
        assert!(loopback_addr("127.0.0.1:1").is_some());
        assert!(loopback_addr("localhost:1").is_some());
        assert!(loopback_addr("10.0.0.1:80").is_none());
    }

    #[test]
    fn service_names_for_keys() {
        assert_eq!(service_for("GANTRY_TEST_REGISTRY_PASSWORD"), "registry");
        assert_eq!(service_for("VAULT_ADDR"), "openbao");
        assert_eq!(service_for("GANTRY_TEST_PG_PORT"), "postgres");
    }
}

/// Standard base64 with padding (RFC 4648), e.g. for a docker config `auth` value.
pub fn base64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | (u32::from(c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod base64_tests {
    #[test]
    fn matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain), encoded);
        }
    }
}
