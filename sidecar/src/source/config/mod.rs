//! Source configuration: which secrets to read and how to reach Vault and AWS.
//!
//! Two layers, as everywhere in Gantry:
//! - [`RawSourcesConfig`]: what serde reads (the `sources:`, `vault:` and `aws:` keys of the
//!   sidecar's YAML file), every struct with `deny_unknown_fields`, every field optional.
//! - [`SourcesConfig`]: the validated form ([`reqwest::Url`], [`Duration`], enums instead of
//!   strings), built by [`SourcesConfig::from_raw`]. [`merge`] layers the environment over the
//!   file's raw form (file < env) and validates the result once.
//!
//! The environment-only form ([`sources_from_env`]) reads `VAULT_ADDR`, `VAULT_TOKEN`,
//! `VAULT_TOKEN_FILE`, `VAULT_AUTH_METHOD`, `VAULT_ROLE`, `VAULT_ROLE_ID`, `VAULT_SECRET_ID`,
//! `VAULT_SECRET_ID_FILE`, `VAULT_AWS_AUTH_MOUNT`, `VAULT_AWS_HEADER_VALUE`, `VAULT_AWS_REGION`,
//! `VAULT_NAMESPACE`, `VAULT_CACERT`, `VAULT_SECRET_PATH` (comma-separated KV v2 paths, or
//! dynamic ones, told apart by the mount's type),
//! `GANTRY_SECRETS_AWS_IDS` (comma-separated Secrets Manager ids) and `GANTRY_SECRETS_REFRESH`.
//!
//! Secret material (a token, a secret id) is only accepted from the environment, never inline in
//! the YAML file: the file names files that hold them (`token_file`, `secret_id_file`).
//!
//! The auth method, when not given (`method:` / `VAULT_AUTH_METHOD`), follows from what is
//! there: a token (or token file) means token auth, a role id means AppRole, and a role alone
//! means AWS IAM (so `VAULT_ADDR`, `VAULT_ROLE`, `VAULT_SECRET_PATH` is a complete IAM set-up).
//!
//! Files: [`raw`] (serde types), [`env`] (environment form and merge), this module (validated
//! types and validation). Durations follow `gantry_common::duration`'s rule.

mod env;
mod raw;

use std::path::PathBuf;
use std::time::Duration;

use gantry_common::Secret;
use reqwest::Url;

pub use env::{merge, merge_raw, raw_sources_from_env, refresh_from_env, sources_from_env};
pub use raw::{
    RawAwsConfig, RawAwsSource, RawSourceSpec, RawSourcesConfig, RawVaultAuth, RawVaultConfig,
    RawVaultSource,
};

/// Default poll interval of KV v2 and Secrets Manager sources.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Default region for the Vault AWS IAM login signature (Vault's default STS endpoint).
pub const DEFAULT_IAM_REGION: &str = "us-east-1";

/// A configuration mistake, found before any source is contacted. Never quotes a value that
/// may hold a credential (the Vault address is named, not shown).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Invalid {
        field: String,
        message: String,
        hint: Option<String>,
    },
}

impl ConfigError {
    fn with_hint(mut self, h: impl Into<String>) -> Self {
        let ConfigError::Invalid { hint, .. } = &mut self;
        *hint = Some(h.into());
        self
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
        hint: None,
    }
}

/// Validated source configuration; what [`crate::source::build`] takes.
#[derive(Debug, Clone)]
pub struct SourcesConfig {
    /// The raw form this was validated from (kept for [`merge`]).
    pub raw: RawSourcesConfig,
    /// Poll interval of KV v2 and Secrets Manager sources (`GANTRY_SECRETS_REFRESH`, default
    /// 60 s). The caller may overwrite it with its own setting before [`crate::source::build`].
    pub refresh: Duration,
    pub sources: Vec<SourceSpec>,
    /// Present when at least one Vault source exists, or `vault:` was configured.
    pub vault: Option<VaultConfig>,
    pub aws: AwsConfig,
}

/// One validated source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    Vault(VaultSourceSpec),
    Aws(AwsSourceSpec),
}

impl SourceSpec {
    /// The id the source will carry in logs and errors: `vault:kv/secrets/app`,
    /// `vault:kv/secrets/app#password`, `aws:prod/app/db`.
    pub fn id(&self) -> String {
        match self {
            SourceSpec::Vault(v) => match &v.key {
                Some(k) => format!("vault:{}#{k}", v.path),
                None => format!("vault:{}", v.path),
            },
            SourceSpec::Aws(a) => match &a.key {
                Some(k) => format!("aws:{}#{k}", a.id),
                None => format!("aws:{}", a.id),
            },
        }
    }
}

/// What a Vault path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaultKind {
    /// Decided by the mount's type (`GET /v1/sys/internal/ui/mounts/<path>`), falling back to the
    /// path's shape (`.../creds/...` is dynamic).
    Auto,
    /// KV version 2.
    Kv,
    /// A secret with a lease (database, aws, ... secrets engines).
    Dynamic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultSourceSpec {
    /// As configured (short or API form); trimmed of slashes.
    pub path: String,
    pub key: Option<String>,
    pub name: Option<String>,
    pub prefix: Option<String>,
    pub kind: VaultKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsVersion {
    Stage(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSourceSpec {
    pub id: String,
    pub version: AwsVersion,
    pub key: Option<String>,
    pub name: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub addr: Url,
    pub auth: VaultAuth,
    pub namespace: Option<String>,
    pub ca_cert: Option<PathBuf>,
    /// Per-request timeout (default 10 s).
    pub timeout: Duration,
    /// The address is `http://` and not loopback, allowed by `allow_http` (logged as a warning
    /// when the session starts).
    pub plain_http_off_host: bool,
}

/// Where the AppRole secret id comes from.
#[derive(Debug, Clone)]
pub enum SecretIdFrom {
    Value(Secret<String>),
    /// Read at each login.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token given directly (`VAULT_TOKEN`) or read from a file that is re-read when it changes.
    Token {
        token: Option<Secret<String>>,
        token_file: Option<PathBuf>,
    },
    AppRole {
        mount: String,
        role_id: String,
        secret_id: SecretIdFrom,
    },
    AwsIam {
        mount: String,
        role: String,
        header_value: Option<String>,
        region: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsConfig {
    /// Overrides `AWS_REGION` / `AWS_DEFAULT_REGION` / profile.
    pub region: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<Url>,
}

fn non_empty(field: &str, v: &Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(invalid(field, "must not be empty")),
        Some(s) => Ok(Some(s.trim().to_owned())),
        None => Ok(None),
    }
}

impl SourcesConfig {
    /// Validates the raw form. `refresh` is the poll interval (see [`SourcesConfig::refresh`]).
    pub fn from_raw(raw: RawSourcesConfig, refresh: Duration) -> Result<Self, ConfigError> {
        if refresh.is_zero() {
            return Err(invalid("refresh", "must be greater than zero"));
        }
        let mut sources = Vec::new();
        for (i, s) in raw.sources.iter().enumerate() {
            sources.push(validate_source(i, s)?);
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &sources {
            if !seen.insert(s.id()) {
                return Err(invalid("sources", format!("{} is listed twice", s.id())));
            }
        }
        let wants_vault = sources.iter().any(|s| matches!(s, SourceSpec::Vault(_)));
        let vault = match (&raw.vault, wants_vault) {
            (Some(v), _) => Some(validate_vault(v)?),
            (None, true) => {
                return Err(invalid(
                    "vault.addr",
                    "a vault source is configured but Vault's address is not (set vault.addr or VAULT_ADDR)",
                ));
            }
            (None, false) => None,
        };
        let aws = match &raw.aws {
            None => AwsConfig::default(),
            Some(a) => AwsConfig {
                region: non_empty("aws.region", &a.region)?,
                endpoint_url: match non_empty("aws.endpoint_url", &a.endpoint_url)? {
                    None => None,
                    Some(u) => Some(
                        Url::parse(&u)
                            .map_err(|e| invalid("aws.endpoint_url", format!("not a URL: {e}")))?,
                    ),
                },
            },
        };
        Ok(SourcesConfig {
            raw,
            refresh,
            sources,
            vault,
            aws,
        })
    }
}

fn validate_source(i: usize, s: &RawSourceSpec) -> Result<SourceSpec, ConfigError> {
    match (&s.vault, &s.aws) {
        (Some(_), Some(_)) | (None, None) => Err(invalid(
            format!("sources[{i}]"),
            "needs exactly one of `vault:` or `aws:`",
        )),
        (Some(v), None) => {
            let f = |k: &str| format!("sources[{i}].vault.{k}");
            let path = non_empty(&f("path"), &v.path)?
                .ok_or_else(|| invalid(f("path"), "is required"))?
                .trim_matches('/')
                .to_owned();
            if path.split('/').any(str::is_empty) || !path.contains('/') {
                return Err(invalid(
                    f("path"),
                    format!("`{path}` is not <mount>/<path> (e.g. kv/secrets/app)"),
                ));
            }
            let kind = match v.kind.as_deref() {
                None | Some("auto") => VaultKind::Auto,
                Some("kv") | Some("kv2") | Some("kv-v2") => VaultKind::Kv,
                Some("dynamic") => VaultKind::Dynamic,
                Some(other) => {
                    return Err(invalid(
                        f("kind"),
                        format!("`{other}` is not one of kv, dynamic, auto"),
                    ));
                }
            };
            let key = non_empty(&f("key"), &v.key)?;
            let name = non_empty(&f("name"), &v.name)?;
            if name.is_some() && key.is_none() {
                return Err(invalid(f("name"), "only makes sense with `key`"));
            }
            Ok(SourceSpec::Vault(VaultSourceSpec {
                path,
                key,
                name,
                prefix: v.prefix.clone(),
                kind,
            }))
        }
        (None, Some(a)) => {
            let f = |k: &str| format!("sources[{i}].aws.{k}");
            let id = non_empty(&f("id"), &a.id)?.ok_or_else(|| invalid(f("id"), "is required"))?;
            let version = match (
                non_empty(&f("stage"), &a.stage)?,
                non_empty(&f("version_id"), &a.version_id)?,
            ) {
                (Some(_), Some(_)) => {
                    return Err(invalid(f("stage"), "set `stage` or `version_id`, not both"));
                }
                (Some(s), None) => AwsVersion::Stage(s),
                (None, Some(v)) => AwsVersion::Id(v),
                (None, None) => AwsVersion::Stage("AWSCURRENT".to_owned()),
            };
            Ok(SourceSpec::Aws(AwsSourceSpec {
                id,
                version,
                key: non_empty(&f("key"), &a.key)?,
                name: non_empty(&f("name"), &a.name)?,
                prefix: a.prefix.clone(),
            }))
        }
    }
}

fn validate_vault(v: &RawVaultConfig) -> Result<VaultConfig, ConfigError> {
    let addr = non_empty("vault.addr", &v.addr)?
        .ok_or_else(|| invalid("vault.addr", "is required (or VAULT_ADDR)"))?;
    // The address is never quoted: it may hold a password (`https://user:pw@host`). The URL
    // parser's messages name the problem only (`invalid port number`), never the input.
    let addr = Url::parse(&addr).map_err(|e| {
        invalid("vault.addr", format!("not a URL ({e})"))
            .with_hint("set vault.addr or VAULT_ADDR to https://<host>:<port>")
    })?;
    // A user name or password in the address would be in every log line and error that names
    // Vault (`vault:<addr>`): refused, never quoted.
    if !addr.username().is_empty() || addr.password().is_some() {
        return Err(invalid(
            "vault.addr",
            "a user name or password in the address is refused (it would be logged)",
        )
        .with_hint(
            "remove `user:password@` from vault.addr or VAULT_ADDR; the sidecar logs in to Vault with a token, AppRole or AWS IAM, never with the address's user info",
        ));
    }
    if !matches!(addr.scheme(), "http" | "https") {
        return Err(invalid("vault.addr", "must be an http:// or https:// URL"));
    }
    let timeout = match non_empty("vault.timeout", &v.timeout)? {
        None => Duration::from_secs(10),
        Some(t) => gantry_common::duration::parse(&t)
            .map_err(|e| invalid("vault.timeout", e.to_string()))?,
    };
    if timeout.is_zero() {
        return Err(invalid("vault.timeout", "must be greater than zero"));
    }
    let raw_auth = v.auth.clone().unwrap_or_default();
    let a = &raw_auth;
    let method = non_empty("vault.auth.method", &a.method)?;
    let auth = match method.as_deref().unwrap_or_else(|| implied_method(a)) {
        "token" => {
            if a.token.is_none() && a.token_file.is_none() {
                return Err(invalid(
                    "vault.auth",
                    "token auth needs VAULT_TOKEN or a token_file (VAULT_TOKEN_FILE)",
                ));
            }
            VaultAuth::Token {
                token: a.token.clone(),
                token_file: a.token_file.clone(),
            }
        }
        "approle" => {
            let role_id = non_empty("vault.auth.role_id", &a.role_id)?.ok_or_else(|| {
                invalid(
                    "vault.auth.role_id",
                    "approle needs a role id (VAULT_ROLE_ID)",
                )
            })?;
            let secret_id = match (&a.secret_id, &a.secret_id_file) {
                (Some(s), _) => SecretIdFrom::Value(s.clone()),
                (None, Some(f)) => SecretIdFrom::File(f.clone()),
                (None, None) => {
                    return Err(invalid(
                        "vault.auth.secret_id_file",
                        "approle needs a secret id (VAULT_SECRET_ID or VAULT_SECRET_ID_FILE)",
                    ));
                }
            };
            VaultAuth::AppRole {
                mount: mount_name(&a.mount, "approle")?,
                role_id,
                secret_id,
            }
        }
        "aws-iam" | "aws" | "iam" => VaultAuth::AwsIam {
            mount: mount_name(&a.mount, "aws")?,
            role: non_empty("vault.auth.role", &a.role)?.ok_or_else(|| {
                invalid(
                    "vault.auth.role",
                    "aws-iam needs the Vault role name (VAULT_ROLE)",
                )
            })?,
            header_value: non_empty("vault.auth.header_value", &a.header_value)?,
            region: non_empty("vault.auth.region", &a.region)?
                .unwrap_or_else(|| DEFAULT_IAM_REGION.to_owned()),
        },
        other => {
            return Err(invalid(
                "vault.auth.method",
                format!("`{other}` is not one of token, approle, aws-iam"),
            ));
        }
    };
    // Checked last: a mistake in the auth block is the more useful message.
    let plain_http_off_host = addr.scheme() == "http"
        && !addr
            .host_str()
            .is_some_and(gantry_common::net::is_loopback_host);
    if plain_http_off_host && v.allow_http != Some(true) {
        return Err(invalid(
            "vault.addr",
            format!(
                "{} is plain http:// to another host: the Vault token would cross the network in clear; use https://, or set vault.allow_http: true (GANTRY_SECRETS_VAULT_ALLOW_HTTP=true) to accept it",
                addr.host_str().unwrap_or("")
            ),
        ));
    }
    Ok(VaultConfig {
        addr,
        auth,
        namespace: non_empty("vault.namespace", &v.namespace)?,
        ca_cert: v.ca_cert.clone(),
        timeout,
        plain_http_off_host,
    })
}

/// The auth method when none is named: a token wins, then an AppRole role id, then a role
/// alone (AWS IAM); with none of them, token auth (whose error asks for a token).
pub(crate) fn implied_method(a: &RawVaultAuth) -> &'static str {
    if a.token.is_some() || a.token_file.is_some() {
        "token"
    } else if a.role_id.is_some() {
        "approle"
    } else if a.role.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        "aws-iam"
    } else {
        "token"
    }
}

fn mount_name(v: &Option<String>, default: &str) -> Result<String, ConfigError> {
    let m = non_empty("vault.auth.mount", v)?.unwrap_or_else(|| default.to_owned());
    let m = m.trim_matches('/').to_owned();
    if m.is_empty() {
        return Err(invalid("vault.auth.mount", "must not be empty"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests;
