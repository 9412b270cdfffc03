//! Glue between the validated configuration and the backends of `crate::source`.

use crate::source::{self, BuildFailure, Source, SourcesConfig};

/// A source could not be set up (bad Vault login, no AWS credentials chain...).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up sources: {0}")]
pub struct BuildError(#[from] pub BuildFailure);

impl BuildError {
    /// Index (config order) of the source that failed: for a Vault login, the first Vault
    /// source's (the error itself names the session, `vault:<addr>`, which is no source's id).
    pub fn index(&self) -> usize {
        self.0.index
    }
}

/// One source per configured entry, in configured order.
pub async fn build_sources(cfg: &SourcesConfig) -> Result<Vec<Box<dyn Source>>, BuildError> {
    Ok(source::build(cfg).await?)
}

/// The ids the sources will have, in configured order (known before they are built).
pub fn source_ids(cfg: &SourcesConfig) -> Vec<String> {
    cfg.sources.iter().map(|s| s.id()).collect()
}
