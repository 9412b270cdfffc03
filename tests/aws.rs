//! AWS as the tests see it: [`boto`] runs a Python snippet with boto3 against moto (the
//! `moto` service of `tests/env`), and [`SsmStandIn`] runs `tests/standins/ssm.py`, the
//! stand-in for SSM Run Command and its agent (moto records commands and runs nothing; the
//! stand-in runs the documents of `packaging/ssm/` on this host, see its header).
//! Used by `remote_ssm` (gantry remote) and `packaging_gitlab` (the GitLab template).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{env, free_port, wait_for};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a Python snippet with boto3 against moto; `c(service)` in the snippet is a client of
/// moto with the test credentials. Returns stdout, panics on failure.
pub fn boto(script: &str) -> String {
    let e = env();
    let out = Command::new(e.get("GANTRY_TEST_PYTHON"))
        .arg("-c")
        .arg(format!(
            "import boto3, json, sys\nc = lambda s: boto3.client(s, endpoint_url='{}', region_name='{}', aws_access_key_id='{}', aws_secret_access_key='{}')\n{script}",
            e.get("GANTRY_TEST_AWS_ENDPOINT"),
            e.get("GANTRY_TEST_AWS_REGION"),
            e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID"),
            e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
        ))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The SSM stand-in on a free loopback port, with the repository's documents and `config`
/// (`{"instances": {"i-1": {"env": {...}}}, "tags": {"Role=web": ["i-1"]}}`); killed on drop.
#[derive(Debug)]
pub struct SsmStandIn {
    child: Child,
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SSM`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl SsmStandIn {
    pub fn start(config: &serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let port = free_port();
        let child = Command::new(env().get("GANTRY_TEST_PYTHON"))
            .arg(repo().join("tests/standins/ssm.py"))
            .args(["--port", &port.to_string(), "--documents"])
            .arg(repo().join("packaging/ssm"))
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the SSM stand-in");
        let url = format!("http://127.0.0.1:{port}");
        wait_for("the SSM stand-in", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for SsmStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
