//! The HTTP client's redirect rule, against two real loopback listeners (two hosts:
//! 127.0.0.1 and 127.0.0.2).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::source::config::VaultAuth;

/// Answers every request with `answer(port)` and keeps the request heads it saw.
async fn server(
    host: &str,
    answer: impl Fn(u16) -> String + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((host, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            kept.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase());
            let _ = s.write_all(answer(port).as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    (port, seen)
}

fn client(addr: &str) -> VaultHttp {
    VaultHttp::new(&VaultConfig {
        addr: Url::parse(addr).unwrap(),
        auth: VaultAuth::Token {
            token: None,
            token_file: None,
        },
        namespace: None,
        ca_cert: None,
        timeout: Duration::from_secs(5),
        plain_http_off_host: false,
    })
    .unwrap()
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"data\":{}}";

#[tokio::test]
async fn vault_requests_never_follow_a_redirect_to_another_host_with_the_token() {
    let (other, other_seen) = server("127.0.0.2", |_| OK.to_owned()).await;
    let (vault, _) = server("127.0.0.1", move |_| {
        format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.2:{other}/v1/kv/data/app\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
    })
    .await;
    let http = client(&format!("http://127.0.0.1:{vault}"));
    let token = Secret::new("s.never-elsewhere".to_owned());
    let e = http
        .call(Method::GET, "kv/data/app", Some(&token), None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(307), "{e}");
    assert!(e.hint("kv/data/app").unwrap().contains("another host"));
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "the other host was asked: {:?}",
        other_seen.lock().unwrap()
    );
}

#[tokio::test]
async fn a_redirect_within_vault_is_followed() {
    // A server whose answer depends on the path: redirect /v1/old to /v1/new on itself.
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&tokens);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            kept.lock()
                .unwrap()
                .push(head.contains("x-vault-token: s.same-host"));
            let answer = if head.starts_with("get /v1/old ") {
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{port}/v1/new\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                )
            } else {
                OK.to_owned()
            };
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    let http = client(&format!("http://127.0.0.1:{port}"));
    let token = Secret::new("s.same-host".to_owned());
    let v = http
        .call(Method::GET, "old", Some(&token), None)
        .await
        .unwrap();
    assert_eq!(v, serde_json::json!({"data": {}}));
    assert_eq!(*tokens.lock().unwrap(), [true, true]);
}

#[tokio::test]
async fn vault_response_bodies_are_size_capped() {
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(MAX_BODY));
    // Announced by content-length, and streamed with no length (read until close).
    let announced = big.clone();
    let (with_len, _) = server("127.0.0.1", move |_| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{announced}",
            announced.len()
        )
    })
    .await;
    let (no_len, _) = server("127.0.0.1", move |_| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{big}"
        )
    })
    .await;
    for port in [with_len, no_len] {
        let e = client(&format!("http://127.0.0.1:{port}"))
            .call(Method::GET, "kv/data/app", None, None)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("larger than the 4 MiB cap"), "{msg}");
        assert!(!msg.contains("xxxx"), "the body is not quoted");
    }
    // An answer under the cap still reads.
    let (ok, _) = server("127.0.0.1", |_| OK.to_owned()).await;
    let v = client(&format!("http://127.0.0.1:{ok}"))
        .call(Method::GET, "kv/data/app", None, None)
        .await
        .unwrap();
    assert_eq!(v["data"], serde_json::json!({}));
}

/// Audit: configuration refuses user info in the Vault address; a `VaultConfig` built in code
/// with one still shows it nowhere: not in the session id, errors, warnings' address or Debug.
#[tokio::test]
async fn user_info_in_a_vault_address_built_in_code_is_never_shown() {
    // A port nobody listens on: the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("http://alice-admin:hunter2pw@127.0.0.1:{port}/");
    let c = client(&addr);
    assert_eq!(c.addr(), format!("http://127.0.0.1:{port}"));
    let e = c
        .call(Method::GET, "auth/token/lookup-self", None, None)
        .await
        .unwrap_err();
    let cfg = VaultConfig {
        addr: Url::parse(&addr).unwrap(),
        auth: VaultAuth::Token {
            token: Some(Secret::from("s.test")),
            token_file: None,
        },
        namespace: None,
        ca_cert: None,
        timeout: Duration::from_secs(5),
        plain_http_off_host: false,
    };
    let s = crate::source::vault::VaultSession::connect(&cfg)
        .await
        .unwrap_err();
    assert_eq!(s.source_id, format!("vault:http://127.0.0.1:{port}"));
    for shown in [
        e.to_string(),
        format!("{e:?}"),
        format!("{c:?}"),
        s.to_string(),
        format!("{s:?}"),
    ] {
        assert!(
            !shown.contains("hunter2pw") && !shown.contains("alice-admin"),
            "{shown}"
        );
    }
}
