//! Fixtures of the architecture tests that run on one host (`tests/tests/arch_000_fintech.rs`,
//! `arch_004_ec2_gateway.rs`): stand-in images built from an example's own `Dockerfile` (as
//! its CI would build them) and pushed to the local registry through a docker CLI logged in to
//! it ([`RegistryLogin`]), AWS Secrets Manager secrets in moto, a traffic client that keeps
//! calling a page and counts what failed, reading a file out of a named volume, and SHA-256
//! through coreutils. Images it built or pulled and the secrets it made are removed on drop.
//! `edge_switch.rs` uses its traffic client, `deploy_registry.rs` and `hardening_logs.rs` its
//! registry login.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::aws::boto;
use crate::{ANSWER_WITHIN, docker, env, http_get_within, stderr, stdout};

/// The repository's `compose/<example>` directory.
pub fn example_dir(example: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compose")
        .join(example)
}

/// Local image tags a test made (built, tagged or pulled), removed on drop.
#[derive(Debug, Default)]
pub struct Images {
    tags: Vec<String>,
}

impl Images {
    /// `docker build` of `context` (an example directory with its Dockerfile) on the local
    /// busybox image, as `tag`, with `--build-arg`s.
    pub fn build(&mut self, context: &Path, tag: &str, args: &[(&str, &str)]) {
        let base = format!("BASE={}", env().get("GANTRY_TEST_IMAGE"));
        let mut cmd: Vec<String> = vec!["build".into(), "-q".into(), "--build-arg".into(), base];
        for (k, v) in args {
            cmd.push("--build-arg".into());
            cmd.push(format!("{k}={v}"));
        }
        cmd.extend(["-t".into(), tag.into(), context.display().to_string()]);
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let out = docker(&cmd);
        assert!(
            out.status.success(),
            "docker build {tag}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        self.tags.push(tag.to_owned());
    }

    /// `docker tag FROM TO`.
    pub fn tag(&mut self, from: &str, to: &str) {
        let out = docker(&["tag", from, to]);
        assert!(out.status.success(), "docker tag {to}: {}", stderr(&out));
        self.tags.push(to.to_owned());
    }

    /// Pushes `tags` to the local registry (see [`RegistryLogin`]) and removes them locally,
    /// so a deploy must pull them.
    pub fn push(&mut self, tags: &[String]) {
        let login = RegistryLogin::new();
        for tag in tags {
            let out = login.docker(&["push", tag]);
            assert!(out.status.success(), "docker push {tag}: {}", stderr(&out));
            docker(&["rmi", tag]);
        }
    }

    /// Remembers a tag that a deploy will pull, to remove it at the end.
    pub fn pulled(&mut self, tag: &str) {
        self.tags.push(tag.to_owned());
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for tag in &self.tags {
            docker(&["rmi", tag]);
        }
    }
}

/// A throwaway docker CLI configuration (`DOCKER_CONFIG`) logged in to the local registry
/// with the test user, as a CI job's `docker login`; removed on drop.
#[derive(Debug)]
pub struct RegistryLogin {
    pub config: tempfile::TempDir,
}

impl RegistryLogin {
    /// `docker login --password-stdin` to the test registry; panics when it fails.
    pub fn new() -> Self {
        let e = env();
        let login = Self {
            config: tempfile::tempdir().unwrap(),
        };
        let mut child = login
            .command(&[
                "login",
                "--username",
                e.get("GANTRY_TEST_REGISTRY_USER"),
                "--password-stdin",
                e.get("GANTRY_TEST_REGISTRY"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker login");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(e.get("GANTRY_TEST_REGISTRY_PASSWORD").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker login: {}", stderr(&out));
        login
    }

    /// The docker CLI with this configuration.
    pub fn command(&self, args: &[&str]) -> Command {
        let e = env();
        let mut c = Command::new(e.vars.get("DOCKER_BIN").map_or("docker", String::as_str));
        c.args(args)
            .env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("DOCKER_CONFIG", self.config.path());
        c
    }

    /// Runs the docker CLI with this configuration.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run docker")
    }
}

impl Default for RegistryLogin {
    fn default() -> Self {
        Self::new()
    }
}

/// A JSON secret in moto's Secrets Manager, deleted (without recovery) on drop. The values are
/// test values; the tests never print them.
#[derive(Debug)]
pub struct Secret {
    pub name: String,
}

impl Secret {
    pub fn create(name: &str, value: &serde_json::Value) -> Self {
        boto(&format!(
            "c('secretsmanager').create_secret(Name={name:?}, SecretString={:?})",
            value.to_string()
        ));
        Self {
            name: name.to_owned(),
        }
    }

    /// PutSecretValue: a rotation.
    pub fn put(&self, value: &serde_json::Value) {
        boto(&format!(
            "c('secretsmanager').put_secret_value(SecretId={:?}, SecretString={:?})",
            self.name,
            value.to_string()
        ));
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            boto(&format!(
                "c('secretsmanager').delete_secret(SecretId={:?}, ForceDeleteWithoutRecovery=True)",
                self.name
            ))
        });
    }
}

/// The AWS variables that point an SDK at moto with the test credentials.
pub fn moto_env() -> Vec<(&'static str, String)> {
    let e = env();
    vec![
        (
            "AWS_ENDPOINT_URL",
            e.get("GANTRY_TEST_AWS_ENDPOINT").to_owned(),
        ),
        ("AWS_REGION", e.get("GANTRY_TEST_AWS_REGION").to_owned()),
        (
            "AWS_ACCESS_KEY_ID",
            e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID").to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY").to_owned(),
        ),
    ]
}

/// SHA-256 (hex) of `bytes`, through `sha256sum`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// SHA-256 (hex) of the value of variable `var` as `container`'s main process (PID 1's child
/// under `init`, or PID 1) sees it, computed inside the container: the value never leaves it.
pub fn env_sha256_in(container: &str, process: &str, var: &str) -> String {
    let script = format!(
        "p=$(pidof {process} | awk '{{print $NF}}'); tr '\\0' '\\n' < /proc/$p/environ | sed -n 's/^{var}=//p' | tr -d '\\n' | sha256sum"
    );
    let out = docker(&["exec", container, "sh", "-c", &script]);
    stdout(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The content of `path` inside named volume `volume` ("" when it does not exist).
pub fn volume_file(volume: &str, path: &str) -> String {
    let out = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/v:ro"),
        env().get("GANTRY_TEST_IMAGE"),
        "cat",
        &format!("/v/{path}"),
    ]);
    stdout(&out)
}

/// A client on the host that calls `url` on a new connection again and again and records, per
/// request, when and what it got (the body of a 200, or nothing). A request waits up to
/// [`ANSWER_WITHIN`] for its answer: a SYN retransmitted on a loaded machine is a gap, not a
/// failed request; a refused connection still fails at once.
#[derive(Debug)]
pub struct Traffic {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Duration, Option<String>)>>,
}

/// What a [`Traffic`] client saw.
#[derive(Debug)]
pub struct Seen {
    pub ok: usize,
    pub failed: usize,
    /// Distinct bodies of the answers, in the order they first came.
    pub bodies: Vec<String>,
    /// The longest time between two answers.
    pub longest_gap: Duration,
}

impl Traffic {
    /// A request every 20 ms.
    pub fn start(url: &str) -> Self {
        Self::every(url, Duration::from_millis(20))
    }

    /// A request, then a pause of `period`, and again.
    pub fn every(url: &str, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            let url = url.to_owned();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = http_get_within(&url, ANSWER_WITHIN)
                        .filter(|(code, _)| *code == 200)
                        .map(|(_, body)| body.trim().to_owned());
                    seen.push((t0.elapsed(), answer));
                    std::thread::sleep(period);
                }
                seen
            })
        };
        Self { stop, handle }
    }

    pub fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.handle.join().expect("the traffic thread");
        let mut bodies: Vec<String> = Vec::new();
        for body in seen.iter().filter_map(|(_, b)| b.as_ref()) {
            if !bodies.contains(body) {
                bodies.push(body.clone());
            }
        }
        let answered: Vec<Duration> = seen
            .iter()
            .filter(|(_, a)| a.is_some())
            .map(|(t, _)| *t)
            .collect();
        Seen {
            ok: answered.len(),
            failed: seen.len() - answered.len(),
            bodies,
            longest_gap: answered
                .windows(2)
                .map(|w| w[1] - w[0])
                .max()
                .unwrap_or_default(),
        }
    }
}
