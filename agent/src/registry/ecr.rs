//! Amazon ECR credentials: GetAuthorizationToken, cached until shortly before it expires.
//!
//! What: [`EcrCredentials::auth`] returns `AWS` and the token's password for an ECR registry
//! host. The AWS credentials come from aws-config's standard chain (environment, profile,
//! container credentials in ECS/App Runner, IMDSv2 on EC2); `AWS_ENDPOINT_URL` (and
//! `AWS_ENDPOINT_URL_ECR`) are honoured, so moto can stand in for ECR. The region is the one in
//! the host name (`<account>.dkr.ecr.<region>.amazonaws.com`, or the dual-stack
//! `<account>.dkr-ecr.<region>.on.aws`), else `registries.ecr_region`, else the chain's region.
//!
//! Design: one cache slot per registry host holds the decoded token until `expiresAt` minus
//! [`REFRESH_MARGIN`] by the injected [`Clock`] (tests use a fake one); concurrent pulls from
//! one registry share a single fetch and its outcome: the lookups that queued while it ran get
//! its token or its error (a count of finished fetches tells them one ended while they
//! waited), so a stack of N images from an unreachable registry fails after one
//! [`FETCH_TIMEOUT`], not N; that outcome is dropped once the last of them is served (a token
//! is kept only in the cache, until it is due). A failure is not cached: a lookup that starts
//! after it fetches again. [`EcrCredentials::invalidate`] empties the slot so the next lookup (the retry after
//! a 401) fetches a new token. A token that arrives already expired by our clock (clock skew,
//! or moto, which answers 2015-01-01) is used by the lookup that fetched it and those that
//! waited for that fetch, and not cached. SDK clients are built once per region and reused;
//! every fetch is bounded by [`FETCH_TIMEOUT`]. The SDK set-up and the guard that drops the
//! SDK's own tracing events during a fetch (at TRACE it logs the response body, token
//! included) are `gantry_common::aws`, shared with the sidecar.
//!
//! Limits: the deprecated `registryIds` parameter is not sent (a token is valid for every
//! registry the principal may read). ECR Public (`public.ecr.aws`) is not served here: it
//! refuses private-ECR tokens and its public images pull anonymously, so
//! `registries.ecr` refuses it ([`is_ecr_public`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::{Region, SdkConfig};
use base64::Engine as _;
use gantry_common::Secret;

use super::RegistryError;
use crate::engine::RegistryAuth;

/// A token is fetched again this long before it expires.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Bound on loading the AWS configuration plus one GetAuthorizationToken call.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Wall-clock time, injectable so tests can move it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What an ECR host name tells: `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]`, or
/// the dual-stack `<account>.dkr-ecr[-fips].<region>.on.aws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
}

/// The host of Amazon ECR Public. Its public images pull anonymously, and it refuses the
/// tokens of private ECR (GetAuthorizationToken), so it must not go through this module.
pub const ECR_PUBLIC_HOST: &str = "public.ecr.aws";

/// Whether `host` (normalised `host[:port]`) is Amazon ECR Public.
pub fn is_ecr_public(host: &str) -> bool {
    host.split(':')
        .next()
        .is_some_and(|h| h.eq_ignore_ascii_case(ECR_PUBLIC_HOST))
}

/// Parses an ECR registry host (port allowed), IPv4-only or dual-stack; `None` for any other
/// host (ECR Public included).
pub fn parse_ecr_host(host: &str) -> Option<EcrHost> {
    let host = host.split(':').next()?.to_ascii_lowercase();
    // The labels between the account and the region name the service.
    let (rest, services): (&str, [&str; 2]) = if let Some(rest) = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
    {
        (rest, ["dkr.ecr", "dkr.ecr-fips"])
    } else if let Some(rest) = host.strip_suffix(".on.aws") {
        (rest, ["dkr-ecr", "dkr-ecr-fips"])
    } else {
        return None;
    };
    let (account, rest) = rest.split_once('.')?;
    let (service, region) = rest.rsplit_once('.')?;
    let ok = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && services.contains(&service)
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| EcrHost {
        account: account.to_owned(),
        region: region.to_owned(),
    })
}

/// Where the AWS configuration comes from.
#[derive(Debug)]
enum AwsSource {
    /// aws-config's default chain, loaded per region on first use.
    StandardChain,
    /// A ready configuration (tests, or a caller that already loaded one).
    Fixed(SdkConfig),
}

/// A token and when to stop using it.
#[derive(Debug, Clone)]
struct Cached {
    auth: RegistryAuth,
    refresh_at: SystemTime,
}

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Held while fetching, so concurrent lookups share one fetch.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct SlotState {
    cached: Option<Cached>,
    /// Fetches that ran to the end (success or failure), to tell whether one ended while a
    /// lookup waited for [`Slot::fetching`].
    fetched: u64,
    /// Lookups that read `fetched` and have not yet looked at the slot again with
    /// [`Slot::fetching`] held (or given up): those a fetch that ends now must serve.
    queued: usize,
    /// The outcome of the last fetch, for the lookups that queued while it ran: they get it
    /// instead of fetching in turn. A lookup that starts later never reads it, and it is
    /// dropped once the last of those is served (`waiters`): no token is kept for nobody (only
    /// `cached` keeps one, until it is due).
    last: Option<Result<RegistryAuth, RegistryError>>,
    /// The lookups `last` is still kept for.
    waiters: usize,
}

impl SlotState {
    /// Records the outcome of a fetch that ran to the end, for the lookups queued behind it.
    fn fetch_ended(&mut self, outcome: &Result<RegistryAuth, RegistryError>) {
        self.fetched += 1;
        self.waiters = self.queued;
        self.last = (self.queued > 0).then(|| outcome.clone());
    }

    /// One queued lookup that read `fetched` as `seen` is done waiting: the outcome of the
    /// fetch that ended meanwhile, if any (the last one served takes it out of the slot).
    fn unqueue(&mut self, seen: u64) -> Option<Result<RegistryAuth, RegistryError>> {
        self.queued = self.queued.saturating_sub(1);
        if self.fetched == seen {
            return None;
        }
        self.waiters = self.waiters.saturating_sub(1);
        if self.waiters == 0 {
            self.last.take()
        } else {
            self.last.clone()
        }
    }
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lookup queued for [`Slot::fetching`]: one whose future is dropped while it waits (a pull
/// cancelled) is unqueued all the same, so the outcome kept for it is not kept forever.
struct Queued<'a> {
    slot: &'a Slot,
    seen: u64,
    done: bool,
}

impl Queued<'_> {
    /// Done waiting, with the slot's state locked: see [`SlotState::unqueue`].
    fn arrive(mut self, state: &mut SlotState) -> Option<Result<RegistryAuth, RegistryError>> {
        self.done = true;
        state.unqueue(self.seen)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.slot.state().unqueue(self.seen);
        }
    }
}

/// Adjusts each ECR client's configuration (interceptors, timeouts) before it is built.
type Customise =
    Arc<dyn Fn(aws_sdk_ecr::config::Builder) -> aws_sdk_ecr::config::Builder + Send + Sync>;

/// ECR tokens for any number of registries, cached per registry host.
pub struct EcrCredentials {
    source: AwsSource,
    customise: Option<Customise>,
    region: Option<String>,
    margin: Duration,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// region ("" for the chain's) → client.
    clients: tokio::sync::Mutex<HashMap<String, aws_sdk_ecr::Client>>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for EcrCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrCredentials")
            .field("source", &self.source)
            .field("region", &self.region)
            .field("margin", &self.margin)
            .field("customised", &self.customise.is_some())
            .field("token_fetches", &self.token_fetches())
            .finish_non_exhaustive()
    }
}

impl EcrCredentials {
    /// AWS credentials, endpoint and region from the standard chain; `region` is used for
    /// hosts whose name carries none.
    pub fn standard_chain(region: Option<String>) -> Self {
        Self::build(AwsSource::StandardChain, region)
    }

    /// Uses `sdk` (credentials, endpoint, default region) instead of the standard chain.
    pub fn with_sdk_config(sdk: SdkConfig, region: Option<String>) -> Self {
        Self::build(AwsSource::Fixed(sdk), region)
    }

    fn build(source: AwsSource, region: Option<String>) -> Self {
        Self {
            source,
            customise: None,
            region,
            margin: REFRESH_MARGIN,
            clock: Arc::new(SystemClock),
            slots: Mutex::new(HashMap::new()),
            clients: tokio::sync::Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// Reads time from `clock` (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Applies `customise` to every ECR client's configuration before it is built (for
    /// example an interceptor, or tighter timeouts).
    pub fn with_client_config(
        mut self,
        customise: impl Fn(aws_sdk_ecr::config::Builder) -> aws_sdk_ecr::config::Builder
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.customise = Some(Arc::new(customise));
        self
    }

    /// Fetches again this long before expiry (default [`REFRESH_MARGIN`]).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How many GetAuthorizationToken calls were made (for metrics and tests).
    pub fn token_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Credentials for the ECR registry `host` (normalised `host[:port]`).
    ///
    /// Lookups that queue while a fetch runs get that fetch's outcome, its error included,
    /// so N pulls from an unreachable registry fail after one [`FETCH_TIMEOUT`], not N.
    pub async fn auth(&self, host: &str) -> Result<RegistryAuth, RegistryError> {
        let slot = self.slot(host);
        let queued = {
            let mut state = slot.state();
            if let Some(auth) = self.fresh(&state) {
                tracing::debug!(registry = %host, source = "ecr", cached = true, "registry credentials from Amazon ECR");
                return Ok(auth);
            }
            state.queued += 1;
            Queued {
                slot: &slot,
                seen: state.fetched,
                done: false,
            }
        };
        let _fetching = slot.fetching.lock().await;
        {
            let mut state = slot.state();
            let outcome = queued.arrive(&mut state);
            // Another lookup may have fetched while this one waited.
            if let Some(auth) = self.fresh(&state) {
                tracing::debug!(registry = %host, source = "ecr", cached = true, "registry credentials from Amazon ECR");
                return Ok(auth);
            }
            if let Some(outcome) = outcome {
                tracing::debug!(
                    registry = %host,
                    source = "ecr",
                    failed = outcome.is_err(),
                    "the outcome of the Amazon ECR token fetch this lookup waited for"
                );
                return outcome;
            }
        }
        // The AWS SDK logs whole responses, token included, at TRACE: its events inside the
        // fetch go nowhere, and ours (after it) say what happened without the token.
        let fetched =
            tokio::time::timeout(FETCH_TIMEOUT, gantry_common::aws::quiet(self.fetch(host)))
                .await
                .unwrap_or_else(|_| {
                    Err(RegistryError::Ecr {
                        registry: host.to_owned(),
                        reason: format!(
                            "no answer within {}",
                            humantime::format_duration(FETCH_TIMEOUT)
                        ),
                    })
                });
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                let e = Err(e);
                slot.state().fetch_ended(&e);
                return e;
            }
        };
        let now = self.clock.now();
        let refresh_at = fetched
            .expires_at
            .and_then(|t| t.checked_sub(self.margin))
            .filter(|t| *t > now);
        tracing::info!(
            registry = %host,
            source = "ecr",
            expires_at = %fetched
                .expires_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_default(),
            cached = refresh_at.is_some(),
            "fetched an Amazon ECR authorization token"
        );
        let mut state = slot.state();
        state.fetch_ended(&Ok(fetched.auth.clone()));
        state.cached = refresh_at.map(|refresh_at| Cached {
            auth: fetched.auth.clone(),
            refresh_at,
        });
        Ok(fetched.auth)
    }

    /// Forgets the cached token of `host`; the next [`auth`](Self::auth) fetches a new one.
    pub fn invalidate(&self, host: &str) {
        let slot = self.slot(host);
        let mut state = slot.state();
        state.last = None;
        state.waiters = 0;
        let had = state.cached.take().is_some();
        drop(state);
        tracing::debug!(registry = %host, had_token = had, "Amazon ECR token invalidated");
    }

    /// Whether the slot of `host` keeps a fetch's outcome for lookups still to be served.
    #[cfg(test)]
    pub(crate) fn keeps_outcome(&self, host: &str) -> bool {
        self.slot(host).state().last.is_some()
    }

    fn slot(&self, host: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(host.to_owned()).or_default().clone()
    }

    /// The cached credentials of a slot if still good by the clock.
    fn fresh(&self, state: &SlotState) -> Option<RegistryAuth> {
        state
            .cached
            .as_ref()
            .filter(|c| self.clock.now() < c.refresh_at)
            .map(|c| c.auth.clone())
    }

    async fn client(&self, host: &str) -> Result<aws_sdk_ecr::Client, RegistryError> {
        let region = parse_ecr_host(host)
            .map(|h| h.region)
            .or_else(|| self.region.clone());
        let key = region.clone().unwrap_or_default();
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let no_region = || RegistryError::EcrRegion {
            registry: host.to_owned(),
        };
        let builder = match &self.source {
            AwsSource::StandardChain => {
                let sdk = gantry_common::aws::sdk_config(region.as_deref(), None).await;
                if sdk.region().is_none() {
                    return Err(no_region());
                }
                aws_sdk_ecr::config::Builder::from(&sdk)
            }
            AwsSource::Fixed(sdk) => {
                let mut builder = aws_sdk_ecr::config::Builder::from(sdk);
                if let Some(r) = &region {
                    builder = builder.region(Region::new(r.clone()));
                } else if sdk.region().is_none() {
                    return Err(no_region());
                }
                builder
            }
        };
        let builder = match &self.customise {
            Some(customise) => customise(builder),
            None => builder,
        };
        let client = aws_sdk_ecr::Client::from_conf(builder.build());
        clients.insert(key, client.clone());
        Ok(client)
    }

    async fn fetch(&self, host: &str) -> Result<Fetched, RegistryError> {
        let client = self.client(host).await?;
        let fail = |reason: String| RegistryError::Ecr {
            registry: host.to_owned(),
            reason,
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let out = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| fail(sdk_reason(&e)))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| fail("the answer holds no authorization data".into()))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| fail("the answer holds no authorization token".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Secret::new)
            .ok_or_else(|| fail("the authorization token is not base64 text".into()))?;
        let (username, password) = decoded
            .expose()
            .split_once(':')
            .ok_or_else(|| fail("the authorization token is not user:password".into()))?;
        let expires_at = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok());
        Ok(Fetched {
            auth: RegistryAuth {
                server_address: host.to_owned(),
                username: username.to_owned(),
                password: Secret::new(password.to_owned()),
                identity_token: None,
            },
            expires_at,
        })
    }
}

/// A short reason for a failed call: the service's error code and message, or the chain of
/// causes of a transport failure (no Debug dumps).
fn sdk_reason<E, R>(e: &aws_sdk_ecr::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = e.as_service_error() {
        let code = service.code().unwrap_or("error");
        return match service.message() {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        };
    }
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

struct Fetched {
    auth: RegistryAuth,
    expires_at: Option<SystemTime>,
}
