//! Secret sources, one module per backend behind [`Source`].
//!
//! Contract between the sources and the runtime (render, exec, run):
//! - [`Source::fetch`] returns every value of the source or an error: never a partial map.
//! - [`Source::refresh`] is called when [`Source::next_refresh`] says. It renews what can be
//!   renewed (Vault token, leases) and checks cheaply for a change (KV v2 metadata
//!   `current_version`, Secrets Manager `DescribeSecret`). It returns `Some(snapshot)` only when
//!   the values changed; a new token or a renewed lease is not a change.
//! - Values are [`Secret`]s: they never reach a log line or an error.
//!
//! # What the runtime calls (the API of this module for config/render/exec/run)
//!
//! 1. Configuration ([`config`]):
//!    - the YAML file: embed `sources: Vec<`[`RawSourceSpec`]`>`, `vault: Option<`[`RawVaultConfig`]`>`
//!      and `aws: Option<`[`RawAwsConfig`]`>` (all `#[serde(default)]`) in the file's top-level
//!      raw type, build a [`RawSourcesConfig`] from them and call
//!      [`SourcesConfig::from_raw`]`(raw, refresh)`;
//!    - the environment-only form: [`sources_from_env`]`(&env)` → `Ok(None)` when no source
//!      variable is set (it reads `GANTRY_SECRETS_REFRESH` too, default 60 s);
//!    - layering file < env: [`merge`]`(Some(&raw_from_file), &env)` → validated
//!      `Option<SourcesConfig>` (each layer may be incomplete alone: address in the file, token in
//!      the environment); flags can then overwrite the public field [`SourcesConfig::refresh`].
//!    - errors are [`ConfigError`] and name the offending field (`sources[2].aws.id: ...`).
//! 2. [`build`]`(&cfg).await` → one `Box<dyn Source>` per configured source, in configured order,
//!    or a [`BuildFailure`] with the index of the source it stopped at.
//!    It contacts nothing but the AWS credential chain set-up and Vault's login: every source's
//!    values come from its first [`Source::fetch`].
//! 3. Then per source: `fetch()` once (fail closed on error), then loop
//!    `sleep(next_refresh())` → `refresh()`; on `Err` keep the last good snapshot and retry with
//!    the runtime's backoff ([`Source::next_refresh`] returns zero while a step is overdue).
//!    `Ok(Some(s))` is a change, `Ok(None)` is not. After an error, `fetch()` may also be called
//!    to re-read everything.
//!
//! Variable names: a KV v2 path gives its keys as they are, a dynamic secret its `data` keys
//! (`username`, `password`), a Secrets Manager JSON object its keys; `prefix` is prepended,
//! `key` picks one key, `name` renames it (or names a plain-string Secrets Manager secret).
//! Nested JSON values become JSON text. Names are not validated as environment variable names
//! here: the exec side decides what it accepts.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_common::Secret;

pub mod aws_secrets_manager;
pub mod config;
pub mod proxy;
pub mod vault;

pub use config::{
    AwsConfig, AwsSourceSpec, AwsVersion, ConfigError, RawAwsConfig, RawAwsSource, RawSourceSpec,
    RawSourcesConfig, RawVaultAuth, RawVaultConfig, RawVaultSource, SecretIdFrom, SourceSpec,
    SourcesConfig, VaultAuth, VaultConfig, VaultKind, VaultSourceSpec, merge, sources_from_env,
};

/// The values of one source at one version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Variable name → value (a KV path's keys, one picked key, a JSON secret's keys...).
    pub values: BTreeMap<String, Secret<String>>,
    /// A binary secret (Secrets Manager `SecretBinary`): only raw file outputs take it.
    pub binary: Option<Secret<Vec<u8>>>,
    /// Opaque version: equal versions mean equal values (KV version, VersionId, lease id).
    pub version: String,
}

#[cfg(test)]
impl Snapshot {
    /// A snapshot of `pairs` whose version follows its values (tests).
    pub(crate) fn of(pairs: &[(&str, &str)]) -> Self {
        Self {
            values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Secret::from(*v)))
                .collect(),
            binary: None,
            version: format!("{pairs:?}"),
        }
    }
}

/// Why a source could not be read. Names the source, never a value.
#[derive(Debug, thiserror::Error)]
#[error("{source_id}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
pub struct SourceError {
    pub source_id: String,
    pub message: String,
    pub hint: Option<String>,
}

impl SourceError {
    /// An error of source `source_id` (never put a secret value into `message`).
    pub fn new(source_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source_id: source_id.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what the operator should check.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Why [`build`] stopped: the source it was setting up (index in configuration order, and id)
/// and the error. A Vault login fails while the first Vault source is set up (the others share
/// its session), so that source is the one named and counted (`100 + index`), while the error
/// keeps the session's own id (`vault:<addr>`), which says which server refused.
#[derive(Debug, thiserror::Error)]
#[error("{}{error}", if error.source_id == *source_id { String::new() } else { format!("{source_id}: ") })]
pub struct BuildFailure {
    /// Index of the source in configuration order.
    pub index: usize,
    /// The source's id (`vault:kv/app`), which the error's own may not be.
    pub source_id: String,
    pub error: SourceError,
}

/// Builds every configured source, in order. Vault sources share one [`vault::VaultSession`]
/// (one login, one token renewal loop); Secrets Manager sources share one AWS client.
///
/// Logs in to Vault (so a wrong role or token fails here, naming the first Vault source and
/// `vault:<addr>`), but reads no secret: that is [`Source::fetch`]'s job.
pub async fn build(cfg: &SourcesConfig) -> Result<Vec<Box<dyn Source>>, BuildFailure> {
    let mut out: Vec<Box<dyn Source>> = Vec::with_capacity(cfg.sources.len());
    let mut session = None;
    let mut aws_client = None;
    for (index, spec) in cfg.sources.iter().enumerate() {
        let failed = |error: SourceError| BuildFailure {
            index,
            source_id: spec.id(),
            error,
        };
        match spec {
            SourceSpec::Vault(v) => {
                let session = match &session {
                    Some(s) => std::sync::Arc::clone(s),
                    None => {
                        let vc = cfg.vault.as_ref().ok_or_else(|| {
                            failed(
                                SourceError::new(spec.id(), "no Vault address configured")
                                    .with_hint("set vault.addr or VAULT_ADDR"),
                            )
                        })?;
                        let s = vault::VaultSession::connect(vc).await.map_err(failed)?;
                        session = Some(std::sync::Arc::clone(&s));
                        s
                    }
                };
                out.push(Box::new(vault::VaultSource::new(
                    v.clone(),
                    session,
                    cfg.refresh,
                )));
            }
            SourceSpec::Aws(a) => {
                let client = match &aws_client {
                    Some(c) => aws_secrets_manager::SmClient::clone(c),
                    None => {
                        let c = aws_secrets_manager::client(&cfg.aws).await;
                        aws_client = Some(c.clone());
                        c
                    }
                };
                out.push(Box::new(aws_secrets_manager::AwsSource::new(
                    a.clone(),
                    client,
                    cfg.refresh,
                )));
            }
        }
    }
    Ok(out)
}

/// One secret source.
#[async_trait::async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// A stable name for logs, errors and metrics: `vault:kv/app`, `aws:prod/db`.
    fn id(&self) -> &str;
    /// Reads every value (first fetch, or re-read after an error).
    async fn fetch(&mut self) -> Result<Snapshot, SourceError>;
    /// Keeps the values fresh; `Some` only when they changed since the last fetch or refresh.
    async fn refresh(&mut self) -> Result<Option<Snapshot>, SourceError>;
    /// How long until [`Source::refresh`] should run next.
    fn next_refresh(&self) -> Duration;
}
