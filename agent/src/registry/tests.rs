//! Unit tests: `registries:` parsing and validation, environment layering, registry name
//! normalisation, ECR host recognition, `auths` lookup, and the ECR token fetch shared by
//! concurrent lookups (AWS credentials that fail after a delay, no network, paused time).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn raw(yaml: &str) -> Result<RawRegistriesConfig, serde_yaml::Error> {
    serde_yaml::from_str(yaml)
}

#[test]
fn parses_every_key_and_refuses_unknown_ones() {
    let r = raw("docker_config: /etc/gantry/docker\necr: [127.0.0.1:5551, https://reg.example.com/v2/]\necr_region: eu-west-1\n").unwrap();
    assert_eq!(r.ecr.len(), 2);
    let err = raw("ecr_hosts: [a]\n").unwrap_err().to_string();
    assert!(err.contains("ecr_hosts"), "{err}");
    let cfg = RegistriesConfig::resolve(&r, &env_of(&[])).unwrap();
    assert_eq!(
        cfg.ecr_hosts.iter().cloned().collect::<Vec<_>>(),
        ["127.0.0.1:5551", "reg.example.com"]
    );
    assert_eq!(cfg.ecr_region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        cfg.docker_config.as_deref(),
        Some(Path::new("/etc/gantry/docker"))
    );
}

#[test]
fn the_environment_wins_over_the_file() {
    let r = raw("docker_config: /etc/gantry/docker.json\necr: [a.example.com]\n").unwrap();
    let cfg = RegistriesConfig::resolve(
        &r,
        &env_of(&[
            ("GANTRY_DOCKER_CONFIG", "/run/gantry/config.json"),
            ("GANTRY_ECR_REGISTRIES", " 127.0.0.1:5551 , ,b.example.com"),
            ("DOCKER_CONFIG", "/ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(
        cfg.docker_config.as_deref(),
        Some(Path::new("/run/gantry/config.json"))
    );
    assert!(cfg.is_ecr("127.0.0.1:5551") && cfg.is_ecr("B.example.com"));
    assert!(!cfg.is_ecr("a.example.com"));
    // Set but empty: no extra ECR hosts; real ECR hosts stay ECR.
    let cfg = RegistriesConfig::resolve(&r, &env_of(&[("GANTRY_ECR_REGISTRIES", "")])).unwrap();
    assert!(cfg.ecr_hosts.is_empty());
    assert!(cfg.is_ecr("123456789012.dkr.ecr.eu-west-1.amazonaws.com"));
}

#[test]
fn docker_config_falls_back_to_docker_config_then_home() {
    let none = RawRegistriesConfig::default();
    let cfg = RegistriesConfig::resolve(
        &none,
        &env_of(&[("DOCKER_CONFIG", "/d"), ("HOME", "/root")]),
    )
    .unwrap();
    assert_eq!(
        cfg.docker_config.as_deref(),
        Some(Path::new("/d/config.json"))
    );
    let cfg = RegistriesConfig::resolve(&none, &env_of(&[("HOME", "/root")])).unwrap();
    assert_eq!(
        cfg.docker_config.as_deref(),
        Some(Path::new("/root/.docker/config.json"))
    );
    let cfg = RegistriesConfig::resolve(&none, &env_of(&[])).unwrap();
    assert_eq!(cfg.docker_config, None);
    // A directory means its config.json.
    let dir = tempfile::tempdir().unwrap();
    let cfg = RegistriesConfig::resolve(
        &none,
        &env_of(&[("GANTRY_DOCKER_CONFIG", dir.path().to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(cfg.docker_config, Some(dir.path().join("config.json")));
}

#[test]
fn invalid_values_name_the_key() {
    let err =
        RegistriesConfig::resolve(&raw("docker_config: docker.json\n").unwrap(), &env_of(&[]))
            .unwrap_err();
    assert_eq!(err.key, "registries.docker_config");
    let err = RegistriesConfig::resolve(
        &raw("ecr: [ok.example.com, 'a b']\n").unwrap(),
        &env_of(&[]),
    )
    .unwrap_err();
    assert_eq!(err.key, "registries.ecr[1]");
    let err = RegistriesConfig::resolve(
        &RawRegistriesConfig::default(),
        &env_of(&[("GANTRY_ECR_REGISTRIES", "user@host/path")]),
    )
    .unwrap_err();
    assert_eq!(err.key, "GANTRY_ECR_REGISTRIES[0]");
    // ECR Public refuses private-ECR tokens: listing it would break anonymous pulls.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 3] = [
        (
            "ecr: [a.example.com, public.ecr.aws]\n",
            &[],
            "registries.ecr[1]",
        ),
        (
            "ecr: ['https://Public.ECR.aws/v2/']\n",
            &[],
            "registries.ecr[0]",
        ),
        (
            "ecr: [a.example.com]\n",
            &[("GANTRY_ECR_REGISTRIES", "b.example.com,public.ecr.aws:443")],
            "GANTRY_ECR_REGISTRIES[1]",
        ),
    ];
    for (yaml, env, key) in cases {
        let err = RegistriesConfig::resolve(&raw(yaml).unwrap(), &env_of(env)).unwrap_err();
        assert_eq!(err.key, key, "{yaml}");
        let text = err.to_string();
        let list = key.split('[').next().unwrap();
        assert!(
            text.starts_with(&format!("{key}: "))
                && text.contains("ECR Public")
                && text.contains("anonymously")
                && text.contains(&format!("remove it from {list}")),
            "{text}"
        );
    }
    let err = RegistriesConfig::resolve(&raw("ecr_region: EU West\n").unwrap(), &env_of(&[]))
        .unwrap_err();
    assert_eq!(err.key, "registries.ecr_region");
    assert!(
        err.to_string().starts_with("registries.ecr_region: "),
        "{err}"
    );
}

#[test]
fn registry_names_normalise_like_docker() {
    for hub in [
        "docker.io",
        "index.docker.io",
        "https://index.docker.io/v1/",
        "registry-1.docker.io",
        "HTTPS://Index.Docker.IO/v1/",
    ] {
        assert_eq!(normalise_registry(hub), "docker.io", "{hub}");
    }
    assert_eq!(
        normalise_registry("http://127.0.0.1:5551/v2/"),
        "127.0.0.1:5551"
    );
    assert_eq!(normalise_registry("Reg.Example.com"), "reg.example.com");
    assert_eq!(
        normalise_registry(ImageRef::new("nginx:1").registry()),
        "docker.io"
    );
}

#[test]
fn ecr_hosts_are_recognised_by_name() {
    let h = ecr::parse_ecr_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com").unwrap();
    assert_eq!(
        (h.account.as_str(), h.region.as_str()),
        ("123456789012", "eu-west-1")
    );
    let h =
        ecr::parse_ecr_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com:443").unwrap();
    assert_eq!(h.region, "us-gov-west-1");
    assert_eq!(
        ecr::parse_ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
            .unwrap()
            .region,
        "cn-north-1"
    );
    // Dual-stack (IPv4 and IPv6) hosts carry the region too.
    for (host, region) in [
        ("123456789012.dkr-ecr.ap-south-1.on.aws", "ap-south-1"),
        (
            "123456789012.DKR-ECR.Eu-Central-2.on.aws:443",
            "eu-central-2",
        ),
        (
            "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws",
            "us-gov-west-1",
        ),
    ] {
        let h = ecr::parse_ecr_host(host).unwrap_or_else(|| panic!("{host}"));
        assert_eq!(
            (h.account.as_str(), h.region.as_str()),
            ("123456789012", region),
            "{host}"
        );
    }
    for not in [
        "12345.dkr.ecr.eu-west-1.amazonaws.com",
        "123456789012.ecr.eu-west-1.amazonaws.com",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com",
        "123456789012.dkr.ecr.eu.west-1.amazonaws.com",
        "123456789012.dkr.ecr..amazonaws.com",
        "public.ecr.aws",
        "127.0.0.1:5551",
        // Dual-stack spellings that are not a private registry.
        "123456789012.dkr-ecr.eu-west-1.on.aws.evil.com",
        "123456789012.dkr.ecr.eu-west-1.on.aws",
        "123456789012.dkr-ecr.eu-west-1.amazonaws.com",
        "12345678901x.dkr-ecr.eu-west-1.on.aws",
        "123456789012.dkr-ecr..on.aws",
        "123456789012.dkr-ecr.on.aws",
        "dkr-ecr.eu-west-1.on.aws",
        "ecr.eu-west-1.api.aws",
        "123456789012.dkr-ecr.eu_west_1.on.aws",
    ] {
        assert_eq!(ecr::parse_ecr_host(not), None, "{not}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Every form of an ECR host gives back its account and region, whatever the case and
    /// port.
    #[test]
    fn ecr_hosts_of_every_form_parse(
        account in "[0-9]{12}",
        region in "[a-z]{2}(-gov|-iso)?-[a-z]{4,9}-[1-9]",
        form in 0usize..6,
        port in proptest::option::of(1u16..),
        upper in proptest::bool::ANY,
    ) {
        let host = match form {
            0 => format!("{account}.dkr.ecr.{region}.amazonaws.com"),
            1 => format!("{account}.dkr.ecr-fips.{region}.amazonaws.com"),
            2 => format!("{account}.dkr.ecr.{region}.amazonaws.com.cn"),
            3 => format!("{account}.dkr-ecr.{region}.on.aws"),
            4 => format!("{account}.dkr-ecr-fips.{region}.on.aws"),
            _ => format!("{account}.dkr.ecr-fips.{region}.amazonaws.com.cn"),
        };
        let host = if upper { host.to_ascii_uppercase() } else { host };
        let host = match port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        };
        let parsed = ecr::parse_ecr_host(&host);
        proptest::prop_assert_eq!(parsed, Some(ecr::EcrHost { account, region }), "{}", host);
    }

    /// A host that differs from the forms in any label does not parse (and nothing panics).
    #[test]
    fn other_hosts_do_not_parse(
        account in "[0-9]{1,11}|[0-9]{13,14}|[0-9]{11}[a-z.-]",
        service in "[a-z.-]{0,14}",
        // No '.' in the region, so which labels are the service stays unambiguous.
        region in "[a-z0-9_-]{0,14}",
        suffix in "amazonaws\\.com|amazonaws\\.com\\.cn|on\\.aws|api\\.aws|ecr\\.aws|[a-z.]{0,12}",
        good_account in proptest::bool::ANY,
    ) {
        let account = if good_account { "123456789012".to_owned() } else { account };
        let host = format!("{account}.{service}.{region}.{suffix}");
        let valid_region = !region.is_empty()
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let expected = good_account
            && valid_region
            && match suffix.as_str() {
                "amazonaws.com" | "amazonaws.com.cn" => {
                    service == "dkr.ecr" || service == "dkr.ecr-fips"
                }
                "on.aws" => service == "dkr-ecr" || service == "dkr-ecr-fips",
                _ => false,
            };
        proptest::prop_assert_eq!(ecr::parse_ecr_host(&host).is_some(), expected, "{}", host);
    }
}

#[tokio::test]
async fn the_region_of_a_dual_stack_host_beats_ecr_region() {
    let (sdk, _) = failing_sdk(std::time::Duration::ZERO);
    let regions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = regions.clone();
    let ecr = EcrCredentials::with_sdk_config(sdk, Some("us-east-1".into())).with_client_config(
        move |b| {
            let region = b.clone().build().region().map(|r| r.to_string());
            seen.lock().unwrap().push(region.unwrap_or_default());
            b
        },
    );
    for host in [
        "123456789012.dkr-ecr.ap-south-1.on.aws",
        "123456789012.dkr-ecr-fips.us-gov-west-1.on.aws",
        "registry.internal.example.com",
    ] {
        assert!(ecr.auth(host).await.is_err(), "{host}");
    }
    assert_eq!(
        *regions.lock().unwrap(),
        ["ap-south-1", "us-gov-west-1", "us-east-1"]
    );
}

#[tokio::test]
async fn auths_entries_decode_and_errors_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    // "user:pa:ss" — a password may hold ':'.
    std::fs::write(
        &path,
        r#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYTpzcw=="},
            "reg.example.com": {"username": "u", "password": "p"},
            "tok.example.com": {"identitytoken": "it"},
            "empty.example.com": {}
        }, "HttpHeaders": {"X": "y"}}"#,
    )
    .unwrap();
    let creds = DockerConfigCredentials::new(Some(path.clone()));
    let hub = creds.auth("index.docker.io").await.unwrap().unwrap();
    assert_eq!(hub.username, "user");
    assert_eq!(hub.password.expose(), "pa:ss");
    assert_eq!(hub.server_address, "https://index.docker.io/v1/");
    let reg = creds
        .auth("https://reg.example.com/")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (reg.username.as_str(), reg.password.expose().as_str()),
        ("u", "p")
    );
    let tok = creds.auth("tok.example.com").await.unwrap().unwrap();
    assert_eq!(tok.identity_token.unwrap().expose(), "it");
    assert!(creds.auth("empty.example.com").await.unwrap().is_none());
    assert!(creds.auth("other.example.com").await.unwrap().is_none());
    assert!(!format!("{hub:?}").contains("pa:ss"));

    std::fs::write(
        &path,
        r#"{"auths": {"reg.example.com": {"auth": "not base64 s3cret!"}}}"#,
    )
    .unwrap();
    let err = creds.auth("reg.example.com").await.unwrap_err().to_string();
    assert!(
        err.contains("reg.example.com") && err.contains("base64"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    std::fs::write(&path, r#"{"auths": {"reg.example.com": "s3cret"}}"#).unwrap();
    let err = creds.auth("reg.example.com").await.unwrap_err().to_string();
    assert!(
        err.contains("config.json") && !err.contains("s3cret"),
        "{err}"
    );
    // The exact key beats another spelling of the registry, though it sorts first (a stale
    // `https://` entry left by an old login).
    std::fs::write(
        &path,
        r#"{"auths": {
            "HTTPS://REG.example.com": {"username": "upper", "password": "old"},
            "http://reg.example.com/v2/": {"username": "http", "password": "old"},
            "https://reg.example.com": {"username": "stale", "password": "old"},
            "reg.example.com": {"username": "exact", "password": "new"},
            "https://index.docker.io/v1/": {"username": "hub", "password": "new"},
            "docker.io": {"username": "alias", "password": "old"},
            "https://other.example.com/": {"username": "other", "password": "p"}
        }}"#,
    )
    .unwrap();
    for (registry, user) in [
        ("reg.example.com", "exact"),
        ("https://reg.example.com", "exact"),
        ("docker.io", "hub"),
        ("other.example.com", "other"),
    ] {
        let auth = creds.auth(registry).await.unwrap().unwrap();
        assert_eq!(auth.username, user, "{registry}");
    }
    // No file at all: anonymous.
    let creds = DockerConfigCredentials::new(Some(dir.path().join("missing.json")));
    assert!(creds.auth("reg.example.com").await.unwrap().is_none());
}

/// AWS credentials that never load: each call waits `delay` (tokio time) and fails, so every
/// GetAuthorizationToken fails without touching the network. Counts its calls.
#[derive(Debug, Clone)]
struct FailingCredentials {
    delay: std::time::Duration,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl aws_credential_types::provider::ProvideCredentials for FailingCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let delay = self.delay;
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            tokio::time::sleep(delay).await;
            Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(
                    "no credentials in this test",
                ),
            )
        })
    }
}

/// An ECR client whose every token fetch fails after `delay`; the count of credential loads.
fn failing_ecr(
    delay: std::time::Duration,
) -> (EcrCredentials, Arc<std::sync::atomic::AtomicUsize>) {
    let (sdk, calls) = failing_sdk(delay);
    (EcrCredentials::with_sdk_config(sdk, None), calls)
}

/// AWS configuration (region eu-west-1) whose credentials fail after `delay`.
fn failing_sdk(
    delay: std::time::Duration,
) -> (aws_config::SdkConfig, Arc<std::sync::atomic::AtomicUsize>) {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(FailingCredentials {
                delay,
                calls: calls.clone(),
            }),
        )
        .build();
    (sdk, calls)
}

#[tokio::test(start_paused = true)]
async fn concurrent_lookups_share_one_failed_fetch() {
    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let delay = std::time::Duration::from_secs(2);
    let (ecr, calls) = failing_ecr(delay);
    let started = tokio::time::Instant::now();
    let results = futures_util::future::join_all((0..20).map(|_| ecr.auth(HOST))).await;
    assert_eq!(ecr.token_fetches(), 1);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(started.elapsed() < delay * 2, "{:?}", started.elapsed());
    for r in &results {
        let err = r.as_ref().unwrap_err().to_string();
        assert!(
            err.contains(HOST) && err.contains("GetAuthorizationToken"),
            "{err}"
        );
    }
    // The failure is not remembered: a later lookup (the next deploy) tries again.
    assert!(ecr.auth(HOST).await.is_err());
    assert_eq!(ecr.token_fetches(), 2);
}

/// An ECR endpoint on loopback that answers every request with a GetAuthorizationToken for
/// `AWS:pw-<n>` (n counts the answers) expiring at `expires_at` (seconds since the epoch), after
/// `delay`; returns its URL and the count of answers.
async fn token_endpoint(
    expires_at: u64,
    delay: std::time::Duration,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use base64::Engine as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = answers.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: its head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + length);
                    tokio::time::sleep(delay).await;
                    let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    let token =
                        base64::engine::general_purpose::STANDARD.encode(format!("AWS:pw-{n}"));
                    let body = format!(
                        r#"{{"authorizationData":[{{"authorizationToken":"{token}","expiresAt":{expires_at},"proxyEndpoint":"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}}]}}"#
                    );
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, answers)
}

/// ECR credentials against [`token_endpoint`] at `url`, with static AWS credentials.
fn ecr_at(url: &str) -> EcrCredentials {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(url)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ),
        )
        .build();
    EcrCredentials::with_sdk_config(sdk, None)
}

/// The outcome of a fetch is kept only for the lookups that queued behind it: once they are
/// served the slot holds no token (but in the cache, until it is due), nor an error.
#[tokio::test]
async fn a_fetched_token_is_not_kept_once_its_waiters_are_served() {
    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    // Expired on arrival (as moto's 2015 tokens): used, never cached.
    let (url, answers) = token_endpoint(1_420_070_400, std::time::Duration::from_millis(200)).await;
    let ecr = ecr_at(&url);
    // A lone lookup: nobody waited for its fetch.
    let auth = ecr.auth(HOST).await.unwrap();
    assert_eq!(auth.password.expose(), "pw-1");
    assert!(!ecr.keeps_outcome(HOST), "a token kept for nobody");
    // Lookups queued behind one fetch all get its token, and then it is gone.
    let results = futures_util::future::join_all((0..8).map(|_| ecr.auth(HOST))).await;
    for r in results {
        assert_eq!(r.unwrap().password.expose(), "pw-2");
    }
    assert_eq!(answers.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(ecr.token_fetches(), 2);
    assert!(!ecr.keeps_outcome(HOST), "the token outlived its waiters");
    // A lookup cancelled while it waits does not keep the outcome in the slot.
    let first = ecr.auth(HOST);
    let cancelled = ecr.auth(HOST);
    let cancelled = async {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), cancelled).await;
    };
    let (r, ()) = tokio::join!(first, cancelled);
    assert_eq!(r.unwrap().password.expose(), "pw-3");
    assert!(!ecr.keeps_outcome(HOST));
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_is_not_kept_once_its_waiters_are_served() {
    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let (ecr, _) = failing_ecr(std::time::Duration::from_secs(2));
    let results = futures_util::future::join_all((0..5).map(|_| ecr.auth(HOST))).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(ecr.token_fetches(), 1);
    assert!(!ecr.keeps_outcome(HOST));
}
