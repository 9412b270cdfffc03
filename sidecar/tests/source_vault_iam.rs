//! The Vault AWS IAM login, end to end as far as this machine allows.
//!
//! OpenBao does not ship Vault's AWS auth backend, so this test stands in for it: a small HTTP
//! server plays Vault's `POST /v1/auth/<mount>/login`, checks the payload against Vault's
//! documented shape, and does what Vault does with it: it replays the signed
//! `sts:GetCallerIdentity` request (URL, body and headers taken from the payload) to STS, here
//! moto's server from the test environment (`GANTRY_TEST_AWS_ENDPOINT`), and answers with a token
//! when STS names a caller. The signature itself is checked against AWS's published SigV4 test
//! vectors in `source::vault::iam`'s unit tests (moto does not verify signatures).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gantry_sidecar::source::vault::VaultSession;
use gantry_sidecar::source::{RawSourcesConfig, RawVaultAuth, RawVaultConfig, SourcesConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn test_env() -> BTreeMap<String, String> {
    gantry_tests::env().vars.clone()
}

/// What the fake Vault saw and decided.
#[derive(Debug, Default)]
struct Seen {
    path: String,
    payload: Value,
    sts_status: u16,
    sts_answer: String,
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "client closed early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            return (head, buf[end + 4..end + 4 + len].to_vec());
        }
    }
}

/// Plays Vault's AWS auth login; answers 400 when the payload or the STS replay is wrong.
async fn fake_vault(sts: String, seen: Arc<Mutex<Seen>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (head, body) = read_request(&mut sock).await;
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            let (status, answer) = if path.ends_with("/login") {
                let payload: Value = serde_json::from_slice(&body).unwrap();
                let dec = |k: &str| {
                    B64.decode(payload[k].as_str().unwrap_or_default())
                        .unwrap_or_default()
                };
                let headers: BTreeMap<String, Vec<String>> =
                    serde_json::from_slice(&dec("iam_request_headers")).unwrap_or_default();
                // Replay to STS as Vault does (its own endpoint, the client's signed headers).
                let mut req = http.post(&sts).body(dec("iam_request_body"));
                for (k, vs) in &headers {
                    if !k.eq_ignore_ascii_case("host") {
                        for v in vs {
                            req = req.header(k, v);
                        }
                    }
                }
                let resp = req.send().await.unwrap();
                let sts_status = resp.status().as_u16();
                let sts_answer = resp.text().await.unwrap();
                let ok = sts_status == 200
                    && sts_answer.contains("<Arn>")
                    && payload["iam_http_request_method"] == "POST";
                let mut s = seen.lock().unwrap();
                s.path = path.clone();
                s.payload = payload;
                s.sts_status = sts_status;
                s.sts_answer = sts_answer;
                if ok {
                    (
                        200,
                        json!({"auth": {"client_token": "s.fake-iam-token", "lease_duration": 3600, "renewable": true}}),
                    )
                } else {
                    (400, json!({"errors": ["error making upstream request"]}))
                }
            } else {
                (404, json!({"errors": []}))
            };
            let body = answer.to_string();
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
            let _ = sock.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn aws_iam_login_payload_is_replayable_to_sts() {
    let env = test_env();
    let sts = env
        .get("GANTRY_TEST_AWS_ENDPOINT")
        .expect("GANTRY_TEST_AWS_ENDPOINT is not in the test environment file: run tests/env/up")
        .trim_end_matches('/')
        .to_owned()
        + "/";
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = fake_vault(sts, Arc::clone(&seen)).await;

    let raw = RawSourcesConfig {
        sources: vec![],
        vault: Some(RawVaultConfig {
            addr: Some(addr.clone()),
            auth: Some(RawVaultAuth {
                method: Some("aws-iam".into()),
                role: Some("app".into()),
                mount: Some("aws-prod".into()),
                header_value: Some("vault.example.com".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        aws: None,
    };
    let cfg = SourcesConfig::from_raw(raw, std::time::Duration::from_secs(60)).unwrap();
    let secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let creds = SharedCredentialsProvider::new(Credentials::new(
        "AKIDEXAMPLE",
        secret_key,
        Some("session-token-example".into()),
        None,
        "test",
    ));
    let session = VaultSession::connect_with_aws_credentials(cfg.vault.as_ref().unwrap(), creds)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "login failed: {e}; fake Vault saw {:?}",
                seen.lock().unwrap()
            )
        });
    assert_eq!(session.stats().logins, 1);
    // Renewal scheduled at about 2/3 of the 3600 s token.
    let next = session.next_action_in().unwrap().as_secs();
    assert!((2100..=2400).contains(&next), "{next}");

    let s = seen.lock().unwrap();
    assert_eq!(s.path, "/v1/auth/aws-prod/login");
    assert_eq!(s.sts_status, 200, "{}", s.sts_answer);
    assert!(
        s.sts_answer.contains("GetCallerIdentityResult"),
        "{}",
        s.sts_answer
    );
    let p = &s.payload;
    assert_eq!(p["role"], "app");
    assert_eq!(p["iam_http_request_method"], "POST");
    let dec = |k: &str| String::from_utf8(B64.decode(p[k].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(dec("iam_request_url"), "https://sts.amazonaws.com/");
    assert_eq!(
        dec("iam_request_body"),
        "Action=GetCallerIdentity&Version=2011-06-15"
    );
    let headers: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&dec("iam_request_headers")).unwrap();
    assert_eq!(headers["X-Vault-AWS-IAM-Server-ID"], ["vault.example.com"]);
    assert_eq!(headers["X-Amz-Security-Token"], ["session-token-example"]);
    let auth = &headers["Authorization"][0];
    assert!(auth.contains("/us-east-1/sts/aws4_request"), "{auth}");
    assert!(auth.contains("x-vault-aws-iam-server-id"), "{auth}");
    assert!(!p.to_string().contains(secret_key));
    assert!(!dec("iam_request_headers").contains(secret_key));
}

/// The same login with the credentials found by the standard AWS chain (environment variables),
/// configured by environment variables only, without `VAULT_AUTH_METHOD`: runs this test binary again in a child process
/// with a clean environment.
#[tokio::test]
async fn aws_iam_login_from_the_environment_only_form() {
    let env = test_env();
    let sts = env
        .get("GANTRY_TEST_AWS_ENDPOINT")
        .expect("GANTRY_TEST_AWS_ENDPOINT is not in the test environment file: run tests/env/up")
        .trim_end_matches('/')
        .to_owned()
        + "/";
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = fake_vault(sts, Arc::clone(&seen)).await;
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_logs_in", "--ignored", "--nocapture"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VAULT_ADDR", &addr)
        // No VAULT_AUTH_METHOD: a lone VAULT_ROLE means AWS IAM (architectures/001's variables).
        .env("VAULT_ROLE", "app")
        .env("VAULT_AWS_HEADER_VALUE", "vault.example.com")
        .env("VAULT_AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
        .env("AWS_SECRET_ACCESS_KEY", "secret-from-env")
        .env("AWS_SESSION_TOKEN", "session-from-env")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = seen.lock().unwrap();
    assert_eq!(s.path, "/v1/auth/aws/login");
    let dec =
        |k: &str| String::from_utf8(B64.decode(s.payload[k].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(
        dec("iam_request_url"),
        "https://sts.eu-west-1.amazonaws.com/"
    );
    let headers: BTreeMap<String, Vec<String>> =
        serde_json::from_str(&dec("iam_request_headers")).unwrap();
    assert_eq!(headers["X-Amz-Security-Token"], ["session-from-env"]);
    assert_eq!(headers["Host"], ["sts.eu-west-1.amazonaws.com"]);
    assert!(
        headers["Authorization"][0].starts_with("AWS4-HMAC-SHA256 Credential=AKIDFROMENV/")
            && headers["Authorization"][0].contains("/eu-west-1/sts/aws4_request"),
        "{headers:?}"
    );
}

#[tokio::test]
#[ignore = "run by aws_iam_login_from_the_environment_only_form in a child process"]
async fn child_logs_in() {
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let cfg = gantry_sidecar::source::sources_from_env(&vars)
        .unwrap()
        .expect("vault configured");
    let session = VaultSession::connect(cfg.vault.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(session.stats().logins, 1);
}
