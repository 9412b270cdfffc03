//! The few Vault HTTP calls the sources make, over one shared [`reqwest::Client`].
//!
//! Design: a thin JSON client (`X-Vault-Token`, `X-Vault-Namespace`, per-request timeout) whose
//! errors are classified ([`HttpError`]) so each caller can turn them into an operator-facing
//! [`SourceError`](crate::source::SourceError) with a hint. Response bodies are never logged
//! nor put into errors, except Vault's own `errors` strings on failure responses (which Vault
//! writes for operators and which never carry secret data), truncated.
//!
//! Redirects are followed only within the same origin (scheme, host, port): the token never
//! follows a redirect to another host.
//!
//! A proxy (`HTTPS_PROXY`, `ALL_PROXY`) is used only for an `https://` address that is neither
//! loopback nor link-local ([`crate::source::proxy`]): a plain `http://` Vault (loopback, or
//! another host with `allow_http`) is always asked directly, so the token, the AppRole secret
//! id and the secrets never reach a proxy in clear.
//!
//! A response body is read up to [`MAX_BODY`] (4 MiB, far above any secret or token answer):
//! a larger one is an error, not an allocation the server chooses.
//!
//! Limits: no request retries here (the runtime retries with backoff); no response wrapping.

use std::time::Duration;

use gantry_common::Secret;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::source::config::VaultConfig;

/// The largest Vault response body read.
pub const MAX_BODY: usize = 4 << 20;

/// Why a Vault call failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to Vault at {addr}")]
    Connect { addr: String },
    #[error("Vault did not answer within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake with Vault at {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    #[error("transport error talking to Vault at {addr}: {detail}")]
    Transport { addr: String, detail: String },
    #[error("Vault answered {status} for {path}{}", fmt_errors(.errors))]
    Status {
        status: u16,
        path: String,
        errors: Vec<String>,
    },
    #[error("Vault's answer for {path} is not what was expected: {what}")]
    Decode { path: String, what: String },
}

fn fmt_errors(errors: &[String]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let mut s = errors.join("; ").replace('\n', " ");
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    format!(": {s}")
}

impl HttpError {
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the operator should check, for the API path `path` and the Vault address `addr`.
    pub fn hint(&self, path: &str) -> Option<String> {
        Some(match self {
            HttpError::Connect { .. } => "is VAULT_ADDR right? is Vault running?".to_owned(),
            HttpError::Timeout(_) => "Vault is slow or unreachable; check the network".to_owned(),
            HttpError::Tls { .. } => {
                "trust Vault's CA with vault.ca_cert / VAULT_CACERT, and check the host name in VAULT_ADDR"
                    .to_owned()
            }
            HttpError::Transport { .. } => {
                "check the scheme of VAULT_ADDR (http or https) and the CA (vault.ca_cert / VAULT_CACERT)"
                    .to_owned()
            }
            HttpError::Status { status: 403, .. } => {
                format!("the token's policy lacks read on {path}, or the token expired")
            }
            HttpError::Status { status: 404, .. } => {
                format!("nothing at {path}: check the mount and the path")
            }
            HttpError::Status { status: 503, .. } => "Vault is sealed or standing by".to_owned(),
            HttpError::Status { status: 429, .. } => "Vault rate-limits this client".to_owned(),
            HttpError::Status { status: 300..=399, .. } => {
                "Vault redirected to another host, and the token is never sent there: point VAULT_ADDR at the active node or its load balancer"
                    .to_owned()
            }
            _ => return None,
        })
    }
}

/// `url` as logs and errors show it: without user name, password or trailing slash.
///
/// Configuration validation refuses an address with user info; this keeps a `VaultConfig`
/// built some other way (an embedder, a test) from showing one either.
pub fn display_addr(url: &Url) -> String {
    let mut u = url.clone();
    // Both fail only for URLs that cannot have user info (`data:`), which hold none.
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.as_str().trim_end_matches('/').to_owned()
}

/// A Vault HTTP endpoint.
#[derive(Clone)]
pub struct VaultHttp {
    base: Url,
    /// [`display_addr`] of `base`.
    addr: String,
    namespace: Option<String>,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for VaultHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultHttp")
            .field("addr", &self.addr)
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl VaultHttp {
    pub fn new(cfg: &VaultConfig) -> Result<Self, String> {
        Self::with_proxy(cfg, None)
    }

    /// [`new`](Self::new), with `proxy` added to the system's (`HTTP_PROXY`, `HTTPS_PROXY`,
    /// `ALL_PROXY`, which it replaces, as a proxy set in the environment would): tests give one
    /// instead of changing the process environment. Either is used only when the address
    /// [`may_use_proxy`](crate::source::proxy::may_use_proxy) (`https://`, not loopback nor
    /// link-local): a plain or local address is always asked directly.
    pub(crate) fn with_proxy(
        cfg: &VaultConfig,
        proxy: Option<reqwest::Proxy>,
    ) -> Result<Self, String> {
        if cfg.plain_http_off_host {
            tracing::warn!(
                vault = %display_addr(&cfg.addr),
                "Vault is plain http:// to another host (allowed by allow_http): the token crosses the network in clear"
            );
        }
        let mut b = reqwest::Client::builder()
            .redirect(same_origin_redirects())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("gantry-secrets/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = proxy {
            b = b.proxy(p);
        }
        // A proxy would read the token (and the AppRole secret id, and the secrets) of a plain
        // http:// request, and cannot reach our loopback: no proxy then, the system's included.
        if !crate::source::proxy::may_use_proxy(&cfg.addr) {
            b = b.no_proxy();
        }
        if let Some(ca) = &cfg.ca_cert {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("{} is not a PEM certificate: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        let client = b.build().map_err(|e| format!("HTTP client: {e}"))?;
        let mut base = cfg.addr.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(Self {
            addr: display_addr(&base),
            base,
            namespace: cfg.namespace.clone(),
            timeout: cfg.timeout,
            client,
        })
    }

    /// The address as logs and errors show it ([`display_addr`]).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Calls `method /v1/<path>` with an optional token and JSON body; returns the JSON answer
    /// (`Value::Null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&Secret<String>>,
        body: Option<&Value>,
    ) -> Result<Value, HttpError> {
        let url = self
            .base
            .join(&format!("v1/{}", path.trim_start_matches('/')))
            .map_err(|e| HttpError::Decode {
                path: path.to_owned(),
                what: format!("bad URL: {e}"),
            })?;
        let mut req = self.client.request(method, url);
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t.expose().as_str());
        }
        if let Some(ns) = &self.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        req = req.header("X-Vault-Request", "true");
        if let Some(b) = body {
            req = req.json(b);
        }
        let mut resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let too_large = || HttpError::Decode {
            path: path.to_owned(),
            what: format!("the response is larger than the {} MiB cap", MAX_BODY >> 20),
        };
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(e))? {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            if status == StatusCode::NO_CONTENT || bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| HttpError::Decode {
                path: path.to_owned(),
                // Only the position: serde_json's messages on Value never quote content, but
                // keep it minimal anyway.
                what: format!("not JSON (line {}, column {})", e.line(), e.column()),
            });
        }
        let errors = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default();
        Err(HttpError::Status {
            status: status.as_u16(),
            path: path.to_owned(),
            errors,
        })
    }

    fn transport(&self, e: reqwest::Error) -> HttpError {
        let addr = self.addr().to_owned();
        let (timeout, connect) = (e.is_timeout(), e.is_connect());
        // The error chain names the kind of failure, never a body.
        let mut chain = Vec::new();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push(s.to_string());
            src = s.source();
        }
        // `without_url`: reqwest's own message quotes the request URL.
        let detail = chain
            .last()
            .cloned()
            .unwrap_or_else(|| e.without_url().to_string());
        let all = chain.join(": ").to_ascii_lowercase();
        if timeout {
            HttpError::Timeout(self.timeout)
        } else if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
            HttpError::Tls { addr, detail }
        } else if connect {
            HttpError::Connect { addr }
        } else {
            HttpError::Transport { addr, detail }
        }
    }
}

/// Redirects are followed only to the same scheme, host and port as the request (at most 5):
/// `X-Vault-Token` is not a header reqwest strips on a cross-host redirect, so a redirect to
/// another host (a standby's `Location`, a hostile proxy) stops there and is reported as the
/// 3xx it is, instead of carrying the token elsewhere.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt.previous().first().is_some_and(|first| {
            first.scheme() == attempt.url().scheme()
                && first.host_str() == attempt.url().host_str()
                && first.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if same && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// `data.<field>` as a string.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A number of seconds in Vault's answer (a TTL, a lease duration): 0 when absent, and at
/// most 100 years, so that adding it to an `Instant` or scaling it cannot overflow whatever
/// a misbehaving server sends.
pub fn secs_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(gantry_common::duration::MAX.as_secs())
}

#[cfg(test)]
mod tests;
