//! Amazon ECR tokens against moto's real GetAuthorizationToken, with a fake clock.
//!
//! What: the token decodes to `AWS` and the password moto hands out; it is cached until five
//! minutes before `expiresAt` by the injected clock and fetched again after; `invalidate`
//! forces a new fetch; a token already expired on arrival (moto answers `expiresAt`
//! 2015-01-01, so by the real clock every token is) is used once and not cached; concurrent
//! lookups share one fetch; an unreachable endpoint fails naming the registry; a stale cached
//! token (one of another account, via moto's `x-moto-account-id` header) makes the real
//! registry answer 401, and `Deployer::pull` invalidates it, fetches a new one and succeeds.
//!
//! Design: the AWS configuration is loaded with aws-config's loader, explicit endpoint (moto
//! from the `tests/env/up` env file), region and static test keys, so the tests need no
//! process environment; the binary's standard chain is exercised by tests/tests/deploy_registry.rs.
//!
//! Limits: needs moto, and for the 401 test the Docker daemon and the test registry
//! (`tests/env/up`); without them the tests fail, they do not skip.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use gantry_agent::engine::ImageRef;
use gantry_agent::registry::{
    Clock, ConfiguredRegistries, DockerConfigCredentials, EcrCredentials, Registries,
    RegistriesConfig, RegistryError,
};

/// 2015-01-01T00:00:00Z: the `expiresAt` of every moto token.
const MOTO_EXPIRY: u64 = 1_420_070_400;
const REGISTRY: &str = "127.0.0.1:5551";

/// `KEY` from the file `tests/env/up` writes (through the gantry-tests helpers).
fn test_env(key: &str) -> String {
    gantry_tests::env().get(key).to_owned()
}

#[derive(Debug)]
struct FakeClock(Mutex<SystemTime>);

impl FakeClock {
    fn at(secs: u64) -> Arc<Self> {
        Arc::new(Self(Mutex::new(UNIX_EPOCH + Duration::from_secs(secs))))
    }
    fn set(&self, secs: u64) {
        *self.0.lock().unwrap() = UNIX_EPOCH + Duration::from_secs(secs);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(test_env("GANTRY_TEST_AWS_REGION")))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            test_env("GANTRY_TEST_AWS_ACCESS_KEY_ID"),
            test_env("GANTRY_TEST_AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "gantry-test",
        ))
        .retry_config(RetryConfig::disabled())
        .load()
        .await
}

async fn moto() -> aws_config::SdkConfig {
    sdk(&test_env("GANTRY_TEST_AWS_ENDPOINT")).await
}

#[tokio::test]
async fn token_is_cached_until_five_minutes_before_expiry() {
    let clock = FakeClock::at(MOTO_EXPIRY - 24 * 3600);
    let ecr = EcrCredentials::with_sdk_config(moto().await, None).with_clock(clock.clone());

    let auth = ecr.auth(REGISTRY).await.unwrap();
    assert_eq!(auth.username, "AWS");
    assert_eq!(
        auth.password.expose(),
        &test_env("GANTRY_TEST_REGISTRY_ECR_PASSWORD")
    );
    assert_eq!(auth.server_address, REGISTRY);
    assert_eq!(ecr.token_fetches(), 1);

    ecr.auth(REGISTRY).await.unwrap();
    clock.set(MOTO_EXPIRY - 5 * 60 - 1);
    ecr.auth(REGISTRY).await.unwrap();
    assert_eq!(ecr.token_fetches(), 1, "cached until expiresAt - 5 min");

    clock.set(MOTO_EXPIRY - 5 * 60);
    ecr.auth(REGISTRY).await.unwrap();
    assert_eq!(ecr.token_fetches(), 2, "fetched again within the margin");

    // The new token is again cached (by the clock it is not due yet)...
    clock.set(MOTO_EXPIRY - 3600 * 12);
    ecr.auth(REGISTRY).await.unwrap();
    assert_eq!(ecr.token_fetches(), 3);
    ecr.auth(REGISTRY).await.unwrap();
    assert_eq!(ecr.token_fetches(), 3);
    // ...until a 401 invalidates it; other registries keep theirs.
    ecr.auth("other.example.com:5000").await.unwrap();
    assert_eq!(ecr.token_fetches(), 4);
    ecr.invalidate(REGISTRY);
    ecr.auth(REGISTRY).await.unwrap();
    ecr.auth("other.example.com:5000").await.unwrap();
    assert_eq!(ecr.token_fetches(), 5);
}

#[tokio::test]
async fn a_token_expired_on_arrival_is_used_but_not_cached() {
    // The real clock: moto's 2015 expiry is long past.
    let ecr = EcrCredentials::with_sdk_config(moto().await, None);
    ecr.auth(REGISTRY).await.unwrap();
    ecr.auth(REGISTRY).await.unwrap();
    assert_eq!(ecr.token_fetches(), 2);
}

#[tokio::test]
async fn concurrent_lookups_share_one_fetch() {
    let clock = FakeClock::at(MOTO_EXPIRY - 3600);
    let ecr = Arc::new(EcrCredentials::with_sdk_config(moto().await, None).with_clock(clock));
    let lookups = (0..8).map(|_| {
        let ecr = ecr.clone();
        tokio::spawn(async move { ecr.auth(REGISTRY).await.map(|a| a.username) })
    });
    for l in futures_util::future::join_all(lookups).await {
        assert_eq!(l.unwrap().unwrap(), "AWS");
    }
    assert_eq!(ecr.token_fetches(), 1);
}

#[tokio::test]
async fn the_composite_sends_configured_hosts_to_ecr_and_others_to_docker_config() {
    let clock = FakeClock::at(MOTO_EXPIRY - 3600);
    let config = RegistriesConfig {
        docker_config: None,
        ecr_hosts: [REGISTRY.to_owned()].into(),
        ecr_region: None,
    };
    let ecr = EcrCredentials::with_sdk_config(moto().await, None).with_clock(clock);
    let registries =
        ConfiguredRegistries::with_parts(config, DockerConfigCredentials::new(None), ecr);
    let image = ImageRef::new(format!("{REGISTRY}/app:1"));
    let auth = registries.auth_for(&image).await.unwrap().unwrap();
    assert_eq!(auth.username, "AWS");
    assert!(
        registries
            .auth_for(&ImageRef::new("127.0.0.1:5552/app:1"))
            .await
            .unwrap()
            .is_none()
    );
    registries.invalidate(REGISTRY);
    registries.auth_for(&image).await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_names_the_registry() {
    let ecr = EcrCredentials::with_sdk_config(sdk("http://127.0.0.1:1").await, None);
    let err = ecr.auth(REGISTRY).await.unwrap_err();
    assert!(matches!(err, RegistryError::Ecr { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(REGISTRY) && msg.contains("GetAuthorizationToken") && msg.contains("hint"),
        "{msg}"
    );
    assert!(msg.contains("Connection refused"), "the cause: {msg}");
    assert!(!msg.contains("DispatchFailure("), "no Debug dump: {msg}");
}

/// Sends moto's account header on the first `n` requests only, so those tokens belong to
/// another account and the registry refuses them: a stale token, as after a rotation.
#[derive(Debug)]
struct ForeignAccountFirst {
    left: std::sync::atomic::AtomicUsize,
    seen: Arc<std::sync::atomic::AtomicUsize>,
}

impl aws_sdk_ecr::config::Intercept for ForeignAccountFirst {
    fn name(&self) -> &'static str {
        "ForeignAccountFirst"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_ecr::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &aws_sdk_ecr::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ecr::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use std::sync::atomic::Ordering;
        self.seen.fetch_add(1, Ordering::SeqCst);
        let first = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if first {
            context
                .request_mut()
                .headers_mut()
                .insert("x-moto-account-id", "999999999999");
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_stale_cached_token_is_refetched_after_a_401_and_the_pull_succeeds() {
    use gantry_agent::deploy::Deployer;
    use gantry_agent::engine::{DockerEngine, Engine};
    use gantry_agent::ledger::Ledger;

    let registry = test_env("GANTRY_TEST_REGISTRY");
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let interceptor_seen = seen.clone();
    let clock = FakeClock::at(MOTO_EXPIRY - 3600);
    let ecr = EcrCredentials::with_sdk_config(moto().await, None)
        .with_clock(clock)
        .with_client_config(move |b| {
            b.interceptor(ForeignAccountFirst {
                left: std::sync::atomic::AtomicUsize::new(1),
                seen: interceptor_seen.clone(),
            })
        });
    let config = RegistriesConfig {
        docker_config: None,
        ecr_hosts: [registry.clone()].into(),
        ecr_region: None,
    };
    let registries = Arc::new(ConfiguredRegistries::with_parts(
        config,
        DockerConfigCredentials::new(None),
        ecr,
    ));
    // The pushed-by-tests/env/up image; a pull always asks the registry, local copy or not.
    let image = ImageRef::new(format!("{registry}/gantry-test/busybox:latest"));

    // A token for the wrong account is fetched and cached (valid for an hour by the clock).
    let stale = registries.auth_for(&image).await.unwrap().unwrap();
    assert_eq!(stale.password.expose(), "999999999999-auth-token");
    assert_eq!(registries.ecr().token_fetches(), 1);

    let engine: Arc<dyn Engine> = Arc::new(
        DockerEngine::connect(std::env::var("DOCKER_HOST").ok().as_deref())
            .await
            .unwrap(),
    );
    let state = tempfile::tempdir().unwrap();
    let deployer =
        Deployer::new(engine, Ledger::new(state.path())).with_registries(registries.clone());
    let info = deployer
        .pull(&image)
        .await
        .expect("the retry with a fresh token");
    assert!(info.digest_for(&image).is_some(), "{info:?}");
    assert_eq!(
        registries.ecr().token_fetches(),
        2,
        "one fetch for the stale token, one after the 401"
    );
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The fresh token is now the cached one.
    let fresh = registries.auth_for(&image).await.unwrap().unwrap();
    assert_eq!(
        fresh.password.expose(),
        &test_env("GANTRY_TEST_REGISTRY_ECR_PASSWORD")
    );
    assert_eq!(registries.ecr().token_fetches(), 2);
}
