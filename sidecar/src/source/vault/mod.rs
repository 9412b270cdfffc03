//! Vault (and OpenBao) sources: KV v2 secrets and dynamic secrets with leases.
//!
//! Design:
//! - All Vault sources of a process share one [`VaultSession`] (login, token renewal).
//! - A path is resolved once, on first use: `GET /v1/sys/internal/ui/mounts/<path>` gives the
//!   mount and its type (`kv` version 2 → KV, anything else → dynamic). When that endpoint is
//!   refused, the path's shape decides: `<mount>/data/<rest>` is the API form of a KV v2 path,
//!   `.../creds/...` is dynamic, anything else is the short form `<mount>/<rest>` of KV v2.
//! - KV v2 is treated as a lease of the refresh interval: every `refresh` a cheap
//!   `GET /v1/<mount>/metadata/<rest>` compares `current_version`; only a new version is read.
//!   If the policy forbids `metadata/`, the source reads the data every time instead and
//!   compares versions (logged once). A soft-deleted or destroyed current version is an error:
//!   the runtime keeps the last good values. Deleted means, as in Vault, that its
//!   `deletion_time` has passed: `delete_version_after` gives every version a future one.
//! - Dynamic secrets: read once, then renew the lease (`PUT /v1/sys/leases/renew`) at about
//!   2/3 of its duration with jitter. When Vault grants less than asked (the max TTL caps it),
//!   or less than a third of the first lease, or the renewal is refused, new credentials are
//!   read at once and reported as a change, while the old ones still have about a third of a
//!   lease to live (renewals happen at 2/3); the old lease is left to expire
//!   (nothing is revoked). A non-renewable lease is re-read at about 2/3 of its duration.
//!   Each lease is tagged with the session's token generation it was read under: Vault revokes
//!   a lease when the token that read it expires, so once the session holds a new token (a login
//!   near the old one's max TTL, a rotated token file) the lease is replaced at once, as a
//!   change, while the old token still lives.
//!   A read that carries no lease (a KV v1 or a static role read) is polled every `refresh`
//!   and compared. A renewal answered 400, 403 or 404 (lease gone, not renewable, forbidden)
//!   reads new credentials; 5xx and 429 are outages: an error, the last values kept. A
//!   re-fetch after an error keeps live credentials: a renewable lease is renewed, a
//!   non-renewable one kept while more than a third of its life is left.
//! - A 403 makes the session re-authenticate once (token file re-read, or login) and retries.
//!
//! Limits: KV v1 mounts are refused (KV v2 only); no response wrapping; no Vault Enterprise
//! event push (we poll); the path-shape fallback does not know mounts with slashes in their
//! names; multi-valued secret data (lists, maps) becomes JSON text.

pub mod http;
pub mod iam;
mod session;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gantry_common::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use self::http::HttpError;
pub use self::session::{SessionStats, VaultSession};
use super::config::{VaultKind, VaultSourceSpec};
use super::{Snapshot, Source, SourceError};

/// What a configured path turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// KV v2: `mount` and the secret's path inside it.
    Kv { mount: String, rel: String },
    /// Anything read with a plain `GET /v1/<path>`, usually with a lease.
    Dynamic { path: String },
}

#[derive(Debug)]
struct Lease {
    id: String,
    /// The first lease's duration: the increment asked at each renewal.
    original: Duration,
    renewable: bool,
    /// When the lease runs out, as last granted.
    expires_at: Instant,
    /// The session's token generation it was read under: Vault revokes it with that token.
    generation: u64,
}

/// One Vault path (KV v2 or dynamic).
#[derive(Debug)]
pub struct VaultSource {
    spec: VaultSourceSpec,
    id: String,
    session: Arc<VaultSession>,
    refresh: Duration,
    resolved: Option<Resolved>,
    /// Version of the last snapshot returned (KV: `kv:<n>`; dynamic: the lease id).
    version: Option<String>,
    /// KV v2 version number of the last snapshot.
    kv_version: u64,
    /// `created_time` of that KV version: with the number it tells a re-created secret (whose
    /// versions start again at 1) from the one read before.
    kv_created: String,
    metadata_forbidden: bool,
    lease: Option<Lease>,
    /// Values of the last snapshot, for sources that cannot tell versions (lease-less reads).
    last_values: Option<BTreeMap<String, Secret<String>>>,
    /// The last snapshot of a dynamic secret: a re-fetch while its lease lives returns it.
    last_dynamic: Option<Snapshot>,
    /// When this source's own next step is due (poll or lease renewal).
    due: Option<Instant>,
    /// Token generation of the last call that went through (see [`VaultSession::generation`]).
    call_generation: u64,
}

/// Whether a KV v2 version whose metadata gives `deletion_time` counts as deleted at `now`.
/// Vault sets a deletion time when a version is deleted, but with `delete_version_after` it also
/// sets a future one on every version it writes: like Vault, a version is deleted only once that
/// time has come. An empty or unreadable time (not RFC 3339) is not a deletion.
fn deleted_at(deletion_time: Option<&str>, now: SystemTime) -> bool {
    use aws_smithy_types::date_time::{DateTime, Format};
    deletion_time
        .filter(|t| !t.is_empty())
        .and_then(|t| DateTime::from_str(t, Format::DateTimeWithOffset).ok())
        .is_some_and(|t| t <= DateTime::from(now))
}

fn jittered(d: Duration, spread: f64) -> Duration {
    d.mul_f64(1.0 - rand::random_range(0.0..spread))
}

impl VaultSource {
    pub fn new(spec: VaultSourceSpec, session: Arc<VaultSession>, refresh: Duration) -> Self {
        let id = super::SourceSpec::Vault(spec.clone()).id();
        Self {
            spec,
            id,
            session,
            refresh,
            resolved: None,
            version: None,
            kv_version: 0,
            kv_created: String::new(),
            metadata_forbidden: false,
            lease: None,
            last_values: None,
            last_dynamic: None,
            due: None,
            call_generation: 0,
        }
    }

    /// The shared session (for tests and metrics).
    pub fn session(&self) -> &Arc<VaultSession> {
        &self.session
    }

    /// The current lease id of a dynamic secret.
    pub fn lease_id(&self) -> Option<&str> {
        self.lease.as_ref().map(|l| l.id.as_str())
    }

    fn err(&self, what: &str, e: &HttpError, api_path: &str) -> SourceError {
        let mut err = SourceError::new(&self.id, format!("{what}: {e}"));
        err.hint = match e.status() {
            Some(403) => Some(format!(
                "the token's policy lacks read on {api_path} (or the token expired)"
            )),
            _ => e.hint(api_path),
        };
        err
    }

    fn session_err(&self, e: SourceError) -> SourceError {
        SourceError {
            source_id: self.id.clone(),
            message: format!("{}: {}", e.source_id, e.message),
            hint: e.hint,
        }
    }

    /// Whether the lease was read under a token the session no longer holds: Vault revokes it
    /// when that token expires or is revoked, whatever the lease's own TTL.
    fn lease_of_old_token(&self) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| l.generation != self.session.generation())
    }

    /// One authenticated call; on 403 the session re-authenticates once and the call is retried.
    /// Records the generation of the token used in `call_generation`.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Result<Value, HttpError>, SourceError> {
        let (token, generation) = self
            .session
            .token_and_generation()
            .await
            .map_err(|e| self.session_err(e))?;
        self.call_generation = generation;
        let first = self
            .session
            .http()
            .call(method.clone(), path, Some(&token), body)
            .await;
        match first {
            Err(e) if e.status() == Some(403) => {
                match self
                    .session
                    .recover(&token)
                    .await
                    .map_err(|e| self.session_err(e))?
                {
                    Some((new, generation)) => {
                        self.call_generation = generation;
                        Ok(self
                            .session
                            .http()
                            .call(method, path, Some(&new), body)
                            .await)
                    }
                    None => Ok(Err(e)),
                }
            }
            other => Ok(other),
        }
    }

    async fn resolve(&mut self) -> Result<Resolved, SourceError> {
        if let Some(r) = &self.resolved {
            return Ok(r.clone());
        }
        let path = self.spec.path.clone();
        let probe = self
            .call(Method::GET, &format!("sys/internal/ui/mounts/{path}"), None)
            .await?;
        let r = match probe {
            Ok(v) => {
                let mount = http::str_at(&v, "/data/path")
                    .unwrap_or("")
                    .trim_matches('/')
                    .to_owned();
                let typ = http::str_at(&v, "/data/type").unwrap_or("");
                let version = http::str_at(&v, "/data/options/version").unwrap_or("1");
                let rel = path
                    .strip_prefix(&mount)
                    .unwrap_or(&path)
                    .trim_matches('/')
                    .to_owned();
                if mount.is_empty() {
                    self.by_shape(&path)
                } else if typ == "kv" && self.spec.kind != VaultKind::Dynamic {
                    if version != "2" {
                        return Err(SourceError::new(
                            &self.id,
                            format!("mount {mount}/ is KV version {version}"),
                        )
                        .with_hint("only KV version 2 is supported; or set kind: dynamic to read it as a plain path"));
                    }
                    let rel = rel.strip_prefix("data/").unwrap_or(&rel).to_owned();
                    Resolved::Kv { mount, rel }
                } else if self.spec.kind == VaultKind::Kv {
                    return Err(SourceError::new(
                        &self.id,
                        format!("mount {mount}/ is of type {typ}, not KV version 2"),
                    )
                    .with_hint("remove `kind: kv`, or point the path at a KV v2 mount"));
                } else {
                    Resolved::Dynamic { path }
                }
            }
            Err(e @ (HttpError::Status { .. } | HttpError::Decode { .. })) => {
                tracing::debug!(secret_ref = %self.id, source = "vault", error = %e, "vault mount lookup refused, deciding by path shape");
                self.by_shape(&path)
            }
            Err(e) => return Err(self.err("mount lookup failed", &e, "sys/internal/ui/mounts")),
        };
        tracing::debug!(secret_ref = %self.id, source = "vault", resolved = ?r, "vault path resolved");
        self.resolved = Some(r.clone());
        Ok(r)
    }

    fn by_shape(&self, path: &str) -> Resolved {
        let segs: Vec<&str> = path.split('/').collect();
        let dynamic = match self.spec.kind {
            VaultKind::Dynamic => true,
            VaultKind::Kv => false,
            VaultKind::Auto => segs.iter().skip(1).any(|s| *s == "creds"),
        };
        if dynamic {
            Resolved::Dynamic {
                path: path.to_owned(),
            }
        } else if segs.len() > 2 && segs[1] == "data" {
            Resolved::Kv {
                mount: segs[0].to_owned(),
                rel: segs[2..].join("/"),
            }
        } else {
            Resolved::Kv {
                mount: segs[0].to_owned(),
                rel: segs[1..].join("/"),
            }
        }
    }

    /// Turns a secret's data into variables (key pick, rename, prefix).
    fn values(
        &self,
        data: &serde_json::Map<String, Value>,
        api_path: &str,
    ) -> Result<BTreeMap<String, Secret<String>>, SourceError> {
        let prefix = self.spec.prefix.as_deref().unwrap_or("");
        let text = |v: &Value| match v {
            Value::String(s) => Secret::from(s.as_str()),
            other => Secret::new(other.to_string()),
        };
        let mut out = BTreeMap::new();
        match &self.spec.key {
            Some(k) => {
                let v = data.get(k).ok_or_else(|| {
                    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                    SourceError::new(&self.id, format!("no key `{k}` in {api_path}"))
                        .with_hint(format!("the keys there are: {}", keys.join(", ")))
                })?;
                let name = self.spec.name.as_deref().unwrap_or(k);
                out.insert(format!("{prefix}{name}"), text(v));
            }
            None => {
                for (k, v) in data {
                    out.insert(format!("{prefix}{k}"), text(v));
                }
            }
        }
        Ok(out)
    }

    async fn read_kv(&mut self, mount: &str, rel: &str) -> Result<Snapshot, SourceError> {
        let api = format!("{mount}/data/{rel}");
        let v = self
            .call(Method::GET, &api, None)
            .await?
            .map_err(|e| self.err("read failed", &e, &api))?;
        let version = v
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let deleted = deleted_at(
            v.pointer("/data/metadata/deletion_time")
                .and_then(Value::as_str),
            SystemTime::now(),
        );
        let destroyed = v
            .pointer("/data/metadata/destroyed")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(data) = v.pointer("/data/data").and_then(Value::as_object) else {
            return Err(if deleted || destroyed {
                SourceError::new(
                    &self.id,
                    format!(
                        "the current version ({version}) of {api} is {}",
                        if destroyed { "destroyed" } else { "deleted" }
                    ),
                )
                .with_hint("undelete it or write a new version; the last good values are kept")
            } else {
                SourceError::new(&self.id, format!("{api} holds no data"))
                    .with_hint("is this a KV v2 path?")
            });
        };
        let values = self.values(data, &api)?;
        self.kv_version = version;
        self.kv_created = v
            .pointer("/data/metadata/created_time")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Ok(Snapshot {
            values,
            binary: None,
            version: format!("kv:{version}"),
        })
    }

    /// KV v2 change check. `Ok(None)`: same version.
    async fn check_kv(&mut self, mount: &str, rel: &str) -> Result<Option<Snapshot>, SourceError> {
        if !self.metadata_forbidden {
            let api = format!("{mount}/metadata/{rel}");
            match self.call(Method::GET, &api, None).await? {
                Ok(v) => {
                    let current = v
                        .pointer("/data/current_version")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let deleted = deleted_at(
                        v.pointer(&format!("/data/versions/{current}/deletion_time"))
                            .and_then(Value::as_str),
                        SystemTime::now(),
                    );
                    let destroyed = v
                        .pointer(&format!("/data/versions/{current}/destroyed"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if deleted || destroyed {
                        return Err(SourceError::new(
                            &self.id,
                            format!(
                                "the current version ({current}) of {mount}/data/{rel} is deleted"
                            ),
                        )
                        .with_hint(
                            "undelete it or write a new version; the last good values are kept",
                        ));
                    }
                    let created = v
                        .pointer(&format!("/data/versions/{current}/created_time"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if current == self.kv_version && created == self.kv_created {
                        return Ok(None);
                    }
                }
                Err(e) if e.status() == Some(403) => {
                    tracing::warn!(secret_ref = %self.id, source = "vault", path = %api,
                        "vault metadata read forbidden, polling the data instead (grant read on metadata/ for a cheaper check)");
                    self.metadata_forbidden = true;
                }
                Err(e) => return Err(self.err("change check failed", &e, &api)),
            }
        }
        let before = (self.kv_version, self.kv_created.clone());
        let snap = self.read_kv(mount, rel).await?;
        Ok((self.kv_version != before.0 || self.kv_created != before.1).then_some(snap))
    }

    async fn read_dynamic(&mut self, path: &str) -> Result<Snapshot, SourceError> {
        let v = self
            .call(Method::GET, path, None)
            .await?
            .map_err(|e| self.err("read failed", &e, path))?;
        let data = v
            .get("data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let values = self.values(&data, path)?;
        let lease_id = v
            .get("lease_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let duration = Duration::from_secs(http::secs_at(&v, "/lease_duration"));
        let renewable = v.get("renewable").and_then(Value::as_bool).unwrap_or(false);
        let now = Instant::now();
        if lease_id.is_empty() || duration.is_zero() {
            // No lease: poll like KV and compare the values.
            self.lease = None;
            self.due = Some(now + jittered(self.refresh, 0.1));
            self.last_values = Some(values.clone());
            let n = self.kv_version + 1;
            self.kv_version = n;
            return Ok(Snapshot {
                values,
                binary: None,
                version: format!("read:{n}"),
            });
        }
        self.due = Some(now + jittered(duration.mul_f64(2.0 / 3.0), 0.1));
        tracing::info!(secret_ref = %self.id, source = "vault", lease_id = %lease_id,
            lease_s = duration.as_secs(), renewable, "vault lease obtained");
        self.lease = Some(Lease {
            id: lease_id.clone(),
            original: duration,
            renewable,
            expires_at: now + duration,
            generation: self.call_generation,
        });
        Ok(Snapshot {
            values,
            binary: None,
            version: lease_id,
        })
    }

    /// Renews the lease, or reads new credentials when renewal cannot keep them long enough.
    async fn refresh_dynamic(&mut self, path: &str) -> Result<Option<Snapshot>, SourceError> {
        let Some(lease) = &self.lease else {
            // Lease-less read: compare values.
            let before = self.last_values.take();
            let snap = self.read_dynamic(path).await?;
            return Ok((before.as_ref() != Some(&snap.values)).then_some(snap));
        };
        let lease_id = lease.id.clone();
        let original = lease.original;
        if self.lease_of_old_token() {
            tracing::info!(secret_ref = %self.id, source = "vault", lease_id = %lease_id,
                "vault lease read under an older vault token, which takes it along when it expires: reading new credentials");
            return self.read_dynamic(path).await.map(Some);
        }
        if !lease.renewable {
            tracing::info!(secret_ref = %self.id, source = "vault", lease_id = %lease_id, "vault lease not renewable, reading new credentials");
            return self.read_dynamic(path).await.map(Some);
        }
        let asked = original;
        let body = json!({ "lease_id": lease_id, "increment": asked.as_secs() });
        match self
            .call(Method::PUT, "sys/leases/renew", Some(&body))
            .await?
        {
            Ok(v) => {
                let got = Duration::from_secs(http::secs_at(&v, "/lease_duration"));
                // Capped by the max TTL (or close to it): read new credentials now, while the old ones
                // still have about a third of a lease to live (renewals happen at 2/3).
                let short = got < asked || got < original / 3;
                if short {
                    tracing::info!(secret_ref = %self.id, source = "vault", lease_id = %lease_id,
                        granted_s = got.as_secs(), asked_s = asked.as_secs(),
                        "vault lease near its max TTL, reading new credentials");
                    return self.read_dynamic(path).await.map(Some);
                }
                tracing::info!(secret_ref = %self.id, source = "vault", lease_id = %lease_id,
                    granted_s = got.as_secs(), "vault lease renewed");
                let now = Instant::now();
                self.due = Some(now + jittered(got.mul_f64(2.0 / 3.0), 0.1));
                if let Some(l) = &mut self.lease {
                    l.expires_at = now + got;
                }
                Ok(None)
            }
            // The lease is gone (expired, revoked: 400 "lease not found"), not renewable (400),
            // or the policy forbids renewing it (403 once the token was found alive).
            Err(e @ HttpError::Status { .. }) if matches!(e.status(), Some(400 | 403 | 404)) => {
                tracing::warn!(secret_ref = %self.id, source = "vault", lease_id = %lease_id, error = %e,
                    "vault lease renewal refused, reading new credentials");
                self.read_dynamic(path).await.map(Some)
            }
            // 5xx (sealed, standby, overloaded) and 429 are outages: the credentials are as good
            // as before; the runtime keeps them and retries with backoff.
            Err(e) => Err(self.err("lease renewal failed", &e, "sys/leases/renew")),
        }
    }
}

#[async_trait::async_trait]
impl Source for VaultSource {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&mut self) -> Result<Snapshot, SourceError> {
        let snap = match self.resolve().await? {
            Resolved::Kv { mount, rel } => {
                let s = self.read_kv(&mount, &rel).await?;
                self.due = Some(Instant::now() + jittered(self.refresh, 0.1));
                s
            }
            Resolved::Dynamic { path } => {
                // A re-fetch after an outage keeps credentials whose lease still lives instead of
                // minting new ones, which would restart the workload for nothing: a renewable
                // lease is renewed, a non-renewable one kept while more than a third of its life
                // is left (its re-read stays due at 2/3). A lease of an older token is replaced.
                let now = Instant::now();
                let keep = self
                    .lease
                    .as_ref()
                    .filter(|_| !self.lease_of_old_token())
                    .map(|l| {
                        if l.renewable {
                            l.expires_at > now + Duration::from_secs(1)
                        } else {
                            l.expires_at.saturating_duration_since(now) > l.original / 3
                        }
                    });
                let s = match (
                    &self.last_dynamic,
                    keep,
                    self.lease.as_ref().map(|l| l.renewable),
                ) {
                    (Some(last), Some(true), Some(true)) => {
                        let last = last.clone();
                        self.refresh_dynamic(&path).await?.unwrap_or(last)
                    }
                    (Some(last), Some(true), _) => last.clone(),
                    _ => self.read_dynamic(&path).await?,
                };
                self.last_dynamic = Some(s.clone());
                s
            }
        };
        tracing::info!(secret_ref = %self.id, source = "vault", version = %snap.version, keys = snap.values.len(), "vault secret read");
        self.version = Some(snap.version.clone());
        Ok(snap)
    }

    async fn refresh(&mut self) -> Result<Option<Snapshot>, SourceError> {
        if self.version.is_none() {
            return self.fetch().await.map(Some);
        }
        // Renews or replaces the token when due (not a change).
        self.session
            .token()
            .await
            .map_err(|e| self.session_err(e))?;
        // A new token (a login near the old one's max TTL) makes a lease read under the old one
        // due at once: it dies with the old token.
        if self.due.is_some_and(|d| d > Instant::now()) && !self.lease_of_old_token() {
            return Ok(None);
        }
        let changed = match self.resolve().await? {
            Resolved::Kv { mount, rel } => {
                let r = self.check_kv(&mount, &rel).await;
                // Poll again after `refresh` whatever happened (the runtime backs off errors).
                self.due = Some(Instant::now() + jittered(self.refresh, 0.1));
                r?
            }
            Resolved::Dynamic { path } => {
                let r = self.refresh_dynamic(&path).await?;
                if let Some(s) = &r {
                    self.last_dynamic = Some(s.clone());
                }
                r
            }
        };
        if let Some(s) = &changed {
            tracing::info!(secret_ref = %self.id, source = "vault", version = %s.version, keys = s.values.len(), "vault secret changed");
            self.version = Some(s.version.clone());
        }
        Ok(changed)
    }

    fn next_refresh(&self) -> Duration {
        let own = match self.due {
            _ if self.lease_of_old_token() => Duration::ZERO,
            None if self.version.is_none() => Duration::ZERO,
            None => self.refresh,
            Some(d) => d.saturating_duration_since(Instant::now()),
        };
        match self.session.next_action_in() {
            Some(s) => own.min(s),
            None => own,
        }
    }
}

#[cfg(test)]
mod tests;
