//! Secret sources, one module per backend behind [`Source`].
//!
//! Contract between the sources and the runtime (render, exec, run):
//! - [`Source::fetch`] returns every value of the source or an error: never a partial map.
//! - [`Source::refresh`] is called when [`Source::next_refresh`] says. It renews what can be
//!   renewed (Vault token, leases) and checks cheaply for a change (KV v2 metadata
//!   `current_version`, Secrets Manager `DescribeSecret`). It returns `Some(snapshot)` only when
//!   the values changed; a new token or a renewed lease is not a change.
//! - Values are [`Secret`]s: they never reach a log line or an error.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_common::Secret;

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

/// Why a source could not be read. Names the source, never a value.
#[derive(Debug, thiserror::Error)]
#[error("{source_id}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
pub struct SourceError {
    pub source_id: String,
    pub message: String,
    pub hint: Option<String>,
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
