//! Vault answers a real server would not give on demand, from hand-made servers on loopback.
//! - Absurd durations: a real Vault or OpenBao caps every TTL by its max lease TTL, so only a
//!   mock can send a lease of `u64::MAX` seconds, which made `Instant + Duration` panic (the
//!   sidecar is PID 1 of its container: a panic there takes the app down).
//! - KV v2 deletion times relative to now (future with `delete_version_after`, past once
//!   deleted), without waiting for a real Vault's clock.

use std::sync::Arc;

use std::time::SystemTime;

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

/// A session config for the fake Vault on loopback `port`, with a token.
fn token_config(port: u16) -> VaultConfig {
    VaultConfig {
        addr: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        auth: VaultAuth::Token {
            token: Some(Secret::new("s.test".to_owned())),
            token_file: None,
        },
        namespace: None,
        ca_cert: None,
        timeout: Duration::from_secs(5),
        plain_http_off_host: false,
    }
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
    let cfg = token_config(port);
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

/// A Vault on loopback that answers each request with the JSON of the first route whose key
/// the request line contains (404 otherwise). The routes can change between calls.
async fn vault_routes(routes: Arc<std::sync::Mutex<Vec<(&'static str, Value)>>>) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("").to_owned();
            let found = routes
                .lock()
                .unwrap()
                .iter()
                .find(|(k, _)| line.contains(k))
                .map(|(_, v)| v.to_string());
            let (status, body) = match found {
                Some(body) => ("200 OK", body),
                None => ("404 Not Found", r#"{"errors":[]}"#.to_owned()),
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    port
}

fn rfc3339(t: SystemTime) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from(t).fmt(Format::DateTime).unwrap()
}

#[test]
fn a_version_is_deleted_only_once_its_deletion_time_has_come() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000); // 2025-06-15T15:06:40Z
    // Vault's own format, nanoseconds and all.
    assert!(deleted_at(Some("2025-06-15T15:06:39.945319214Z"), now));
    assert!(deleted_at(Some("2025-06-15T15:06:40Z"), now), "at now");
    assert!(
        deleted_at(Some("2025-06-15T17:06:39+02:00"), now),
        "an offset"
    );
    // delete_version_after: a deletion time in the future is a version still alive.
    assert!(!deleted_at(Some("2025-06-15T15:06:40.000000001Z"), now));
    assert!(!deleted_at(Some("2025-07-15T15:06:40Z"), now));
    assert!(!deleted_at(Some(""), now));
    assert!(!deleted_at(None, now));
    assert!(
        !deleted_at(Some("yesterday"), now),
        "unreadable is not a deletion"
    );
}

/// Review item: with `delete_version_after` every version carries a future `deletion_time`;
/// the change check took any non-empty one for a deletion and failed every refresh.
#[tokio::test]
async fn a_future_deletion_time_is_not_a_deleted_version() {
    let created = "2025-01-01T00:00:00Z";
    let future = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let past = rfc3339(SystemTime::now() - Duration::from_secs(3600));
    let metadata = |deletion: &str| {
        json!({"data": {"current_version": 1, "versions": {"1": {
            "created_time": created, "deletion_time": deletion, "destroyed": false}}}})
    };
    let routes = Arc::new(std::sync::Mutex::new(vec![
        (
            "auth/token/lookup-self",
            json!({"data": {"ttl": 0, "renewable": false}}),
        ),
        (
            "sys/internal/ui/mounts/",
            json!({"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}}),
        ),
        (
            "secret/data/app",
            json!({"data": {"data": {"K": "v"}, "metadata": {
                "version": 1, "created_time": created, "deletion_time": future, "destroyed": false}}}),
        ),
        ("secret/metadata/app", metadata(&future)),
    ]));
    let port = vault_routes(Arc::clone(&routes)).await;
    let cfg = token_config(port);
    let session = VaultSession::connect(&cfg).await.unwrap();
    let spec = VaultSourceSpec {
        path: "secret/app".into(),
        key: None,
        name: None,
        prefix: None,
        kind: VaultKind::Auto,
    };
    // A refresh interval of zero: every refresh checks the metadata.
    let mut source = VaultSource::new(spec, session, Duration::ZERO);
    let snapshot = source.fetch().await.unwrap();
    assert_eq!(snapshot.values["K"].expose(), "v");
    assert!(
        source.refresh().await.unwrap().is_none(),
        "same version, alive until its deletion time"
    );
    // Once the deletion time has passed the version is deleted: an error, last values kept.
    routes.lock().unwrap()[3].1 = metadata(&past);
    let e = source.refresh().await.unwrap_err().to_string();
    assert!(
        e.contains("deleted") && e.contains("secret/data/app"),
        "{e}"
    );
}

/// A route of [`Mock`]: a part of the request line, the status and the JSON body it answers.
type Route = (&'static str, u16, Value);

/// A Vault on loopback whose routes answer with a status and a JSON body; every request line
/// is recorded. The first route whose key the request line contains answers (404 otherwise).
#[derive(Clone, Default)]
struct Mock {
    routes: Arc<std::sync::Mutex<Vec<Route>>>,
    hits: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Mock {
    async fn start(routes: Vec<Route>) -> (Self, u16) {
        let mock = Self::default();
        *mock.routes.lock().unwrap() = routes;
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let m = mock.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let line = head.lines().next().unwrap_or("").to_owned();
                let found = m
                    .routes
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(k, _, _)| line.contains(k))
                    .map(|(_, st, v)| (*st, v.to_string()));
                m.hits.lock().unwrap().push(line);
                let (status, body) = found.unwrap_or((404, r#"{"errors":[]}"#.to_owned()));
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (mock, port)
    }

    /// Makes `key` answer `status` with `body`.
    fn set(&self, key: &'static str, status: u16, body: Value) {
        let mut routes = self.routes.lock().unwrap();
        match routes.iter_mut().find(|(k, _, _)| *k == key) {
            Some(r) => (r.1, r.2) = (status, body),
            None => routes.insert(0, (key, status, body)),
        }
    }

    /// How many requests contained `key`.
    fn hits(&self, key: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(key))
            .count()
    }
}

fn lease(user: &str, id: &str, secs: u64, renewable: bool) -> Value {
    json!({"lease_id": id, "lease_duration": secs, "renewable": renewable,
        "data": {"username": user}})
}

fn dynamic_spec() -> VaultSourceSpec {
    VaultSourceSpec {
        path: "database/creds/app".into(),
        key: None,
        name: None,
        prefix: None,
        kind: VaultKind::Dynamic,
    }
}

async fn dynamic_source(routes: Vec<Route>) -> (Mock, VaultSource) {
    let mut all = vec![(
        "auth/token/lookup-self",
        200,
        json!({"data": {"ttl": 0, "renewable": false}}),
    )];
    all.extend(routes);
    let (mock, port) = Mock::start(all).await;
    let session = VaultSession::connect(&token_config(port)).await.unwrap();
    let source = VaultSource::new(dynamic_spec(), session, Duration::from_secs(60));
    (mock, source)
}

/// Review item: any answer but 2xx to a lease renewal was taken for "refused", so a Vault
/// that answered 503 (sealed, standby, overloaded), 500 or 429 made the source read new
/// credentials and restart the workload for an outage. Now only 400, 403 and 404 (the lease is
/// gone or not renewable) read new credentials; the others are errors, the last values kept.
#[tokio::test]
async fn a_lease_renewal_answered_5xx_or_429_is_an_outage_not_a_refusal() {
    let (mock, mut source) = dynamic_source(vec![
        (
            "sys/leases/renew",
            503,
            json!({"errors": ["Vault is sealed"]}),
        ),
        ("database/creds/app", 200, lease("u1", "l1", 300, true)),
    ])
    .await;
    assert_eq!(
        source.fetch().await.unwrap().values["username"].expose(),
        "u1"
    );
    mock.set("database/creds/app", 200, lease("u2", "l2", 300, true));
    for status in [503, 500, 429] {
        mock.set("sys/leases/renew", status, json!({"errors": ["busy"]}));
        source.due = Some(Instant::now());
        let e = source.refresh().await.unwrap_err().to_string();
        assert!(e.contains(&status.to_string()), "{e}");
    }
    assert_eq!(
        mock.hits("GET /v1/database/creds/app"),
        1,
        "new credentials read"
    );
    assert_eq!(source.lease_id(), Some("l1"));
    // A lease Vault no longer knows (400) is replaced, as a change.
    mock.set(
        "sys/leases/renew",
        400,
        json!({"errors": ["lease not found"]}),
    );
    source.due = Some(Instant::now());
    let snap = source.refresh().await.unwrap().expect("new credentials");
    assert_eq!(snap.values["username"].expose(), "u2");
    assert_eq!(mock.hits("GET /v1/database/creds/app"), 2);
}

/// Review item: after an error the runtime calls `fetch`, which kept only a renewable lease:
/// credentials of a non-renewable lease with most of its life left were replaced, restarting
/// the workload after every blip. Now such a lease is kept while it has more than a third of
/// its life; past that, new credentials are read.
#[tokio::test]
async fn a_refetch_keeps_a_non_renewable_lease_while_a_third_of_it_is_left() {
    let (mock, mut source) = dynamic_source(vec![(
        "database/creds/app",
        200,
        lease("u1", "l1", 300, false),
    )])
    .await;
    let first = source.fetch().await.unwrap();
    mock.set("database/creds/app", 200, lease("u2", "l2", 300, false));
    let again = source.fetch().await.unwrap();
    assert_eq!(again.version, first.version, "a live lease was replaced");
    assert_eq!(again.values["username"].expose(), "u1");
    assert_eq!(mock.hits("GET /v1/database/creds/app"), 1);
    // Less than a third of its 300 s left: new credentials.
    source.lease.as_mut().unwrap().expires_at = Instant::now() + Duration::from_secs(90);
    let new = source.fetch().await.unwrap();
    assert_eq!(new.values["username"].expose(), "u2");
    assert_eq!(mock.hits("GET /v1/database/creds/app"), 2);
}

/// A session logged in with AppRole to `mock` (token `t1`, TTL `ttl` s, renewable).
async fn approle_session(routes: Vec<Route>, ttl: u64) -> (Mock, Arc<VaultSession>) {
    let mut all = routes;
    all.push((
        "auth/approle/login",
        200,
        json!({"auth": {"client_token": "t1", "lease_duration": ttl, "renewable": true}}),
    ));
    let (mock, port) = Mock::start(all).await;
    let mut cfg = token_config(port);
    cfg.auth = VaultAuth::AppRole {
        mount: "approle".into(),
        role_id: "role".into(),
        secret_id: crate::source::config::SecretIdFrom::Value(Secret::from("sid")),
    };
    let session = VaultSession::connect(&cfg).await.unwrap();
    (mock, session)
}

/// Review item: a token renewal answered 503 made the session log in again, and a renewal or
/// login that failed for an outage returned an error although the token had time left. Now the
/// session keeps a token that is still valid: it warns and tries again later.
#[tokio::test]
async fn an_outage_at_renewal_or_login_keeps_the_token_that_still_works() {
    let (mock, session) = approle_session(
        vec![("auth/token/renew-self", 503, json!({"errors": ["sealed"]}))],
        3600,
    )
    .await;
    assert_eq!(session.stats().logins, 1);
    // The renewal answers 503: no new login, the same token, a retry scheduled.
    session.make_due().await;
    assert_eq!(session.token().await.unwrap().expose(), "t1");
    assert_eq!(
        session.stats().logins,
        1,
        "a 503 on renew-self logged in again"
    );
    let retry = session.next_action_in().expect("a retry is scheduled");
    assert!(
        retry > Duration::ZERO && retry <= Duration::from_secs(60),
        "{retry:?}"
    );
    // A 500 at the renewal: the same.
    mock.set(
        "auth/token/renew-self",
        500,
        json!({"errors": ["internal"]}),
    );
    session.make_due().await;
    assert_eq!(session.token().await.unwrap().expose(), "t1");
    // The token nears its max TTL (a short renewal) and the login answers 503: the old token,
    // valid for another 600 s, stays in use.
    mock.set(
        "auth/token/renew-self",
        200,
        json!({"auth": {"lease_duration": 600, "renewable": true}}),
    );
    mock.set("auth/approle/login", 503, json!({"errors": ["sealed"]}));
    session.make_due().await;
    assert_eq!(session.token().await.unwrap().expose(), "t1");
    assert_eq!(session.stats().logins, 1);
    // Vault answers again: the login happens at the retry.
    mock.set(
        "auth/approle/login",
        200,
        json!({"auth": {"client_token": "t2", "lease_duration": 3600, "renewable": true}}),
    );
    session.make_due().await;
    assert_eq!(session.token().await.unwrap().expose(), "t2");
    assert_eq!(session.stats().logins, 2);
}

/// Review item: a 403 on a read made the session look the token up, and any failure of that
/// lookup (a network error, a 5xx) counted as a dead token: it logged in again, using up a
/// secret id with a use limit. Only a 403 on `lookup-self` means the token is dead.
#[tokio::test]
async fn only_a_403_on_lookup_self_means_the_token_is_dead() {
    let (mock, session) = approle_session(
        vec![
            ("auth/token/lookup-self", 503, json!({"errors": ["sealed"]})),
            (
                "sys/internal/ui/mounts/",
                200,
                json!({"data": {"path": "secret/", "type": "kv", "options": {"version": "2"}}}),
            ),
            (
                "secret/data/app",
                403,
                json!({"errors": ["permission denied"]}),
            ),
        ],
        3600,
    )
    .await;
    let spec = VaultSourceSpec {
        path: "secret/app".into(),
        key: None,
        name: None,
        prefix: None,
        kind: VaultKind::Auto,
    };
    let mut source = VaultSource::new(spec, Arc::clone(&session), Duration::from_secs(60));
    let e = source.fetch().await.unwrap_err().to_string();
    assert!(e.contains("503"), "{e}");
    assert_eq!(session.stats().logins, 1, "a failed lookup logged in again");
    // Vault says the token is unknown: now the session logs in again, once.
    mock.set(
        "auth/token/lookup-self",
        403,
        json!({"errors": ["permission denied"]}),
    );
    let _ = source.fetch().await.unwrap_err();
    assert_eq!(session.stats().logins, 2);
}
