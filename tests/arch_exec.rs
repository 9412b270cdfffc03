//! Shared pieces of the architecture tests (`tests/tests/arch_*.rs`), which play a team's day
//! on the example stacks of `compose/`: a copy of an example's whole directory (compose file,
//! scripts, env files) for a [`Stack`] or a daemon stack, an example's app image built from the
//! local busybox image with the built `gantry-secrets` staged in by `compose/stage-sidecar`
//! (removed on drop), a container's logs, and a plain HTTP GET to a container's own address
//! (the deploy's probes reach containers the same way).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::stack::Stack;
use crate::{bin, docker, env, stderr, stdout, unique};

pub use crate::arch_host::example_dir;

/// Copies the directory `src` into `dst` (created), recursively, keeping file modes.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A [`Stack`] whose directory holds a copy of `compose/<example>` (so relative bind mounts
/// and env files resolve as they do on a host).
pub fn example_stack(example: &str) -> Stack {
    let dir = example_dir(example);
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let stack = Stack::with_file(&text);
    copy_dir(&dir, stack.dir.path());
    stack
}

/// An image built from an example's `Dockerfile` on the local busybox test image, tagged
/// `<repo>:<tag>`; removed (with every tag of the repository) on drop.
#[derive(Debug)]
pub struct ExampleImage {
    pub repo: String,
    tags: Vec<String>,
}

impl ExampleImage {
    /// A fresh repository name for the images of `example` (nothing built yet).
    pub fn new(example: &str) -> Self {
        Self {
            repo: unique(&format!("gantry-example-{example}")),
            tags: Vec::new(),
        }
    }

    /// Builds `compose/<example>` as `<repo>:<tag>`, after `edit` changed the build context (a
    /// copy of the example's directory, with `sidecar/` staged), as a release's code change
    /// would. Panics with docker's output when the build fails.
    pub fn build(&mut self, example: &str, tag: &str, edit: impl FnOnce(&Path)) -> String {
        let ctx = tempfile::tempdir().unwrap();
        copy_dir(&example_dir(example), ctx.path());
        let stage = Command::new(example_dir("stage-sidecar"))
            .arg(bin("gantry-secrets"))
            .arg(ctx.path())
            .output()
            .expect("run compose/stage-sidecar");
        assert!(stage.status.success(), "stage-sidecar: {}", stderr(&stage));
        edit(ctx.path());
        let name = format!("{}:{tag}", self.repo);
        let out = docker(&[
            "build",
            "-q",
            "--build-arg",
            &format!("BASE={}", env().get("GANTRY_TEST_IMAGE")),
            "-t",
            &name,
            ctx.path().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "docker build {name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        self.tags.push(name.clone());
        name
    }
}

impl Drop for ExampleImage {
    fn drop(&mut self) {
        for t in &self.tags {
            docker(&["rmi", "-f", t]);
        }
    }
}

/// A container's logs so far (stdout then stderr; the sidecar logs to stderr).
pub fn container_logs(container: &str) -> String {
    let out = docker(&["logs", container]);
    format!("{}{}", stdout(&out), stderr(&out))
}

/// `GET path` over HTTP/1.0 to `ip:port` (a container's address on a Docker network), with
/// `timeout` for the connect and each read: the status code and body, or `None` when nothing
/// answers.
pub fn get_from(ip: &str, port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// SHA-256 of `value`, the first 16 hex digits: what the example apps show of a secret.
pub fn digest16(value: &str) -> String {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(value.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run sha256sum");
    String::from_utf8_lossy(&out.stdout)[..16].to_owned()
}
