//! `gantry deploy` pulling from a registry with password auth (Debian's `docker-registry` on
//! 127.0.0.1, started by `tests/env/up registry`), through each credential path.
//!
//! What:
//! - the Amazon ECR path: the registry is declared ECR (`GANTRY_ECR_REGISTRIES`), the binary
//!   gets a token from moto's GetAuthorizationToken with the standard AWS chain (environment
//!   keys, `AWS_ENDPOINT_URL`), and the registry accepts its decoded password; the release
//!   records the digest the push reported; the token never reaches the output;
//! - wrong credentials (a docker config with a wrong password, ECR not configured) and an
//!   unreachable ECR endpoint: exit 1, the message names the registry, and the container
//!   already running keeps its id and StartedAt;
//! - `credHelpers`, `credsStore` (a real `docker-credential-gantrytest` script on PATH) and
//!   `auths` entries of a docker config.
//!
//! Design: each test pushes `gantry-test/busybox` under its own repository and tags (docker
//! login with a throwaway DOCKER_CONFIG), removes the local tag so the deploy must pull, and
//! runs `gantry --local` with its own state dir, HOME, DOCKER_CONFIG and AWS environment, so
//! no credential of the machine is used. Containers, networks and pulled tags are removed when
//! a test ends, passed or failed.
//!
//! Limits: the pushed repositories stay in the test registry (it is a throwaway service).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gantry_tests::arch_host::RegistryLogin;
use gantry_tests::{docker, env, unique};

const COMPOSE: &str = r#"services:
  app:
    image: ${APP_IMAGE}
    command: ["sh", "-c", "echo up; exec sleep 3600"]
    stop_signal: SIGKILL
    stop_grace_period: 1s
"#;

const HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "unsupported action: $1"; exit 1; }
dir="$(dirname "$0")"
server="$(cat)"
printf '%s\n' "$server" >>"$dir/servers.log"
if [ "$server" = "$(cat "$dir/registry")" ]; then
	printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "$server" "$(cat "$dir/user")" "$(cat "$dir/password")"
else
	echo "credentials not found in native keychain"; exit 1
fi
"#;

/// The registry of the test environment and one repository of this test in it.
struct Repo {
    registry: String,
    path: String,
    pulled: Vec<String>,
}

impl Repo {
    fn new() -> Self {
        Self {
            registry: env().get("GANTRY_TEST_REGISTRY").to_owned(),
            path: format!("gantry-test/{}", unique("reg")),
            pulled: Vec::new(),
        }
    }

    fn image(&self, tag: &str) -> String {
        format!("{}/{}:{tag}", self.registry, self.path)
    }

    /// Pushes the test image as `tag`, removes the local tag, returns the pushed digest.
    fn push(&mut self, tag: &str) -> String {
        let e = env();
        let target = self.image(tag);
        let login = RegistryLogin::new();
        let out = docker(&["tag", e.get("GANTRY_TEST_IMAGE"), &target]);
        assert!(out.status.success(), "docker tag: {}", text(&out));
        let out = login.docker(&["push", &target]);
        assert!(out.status.success(), "docker push: {}", text(&out));
        let digest = text(&out)
            .split_whitespace()
            .find(|w| w.starts_with("sha256:") && w.len() == 71)
            .unwrap_or_else(|| panic!("no digest in the push output: {}", text(&out)))
            .to_owned();
        self.remove_local(tag);
        self.pulled.push(tag.to_owned());
        digest
    }

    fn remove_local(&self, tag: &str) {
        docker(&["rmi", &self.image(tag)]);
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        for tag in &self.pulled {
            self.remove_local(tag);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One stack, its state dir, HOME and docker config dir.
struct Stack {
    name: String,
    dir: tempfile::TempDir,
    home: tempfile::TempDir,
}

/// How `gantry` is to authenticate.
#[derive(Default)]
struct Creds<'a> {
    /// `GANTRY_ECR_REGISTRIES` and the moto AWS environment.
    ecr: Option<&'a str>,
    /// Overrides `AWS_ENDPOINT_URL`.
    aws_endpoint: Option<&'a str>,
    /// `config.json` in DOCKER_CONFIG.
    docker_config: Option<String>,
    /// Prepended to PATH (credential helpers).
    path: Option<&'a Path>,
    /// `GANTRY_LOG=trace` instead of `info` (every library's events, the AWS SDK's included).
    trace: bool,
}

impl Stack {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), COMPOSE).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        let home = tempfile::tempdir().unwrap();
        // Empty AWS files: nothing of the machine's AWS configuration is used.
        std::fs::write(home.path().join("aws-config"), "").unwrap();
        std::fs::write(home.path().join("aws-credentials"), "").unwrap();
        Self {
            name: unique("registry"),
            dir,
            home,
        }
    }

    fn docker_config_dir(&self) -> PathBuf {
        self.dir.path().join("docker")
    }

    fn gantry(&self, args: &[&str], creds: &Creds<'_>) -> Output {
        let e = env();
        let config = self.docker_config_dir().join("config.json");
        match &creds.docker_config {
            Some(json) => std::fs::write(&config, json).unwrap(),
            None => {
                let _ = std::fs::remove_file(&config);
            }
        }
        let mut cmd = Command::new(gantry_tests::bin("gantry"));
        cmd.args(args)
            .env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("GANTRY_STATE_DIR", self.dir.path().join("state"))
            .env("GANTRY_CONFIG_DIR", self.dir.path())
            .env("GANTRY_LOCAL", "true")
            .env("GANTRY_LOG", if creds.trace { "trace" } else { "info" })
            .env("HOME", self.home.path())
            .env("DOCKER_CONFIG", self.docker_config_dir())
            .env_remove("GANTRY_DOCKER_CONFIG")
            .env_remove("GANTRY_ECR_REGISTRIES")
            .env("AWS_CONFIG_FILE", self.home.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.home.path().join("aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL");
        if let Some(hosts) = creds.ecr {
            cmd.env("GANTRY_ECR_REGISTRIES", hosts)
                .env(
                    "AWS_ENDPOINT_URL",
                    creds
                        .aws_endpoint
                        .unwrap_or(e.get("GANTRY_TEST_AWS_ENDPOINT")),
                )
                .env("AWS_REGION", e.get("GANTRY_TEST_AWS_REGION"))
                .env("AWS_ACCESS_KEY_ID", e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID"))
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
                )
                .env("AWS_MAX_ATTEMPTS", "1");
        }
        if let Some(dir) = creds.path {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", dir.display()));
        }
        let out = cmd.output().expect("run gantry");
        eprintln!(
            "$ gantry {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn deploy(&self, image: &str, creds: &Creds<'_>) -> Output {
        let file = self.dir.path().join("compose.yaml");
        let var = format!("APP_IMAGE={image}");
        self.gantry(
            &[
                "deploy",
                &self.name,
                "-f",
                file.to_str().unwrap(),
                "--var",
                &var,
            ],
            creds,
        )
    }

    /// The app's container: (id, StartedAt, image reference, running).
    fn app(&self) -> Option<(String, String, String, bool)> {
        let out = docker(&[
            "inspect",
            "-f",
            "{{.Id}} {{.State.StartedAt}} {{.Config.Image}} {{.State.Running}}",
            &format!("{}-app-1", self.name),
        ]);
        if !out.status.success() {
            return None;
        }
        let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let p: Vec<&str> = line.split(' ').collect();
        (p.len() == 4).then(|| {
            (
                p[0].to_owned(),
                p[1].to_owned(),
                p[2].to_owned(),
                p[3] == "true",
            )
        })
    }

    /// `gantry releases --output json`, newest first.
    fn releases(&self) -> Vec<serde_json::Value> {
        let out = self.gantry(
            &["releases", &self.name, "--output", "json"],
            &Creds::default(),
        );
        assert_eq!(out.status.code(), Some(0), "gantry releases");
        serde_json::from_slice(&out.stdout).expect("releases JSON")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        gantry_tests::remove_project(&self.name);
    }
}

fn basic_auth(user: &str, password: &str) -> String {
    gantry_tests::base64(format!("{user}:{password}"))
}

#[test]
fn ecr_path_deploys_a_pushed_image_and_wrong_credentials_touch_nothing() {
    let e = env();
    let mut repo = Repo::new();
    let digest = repo.push("v1");
    repo.push("v2");
    let stack = Stack::new();
    let registry = repo.registry.clone();

    // Anonymous first: the registry refuses, nothing is deployed.
    let out = stack.deploy(&repo.image("v1"), &Creds::default());
    assert_eq!(out.status.code(), Some(1), "anonymous pull: {}", text(&out));
    assert!(stack.app().is_none());

    // Through ECR: exit 0, the service runs, the release pins the pushed digest; even at
    // trace level no log line carries the token.
    let out = stack.deploy(
        &repo.image("v1"),
        &Creds {
            ecr: Some(&registry),
            trace: true,
            ..Creds::default()
        },
    );
    assert_eq!(out.status.code(), Some(0), "ECR deploy");
    let all = text(&out);
    assert!(
        all.contains("fetched an Amazon ECR authorization token"),
        "the ECR path was used: {all}"
    );
    assert!(
        !all.contains(e.get("GANTRY_TEST_REGISTRY_ECR_PASSWORD")),
        "the token leaked: {all}"
    );
    let token = gantry_tests::base64(format!(
        "AWS:{}",
        e.get("GANTRY_TEST_REGISTRY_ECR_PASSWORD")
    ));
    assert!(!all.contains(&token), "the encoded token leaked");
    let (id, started, image, running) = stack.app().expect("the app container");
    assert!(running);
    assert_eq!(image, repo.image("v1"));
    let releases = stack.releases();
    let newest = &releases[0];
    assert_eq!(newest["outcome"], "succeeded", "{newest}");
    assert_eq!(
        newest["images"]["app"]["digest"],
        format!("{registry}/{}@{digest}", repo.path),
        "{newest}"
    );

    // Wrong password in the docker config, ECR not configured: exit 1, naming the registry.
    let wrong = "wrong-password-0123456789";
    let bad = Creds {
        docker_config: Some(format!(
            r#"{{"auths": {{"{registry}": {{"auth": "{}"}}}}}}"#,
            basic_auth(e.get("GANTRY_TEST_REGISTRY_USER"), wrong)
        )),
        ..Creds::default()
    };
    let out = stack.deploy(&repo.image("v2"), &bad);
    assert_eq!(out.status.code(), Some(1), "wrong credentials");
    let all = text(&out);
    assert!(all.contains(&registry), "names the registry: {all}");
    assert!(all.contains("unauthorized"), "says why: {all}");
    assert!(!all.contains(wrong), "the password leaked: {all}");
    assert_eq!(
        stack.app(),
        Some((id.clone(), started.clone(), repo.image("v1"), true)),
        "the running container is untouched"
    );

    // ECR configured but unreachable: exit 1, naming the registry and the call.
    let down = Creds {
        ecr: Some(&registry),
        aws_endpoint: Some("http://127.0.0.1:1"),
        ..Creds::default()
    };
    let out = stack.deploy(&repo.image("v2"), &down);
    assert_eq!(out.status.code(), Some(1), "ECR unreachable");
    let all = text(&out);
    assert!(
        all.contains(&format!("registry {registry}")) && all.contains("GetAuthorizationToken"),
        "{all}"
    );
    assert_eq!(
        stack.app(),
        Some((id, started, repo.image("v1"), true)),
        "the running container is untouched"
    );
    let outcomes: Vec<String> = stack
        .releases()
        .iter()
        .filter_map(|r| r["outcome"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "succeeded").count(),
        1,
        "only the ECR deploy succeeded: {outcomes:?}"
    );
}

#[test]
fn cred_helpers_creds_store_and_auths_authenticate_pulls() {
    let e = env();
    let mut repo = Repo::new();
    for tag in ["helper", "store", "auths"] {
        repo.push(tag);
    }
    let registry = repo.registry.clone();
    let stack = Stack::new();
    let helpers = tempfile::tempdir().unwrap();
    let helper = helpers.path().join("docker-credential-gantrytest");
    std::fs::write(&helper, HELPER).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(helpers.path().join("registry"), &registry).unwrap();
    std::fs::write(
        helpers.path().join("user"),
        e.get("GANTRY_TEST_REGISTRY_USER"),
    )
    .unwrap();
    std::fs::write(
        helpers.path().join("password"),
        e.get("GANTRY_TEST_REGISTRY_PASSWORD"),
    )
    .unwrap();
    let password = e.get("GANTRY_TEST_REGISTRY_PASSWORD");

    let cases: BTreeMap<&str, String> = [
        (
            "helper",
            format!(r#"{{"credHelpers": {{"{registry}": "gantrytest"}}}}"#),
        ),
        (
            "store",
            format!(r#"{{"credsStore": "gantrytest", "auths": {{"{registry}": {{}}}}}}"#),
        ),
        (
            "auths",
            format!(
                r#"{{"auths": {{"http://{registry}/v2/": {{"auth": "{}"}}}}}}"#,
                basic_auth(e.get("GANTRY_TEST_REGISTRY_USER"), password)
            ),
        ),
    ]
    .into();
    for tag in ["helper", "store", "auths"] {
        let creds = Creds {
            docker_config: Some(cases[tag].clone()),
            path: Some(helpers.path()),
            ..Creds::default()
        };
        let out = stack.deploy(&repo.image(tag), &creds);
        assert_eq!(out.status.code(), Some(0), "{tag}");
        assert!(!text(&out).contains(password), "{tag}: the password leaked");
        let (_, _, image, running) = stack.app().expect("the app container");
        assert!(running && image == repo.image(tag), "{tag}: {image}");
    }
    let asked = std::fs::read_to_string(helpers.path().join("servers.log")).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [registry.as_str(), registry.as_str()],
        "the helper was asked once per helper deploy"
    );
}
