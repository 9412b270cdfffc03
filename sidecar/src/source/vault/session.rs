//! One authenticated Vault session, shared by every Vault source of a process.
//!
//! Design: an `Arc<VaultSession>` holds the HTTP client and the token behind a
//! [`tokio::sync::Mutex`]; each source asks [`VaultSession::token`] before a call, which renews
//! or logs in again when due, so there is one renewal loop whatever the number of sources. The
//! time of the next token action is mirrored in a `std::sync::Mutex` so that the synchronous
//! [`Source::next_refresh`](crate::source::Source::next_refresh) can read it.
//!
//! Token life:
//! - token (`VAULT_TOKEN`): `lookup-self` tells TTL and renewability; a renewable token is renewed
//!   (`renew-self`) at about 2/3 of its TTL; a root token (TTL 0) is never renewed.
//! - token file: as token, and the file is re-read whenever its modification time or size
//!   changes (an OpenBao/Vault agent or a platform rotates it); on a 403 it is re-read too.
//! - AppRole and AWS IAM: log in, renew at about 2/3 of the TTL; when Vault refuses a renewal
//!   (400, 403, 404), log in again instead; when Vault granted less than asked (the token
//!   reaches its max TTL), log in again at once, while the old token still has what it was
//!   granted.
//! - An outage (5xx, 429, no answer) at a renewal or a login, while the token is still valid,
//!   keeps that token in use: a warning, and another try after a third of its remaining life
//!   (1 s to 60 s). Only once the token has expired is the failure an error.
//! - A 403 on a read is checked with `lookup-self`: only a 403 there means the token is dead
//!   (and the session re-authenticates); a token that answers is alive (the 403 is the
//!   policy's); any other failure of the lookup is an outage, reported as an error without a
//!   login (which would use up secret ids that have a use limit).
//!
//! Every different token the session holds is a new [`VaultSession::generation`]: Vault revokes
//! a token's leases when the token expires, so the sources read their dynamic secrets again
//! under the new token (that is a change of credentials). A new token by itself never makes a
//! source report a change. All times use [`tokio::time::Instant`], so
//! tests can pause and advance the clock.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::SharedCredentialsProvider;
use gantry_common::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::http::{HttpError, VaultHttp, secs_at, str_at};
use super::iam;
use crate::source::SourceError;
use crate::source::config::{SecretIdFrom, VaultAuth, VaultConfig};

/// Counters for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub logins: u64,
    pub renewals: u64,
    pub token_file_reads: u64,
}

#[derive(Debug)]
struct TokenState {
    token: Option<Secret<String>>,
    /// TTL granted at login or creation: the increment asked at renewal.
    granted_ttl: Duration,
    renewable: bool,
    /// `None`: never expires (root token), or not known.
    expires_at: Option<Instant>,
    /// When to act next (renew or log in); `None`: nothing to do.
    act_at: Option<Instant>,
    /// The last renewal was capped by the max TTL: the next action is a login.
    login_next: bool,
    /// Modification time and size of the token file when it was last read.
    file_stamp: Option<(SystemTime, u64)>,
    /// Counts the tokens this session has held (see [`VaultSession::generation`]).
    generation: u64,
}

/// See the module documentation.
pub struct VaultSession {
    http: VaultHttp,
    auth: VaultAuth,
    id: String,
    state: tokio::sync::Mutex<TokenState>,
    next_action: std::sync::Mutex<Option<Instant>>,
    /// Mirror of [`TokenState::generation`] for synchronous readers.
    generation: AtomicU64,
    aws: tokio::sync::OnceCell<aws_config::SdkConfig>,
    /// Credentials for the AWS IAM login when injected (tests, embedders); otherwise the
    /// standard chain.
    aws_creds: Option<SharedCredentialsProvider>,
    logins: AtomicU64,
    renewals: AtomicU64,
    file_reads: AtomicU64,
}

impl std::fmt::Debug for VaultSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSession")
            .field("addr", &self.http.addr())
            .field("method", &self.method())
            .finish_non_exhaustive()
    }
}

/// 2/3 of `ttl`, minus up to 10 % of jitter so that many sidecars do not renew in step.
fn two_thirds_jittered(ttl: Duration) -> Duration {
    let base = ttl.mul_f64(2.0 / 3.0);
    base.mul_f64(1.0 - rand::random_range(0.0..0.1))
}

impl VaultSession {
    /// Creates the session and authenticates once (fails closed: a wrong token, role or address
    /// is reported here, under the id `vault:<addr>`).
    pub async fn connect(cfg: &VaultConfig) -> Result<Arc<Self>, SourceError> {
        Self::connect_inner(cfg, None).await
    }

    /// As [`VaultSession::connect`], with the AWS credentials of the IAM login given instead of
    /// taken from the standard chain.
    pub async fn connect_with_aws_credentials(
        cfg: &VaultConfig,
        credentials: SharedCredentialsProvider,
    ) -> Result<Arc<Self>, SourceError> {
        Self::connect_inner(cfg, Some(credentials)).await
    }

    async fn connect_inner(
        cfg: &VaultConfig,
        aws_creds: Option<SharedCredentialsProvider>,
    ) -> Result<Arc<Self>, SourceError> {
        let id = format!("vault:{}", super::http::display_addr(&cfg.addr));
        let http = VaultHttp::new(cfg).map_err(|m| {
            SourceError::new(&id, m).with_hint("check vault.ca_cert / VAULT_CACERT")
        })?;
        let s = Arc::new(Self {
            http,
            auth: cfg.auth.clone(),
            id,
            state: tokio::sync::Mutex::new(TokenState {
                token: None,
                granted_ttl: Duration::ZERO,
                renewable: false,
                expires_at: None,
                act_at: None,
                login_next: false,
                file_stamp: None,
                generation: 0,
            }),
            next_action: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            aws: tokio::sync::OnceCell::new(),
            aws_creds,
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            file_reads: AtomicU64::new(0),
        });
        s.token().await?;
        Ok(s)
    }

    pub fn http(&self) -> &VaultHttp {
        &self.http
    }

    /// `vault:<addr>`: the id under which session errors are reported.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn method(&self) -> &'static str {
        match self.auth {
            VaultAuth::Token { .. } => "token",
            VaultAuth::AppRole { .. } => "approle",
            VaultAuth::AwsIam { .. } => "aws-iam",
        }
    }

    fn can_login(&self) -> bool {
        !matches!(self.auth, VaultAuth::Token { .. })
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            logins: self.logins.load(Ordering::Relaxed),
            renewals: self.renewals.load(Ordering::Relaxed),
            token_file_reads: self.file_reads.load(Ordering::Relaxed),
        }
    }

    /// Time until the session must renew or log in again (`None`: nothing scheduled).
    pub fn next_action_in(&self) -> Option<Duration> {
        let at = *self.next_action.lock().unwrap_or_else(|e| e.into_inner());
        at.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// A valid token: renews it or logs in again first when that is due.
    pub async fn token(&self) -> Result<Secret<String>, SourceError> {
        self.token_and_generation().await.map(|(t, _)| t)
    }

    /// As [`VaultSession::token`], with the token's generation.
    pub async fn token_and_generation(&self) -> Result<(Secret<String>, u64), SourceError> {
        let mut st = self.state.lock().await;
        self.ensure(&mut st).await?;
        let token = st
            .token
            .clone()
            .ok_or_else(|| SourceError::new(&self.id, "no Vault token"))?;
        Ok((token, st.generation))
    }

    /// Which token the session holds: 1 for the first, one more for each different token
    /// after it (a new login, a token file that now holds another token). Vault revokes the
    /// leases a token created when that token expires or is revoked, so a source tags each
    /// lease with the generation it was read under and reads new credentials when this moves
    /// on, while the old token still lives.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// Sets the token, counting a different one as a new generation.
    fn set_token(&self, st: &mut TokenState, token: Secret<String>) {
        if st.token.as_ref() != Some(&token) {
            st.generation += 1;
            self.generation.store(st.generation, Ordering::Relaxed);
        }
        st.token = Some(token);
    }

    /// Called by a source that got 403 with `stale`: re-authenticates if that can help (log in
    /// again, re-read the token file). Returns the new token and its generation, or `None`
    /// when nothing changed.
    pub async fn recover(
        &self,
        stale: &Secret<String>,
    ) -> Result<Option<(Secret<String>, u64)>, SourceError> {
        let mut st = self.state.lock().await;
        if st.token.as_ref() != Some(stale) {
            // Someone else already replaced it.
            return Ok(st.token.clone().map(|t| (t, st.generation)));
        }
        if matches!(
            self.auth,
            VaultAuth::Token {
                token_file: None,
                ..
            }
        ) {
            return Ok(None);
        }
        // A token that Vault still knows means the 403 is the policy's: logging in again would
        // not help, and would use up secret ids that have a use limit.
        // Only a 403 on lookup-self means the token is dead: a network error or a 5xx says
        // nothing about it, and is reported as the outage it is.
        match self
            .http
            .call(Method::GET, "auth/token/lookup-self", Some(stale), None)
            .await
        {
            Ok(_) => return Ok(None),
            Err(e) if e.status() == Some(403) => {}
            Err(e) => {
                let mut err = SourceError::new(&self.id, format!("token lookup failed: {e}"));
                err.hint = e.hint("auth/token/lookup-self");
                return Err(err);
            }
        }
        tracing::info!(source = %self.id, "vault token refused, authenticating again");
        match &self.auth {
            VaultAuth::Token {
                token_file: Some(f),
                ..
            } => {
                self.read_token_file(&mut st, f).await?;
            }
            VaultAuth::Token { .. } => return Ok(None),
            _ => self.login(&mut st).await?,
        }
        self.publish(&st);
        Ok(st
            .token
            .clone()
            .filter(|t| t != stale)
            .map(|t| (t, st.generation)))
    }

    /// Makes the next token action due now (tests).
    #[cfg(test)]
    pub(crate) async fn make_due(&self) {
        let mut st = self.state.lock().await;
        st.act_at = Some(Instant::now());
        self.publish(&st);
    }

    fn publish(&self, st: &TokenState) {
        *self.next_action.lock().unwrap_or_else(|e| e.into_inner()) = st.act_at;
    }

    async fn ensure(&self, st: &mut TokenState) -> Result<(), SourceError> {
        if let VaultAuth::Token {
            token_file: Some(f),
            token,
        } = &self.auth
        {
            let stamp = file_stamp(f);
            if st.token.is_none() || (stamp.is_some() && stamp != st.file_stamp) {
                match self.read_token_file(st, f).await {
                    Ok(()) => {}
                    // An explicit VAULT_TOKEN is the fallback when the file is not there yet.
                    Err(e) if st.token.is_none() && token.is_some() => {
                        tracing::warn!(source = %self.id, error = %e, "vault token file unreadable, using VAULT_TOKEN");
                        if let Some(t) = token {
                            self.set_token(st, t.clone());
                        }
                        self.lookup_self(st).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if st.token.is_none() {
            match &self.auth {
                VaultAuth::Token { token: Some(t), .. } => {
                    self.set_token(st, t.clone());
                    self.lookup_self(st).await?;
                }
                VaultAuth::Token { .. } => {
                    return Err(SourceError::new(&self.id, "no Vault token")
                        .with_hint("set VAULT_TOKEN or VAULT_TOKEN_FILE"));
                }
                _ => self.login(st).await?,
            }
        }
        if st.act_at.is_some_and(|at| at <= Instant::now())
            && let Err(e) = self.act(st).await
        {
            // An outage (a renewal or login that failed for another reason than Vault refusing
            // the token) while the token still has time left: keep using it, try again later.
            let now = Instant::now();
            match st.expires_at.filter(|&x| x > now) {
                Some(expires) => {
                    let left = expires - now;
                    let retry = (left / 3).clamp(Duration::from_secs(1), Duration::from_secs(60));
                    let retry = retry.min(left);
                    tracing::warn!(source = %self.id, error = %e, valid_s = left.as_secs(),
                        retry_s = retry.as_secs(), "vault token renewal or login failed, keeping the current token, which is still valid");
                    st.act_at = Some(now + retry);
                }
                None => {
                    self.publish(st);
                    return Err(e);
                }
            }
        }
        self.publish(st);
        Ok(())
    }

    /// The due token action: renew, or log in again. An error only for an outage (or a login
    /// refused): a renewal Vault refuses (400, 403, 404) leads to a login, or, for a token we
    /// cannot replace, to using it until Vault refuses it.
    async fn act(&self, st: &mut TokenState) -> Result<(), SourceError> {
        if st.login_next || (!st.renewable && self.can_login()) {
            return self.login(st).await;
        }
        if !st.renewable {
            st.act_at = None;
            return Ok(());
        }
        match self.renew(st).await {
            // Vault granted less than asked: the token nears its max TTL. Log in now, not at
            // 2/3 of what is left: the leases the old token read die with it, and the sources
            // replace them while it still has all of that time.
            Ok(()) if st.login_next => self.login(st).await,
            Ok(()) => Ok(()),
            Err(e) if matches!(e.status(), Some(400 | 403 | 404)) && self.can_login() => {
                tracing::warn!(source = %self.id, error = %e, "vault token renewal refused, logging in again");
                st.login_next = true;
                self.login(st).await
            }
            Err(e) if matches!(e.status(), Some(400 | 403 | 404)) => {
                // A token we cannot replace: keep using it until Vault refuses it.
                tracing::warn!(source = %self.id, error = %e, "vault token renewal refused");
                st.act_at = None;
                Ok(())
            }
            // 5xx, 429, no answer: an outage, not a verdict on the token.
            Err(e) => {
                let mut err = SourceError::new(&self.id, format!("token renewal failed: {e}"));
                err.hint = e.hint("auth/token/renew-self");
                Err(err)
            }
        }
    }

    fn schedule(&self, st: &mut TokenState, ttl: Duration, renewable: bool) {
        let now = Instant::now();
        st.renewable = renewable;
        if ttl.is_zero() {
            st.expires_at = None;
            st.act_at = None;
        } else {
            st.expires_at = Some(now + ttl);
            st.act_at = if renewable || self.can_login() {
                Some(now + two_thirds_jittered(ttl))
            } else {
                None
            };
        }
    }

    async fn lookup_self(&self, st: &mut TokenState) -> Result<(), SourceError> {
        let v = self
            .http
            .call(
                Method::GET,
                "auth/token/lookup-self",
                st.token.as_ref(),
                None,
            )
            .await
            .map_err(|e| {
                let hint = match e.status() {
                    Some(403) => Some(
                        "the token is invalid or expired (or its policy lacks auth/token/lookup-self, which the default policy grants)"
                            .to_owned(),
                    ),
                    _ => e.hint("auth/token/lookup-self"),
                };
                let mut err = SourceError::new(&self.id, format!("token lookup failed: {e}"));
                err.hint = hint;
                err
            })?;
        let ttl = secs_at(&v, "/data/ttl");
        let creation = secs_at(&v, "/data/creation_ttl");
        let renewable = v
            .pointer("/data/renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        st.granted_ttl = Duration::from_secs(creation.max(ttl));
        st.login_next = false;
        self.schedule(st, Duration::from_secs(ttl), renewable);
        tracing::info!(source = %self.id, ttl_s = ttl, renewable, "vault token accepted");
        Ok(())
    }

    async fn read_token_file(&self, st: &mut TokenState, f: &Path) -> Result<(), SourceError> {
        let stamp = file_stamp(f);
        let text = tokio::fs::read_to_string(f).await.map_err(|e| {
            SourceError::new(
                &self.id,
                format!("cannot read token file {}: {e}", f.display()),
            )
            .with_hint("check VAULT_TOKEN_FILE and its permissions")
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(
                SourceError::new(&self.id, format!("token file {} is empty", f.display()))
                    .with_hint("the process writing the token has not run yet?"),
            );
        }
        self.file_reads.fetch_add(1, Ordering::Relaxed);
        self.set_token(st, Secret::from(t));
        st.file_stamp = stamp;
        tracing::info!(source = %self.id, file = %f.display(), "vault token file read");
        self.lookup_self(st).await
    }

    async fn renew(&self, st: &mut TokenState) -> Result<(), HttpError> {
        let asked = st.granted_ttl.as_secs();
        let body = json!({ "increment": format!("{asked}s") });
        let v = self
            .http
            .call(
                Method::POST,
                "auth/token/renew-self",
                st.token.as_ref(),
                Some(&body),
            )
            .await?;
        let got = secs_at(&v, "/auth/lease_duration");
        let renewable = v
            .pointer("/auth/renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.renewals.fetch_add(1, Ordering::Relaxed);
        self.schedule(st, Duration::from_secs(got), renewable);
        // Vault granted less than asked: the token is close to its max TTL. A login method
        // logs in again at the next action instead of renewing a dying token.
        st.login_next = self.can_login() && got < asked;
        tracing::info!(source = %self.id, ttl_s = got, asked_s = asked, "vault token renewed");
        Ok(())
    }

    async fn login(&self, st: &mut TokenState) -> Result<(), SourceError> {
        let (path, body) = match &self.auth {
            VaultAuth::Token { .. } => unreachable!("token auth does not log in"),
            VaultAuth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let sid = match secret_id {
                    SecretIdFrom::Value(s) => s.clone(),
                    SecretIdFrom::File(f) => {
                        let t = tokio::fs::read_to_string(f).await.map_err(|e| {
                            SourceError::new(
                                &self.id,
                                format!("cannot read secret id file {}: {e}", f.display()),
                            )
                            .with_hint("check VAULT_SECRET_ID_FILE and its permissions")
                        })?;
                        Secret::from(t.trim())
                    }
                };
                (
                    format!("auth/{mount}/login"),
                    json!({ "role_id": role_id, "secret_id": sid.expose() }),
                )
            }
            VaultAuth::AwsIam {
                mount,
                role,
                header_value,
                region,
            } => {
                let creds = self.aws_credentials().await?;
                let payload = iam::login_payload(
                    role,
                    header_value.as_deref(),
                    region,
                    &creds,
                    SystemTime::now(),
                )
                .map_err(|m| SourceError::new(&self.id, format!("aws-iam login: {m}")))?;
                (format!("auth/{mount}/login"), payload)
            }
        };
        let v = self
            .http
            .call(Method::POST, &path, None, Some(&body))
            .await
            .map_err(|e| {
                let hint = match (e.status(), &self.auth) {
                    (Some(400 | 403), VaultAuth::AppRole { .. }) => Some(format!(
                        "check the role id and secret id (expired or used up?) for {path}"
                    )),
                    (Some(400 | 403), VaultAuth::AwsIam { role, .. }) => Some(format!(
                        "check that Vault role `{role}` binds this IAM principal, and the server id header and region match the mount's config"
                    )),
                    _ => e.hint(&path),
                };
                let mut err = SourceError::new(&self.id, format!("{} login failed: {e}", self.method()));
                err.hint = hint;
                err
            })?;
        let token = str_at(&v, "/auth/client_token").ok_or_else(|| {
            SourceError::new(
                &self.id,
                format!(
                    "{} login: no auth.client_token in Vault's answer",
                    self.method()
                ),
            )
        })?;
        let ttl = secs_at(&v, "/auth/lease_duration");
        let renewable = v
            .pointer("/auth/renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.set_token(st, Secret::from(token));
        st.granted_ttl = Duration::from_secs(ttl);
        st.login_next = false;
        self.schedule(st, Duration::from_secs(ttl), renewable);
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(source = %self.id, method = self.method(), ttl_s = ttl, renewable, "vault login");
        Ok(())
    }

    async fn aws_credentials(&self) -> Result<aws_credential_types::Credentials, SourceError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        if let Some(p) = &self.aws_creds {
            return p.provide_credentials().await.map_err(|e| {
                SourceError::new(&self.id, format!("aws-iam login: no AWS credentials: {e}"))
            });
        }
        let cfg = self
            .aws
            .get_or_init(|| async {
                // The signature's region is configured: do not let the region chain probe
                // IMDS for one (a second of start-up off EC2).
                let region = match &self.auth {
                    VaultAuth::AwsIam { region, .. } => Some(region.as_str()),
                    _ => None,
                };
                crate::source::proxy::aws_sdk_config(region, None).await
            })
            .await;
        let provider = cfg.credentials_provider().ok_or_else(|| {
            SourceError::new(&self.id, "aws-iam login: no AWS credential provider")
        })?;
        provider.provide_credentials().await.map_err(|e| {
            SourceError::new(&self.id, format!("aws-iam login: no AWS credentials: {e}")).with_hint(
                "the standard chain found none: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, container credentials (AWS_CONTAINER_CREDENTIALS_*), or IMDSv2 on EC2",
            )
        })
    }
}

fn file_stamp(f: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(f).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_about_two_thirds() {
        for _ in 0..1000 {
            let d = two_thirds_jittered(Duration::from_secs(300));
            assert!(d <= Duration::from_secs(200), "{d:?}");
            assert!(d >= Duration::from_secs(180), "{d:?}");
        }
    }
}
