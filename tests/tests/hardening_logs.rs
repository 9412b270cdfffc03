//! No secret value at any log level: `plan`, `deploy`, `rollback`, `releases` (`--local`) and
//! `deploy`, `plan`, `rollback`, `status` through the daemon, with everything at `trace`, and
//! `gantry-secrets exec` at `trace` with Vault KV v2 and Secrets Manager sources, print none of
//! the values they handle: an env-file secret, an environment secret (taken from the process
//! environment, no `--var`), the registry password (and its `auth` encoding), the Vault token,
//! KV and Secrets Manager values. Before the fix, the Docker client library printed every
//! container create and inspect body (`Env`) at debug and trace, and the AWS SDK printed
//! `GetSecretValue` responses at trace when `LOG_SENSITIVE_BODIES=true` was set.
//!
//! Each test also checks that the values were really used (the container has them, the child
//! saw them) and that the trace level was really in effect (Gantry's own debug events are in
//! the output), so it cannot pass by doing nothing or logging nothing.
//!
//! Design: the image is pushed to the password registry of the test environment under a
//! repository of this test and its local tag removed, so the deploy must pull with the
//! credentials of a throwaway docker config. Containers, networks and pulled tags are removed
//! when a test ends, passed or failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use gantry_tests::arch_host::RegistryLogin;
use gantry_tests::daemon::Daemon;
use gantry_tests::sidecar::{Sidecar, Vault, lines, sidecar_command, value};
use gantry_tests::{base64, docker, env, unique, wait_for};
use gantry_tests::{inspect, path_str, remove_project as remove_stack, send_signal};

const COMPOSE: &str = r#"services:
  app:
    image: ${APP_IMAGE}
    command: ["sh", "-c", "exec sleep 3600"]
    env_file: [./app.env]
    environment:
      - DB_PASSWORD
    stop_signal: SIGKILL
    stop_grace_period: 1s
"#;

/// A repository of this test in the password registry, with the test image pushed to it.
struct Pushed {
    image: String,
}

impl Pushed {
    fn new(tag: &str) -> Self {
        let e = env();
        let registry = e.get("GANTRY_TEST_REGISTRY");
        let image = format!("{registry}/gantry-test/{}:{tag}", unique("hlogs"));
        let login = RegistryLogin::new();
        let out = docker(&["tag", e.get("GANTRY_TEST_IMAGE"), &image]);
        assert!(out.status.success(), "docker tag: {}", text(&out));
        let out = login.docker(&["push", &image]);
        assert!(out.status.success(), "docker push: {}", text(&out));
        docker(&["rmi", &image]);
        Self { image }
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        docker(&["rmi", &self.image]);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The secret values of one test run and their names (for the failure message).
struct Values(Vec<(&'static str, String)>);

impl Values {
    fn assert_absent(&self, what: &str, output: &str) {
        for (name, v) in &self.0 {
            let n = output.matches(v.as_str()).count();
            assert_eq!(
                n,
                0,
                "{what}: the {name} (length {}) appeared {n} times in the output",
                v.len()
            );
        }
    }
}

/// A docker config with `auths` for the test registry.
fn docker_config(dir: &Path) -> PathBuf {
    let e = env();
    let auth = registry_auth();
    let cfg = dir.join("docker");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            e.get("GANTRY_TEST_REGISTRY")
        ),
    )
    .unwrap();
    cfg
}

fn registry_auth() -> String {
    let e = env();
    base64(format!(
        "{}:{}",
        e.get("GANTRY_TEST_REGISTRY_USER"),
        e.get("GANTRY_TEST_REGISTRY_PASSWORD")
    ))
}

/// The values every deploy test must not print, plus the two it puts in the stack.
fn deploy_values(env_secret: &str, env_secret2: &str, db_password: &str) -> Values {
    let e = env();
    Values(vec![
        ("env-file secret", env_secret.to_owned()),
        ("second env-file secret", env_secret2.to_owned()),
        ("environment secret", db_password.to_owned()),
        (
            "registry password",
            e.get("GANTRY_TEST_REGISTRY_PASSWORD").to_owned(),
        ),
        ("registry auth", registry_auth()),
    ])
}

/// Gantry's own debug events that a deploy at trace prints (proof the level was in effect).
const OWN_DEBUG: &str = "container created";

#[test]
fn local_plan_deploy_rollback_at_trace_print_no_secret_value() {
    let pushed = Pushed::new("v1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), COMPOSE).unwrap();
    let (s1, s2, db) = (value("envfile1"), value("envfile2"), value("dbpw"));
    let values = deploy_values(&s1, &s2, &db);
    std::fs::write(dir.path().join("app.env"), format!("API_TOKEN={s1}\n")).unwrap();
    let cfg = docker_config(dir.path());
    let home = tempfile::tempdir().unwrap();
    let stack = unique("hlogs");
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            remove_stack(&self.0);
        }
    }
    let _cleanup = Cleanup(stack.clone());
    let file = dir.path().join("compose.yaml");
    let image_var = format!("APP_IMAGE={}", pushed.image);
    let run = |args: &[&str], rust_log: Option<&str>| -> String {
        let e = env();
        let mut cmd = Command::new(gantry_tests::bin("gantry"));
        cmd.args(args)
            .args(["--log-level", "trace"])
            .env("DOCKER_HOST", e.get("DOCKER_HOST"))
            .env("GANTRY_STATE_DIR", dir.path().join("state"))
            .env("GANTRY_CONFIG_DIR", dir.path())
            .env("GANTRY_LOCAL", "1")
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", &cfg)
            .env("DB_PASSWORD", &db)
            .env_remove("GANTRY_LOG")
            .env_remove("GANTRY_DOCKER_CONFIG")
            .env_remove("GANTRY_ECR_REGISTRIES")
            .env_remove("JOURNAL_STREAM");
        match rust_log {
            Some(directives) => cmd.env("RUST_LOG", directives),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().expect("run gantry");
        let all = text(&out);
        eprintln!(
            "$ gantry {} (exit {:?}): {} bytes of output",
            args.join(" "),
            out.status.code(),
            all.len()
        );
        values.assert_absent(&format!("gantry {}", args.join(" ")), &all);
        assert_eq!(out.status.code(), Some(0), "gantry {}", args.join(" "));
        all
    };
    let f = path_str(&file);
    run(&["plan", &stack, "-f", f, "--var", &image_var], None);
    let first = run(&["deploy", &stack, "-f", f, "--var", &image_var], None);
    assert!(first.contains(OWN_DEBUG), "trace was in effect: {first}");
    let container = format!("{stack}-app-1");
    let envs = inspect(&container, "{{json .Config.Env}}");
    assert!(
        envs.contains(&s1) && envs.contains(&db),
        "the container got both secrets"
    );

    // A new env-file value, deployed with the most verbose directives naming the crates.
    std::fs::write(dir.path().join("app.env"), format!("API_TOKEN={s2}\n")).unwrap();
    run(&["plan", &stack, "-f", f, "--var", &image_var], None);
    let second = run(
        &["deploy", &stack, "-f", f, "--var", &image_var],
        Some("trace,bollard=trace,bollard::docker=trace,hyper=trace,hyper_util=trace,h2=trace"),
    );
    assert!(second.contains(OWN_DEBUG), "trace was in effect");
    assert!(inspect(&container, "{{json .Config.Env}}").contains(&s2));

    // Releases record env files by path and hash: a rollback takes the file as it is now
    // (r1 and r2 differ only by the env file, so `rollback` alone has nothing to return to).
    run(&["rollback", &stack, "--to", "r1"], None);
    let envs = inspect(&container, "{{json .Config.Env}}");
    assert!(
        envs.contains(&s2) && !envs.contains(&s1),
        "the rollback took the env file as it is now"
    );
    run(&["releases", &stack], None);
}

#[test]
fn daemon_at_trace_logs_no_secret_value() {
    let pushed = Pushed::new("v1");
    let (s1, s2, db) = (value("envfile1"), value("envfile2"), value("dbpw"));
    let values = deploy_values(&s1, &s2, &db);
    let scratch = tempfile::tempdir().unwrap();
    let cfg = docker_config(scratch.path());
    let cfg_env = cfg.to_str().unwrap().to_owned();
    let mut d = Daemon::start(
        "daemon:\n  debounce: 500ms\n",
        &[
            ("GANTRY_LOG", "trace"),
            ("DOCKER_CONFIG", cfg_env.as_str()),
            ("JOURNAL_STREAM", ""),
        ],
    );
    let (stack, file) = d.stack("hlogsd", COMPOSE);
    let env_path = file.parent().unwrap().join("app.env");
    std::fs::write(&env_path, format!("API_TOKEN={s1}\n")).unwrap();
    let image_var = format!("APP_IMAGE={}", pushed.image);
    let client = |args: &[&str]| -> String {
        let out = d
            .command(args)
            .args(["--log-level", "trace"])
            .env("DB_PASSWORD", &db)
            .env("DOCKER_CONFIG", &cfg)
            .env_remove("GANTRY_LOG")
            .env_remove("RUST_LOG")
            .output()
            .expect("run gantry");
        let all = text(&out);
        values.assert_absent(&format!("gantry {}", args.join(" ")), &all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "gantry {}: {all}",
            args.join(" ")
        );
        all
    };
    let f = path_str(&file);
    client(&["plan", &stack, "-f", f, "--var", &image_var]);
    client(&["deploy", &stack, "-f", f, "--var", &image_var]);
    let container = format!("{stack}-app-1");
    assert!(inspect(&container, "{{json .Config.Env}}").contains(&s1));

    // The daemon's watcher redeploys on an env-file change (supervision inspects as it goes).
    let tmp = env_path.with_file_name(".app.env.new");
    std::fs::write(&tmp, format!("API_TOKEN={s2}\n")).unwrap();
    std::fs::rename(&tmp, &env_path).unwrap();
    wait_for("the env-file redeploy", Duration::from_secs(60), || {
        inspect(&container, "{{json .Config.Env}}")
            .contains(&s2)
            .then_some(())
    });
    client(&["status", &stack]);
    client(&["status", &stack, "--output", "json"]);
    client(&["rollback", &stack, "--to", "r1"]);
    let envs = inspect(&container, "{{json .Config.Env}}");
    assert!(
        envs.contains(&s2) && !envs.contains(&s1),
        "the env file as it is now"
    );
    client(&["plan", &stack, "-f", f, "--var", &image_var]);
    d.stop();
    let log = d.log();
    assert!(log.contains(OWN_DEBUG), "the daemon logged at trace");
    values.assert_absent("the daemon's log", &log);
}

/// One Secrets Manager JSON-protocol call to moto (moto routes on the credential scope).
fn sm(action: &str, body: &serde_json::Value) {
    let e = env();
    let out = Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", e.get("GANTRY_TEST_AWS_ENDPOINT")])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args(["-H", &format!("X-Amz-Target: secretsmanager.{action}")])
        .args([
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential={}/20260101/{}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
                e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID"),
                e.get("GANTRY_TEST_AWS_REGION")
            ),
        ])
        .args(["--data-binary", &body.to_string()])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "secretsmanager {action}: {}",
        text(&out)
    );
}

const CHILD: &str = r#"printf '%s %s %s\n' "$$" "$KV" "$SM_PASSWORD" >> seen
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;

#[test]
fn sidecar_at_trace_with_vault_and_secrets_manager_logs_no_secret_value() {
    let e = env();
    let vault = Vault::shared();
    let dir = tempfile::tempdir().unwrap();
    let path = unique("hlogs");
    let name = unique("gantry/hlogs");
    let (kv1, kv2, pw1, pw2) = (value("kv1"), value("kv2"), value("pw1"), value("pw2"));
    vault.kv_put(&path, &[("KV", &kv1)]);
    let json = |pw: &str| serde_json::json!({ "SM_PASSWORD": pw }).to_string();
    sm(
        "CreateSecret",
        &serde_json::json!({"Name": name, "SecretString": json(&pw1)}),
    );
    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[
            ("VAULT_SECRET_PATH", &format!("secret/{path}")),
            ("GANTRY_SECRETS_AWS_IDS", &name),
            ("GANTRY_SECRETS_REFRESH", "1s"),
            ("AWS_ENDPOINT_URL", e.get("GANTRY_TEST_AWS_ENDPOINT")),
            ("AWS_REGION", e.get("GANTRY_TEST_AWS_REGION")),
            ("AWS_ACCESS_KEY_ID", e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID")),
            (
                "AWS_SECRET_ACCESS_KEY",
                e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
            ),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            // The AWS SDK prints response bodies at trace when this is set (it redacts them
            // otherwise): a user setting, like the level, that must not reveal a value.
            ("LOG_SENSITIVE_BODIES", "true"),
            ("RUST_LOG", "trace"),
        ],
    );
    c.0.args(["--log-level", "trace", "exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    let first = wait_for("the child to start", Duration::from_secs(30), || {
        lines(&seen).first().cloned()
    });
    assert_eq!(first.split(' ').skip(1).collect::<Vec<_>>(), [&kv1, &pw1]);

    // Both sources change: the refresh fetches them at trace too.
    vault.kv_put(&path, &[("KV", &kv2)]);
    sm(
        "PutSecretValue",
        &serde_json::json!({"SecretId": name, "SecretString": json(&pw2)}),
    );
    wait_for(
        "the child to get both new values",
        Duration::from_secs(30),
        || {
            lines(&seen)
                .iter()
                .any(|l| l.ends_with(&format!(" {kv2} {pw2}")))
                .then_some(())
        },
    );
    send_signal(sidecar.pid(), "TERM");
    let status = sidecar.wait(Duration::from_secs(15));
    let out = sidecar.output();
    assert_eq!(
        status.code(),
        Some(0),
        "exit code; {} bytes of output",
        out.len()
    );
    assert!(
        out.contains("vault path resolved"),
        "the sidecar's own debug events were printed (trace was in effect)"
    );
    let values = Values(vec![
        ("Vault token", vault.token.clone()),
        ("KV value", kv1),
        ("new KV value", kv2),
        ("Secrets Manager value", pw1),
        ("new Secrets Manager value", pw2),
    ]);
    values.assert_absent("gantry-secrets at trace", &out);
}
