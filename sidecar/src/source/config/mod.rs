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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gantry_common::Secret;
use reqwest::Url;
use serde::Deserialize;

/// Default poll interval of KV v2 and Secrets Manager sources.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Default region for the Vault AWS IAM login signature (Vault's default STS endpoint).
pub const DEFAULT_IAM_REGION: &str = "us-east-1";

/// A configuration mistake, found before any source is contacted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (serde) types
// ---------------------------------------------------------------------------------------------

/// The source-related keys of the sidecar's configuration file, as read.
///
/// The file loader embeds these three fields (`sources`, `vault`, `aws`) in its own top-level
/// type and builds this struct from them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourcesConfig {
    #[serde(default)]
    pub sources: Vec<RawSourceSpec>,
    #[serde(default)]
    pub vault: Option<RawVaultConfig>,
    #[serde(default)]
    pub aws: Option<RawAwsConfig>,
}

/// One entry of `sources:`: `- vault: {...}` or `- aws: {...}` (exactly one of the two).
///
/// A struct rather than an enum: serde_yaml 0.9 reads externally tagged enums from YAML tags
/// (`!vault`), not from single-key maps.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceSpec {
    pub vault: Option<RawVaultSource>,
    pub aws: Option<RawAwsSource>,
}

impl RawSourceSpec {
    pub fn vault(v: RawVaultSource) -> Self {
        Self {
            vault: Some(v),
            aws: None,
        }
    }

    pub fn aws(a: RawAwsSource) -> Self {
        Self {
            vault: None,
            aws: Some(a),
        }
    }
}

/// `- vault: { path, key, name, prefix, kind }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVaultSource {
    /// `kv/secrets/app` (short form), `kv/data/secrets/app` (API form) or `database/creds/app`.
    pub path: Option<String>,
    /// Take only this key of the secret.
    pub key: Option<String>,
    /// With `key`: the variable name to use instead of the key.
    pub name: Option<String>,
    /// Prepended to every variable name of this source.
    pub prefix: Option<String>,
    /// `kv` or `dynamic`; without it the mount type decides.
    pub kind: Option<String>,
}

/// `- aws: { id, stage, version_id, key, name, prefix }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAwsSource {
    /// Secret name or ARN.
    pub id: Option<String>,
    /// Version stage (default `AWSCURRENT`); exclusive with `version_id`.
    pub stage: Option<String>,
    pub version_id: Option<String>,
    /// Take only this key of a JSON object secret.
    pub key: Option<String>,
    /// Variable name: for the whole string of a plain (non-JSON) secret, or for `key`.
    pub name: Option<String>,
    pub prefix: Option<String>,
}

/// `vault: { addr, auth, namespace, ca_cert, timeout }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVaultConfig {
    pub addr: Option<String>,
    #[serde(default)]
    pub auth: Option<RawVaultAuth>,
    pub namespace: Option<String>,
    pub ca_cert: Option<PathBuf>,
    /// Per-request timeout, humantime (`10s`).
    pub timeout: Option<String>,
}

/// `vault.auth: { method, token_file, role, role_id, secret_id_file, mount, header_value, region }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVaultAuth {
    /// `token` (default), `approle` or `aws-iam`.
    pub method: Option<String>,
    pub token_file: Option<PathBuf>,
    pub role: Option<String>,
    pub role_id: Option<String>,
    pub secret_id_file: Option<PathBuf>,
    /// Auth mount (default `approle` or `aws`).
    pub mount: Option<String>,
    /// `X-Vault-AWS-IAM-Server-ID` value, signed into the STS request.
    pub header_value: Option<String>,
    /// Region of the STS signature (default `us-east-1`).
    pub region: Option<String>,
    /// Only from the environment (`VAULT_TOKEN`).
    #[serde(skip)]
    pub token: Option<Secret<String>>,
    /// Only from the environment (`VAULT_SECRET_ID`).
    #[serde(skip)]
    pub secret_id: Option<Secret<String>>,
}

/// `aws: { region, endpoint_url }`: overrides of the standard AWS configuration chain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAwsConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Validated types
// ---------------------------------------------------------------------------------------------

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
    let addr = Url::parse(&addr)
        .map_err(|e| invalid("vault.addr", format!("`{addr}` is not a URL: {e}")))?;
    if !matches!(addr.scheme(), "http" | "https") {
        return Err(invalid("vault.addr", "must be an http:// or https:// URL"));
    }
    let timeout = match non_empty("vault.timeout", &v.timeout)? {
        None => Duration::from_secs(10),
        Some(t) => humantime::parse_duration(&t)
            .map_err(|e| invalid("vault.timeout", format!("`{t}`: {e}")))?,
    };
    if timeout.is_zero() {
        return Err(invalid("vault.timeout", "must be greater than zero"));
    }
    let raw_auth = v.auth.clone().unwrap_or_default();
    let a = &raw_auth;
    let method = non_empty("vault.auth.method", &a.method)?;
    let auth = match method.as_deref().unwrap_or("token") {
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
    Ok(VaultConfig {
        addr,
        auth,
        namespace: non_empty("vault.namespace", &v.namespace)?,
        ca_cert: v.ca_cert.clone(),
        timeout,
    })
}

fn mount_name(v: &Option<String>, default: &str) -> Result<String, ConfigError> {
    let m = non_empty("vault.auth.mount", v)?.unwrap_or_else(|| default.to_owned());
    let m = m.trim_matches('/').to_owned();
    if m.is_empty() {
        return Err(invalid("vault.auth.mount", "must not be empty"));
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------------------
// Environment form and merge
// ---------------------------------------------------------------------------------------------

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
        let mount = match method.as_deref() {
            Some("aws-iam") | Some("aws") | Some("iam") => {
                s("VAULT_AWS_AUTH_MOUNT").or_else(|| s("VAULT_AUTH_MOUNT"))
            }
            _ => s("VAULT_AUTH_MOUNT"),
        };
        raw.vault = Some(RawVaultConfig {
            addr: s("VAULT_ADDR"),
            auth: Some(RawVaultAuth {
                method,
                token_file: s("VAULT_TOKEN_FILE").map(PathBuf::from),
                role: s("VAULT_ROLE"),
                role_id: s("VAULT_ROLE_ID"),
                secret_id_file: s("VAULT_SECRET_ID_FILE").map(PathBuf::from),
                mount,
                header_value: s("VAULT_AWS_HEADER_VALUE"),
                region: s("VAULT_AWS_REGION"),
                token: env_get(env, "VAULT_TOKEN").map(Secret::from),
                secret_id: env_get(env, "VAULT_SECRET_ID").map(Secret::from),
            }),
            namespace: s("VAULT_NAMESPACE"),
            ca_cert: s("VAULT_CACERT").map(PathBuf::from),
            timeout: None,
        });
    }
    any.then_some(raw)
}

/// `GANTRY_SECRETS_REFRESH` (humantime, default 60 s).
pub fn refresh_from_env(env: &BTreeMap<String, String>) -> Result<Duration, ConfigError> {
    match env_get(env, "GANTRY_SECRETS_REFRESH") {
        None => Ok(DEFAULT_REFRESH),
        Some(v) => humantime::parse_duration(v)
            .map_err(|e| invalid("GANTRY_SECRETS_REFRESH", format!("`{v}`: {e}"))),
    }
}

/// The environment-only form: `Ok(None)` when no source variable is set.
pub fn sources_from_env(
    env: &BTreeMap<String, String>,
) -> Result<Option<SourcesConfig>, ConfigError> {
    let Some(raw) = raw_sources_from_env(env) else {
        return Ok(None);
    };
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
    let raw = match (file, raw_sources_from_env(env)) {
        (None, None) => return Ok(None),
        (Some(f), None) => f.clone(),
        (None, Some(e)) => e,
        (Some(f), Some(e)) => merge_raw(f, &e),
    };
    if raw.sources.is_empty() && raw.vault.is_none() && raw.aws.is_none() {
        return Ok(None);
    }
    SourcesConfig::from_raw(raw, refresh).map(Some)
}

#[cfg(test)]
mod tests {
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
}
