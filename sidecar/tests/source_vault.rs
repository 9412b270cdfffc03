//! Vault sources against a real OpenBao dev server (and PostgreSQL for dynamic credentials).
//!
//! Needs the test environment written by `tests/env/up` (or `$GANTRY_TEST_ENV_FILE`): keys
//! `VAULT_ADDR`, `GANTRY_TEST_VAULT_ROOT_TOKEN`, and for the database test
//! `GANTRY_TEST_PG_HOST/PORT/USER/PASSWORD`. Every test uses its own mounts (random suffix), so
//! tests can run in parallel and against a shared server.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry_common::Secret;
use gantry_sidecar::source::vault::{VaultSession, VaultSource};
use gantry_sidecar::source::{
    RawSourceSpec, RawSourcesConfig, RawVaultAuth, RawVaultConfig, RawVaultSource, Source,
    SourceSpec, SourcesConfig, build,
};
use serde_json::{Value, json};

// ----------------------------------------------------------------------------------------------
// helpers

fn test_env() -> BTreeMap<String, String> {
    gantry_tests::env().vars.clone()
}

fn need<'a>(env: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    env.get(k)
        .unwrap_or_else(|| panic!("{k} is not in the test environment file: run tests/env/up"))
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

struct Root {
    addr: String,
    token: String,
    http: reqwest::Client,
}

impl Root {
    fn new(env: &BTreeMap<String, String>) -> Self {
        Self {
            addr: need(env, "VAULT_ADDR").trim_end_matches('/').to_owned(),
            token: need(env, "GANTRY_TEST_VAULT_ROOT_TOKEN").to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .http
            .request(method.clone(), format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("OpenBao answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn kv_mount(&self) -> String {
        let m = format!("kv{}", uniq());
        self.post(
            &format!("sys/mounts/{m}"),
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        // A new KV v2 mount upgrades itself in the background and refuses writes meanwhile
        // ("Upgrading from non-versioned to versioned data"): wait until it is writable.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .http
                .post(format!("{}/v1/{m}/data/.ready", self.addr))
                .header("X-Vault-Token", &self.token)
                .json(&json!({"data": {"ready": "1"}}))
                .send()
                .await
                .expect("OpenBao answers")
                .status();
            if status.is_success() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "KV mount {m} not writable after 20s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        m
    }

    /// A token with only `policy` (created from `hcl`).
    async fn token_with(&self, hcl: &str, ttl: &str) -> String {
        let name = format!("p{}", uniq());
        self.post(
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": hcl }),
        )
        .await;
        let v = self
            .post(
                "auth/token/create",
                json!({"policies": [name], "ttl": ttl, "no_default_policy": false}),
            )
            .await;
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

fn vault_cfg(
    addr: &str,
    auth: RawVaultAuth,
    sources: Vec<RawVaultSource>,
    refresh: Duration,
) -> SourcesConfig {
    let raw = RawSourcesConfig {
        sources: sources.into_iter().map(RawSourceSpec::vault).collect(),
        vault: Some(RawVaultConfig {
            addr: Some(addr.to_owned()),
            auth: Some(auth),
            ..Default::default()
        }),
        aws: None,
    };
    SourcesConfig::from_raw(raw, refresh).expect("valid config")
}

fn token_auth(token: &str) -> RawVaultAuth {
    RawVaultAuth {
        token: Some(Secret::from(token)),
        ..Default::default()
    }
}

fn path(p: &str) -> RawVaultSource {
    RawVaultSource {
        path: Some(p.to_owned()),
        ..Default::default()
    }
}

fn values(s: &gantry_sidecar::source::Snapshot) -> BTreeMap<String, String> {
    s.values
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().clone()))
        .collect()
}

/// Captures every log line of this test binary: one global subscriber (per-thread defaults
/// miss events when tests run in parallel), shared by all tests, each of which looks for its own
/// unique source ids and values.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

fn logs() -> &'static Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let me = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || me.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(sub).expect("one global subscriber");
        logs
    })
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits what the source asks, then refreshes.
async fn step(s: &mut dyn Source) -> Result<Option<gantry_sidecar::source::Snapshot>, String> {
    tokio::time::sleep(s.next_refresh()).await;
    s.refresh().await.map_err(|e| e.to_string())
}

// ----------------------------------------------------------------------------------------------
// KV v2

#[tokio::test]
async fn kv_whole_path_one_key_and_change_by_metadata() {
    let env = test_env();
    let root = Root::new(&env);
    let logs = logs();
    let m = root.kv_mount().await;
    let pw1 = format!("pw1-{}", uniq());
    let pw2 = format!("pw2-{}", uniq());
    root.post(
        &format!("{m}/data/secrets/app"),
        json!({"data": {"user": "app", "password": pw1, "nested": {"a": 1}}}),
    )
    .await;

    let cfg = vault_cfg(
        &root.addr,
        token_auth(&root.token),
        vec![
            path(&format!("{m}/secrets/app")),
            RawVaultSource {
                path: Some(format!("{m}/data/secrets/app")),
                key: Some("password".into()),
                name: Some("DB_PASSWORD".into()),
                prefix: Some("APP_".into()),
                ..Default::default()
            },
        ],
        Duration::from_secs(1),
    );
    let mut sources = build(&cfg).await.expect("build");
    assert_eq!(sources[0].id(), format!("vault:{m}/secrets/app"));
    assert_eq!(
        sources[1].id(),
        format!("vault:{m}/data/secrets/app#password")
    );

    let whole = sources[0].fetch().await.expect("fetch whole path");
    let v = values(&whole);
    assert_eq!(v["user"], "app");
    assert_eq!(v["password"], pw1);
    assert_eq!(v["nested"], r#"{"a":1}"#);
    assert_eq!(whole.version, "kv:1");
    let one = sources[1].fetch().await.expect("fetch one key");
    assert_eq!(
        values(&one),
        BTreeMap::from([("APP_DB_PASSWORD".into(), pw1.clone())])
    );

    // Nothing changed: the metadata check says so.
    let r = step(sources[0].as_mut()).await.unwrap();
    assert!(r.is_none(), "no change expected");

    // A new version is seen within one refresh interval.
    root.post(
        &format!("{m}/data/secrets/app"),
        json!({"data": {"user": "app", "password": pw2}}),
    )
    .await;
    // The next check is scheduled no later than the configured refresh (1 s) from now, and
    // that very check reports the change.
    let wait = sources[0].next_refresh();
    assert!(
        wait <= Duration::from_secs(1),
        "next refresh in {wait:?}, later than the configured 1s"
    );
    let r = step(sources[0].as_mut()).await.unwrap().expect("a change");
    assert_eq!(values(&r)["password"], pw2);
    assert_eq!(r.version, "kv:2");
    let r = step(sources[1].as_mut()).await.unwrap().expect("a change");
    assert_eq!(values(&r)["APP_DB_PASSWORD"], pw2);
    assert!(step(sources[0].as_mut()).await.unwrap().is_none());

    // Soft-deleting the current version is an error (the runtime keeps the last good values).
    root.call(
        reqwest::Method::DELETE,
        &format!("{m}/data/secrets/app"),
        None,
    )
    .await;
    let e = step(sources[0].as_mut()).await.unwrap_err();
    assert!(e.starts_with(&format!("vault:{m}/secrets/app: ")), "{e}");
    assert!(e.contains("deleted"), "{e}");

    // Debug output of snapshots and sources carries no value; neither do the logs.
    let dbg = format!("{r:?} {sources:?}");
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("vault secret changed") && l.contains(&m)),
        "{text}"
    );
    for secret in [&pw1, &pw2] {
        assert!(!dbg.contains(secret.as_str()), "value in Debug output");
        assert!(!e.contains(secret.as_str()), "value in an error");
        assert!(!text.contains(secret.as_str()), "value in the logs");
    }
}

#[tokio::test]
async fn kv_without_metadata_permission_polls_the_data() {
    let env = test_env();
    let root = Root::new(&env);
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v1"}}))
        .await;
    // Read on data/ only: no metadata/, no sys/internal/ui/mounts.
    let token = root
        .token_with(
            &format!("path \"{m}/data/app\" {{ capabilities = [\"read\"] }}"),
            "1h",
        )
        .await;
    let cfg = vault_cfg(
        &root.addr,
        token_auth(&token),
        vec![path(&format!("{m}/app"))],
        Duration::from_millis(500),
    );
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    assert_eq!(values(&s.fetch().await.unwrap())["k"], "v1");
    assert!(step(s.as_mut()).await.unwrap().is_none());
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v2"}}))
        .await;
    let r = step(s.as_mut())
        .await
        .unwrap()
        .expect("change seen by reading the data");
    assert_eq!(values(&r)["k"], "v2");
}

#[tokio::test]
async fn errors_name_the_source_and_hint() {
    let env = test_env();
    let root = Root::new(&env);
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v"}}))
        .await;
    // A token without any right on the path.
    let token = root
        .token_with("path \"nothing/*\" { capabilities = [\"read\"] }", "1h")
        .await;
    let cfg = vault_cfg(
        &root.addr,
        token_auth(&token),
        vec![path(&format!("{m}/app"))],
        Duration::from_secs(60),
    );
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(e.starts_with(&format!("vault:{m}/app: ")), "{e}");
    assert!(
        e.contains(&format!("the token's policy lacks read on {m}/data/app")),
        "{e}"
    );

    // A missing key names the keys that exist.
    let cfg = vault_cfg(
        &root.addr,
        token_auth(&root.token),
        vec![RawVaultSource {
            path: Some(format!("{m}/app")),
            key: Some("nope".into()),
            ..Default::default()
        }],
        Duration::from_secs(60),
    );
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(
        e.contains("no key `nope`") && e.contains("keys there are: k"),
        "{e}"
    );

    // Nothing listening.
    let cfg = vault_cfg(
        "http://127.0.0.1:9",
        token_auth("x"),
        vec![path("kv/app")],
        Duration::from_secs(60),
    );
    let e = build(&cfg).await.unwrap_err();
    // The login failure is the (first) Vault source's, and keeps the session's own id.
    assert_eq!((e.index, e.source_id.as_str()), (0, "vault:kv/app"), "{e}");
    assert_eq!(e.error.source_id, "vault:http://127.0.0.1:9", "{e}");
    let e = e.to_string();
    assert!(
        e.starts_with("vault:kv/app: vault:http://127.0.0.1:9: "),
        "{e}"
    );
    assert!(e.contains("is VAULT_ADDR right?"), "{e}");
}

#[tokio::test]
async fn token_file_is_reread_when_it_changes() {
    let env = test_env();
    let root = Root::new(&env);
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v"}}))
        .await;
    let hcl = format!("path \"{m}/*\" {{ capabilities = [\"read\"] }}");
    let t1 = root.token_with(&hcl, "1h").await;
    let t2 = root.token_with(&hcl, "1h").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{t1}\n")).unwrap();
    let cfg = vault_cfg(
        &root.addr,
        RawVaultAuth {
            token_file: Some(file.clone()),
            ..Default::default()
        },
        vec![path(&format!("{m}/app"))],
        Duration::from_millis(300),
    );
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    s.fetch().await.unwrap();
    // Replace the file and revoke the old token: the source keeps working, without a change.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "{t2}").unwrap();
    drop(f);
    root.post("auth/token/revoke", json!({ "token": t1 })).await;
    for _ in 0..3 {
        assert!(step(s.as_mut()).await.unwrap().is_none());
    }
    assert!(s.fetch().await.is_ok());
}

#[tokio::test]
async fn plain_token_is_renewed_before_it_expires() {
    let env = test_env();
    let root = Root::new(&env);
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v"}}))
        .await;
    let token = root
        .token_with(
            &format!("path \"{m}/*\" {{ capabilities = [\"read\"] }}"),
            "3s",
        )
        .await;
    let cfg = vault_cfg(
        &root.addr,
        token_auth(&token),
        vec![path(&format!("{m}/app"))],
        Duration::from_secs(60),
    );
    let SourceSpec::Vault(spec) = cfg.sources[0].clone() else {
        unreachable!()
    };
    let session = VaultSession::connect(cfg.vault.as_ref().unwrap())
        .await
        .unwrap();
    let mut s = VaultSource::new(spec, Arc::clone(&session), cfg.refresh);
    s.fetch().await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(7);
    while tokio::time::Instant::now() < until {
        assert!(step(&mut s).await.unwrap().is_none());
    }
    // Well past the first 3 s TTL, the token still reads.
    s.fetch().await.unwrap();
    assert!(session.stats().renewals >= 3, "{:?}", session.stats());
    assert_eq!(session.stats().logins, 0);
}

#[tokio::test]
async fn environment_only_form_builds_and_reads() {
    let env = test_env();
    let root = Root::new(&env);
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/a"), json!({"data": {"A": "1"}}))
        .await;
    root.post(&format!("{m}/data/b"), json!({"data": {"B": "2"}}))
        .await;
    let vars: BTreeMap<String, String> = [
        ("VAULT_ADDR", root.addr.as_str()),
        ("VAULT_TOKEN", root.token.as_str()),
        ("VAULT_SECRET_PATH", &format!("{m}/data/a, {m}/b")),
        ("GANTRY_SECRETS_REFRESH", "2s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let cfg = gantry_sidecar::source::sources_from_env(&vars)
        .unwrap()
        .expect("sources configured");
    assert_eq!(cfg.refresh, Duration::from_secs(2));
    let t0 = std::time::Instant::now();
    let mut got = BTreeMap::new();
    for mut s in build(&cfg).await.unwrap() {
        got.extend(values(&s.fetch().await.unwrap()));
        assert!(s.next_refresh() <= Duration::from_secs(2));
    }
    eprintln!("build + first fetch of 2 KV paths: {:?}", t0.elapsed());
    assert_eq!(
        got,
        BTreeMap::from([("A".into(), "1".into()), ("B".into(), "2".into())])
    );
}

// ----------------------------------------------------------------------------------------------
// AppRole, token renewal and re-login

#[tokio::test]
async fn approle_login_renewal_and_relogin() {
    let env = test_env();
    let root = Root::new(&env);
    let logs = logs();
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v"}}))
        .await;
    let am = format!("approle{}", uniq());
    root.post(&format!("sys/auth/{am}"), json!({"type": "approle"}))
        .await;
    let policy = format!("kvread{}", uniq());
    root.post(
        &format!("sys/policies/acl/{policy}"),
        json!({"policy": format!("path \"{m}/*\" {{ capabilities = [\"read\"] }}")}),
    )
    .await;
    // Short TTLs: renew at ~2 s, max TTL 8 s forces a new login.
    root.post(
        &format!("auth/{am}/role/app"),
        json!({"token_policies": [policy], "token_ttl": "3s", "token_max_ttl": "8s"}),
    )
    .await;
    let role_id = root
        .call(
            reqwest::Method::GET,
            &format!("auth/{am}/role/app/role-id"),
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = root
        .post(&format!("auth/{am}/role/app/secret-id"), json!({}))
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let sid_file = dir.path().join("secret-id");
    std::fs::write(&sid_file, &secret_id).unwrap();

    let cfg = vault_cfg(
        &root.addr,
        RawVaultAuth {
            method: Some("approle".into()),
            mount: Some(am.clone()),
            role_id: Some(role_id),
            secret_id_file: Some(sid_file),
            ..Default::default()
        },
        vec![path(&format!("{m}/app"))],
        Duration::from_secs(60),
    );
    let SourceSpec::Vault(spec) = cfg.sources[0].clone() else {
        unreachable!()
    };
    let session = VaultSession::connect(cfg.vault.as_ref().unwrap())
        .await
        .expect("approle login");
    assert_eq!(session.stats().logins, 1);
    let mut s = VaultSource::new(spec, Arc::clone(&session), cfg.refresh);
    s.fetch().await.unwrap();
    // The token drives the schedule (KV polls only every 60 s).
    assert!(
        s.next_refresh() <= Duration::from_secs(2),
        "{:?}",
        s.next_refresh()
    );

    let until = tokio::time::Instant::now() + Duration::from_secs(12);
    while tokio::time::Instant::now() < until {
        let r = step(&mut s)
            .await
            .expect("refresh with a renewed or new token");
        assert!(r.is_none(), "a new token is not a secret change");
    }
    let st = session.stats();
    assert!(st.renewals >= 2, "{st:?}");
    assert!(st.logins >= 2, "re-login after the max TTL: {st:?}");
    // Still reading with the current token.
    s.fetch().await.unwrap();
    let text = logs.text();
    assert!(text.contains("vault token renewed"), "{text}");
    assert!(!text.contains(&secret_id), "secret id in the logs");
}

// ----------------------------------------------------------------------------------------------
// Dynamic secrets: database credentials against PostgreSQL

fn psql_login(env: &BTreeMap<String, String>, user: &str, password: &str) -> Result<(), String> {
    let psql = env.get("GANTRY_TEST_PSQL").map_or("psql", String::as_str);
    let out = std::process::Command::new(psql)
        .args([
            "-h",
            need(env, "GANTRY_TEST_PG_HOST"),
            "-p",
            need(env, "GANTRY_TEST_PG_PORT"),
            "-U",
            user,
            "-d",
            "postgres",
            "-w",
            "-tAc",
            "select current_user",
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && stdout.trim() == user {
        Ok(())
    } else {
        Err(format!(
            "login as {user} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A database secrets mount `db<uniq>` on the test PostgreSQL with a role `app` of the given
/// lease TTLs; returns the mount.
async fn database_mount(
    root: &Root,
    env: &BTreeMap<String, String>,
    default_ttl: &str,
    max_ttl: &str,
) -> String {
    let db = format!("db{}", uniq());
    root.post(&format!("sys/mounts/{db}"), json!({"type": "database"}))
        .await;
    root.post(
        &format!("{db}/config/pg"),
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!(
                "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/postgres?sslmode=disable",
                need(env, "GANTRY_TEST_PG_HOST"),
                need(env, "GANTRY_TEST_PG_PORT")
            ),
            "username": need(env, "GANTRY_TEST_PG_USER"),
            "password": need(env, "GANTRY_TEST_PG_PASSWORD"),
            "allowed_roles": "app",
            "verify_connection": true,
        }),
    )
    .await;
    root.post(
        &format!("{db}/roles/app"),
        json!({
            "db_name": "pg",
            "creation_statements": [
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
            ],
            "default_ttl": default_ttl,
            "max_ttl": max_ttl,
        }),
    )
    .await;
    db
}

#[tokio::test]
async fn database_credentials_renewed_replaced_and_valid() {
    let env = test_env();
    let root = Root::new(&env);
    let logs = logs();
    let db = database_mount(&root, &env, "10s", "30s").await;

    // Configured by environment variables only, as in a container.
    let vars: BTreeMap<String, String> = [
        ("VAULT_ADDR", root.addr.as_str()),
        ("VAULT_TOKEN", root.token.as_str()),
        ("VAULT_SECRET_PATH", &format!("{db}/creds/app")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let cfg = gantry_sidecar::source::sources_from_env(&vars)
        .unwrap()
        .unwrap();
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    let first = s.fetch().await.expect("database credentials");
    let mut sets = vec![values(&first)];
    let mut created = tokio::time::Instant::now();
    psql_login(&env, &sets[0]["username"], &sets[0]["password"]).unwrap();
    // A re-fetch (what the runtime does after an outage) keeps live credentials.
    let again = s.fetch().await.unwrap();
    assert_eq!(
        again.version, first.version,
        "a re-fetch minted new credentials"
    );
    assert!(
        s.next_refresh() <= Duration::from_secs(7),
        "{:?}",
        s.next_refresh()
    );

    let mut renewals_per_lease = vec![0u32];
    let mut replaced_after = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(45);
    while tokio::time::Instant::now() < until {
        let r = step(s.as_mut()).await.expect("refresh");
        match r {
            None => *renewals_per_lease.last_mut().unwrap() += 1,
            Some(snap) => {
                // Replaced before the old lease reached its max TTL (30 s).
                assert!(
                    created.elapsed() < Duration::from_secs(30),
                    "replaced after {:?}",
                    created.elapsed()
                );
                replaced_after.push(created.elapsed());
                created = tokio::time::Instant::now();
                let v = values(&snap);
                assert_ne!(v["username"], sets.last().unwrap()["username"]);
                psql_login(&env, &v["username"], &v["password"]).unwrap();
                sets.push(v);
                renewals_per_lease.push(0);
            }
        }
        // The credentials in use always work.
        let cur = sets.last().unwrap();
        psql_login(&env, &cur["username"], &cur["password"]).unwrap();
    }
    let text = logs.text();
    assert!(
        sets.len() >= 2,
        "credentials never replaced: {renewals_per_lease:?}\n{text}"
    );
    assert!(
        renewals_per_lease[0] >= 2,
        "the first lease was renewed before being replaced: {renewals_per_lease:?}\n{text}"
    );
    let ours = |msg: &str| text.lines().any(|l| l.contains(msg) && l.contains(&db));
    assert!(ours("vault lease renewed"), "{text}");
    assert!(ours("reading new credentials"), "{text}");
    for set in &sets {
        assert!(
            !text.contains(set["password"].as_str()),
            "password in the logs"
        );
    }
    eprintln!(
        "database credential sets: {}, renewals per lease: {renewals_per_lease:?}, replaced after: {replaced_after:?}",
        sets.len()
    );
}

/// An AppRole (mount, role id, secret id) whose tokens have `policy_hcl`, `token_ttl` and
/// `token_max_ttl`.
async fn approle(
    root: &Root,
    policy_hcl: &str,
    ttl: &str,
    max_ttl: &str,
) -> (String, String, String) {
    let am = format!("approle{}", uniq());
    root.post(&format!("sys/auth/{am}"), json!({"type": "approle"}))
        .await;
    let policy = format!("p{}", uniq());
    root.post(
        &format!("sys/policies/acl/{policy}"),
        json!({ "policy": policy_hcl }),
    )
    .await;
    root.post(
        &format!("auth/{am}/role/app"),
        json!({"token_policies": [policy], "token_ttl": ttl, "token_max_ttl": max_ttl}),
    )
    .await;
    let role_id = root
        .call(
            reqwest::Method::GET,
            &format!("auth/{am}/role/app/role-id"),
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = root
        .post(&format!("auth/{am}/role/app/secret-id"), json!({}))
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (am, role_id, secret_id)
}

/// Review item (severe): with AppRole the session logs in again near the token's max TTL, but
/// the source went on renewing the lease it had read under the old token. Vault revokes a
/// token's leases when the token expires, so the credentials in use died with the old token
/// and the sidecar noticed only at its next renewal. Now a lease read under an older token is
/// replaced (a change) as soon as the session holds a new one, while the old token lives.
/// Token TTL 3 s, max TTL 9 s; the lease (60 s) outlives it; watched for 22 s.
#[tokio::test]
async fn dynamic_credentials_are_replaced_before_the_token_that_read_them_dies() {
    let env = test_env();
    let root = Root::new(&env);
    let logs = logs();
    let db = database_mount(&root, &env, "60s", "120s").await;
    let (am, role_id, secret_id) = approle(
        &root,
        &format!(
            "path \"{db}/creds/app\" {{ capabilities = [\"read\"] }}\n\
             path \"sys/leases/renew\" {{ capabilities = [\"update\"] }}"
        ),
        "3s",
        "9s",
    )
    .await;
    let cfg = vault_cfg(
        &root.addr,
        RawVaultAuth {
            method: Some("approle".into()),
            mount: Some(am),
            role_id: Some(role_id),
            secret_id: Some(Secret::from(secret_id.as_str())),
            ..Default::default()
        },
        vec![path(&format!("{db}/creds/app"))],
        Duration::from_secs(60),
    );
    let SourceSpec::Vault(spec) = cfg.sources[0].clone() else {
        unreachable!()
    };
    let session = VaultSession::connect(cfg.vault.as_ref().unwrap())
        .await
        .expect("approle login");
    let mut s = VaultSource::new(spec, Arc::clone(&session), cfg.refresh);
    let first = s.fetch().await.expect("database credentials");
    let mut sets = vec![values(&first)];
    psql_login(&env, &sets[0]["username"], &sets[0]["password"]).unwrap();
    let start = tokio::time::Instant::now();
    let mut replaced_at = Vec::new();
    while start.elapsed() < Duration::from_secs(22) {
        if let Some(snap) = step(&mut s).await.expect("refresh") {
            let v = values(&snap);
            assert_ne!(v["username"], sets.last().unwrap()["username"]);
            replaced_at.push(start.elapsed());
            sets.push(v);
        }
        // The credentials in use always work, past the first token's max TTL too.
        let cur = sets.last().unwrap();
        psql_login(&env, &cur["username"], &cur["password"]).unwrap_or_else(|e| {
            panic!(
                "{e} at {:?} (replaced at {replaced_at:?}, {:?})",
                start.elapsed(),
                session.stats()
            )
        });
    }
    let st = session.stats();
    assert!(st.logins >= 3, "two logins past the max TTL: {st:?}");
    assert!(
        sets.len() >= 3,
        "new credentials under each new token: {replaced_at:?} {st:?}"
    );
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains(&db) && l.contains("read under an older vault token")),
        "{text}"
    );
    assert!(!text.contains(&secret_id), "secret id in the logs");
    for set in &sets {
        assert!(
            !text.contains(set["password"].as_str()),
            "password in the logs"
        );
    }
}

// ----------------------------------------------------------------------------------------------
// TLS: a second OpenBao dev server with -dev-tls, trusted through `ca_cert`

#[tokio::test]
async fn https_with_ca_cert() {
    let env = test_env();
    let bao = need(&env, "BAO_BIN");
    let dir = tempfile::tempdir().unwrap();
    let port = gantry_tests::free_port();
    let _server = tokio::process::Command::new(bao)
        .args([
            "server",
            "-dev",
            "-dev-tls",
            &format!("-dev-tls-cert-dir={}", dir.path().display()),
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start bao");
    let ca = dir.path().join("vault-ca.pem");
    let addr = format!("https://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(pem) = std::fs::read(&ca) else {
            continue;
        };
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        if c.get(format!("{addr}/v1/sys/health")).send().await.is_ok() {
            client = Some(c);
            break;
        }
    }
    let client = client.expect("bao -dev-tls answers within 10 s");
    let r = client
        .post(format!("{addr}/v1/secret/data/app"))
        .header("X-Vault-Token", "root")
        .json(&json!({"data": {"k": "over-tls"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let mut raw_vault = RawVaultConfig {
        addr: Some(addr.clone()),
        auth: Some(token_auth("root")),
        ca_cert: Some(ca),
        ..Default::default()
    };
    let cfg = |v: RawVaultConfig| {
        SourcesConfig::from_raw(
            RawSourcesConfig {
                sources: vec![RawSourceSpec::vault(path("secret/app"))],
                vault: Some(v),
                aws: None,
            },
            Duration::from_secs(60),
        )
        .unwrap()
    };
    let mut s = build(&cfg(raw_vault.clone())).await.unwrap().pop().unwrap();
    assert_eq!(values(&s.fetch().await.unwrap())["k"], "over-tls");

    // Without the CA: a clear error about TLS.
    raw_vault.ca_cert = None;
    let e = build(&cfg(raw_vault)).await.unwrap_err().to_string();
    assert!(
        e.contains("TLS handshake") && e.contains("VAULT_CACERT"),
        "{e}"
    );
}

// ----------------------------------------------------------------------------------------------
// Outage: a private OpenBao dev server is stopped after the first fetch, then started again

fn spawn_bao(bao: &str, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(bao)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start bao")
}

async fn put_when_up(addr: &str, value: &str) {
    let c = reqwest::Client::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = c
            .post(format!("{addr}/v1/secret/data/app"))
            .header("X-Vault-Token", "root")
            .json(&json!({"data": {"k": value}}))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            return;
        }
    }
    panic!("private bao on {addr} never answered");
}

#[tokio::test]
async fn outage_keeps_erroring_then_recovers() {
    let env = test_env();
    let bao = need(&env, "BAO_BIN");
    let port = gantry_tests::free_port();
    let addr = format!("http://127.0.0.1:{port}");
    let mut server = spawn_bao(bao, port);
    put_when_up(&addr, "before").await;

    let cfg = vault_cfg(
        &addr,
        token_auth("root"),
        vec![path("secret/app")],
        Duration::from_millis(500),
    );
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    assert_eq!(values(&s.fetch().await.unwrap())["k"], "before");

    server.kill().await.unwrap();
    let _ = server.wait().await;
    let e = step(s.as_mut()).await.unwrap_err();
    assert!(e.starts_with("vault:secret/app: "), "{e}");
    assert!(e.contains("is VAULT_ADDR right?"), "{e}");
    // What the runtime does while failing: re-fetch; still an error, no panic, no stale success.
    assert!(s.fetch().await.is_err());

    // Back (a dev server starts empty: the secret is written again, as version 1 again; the
    // version's created_time tells it from the version 1 read before).
    let _server = spawn_bao(bao, port);
    put_when_up(&addr, "after").await;
    let r = step(s.as_mut())
        .await
        .unwrap()
        .expect("re-created secret seen");
    assert_eq!(values(&r)["k"], "after");
    assert_eq!(r.version, "kv:1");
    let snap = s.fetch().await.expect("reads again once Vault is back");
    assert_eq!(values(&snap)["k"], "after");
    // And changes flow again through refresh.
    put_when_up(&addr, "after-2").await;
    let r = step(s.as_mut())
        .await
        .unwrap()
        .expect("change after recovery");
    assert_eq!(values(&r)["k"], "after-2");
}

#[tokio::test]
async fn namespace_header_is_sent() {
    let env = test_env();
    let root = Root::new(&env);
    let ns = format!("ns{}", uniq());
    root.post(&format!("sys/namespaces/{ns}"), json!({})).await;
    let in_ns = |method: reqwest::Method, p: &str| {
        root.http
            .request(method, format!("{}/v1/{p}", root.addr))
            .header("X-Vault-Token", &root.token)
            .header("X-Vault-Namespace", &ns)
    };
    let r = in_ns(reqwest::Method::POST, "sys/mounts/kv")
        .json(&json!({"type": "kv", "options": {"version": "2"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = in_ns(reqwest::Method::POST, "kv/data/app")
        .json(&json!({"data": {"k": "in-namespace"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let raw = RawSourcesConfig {
        sources: vec![RawSourceSpec::vault(path("kv/app"))],
        vault: Some(RawVaultConfig {
            addr: Some(root.addr.clone()),
            auth: Some(token_auth(&root.token)),
            namespace: Some(ns.clone()),
            ..Default::default()
        }),
        aws: None,
    };
    let cfg = SourcesConfig::from_raw(raw, Duration::from_secs(60)).unwrap();
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    assert_eq!(values(&s.fetch().await.unwrap())["k"], "in-namespace");
}

/// A 403 caused by the policy does not make the session log in again: a secret id with a use
/// limit of 1 is not burnt, and the error says what the policy lacks.
#[tokio::test]
async fn policy_403_does_not_log_in_again() {
    let env = test_env();
    let root = Root::new(&env);
    let m = root.kv_mount().await;
    root.post(&format!("{m}/data/app"), json!({"data": {"k": "v"}}))
        .await;
    let am = format!("approle{}", uniq());
    root.post(&format!("sys/auth/{am}"), json!({"type": "approle"}))
        .await;
    root.post(
        &format!("auth/{am}/role/app"),
        json!({"token_policies": ["default"], "token_ttl": "1h", "secret_id_num_uses": 1}),
    )
    .await;
    let role_id = root
        .call(
            reqwest::Method::GET,
            &format!("auth/{am}/role/app/role-id"),
            None,
        )
        .await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = root
        .post(&format!("auth/{am}/role/app/secret-id"), json!({}))
        .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut auth = RawVaultAuth {
        method: Some("approle".into()),
        mount: Some(am),
        role_id: Some(role_id),
        ..Default::default()
    };
    auth.secret_id = Some(Secret::from(secret_id.as_str()));
    let cfg = vault_cfg(
        &root.addr,
        auth,
        vec![path(&format!("{m}/app"))],
        Duration::from_secs(60),
    );
    let SourceSpec::Vault(spec) = cfg.sources[0].clone() else {
        unreachable!()
    };
    let session = VaultSession::connect(cfg.vault.as_ref().unwrap())
        .await
        .unwrap();
    let mut s = VaultSource::new(spec, Arc::clone(&session), cfg.refresh);
    for _ in 0..2 {
        let e = s.fetch().await.unwrap_err().to_string();
        assert!(
            e.contains(&format!("the token's policy lacks read on {m}/data/app")),
            "{e}"
        );
        assert!(!e.contains(&secret_id), "{e}");
    }
    assert_eq!(session.stats().logins, 1);
}

/// `VAULT_SECRET_PATH` goes through the mount-type detection: a KV v1 mount is named in the
/// error (the database test reads a dynamic path through `VAULT_SECRET_PATH`).
#[tokio::test]
async fn environment_form_detects_the_mount_type() {
    let env = test_env();
    let root = Root::new(&env);
    let m = format!("kv1{}", uniq());
    root.post(
        &format!("sys/mounts/{m}"),
        json!({"type": "kv", "options": {"version": "1"}}),
    )
    .await;
    root.post(&format!("{m}/app"), json!({"k": "v1-value"}))
        .await;
    let vars: BTreeMap<String, String> = [
        ("VAULT_ADDR", root.addr.as_str()),
        ("VAULT_TOKEN", root.token.as_str()),
        ("VAULT_SECRET_PATH", &format!("{m}/app")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let cfg = gantry_sidecar::source::sources_from_env(&vars)
        .unwrap()
        .unwrap();
    let mut s = build(&cfg).await.unwrap().pop().unwrap();
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(e.contains(&format!("mount {m}/ is KV version 1")), "{e}");
    assert!(!e.contains("v1-value"), "{e}");
}
