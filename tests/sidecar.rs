//! Shared helpers of the `sidecar_*` integration tests: Vault (OpenBao) access through the
//! `bao` CLI, a private `bao server -dev`, running `gantry-secrets` with its output captured
//! to files, mounting the host's build into a container, and the check that no secret value
//! reached that output.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, env, free_port, http_get, wait_for};

/// A Vault-compatible server and a token to talk to it.
#[derive(Debug, Clone)]
pub struct Vault {
    pub addr: String,
    pub token: String,
    pub bao: PathBuf,
}

impl Vault {
    /// The shared OpenBao started by `tests/env/up openbao`.
    pub fn shared() -> Self {
        let e = env();
        Self {
            addr: e.get("VAULT_ADDR").to_owned(),
            token: e.get("GANTRY_TEST_VAULT_ROOT_TOKEN").to_owned(),
            bao: PathBuf::from(e.get("BAO_BIN")),
        }
    }

    fn bao(&self) -> Command {
        let mut c = Command::new(&self.bao);
        c.env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .env_remove("VAULT_NAMESPACE");
        c
    }

    /// `bao kv put -mount=secret PATH K=V...` (values are test values, not real secrets).
    pub fn kv_put(&self, path: &str, pairs: &[(&str, &str)]) {
        let kv: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["kv", "put", "-mount=secret", path];
        args.extend(kv.iter().map(String::as_str));
        self.run(&args);
    }

    /// `bao ARGS` with this server's address and token; its stdout. Panics when it fails,
    /// with the arguments that are not `K=V` values and bao's stderr.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.bao().args(args).output().expect("run bao");
        let named: Vec<&str> = args.iter().copied().filter(|a| !a.contains('=')).collect();
        assert!(
            out.status.success(),
            "bao {} failed: {}",
            named.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `/v1/sys/health` answers 200.
    pub fn healthy(&self) -> bool {
        matches!(
            http_get(&format!("{}/v1/sys/health", self.addr)),
            Some((200, _))
        )
    }
}

/// A private `bao server -dev` on a free loopback port, killed on drop.
#[derive(Debug)]
pub struct PrivateVault {
    pub vault: Vault,
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl PrivateVault {
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let bao = Vault::shared().bao;
        let mut v = Self {
            vault: Vault {
                addr: format!("http://127.0.0.1:{port}"),
                token: "private-root".to_owned(),
                bao,
            },
            port,
            child: None,
            log: dir.join("bao.log"),
        };
        v.up();
        v
    }

    /// (Re)starts the server (dev mode: empty storage, `secret/` mounted, same root token).
    pub fn up(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.vault.bao)
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={}", self.vault.token),
                &format!("-dev-listen-address=127.0.0.1:{}", self.port),
                "-dev-no-store-token",
            ])
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bao server -dev");
        self.child = Some(child);
        let v = self.vault.clone();
        wait_for("private bao to answer", Duration::from_secs(30), || {
            v.healthy().then_some(())
        });
    }

    /// Stops the server (SIGKILL: an outage, not a clean shutdown).
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let v = self.vault.clone();
        wait_for("private bao to stop", Duration::from_secs(10), || {
            (!v.healthy()).then_some(())
        });
    }
}

impl Drop for PrivateVault {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A running `gantry-secrets` (possibly under `unshare`) with stdout/stderr in files.
#[derive(Debug)]
pub struct Sidecar {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// `gantry-secrets ARGS` with a clean environment: PATH, the Vault address and token, and
/// `extra`. Output goes to `dir/sidecar.{out,err}`.
pub fn sidecar_command(
    dir: &Path,
    vault: &Vault,
    extra: &[(&str, &str)],
) -> (Command, PathBuf, PathBuf) {
    sidecar_command_with(dir, vault, extra, None)
}

/// Like [`sidecar_command`], run as PID 1 of a new PID namespace when `unshare` is given.
pub fn sidecar_command_with(
    dir: &Path,
    vault: &Vault,
    extra: &[(&str, &str)],
    wrapper: Option<&[&str]>,
) -> (Command, PathBuf, PathBuf) {
    let out = dir.join("sidecar.out");
    let err = dir.join("sidecar.err");
    let mut c = match wrapper {
        Some(w) => {
            let mut c = Command::new(w[0]);
            c.args(&w[1..]).arg(bin("gantry-secrets"));
            c
        }
        None => Command::new(bin("gantry-secrets")),
    };
    c.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("VAULT_ADDR", &vault.addr)
        .env("VAULT_TOKEN", &vault.token)
        .env("RUST_LOG", "info")
        .current_dir(dir);
    for (k, v) in extra {
        c.env(k, v);
    }
    c.stdout(Stdio::from(File::create(&out).unwrap()))
        .stderr(Stdio::from(File::create(&err).unwrap()));
    (c, out, err)
}

impl Sidecar {
    pub fn spawn((mut c, stdout, stderr): (Command, PathBuf, PathBuf)) -> Self {
        let child = c.spawn().expect("start gantry-secrets");
        Self {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits for it to exit, at most `timeout`; panics with its output otherwise.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "gantry-secrets did not exit within {timeout:?}; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `docker run` arguments that mount the host's debug `gantry-secrets` at `target` in a
/// container of the test image, with what it needs from the host: glibc, and the CA
/// certificates its HTTP client loads when it is built.
pub fn docker_mounts(target: &str) -> Vec<String> {
    let mut args = vec![
        "-v".to_owned(),
        format!("{}:{target}:ro", bin("gantry-secrets").display()),
    ];
    for dir in [
        "/lib/x86_64-linux-gnu",
        "/lib64",
        "/etc/ssl/certs",
        "/usr/share/ca-certificates",
    ] {
        args.extend(["-v".to_owned(), format!("{dir}:{dir}:ro")]);
    }
    args
}

/// Panics if any of `values` appears in `text` (the output of a test run).
pub fn assert_no_secret(text: &str, values: &[&str]) {
    for v in values {
        assert!(
            !text.contains(v),
            "a secret value (length {}) appeared in the output:\n{text}",
            v.len()
        );
    }
}

/// Lines of a file (empty when it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A unique, secret-looking test value (never printed by the sidecar if all goes well).
pub fn value(tag: &str) -> String {
    format!("{tag}-{}", crate::unique("v"))
}

/// Whether we can make PID namespaces (root and util-linux `unshare`).
pub fn can_unshare() -> bool {
    Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The host pid of the only child of `pid` (the PID 1 that `unshare --fork` started).
pub fn only_child(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Children of `pid` that are zombies.
pub fn zombie_children(pid: u32) -> Vec<u32> {
    children(pid)
        .into_iter()
        .filter(|(_, state)| *state == 'Z')
        .map(|(p, _)| p)
        .collect()
}

/// Children of `pid` (alive or zombie) with their state letter from `/proc/PID/stat`.
pub fn children(pid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        if ppid == pid {
            out.push((p, state));
        }
    }
    out
}
