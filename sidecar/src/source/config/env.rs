//! The environment-only form of the source configuration (`VAULT_ADDR`, `VAULT_SECRET_PATH`,
//! `GANTRY_SECRETS_AWS_IDS`, ...) and its merge over the file's raw form (file < env).
//!
//! Design: the environment is read into the same raw types as the file ([`RawSourcesConfig`]),
//! merged field by field, then validated once by [`SourcesConfig::from_raw`], so each layer may
//! be incomplete on its own (the address in the file, the token in the environment).
//!
//! Limits: the variables are read from the map the caller gives (the process environment at
//! start), never again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gantry_common::Secret;

use super::{
    ConfigError, DEFAULT_REFRESH, RawAwsConfig, RawAwsSource, RawSourceSpec, RawSourcesConfig,
    RawVaultAuth, RawVaultConfig, RawVaultSource, SourcesConfig, invalid,
};

fn env_get<'a>(env: &'a BTreeMap<String, String>, k: &str) -> Option<&'a str> {
    env.get(k).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// The raw source configuration described by environment variables, or `None` when none of
/// them is set.
pub fn raw_sources_from_env(env: &BTreeMap<String, String>) -> Option<RawSourcesConfig> {
    let mut raw = RawSourcesConfig::default();
    let mut any = false;
    if let Some(paths) = env_get(env, "VAULT_SECRET_PATH") {
        for p in split_list(paths) {
            // `auto`: KV v2 paths as the issue describes them, and dynamic paths
            // (`database/creds/app`) work too, decided by the mount's type.
            raw.sources.push(RawSourceSpec::vault(RawVaultSource {
                path: Some(p.to_owned()),
                ..Default::default()
            }));
        }
        any = true;
    }
    if let Some(ids) = env_get(env, "GANTRY_SECRETS_AWS_IDS") {
        for id in split_list(ids) {
            raw.sources.push(RawSourceSpec::aws(RawAwsSource {
                id: Some(id.to_owned()),
                ..Default::default()
            }));
        }
        any = true;
    }
    let vault_keys = [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_TOKEN_FILE",
        "VAULT_AUTH_METHOD",
        "VAULT_ROLE",
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
        "VAULT_SECRET_ID_FILE",
        "VAULT_AWS_AUTH_MOUNT",
        "VAULT_AUTH_MOUNT",
        "VAULT_AWS_HEADER_VALUE",
        "VAULT_AWS_REGION",
        "VAULT_NAMESPACE",
        "VAULT_CACERT",
    ];
    if vault_keys.iter().any(|k| env_get(env, k).is_some()) {
        any = true;
        let s = |k: &str| env_get(env, k).map(str::to_owned);
        let method = s("VAULT_AUTH_METHOD");
        let mut auth = RawVaultAuth {
            method: method.clone(),
            token_file: s("VAULT_TOKEN_FILE").map(PathBuf::from),
            role: s("VAULT_ROLE"),
            role_id: s("VAULT_ROLE_ID"),
            secret_id_file: s("VAULT_SECRET_ID_FILE").map(PathBuf::from),
            mount: None,
            header_value: s("VAULT_AWS_HEADER_VALUE"),
            region: s("VAULT_AWS_REGION"),
            token: env_get(env, "VAULT_TOKEN").map(Secret::from),
            secret_id: env_get(env, "VAULT_SECRET_ID").map(Secret::from),
        };
        // With no VAULT_AUTH_METHOD the method follows from the variables that are set (a
        // lone VAULT_ROLE is AWS IAM), and so does which mount variable applies.
        let method = method
            .as_deref()
            .unwrap_or_else(|| super::implied_method(&auth));
        auth.mount = match method {
            "aws-iam" | "aws" | "iam" => {
                s("VAULT_AWS_AUTH_MOUNT").or_else(|| s("VAULT_AUTH_MOUNT"))
            }
            _ => s("VAULT_AUTH_MOUNT"),
        };
        raw.vault = Some(RawVaultConfig {
            addr: s("VAULT_ADDR"),
            auth: Some(auth),
            namespace: s("VAULT_NAMESPACE"),
            ca_cert: s("VAULT_CACERT").map(PathBuf::from),
            timeout: None,
            allow_http: None,
        });
    }
    any.then_some(raw)
}

/// `GANTRY_SECRETS_VAULT_ALLOW_HTTP` over the (merged) Vault block, wherever the address
/// came from.
fn allow_http_from_env(raw: &mut RawSourcesConfig, env: &BTreeMap<String, String>) {
    if let Some(v) = raw.vault.as_mut()
        && let Some(b) = env_get(env, "GANTRY_SECRETS_VAULT_ALLOW_HTTP")
    {
        v.allow_http = Some(matches!(
            b.to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        ));
    }
}

/// `GANTRY_SECRETS_REFRESH` (`gantry_common::duration`'s rule, default 60 s).
pub fn refresh_from_env(env: &BTreeMap<String, String>) -> Result<Duration, ConfigError> {
    match env_get(env, "GANTRY_SECRETS_REFRESH") {
        None => Ok(DEFAULT_REFRESH),
        Some(v) => gantry_common::duration::parse(v)
            .map_err(|e| invalid("GANTRY_SECRETS_REFRESH", e.to_string())),
    }
}

/// The environment-only form: `Ok(None)` when no source variable is set.
pub fn sources_from_env(
    env: &BTreeMap<String, String>,
) -> Result<Option<SourcesConfig>, ConfigError> {
    let Some(mut raw) = raw_sources_from_env(env) else {
        return Ok(None);
    };
    allow_http_from_env(&mut raw, env);
    SourcesConfig::from_raw(raw, refresh_from_env(env)?).map(Some)
}

fn over<T: Clone>(base: &Option<T>, top: &Option<T>) -> Option<T> {
    top.clone().or_else(|| base.clone())
}

/// Merges two raw forms, `top` winning field by field (file < env). Sources are concatenated,
/// `base` first; a source of `top` with the same id as one of `base` replaces it.
pub fn merge_raw(base: &RawSourcesConfig, top: &RawSourcesConfig) -> RawSourcesConfig {
    let vault = match (&base.vault, &top.vault) {
        (None, None) => None,
        (Some(b), None) => Some(b.clone()),
        (None, Some(t)) => Some(t.clone()),
        (Some(b), Some(t)) => Some(RawVaultConfig {
            addr: over(&b.addr, &t.addr),
            auth: match (&b.auth, &t.auth) {
                (Some(ba), Some(ta)) => Some(merge_auth(ba, ta)),
                (ba, ta) => over(ba, ta),
            },
            namespace: over(&b.namespace, &t.namespace),
            ca_cert: over(&b.ca_cert, &t.ca_cert),
            timeout: over(&b.timeout, &t.timeout),
            allow_http: over(&b.allow_http, &t.allow_http),
        }),
    };
    let aws = match (&base.aws, &top.aws) {
        (Some(b), Some(t)) => Some(RawAwsConfig {
            region: over(&b.region, &t.region),
            endpoint_url: over(&b.endpoint_url, &t.endpoint_url),
        }),
        (b, t) => over(b, t),
    };
    let raw_id = |s: &RawSourceSpec| match (&s.vault, &s.aws) {
        (Some(v), None) => format!(
            "vault:{}#{}",
            v.path.as_deref().unwrap_or("").trim_matches('/'),
            v.key.as_deref().unwrap_or("")
        ),
        (None, Some(a)) => format!(
            "aws:{}#{}",
            a.id.as_deref().unwrap_or(""),
            a.key.as_deref().unwrap_or("")
        ),
        // Invalid entries are never merged away: validation reports them.
        _ => format!("invalid:{:p}", s),
    };
    let mut sources: Vec<RawSourceSpec> = base.sources.clone();
    for t in &top.sources {
        let id = raw_id(t);
        if let Some(slot) = sources.iter_mut().find(|s| raw_id(s) == id) {
            *slot = t.clone();
        } else {
            sources.push(t.clone());
        }
    }
    RawSourcesConfig {
        sources,
        vault,
        aws,
    }
}

fn merge_auth(b: &RawVaultAuth, t: &RawVaultAuth) -> RawVaultAuth {
    // A different method in `top` replaces the whole auth block: mixing fields of two methods
    // would make a login nobody configured.
    if t.method.is_some() && t.method != b.method {
        return t.clone();
    }
    RawVaultAuth {
        method: over(&b.method, &t.method),
        token_file: over(&b.token_file, &t.token_file),
        role: over(&b.role, &t.role),
        role_id: over(&b.role_id, &t.role_id),
        secret_id_file: over(&b.secret_id_file, &t.secret_id_file),
        mount: over(&b.mount, &t.mount),
        header_value: over(&b.header_value, &t.header_value),
        region: over(&b.region, &t.region),
        token: over(&b.token, &t.token),
        secret_id: over(&b.secret_id, &t.secret_id),
    }
}

/// Layers the environment over the file (file < env) and validates the result once, so that
/// each layer may be incomplete on its own (the address in the file, the token in the
/// environment). `Ok(None)` when neither configures a source or Vault.
///
/// The refresh interval is `GANTRY_SECRETS_REFRESH` or 60 s; a caller with its own setting (a
/// file key, a flag) overwrites [`SourcesConfig::refresh`] afterwards.
pub fn merge(
    file: Option<&RawSourcesConfig>,
    env: &BTreeMap<String, String>,
) -> Result<Option<SourcesConfig>, ConfigError> {
    let refresh = refresh_from_env(env)?;
    let mut raw = match (file, raw_sources_from_env(env)) {
        (None, None) => return Ok(None),
        (Some(f), None) => f.clone(),
        (None, Some(e)) => e,
        (Some(f), Some(e)) => merge_raw(f, &e),
    };
    if raw.sources.is_empty() && raw.vault.is_none() && raw.aws.is_none() {
        return Ok(None);
    }
    allow_http_from_env(&mut raw, env);
    SourcesConfig::from_raw(raw, refresh).map(Some)
}
