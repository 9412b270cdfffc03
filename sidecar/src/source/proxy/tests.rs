//! The proxy rule, and the AWS SDK's client against a recording "proxy" and a fake Secrets
//! Manager on loopback (the proxy is given as the environment would give it, without changing
//! the process environment).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::config::retry::RetryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

#[test]
fn only_https_to_another_host_may_use_a_proxy() {
    let may = |u: &str| may_use_proxy(&Url::parse(u).unwrap());
    assert!(may("https://vault.example.com:8200"));
    assert!(may("https://10.0.0.5"));
    assert!(may("https://[2001:db8::1]"));
    for direct in [
        "http://vault.example.com:8200",
        "http://127.0.0.1:8200",
        "http://localhost:8200",
        "https://localhost:8200",
        "https://127.0.0.2",
        "https://[::1]:8200",
        "https://vault.localhost",
        "http://169.254.170.2/v2/credentials",
        "https://169.254.169.254",
        "https://[fe80::1]",
    ] {
        assert!(!may(direct), "{direct}");
    }
}

#[test]
fn the_aws_proxy_is_https_proxy_or_all_proxy_never_http_proxy() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    assert!(aws_proxy(env(&[("HTTP_PROXY", "http://proxy:3128")])).is_disabled());
    assert!(aws_proxy(env(&[])).is_disabled());
    assert!(!aws_proxy(env(&[("HTTPS_PROXY", "http://proxy:3128")])).is_disabled());
    assert!(!aws_proxy(env(&[("all_proxy", "proxy:3128")])).is_disabled());
    // Not a URL: ignored (direct), the value not logged.
    assert!(aws_proxy(env(&[("HTTPS_PROXY", "http://bad host:x")])).is_disabled());
}

/// Accepts connections, keeps each request (head and announced body, lower-cased), answers
/// `answer`.
async fn server(answer: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
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
                        // Not HTTP (a TLS handshake): one read is enough.
                        if !text.is_ascii() {
                            break;
                        }
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
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).to_ascii_lowercase());
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, seen)
}

const BAD_GATEWAY: &str =
    "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

const SECRET: &str = concat!(
    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 104\r\n",
    "connection: close\r\n\r\n",
    r#"{"ARN":"arn:aws:secretsmanager:us-east-1:1:secret:app","Name":"app","SecretString":"v","VersionId":"v1"}"#,
);

/// A Secrets Manager client for `endpoint`, with `proxy` in every proxy variable.
async fn sm_client(endpoint: &str, proxy: u16) -> aws_sdk_secretsmanager::Client {
    let url = format!("http://127.0.0.1:{proxy}");
    let env = move |k: &str| {
        matches!(
            k,
            "HTTP_PROXY" | "http_proxy" | "HTTPS_PROXY" | "https_proxy" | "ALL_PROXY" | "all_proxy"
        )
        .then(|| url.clone())
    };
    let sdk = aws_sdk_config_with(
        Some("us-east-1"),
        Some(endpoint),
        aws_http_client(aws_proxy(env)),
    )
    .await;
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDTEST",
                "secret-key",
                None,
                None,
                "test",
            ))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                aws_smithy_types::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build(),
    )
}

/// Review item (the AWS side): the SDK's client, since behavior version 2025-08-07, reads
/// `HTTP_PROXY` too: a plain http:// Secrets Manager endpoint (moto, LocalStack) was asked
/// through the proxy, which read the secret's value in the answer. Now only https:// to
/// another host goes through one.
#[tokio::test]
async fn a_plain_or_loopback_secrets_manager_is_never_asked_through_a_proxy() {
    let (proxy, proxy_seen) = server(BAD_GATEWAY).await;
    let (sm, sm_seen) = server(SECRET).await;
    let out = sm_client(&format!("http://127.0.0.1:{sm}"), proxy)
        .await
        .get_secret_value()
        .secret_id("app")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_string(), Some("v"));
    // https:// to loopback: the handshake fails against this plain server, tried there.
    let _ = sm_client(&format!("https://localhost:{sm}"), proxy)
        .await
        .get_secret_value()
        .secret_id("app")
        .send()
        .await
        .unwrap_err();
    assert!(
        proxy_seen.lock().unwrap().is_empty(),
        "the proxy was asked: {:?}",
        proxy_seen.lock().unwrap()
    );
    let seen = sm_seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with("post / ") && seen[0].contains("secretsmanager.getsecretvalue"),
        "{}",
        seen[0]
    );
}

/// The other side: https:// to AWS still goes through the proxy (a tunnel).
#[tokio::test]
async fn https_to_aws_is_asked_through_the_proxy() {
    let (proxy, proxy_seen) = server(BAD_GATEWAY).await;
    let _ = sm_client("https://secretsmanager.example.com", proxy)
        .await
        .get_secret_value()
        .secret_id("app")
        .send()
        .await
        .unwrap_err();
    let seen = proxy_seen.lock().unwrap();
    assert!(
        seen.first()
            .is_some_and(|h| h.starts_with("connect secretsmanager.example.com:443 ")),
        "{seen:?}"
    );
}
