//! The configuration file as written: [`RawConfig`] and its parts, before validation.
//!
//! Design: every struct is `deny_unknown_fields` and every field optional, so a typo is an
//! error naming the key and its line, and an empty file is valid. Durations, signals, modes and
//! owners stay text here; [`super::validate`] turns them into typed values. The `sources:`,
//! `vault:` and `aws:` parts are the backends' types, kept for `crate::source`.
//!
//! Limits: only the YAML syntax is checked here.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Format};
use crate::source;

/// The file as written, before validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Backends' part: the secrets to read (validated by `crate::source`).
    #[serde(default)]
    pub sources: Vec<source::RawSourceSpec>,
    /// Backends' part: Vault address and auth.
    #[serde(default)]
    pub vault: Option<source::RawVaultConfig>,
    /// Backends' part: AWS region and endpoint overrides.
    #[serde(default)]
    pub aws: Option<source::RawAwsConfig>,
    #[serde(default)]
    pub outputs: Vec<RawOutput>,
    pub refresh: Option<String>,
    pub grace: Option<String>,
    pub debounce: Option<String>,
    pub on_change: Option<RawAction>,
    pub restart: Option<RawRestart>,
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub path: PathBuf,
    pub format: Option<Format>,
    pub mode: Option<serde_yaml::Value>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub sources: Option<Vec<String>>,
    pub keys: Option<Vec<String>>,
    pub on_change: Option<RawAction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub signal: Option<String>,
    pub pid_file: Option<PathBuf>,
    pub systemd_unit: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    pub signal: Option<String>,
    pub timeout: Option<String>,
    pub stop_timeout: Option<String>,
    pub debounce: Option<String>,
    pub min_interval: Option<String>,
    pub exit_on_change: Option<bool>,
}

/// Parses the YAML text of a config file (named `origin` in errors).
pub fn parse_raw(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    gantry_common::yaml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: origin.to_owned(),
        line: e.line,
        column: e.column,
        message: e.message,
    })
}
