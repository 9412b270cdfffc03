//! A tiny HTTP/1.0 responder for loopback status endpoints (the sidecar's `/healthz`,
//! `/readyz`, `/metrics`; the daemon's `/metrics`, `/healthz`).
//!
//! Design: [`serve`] accepts on a bound `TcpListener` until `shutdown` resolves; each
//! connection is read up to the end of the request line (at most [`MAX_REQUEST`] bytes), the
//! handler answers from `(method, path)` (the query string cut off), and the connection is
//! closed. Everything on a connection is bounded by [`CONNECTION_TIMEOUT`], so a client that
//! sends nothing cannot hold a task. Methods other than `GET` and `HEAD` get 405 without
//! calling the handler; `HEAD` gets the head only.
//!
//! Limits: one request per connection, no keep-alive, no TLS, no request bodies; callers bind
//! only loopback addresses (see [`crate::net`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read before answering.
pub const MAX_REQUEST: usize = 8192;
/// Longest time a connection is served.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// `text/plain; charset=utf-8`.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: TEXT,
            body: body.into(),
        }
    }

    /// A Prometheus text answer.
    pub fn metrics(body: String) -> Self {
        Self {
            status: 200,
            content_type: crate::metrics_text::CONTENT_TYPE,
            body,
        }
    }
}

/// The handler: `(method, path)` to a response. Only called for `GET` and `HEAD`.
pub type Handler = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// Serves `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, handler: Handler, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &*handler)).await;
                    });
                }
                // Out of file descriptors and the like: do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    }
}

async fn answer(
    mut stream: TcpStream,
    handler: &(dyn Fn(&str, &str) -> Response + Send + Sync),
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.contains(&b'\n') && buf.len() < MAX_REQUEST {
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
    let path = path.split('?').next().unwrap_or("");
    let r = if method == "GET" || method == "HEAD" {
        handler(method, path)
    } else {
        Response::text(405, "GET only\n")
    };
    let head = format!(
        "HTTP/1.0 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        stream.write_all(r.body.as_bytes()).await?;
    }
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn answers_get_head_and_refuses_other_methods() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Handler = Arc::new(|_, path| match path {
            "/healthz" => Response::text(200, "ok\n"),
            _ => Response::text(404, "no\n"),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, handler, async {
            let _ = stopped.await;
        }));
        let r = ask(addr, "GET /healthz?x=1 HTTP/1.0\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r}");
        assert!(
            r.contains("Content-Length: 3\r\n") && r.ends_with("\r\n\r\nok\n"),
            "{r}"
        );
        let r = ask(addr, "HEAD /healthz HTTP/1.0\r\n\r\n").await;
        assert!(
            r.starts_with("HTTP/1.0 200 OK") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        let r = ask(addr, "POST /healthz HTTP/1.0\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.0 405 Method Not Allowed"), "{r}");
        let r = ask(addr, "GET /other HTTP/1.0\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.0 404 Not Found"), "{r}");
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
