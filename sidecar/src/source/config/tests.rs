use std::collections::BTreeMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn yaml_form_parses_and_validates() {
    let y = r#"
sources:
  - vault: { path: kv/secrets/app, key: password, prefix: APP_ }
  - vault: { path: database/creds/app, kind: dynamic }
  - aws: { id: prod/app/db, stage: AWSCURRENT, key: optional }
  - aws: { id: prod/plain, name: PLAIN }
vault:
  addr: https://vault.example:8200
  auth: { method: aws-iam, role: app, header_value: vault.example }
  namespace: team
aws: { region: eu-west-1 }
"#;
    let raw: RawSourcesConfig = serde_yaml::from_str(y).unwrap();
    let c = SourcesConfig::from_raw(raw, DEFAULT_REFRESH).unwrap();
    assert_eq!(c.sources.len(), 4);
    assert_eq!(c.sources[0].id(), "vault:kv/secrets/app#password");
    assert_eq!(c.sources[2].id(), "aws:prod/app/db#optional");
    assert_eq!(c.sources[3].id(), "aws:prod/plain");
    match &c.vault.as_ref().unwrap().auth {
        VaultAuth::AwsIam {
            mount,
            role,
            region,
            header_value,
        } => {
            assert_eq!(mount, "aws");
            assert_eq!(role, "app");
            assert_eq!(region, "us-east-1");
            assert_eq!(header_value.as_deref(), Some("vault.example"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.aws.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn unknown_keys_are_rejected() {
    let y = "sources:\n  - vault: { path: kv/a, passwrd: x }\n";
    let e = serde_yaml::from_str::<RawSourcesConfig>(y).unwrap_err();
    assert!(e.to_string().contains("passwrd"), "{e}");
    let y = "sources:\n  - gcp: { path: kv/a }\n";
    assert!(serde_yaml::from_str::<RawSourcesConfig>(y).is_err());
    let y = "vault: { addr: http://x, auth: { token: inline } }\n";
    assert!(serde_yaml::from_str::<RawSourcesConfig>(y).is_err());
}

#[test]
fn invalid_values_name_the_field() {
    let bad = [
        (
            "sources:\n  - vault: { path: kv }\n",
            "sources[0].vault.path",
        ),
        (
            "sources:\n  - vault: { path: kv/a, kind: kv3 }\nvault: { addr: http://x, auth: { token_file: /t } }\n",
            "sources[0].vault.kind",
        ),
        ("sources:\n  - vault: { path: kv/a }\n", "vault.addr"),
        (
            "vault: { addr: 'not a url', auth: { token_file: /t } }\n",
            "vault.addr",
        ),
        (
            "vault: { addr: http://x, auth: { method: approle, role_id: r } }\n",
            "vault.auth.secret_id_file",
        ),
        (
            "vault: { addr: http://x, auth: { method: aws-iam } }\n",
            "vault.auth.role",
        ),
        (
            "sources:\n  - aws: { id: a, stage: S, version_id: v }\n",
            "sources[0].aws.stage",
        ),
        (
            "sources:\n  - aws: { id: a }\n  - aws: { id: a }\n",
            "sources",
        ),
    ];
    for (y, field) in bad {
        let raw: RawSourcesConfig = serde_yaml::from_str(y).unwrap();
        let e = SourcesConfig::from_raw(raw, DEFAULT_REFRESH).unwrap_err();
        assert!(e.to_string().starts_with(field), "{y}: {e}");
    }
}

#[test]
fn env_form() {
    assert!(
        sources_from_env(&env(&[("PATH", "/bin")]))
            .unwrap()
            .is_none()
    );
    let c = sources_from_env(&env(&[
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_AUTH_METHOD", "approle"),
        ("VAULT_ROLE_ID", "rid"),
        ("VAULT_SECRET_ID", "sid-value"),
        ("VAULT_SECRET_PATH", "kv/data/secrets/app, kv/secrets/other"),
        (
            "GANTRY_SECRETS_AWS_IDS",
            "prod/a,arn:aws:secretsmanager:us-east-1:1:secret:b",
        ),
        ("GANTRY_SECRETS_REFRESH", "5s"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(c.refresh, Duration::from_secs(5));
    let ids: Vec<_> = c.sources.iter().map(SourceSpec::id).collect();
    assert_eq!(
        ids,
        [
            "vault:kv/data/secrets/app",
            "vault:kv/secrets/other",
            "aws:prod/a",
            "aws:arn:aws:secretsmanager:us-east-1:1:secret:b"
        ]
    );
    match &c.vault.as_ref().unwrap().auth {
        VaultAuth::AppRole {
            mount, secret_id, ..
        } => {
            assert_eq!(mount, "approle");
            assert!(matches!(secret_id, SecretIdFrom::Value(_)));
        }
        other => panic!("{other:?}"),
    }
    // The secret id never shows in Debug.
    assert!(!format!("{c:?}").contains("sid-value"));
}

#[test]
fn env_overrides_file() {
    let y = r#"
sources:
  - vault: { path: kv/secrets/app }
vault: { addr: http://file:8200, auth: { token_file: /run/token } }
"#;
    let file: RawSourcesConfig = serde_yaml::from_str(y).unwrap();
    let e = env(&[
        ("VAULT_ADDR", "http://env:8200"),
        ("VAULT_SECRET_PATH", "kv/secrets/app,kv/secrets/more"),
        ("GANTRY_SECRETS_VAULT_ALLOW_HTTP", "true"),
    ]);
    // The env alone lacks a token: only the merge is valid.
    assert!(sources_from_env(&e).is_err());
    let m = merge(Some(&file), &e).unwrap().unwrap();
    let v = m.vault.unwrap();
    assert_eq!(v.addr.host_str(), Some("env"));
    assert!(matches!(
        v.auth,
        VaultAuth::Token {
            token_file: Some(_),
            ..
        }
    ));
    assert_eq!(m.sources.len(), 2);
}

/// Issue 9 item 4: architectures/001 sets exactly `VAULT_ADDR`, `VAULT_ROLE` and
/// `VAULT_SECRET_PATH`; with no token present that is an AWS IAM login, not exit 78.
#[test]
fn vault_role_alone_means_aws_iam() {
    let c = sources_from_env(&env(&[
        ("VAULT_ADDR", "https://vault.example.com:8200"),
        ("VAULT_ROLE", "app"),
        ("VAULT_SECRET_PATH", "secret/app"),
        ("VAULT_AWS_AUTH_MOUNT", "aws-prod"),
    ]))
    .unwrap()
    .unwrap();
    match &c.vault.as_ref().unwrap().auth {
        VaultAuth::AwsIam {
            mount,
            role,
            region,
            header_value,
        } => {
            assert_eq!((mount.as_str(), role.as_str()), ("aws-prod", "app"));
            assert_eq!(region, DEFAULT_IAM_REGION);
            assert!(header_value.is_none());
        }
        other => panic!("expected AWS IAM, got {other:?}"),
    }
    // A token present wins over the role (token auth), and a role id means AppRole.
    let token = sources_from_env(&env(&[
        ("VAULT_ADDR", "https://vault.example.com:8200"),
        ("VAULT_ROLE", "app"),
        ("VAULT_TOKEN", "t"),
        ("VAULT_SECRET_PATH", "secret/app"),
    ]))
    .unwrap()
    .unwrap();
    assert!(matches!(token.vault.unwrap().auth, VaultAuth::Token { .. }));
    let approle = sources_from_env(&env(&[
        ("VAULT_ADDR", "https://vault.example.com:8200"),
        ("VAULT_ROLE_ID", "rid"),
        ("VAULT_SECRET_ID", "sid"),
        ("VAULT_SECRET_PATH", "secret/app"),
    ]))
    .unwrap()
    .unwrap();
    assert!(matches!(
        approle.vault.unwrap().auth,
        VaultAuth::AppRole { .. }
    ));
    // Nothing to log in with is still an error that says what to set.
    let e = sources_from_env(&env(&[
        ("VAULT_ADDR", "https://vault.example.com:8200"),
        ("VAULT_SECRET_PATH", "secret/app"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("VAULT_TOKEN"), "{e}");
}

/// Issue 11 item 8: plain `http://` to a Vault that is not on this host needs an explicit
/// opt-in (the token would cross the network in clear); loopback and https need none.
#[test]
fn plain_http_vault_off_host_needs_an_opt_in() {
    let base = [("VAULT_TOKEN", "t"), ("VAULT_SECRET_PATH", "secret/app")];
    let with = |extra: &[(&str, &str)]| {
        let mut pairs = base.to_vec();
        pairs.extend_from_slice(extra);
        sources_from_env(&env(&pairs))
    };
    let e = with(&[("VAULT_ADDR", "http://vault.internal:8200")]).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("vault.addr") && m.contains("GANTRY_SECRETS_VAULT_ALLOW_HTTP"),
        "{m}"
    );
    let ok = with(&[
        ("VAULT_ADDR", "http://vault.internal:8200"),
        ("GANTRY_SECRETS_VAULT_ALLOW_HTTP", "true"),
    ])
    .unwrap()
    .unwrap();
    assert!(ok.vault.unwrap().plain_http_off_host);
    for addr in [
        "http://127.0.0.1:8200",
        "http://localhost:8200",
        "http://[::1]:8200",
        "https://vault.internal:8200",
    ] {
        let c = with(&[("VAULT_ADDR", addr)]).unwrap().unwrap();
        assert!(!c.vault.unwrap().plain_http_off_host, "{addr}");
    }
    // The file's own opt-in works too.
    let file: RawSourcesConfig = serde_yaml::from_str(
        "vault: { addr: http://vault.internal:8200, allow_http: true }\nsources: [{ vault: { path: secret/app } }]\n",
    )
    .unwrap();
    assert!(merge(Some(&file), &env(&[("VAULT_TOKEN", "t")])).is_ok());
}
