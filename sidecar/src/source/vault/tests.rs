//! A Vault that answers with absurd durations. Mocked on purpose: a real Vault or OpenBao caps
//! every TTL by its max lease TTL, so only a hand-made server on loopback can send a lease of
//! `u64::MAX` seconds, which made `Instant + Duration` panic (the sidecar is PID 1 of its
//! container: a panic there takes the app down).

use std::sync::Arc;

use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::source::config::{VaultAuth, VaultConfig};

/// Answers every request with `body` (JSON), as Vault would a token lookup, a renewal and a
/// dynamic read alike.
async fn vault_answering(body: Value) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = body.to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let _ = s.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    port
}

#[tokio::test]
async fn leases_and_ttls_of_u64_max_seconds_are_capped_not_a_panic() {
    let huge = u64::MAX;
    let port = vault_answering(json!({
        "lease_id": "database/creds/app/abc",
        "lease_duration": huge,
        "renewable": true,
        "data": {"ttl": huge, "creation_ttl": huge, "renewable": true, "username": "u"},
        "auth": {"lease_duration": huge, "renewable": true},
    }))
    .await;
    let cfg = VaultConfig {
        addr: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        auth: VaultAuth::Token {
            token: Some(Secret::new("s.test".to_owned())),
            token_file: None,
        },
        namespace: None,
        ca_cert: None,
        timeout: Duration::from_secs(5),
        plain_http_off_host: false,
    };
    // The token lookup schedules its renewal from the TTL.
    let session = VaultSession::connect(&cfg).await.unwrap();
    assert!(session.next_action_in().is_some());
    let spec = VaultSourceSpec {
        path: "database/creds/app".into(),
        key: None,
        name: None,
        prefix: None,
        kind: VaultKind::Dynamic,
    };
    let mut source = VaultSource::new(spec, Arc::clone(&session), Duration::from_secs(60));
    // The read schedules the lease's renewal, the renewal schedules the next one.
    let snapshot = source.fetch().await.unwrap();
    assert_eq!(snapshot.values["username"].expose(), "u");
    let max = gantry_common::duration::MAX;
    assert!(source.next_refresh() <= max, "{:?}", source.next_refresh());
    assert!(
        source.refresh().await.unwrap().is_none(),
        "renewed, not re-read"
    );
}
