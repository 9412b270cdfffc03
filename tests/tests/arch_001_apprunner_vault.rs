//! Architecture 001 (AWS App Runner + Vault Agent + PM2), its team's day on `compose/apprunner-vault`,
//! against real Docker and a real OpenBao.
//!
//! The document's backend container runs Vault Agent (AWS IAM login, a KV v2 secret rendered to
//! `.env.generated` every minute) and PM2 (restarting the Node.js app on a change). Here the
//! image's ENTRYPOINT is `gantry-secrets exec`, configured by the document's own variables:
//! `VAULT_ADDR`, `VAULT_ROLE=node-api`, `VAULT_SECRET_PATH=kv/data/secrets/nodeapp`, and the
//! 1-minute refresh (`GANTRY_SECRETS_REFRESH=1m`, shortened to 2 s after the first deploy so
//! the test does not wait minutes; the first deploy runs with the document's value). Vault is set
//! up as the document says: a `kv` KV v2 mount, the `nodeapp-secrets` policy word for word, the
//! secrets under `kv/secrets/nodeapp`, a role `node-api` with that policy and a 1 h token TTL.
//!
//! What is a stand-in, and why:
//! - **the AWS IAM login.** OpenBao does not ship Vault's AWS auth backend, so `node-api` is
//!   an AppRole role here, not an IAM role, and the container gets its role id and a secret id
//!   from `vault-approle.env` (with them the sidecar logs in with AppRole; without them,
//!   `VAULT_ROLE` alone selects the IAM login of the document). The IAM login itself is tested
//!   by `sidecar/tests/source_vault_iam.rs` against STS (moto) and AWS's SigV4 test vectors;
//!   nothing here pretends it ran.
//! - **the Vault server**: a private `bao server -dev` on a free loopback port (so the test owns
//!   the `kv` mount and can take Vault down), reached with `network_mode: host`.
//! - **the app**: busybox `sh` + `httpd` (`compose/apprunner-vault/app/server.sh`) instead of
//!   Express under PM2; it answers `/api/health` with its pid and a digest of `DB_PASSWORD`.
//! - **App Runner**: Gantry deploys the one service with the document's health check
//!   (`/api/health`, every 10 s, timeout 5 s, healthy after 1, unhealthy after 5).
//!
//! The day: the document's variables, word for word, are a valid configuration for the image's
//! sidecar (its `http://` Vault address needs `GANTRY_SECRETS_VAULT_ALLOW_HTTP=true`; without
//! it, exit 78); deploy (the app sees every secret; the sidecar is PID 1; no secret in the logs);
//! the secret is rotated with `kv put` and the app restarts with the new values with no
//! deployment, in the same container; Vault goes down (the app keeps serving with the last
//! values) and is restored (the sidecar logs in again and picks up the next rotation); a release
//! pointing at a secret path the policy does not grant fails closed and is rolled back (exit 2).

use std::time::{Duration, Instant};

use gantry_tests::arch_exec::{ExampleImage, container_logs, digest16, example_stack};
use gantry_tests::sidecar::{PrivateVault, Vault, assert_no_secret, value};
use gantry_tests::{docker, free_port, http_get, inspect, stderr, stdout, wait_for};

/// The role the document's App Runner service names in `VAULT_ROLE`.
const ROLE: &str = "node-api";
/// The document's policy, word for word.
const POLICY: &str = r#"path "kv/data/secrets/nodeapp" {
  capabilities = ["read"]
}
path "kv/metadata/secrets/nodeapp" {
  capabilities = ["read", "list"]
}
"#;

/// The AppRole credentials that stand in for the instance role's IAM identity.
struct Login {
    role_id: String,
    secret_id: String,
}

/// Sets Vault up as the document's section 3.6 does (AppRole instead of `auth enable aws`).
fn provision(vault: &Vault, login: &Login, dir: &std::path::Path) {
    vault.run(&["secrets", "enable", "-path=kv", "kv-v2"]);
    let policy = dir.join("nodeapp-secrets.hcl");
    std::fs::write(&policy, POLICY).unwrap();
    vault.run(&[
        "policy",
        "write",
        "nodeapp-secrets",
        policy.to_str().unwrap(),
    ]);
    vault.run(&["auth", "enable", "approle"]);
    let role = format!("auth/approle/role/{ROLE}");
    vault.run(&[
        "write",
        &role,
        "token_policies=nodeapp-secrets",
        "token_ttl=1h",
    ]);
    // Fixed ids, so that the restored Vault (after the outage) knows the same login.
    let role_id = format!("role_id={}", login.role_id);
    vault.run(&["write", &format!("{role}/role-id"), &role_id]);
    let secret_id = format!("secret_id={}", login.secret_id);
    vault.run(&["write", &format!("{role}/custom-secret-id"), &secret_id]);
}

/// `vault kv put kv/secrets/nodeapp ...` with the document's keys.
fn put_secrets(vault: &Vault, port: u16, db_password: &str) {
    let port = format!("PORT={port}");
    let password = format!("DB_PASSWORD={db_password}");
    vault.run(&[
        "kv",
        "put",
        "kv/secrets/nodeapp",
        &port,
        "NODE_ENV=production",
        "DB_HOST=mydb.rds.amazonaws.com",
        "DB_PORT=3306",
        "DB_USER=admin",
        &password,
        "DB_NAME=appdb",
        "FRONTEND_URL=https://app.example.com",
    ]);
}

/// `/api/health` as JSON, or `None` while nothing answers 200.
fn health(port: u16) -> Option<serde_json::Value> {
    let (code, body) = http_get(&format!("http://127.0.0.1:{port}/api/health"))?;
    (code == 200).then(|| serde_json::from_str(body.trim()).ok())?
}

/// Waits until the app answers with the password whose digest is `digest`; returns its pid.
fn wait_for_password(port: u16, digest: &str, within: Duration) -> u64 {
    wait_for("the app to hold the password", within, || {
        health(port)
            .filter(|h| h["db_password_sha256"] == digest)
            .and_then(|h| h["pid"].as_u64())
    })
}

#[test]
fn apprunner_vault_day() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = PrivateVault::start(dir.path());
    let vault = server.vault.clone();
    let login = Login {
        role_id: value("role-id"),
        secret_id: value("secret-id"),
    };
    provision(&vault, &login, dir.path());
    let port = free_port();
    let (pw1, pw2, pw3) = (value("pw1"), value("pw2"), value("pw3"));
    put_secrets(&vault, port, &pw1);

    let mut image = ExampleImage::new("backend");
    let tag = image.build("apprunner-vault", "v1", |_| {});

    // 0. The document's RuntimeEnvironmentVariables, word for word, with its 1-minute
    // refresh: a valid configuration for the image's sidecar (IAM login: no token, no AppRole
    // id), once plain http:// to the Vault host is allowed; without that, refused (exit 78):
    // the token would cross the VPC in clear.
    let document = |allow_http: bool| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        let vars = [
            "VAULT_ADDR=http://192.0.2.119:8200",
            "VAULT_ROLE=node-api",
            "VAULT_SECRET_PATH=kv/data/secrets/nodeapp",
            "GANTRY_SECRETS_REFRESH=1m",
        ];
        for v in vars {
            args.extend(["-e", v]);
        }
        if allow_http {
            args.extend(["-e", "GANTRY_SECRETS_VAULT_ALLOW_HTTP=true"]);
        }
        args.extend(["--entrypoint", "/usr/bin/gantry-secrets", &tag]);
        args.extend(["check", "--offline"]);
        docker(&args)
    };
    let ok = document(true);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("config ok: 1 sources"),
        "{}",
        stdout(&ok)
    );
    let refused = document(false);
    assert_eq!(refused.status.code(), Some(78));
    assert!(
        stderr(&refused).contains("vault.addr"),
        "{}",
        stderr(&refused)
    );
    let stack = example_stack("apprunner-vault");
    std::fs::write(
        stack.dir.path().join("vault-approle.env"),
        format!(
            "VAULT_ROLE_ID={}\nVAULT_SECRET_ID={}\n",
            login.role_id, login.secret_id
        ),
    )
    .unwrap();
    let vars = [
        format!("BACKEND_IMAGE={}", image.repo),
        "IMAGE_TAG=v1".to_owned(),
        format!("VAULT_ADDR={}", vault.addr),
        format!("PORT={port}"),
    ];
    let deploy = |extra: &[&str]| {
        let mut args: Vec<&str> = Vec::new();
        for v in &vars {
            args.extend(["--var", v]);
        }
        args.extend_from_slice(extra);
        stack.deploy(&args)
    };
    let container = format!("{}-backend-1", stack.name);
    let mut seen_values = vec![pw1.clone(), login.secret_id.clone()];

    // 1. Deploy, with the document's 1-minute refresh.
    let out = deploy(&["--ready-timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "first deploy: {}", stdout(&out));
    let h = health(port).expect("the app answers /api/health");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["node_env"], "production");
    assert_eq!(h["db"], "admin@mydb.rds.amazonaws.com:3306/appdb");
    assert_eq!(h["frontend_url"], "https://app.example.com");
    assert_eq!(h["db_password_sha256"], digest16(&pw1).as_str());
    let logs = container_logs(&container);
    assert!(
        logs.contains("refresh_s=60") && logs.contains("sources=vault:kv/data/secrets/nodeapp"),
        "the sidecar runs with the document's refresh and path: {logs}"
    );
    let pid1 = docker(&["exec", &container, "cat", "/proc/1/comm"]);
    assert_eq!(
        stdout(&pid1).trim(),
        "gantry-secrets",
        "the sidecar is PID 1"
    );
    let user = docker(&["exec", &container, "id", "-u"]);
    assert_eq!(stdout(&user).trim(), "1001", "the document's non-root user");

    // The test's own refresh: 2 s (a deploy: the environment changed).
    let out = deploy(&["--var", "SECRETS_REFRESH=2s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let before = wait_for_password(port, &digest16(&pw1), Duration::from_secs(20));
    let started = inspect(&container, "{{.Id}} {{.State.StartedAt}}");

    // 2. Rotation: `vault kv put`, then the app restarts with the new values, no deployment.
    put_secrets(&vault, port, &pw2);
    seen_values.push(pw2.clone());
    let t = Instant::now();
    let after = wait_for_password(port, &digest16(&pw2), Duration::from_secs(15));
    eprintln!("rotation to new process: {:?}", t.elapsed());
    assert_ne!(after, before, "a new app process (PM2's restart)");
    assert_eq!(
        inspect(&container, "{{.Id}} {{.State.StartedAt}}"),
        started,
        "the same container: no deployment"
    );
    assert!(
        container_logs(&container).contains("child restarted with new values"),
        "the sidecar says why it restarted the app"
    );

    // 3. Vault outage: the app keeps serving with the last values.
    server.down();
    wait_for(
        "the sidecar to notice the outage",
        Duration::from_secs(20),
        || {
            container_logs(&container)
                .contains("cannot connect to Vault")
                .then_some(())
        },
    );
    let h = health(port).expect("the app still answers during the outage");
    assert_eq!(h["pid"].as_u64(), Some(after), "the same process");
    assert_eq!(h["db_password_sha256"], digest16(&pw2).as_str());
    // Restored (a dev server starts empty: set it up again, as a restore from backup would),
    // then the next rotation reaches the app: the sidecar logged in again.
    server.up();
    provision(&vault, &login, dir.path());
    put_secrets(&vault, port, &pw3);
    seen_values.push(pw3.clone());
    let restored = wait_for_password(port, &digest16(&pw3), Duration::from_secs(30));
    assert_ne!(restored, after);

    // 4. A release whose secret path the policy does not grant: fails closed, rolled back.
    let out = deploy(&[
        "--var",
        "SECRETS_REFRESH=2s",
        "--var",
        "VAULT_SECRET_PATH=kv/data/secrets/nodeapp-v2",
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "rolled back: {text}");
    assert!(
        text.contains("vault:kv/data/secrets/nodeapp-v2")
            && text.contains("403")
            && text.contains("exit_code=100"),
        "the report carries the sidecar's reason (the source, Vault's 403, exit 100): {text}"
    );
    wait_for_password(port, &digest16(&pw3), Duration::from_secs(20));
    // The rolled-back release is the stack's state: deploying it again changes nothing.
    let out = deploy(&["--var", "SECRETS_REFRESH=2s", "--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged", "{report}");

    let logs = container_logs(&container);
    let refs: Vec<&str> = seen_values.iter().map(String::as_str).collect();
    assert_no_secret(&logs, &refs);
    assert_no_secret(&text, &refs);
}
