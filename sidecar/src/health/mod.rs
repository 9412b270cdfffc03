//! The optional health listener: `GET /healthz`, `/readyz`, `/metrics` on a loopback address.
//!
//! Design: a tiny HTTP/1.0 responder on a tokio `TcpListener` — read the request line (bounded
//! to 8 KiB and 5 s), answer, close. No keep-alive, no framework. `/readyz` is 200 when the
//! app is up (child started or first render done) and every source succeeded within its grace
//! period, else 503 naming the stale sources (ids only). `/metrics` is Prometheus text.
//!
//! Limits: loopback only (checked by the config); one request per connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let status = status.clone();
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, &status)).await;
                        });
                    }
                }
            }
        }
    });
    Ok(local)
}

async fn answer(mut stream: TcpStream, status: &Status) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(2).any(|w| w == b"\r\n" || w == b"\n\n") && buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("");
    let (code, reason, ctype, body) = respond(method, path, status);
    let head = format!(
        "HTTP/1.0 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// The response to `method path`: (code, reason, content type, body).
pub fn respond(
    method: &str,
    path: &str,
    status: &Status,
) -> (u16, &'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (405, "Method Not Allowed", TEXT, "GET only\n".to_owned());
    }
    match path.split('?').next().unwrap_or("") {
        "/healthz" => (200, "OK", TEXT, "ok\n".to_owned()),
        "/readyz" => {
            let r = status.readiness();
            if r.ready {
                (200, "OK", TEXT, "ready\n".to_owned())
            } else if r.stale.is_empty() {
                (503, "Service Unavailable", TEXT, "starting\n".to_owned())
            } else {
                (
                    503,
                    "Service Unavailable",
                    TEXT,
                    format!("stale: {}\n", r.stale.join(", ")),
                )
            }
        }
        "/metrics" => (200, "OK", "text/plain; version=0.0.4", status.metrics()),
        _ => (
            404,
            "Not Found",
            TEXT,
            "try /healthz, /readyz or /metrics\n".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(respond("POST", "/healthz", &status).0, 405);
        assert_eq!(respond("HEAD", "/healthz", &status).0, 200);
    }
}
