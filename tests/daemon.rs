//! A `gantry daemon` of its own for each test: unique socket, state and config dirs, its log in
//! a file (printed when the test ends), stopped (SIGTERM, then SIGKILL) and its stacks' containers,
//! networks and volumes removed on drop, even when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{bin, env, remove_project, unique, wait_for};

/// A running `gantry daemon` and the stacks deployed through it (see the module header).
#[derive(Debug)]
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub stacks: Vec<String>,
    pub extra_env: Vec<(String, String)>,
    starts: u32,
}

impl Daemon {
    /// Starts a daemon with `gantry.yaml` = `config` and waits until its socket answers.
    pub fn start(config: &str, extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("config/gantry.yaml"), config).unwrap();
        let socket = dir.path().join("gantry.sock");
        let mut d = Self {
            child: None,
            dir,
            socket,
            stacks: Vec::new(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            starts: 0,
        };
        d.spawn();
        d.wait_ready();
        d
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn base(&self, cmd: &mut Command) {
        let e = env();
        cmd.env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("GANTRY_SOCKET", &self.socket)
            .env("GANTRY_STATE_DIR", self.state_dir())
            .env("GANTRY_CONFIG_DIR", self.config_dir())
            .env("IMAGE", e.get("GANTRY_TEST_IMAGE"))
            .env_remove("GANTRY_LOCAL")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC");
    }

    /// Spawns the daemon process (without waiting).
    pub fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("daemon{}.log", self.starts)))
            .unwrap();
        let mut cmd = Command::new(bin("gantry"));
        cmd.arg("daemon");
        self.base(&mut cmd);
        cmd.env("GANTRY_LOG", "gantry_agent=debug,info");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("spawn gantry daemon"));
    }

    pub fn wait_ready(&self) {
        wait_for("the daemon's socket", Duration::from_secs(40), || {
            let mut cmd = Command::new(bin("gantry"));
            cmd.args(["status"]);
            self.base(&mut cmd);
            cmd.output().ok().filter(|o| o.status.success()).map(|_| ())
        });
    }

    /// Stops the daemon with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `gantry` command against this daemon.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("gantry"));
        cmd.args(args);
        self.base(&mut cmd);
        cmd
    }

    pub fn gantry(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run gantry");
        eprintln!(
            "$ gantry {}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Writes `compose.yaml` for a new stack and returns (name, file path).
    pub fn stack(&mut self, prefix: &str, compose: &str) -> (String, PathBuf) {
        let name = unique(prefix);
        let dir = self.dir.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("compose.yaml");
        std::fs::write(&file, compose).unwrap();
        self.stacks.push(name.clone());
        (name, file)
    }

    pub fn status(&self, stack: &str) -> serde_json::Value {
        let out = self
            .command(&["status", stack, "--output", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    pub fn releases(&self, stack: &str) -> Vec<serde_json::Value> {
        let out = self
            .command(&["releases", stack, "--output", "json", "--local"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("daemon{n}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("--- restart ---\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        eprintln!(
            "--- daemon log (last 80 lines)\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        for stack in &self.stacks {
            remove_project(stack);
        }
    }
}
