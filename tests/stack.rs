//! A stack under test: its own compose file, project name, state dir and host port, run
//! through the built `gantry` binary in-process mode (`GANTRY_LOCAL=1`); removed with
//! everything Docker made for it when dropped, even when the test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{bin, docker, env, free_port, http_get, remove_project, unique, wait_for};

/// A compose project run by `gantry --local` (see the module header).
#[derive(Debug)]
pub struct Stack {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub port: u16,
}

impl Stack {
    /// A copy of compose/hello under a fresh name.
    pub fn hello() -> Self {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/hello/compose.yaml");
        let text = std::fs::read_to_string(&src).expect("compose/hello/compose.yaml");
        Self::with_file(&text)
    }

    pub fn with_file(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), text).unwrap();
        Self {
            name: unique("st"),
            dir,
            state: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.path().join("compose.yaml")
    }

    pub fn write(&self, text: &str) {
        std::fs::write(self.file(), text).unwrap();
    }

    /// `gantry ARGS --var WEB_PORT=<port>` with the test environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let e = env();
        let mut cmd = Command::new(bin("gantry"));
        cmd.args(args)
            .env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("GANTRY_STATE_DIR", self.state.path())
            .env("GANTRY_CONFIG_DIR", self.dir.path())
            .env("GANTRY_LOCAL", "1")
            .env("IMAGE", e.get("GANTRY_TEST_IMAGE"))
            .env_remove("GREETING");
        if matches!(args.first(), Some(&"deploy" | &"plan")) {
            cmd.args(["--var", &format!("WEB_PORT={}", self.port)]);
        }
        cmd
    }

    pub fn gantry(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run gantry");
        eprintln!(
            "$ gantry {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn deploy_args<'a>(&'a self, file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["deploy", &self.name, "-f", file];
        args.extend_from_slice(extra);
        args
    }

    pub fn deploy(&self, extra: &[&str]) -> Output {
        let file = self.file();
        let file = file.to_str().unwrap();
        self.gantry(&self.deploy_args(file, extra))
    }

    /// Starts a deploy in the background, in its own process group (like SSM runs commands).
    pub fn spawn_deploy(&self, extra: &[&str]) -> Child {
        use std::os::unix::process::CommandExt;
        let file = self.file();
        let file = file.to_str().unwrap();
        self.command(&self.deploy_args(file, extra))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn gantry")
    }

    pub fn page(&self) -> String {
        let url = format!("http://127.0.0.1:{}/", self.port);
        wait_for("the web page", Duration::from_secs(20), || {
            http_get(&url).filter(|(s, _)| *s == 200).map(|(_, b)| b)
        })
    }

    /// container name → (id, StartedAt), for every container of the project.
    pub fn containers(&self) -> BTreeMap<String, (String, String)> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let out = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
        let mut map = BTreeMap::new();
        for name in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let out = docker(&["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", name]);
            let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if let Some((id, started)) = line.split_once(' ') {
                map.insert(name.to_owned(), (id.to_owned(), started.to_owned()));
            }
        }
        map
    }

    /// The image id a container runs.
    pub fn image_of(&self, container: &str) -> String {
        let out = docker(&["inspect", "-f", "{{.Image}}", container]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        remove_project(&self.name);
    }
}
