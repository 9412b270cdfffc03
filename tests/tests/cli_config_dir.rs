//! `--config-dir` is the one place `gantry --local` takes its configuration from: the stack's
//! files and `gantry.yaml`'s `registries:` section alike (it used to take the registries from
//! `$GANTRY_CONFIG_DIR` or `/etc/gantry` whatever the flag said), and an invalid `registries:`
//! section is exit 78 naming the file and the key, as in the daemon (it used to be a log line).
//!
//! What:
//! - an invalid `registries:` in X, with a valid `gantry.yaml` in `$GANTRY_CONFIG_DIR`:
//!   `gantry --local --config-dir X deploy|plan|rollback` exits 78 naming X's file and the key,
//!   before Docker is asked;
//! - a valid one in X is the one used: X points `registries.docker_config` at a docker config
//!   logged in to the password registry of the test environment, `$GANTRY_CONFIG_DIR` points at
//!   an empty one; a deploy of an image that is only in that registry pulls it and succeeds.
//!
//! Design: the image is `gantry-test/busybox` pushed under this test's own repository (docker
//! login with a throwaway DOCKER_CONFIG), its local tag removed so the deploy must pull; HOME,
//! DOCKER_CONFIG and the state dir are the test's own, so no credential of the machine is used.
//! The stack's containers, network and pulled tag are removed at the end, passed or failed.
//!
//! Limits: the pushed repository stays in the test registry (a throwaway service).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gantry_tests::{bin, docker, env, unique};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `gantry --local --config-dir <config_dir> ARGS` with `$GANTRY_CONFIG_DIR` set to `env_dir`.
fn gantry(dir: &Path, config_dir: &Path, env_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("gantry"));
    cmd.arg("--local")
        .arg("--config-dir")
        .arg(config_dir)
        .args(args)
        .env("GANTRY_CONFIG_DIR", env_dir)
        .env("GANTRY_STATE_DIR", dir.join("state"))
        .env("GANTRY_SOCKET", dir.join("none.sock"))
        .env("DOCKER_HOST", env().get("DOCKER_HOST"))
        .env("HOME", dir.join("home"))
        .env_remove("DOCKER_CONFIG")
        .env_remove("GANTRY_DOCKER_CONFIG")
        .env_remove("GANTRY_ECR_REGISTRIES")
        .env_remove("GANTRY_LOCAL");
    let out = cmd.output().expect("run gantry");
    eprintln!("$ gantry {}\n{}", args.join(" "), text(&out));
    out
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn an_invalid_registries_section_in_the_config_dir_is_exit_78_with_local() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    let y = dir.path().join("y");
    write(&x.join("gantry.yaml"), "registries:\n  ecr: ['bad host']\n");
    write(&y.join("gantry.yaml"), "registries: {}\n");
    write(
        &x.join("stacks/shop/compose.yaml"),
        "services:\n  web:\n    image: busybox\n",
    );
    // DOCKER_HOST is set, but the configuration is refused before Docker is asked.
    for args in [
        &["deploy", "shop"][..],
        &["plan", "shop"][..],
        &["rollback", "shop"][..],
    ] {
        let out = gantry(dir.path(), &x, &y, args);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {all}");
        assert!(
            all.contains(&x.join("gantry.yaml").display().to_string())
                && all.contains("registries.ecr[0]"),
            "{args:?}: names X's file and the key: {all}"
        );
    }
}

#[test]
fn a_stack_directory_is_read_as_compose_reads_a_project_directory() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x");
    write(&x.join("gantry.yaml"), "registries: {}\n");
    let stack = x.join("stacks/shop");
    // No compose.yaml: docker-compose.yml is the file, and its override is merged over it.
    write(
        &stack.join("docker-compose.yml"),
        "services:\n  web:\n    image: busybox\n",
    );
    write(
        &stack.join("docker-compose.override.yml"),
        "services:\n  extra:\n    image: busybox\n",
    );
    let out = gantry(dir.path(), &x, &x, &["plan", "shop", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("\"web\"") && plan.contains("\"extra\""),
        "both files: {plan}"
    );
}

/// Removes the stack's containers and network, and the pulled tag, when dropped.
struct Cleanup {
    stack: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=com.docker.compose.project={}", self.stack);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        docker(&["network", "rm", &format!("{}_default", self.stack)]);
        docker(&["rmi", &self.image]);
    }
}

#[test]
fn the_registries_of_the_config_dir_are_the_ones_used() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let registry = e.get("GANTRY_TEST_REGISTRY");
    let stack = unique("cfgdir");
    let image = format!("{registry}/gantry-test/{stack}:1");
    let cleanup = Cleanup {
        stack: stack.clone(),
        image: image.clone(),
    };

    // Push the test image under this test's repository, logged in with a throwaway config.
    let login = dir.path().join("login");
    std::fs::create_dir_all(&login).unwrap();
    let docker_with = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new(e.vars.get("DOCKER_BIN").map_or("docker", String::as_str));
        cmd.args(args)
            .env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("DOCKER_CONFIG", &login)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };
    let out = docker_with(
        &[
            "login",
            "--username",
            e.get("GANTRY_TEST_REGISTRY_USER"),
            "--password-stdin",
            registry,
        ],
        Some(e.get("GANTRY_TEST_REGISTRY_PASSWORD")),
    );
    assert!(out.status.success(), "docker login: {}", text(&out));
    let out = docker(&["tag", e.get("GANTRY_TEST_IMAGE"), &image]);
    assert!(out.status.success(), "docker tag: {}", text(&out));
    let out = docker_with(&["push", &image], None);
    assert!(out.status.success(), "docker push: {}", text(&out));
    let out = docker(&["rmi", &image]);
    assert!(out.status.success(), "docker rmi: {}", text(&out));

    // X: the logged-in docker config; $GANTRY_CONFIG_DIR: an empty one (anonymous pulls).
    let x = dir.path().join("x");
    let y = dir.path().join("y");
    write(
        &x.join("gantry.yaml"),
        &format!(
            "registries:\n  docker_config: {}\n",
            login.join("config.json").display()
        ),
    );
    write(&y.join("docker/config.json"), "{}\n");
    write(
        &y.join("gantry.yaml"),
        &format!(
            "registries:\n  docker_config: {}\n",
            y.join("docker/config.json").display()
        ),
    );
    write(
        &x.join(format!("stacks/{stack}/compose.yaml")),
        &format!(
            "services:\n  app:\n    image: {image}\n    command: [\"sh\", \"-c\", \"exec sleep 3600\"]\n    stop_signal: SIGKILL\n"
        ),
    );

    let out = gantry(dir.path(), &x, &y, &["deploy", &stack]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the deploy pulls with X's credentials: {}",
        text(&out)
    );
    let label = format!("label=com.docker.compose.project={stack}");
    let running = docker(&["ps", "-q", "--filter", &label]);
    assert!(
        !String::from_utf8_lossy(&running.stdout).trim().is_empty(),
        "the stack's container runs"
    );
    drop(cleanup);
}
