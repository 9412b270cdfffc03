//! The optional health listener: `GET /healthz`, `/readyz`, `/metrics` on a loopback address.
//!
//! Design: `gantry_common::http`'s tiny HTTP/1.0 responder (the daemon's metrics listener uses
//! it too) — read the request line (bounded to 8 KiB and 5 s), answer, close. No keep-alive, no
//! framework. `/readyz` is 200 when the
//! app is up (child started or first render done), every source succeeded within its grace
//! period, no output failed its last write and no on_change action is owed, else 503 naming
//! them (source ids, `output:<path>`, `action:<path>`). `/metrics` is Prometheus text.
//!
//! Limits: loopback only (checked by the config); one request per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use gantry_common::http::{self, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::Status;

/// The listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} for /healthz: {source} (hint: is the port taken? set another with GANTRY_SECRETS_LISTEN)"
)]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds `addr` now (so a taken port fails at start) and serves until `shutdown`.
pub async fn spawn(
    addr: SocketAddr,
    status: Status,
    shutdown: CancellationToken,
) -> Result<SocketAddr, ListenError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(listen = %local, "health listener up");
    let handler: http::Handler = Arc::new(move |method, path| respond(method, path, &status));
    tokio::spawn(async move { http::serve(listener, handler, shutdown.cancelled_owned()).await });
    Ok(local)
}

/// The response to `method path`.
pub fn respond(method: &str, path: &str, status: &Status) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "GET only\n");
    }
    match path.split('?').next().unwrap_or("") {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => {
            let r = status.readiness();
            if r.ready {
                Response::text(200, "ready\n")
            } else if r.stale.is_empty() {
                Response::text(503, "starting\n")
            } else {
                Response::text(503, format!("stale: {}\n", r.stale.join(", ")))
            }
        }
        "/metrics" => Response::metrics(status.metrics()),
        _ => Response::text(404, "try /healthz, /readyz or /metrics\n"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    #[tokio::test]
    async fn answers_over_tcp() {
        let status = Status::new(&["vault:kv/app".to_owned()], Duration::from_secs(60));
        let stop = CancellationToken::new();
        let addr = spawn("127.0.0.1:0".parse().unwrap(), status.clone(), stop.clone())
            .await
            .unwrap();
        let get = |path: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.0 200 OK"));
        let r = get("/readyz").await;
        assert!(
            r.starts_with("HTTP/1.0 503") && r.contains("stale: vault:kv/app"),
            "{r}"
        );
        status.fetched(0, false);
        status.set_started();
        assert!(get("/readyz").await.starts_with("HTTP/1.0 200"));
        let m = get("/metrics").await;
        assert!(m.contains("gantry_secrets_ready 1"), "{m}");
        assert!(get("/nope").await.starts_with("HTTP/1.0 404"));
        stop.cancel();
    }

    #[test]
    fn only_get_and_head() {
        let status = Status::default();
        assert_eq!(respond("POST", "/healthz", &status).status, 405);
        assert_eq!(respond("HEAD", "/healthz", &status).status, 200);
    }
}
