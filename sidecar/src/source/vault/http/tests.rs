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

fn client_via(addr: &str, proxy_port: u16) -> VaultHttp {
    let proxy = reqwest::Proxy::all(format!("http://127.0.0.1:{proxy_port}")).unwrap();
    VaultHttp::with_proxy(
        &VaultConfig {
            addr: Url::parse(addr).unwrap(),
            auth: VaultAuth::Token {
                token: None,
                token_file: None,
            },
            namespace: None,
            ca_cert: None,
            timeout: Duration::from_secs(5),
            plain_http_off_host: false,
        },
        Some(proxy),
    )
    .unwrap()
}

const BAD_GATEWAY: &str =
    "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Review item: the client kept the system's proxies (`HTTP_PROXY`, `ALL_PROXY`) for a Vault on
/// loopback over plain http://, which the configuration allows because the traffic stays on
/// the host: the token (and the AppRole secret id, and the secrets) went in clear to the proxy.
/// A proxy given to the client (as the environment would) now gets nothing from a plain or
/// loopback address; Vault gets the request.
#[tokio::test]
async fn a_plain_or_loopback_vault_is_never_asked_through_a_proxy() {
    let (proxy, proxy_seen) = server("127.0.0.1", |_| BAD_GATEWAY.to_owned()).await;
    let (vault, vault_seen) = server("127.0.0.1", |_| OK.to_owned()).await;
    let token = Secret::new("s.not-for-the-proxy".to_owned());
    for addr in [
        format!("http://127.0.0.1:{vault}"),
        format!("http://localhost:{vault}"),
    ] {
        let v = client_via(&addr, proxy)
            .call(Method::GET, "kv/data/app", Some(&token), None)
            .await
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert_eq!(v, serde_json::json!({"data": {}}), "{addr}");
    }
    // https:// to loopback: the TLS handshake fails against this plain server, but it was
    // attempted there, not through the proxy.
    let _ = client_via(&format!("https://127.0.0.1:{vault}"), proxy)
        .call(Method::GET, "kv/data/app", Some(&token), None)
        .await
        .unwrap_err();
    assert!(
        proxy_seen.lock().unwrap().is_empty(),
        "the proxy was asked: {:?}",
        proxy_seen.lock().unwrap()
    );
    let seen = vault_seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for head in &seen[..2] {
        assert!(
            head.starts_with("get /v1/kv/data/app ")
                && head.contains("x-vault-token: s.not-for-the-proxy"),
            "{head}"
        );
    }
}

/// The other side of the rule: an https:// Vault on another host still goes through the proxy
/// (a tunnel: the proxy sees where to, never the token).
#[tokio::test]
async fn an_https_vault_on_another_host_is_asked_through_the_proxy() {
    let (proxy, proxy_seen) = server("127.0.0.1", |_| BAD_GATEWAY.to_owned()).await;
    let token = Secret::new("s.not-for-the-proxy".to_owned());
    let _ = client_via("https://vault.example.com:8200", proxy)
        .call(Method::GET, "kv/data/app", Some(&token), None)
        .await
        .unwrap_err();
    let seen = proxy_seen.lock().unwrap();
    assert!(
        seen.first()
            .is_some_and(|h| h.starts_with("connect vault.example.com:8200 ")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|h| h.contains("s.not-for-the-proxy")));
}
