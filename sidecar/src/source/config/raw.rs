//! The source-related keys of the sidecar's file (`sources:`, `vault:`, `aws:`) as serde
//! reads them: every struct `deny_unknown_fields`, every field optional, secrets only as
//! [`Secret`] (they come from the environment, never from the file).
//!
//! Design: [`super::SourcesConfig::from_raw`] validates these; [`super::env`] builds the same
//! types from environment variables so file and environment merge field by field.
//!
//! Limits: nothing is checked here beyond the YAML shape.

use std::path::PathBuf;

use gantry_common::Secret;
use serde::Deserialize;

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
    /// Per-request timeout (`10s`; `gantry_common::duration`).
    pub timeout: Option<String>,
    /// Allows an `http://` address that is not loopback (the token would cross the network in
    /// clear); `GANTRY_SECRETS_VAULT_ALLOW_HTTP=true`.
    pub allow_http: Option<bool>,
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
