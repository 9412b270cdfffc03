//! Helpers for Gantry's integration tests, in one place for every test crate of the workspace
//! (`tests/tests/*`, and `agent/tests`, `sidecar/tests` through a dev-dependency): paths of the
//! built binaries, the services that `tests/env/up` started (read from its `KEY=VALUE` env
//! file), unique names, free ports, the docker CLI and the removal of a compose project,
//! polling, a daemon's log since its last start and the wait for its supervisor's first resync
//! ([`this_start`], [`past_first_resync`]), process helpers, base64, a tiny loopback-only HTTP client, a client recording each
//! of its requests ([`Caller`]), a `docker events` stream read as it comes ([`EventWatch`]: what
//! tests prove orderings with), and the rule for missing
//! prerequisites ([`prerequisite`]: under `CI=true` a test fails with the reason, it never
//! skips). Larger fixtures live in modules: [`aws`] (boto3 against moto, the SSM stand-in), [`stack`] (a stack run by `gantry --local`),
//! [`daemon`] (a `gantry daemon` of its own), [`sidecar`] (OpenBao and `gantry-secrets`),
//! [`layering`] (the import-graph check of `tests/tests/layering.rs`), [`arch_host`] (stand-in
//! images, Secrets Manager secrets and traffic for the architecture tests) and [`arch_exec`] (the
//! example stacks and images of the architecture tests).
//!
//! The env file is `/var/cache/gantry/test-env/env` unless `GANTRY_TEST_ENV_FILE` names another.

pub mod arch_exec;
pub mod arch_host;
pub mod aws;
pub mod daemon;
pub mod layering;
pub mod sidecar;
pub mod stack;
pub mod traffic;

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
        ("GITLAB_CI_LOCAL", "gitlabci"),
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

/// The part of `d`'s log written by its current start: what follows the last
/// `--- restart ---` that [`daemon::Daemon::log`] puts between starts (all of it before a
/// restart).
pub fn this_start(d: &daemon::Daemon) -> String {
    d.log()
        .rsplit("--- restart ---\n")
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the supervisor of `d`'s current start has compared every stack with its
/// release, and returns this start's log up to then. Proof by order, not by the clock: the
/// supervisor fixes where its Docker event stream begins, says so (`docker_connected` in
/// `status`), compares every stack (a reconcile, a restart or a heal it decides is logged as
/// it decides it), and only then handles events, logging each; so once it logged the death of
/// `container` (a supervised container, killed here after `docker_connected`), that resync is
/// over. (A kill, not a stop: a death alone asks for no reconcile.)
pub fn past_first_resync(d: &daemon::Daemon, container: &str) -> String {
    wait_for(
        "the supervisor to follow Docker's events",
        Duration::from_secs(60),
        || {
            let out = d.command(&["status", "--output", "json"]).output().ok()?;
            let s: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (s["daemon"]["docker_connected"] == true).then_some(())
        },
    );
    let out = docker(&["kill", container]);
    assert!(out.status.success(), "docker kill {container}: {out:?}");
    let handled = format!("container={container} action=Die");
    wait_for(
        &format!("the supervisor to handle the death of {container}"),
        Duration::from_secs(60),
        || {
            let log = this_start(d);
            log.find(&handled).map(|at| log[..at].to_owned())
        },
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it), never handed
/// out before by this process and not routed by the edge switch. A port the switch routes is
/// nftables DNAT only, with no socket bound, so the kernel may well pick it again: the ports
/// given out are kept for the life of the process (another test of this binary may have its
/// stack routed there, or be about to), and the ports in table `ip gantry` (another process's
/// routes) are passed over.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.contains(&port) {
            continue;
        }
        // Taken either way: a port routed by the switch stays unusable for this process.
        given.insert(port);
        if !edge_routed(port) {
            return port;
        }
    }
    panic!("free_port: 1000 ports from the kernel, each given out already or switched");
}

/// Whether table `ip gantry` has a rule for TCP port `port` (`tcp dport PORT`); `false` when
/// there is no such table or no `nft` to ask.
fn edge_routed(port: u16) -> bool {
    let Ok(out) = Command::new("nft")
        .args(["list", "table", "ip", "gantry"])
        .output()
    else {
        return false;
    };
    routes_port(&String::from_utf8_lossy(&out.stdout), port)
}

/// Whether `table` (`nft list table ip gantry`) matches TCP port `port` (`dport PORT`).
fn routes_port(table: &str, port: u16) -> bool {
    let port = port.to_string();
    table
        .split("dport ")
        .skip(1)
        .any(|rest| rest.split(|c: char| !c.is_ascii_digit()).next() == Some(port.as_str()))
}

/// A tiny blocking HTTP/1.0 GET of `http://HOST[:PORT]/PATH` on a loopback address, with a 2 s
/// timeout: [`http_get_within`] with 2 s, for checks that expect no answer (a dark port) and
/// want to be told so quickly. Returns the status code and the body (lossy UTF-8), or `None`
/// when nothing answers or the answer is not HTTP. Panics on a non-loopback or malformed URL.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    http_get_within(url, Duration::from_secs(2))
}

/// How long a request that must be answered may take, for the clients that count failed
/// requests ([`Caller`], [`traffic::traffic`]) and checks allowing none: a dropped SYN is
/// retransmitted after 1 s, then 3 s more, which a loaded machine may need; a stall still shows
/// in what those clients time (`sent`/`ended`, gaps between answers).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The body (trimmed) of the answer to a new connection to `127.0.0.1:port`, `None` when no
/// answer came within [`ANSWER_WITHIN`]: for checks that expect an answer, where a slow one (a
/// dropped SYN, a loaded machine) is waited for rather than taken for the product's failure.
pub fn body_on(port: u16) -> Option<String> {
    http_get_within(&format!("http://127.0.0.1:{port}/"), ANSWER_WITHIN)
        .map(|(_, b)| b.trim().to_owned())
}

/// [`http_get`] with `timeout` for the connect, each write and each read. Checks that allow no
/// failed request use 10 s: on a loaded machine one dropped SYN costs 1 s (then 3 s) of
/// retransmit, which 2 s would report as a failure of the product.
pub fn http_get_within(url: &str, timeout: Duration) -> Option<(u16, String)> {
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

/// Standard base64 with padding (RFC 4648), e.g. for a docker config `auth` value.
pub fn base64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Removes everything Docker holds for a compose project: its containers (forced), networks
/// and volumes, found by the `com.docker.compose.project` label, and the `<name>_default`
/// network by name. Errors are ignored: this runs in `Drop`, where most things may be gone.
pub fn remove_project(name: &str) {
    let filter = format!("label=com.docker.compose.project={name}");
    let ids = |args: &[&str]| -> Vec<String> {
        String::from_utf8_lossy(&docker(args).stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let containers = ids(&["ps", "-aq", "--filter", &filter]);
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        docker(&args);
    }
    for id in ids(&["network", "ls", "-q", "--filter", &filter]) {
        docker(&["network", "rm", &id]);
    }
    docker(&["network", "rm", &format!("{name}_default")]);
    for id in ids(&["volume", "ls", "-q", "--filter", &filter]) {
        docker(&["volume", "rm", "-f", &id]);
    }
    remove_edge_routes(name);
}

/// Whether this process can drive Gantry's edge switch (`nft` runs with CAP_NET_ADMIN), under
/// the [`prerequisite`] rule: under `CI=true` its absence fails the test.
#[must_use]
pub fn edge_switch_available() -> bool {
    let nft = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .is_ok_and(|o| o.status.success());
    prerequisite(
        nft,
        "`nft` runs with CAP_NET_ADMIN (root; the nftables package)",
    )
}

/// Names of a compose project's containers (running or not), sorted.
pub fn project_containers(stack: &str) -> Vec<String> {
    let filter = format!("label=com.docker.compose.project={stack}");
    let out = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// Removes the edge switch's routes of stack `name` (nftables chains `g/<name>/<service>` and
/// their jumps), so that a later test's port is never switched to a container gone with it.
/// As the product changes the table: under the host-wide lock [`EDGE_LOCK`] (a gantry running
/// now rebuilds `routes` from the chains it lists, and would otherwise put back a jump to a
/// chain between this listing and its deletion, which then fails), and in one `nft -f -`
/// transaction (the jumps, then each chain flushed and deleted).
pub fn remove_edge_routes(name: &str) {
    let prefix = format!("g/{name}/");
    // Nothing of this stack (or no table, no `nft`): no lock to wait for.
    if edge_removal(&prefix).is_none() {
        return;
    }
    let _lock = edge_lock();
    let Some(script) = edge_removal(&prefix) else {
        return;
    };
    // Best effort, as everything that runs in `Drop`.
    if let Ok(mut child) = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(script.as_bytes());
        }
        let _ = child.wait();
    }
}

/// The lock file the product takes (`flock(2)`, exclusive) around each change of table
/// `ip gantry` (agent/src/edge/nft.rs, `HOST_LOCK`).
pub const EDGE_LOCK: &str = "/run/gantry/edge.lock";

/// Takes [`EDGE_LOCK`] as the product does (`flock(2)`, exclusive: [`std::fs::File::lock`] on
/// Linux), creating it if need be; held until the file is dropped. `None` when it cannot be
/// taken (not root): then there is no lock, as in the product.
fn edge_lock() -> Option<std::fs::File> {
    let path = Path::new(EDGE_LOCK);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// The `nft -f` script that removes the chains starting with `prefix` from table `ip gantry`
/// and their jumps in `routes`, from the table as it is now ([`removal_script`]); `None` when
/// there is nothing to remove.
fn edge_removal(prefix: &str) -> Option<String> {
    let out = Command::new("nft")
        .args(["-a", "list", "table", "ip", "gantry"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    removal_script(&String::from_utf8_lossy(&out.stdout), prefix)
}

/// From `table` (`nft -a list table ip gantry`): the script deleting the jumps of `routes` to
/// chains starting with `prefix` (by handle), then flushing and deleting those chains; `None`
/// when there are none.
fn removal_script(table: &str, prefix: &str) -> Option<String> {
    let (mut jumps, mut chains) = (Vec::new(), Vec::new());
    let mut chain = "";
    for line in table.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            // `chain g/app/web { # handle 12`
            chain = rest.split_whitespace().next().unwrap_or_default();
            if chain.starts_with(prefix) {
                chains.push(chain);
            }
        } else if chain == "routes"
            && let Some((rule, handle)) = line.split_once(" # handle ")
            && rule
                .strip_prefix("jump ")
                .is_some_and(|c| c.trim().starts_with(prefix))
        {
            jumps.push(handle.trim());
        }
    }
    if jumps.is_empty() && chains.is_empty() {
        return None;
    }
    let mut script = String::new();
    for handle in jumps {
        script.push_str(&format!("delete rule ip gantry routes handle {handle}\n"));
    }
    for c in chains {
        script.push_str(&format!(
            "flush chain ip gantry {c}\ndelete chain ip gantry {c}\n"
        ));
    }
    Some(script)
}

/// `docker inspect -f FORMAT NAME`, trimmed ("" when it does not exist).
pub fn inspect(name: &str, format: &str) -> String {
    let out = docker(&["inspect", "-f", format, name]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A command's standard output, lossy UTF-8.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's standard error, lossy UTF-8.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as `&str` for a command line (test paths are UTF-8).
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// `kill -s SIG PID`; panics when `kill` fails (the process is gone).
pub fn send_signal(pid: u32, sig: &str) {
    let s = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(s.success(), "kill -s {sig} {pid} failed");
}

/// Kills a process group with SIGKILL, as SSM does on timeout or cancel, and reaps the child.
pub fn kill_group(child: &mut std::process::Child) {
    let pgid = child.id();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status();
    let _ = child.wait();
}

/// Whether missing prerequisites fail tests: `CI` is `true` (or `1`), as `.ci/run` sets it.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The rule for a test that needs something the machine may lack (`unshare`, a compose
/// binary, ...): returns `true` when `available`. Otherwise, under `CI=true` ([`strict`]) it
/// panics naming what is missing, so that the test fails; outside CI it prints that
/// it was not checked and returns `false`, and the caller returns without asserting.
#[must_use]
pub fn prerequisite(available: bool, what: &str) -> bool {
    available || missing(what, strict())
}

/// A missing prerequisite: panics when `strict`, else says it was not checked and returns `false`.
fn missing(what: &str, strict: bool) -> bool {
    if strict {
        panic!("missing prerequisite (CI=true, so this test fails instead of skipping): {what}");
    }
    eprintln!("not checked on this machine (missing prerequisite; CI=true makes it fail): {what}");
    false
}

/// A property test's edit of a valid file: `kind % 3` drops line `line` (modulo the line
/// count), replaces what follows its first `:` with `text` (the whole line when it has none),
/// or doubles the line. What the config parsers' property tests feed them.
pub fn edit_line(original: &str, kind: u8, line: usize, text: &str) -> String {
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    let i = line % lines.len();
    match kind % 3 {
        0 => {
            lines.remove(i);
        }
        1 => {
            lines[i] = match lines[i].split_once(':') {
                Some((key, _)) => format!("{key}: {text}"),
                None => text.to_owned(),
            }
        }
        _ => {
            let again = lines[i].clone();
            lines.insert(i, again);
        }
    }
    lines.join("\n")
}

/// A container's event as `docker events --format '{{json .}}'` gives it.
#[derive(Debug, Clone)]
pub struct DockerEvent {
    /// The container's id.
    pub id: String,
    /// The container's name (its `name` attribute).
    pub name: String,
    /// `create`, `start`, `kill`, `die`, `exec_die`, `exec_start: CMD`...
    pub action: String,
    /// The `signal` attribute of a `kill` (`15`, `9`...), else "".
    pub signal: String,
    /// The `exitCode` attribute of a `die` or `exec_die`, else "".
    pub exit_code: String,
    /// When it happened, by Docker's clock (`timeNano`).
    pub at: SystemTime,
}

impl DockerEvent {
    /// The kills and deaths among `events`, in order, for an assertion's message:
    /// `app-web-1 kill 15, app-web-1 die 0`.
    pub fn kill_die_timeline(events: &[DockerEvent]) -> String {
        events
            .iter()
            .filter(|e| matches!(e.action.as_str(), "kill" | "die"))
            .map(|e| format!("{} {} {}{}", e.name, e.action, e.signal, e.exit_code))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn parse(line: &str) -> Option<Self> {
        let e: serde_json::Value = serde_json::from_str(line).ok()?;
        let attr = |k: &str| {
            e["Actor"]["Attributes"][k]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        Some(Self {
            id: e["Actor"]["ID"].as_str()?.to_owned(),
            name: attr("name"),
            action: e["Action"].as_str()?.to_owned(),
            signal: attr("signal"),
            exit_code: attr("exitCode"),
            at: UNIX_EPOCH + Duration::from_nanos(e["timeNano"].as_u64()?),
        })
    }
}

/// `docker events` of containers from the moment it starts, read on a thread as they come
/// (streamed, not asked for afterwards: dockerd keeps only its last 256 events, fewer than the
/// healthchecks of the tests running beside make in a few seconds); its events are in Docker's
/// order and can be read, or waited for, while it runs. Stopped when dropped.
#[derive(Debug)]
pub struct EventWatch {
    child: std::process::Child,
    events: std::sync::Arc<std::sync::Mutex<Vec<DockerEvent>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl EventWatch {
    /// Watches the containers that match every one of `filters` (`docker events --filter`
    /// values: `label=com.docker.compose.project=NAME`, `container=NAME`...).
    pub fn start(filters: &[&str]) -> Self {
        let e = env();
        let program = e
            .vars
            .get("DOCKER_BIN")
            .map(String::as_str)
            .unwrap_or("docker");
        let mut cmd = Command::new(program);
        if let Some(host) = e.vars.get("DOCKER_HOST") {
            cmd.env("DOCKER_HOST", host);
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        cmd.args(["events", "--since"])
            .arg(format!("{}.{:09}", since.as_secs(), since.subsec_nanos()))
            .args(["--filter", "type=container"]);
        for f in filters {
            cmd.args(["--filter", f]);
        }
        let mut child = cmd
            .args(["--format", "{{json .}}"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {program} events: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = {
            let events = std::sync::Arc::clone(&events);
            std::thread::spawn(move || {
                use std::io::BufRead as _;
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(e) = DockerEvent::parse(&line) {
                        events.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                    }
                }
            })
        };
        Self {
            child,
            events,
            reader: Some(reader),
        }
    }

    /// The events so far.
    pub fn events(&self) -> Vec<DockerEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls `f` with the events so far until it returns `Some` (see [`wait_for`]).
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[DockerEvent]) -> Option<T>,
    ) -> T {
        wait_for(what, timeout, || f(&self.events()))
    }

    /// Stops watching and returns every event seen (wait for the ones needed first: an event
    /// dockerd had not sent yet is lost).
    pub fn stop(mut self) -> Vec<DockerEvent> {
        self.end();
        self.events()
    }

    fn end(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        self.end();
    }
}

/// One request of a [`Caller`]: when it was sent and when it ended (wall clock, the one
/// Docker's events are stamped with), and the trimmed body of a 200 answer, `None` for a failed
/// request (no connection, no answer within [`ANSWER_WITHIN`], another status).
#[derive(Debug, Clone)]
pub struct Call {
    pub sent: SystemTime,
    pub ended: SystemTime,
    pub answer: Option<String>,
}

/// A client on a thread opening a new connection to a loopback URL every `every` (after the
/// last request ended) and recording each request; its record can be read, or waited for,
/// while it runs. Stopped when dropped.
#[derive(Debug)]
pub struct Caller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    calls: std::sync::Arc<std::sync::Mutex<Vec<Call>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Caller {
    pub fn start(url: &str, every: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let handle = {
            let (stop, calls, url) = (
                std::sync::Arc::clone(&stop),
                std::sync::Arc::clone(&calls),
                url.to_owned(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sent = SystemTime::now();
                    let answer = http_get_within(&url, ANSWER_WITHIN)
                        .filter(|(code, _)| *code == 200)
                        .map(|(_, body)| body.trim().to_owned());
                    let call = Call {
                        sent,
                        ended: SystemTime::now(),
                        answer,
                    };
                    calls.lock().unwrap_or_else(|e| e.into_inner()).push(call);
                    std::thread::sleep(every);
                }
            })
        };
        Self {
            stop,
            calls,
            handle: Some(handle),
        }
    }

    /// The requests so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls `f` with the requests so far until it returns `Some` (see [`wait_for`]).
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[Call]) -> Option<T>,
    ) -> T {
        wait_for(what, timeout, || f(&self.calls()))
    }

    /// Stops the client (after its request under way) and returns every request it made.
    pub fn finish(mut self) -> Vec<Call> {
        self.end();
        self.calls()
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        self.end();
    }
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
    fn finds_the_ports_the_switch_routes() {
        let table = "chain g/app/web {
            ip daddr 127.0.0.1 tcp dport 18080 ct mark set 0x47414e54 dnat ip to 172.18.0.2:8080 comment \"app/web 127.0.0.1:18080\"
        }";
        assert!(routes_port(table, 18080));
        assert!(!routes_port(table, 1808) && !routes_port(table, 8080));
    }

    #[test]
    fn removes_a_stacks_chains_and_their_jumps_only() {
        let table = "table ip gantry { # handle 23
    chain prerouting { # handle 1
        type nat hook prerouting priority dstnat - 5; policy accept;
        jump routes # handle 935
    }
    chain routes { # handle 8
        jump g/app/web # handle 41
        jump g/app2/web # handle 42
        jump g/app/api # handle 43
    }
    chain g/app/web { # handle 30
        ip daddr 127.0.0.1 tcp dport 18080 ct mark set 0x47414e54 dnat ip to 172.18.0.2:8080 comment \"app/web 127.0.0.1:18080\" # handle 31
    }
    chain g/app2/web { # handle 32
    }
    chain g/app/api { # handle 33
    }
}
";
        assert_eq!(
            removal_script(table, "g/app/").as_deref(),
            Some(
                "delete rule ip gantry routes handle 41\n\
                 delete rule ip gantry routes handle 43\n\
                 flush chain ip gantry g/app/web\n\
                 delete chain ip gantry g/app/web\n\
                 flush chain ip gantry g/app/api\n\
                 delete chain ip gantry g/app/api\n"
            )
        );
        assert_eq!(removal_script(table, "g/other/"), None);
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
    fn base64_is_standard_with_padding() {
        assert_eq!(base64("foobar"), "Zm9vYmFy");
        assert_eq!(base64("AWS:x"), "QVdTOng=");
    }

    #[test]
    fn missing_prerequisites_skip_outside_ci_and_fail_in_ci() {
        assert!(prerequisite(true, "always there"));
        assert!(!missing("a thing", false));
        let r = std::panic::catch_unwind(|| missing("a thing", true));
        let msg = r.expect_err("CI=true: a missing prerequisite panics");
        let text = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            text.contains("a thing") && text.contains("CI=true"),
            "{text}"
        );
    }

    #[test]
    fn service_names_for_keys() {
        assert_eq!(service_for("GANTRY_TEST_REGISTRY_PASSWORD"), "registry");
        assert_eq!(service_for("VAULT_ADDR"), "openbao");
        assert_eq!(service_for("GANTRY_TEST_PG_PORT"), "postgres");
    }
}
