//! `gantry-secrets exec` with a Secrets Manager source only (moto on loopback, environment-only
//! configuration): a JSON secret expands into variables; `PutSecretValue` rotates it and the
//! child restarts with the new values. No value reaches the sidecar's output.

use std::process::Command;
use std::time::Duration;

use gantry_tests::send_signal;
use gantry_tests::sidecar::*;
use gantry_tests::{env, unique, wait_for};

/// One Secrets Manager JSON-protocol call to moto (`curl`; moto does not check signatures but
/// routes on the credential scope).
fn sm(action: &str, body: &serde_json::Value) {
    let e = env();
    let endpoint = e.get("GANTRY_TEST_AWS_ENDPOINT");
    let region = e.get("GANTRY_TEST_AWS_REGION");
    let key = e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID");
    let out = Command::new("curl")
        .args(["-sS", "-f", "-X", "POST", endpoint])
        .args(["-H", "Content-Type: application/x-amz-json-1.1"])
        .args(["-H", &format!("X-Amz-Target: secretsmanager.{action}")])
        .args([
            "-H",
            &format!(
                "Authorization: AWS4-HMAC-SHA256 Credential={key}/20260101/{region}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0"
            ),
        ])
        .args(["--data-binary", &body.to_string()])
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "secretsmanager {action} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CHILD: &str = r#"printf '%s %s %s\n' "$$" "$DB_USER" "$DB_PASSWORD" >> seen
trap 'exit 0' TERM
while :; do sleep 0.1; done"#;

#[test]
fn aws_json_secret_expands_and_rotation_restarts_the_child() {
    let e = env();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("gantry/app");
    let (user, pw1, pw2) = (value("user"), value("pw1"), value("pw2"));
    let json = |pw: &str| serde_json::json!({"DB_USER": user, "DB_PASSWORD": pw}).to_string();
    sm(
        "CreateSecret",
        &serde_json::json!({"Name": name, "SecretString": json(&pw1)}),
    );

    let vault = Vault {
        addr: String::new(),
        token: String::new(),
        bao: "bao".into(),
    };
    let mut c = sidecar_command(
        dir.path(),
        &vault,
        &[
            ("GANTRY_SECRETS_AWS_IDS", &name),
            ("GANTRY_SECRETS_REFRESH", "1s"),
            ("AWS_ENDPOINT_URL", e.get("GANTRY_TEST_AWS_ENDPOINT")),
            ("AWS_REGION", e.get("GANTRY_TEST_AWS_REGION")),
            ("AWS_ACCESS_KEY_ID", e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID")),
            (
                "AWS_SECRET_ACCESS_KEY",
                e.get("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
            ),
        ],
    );
    c.0.env_remove("VAULT_ADDR").env_remove("VAULT_TOKEN");
    c.0.args(["exec", "--", "/bin/sh", "-c", CHILD]);
    let mut sidecar = Sidecar::spawn(c);
    let seen = dir.path().join("seen");
    let first = wait_for("the child to start", Duration::from_secs(30), || {
        lines(&seen).first().cloned()
    });
    assert_eq!(first.split(' ').skip(1).collect::<Vec<_>>(), [&user, &pw1]);

    sm(
        "PutSecretValue",
        &serde_json::json!({"SecretId": name, "SecretString": json(&pw2)}),
    );
    let second = wait_for("the restarted child", Duration::from_secs(15), || {
        lines(&seen).get(1).cloned()
    });
    assert_eq!(second.split(' ').skip(1).collect::<Vec<_>>(), [&user, &pw2]);

    send_signal(sidecar.pid(), "TERM");
    assert_eq!(
        sidecar.wait(Duration::from_secs(15)).code(),
        Some(0),
        "{}",
        sidecar.output()
    );
    assert_no_secret(&sidecar.output(), &[&user, &pw1, &pw2]);
}
