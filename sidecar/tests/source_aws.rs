//! Secrets Manager source against moto's server.
//!
//! Needs the test environment written by `tests/env/up` (or `$GANTRY_TEST_ENV_FILE`): key
//! `GANTRY_TEST_AWS_ENDPOINT` (and optionally `GANTRY_TEST_AWS_REGION`). Each test uses secret
//! names with a random suffix.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::primitives::Blob;
use gantry_sidecar::source::aws_secrets_manager::{AwsSource, SmClient};
use gantry_sidecar::source::{AwsSourceSpec, AwsVersion, Snapshot, Source};

fn test_env() -> BTreeMap<String, String> {
    gantry_tests::env().vars.clone()
}

fn uniq() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let c = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}{:x}{c}", std::process::id(), n)
}

/// A client for moto with static test credentials (the production client comes from the
/// standard chain, see `aws_secrets_manager::client`).
fn moto() -> SmClient {
    let env = test_env();
    let endpoint = env.get("GANTRY_TEST_AWS_ENDPOINT").unwrap_or_else(|| {
        panic!("GANTRY_TEST_AWS_ENDPOINT is not in the test environment file: run tests/env/up")
    });
    let region = env
        .get("GANTRY_TEST_AWS_REGION")
        .cloned()
        .unwrap_or_else(|| "us-east-1".to_owned());
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new(region))
        .endpoint_url(endpoint.trim_end_matches('/'))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    SmClient::from_conf(conf)
}

fn spec(id: &str) -> AwsSourceSpec {
    AwsSourceSpec {
        id: id.to_owned(),
        version: AwsVersion::Stage("AWSCURRENT".into()),
        key: None,
        name: None,
        prefix: None,
    }
}

fn values(s: &Snapshot) -> BTreeMap<String, String> {
    s.values
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().clone()))
        .collect()
}

async fn step(s: &mut AwsSource) -> Result<Option<Snapshot>, String> {
    tokio::time::sleep(s.next_refresh()).await;
    s.refresh().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn json_secret_expands_and_rotation_is_detected() {
    let c = moto();
    let id = format!("prod/app/db-{}", uniq());
    let pw1 = format!("pw1-{}", uniq());
    let pw2 = format!("pw2-{}", uniq());
    c.create_secret()
        .name(&id)
        .secret_string(format!(
            r#"{{"username":"app","password":"{pw1}","port":5432,"opts":{{"ssl":true}}}}"#
        ))
        .send()
        .await
        .expect("moto answers");

    let mut s = AwsSource::new(spec(&id), c.clone(), Duration::from_millis(500));
    assert_eq!(s.id(), format!("aws:{id}"));
    let snap = s.fetch().await.expect("fetch");
    let v = values(&snap);
    assert_eq!(v["username"], "app");
    assert_eq!(v["password"], pw1);
    assert_eq!(v["port"], "5432");
    assert_eq!(v["opts"], r#"{"ssl":true}"#);
    assert!(snap.binary.is_none());
    let v1 = snap.version.clone();

    // No rotation: DescribeSecret says the stage did not move.
    assert!(step(&mut s).await.unwrap().is_none());

    // PutSecretValue moves AWSCURRENT: seen at the next refresh.
    c.put_secret_value()
        .secret_id(&id)
        .secret_string(format!(r#"{{"username":"app","password":"{pw2}"}}"#))
        .send()
        .await
        .unwrap();
    // The next check is scheduled no later than one refresh interval (500 ms) from now, and
    // that very check reports the rotation.
    let wait = s.next_refresh();
    assert!(
        wait <= Duration::from_millis(500),
        "next refresh in {wait:?}, later than the configured 500ms"
    );
    let r = step(&mut s).await.unwrap().expect("rotation detected");
    assert_ne!(r.version, v1);
    assert_eq!(values(&r)["password"], pw2);
    assert!(!values(&r).contains_key("port"));
    assert!(step(&mut s).await.unwrap().is_none());

    let dbg = format!("{r:?} {snap:?} {s:?}");
    assert!(
        !dbg.contains(&pw1) && !dbg.contains(&pw2),
        "value in Debug output"
    );
}

#[tokio::test]
async fn one_key_plain_string_binary_and_pinned_stage() {
    let c = moto();
    let u = uniq();
    let json_id = format!("app/json-{u}");
    let plain_id = format!("app/plain-{u}");
    let bin_id = format!("app/bin-{u}");
    c.create_secret()
        .name(&json_id)
        .secret_string(r#"{"a":"1","password":"s3cr3t-json"}"#)
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name(&plain_id)
        .secret_string("plain-s3cr3t with spaces")
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name(&bin_id)
        .secret_binary(Blob::new(vec![0u8, 159, 146, 150, 255]))
        .send()
        .await
        .unwrap();

    // One key, renamed and prefixed.
    let mut sp = spec(&json_id);
    sp.key = Some("password".into());
    sp.name = Some("DB_PASSWORD".into());
    sp.prefix = Some("APP_".into());
    let mut s = AwsSource::new(sp, c.clone(), Duration::from_secs(60));
    assert_eq!(s.id(), format!("aws:{json_id}#password"));
    let v = values(&s.fetch().await.unwrap());
    assert_eq!(
        v,
        BTreeMap::from([("APP_DB_PASSWORD".to_owned(), "s3cr3t-json".to_owned())])
    );

    // A plain string under a configured name.
    let mut sp = spec(&plain_id);
    sp.name = Some("TOKEN".into());
    let mut s = AwsSource::new(sp, c.clone(), Duration::from_secs(60));
    assert_eq!(
        values(&s.fetch().await.unwrap())["TOKEN"],
        "plain-s3cr3t with spaces"
    );

    // The same without a name: an error that does not quote the value.
    let mut s = AwsSource::new(spec(&plain_id), c.clone(), Duration::from_secs(60));
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(e.starts_with(&format!("aws:{plain_id}: ")), "{e}");
    assert!(
        e.contains("not a JSON object") && e.contains("set `name`"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");

    // Binary.
    let mut s = AwsSource::new(spec(&bin_id), c.clone(), Duration::from_secs(60));
    let snap = s.fetch().await.unwrap();
    assert!(snap.values.is_empty());
    assert_eq!(
        snap.binary.as_ref().unwrap().expose(),
        &vec![0u8, 159, 146, 150, 255]
    );

    // A pinned version id is read and never polled for changes.
    let vid = c
        .describe_secret()
        .secret_id(&json_id)
        .send()
        .await
        .unwrap()
        .version_ids_to_stages()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let mut sp = spec(&json_id);
    sp.version = AwsVersion::Id(vid.clone());
    let mut s = AwsSource::new(sp, c.clone(), Duration::from_millis(200));
    assert_eq!(s.fetch().await.unwrap().version, vid);
    c.put_secret_value()
        .secret_id(&json_id)
        .secret_string(r#"{"password":"new"}"#)
        .send()
        .await
        .unwrap();
    assert!(step(&mut s).await.unwrap().is_none());
}

#[tokio::test]
async fn errors_name_the_source_and_hint() {
    let c = moto();
    let id = format!("does/not/exist-{}", uniq());
    let mut s = AwsSource::new(spec(&id), c.clone(), Duration::from_secs(60));
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "aws:{id}: GetSecretValue failed: ResourceNotFoundException"
        )),
        "{e}"
    );
    assert!(e.contains("check the name or ARN"), "{e}");

    // A missing key lists the keys that exist, never the values.
    let id = format!("app/k-{}", uniq());
    c.create_secret()
        .name(&id)
        .secret_string(r#"{"a":"value-of-a-s3cr3t"}"#)
        .send()
        .await
        .unwrap();
    let mut sp = spec(&id);
    sp.key = Some("b".into());
    let mut s = AwsSource::new(sp, c.clone(), Duration::from_secs(60));
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(
        e.contains("no key `b`") && e.contains("the keys there are: a"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");

    // Nothing listening.
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let mut s = AwsSource::new(
        spec("x"),
        SmClient::from_conf(conf),
        Duration::from_secs(60),
    );
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(e.starts_with("aws:x: GetSecretValue failed"), "{e}");
    assert!(e.contains("cannot reach Secrets Manager"), "{e}");
}

/// The production client: credentials, region and endpoint from the standard chain's
/// environment variables. Runs in a child process (this test binary again) so that the
/// variables are set without touching this process's environment.
#[tokio::test]
async fn standard_chain_from_environment_variables() {
    let env = test_env();
    let endpoint = env
        .get("GANTRY_TEST_AWS_ENDPOINT")
        .expect("GANTRY_TEST_AWS_ENDPOINT in the test environment file")
        .clone();
    let c = moto();
    let id = format!("env/chain-{}", uniq());
    let created = c
        .create_secret()
        .name(&id)
        .secret_string(r#"{"FROM_ENV_CHAIN":"yes"}"#)
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    for (region_var, wanted) in [
        ("AWS_REGION", id.as_str()),
        ("AWS_DEFAULT_REGION", arn.as_str()),
    ] {
        let out = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_reads_through_build",
                "--ignored",
                "--nocapture",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GANTRY_CHILD_SECRET_ID", wanted)
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env(region_var, "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{region_var}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
#[ignore = "run by standard_chain_from_environment_variables in a child process"]
async fn child_reads_through_build() {
    let id = std::env::var("GANTRY_CHILD_SECRET_ID").expect("run by the parent test");
    let vars = BTreeMap::from([("GANTRY_SECRETS_AWS_IDS".to_owned(), id.clone())]);
    let cfg = gantry_sidecar::source::sources_from_env(&vars)
        .unwrap()
        .unwrap();
    let mut sources = gantry_sidecar::source::build(&cfg).await.unwrap();
    assert_eq!(sources[0].id(), format!("aws:{id}"));
    let snap = sources[0].fetch().await.unwrap();
    assert_eq!(values(&snap)["FROM_ENV_CHAIN"], "yes");
}
