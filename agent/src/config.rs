//! Gantry's own configuration: `<config-dir>/gantry.yaml` (default `/etc/gantry/gantry.yaml`).
//!
//! Parsed into a raw type with `deny_unknown_fields`, then validated into strong types; an
//! invalid file is [`ConfigError`] (exit 78) naming the file and the key. A missing file means
//! every default. Layering: this file < environment < flags (each section documents its
//! variables). Sections belong to the modules that use them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: {key}: {message}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Registry credentials (see [`crate::registry`]).
    #[serde(default)]
    pub registries: crate::registry::RawRegistriesConfig,
    /// The daemon (see [`crate::daemon`]).
    #[serde(default)]
    pub daemon: crate::daemon::RawDaemonConfig,
}

impl RawConfig {
    /// Reads `<config_dir>/gantry.yaml`; a missing file is the default configuration.
    pub fn load(config_dir: &Path) -> Result<(PathBuf, Self), ConfigError> {
        let path = config_dir.join("gantry.yaml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((path, Self::default()));
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if text.trim().is_empty() {
            return Ok((path, Self::default()));
        }
        let raw = serde_yaml::from_str(&text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!("line {} column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            ConfigError::Invalid {
                path: path.clone(),
                message: format!("{loc}{e}"),
            }
        })?;
        Ok((path, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_default_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        RawConfig::load(dir.path()).unwrap();
        std::fs::write(dir.path().join("gantry.yaml"), "registres: {}\n").unwrap();
        let err = RawConfig::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("gantry.yaml") && err.contains("registres"),
            "{err}"
        );
    }
}
