//! `gantry-secrets check` run with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` in its
//! environment (a process of its own: the test's environment is never changed), against a
//! recording "proxy" and fake Vault, Secrets Manager, ECS credential and IMDS endpoints, all on
//! loopback over plain http://.
//!
//! Review item: the Vault client kept the system's proxies, and the AWS SDK's client reads
//! `HTTP_PROXY` too, so with a proxy set the Vault token, the AppRole role id and secret id,
//! the container or instance credentials and the secrets' values went in clear to the proxy,
//! although the configuration allows plain http:// only because the traffic stays on the host.
//! A proxy is now used only for https:// to another host: here it must get nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback HTTP server that keeps every request (head and body, lower-cased) and answers
/// each with `answer(request)`.
struct Fake {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    async fn start(answer: fn(&str) -> String) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let len = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    let request = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    let reply = answer(&request);
                    kept.lock().unwrap().push(request);
                    let _ = s.write_all(reply.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Self { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn reply(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Runs `gantry-secrets check` with only `vars` (and the proxy variables) in its environment.
async fn check(proxy: &Fake, home: &std::path::Path, vars: &[(&str, String)]) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gantry-secrets"));
    cmd.arg("check")
        .env_clear()
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .kill_on_drop(true);
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, proxy.url());
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("check did not end within 90 s")
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn bad_gateway(_: &str) -> String {
    reply("502 Bad Gateway", "text/plain", "")
}

fn vault(request: &str) -> String {
    if request.starts_with("post /v1/auth/approle/login ") {
        reply(
            "200 OK",
            "application/json",
            r#"{"auth":{"client_token":"s.from-approle","lease_duration":3600,"renewable":true}}"#,
        )
    } else {
        reply(
            "403 Forbidden",
            "application/json",
            r#"{"errors":["permission denied"]}"#,
        )
    }
}

#[tokio::test]
async fn no_credential_or_secret_reaches_a_proxy_over_plain_http() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("no-aws-config"), "").unwrap();
    std::fs::write(home.path().join("no-aws-credentials"), "").unwrap();
    let proxy = Fake::start(bad_gateway).await;

    // Vault, token auth.
    let v = Fake::start(vault).await;
    let out = check(
        &proxy,
        home.path(),
        &[
            ("VAULT_ADDR", v.url()),
            ("VAULT_TOKEN", "s.token-not-for-the-proxy".into()),
            ("VAULT_SECRET_PATH", "secret/app".into()),
        ],
    )
    .await;
    let seen = v.seen();
    assert!(
        seen.iter()
            .any(|r| r.contains("x-vault-token: s.token-not-for-the-proxy")),
        "Vault got no request with the token: {seen:?}\n{out}"
    );

    // Vault, AppRole: role id and secret id in the login body.
    let v = Fake::start(vault).await;
    let out = check(
        &proxy,
        home.path(),
        &[
            ("VAULT_ADDR", v.url()),
            ("VAULT_AUTH_METHOD", "approle".into()),
            ("VAULT_ROLE_ID", "role-id-not-for-the-proxy".into()),
            ("VAULT_SECRET_ID", "secret-id-not-for-the-proxy".into()),
            ("VAULT_SECRET_PATH", "secret/app".into()),
        ],
    )
    .await;
    let seen = v.seen();
    assert!(
        seen.iter()
            .any(|r| r.contains("secret-id-not-for-the-proxy")),
        "Vault got no AppRole login: {seen:?}\n{out}"
    );

    // Secrets Manager on a plain endpoint, with ECS container credentials.
    let ecs = Fake::start(|_| {
        reply(
            "200 OK",
            "application/json",
            r#"{"AccessKeyId":"AKIDFROMECS","SecretAccessKey":"ecs-secret-not-for-the-proxy","Token":"ecs-token","Expiration":"2099-01-01T00:00:00Z"}"#,
        )
    })
    .await;
    let sm = Fake::start(|_| {
        reply(
            "200 OK",
            "application/x-amz-json-1.1",
            r#"{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:app","Name":"app","SecretString":"{\"K\":\"value-not-for-the-proxy\"}","VersionId":"v1"}"#,
        )
    })
    .await;
    let out = check(
        &proxy,
        home.path(),
        &[
            ("GANTRY_SECRETS_AWS_IDS", "app".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", sm.url()),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("{}/creds", ecs.url()),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
    )
    .await;
    assert!(
        ecs.seen().iter().any(|r| r.starts_with("get /creds ")),
        "the ECS endpoint was not asked: {:?}\n{out}",
        ecs.seen()
    );
    assert!(
        sm.seen()
            .iter()
            .any(|r| r.starts_with("post / ") && r.contains("akidfromecs")),
        "Secrets Manager got no signed request: {:?}\n{out}",
        sm.seen()
    );
    assert!(out.contains("ok     aws:app"), "{out}");

    // Instance credentials (IMDSv2) instead.
    let imds = Fake::start(|r| {
        if r.starts_with("put /latest/api/token ") {
            "HTTP/1.1 200 OK\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\ncontent-length: 18\r\nconnection: close\r\n\r\nimds-session-token".to_owned()
        } else if r.starts_with("get /latest/meta-data/iam/security-credentials/ ") {
            reply("200 OK", "text/plain", "app-role")
        } else if r.starts_with("get /latest/meta-data/iam/security-credentials/app-role ") {
            reply(
                "200 OK",
                "text/plain",
                r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"AKIDFROMIMDS","SecretAccessKey":"imds-secret-not-for-the-proxy","Token":"imds-token","Expiration":"2099-01-01T00:00:00Z"}"#,
            )
        } else {
            reply("404 Not Found", "text/plain", "")
        }
    })
    .await;
    let out = check(
        &proxy,
        home.path(),
        &[
            ("GANTRY_SECRETS_AWS_IDS", "app".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", sm.url()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()),
        ],
    )
    .await;
    assert!(
        imds.seen()
            .iter()
            .any(|r| r.starts_with("get /latest/meta-data/iam/security-credentials/app-role ")),
        "IMDS was not asked for the credentials: {:?}\n{out}",
        imds.seen()
    );
    assert!(
        sm.seen().iter().any(|r| r.contains("akidfromimds")),
        "Secrets Manager got no request signed with the instance credentials: {:?}\n{out}",
        sm.seen()
    );

    assert!(
        proxy.seen().is_empty(),
        "the proxy was asked: {:?}",
        proxy.seen()
    );
}
